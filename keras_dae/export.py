"""SavedModel export for TensorFlow Serving: waveform in, stems out.

`export_model` writes TF Serving's layout `BASE/NAME/VERSION/` with Keras 3's
`ExportArchive`. Signatures (all with a `None` batch dimension):

    serving_default  inputs  `waveforms` float32 `(batch, samples)`: mono
                             waveforms at the model's sample rate
                     outputs `vocals`, `accompaniment`: float32, same shape
                             (STFT, model, mixture phase, inverse STFT and
                             accompaniment = mixture - vocals, in the graph)
    spectrogram      inputs  `magnitudes` float32 `(batch, frames, num_bins)`
                     outputs `vocals`: float32, same shape (the model per frame)

The version is written to a hidden temporary directory beside it
(`.<version>.tmp-<pid>-<random>`, see `keras_dae.atomic`) and renamed into
place when complete, so a server watching `BASE/NAME` never sees a
half-written version. An export holds the lock of `BASE/NAME`
(`keras_dae.locking`) from before it picks the version until the version is
in place, and first removes the temporaries of killed exports.
"""

import os
import re
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from keras_dae import spectral as front_end
from keras_dae.atomic import make_temporary_directory, remove_stale_temporaries
from keras_dae.checks import ParameterError, positive_int
from keras_dae.errors import cannot_write, writing
from keras_dae.locking import directory_lock
from keras_dae.separation.core import resolve
from keras_dae.separation.masks import apply_gain, subtract_gain

SIGNATURES = ("serving_default", "spectrogram")
_VERSION = re.compile(r"^[0-9]+$")


def next_version(directory):
    """One more than the highest numeric version under `directory` (1 if none)."""
    directory = Path(directory)
    versions = [int(p.name) for p in directory.iterdir() if p.is_dir() and _VERSION.match(p.name)] \
        if directory.is_dir() else []
    return max(versions, default=0) + 1


def separate_graph(model, waveforms, *, spectral):
    """Vocals and accompaniment of `(batch, samples)` mono waveforms, in TensorFlow ops only.

    `spectral` is the model's `SpectralConfig`.
    """
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    spectrum = front_end.stft(waveforms, spectral)  # (batch, frames, num_bins)
    magnitude = tf.abs(spectrum)
    flat = tf.reshape(magnitude, [-1, spectral.num_bins])
    gain = tf.reshape(subtract_gain(model(flat, training=False), flat), tf.shape(magnitude))
    vocals = front_end.istft(apply_gain(spectrum, gain), tf.shape(waveforms)[-1], spectral)
    return {"vocals": vocals, "accompaniment": waveforms - vocals}


def build_archive(model, *, spectral):
    """The `ExportArchive` with both signatures, `spectral` the model's `SpectralConfig`."""
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(waveforms):
        return separate_graph(model, waveforms, spectral=spectral)

    def magnitudes(magnitudes):
        flat = tf.reshape(magnitudes, [-1, spectral.num_bins])
        return {"vocals": tf.reshape(model(flat, training=False), tf.shape(magnitudes))}

    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveforms")])
    archive.add_endpoint("spectrogram", magnitudes,
                         input_signature=[tf.TensorSpec([None, None, spectral.num_bins], tf.float32,
                                                        name="magnitudes")])
    return archive


def _make_readable(root):
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *Path(root).rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def default_name(model_path):
    """TF Serving's model name for a run directory or `.keras` file: the run's directory name, made safe."""
    path = Path(model_path).resolve()
    name = path.name if path.is_dir() else path.parent.name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "keras_dae"


def export_model(model, base, *, spectral=None, name="keras_dae", version=None):
    """Writes the SavedModel of `model` to `base/name/version/` atomically; returns that path.

    Args:
        model: a keras-dae Keras model, a `.keras` file or a run directory.
        base: str or `Path`, TF Serving's model base path.
        spectral: `SpectralConfig` or None: the model's run's settings (see
            `keras_dae.separation.resolve`).
        name: str, default `"keras_dae"`. The model's directory under `base`.
        version: int or None. None: one more than the highest version there.

    Raises:
        ValueError: a bad model, name or version, or a version that already exists.
        OSError: `base/name` cannot be created, or the disk is full
            (one line naming it; nothing of the version is left behind).

    Example:

    >>> export_model("runs/sf", "serving", name="sf")
    PosixPath('serving/sf/1')
    """
    if not isinstance(name, str) or not name.strip() or "/" in name or "\0" in name or name.startswith("."):
        raise ParameterError(
            "name", f"`name` must be a plain directory name (not empty, no '/', not starting with '.'). "
                    f"Received: name={name!r}")
    positive_int("version", version, optional=True)
    model, spectral = resolve(model, spectral=spectral)
    directory = Path(base) / name
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"'{directory}' is a file; give another `base` or `name`.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(cannot_write(error, directory, parameter="base")) from None
    # One export into BASE/NAME at a time, from before the next version is chosen until it is in place.
    with directory_lock(directory, parameter="name"):
        remove_stale_temporaries(directory)  # `.<version>.tmp-<pid>-*` of a killed export
        # A full disk (`ResourceExhaustedError` from TensorFlow's writer, or OSError): one line naming it.
        with writing(directory, "export ", parameter="base"):
            return _write_version(model, spectral, directory, version)


def _write_version(model, spectral, directory, version):
    """`export_model` into `directory` (BASE/NAME), whose lock this process holds."""
    if version is None:
        version = next_version(directory)
    target = directory / str(version)
    if target.exists():
        raise ValueError(f"'{target}' already exists; pick another `version`, or none for the next one.")
    archive = build_archive(model, spectral=spectral)
    tmp = make_temporary_directory(directory, str(version))
    try:
        archive.write_out(str(tmp), verbose=False)
        _make_readable(tmp)  # mkdtemp makes it private; a server may run as another user
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
