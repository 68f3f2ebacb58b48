"""What a bad input, a damaged file, a full disk or an impossible size gets: one line, never a traceback.

Two classes of the hardening issue: tracebacks (a damaged frame cache, a
full disk, `couplings --max-frames` below what the held-out split needs, an
impossible `synth` size; the safety net in `keras_dae_cli.main` for
TensorFlow's errors and `MemoryError`) and misleading messages (a damaged
`.keras` file reported as missing, `--out` below a regular file, a full disk
without its path, a malformed `TF_CONFIG`, an empty `export --name`, option
values the library refuses exiting 1 instead of 2, TensorFlow's C++ INFO
lines while reading a cache). Every CLI case checks: exactly one line on
stderr, the exit code, no traceback, and nothing half-written.
"""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=32)  # the `model` / `saved_model` fixtures' bins
BINS = ("--num-bins", "32")


def one_line_error(code, err, expected_code, *fragments):
    """Asserts the CLI's error contract: `expected_code`, one line on stderr, no traceback, the `fragments`."""
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("keras-dae"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)
    return lines[0]


def temporaries(directory):
    """keras-dae's temporaries (`.<name>.tmp-<pid>-<random><suffix>`) anywhere under `directory`."""
    return [path for path in Path(directory).rglob("*") if ".tmp-" in path.name]


@pytest.fixture(scope="module")
def cache(musdb_root, tmp_path_factory):
    """A frame cache of `musdb_root`'s four train tracks at 32 bins."""
    from keras_dae.data.prepare import prepare_dataset
    from keras_dae.data.tracks import list_tracks

    out = tmp_path_factory.mktemp("cache") / "cache"
    prepare_dataset(list_tracks(musdb_root, is_wav=True, subsets="train"), out, spectral=CONFIG, progress=False)
    return out


@pytest.fixture
def damaged_cache(cache, tmp_path):
    """A copy of `cache` whose first shard has 50 bytes overwritten (same size, so its sidecar still matches)."""
    damaged = tmp_path / "damaged"
    shutil.copytree(cache, damaged)
    shard = sorted(damaged.glob("*.tfrecord"))[0]
    with shard.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff" * 50)
    return damaged, shard.name


@pytest.fixture
def small_disk(tmp_path):
    """`mount(options)`: a tmpfs mounted at a fresh directory under tmp_path (unmounted afterwards); skips
    when mounting is not allowed."""
    mounted = []

    def mount(options="size=64k"):
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        # Lazily if busy: a failed in-process `train` may still hold a TensorBoard event file open there.
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


# -- tracebacks ---------------------------------------------------------------------------------------------------


def test_damaged_shard_names_it_in_train_and_couplings(damaged_cache, saved_model, run_cli, tmp_path):
    damaged, shard = damaged_cache
    run = tmp_path / "run"
    code, _, err = run_cli("train", "--out", run, "--prepared", damaged, *BINS, "--hidden-size", "8",
                           "--epochs", "1", "--steps-per-epoch", "2")
    one_line_error(code, err, 1, f"prepared dataset '{damaged}' has a damaged shard '{shard}'",
                   "run keras-dae prepare again")
    assert not (run / "model.keras").exists() and not temporaries(run)

    out = tmp_path / "couplings"
    code, _, err = run_cli("couplings", "--model", saved_model, "--prepared", damaged, "--solver", "lstsq",
                           "--out", out)
    one_line_error(code, err, 1, f"has a damaged shard '{shard}'", "keras-dae prepare")
    assert not (out / "metrics.json").exists() and not (out / "couplings.npy").exists()


def test_damaged_shard_in_the_library(damaged_cache, cache):
    from keras_dae.data.prepare import cache_errors, check_shards, iter_shards

    damaged, shard = damaged_cache
    with pytest.raises(ValueError, match=f"'{damaged}' has a damaged shard '{shard}'"):
        list(iter_shards(damaged))
    with pytest.raises(ValueError, match=shard):
        check_shards(damaged)
    check_shards(cache)  # a whole cache reads fine
    import tensorflow as tf

    # What `model.fit` raises for it (no file named) becomes the message naming the shard...
    with pytest.raises(ValueError, match=shard), cache_errors(None, damaged):
        raise tf.errors.DataLossError(None, None, "corrupted record at 12")
    # ...and when every shard reads fine, the original error goes on.
    with pytest.raises(tf.errors.DataLossError), cache_errors(cache):
        raise tf.errors.DataLossError(None, None, "corrupted record at 12")


