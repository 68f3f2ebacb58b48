"""`keras-dae couplings`: frames, the report directory, --compare, bad input."""

import json

import keras
import numpy as np
import pytest
import soundfile

from keras_dae import runs, training
from keras_dae.couplings import frames as frames_module
from keras_dae.couplings import metrics as metrics_module
from keras_dae.couplings import examine
from keras_dae.couplings.examine import COUPLINGS, METRICS
from keras_dae.data.prepare import prepare_dataset
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.data.tracks import list_tracks
from keras_dae.spectral import SpectralConfig

NUM_BINS = 32
CONFIG = SpectralConfig(num_bins=NUM_BINS)
TINY = dict(hidden_size=8, epochs=1, batch_size=64, steps_per_epoch=2)
FIGURES = ("couplings.png", "couplings-offsets.png", "couplings-diagonal.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny runs (sf, dae) trained on the embedded clip: `{arch: run_dir}`."""
    out = tmp_path_factory.mktemp("runs")
    return {arch: training.train(arch, out / arch, spectral=CONFIG, verbose=0, **TINY)[1] for arch in ("sf", "dae")}


@pytest.fixture(scope="module")
def test_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=2, seconds=3.0, subset="test", seed=4)
    return root


def test_track_frames_are_sampled_split_and_match_the_prepared_cache(test_root, tmp_path):
    tracks = list_tracks(test_root, is_wav=True, subsets="test")
    available = sum(CONFIG.num_frames(track.num_samples) for track in tracks)
    every = frames_module.track_frame_set(tracks, spectral=CONFIG, max_frames=None)
    assert len(every.fit) + len(every.held_out) == available
    assert len(every.held_out) == pytest.approx(0.2 * available, abs=2)
    some = frames_module.track_frame_set(tracks, spectral=CONFIG, max_frames=200, seed=1)
    assert len(some.fit) + len(some.held_out) == pytest.approx(200, abs=2)
    assert some.description["tracks"] == [track.name for track in tracks]
    prepare_dataset(tracks, tmp_path / "cache", spectral=CONFIG, progress=False)
    cached = frames_module.prepared_frame_set(tmp_path / "cache", spectral=CONFIG, max_frames=200, seed=1)
    np.testing.assert_allclose(cached.fit, some.fit, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cached.held_out, some.held_out, rtol=1e-5, atol=1e-6)


def _silent_root(root, fraction=1.0):
    """A MUSDB18-HQ tree with one 2-second test track whose first `fraction` is digital silence."""
    write_synthetic_musdb(root, num_tracks=1, seconds=2.0, subset="test")
    for path in (root / "test").glob("*/*.wav"):
        audio, rate = soundfile.read(path, dtype="float32")
        audio[: int(len(audio) * fraction)] = 0
        soundfile.write(path, audio, rate, subtype="FLOAT")
    return root


def test_silent_frames_are_dropped(tmp_path):
    tracks = list_tracks(_silent_root(tmp_path / "musdb", fraction=0.5), is_wav=True, subsets="test")
    frame_set = frames_module.track_frame_set(tracks, spectral=CONFIG)
    available = frame_set.description["frames_available"]
    dropped = frame_set.description["silent_frames_dropped"]
    # About half the frames lie wholly in the silence (minus the window's reach into the sound).
    assert 0.4 * available < dropped < 0.5 * available
    assert len(frame_set.fit) + len(frame_set.held_out) == available - dropped
    assert frame_set.fit.max(axis=1).min() >= frames_module.SILENCE


def test_all_silent_frames_are_refused(tmp_path):
    tracks = list_tracks(_silent_root(tmp_path / "musdb"), is_wav=True, subsets="test")
    with pytest.raises(ValueError, match="mixture frames are silent"):
        frames_module.track_frame_set(tracks, spectral=CONFIG)


