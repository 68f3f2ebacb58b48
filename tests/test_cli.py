import importlib.metadata
import sys

import numpy as np
import pytest
import soundfile


def test_help_lists_commands(run_cli):
    code, out, _ = run_cli("--help", quiet=False)
    assert code == 0
    for command in ("models", "spectrogram", "--verbose", "--quiet", "--version"):
        assert command in out


def test_version_is_the_installed_one(run_cli):
    code, out, _ = run_cli("--version", quiet=False)
    assert code == 0
    assert out.strip() == f"keras-dae, version {importlib.metadata.version('keras-dae')}"


def test_models_prints_summaries_and_counts(run_cli):
    code, out, err = run_cli("models", "--num-bins", "64")
    assert code == 0, err
    assert "dae: num_bins=64 hidden_size=64 parameters=8,320" in out
    assert "deep-dae: num_bins=64 hidden_size=64 parameters=16,640" in out
    assert "sf: num_bins=64 hidden_size=64 parameters=8,320" in out
    assert "skip_filter/encoder_kernel_2" in out  # deep-dae's third encoder layer


def test_models_forwards_options(run_cli):
    code, out, err = run_cli("models", "--arch", "sf", "--num-bins", "10", "--hidden-size", "3")
    assert code == 0, err
    assert "sf: num_bins=10 hidden_size=3 parameters=73" in out
    assert "deep-dae" not in out


# Usage errors and a bad file run the console script in a fresh process: its stderr shows
# anything TensorFlow's start-up prints, and it must be exactly the one error line.
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
def test_usage_errors_are_one_line_exit_2(args, run_cli):
    code, out, err = run_cli(*args, quiet=False, process=True)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_version_and_help_do_not_import_tensorflow(flag, run_process):
    code = (f"import sys; from keras_dae_cli import main; sys.argv=['keras-dae','{flag}']\ntry:\n main()\n"
            "except SystemExit: pass\nprint('tensorflow' in sys.modules)")
    result = run_process(sys.executable, "-c", code, timeout=60)
    assert result.stdout.strip().endswith("False"), result.stdout + result.stderr


def test_architecture_choices_are_the_librarys_without_tensorflow(run_process):
    # The CLI reads keras_dae/names.py without running keras_dae/__init__.py; the package, imported
    # later, reuses that module, and its ARCHITECTURES are exactly the choices of --arch.
    code = "\n".join([
        "import sys",
        "from keras_dae_cli import cli",
        "print('tensorflow' in sys.modules, 'keras_dae' in sys.modules)",
        "names = sys.modules['keras_dae.names']",
        "choices = {name: cli.commands[name].params[0].type.choices for name in ('train', 'models')}",
        "import keras_dae",
        "print(keras_dae.names is names, all(tuple(c) == tuple(keras_dae.ARCHITECTURES) for c in choices.values()))",
    ])
    result = run_process(sys.executable, "-c", code, timeout=120)
    assert result.stdout.split() == ["False", "False", "True", "True"], result.stdout + result.stderr


def test_library_parameters_become_flags():
    from keras_dae_cli import cli
    from keras_dae_cli.common import command_flags, to_flags

    train = command_flags(cli.commands["train"])
    message = ("'runs/x' holds a run with arch='sf', not 'dae'; choose another `out` or add `overwrite=True`; "
               "use `num_bins=64`, `strategy='mirrored'`, `is_wav=False`, not `unknown_name`.")
    assert to_flags(message, train) == (
        "'runs/x' holds a run with arch='sf', not 'dae'; choose another --out or add --overwrite; "
        "use --num-bins 64, --strategy mirrored, no --is-wav, not `unknown_name`.")
    evaluate = command_flags(cli.commands["evaluate"])
    assert to_flags("`references=False` and `model_path`", evaluate) == "--no-references and --model"
    export = command_flags(cli.commands["export"])
    assert to_flags("another `base`, `name` or `version`", export) == "another --out, --name or --version"
    assert to_flags("`overwrite=True`", {}) == "`overwrite=True`"  # no command: unchanged


def test_library_log_messages_become_flags(monkeypatch):
    import logging

    from keras_dae_cli import cli, common

    monkeypatch.setitem(common.STATE, "flags", common.command_flags(cli.commands["train"]))
    message = "'%s' is a finished run (%s epochs); add `overwrite=True` to train again"
    record = logging.LogRecord("keras_dae.training", logging.INFO, __file__, 1, message, ("r", 3), None)
    assert common._FlagsFilter().filter(record)
    assert record.getMessage() == "'r' is a finished run (3 epochs); add --overwrite to train again"


def test_no_generic_cli_module_is_installed(tmp_path, run_process):
    code = "import importlib.util as u; print(u.find_spec('cli') is None, u.find_spec('keras_dae_cli') is not None)"
    result = run_process(sys.executable, "-c", code, cwd=tmp_path, timeout=60)
    assert result.stdout.split() == ["True", "True"]


def test_spectrogram_of_the_embedded_example(tmp_path, run_cli, assert_png):
    out = tmp_path / "demo" / "example.png"
    code, stdout, err = run_cli("spectrogram", "--out", out, "--num-bins", "744")
    assert code == 0, err
    assert str(out) in stdout
    assert_png(out, min_width=400)
    assert [p.name for p in out.parent.iterdir()] == ["example.png"]  # no temporary left


def test_spectrogram_of_a_wav_file(tmp_path, run_cli, assert_png):
    t = np.arange(22050) / 22050
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t)], 1) * 0.3, 22050)
    out = tmp_path / "tone.png"
    code, _, err = run_cli("spectrogram", wav, "--out", out)
    assert code == 0, err
    assert_png(out, min_width=400)


def test_spectrogram_of_a_non_audio_file_is_one_line_exit_1(tmp_path, run_cli):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    out = tmp_path / "x.png"
    code, _, err = run_cli("spectrogram", bad, "--out", out, quiet=False, process=True)
    assert code == 1
    # TensorFlow's start-up log is hidden: stderr is exactly the one line.
    assert err.startswith("keras-dae: error: cannot read")
    assert len(err.splitlines()) == 1 and str(bad) in err
    assert not out.exists()