@pytest.mark.parametrize("options, words", [("size=64k", "no space left on device while writing"),
                                            ("size=1m,ro", "is on a read-only file system")])
def test_full_or_read_only_disk_prepare(options, words, small_disk, musdb_root, run_cli):
    out = small_disk(options) / "cache"
    code, _, err = run_cli("prepare", "--root", musdb_root, "--is-wav", *BINS, "--out", out)
    one_line_error(code, err, 1, words, f"'{out}'", "--out")
    assert not list(out.glob("*.tfrecord")) if out.is_dir() else True
    assert not temporaries(out.parent)


def test_full_disk_export(small_disk, saved_model, run_cli):
    base = small_disk() / "serving"
    code, _, err = run_cli("export", "--model", saved_model, "--out", base, "--name", "sf")
    one_line_error(code, err, 1, f"no space left on device while writing export '{base / 'sf'}'",
                   "free some space or choose another --out")
    assert not (base / "sf" / "1").exists() and not temporaries(base)


def test_full_disk_train(small_disk, run_cli):
    run = small_disk() / "run"
    code, _, err = run_cli("train", "--out", run, *BINS, "--epochs", "1", "--steps-per-epoch", "1")
    one_line_error(code, err, 1, f"no space left on device while writing run directory '{run}'")
    assert not (run / "model.keras").exists() and not temporaries(run)


def test_disk_errors_become_one_line_naming_the_path(tmp_path):
    import tensorflow as tf

    from keras_dae.errors import disk_message, writing

    with pytest.raises(OSError, match=rf"^no space left on device while writing cache '{re.escape(str(tmp_path))}'"):
        with writing(tmp_path, "cache "):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a write(2) names no file
    with pytest.raises(OSError, match="no space left on device") as info, writing(tmp_path):
        raise tf.errors.ResourceExhaustedError(None, None, f"{tmp_path}/.x.tmp-1-abcdefgh; No space left on device")
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(KeyError), writing(tmp_path):  # other errors pass unchanged
        raise KeyError("x")
    # A temporary's name is shown as the file it was to become.
    error = OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / ".figure.tmp-42-abcd_123.png"))
    assert disk_message(error) == f"'{tmp_path / 'figure.png'}' is on a read-only file system; write somewhere else."