def test_report_directory_and_jacobian(trained, tmp_path, assert_png):
    frame_set = frames_module.track_frame_set(list_tracks(), spectral=CONFIG)
    record = examine(trained["sf"], tmp_path / "out", frame_set, spectral=CONFIG, epochs=30, jacobian=True,
                     jacobian_frames=8)
    out = tmp_path / "out"
    matrix = np.load(out / COUPLINGS)
    assert matrix.shape == (NUM_BINS, NUM_BINS) and np.isfinite(matrix).all()
    assert json.loads((out / METRICS).read_text()) == json.loads(json.dumps(record))
    for name in (*FIGURES, "jacobian.png", "jacobian-offsets.png", "jacobian-diagonal.png"):
        assert_png(out / name)
    assert (out / "history.csv").read_text().startswith("epoch,loss")
    assert record["model"]["arch"] == "sf" and record["data"]["frames_fit"] == len(frame_set.fit)
    trust = record["trust"]
    assert trust["frames_fit"] > NUM_BINS and not trust["under_determined"]
    assert trust["rank"] == NUM_BINS and trust["condition_number"] >= 1
    assert 0 <= trust["dead_output_units"] <= 1
    assert 0 < trust["calibration"]["diagonal_energy_ratio"] <= 1
    assert record["solver"]["epochs_run"] == 30 and record["solver"]["schedule"]["batch_size_used"] == 18
    for part in (record["couplings"], record["jacobian"]):
        for key in ("diagonal_energy_ratio", "band_energy_ratio_1", "band_energy_ratio_3", "band_energy_ratio_10",
                    "mean_absolute_offset_bins"):
            assert np.isfinite(part[key])
        for name in ("matrix", "identity", "best_diagonal"):
            assert set(part["fit_quality"][name]) == {"relative_l1", "relative_l2"}
    assert record["jacobian"]["frames"] == 8
    assert record["jacobian"]["relative_distance_to_couplings"] >= 0
    # The fitted C reproduces the model on held-out frames better than the identity does.
    quality = record["couplings"]["fit_quality"]
    assert quality["matrix"]["relative_l1"] < quality["identity"]["relative_l1"]


def test_lstsq_calibration_on_determined_frames_is_diagonal(trained, tmp_path):
    frame_set = frames_module.track_frame_set(list_tracks(), spectral=CONFIG)
    record = examine(trained["dae"], tmp_path / "out", frame_set, spectral=CONFIG, solver="lstsq")
    calibration = record["trust"]["calibration"]
    assert calibration["diagonal_energy_ratio"] > 0.999 and calibration["relative_error_to_truth"] < 1e-3
    assert record["solver"]["schedule"] is None and not (tmp_path / "out" / "history.csv").exists()
    # The least-squares C fits the fitting frames at least as well (L2) as the best diagonal.
    teacher = runs.load_run_model(trained["dae"])[0]
    targets = np.asarray(teacher.predict(frame_set.fit, verbose=0))
    matrix = np.load(tmp_path / "out" / COUPLINGS)
    fit = metrics_module.fit_quality(matrix, frame_set.fit, targets, frame_set.fit, targets)
    assert fit["matrix"]["relative_l2"] <= fit["best_diagonal"]["relative_l2"] + 1e-6


def test_under_determined_fit_warns(trained, tmp_path, caplog):
    frame_set = frames_module.track_frame_set(list_tracks(), spectral=CONFIG, max_frames=20)
    with caplog.at_level("WARNING"):
        record = examine(trained["dae"], tmp_path / "out", frame_set, spectral=CONFIG, solver="lstsq")
    assert record["trust"]["under_determined"] and record["trust"]["frames_fit"] < NUM_BINS
    assert sum("under-determined" in message for message in caplog.messages) == 1


@pytest.mark.slow
def test_cli_couplings_and_compare(trained, tmp_path, run_cli, assert_png):
    outs = {}
    for arch, solver in (("sf", "fit"), ("dae", "lstsq")):
        outs[arch] = tmp_path / arch
        code, out, err = run_cli("couplings", "--model", trained[arch], "--out", outs[arch],
                              "--solver", solver, "--pdf", "--max-epochs", "5")
        assert code == 0, err
        assert f"{arch}: diagonal energy ratio" in out
        for name in FIGURES:
            assert_png(outs[arch] / name)
            assert (outs[arch] / name).with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        record = json.loads((outs[arch] / METRICS).read_text())
        assert record["spectral"]["num_bins"] == NUM_BINS  # from the run's config.json
        assert record["solver"]["solver"] == solver
    code, out, err = run_cli("couplings", "--compare", outs["sf"], outs["dae"], "--out", tmp_path / "both")
    assert code == 0, err
    assert_png(tmp_path / "both" / "comparison.png")
    table = (tmp_path / "both" / "comparison.md").read_text()
    assert table == out.split("wrote")[0]
    rows = table.strip().splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == ["sf", "dae"]
    assert all("| - |" not in row for row in rows)  # every cell filled
    assert (tmp_path / "both" / "comparison.csv").read_text().count("\n") == 3


