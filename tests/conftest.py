import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


import pytest  # noqa: E402


@pytest.fixture
def run_cli(capsys):
    """Runs `keras-dae --quiet ARGS...` in this process: `(exit code, stdout, stderr)`."""

    def run(*args):
        from keras_dae_cli import main

        with pytest.raises(SystemExit) as exit_info:
            main(["--quiet", *map(str, args)])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    return run