def test_couplings_with_fewer_frames_than_the_held_out_split_needs(saved_model, run_cli, tmp_path):
    # --max-frames 2 from the embedded clip: two frames, none held out (Keras' predict failed on zero frames).
    out = tmp_path / "couplings"
    code, out_text, err = run_cli("couplings", "--model", saved_model, "--max-frames", "2", "--solver", "lstsq",
                                  "--out", out)
    assert code == 0, err
    assert "Traceback" not in err and (out / "metrics.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["frames_held_out"] == 0


def test_teacher_outputs_of_no_frames(model):
    from keras_dae.couplings.solver import teacher_outputs

    outputs = teacher_outputs(model, np.zeros((0, CONFIG.num_bins), np.float32))
    assert outputs.shape == (0, CONFIG.num_bins) and outputs.dtype == np.float32


def test_synth_impossible_sizes(run_cli, tmp_path):
    out = tmp_path / "synthetic"
    code, _, err = run_cli("synth", "--out", out, "--tracks", "1", "--seconds", "1e9")
    one_line_error(code, err, 1, "of memory", "use a shorter --seconds")
    code, _, err = run_cli("synth", "--out", out, "--tracks", "100000", "--seconds", "600")
    one_line_error(code, err, 1, "100000 synthetic tracks of 600 s need about", "free; write fewer or shorter",
                   "choose another --out")
    assert not out.exists() or not any(out.rglob("*.wav"))


def test_memory_and_tensorflow_errors_reach_the_user_as_one_line(run_cli, monkeypatch):
    import tensorflow as tf

    import keras_dae.data.synthetic
    import keras_dae.models

    def numpy_out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 329. GiB for an array with shape (44100000000,) and data type float64")

    monkeypatch.setattr(keras_dae.data.synthetic, "write_synthetic_musdb", numpy_out_of_memory)
    code, _, err = run_cli("synth", "--out", "never", "--tracks", "1", "--seconds", "1")
    one_line_error(code, err, 1, "out of memory (Unable to allocate 329. GiB", "ask for smaller sizes")

    def tensorflow_out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "{{function_node __wrapped__X}} OOM when allocating tensor with shape[300000,300000] [Op:X]")

    monkeypatch.setattr(keras_dae.models, "build_model", tensorflow_out_of_memory)
    code, _, err = run_cli("models", "--arch", "sf", "--num-bins", "300000")
    line = one_line_error(code, err, 1, "out of memory (OOM when allocating tensor with shape[300000,300000])")
    assert "function_node" not in line and "[Op:" not in line

    def data_loss(*args, **kwargs):
        raise tf.errors.DataLossError(None, None, "corrupted record at 7")

    monkeypatch.setattr(keras_dae.models, "build_model", data_loss)
    code, _, err = run_cli("models", "--arch", "sf", "--num-bins", "8")
    one_line_error(code, err, 1, "corrupted data: corrupted record at 7", "keras-dae prepare again")


# -- misleading messages ------------------------------------------------------------------------------------------


def _damaged_models(saved_model, directory):
    data = saved_model.read_bytes()
    (directory / "empty.keras").write_bytes(b"")
    (directory / "junk.keras").write_bytes(os.urandom(3000))
    (directory / "truncated.keras").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    with zipfile.ZipFile(saved_model) as archive:
        member = next(info for info in archive.infolist() if info.filename.endswith(".h5"))
    flipped[member.header_offset + 30 + len(member.filename) + len(member.extra) + 100] ^= 0xFF
    (directory / "flipped.keras").write_bytes(bytes(flipped))
    return {"empty.keras": "it is empty (0 bytes)", "junk.keras": "are not a .keras zip archive",
            "truncated.keras": "are not a .keras zip archive", "flipped.keras": "fails its checksum"}


def test_damaged_keras_files_are_not_reported_missing(saved_model, tmp_path, run_cli):
    audio = tmp_path / "tone.wav"
    import soundfile

    soundfile.write(audio, np.sin(np.arange(4410) / 10).astype(np.float32), 44100)
    for name, reason in _damaged_models(saved_model, tmp_path).items():
        path = tmp_path / name
        for command in (["couplings", "--out", tmp_path / "c"], ["export", "--out", tmp_path / "e"],
                        ["separate", audio, "--out", tmp_path / "s"]):
            code, _, err = run_cli(*command, "--model", path)
            line = one_line_error(code, err, 1, f"'{path}' is not a Keras model file", reason)
            assert "File not found" not in line and "does not exist" not in line
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").rglob("saved_model.pb"))
    assert not any((tmp_path / "s").rglob("*.wav")) if (tmp_path / "s").exists() else True