def test_cli_bad_input(trained, tmp_path, run_cli):
    not_a_model = tmp_path / "junk.keras"
    not_a_model.write_text("not a zip")
    other = keras.Sequential([keras.Input((NUM_BINS,)), keras.layers.Dense(NUM_BINS)])
    other.save(tmp_path / "other.keras")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / METRICS).write_text("{}")
    cases = [
        (["--model", tmp_path / "missing.keras"], "does not exist"),
        (["--model", not_a_model], "is not a Keras model file"),
        (["--model", tmp_path / "other.keras"], "not a keras-dae model"),
        (["--model", trained["sf"], "--num-bins", "64"], "the model has 32 bins but the frames 64; use --num-bins 32"),
        (["--model", trained["sf"], "--out", tmp_path / "taken"], "choose another --out or add --overwrite"),
        (["--compare", tmp_path / "taken", tmp_path], "holds no couplings"),
        (["--compare", tmp_path / "taken"], "at least two"),
    ]
    for args, message in cases:
        if "--out" not in args:
            args = [*args, "--out", tmp_path / "new"]
        code, _, err = run_cli("couplings", *args)
        assert code == 1, (args, err)
        assert message in err and err.count("\n") == 1, (args, err)
    silent = _silent_root(tmp_path / "silent")
    (tmp_path / "empty" / "test").mkdir(parents=True)
    for args, message in [
        (["--root", silent, "--is-wav"], "mixture frames are silent"),
        (["--root", tmp_path / "empty", "--is-wav"], "no MUSDB tracks"),
    ]:
        code, _, err = run_cli("couplings", "--model", trained["sf"], "--out", tmp_path / "new", *args)
        assert code == 1 and message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "new" / METRICS).exists()
    code, _, err = run_cli("couplings", "--out", tmp_path / "new")
    assert code == 2 and "give --model" in err


def test_calibration_is_computed_once_per_frame_set_solver_and_seed(monkeypatch):
    from keras_dae.couplings import references as report

    calls = []
    real_solve = report.solve

    def counting(*args, **kwargs):
        calls.append(kwargs.get("solver"))
        return real_solve(*args, **kwargs)

    monkeypatch.setattr(report, "solve", counting)
    monkeypatch.setattr(report, "_CALIBRATIONS", {})
    frames = np.random.default_rng(0).uniform(0, 1, (64, 8)).astype(np.float32)
    options = {"solver": "lstsq"}
    first = report.calibration(frames, options, seed=0)
    first["diagonal_energy_ratio"] = -1.0  # a caller changing its copy does not change the cache
    again = report.calibration(frames.copy(), options, seed=0)
    assert len(calls) == 1 and again["diagonal_energy_ratio"] > 0.99
    report.calibration(frames, options, seed=1)
    report.calibration(frames[:-1], options, seed=0)
    report.calibration(frames, {"solver": "lstsq", "ridge": 1.0}, seed=0)
    assert len(calls) == 4


def test_per_bin_references_score_each_per_bin_teacher():
    """The linear per-bin teacher is recovered exactly; the non-linear ones are scored on the same frames."""
    from keras_dae.couplings import PER_BIN_TEACHERS, per_bin_references

    base = np.random.default_rng(0).uniform(0, 1, (400, 1)).astype(np.float32)
    frames = base * np.random.default_rng(1).uniform(0.5, 1.5, (1, 8)).astype(np.float32)  # correlated bins
    frames += np.random.default_rng(2).uniform(0, 0.3, frames.shape).astype(np.float32)
    scores = per_bin_references(frames, {"solver": "lstsq"}, seed=0)
    assert list(scores) == list(PER_BIN_TEACHERS)
    assert scores["linear gain"]["diagonal_energy_ratio"] > 0.999
    for name in ("soft gate", "threshold", "compression"):
        assert 0.0 <= scores[name]["diagonal_energy_ratio"] < 0.99  # correlated bins, no bias: off-diagonal energy
        assert scores[name]["diagonal_energy_ratio"] <= scores[name]["band_energy_ratio_3"] <= 1.0
