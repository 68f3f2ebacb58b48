"""Training runs: learning, the run directory, resuming, refusing, the CLI."""

import csv
import json
import os
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_dae import runs
from keras_dae.couplings import evolution
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.spectral import SpectralConfig
from keras_dae.training import train

CONFIG = SpectralConfig(num_bins=32)
# Two of the names in musdb's 14-track validation split: `musdb_root` (conftest.py) names two train tracks so.
VALID_NAMES = ("Actions - One Minute Smile", "Leaf - Summerghost")


def _small(**overrides):
    settings = dict(spectral=CONFIG, hidden_size=16, batch_size=32, learning_rate=3e-3,
                    excerpt_seconds=1.0, verbose=0)
    return {**settings, **overrides}


@pytest.mark.parametrize("arch", ["dae", "deep-dae", "sf"])
def test_each_arch_learns_on_synthetic_tracks(arch, musdb_root, tmp_path):
    model, run_dir = train(arch, tmp_path / arch, root=musdb_root, is_wav=True, epochs=6, loss="l1", **_small())
    history = runs.read_history(run_dir)
    assert len(history) == 6
    assert history[-1]["loss"] < 0.8 * history[0]["loss"], history
    assert all(np.isfinite(row["val_loss"]) for row in history)
    assert model.name == arch.replace("-", "_")


def test_same_seed_same_run_whatever_ran_before(musdb_root, tmp_path):
    keras.utils.set_random_seed(123)  # global state left by earlier code must not matter
    first, _ = train("dae", tmp_path / "a", root=musdb_root, is_wav=True, epochs=1, seed=5, **_small())
    keras.utils.set_random_seed(456)
    second, _ = train("dae", tmp_path / "b", root=musdb_root, is_wav=True, epochs=1, seed=5, **_small())
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_root_without_validation_tracks_trains_and_finishes(tmp_path, caplog):
    root = tmp_path / "musdb"
    write_synthetic_musdb(root, num_tracks=1, seconds=2.0, seed=12)
    with caplog.at_level("WARNING"):
        _, run_dir = train("dae", tmp_path / "run", root=root, is_wav=True, epochs=2, **_small())
    assert any("training without validation" in message for message in caplog.messages)
    history = runs.read_history(run_dir)
    assert [row["epoch"] for row in history] == [0, 1]
    assert all("val_loss" not in row for row in history)  # Keras writes "NA" there
    record = runs.read_config(run_dir)
    assert record["status"] == "epoch-cap" and record["epochs_completed"] == 2 and record["monitor"] == "loss"


