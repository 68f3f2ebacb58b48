"""What `keras-dae info` reports: versions, audio backend, ffmpeg, devices."""

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

PACKAGES = (
    "keras-dae", "tensorflow", "keras", "numpy", "librosa", "musdb", "museval",
    "stempeg", "soundfile", "matplotlib", "click", "tensorflow-io",
)


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _ffmpeg(binary):
    path = shutil.which(binary)
    if path is None:
        return "not found on PATH (musdb's .stem.mp4 reading needs it)"
    try:
        first = subprocess.run(
            [path, "-version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError) as error:
        return f"{path} (does not run: {error})"
    version = first[0].split(" Copyright")[0] if first else "unknown version"
    return f"{path} ({version})"


def environment():
    """The environment keras-dae runs in, as `(name, value)` pairs of strings.

    Imports TensorFlow, and probes tensorflow-io once to choose the audio
    backend (see `keras_dae.data.readers.backend`).
    """
    import tensorflow as tf

    from keras_dae.data import readers

    rows = [("python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", platform.platform())]
    rows += [(package, _version(package)) for package in PACKAGES]
    backend = readers.backend()
    if os.environ.get(readers.BACKEND_ENV):
        reason = f"forced by {readers.BACKEND_ENV}"
    elif backend == "tensorflow-io":
        reason = "its audio ops load and read correctly"
    else:
        reason = f"tensorflow-io not used: {readers.tfio_problem()}"
    rows.append(("audio backend", f"{backend} ({reason})"))
    rows += [(binary, _ffmpeg(binary)) for binary in ("ffmpeg", "ffprobe")]
    devices = tf.config.list_physical_devices()
    rows.append(("devices", ", ".join(device.name.replace("/physical_device:", "") for device in devices)))
    return rows
