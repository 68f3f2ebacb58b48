"""A training run's directory: what it holds and how a re-run treats it.

    RUN/config.json    every setting, the spectral config, versions, git
                       commit, and whether the run finished
    RUN/model.keras    the best model so far (by validation loss)
    RUN/history.csv    one row per finished epoch
    RUN/logs/          TensorBoard
    RUN/backup/        Keras `BackupAndRestore` state while a run is going
    RUN/.keras-dae.lock   while a `train` writes the run (`keras_dae.locking`):
                       a second one on RUN is refused

Re-running `train` on a run directory resumes it; a finished run is not
retrained; a run of another architecture or other spectral settings is
refused unless `overwrite`.
"""

import csv
import importlib.metadata
import json
import platform
import shutil
import subprocess
import zipfile
from pathlib import Path

from keras_dae.atomic import atomic_path
from keras_dae.errors import cannot_write

CONFIG = "config.json"
MODEL = "model.keras"
HISTORY = "history.csv"
LOGS = "logs"
BACKUP = "backup"
# How history.csv marks a value an epoch did not have.
MISSING = ("NA", "")
# Settings that make a run directory a different run if they change.
IDENTITY = ("arch", "hidden_size", "loss", "spectral")


def versions():
    """Versions of the packages a run depends on, and Python's."""
    result = {"python": platform.python_version()}
    for package in ("keras-dae", "keras", "tensorflow", "numpy"):
        try:
            result[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            result[package] = None
    return result


def git_commit():
    """The commit of the git checkout keras_dae runs from, or None."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def read_config(run_dir):
    """The run's `config.json` as a dict, or None if there is none."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read '{path}' ({error}); add `overwrite=True` to start over.") from None


def write_config(run_dir, config):
    with atomic_path(Path(run_dir) / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")


def check_compatible(run_dir, previous, settings):
    """Raises ValueError if the run in `run_dir` is another kind of run."""
    for key in IDENTITY:
        if previous.get(key) != settings.get(key):
            raise ValueError(
                f"'{run_dir}' holds a run with {key}={_short(previous.get(key))}, not "
                f"{_short(settings.get(key))}; choose another `out` or add `overwrite=True`."
            )


def _short(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {item}" for key, item in sorted(value.items())) + "}"
    return repr(value)


def prepare_directory(run_dir, overwrite):
    """Creates the run directory (emptied of a previous run if `overwrite`).

    Raises:
        ValueError: if it is a file or cannot be written.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"`out` '{run_dir}' is a file; give a directory.")
    if overwrite and run_dir.is_dir():
        for name in (CONFIG, MODEL, HISTORY):
            (run_dir / name).unlink(missing_ok=True)
        for name in (LOGS, BACKUP):
            shutil.rmtree(run_dir / name, ignore_errors=True)
    ensure_writable(run_dir, "run directory ")


def ensure_writable(directory, label=""):
    """Creates `directory` and checks that a file can be written there (ValueError, one line, if not)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / ".write-test") as tmp:
            tmp.write_text("")
        (directory / ".write-test").unlink()
    except OSError as error:
        raise ValueError(cannot_write(error, directory, label)) from None


def read_csv_rows(path, convert):
    """The rows of a CSV file as `convert(row dict)`, in order, up to a line cut short by a crash; [] if none.

    `convert` raises `TypeError` or `ValueError` for a row that is not whole.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            try:
                rows.append(convert(row))
            except (TypeError, ValueError):
                break  # a line cut short by a crash ends the file
    return rows


def read_history(run_dir):
    """Rows of `history.csv` as dicts of floats (epoch as int); [] if none."""
    # Keras' CSVLogger writes "NA" in val_* columns when there is no validation.
    return read_csv_rows(Path(run_dir) / HISTORY, lambda row: {
        key: (int(value) if key == "epoch" else float(value)) for key, value in row.items() if value not in MISSING})


def truncate_history(run_dir, epochs):
    """Keeps the rows of the first `epochs` epochs (a crash can leave a row the backup lacks)."""
    rows = [row for row in read_history(run_dir) if row["epoch"] < epochs]
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return rows
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def backup_epoch(backup_dir):
    """Epochs finished according to the `BackupAndRestore` state in `backup_dir`, 0 if none."""
    path = Path(backup_dir) / "training_metadata.json"
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def run_spectral(info, run_config):
    """The `SpectralConfig` of a trained model: its run's (`config.json`), else the paper's with its `num_bins`.

    `info` and `run_config` as `load_run_model` returns them (`run_config` may be None).
    """
    from keras_dae.spectral import SpectralConfig

    settings = (run_config or {}).get("spectral")
    return SpectralConfig.from_dict(settings) if settings else SpectralConfig(num_bins=info["num_bins"])


def model_file(path):
    """The `.keras` file of a run directory or model path."""
    path = Path(path)
    return path / MODEL if path.is_dir() else path


def _archive_damage(path):
    """What is wrong with the `.keras` file `path` as a zip archive (Keras says "File not found"), or None.

    A `.keras` file is a zip archive holding `config.json`; `model.keras`
    is written atomically, so an empty, truncated or overwritten one was
    damaged after it was written.
    """
    try:
        size = path.stat().st_size
        if size == 0:
            return "it is empty (0 bytes)"
        if not zipfile.is_zipfile(path):
            return f"its {size:,} bytes are not a .keras zip archive (damaged, truncated or another format)"
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                return "a zip archive without the config.json of a Keras model"
            broken = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        return f"it cannot be read as a zip archive ({getattr(error, 'strerror', None) or error}; damaged or truncated)"
    if broken is not None:
        return f"it is damaged (its member {broken} fails its checksum)"
    return None


def load_run_model(path):
    """Loads a trained keras-dae model: a `.keras` file or a run directory.

    Returns:
        `(model, info, run_config)`: the Keras model, `describe_model`'s facts
        (`arch`, `num_bins`, `hidden_size`, `num_params`) and the run's
        `config.json` beside the file (None if there is none).

    Raises:
        ValueError: no such file, an empty, truncated or damaged file (named
            as such, not as missing), not a Keras model file, or a Keras
            model that is not one of keras-dae's.
    """
    import keras

    from keras_dae.models import describe_model

    if Path(path).is_dir() and not model_file(path).is_file():
        raise ValueError(f"'{path}' is a directory without a {MODEL}; give a run directory or a .keras file.")
    path = model_file(path)
    if not path.is_file():
        raise ValueError(f"model '{path}' does not exist.")
    damage = _archive_damage(path)
    if damage:
        raise ValueError(f"'{path}' is not a Keras model file: {damage}; train the model again or give another.")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # Keras raises many kinds for a file that is not a model
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"'{path}' is not a Keras model file ({reason[:200]}).") from None
    try:
        info = describe_model(model)
    except ValueError as error:
        raise ValueError(f"'{path}': {error}") from None
    run_config = read_config(path.parent)
    _check_run_spectral(run_config, path.parent / CONFIG)
    return model, info, run_config


def _check_run_spectral(run_config, path):
    """ValueError naming `path` (a run's config.json) if its spectral settings are not valid ones.

    A plain `ValueError`: the settings come from a file, not from the caller
    (whose own values, combined with them, may raise `ParameterError`).
    """
    from keras_dae.spectral import SpectralConfig

    settings = (run_config or {}).get("spectral")
    if settings is None:
        return
    try:
        SpectralConfig.from_dict(settings)
    except (TypeError, ValueError) as error:
        raise ValueError(f"'{path}' holds invalid spectral settings ({error}); repair it or train again.") from None