def test_run_directory_records_everything(musdb_root, tmp_path):
    model, run_dir = train("sf", tmp_path / "run", root=musdb_root, is_wav=True, epochs=2, seed=3, **_small())
    record = json.loads((run_dir / runs.CONFIG).read_text())
    assert record["arch"] == "sf" and record["loss"] == "kl" and record["seed"] == 3
    assert record["spectral"] == CONFIG.to_dict()
    assert record["status"] == "epoch-cap" and record["epochs_completed"] == 2
    assert record["monitor"] == "val_loss"
    assert record["data"]["valid_tracks"] == sorted(VALID_NAMES)
    assert set(record["versions"]) >= {"keras", "tensorflow", "keras-dae"}
    with open(run_dir / runs.HISTORY, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    best = keras.saving.load_model(run_dir / runs.MODEL)
    frames = np.random.default_rng(0).uniform(0, 1, (4, 32)).astype("float32")
    np.testing.assert_allclose(best.predict(frames, verbose=0), model.predict(frames, verbose=0))
    assert any(name.startswith("events") for _, _, files in os.walk(run_dir / runs.LOGS) for name in files)
    assert not (run_dir / runs.BACKUP).exists()  # removed once the run finished


def test_finished_run_is_not_retrained_and_other_runs_are_refused(musdb_root, tmp_path):
    run = tmp_path / "run"
    train("sf", run, root=musdb_root, is_wav=True, epochs=1, **_small())
    before = (run / runs.HISTORY).read_text()
    train("sf", run, root=musdb_root, is_wav=True, epochs=1, **_small())
    assert (run / runs.HISTORY).read_text() == before
    with pytest.raises(ValueError, match="holds a run with arch='sf', not 'dae'"):
        train("dae", run, root=musdb_root, is_wav=True, epochs=1, **_small())
    with pytest.raises(ValueError, match="spectral"):
        train("sf", run, root=musdb_root, is_wav=True, epochs=1, **_small(spectral=SpectralConfig(num_bins=16)))
    train("dae", run, root=musdb_root, is_wav=True, epochs=2, overwrite=True, **_small())
    assert json.loads((run / runs.CONFIG).read_text())["arch"] == "dae"
    assert len(runs.read_history(run)) == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"hidden_size": -3}, "hidden_size must be a positive integer"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"loss": "l3"}, "Unknown loss 'l3'"),
        ({"strategy": "tpu"}, "Unknown strategy 'tpu'"),
    ],
)
def test_bad_settings(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train("sf", tmp_path / "run", **_small(**overrides))
    assert not (tmp_path / "run").exists()


def test_bad_arch_and_unwritable_output(tmp_path):
    with pytest.raises(ValueError, match="Unknown arch 'cnn'"):
        train("cnn", tmp_path / "run", **_small())
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        train("sf", tmp_path / "file", **_small())
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(ValueError, match="cannot write to run directory"):
            train("sf", locked / "run", **_small())
    finally:
        locked.chmod(0o700)


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    import keras_dae.training as training
    from keras_dae.spectral import SpectralConfig

    kill_after = int(sys.argv[3])
    real_callbacks = training._callbacks

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    # Just before BackupAndRestore, which comes last: killed once epoch N's history and couplings rows are
    # written but before the backup says so (the worst moment: the rerun must drop those rows and redo them).
    training._callbacks = lambda *args: (lambda found: found[:-1] + [Kill()] + found[-1:])(real_callbacks(*args))
    training.train("sf", sys.argv[1], root=sys.argv[2], is_wav=True, epochs=4,
                   spectral=SpectralConfig(num_bins=32), hidden_size=16, batch_size=32,
                   excerpt_seconds=1.0, learning_rate=3e-3, verbose=0, couplings_every=1)
    """
)


@pytest.mark.slow
def test_resume_after_kill_9_continues_at_the_right_epoch(musdb_root, tmp_path, run_process):
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    run = tmp_path / "run"
    killed = run_process(sys.executable, script, run, musdb_root, "3")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert json.loads((run / runs.CONFIG).read_text())["status"] == "running"
    assert runs.backup_epoch(run / runs.BACKUP) == 2
    before = runs.read_history(run)
    assert len(before) == 3  # epoch 3's row was written, its backup was not
    assert [row["epoch"] for row in evolution.read_rows(run)] == [1, 2, 3]
    evolution_before = evolution.read_rows(run)[:2]
    train("sf", run, root=musdb_root, is_wav=True, epochs=4, couplings_every=1, **_small())
    history = runs.read_history(run)
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    assert history[:2] == before[:2]  # epochs 0 and 1 were not trained again
    rows = evolution.read_rows(run)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]  # none missing, none twice
    assert rows[:2] == evolution_before
    assert evolution.read_snapshots(run)[0].tolist() == [1, 2, 3, 4]
    record = json.loads((run / runs.CONFIG).read_text())
    assert record["status"] == "epoch-cap" and record["epochs_completed"] == 4
    # Training went on from the backed-up weights: epoch 2 starts near where 1 ended,
    # not at the loss of a fresh model.
    assert history[2]["loss"] < 0.9 * history[0]["loss"]


def test_a_run_records_convergence_and_its_losses(musdb_root, tmp_path):
    # min_delta 0.9: no epoch after the first improves by 90%, so with patience 2 the rule stops after epoch 3.
    _, run_dir = train("dae", tmp_path / "converged", root=musdb_root, is_wav=True, epochs=30, patience=2,
                       min_delta=0.9, steps_per_epoch=3, **_small())
    record = runs.read_config(run_dir)
    history = runs.read_history(run_dir)
    assert record["status"] == "converged" and record["epochs_completed"] == 3 == len(history)
    assert record["steps_completed"] == 9 and record["min_delta"] == 0.9 and record["patience"] == 2
    losses = [row["val_loss"] for row in history]
    assert record["best"] == {"val_loss": min(losses), "epoch": losses.index(min(losses)) + 1}
    assert record["last"] == {"val_loss": losses[-1], "epoch": 3}
    # The same run with a rule that cannot fire stops at its cap, and says so.
    _, run_dir = train("dae", tmp_path / "capped", root=musdb_root, is_wav=True, epochs=3, patience=10,
                       steps_per_epoch=3, **_small())
    assert runs.read_config(run_dir)["status"] == "epoch-cap"


def test_cli_trains_on_the_embedded_clip(tmp_path, run_cli):
    code, out, err = run_cli("train", "--arch", "dae", "--out", tmp_path / "run", "--num-bins", "32",
                             "--hidden-size", "8", "--epochs", "2", "--batch-size", "64")
    assert code == 0, err
    assert "run directory:" in out
    record = json.loads((tmp_path / "run" / runs.CONFIG).read_text())
    assert record["data"]["source"] == "example" and record["status"] == "epoch-cap"
    assert record["hidden_size"] == 8
    code, _, err = run_cli("train", "--arch", "sf", "--out", tmp_path / "run", "--num-bins", "32", quiet=False)
    assert code == 1
    assert err.count("\n") == 1 and "arch='dae', not 'sf'" in err
    code, _, err = run_cli("train", "--arch", "cnn", "--out", tmp_path / "x", quiet=False)
    assert code == 2 and "cnn" in err