def test_out_below_a_regular_file(saved_model, musdb_root, tmp_path, run_cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = blocker / "below"
    audio = musdb_root / "train" / "synthetic-002" / "mixture.wav"
    commands = [
        ["synth", "--out", out, "--tracks", "1", "--seconds", "0.1"],
        ["prepare", "--root", musdb_root, "--is-wav", *BINS, "--out", out],
        ["train", "--out", out, *BINS, "--epochs", "1"],
        ["couplings", "--model", saved_model, "--solver", "lstsq", "--max-frames", "64", "--out", out],
        ["separate", audio, "--model", saved_model, "--out", out],
        ["export", "--model", saved_model, "--out", out],
        ["evaluate", "--model", saved_model, "--root", musdb_root, "--is-wav", "--subset", "train", "--out", out],
    ]
    for command in commands:
        code, _, err = run_cli(*command)
        line = one_line_error(code, err, 1, f"'{blocker}' is a file, not a directory", "choose another --out")
        assert "File exists" not in line and "Not a directory" not in line, command
    code, _, err = run_cli("spectrogram", "--out", blocker / "figure.png")
    line = one_line_error(code, err, 1, f"'{blocker}'", "it is a file")
    assert "File exists" not in line
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("tf_config, words", [
    ("{not json", "is not valid JSON"),
    ("[]", 'needs a "cluster" and a "task"'),
    ('{"cluster": {"worker": ["localhost:1"]}}', 'needs a "cluster" and a "task"'),
    ('{"cluster": {"worker": "localhost:1"}, "task": {"type": "worker", "index": 0}}', '"host:port" addresses'),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}', "is not in its cluster"),
])
def test_malformed_tf_config_is_named(tf_config, words, monkeypatch, run_cli, tmp_path):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    run = tmp_path / "run"
    code, _, err = run_cli("train", "--out", run, *BINS, "--epochs", "1", "--strategy", "multiworker")
    one_line_error(code, err, 1, "TF_CONFIG environment variable", words)
    assert not run.exists()


def test_empty_export_name_is_refused_not_replaced(saved_model, run_cli, tmp_path):
    for name in ("", "  ", "a/b", ".hidden"):
        code, _, err = run_cli("export", "--model", saved_model, "--out", tmp_path / "serving", "--name", name)
        one_line_error(code, err, 2, "Invalid value for '--name'", "plain directory name", "export --help")
    assert not any((tmp_path / "serving").rglob("saved_model.pb")) if (tmp_path / "serving").exists() else True


