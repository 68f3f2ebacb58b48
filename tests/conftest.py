"""Shared fixtures: the one CLI harness (`run_cli`), the one subprocess helper (`run_process`),
a small untrained model (`model`, `saved_model`), a synthetic MUSDB root (`musdb_root`) and the
check of a written figure (`assert_png`)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Two of the names in musdb's 14-track validation split (`musdb_root` names two train tracks so).
VALID_NAMES = ("Actions - One Minute Smile", "Leaf - Summerghost")


def _console_script():
    script = Path(sys.executable).parent / "keras-dae"
    return str(script) if script.exists() else shutil.which("keras-dae")


def _run_process(*command, timeout=300, **kwargs):
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                          check=False, **kwargs)


@pytest.fixture
def run_process():
    """Runs `COMMAND...` in a fresh process: the `subprocess.CompletedProcess` (text stdout/stderr).

    For what only a fresh interpreter shows (the modules `--help` imports, a
    SavedModel loaded without keras_dae, a kill -9, devices set up before
    TensorFlow starts) and for the example scripts; pass `sys.executable` to
    run Python. Commands of `keras-dae` go through `run_cli` instead.
    """
    return _run_process


@pytest.fixture
def run_cli(capsys):
    """Runs `keras-dae [--quiet] ARGS...`: `(exit code, stdout, stderr)`.

    In this process by default (`keras_dae_cli.main`, as the console script
    calls it). `process=True` runs the installed console script in a fresh
    process instead, where stderr shows whatever TensorFlow's start-up would
    print. `quiet=False` passes ARGS exactly as given.
    """

    def run(*args, quiet=True, process=False, timeout=120):
        args = [*(["--quiet"] if quiet else []), *map(str, args)]
        if process:
            result = _run_process(_console_script(), *args, timeout=timeout)
            return result.returncode, result.stdout, result.stderr
        from keras_dae_cli import main

        capsys.readouterr()  # only this command's output
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    return run


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_height=200, min_width=200):
    path = Path(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    from matplotlib.image import imread

    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4), (path, image.shape)
    assert min_height <= image.shape[0] <= 4000 and min_width <= image.shape[1] <= 4000, (path, image.shape)
    assert float(image[..., :3].std()) > 0.05, f"{path} is a blank canvas"


@pytest.fixture
def assert_png():
    """Checks a written figure, `assert_png(path, min_height=200, min_width=200)`: a PNG file whose
    image has plausible pixel dimensions (up to 4000) and is not a blank canvas."""
    return _assert_png


@pytest.fixture(scope="module")
def model(request):
    """An untrained `sf` model (seed 0, hidden size 16) over the bins of the test module's `CONFIG`."""
    import keras

    from keras_dae.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("sf", request.module.CONFIG.num_bins, hidden_size=16)


@pytest.fixture(scope="module")
def saved_model(model, tmp_path_factory):
    """`model` saved as `model.keras`, alone in a directory: its path."""
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def musdb_root(tmp_path_factory):
    """A MUSDB18-HQ tree of four 2-second synthetic train tracks; the first two carry `VALID_NAMES`,
    so musdb's validation split holds them."""
    from keras_dae.data.synthetic import write_synthetic_musdb

    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=4, seconds=2.0, seed=11)
    for index, name in enumerate(VALID_NAMES):
        os.rename(root / "train" / f"synthetic-{index:03d}", root / "train" / name)
    return root
