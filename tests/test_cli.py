import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from keras_dae_cli import cli


def _console_script():
    script = Path(sys.executable).parent / "keras-dae"
    return str(script) if script.exists() else shutil.which("keras-dae")


def test_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("models", "spectrogram", "--verbose", "--quiet", "--version"):
        assert command in result.output


def test_version_is_the_installed_one():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"keras-dae, version {importlib.metadata.version('keras-dae')}"


def test_models_prints_summaries_and_counts():
    result = CliRunner().invoke(cli, ["models", "--num-bins", "64"])
    assert result.exit_code == 0, result.output
    assert "dae: num_bins=64 hidden_size=64 parameters=8,320" in result.output
    assert "deep-dae: num_bins=64 hidden_size=64 parameters=16,640" in result.output
    assert "sf: num_bins=64 hidden_size=64 parameters=8,320" in result.output
    assert "skip_filter/encoder_kernel_2" in result.output  # deep-dae's third encoder layer


def test_models_forwards_options():
    result = CliRunner().invoke(cli, ["models", "--arch", "sf", "--num-bins", "10", "--hidden-size", "3"])
    assert result.exit_code == 0, result.output
    assert "sf: num_bins=10 hidden_size=3 parameters=73" in result.output
    assert "deep-dae" not in result.output


def _run(*args):
    return subprocess.run([_console_script(), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--foo"],
        ["models", "--num-bins", "0"],
        ["models", "--arch", "unet"],
        ["--verbose", "--quiet", "models"],
        ["no-such-command"],
    ],
)
def test_usage_errors_are_one_line_exit_2(args):
    result = _run(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_version_and_help_do_not_import_tensorflow():
    code = "import sys; from keras_dae_cli import main; sys.argv=['keras-dae','--help']\ntry:\n main()\nexcept SystemExit: pass\nprint('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("False")


def test_no_generic_cli_module_is_installed(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('cli') is None, u.find_spec('keras_dae_cli') is not None)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.stdout.split() == ["True", "True"]


def _assert_real_png(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_spectrogram_of_the_embedded_example(tmp_path):
    out = tmp_path / "demo" / "example.png"
    result = CliRunner().invoke(cli, ["spectrogram", "--out", str(out), "--num-bins", "744"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    _assert_real_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["example.png"]  # no temporary left


def test_spectrogram_of_a_wav_file(tmp_path):
    t = np.arange(22050) / 22050
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t)], 1) * 0.3, 22050)
    out = tmp_path / "tone.png"
    result = CliRunner().invoke(cli, ["spectrogram", str(wav), "--out", str(out)])
    assert result.exit_code == 0, result.output
    _assert_real_png(out)


def test_spectrogram_of_a_non_audio_file_is_one_line_exit_1(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    out = tmp_path / "x.png"
    result = _run("spectrogram", str(bad), "--out", str(out))
    assert result.returncode == 1
    # TensorFlow's start-up log is hidden: stderr is exactly the one line.
    assert result.stderr.startswith("keras-dae: error: cannot read")
    assert len(result.stderr.splitlines()) == 1 and str(bad) in result.stderr
    assert not out.exists()