@pytest.mark.parametrize("args, option", [
    (["train", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--learning-rate", "inf"], "--learning-rate"),
    (["train", "--clip-norm", "nan"], "--clip-norm"),
    (["train", "--min-delta", "nan"], "--min-delta"),
    (["train", "--excerpt-seconds", "inf"], "--excerpt-seconds"),
    (["train", "--num-bins", "99999"], "--num-bins"),
    (["train", "--window-length", "8193"], "--window-length"),
    (["train", "--fft-length", "64"], "--window-length"),
    (["train", "--hop-length", "4000"], "--hop-length"),
    (["train", "--strategy", "mirrored", "--steps-per-execution", "2"], "--steps-per-execution"),
    (["prepare", "--num-bins", "99999"], "--num-bins"),
    (["synth", "--tracks", "1", "--seconds", "nan"], "--seconds"),
    (["synth", "--tracks", "1", "--seconds", "1e-9"], "--seconds"),
    (["couplings", "--model", "MODEL", "--ridge", "nan"], "--ridge"),
    (["couplings", "--model", "MODEL", "--window-length", "8193"], "--window-length"),
    (["separate", "AUDIO", "--model", "MODEL", "--num-bins", "99999"], "--num-bins"),
    (["export", "--model", "MODEL", "--num-bins", "99999"], "--num-bins"),
])
def test_option_values_the_library_refuses_exit_2(args, option, saved_model, musdb_root, run_cli, tmp_path):
    audio = musdb_root / "train" / "synthetic-002" / "mixture.wav"
    args = [saved_model if arg == "MODEL" else audio if arg == "AUDIO" else arg for arg in args]
    out = tmp_path / "out"
    code, _, err = run_cli(*args, "--out", out)
    one_line_error(code, err, 2, f"Invalid value for '{option}'", f"Try 'keras-dae {args[0]} --help'.")
    assert not out.exists() or not any(path.name != ".keras-dae.lock" for path in out.rglob("*"))


def test_settings_of_a_damaged_file_are_not_a_usage_error(cache, saved_model, tmp_path, run_cli):
    # The same bad value read from a file is the file's fault: exit 1, naming it.
    damaged = tmp_path / "cache"
    shutil.copytree(cache, damaged)
    index = json.loads((damaged / "index.json").read_text())
    index["spectral"]["num_bins"] = 99999
    (damaged / "index.json").write_text(json.dumps(index))
    code, _, err = run_cli("train", "--out", tmp_path / "run", "--prepared", damaged, *BINS, "--epochs", "1")
    one_line_error(code, err, 1, f"'{damaged / 'index.json'}' is damaged", "prepare the cache again")
    del index["spectral"]
    (damaged / "index.json").write_text(json.dumps(index))
    code, _, err = run_cli("train", "--out", tmp_path / "run", "--prepared", damaged, *BINS, "--epochs", "1")
    one_line_error(code, err, 1, "is damaged (no 'spectral')")

    run = tmp_path / "model-run"
    run.mkdir()
    shutil.copy(saved_model, run / "model.keras")
    (run / "config.json").write_text(json.dumps({"spectral": dict(CONFIG.to_dict(), num_bins=99999)}))
    code, _, err = run_cli("export", "--model", run, "--out", tmp_path / "serving")
    one_line_error(code, err, 1, f"'{run / 'config.json'}' holds invalid spectral settings")


def test_library_refusals_carry_the_parameter():
    from keras_dae.checks import ParameterError
    from keras_dae.couplings.solver import lstsq_couplings

    with pytest.raises(ParameterError) as info:
        SpectralConfig(num_bins=99999)
    assert info.value.parameter == "num_bins" and isinstance(info.value, ValueError)
    with pytest.raises(ParameterError) as info:
        SpectralConfig(window_length=8193)
    assert info.value.parameter == "window_length"
    with pytest.raises(ParameterError) as info:
        lstsq_couplings(np.ones((4, 2)), np.ones((4, 2)), ridge=float("nan"))
    assert info.value.parameter == "ridge"


def test_usage_message_only_for_the_commands_own_options(monkeypatch):
    from keras_dae_cli import cli, common

    from keras_dae.checks import ParameterError

    monkeypatch.setitem(common.STATE, "flags", common.command_flags(cli.commands["train"]))
    monkeypatch.setitem(common.STATE, "command", "train")
    line = common.usage_message(ParameterError("num_bins", "`num_bins` must be at most 2049. Received: num_bins=9"))
    assert line == ("keras-dae train: error: Invalid value for '--num-bins': --num-bins must be at most 2049. "
                    "Received: num_bins=9. Try 'keras-dae train --help'.")
    assert common.usage_message(ParameterError("rate", "rate must be positive")) is None  # not a train option
    assert common.usage_message(ValueError("num_bins must be at most 2049")) is None


def test_malformed_tf_config_in_the_library(monkeypatch):
    from keras_dae.distribute import read_tf_config

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}')
    assert read_tf_config()["task"]["index"] == 1
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}')
    with pytest.raises(ValueError, match="TF_CONFIG"):
        read_tf_config()


@pytest.mark.slow
def test_no_tensorflow_info_lines_while_training_from_a_cache(cache, run_cli, tmp_path):
    code, _, err = run_cli("train", "--out", tmp_path / "run", "--prepared", cache, *BINS, "--hidden-size", "8",
                           "--epochs", "1", "--steps-per-epoch", "2", process=True)
    assert code == 0, err
    # Only keras-dae's own warning (the epoch cap), no `I0000 ... tf_record_dataset_op.cc` from TensorFlow's C++.
    assert all(line.startswith("WARNING keras_dae") for line in err.splitlines() if line.strip()), err


@pytest.mark.slow
def test_one_worker_tf_config_trains(run_process, tmp_path):
    # A TF_CONFIG cluster of one worker: Keras does not average the logs then, so they stay scalars
    # (they reached TensorBoard as 1-element vectors: "Expected scalar shape, saw shape: (1,)").
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}
    script = Path(sys.executable).parent / "keras-dae"
    result = run_process(script, "--quiet", "train", "--out", tmp_path / "run", *BINS, "--epochs", "1",
                         "--steps-per-epoch", "1", "--strategy", "multiworker",
                         env={**os.environ, "TF_CONFIG": json.dumps(tf_config)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "model.keras").is_file()
