"""Reading excerpts of audio files inside `tf.data` pipelines.

`read_excerpt` returns `num_samples` samples of a file from a sample offset,
as TensorFlow ops, so that a `tf.data.Dataset.map` can call it on a file name
and an offset that are tensors. Two backends do the reading:

- `"tensorflow-io"`: the `IO>AudioReadable*` ops of tensorflow-io (the ops
  behind `tfio.audio.AudioIOTensor`). They run in the graph and read only the
  requested slice (WAV: the slice's bytes; FLAC: a seek, then the frames that
  hold the slice). tensorflow-io's last release (0.37.1) only loads on
  TensorFlow 2.16 (`pip install 'keras-dae[tfio]'`).
- `"soundfile"`: `soundfile.read(start=..., frames=...)` inside
  `tf.numpy_function`, which also reads only the slice but runs Python (and
  holds the GIL) for every excerpt.

`backend()` picks tensorflow-io when its ops load and read a test file
correctly, soundfile otherwise; `KERAS_DAE_AUDIO_BACKEND=soundfile` or
`=tensorflow-io` forces the choice. Both give the samples soundfile gives:
float32, integer PCM scaled by `1 / 2**(bits - 1)` to `[-1, 1)`.

Supported files: WAV (16- or 24-bit PCM, 32-bit float) and FLAC (16- or
24-bit). tensorflow-io takes any 32-bit WAV for float, so it misreads 32-bit
integer PCM WAV; soundfile reads that too.
"""

import functools
import logging
import os
import tempfile
import warnings

import numpy as np
import soundfile
import tensorflow as tf

from keras_dae.checks import positive_int

logger = logging.getLogger(__name__)

BACKEND_ENV = "KERAS_DAE_AUDIO_BACKEND"
BACKENDS = ("tensorflow-io", "soundfile")

# tensorflow-io returns samples in the file's own type: 16-bit PCM as int16,
# 24-bit PCM shifted into the top of an int32, 32-bit float as float32.
_TFIO_SCALES = {tf.int16: 2.0**15, tf.int32: 2.0**31, tf.float32: 1.0}


def _one_line(error):
    """`Type: last line of the message`, for a log line or an error message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


@functools.cache
def _tfio_lock():
    # tensorflow-io's init op keeps a single resource per op and re-opens it
    # with each file, so parallel calls of the same `map` function would read
    # each other's files. The critical section makes open-then-read atomic.
    # `init_scope` creates it eagerly even when first asked for while tracing.
    with tf.init_scope():
        return tf.CriticalSection(name="keras_dae_tfio_audio")


def _read_tfio(path, start, num_samples):
    """The samples `[start, start + num_samples)` that exist, `(n, channels)` float32."""
    from keras_dae.compat import tfio_core_ops

    core_ops = tfio_core_ops()

    def read():
        resource = core_ops.io_audio_readable_init(path)
        shape, dtype, _ = core_ops.io_audio_readable_spec(resource)
        stop = start + num_samples

        def past_end():
            # Nothing to read; the FLAC reader would fail seeking to the end.
            return tf.zeros(tf.stack([0, tf.cast(shape[1], tf.int32)]), tf.float32)

        def branch(sample_type, scale):
            def fn():
                audio = core_ops.io_audio_readable_read(resource, start, stop, dtype=sample_type)
                return tf.cast(audio, tf.float32) / scale

            return tf.equal(dtype, sample_type.as_datatype_enum), fn

        def unsupported():
            check = tf.debugging.Assert(
                False, ["unsupported sample type", dtype, "in audio file", path]
            )
            with tf.control_dependencies([check]):
                return tf.zeros([0, 0], tf.float32)

        # Not exclusive: the first true condition wins.
        return tf.case(
            [(start >= shape[0], past_end)]
            + [branch(sample_type, scale) for sample_type, scale in _TFIO_SCALES.items()],
            default=unsupported,
        )

    return _tfio_lock().execute(read)


def tfio_problem():
    """Why tensorflow-io cannot read audio here (one line), or `None` if it can."""
    try:
        # On a TensorFlow it was not built for, tensorflow-io warns that its
        # file system plugins do not load; the test read below says it better.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow_io  # noqa: F401
    except Exception as error:  # a broken install can fail in many ways
        return f"cannot import tensorflow_io ({_one_line(error)})"
    expected = np.array([[0, 1], [-32768, 32767], [1234, -1234]], np.int16)
    try:
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "probe.wav")
            soundfile.write(path, expected, 8000, subtype="PCM_16")
            with tf.init_scope():
                audio = _read_tfio(
                    tf.constant(path), tf.constant(0, tf.int64), len(expected)
                ).numpy()
    except Exception as error:  # NotImplementedError (ops not loaded), tf.errors.*, ...
        return (
            f"its audio ops do not work with TensorFlow {tf.__version__} "
            f"({_one_line(error)}); tensorflow-io 0.37.1 needs TensorFlow 2.16, "
            "see the `tfio` extra"
        )
    if not np.array_equal(audio, expected / 2.0**15):
        return f"its test read gave {audio.tolist()}, not {(expected / 2.0**15).tolist()}"
    return None


@functools.cache
def backend():
    """The backend `read_excerpt` uses: `"tensorflow-io"` or `"soundfile"`.

    Decided once per process (call `backend.cache_clear()` to decide again):
    the value of `KERAS_DAE_AUDIO_BACKEND` if set, else tensorflow-io if it
    imports and reads a small test WAV correctly, else soundfile. Logs the
    choice, and why tensorflow-io was not used, at INFO level.

    Returns:
        str, one of `BACKENDS`.

    Raises:
        ValueError: if `KERAS_DAE_AUDIO_BACKEND` is set to anything else.
        RuntimeError: if `KERAS_DAE_AUDIO_BACKEND=tensorflow-io` but
            tensorflow-io cannot read audio here; the message says why.
    """
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced and forced not in BACKENDS:
        raise ValueError(
            f"{BACKEND_ENV} must be one of {list(BACKENDS)}. Received: {BACKEND_ENV}={forced!r}"
        )
    if forced == "soundfile":
        logger.info("audio backend: soundfile (forced by %s)", BACKEND_ENV)
        return "soundfile"
    problem = tfio_problem()
    if problem is None:
        how = f"forced by {BACKEND_ENV}" if forced else "its ops load"
        logger.info("audio backend: tensorflow-io (%s)", how)
        return "tensorflow-io"
    if forced:
        raise RuntimeError(
            f"{BACKEND_ENV}=tensorflow-io, but tensorflow-io cannot be used: {problem}"
        )
    logger.info("audio backend: soundfile (tensorflow-io not used: %s)", problem)
    return "soundfile"


def _read_soundfile(path, start, num_samples):
    """Like `_read_tfio`, through `tf.numpy_function`; already `num_samples` long."""

    def read(path, start):
        path = np.asarray(path).item().decode()
        try:
            audio, _ = soundfile.read(
                path,
                start=int(start),
                frames=num_samples,
                dtype="float32",
                always_2d=True,
                fill_value=0.0,
            )
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
            raise ValueError(f"cannot read audio file '{path}': {error}") from None
        return audio

    return tf.numpy_function(read, [path, start], tf.float32, name="soundfile_read")


def read_excerpt(path, start, num_samples, channels):
    """Reads `num_samples` samples of an audio file, from a sample offset.

    Graph-compatible: call it in `tf.data.Dataset.map` with `path` and
    `start` coming from the dataset. Samples past the end of the file are
    zeros. Uses the backend that `backend()` chooses.

    Args:
        path: scalar string tensor (or str), a WAV or FLAC file.
        start: scalar integer tensor (or int), the first sample to read, `>= 0`.
        num_samples: int, number of samples to return.
        channels: int, the file's number of channels.

    Returns:
        float32 tensor `(num_samples, channels)`, in `[-1, 1)` for PCM files.

    Raises:
        ValueError: if `num_samples` or `channels` is not a positive int.
        tf.errors.InvalidArgumentError: when run, if `start` is negative, the
            file has another number of channels, or the file cannot be read
            (tensorflow-io reports a missing file as `tf.errors.NotFoundError`).

    Example:

    >>> dataset = tf.data.Dataset.from_tensor_slices((paths, starts))
    >>> dataset = dataset.map(
    ...     lambda path, start: read_excerpt(path, start, 44100, 2),
    ...     num_parallel_calls=tf.data.AUTOTUNE,
    ... )
    """
    positive_int("num_samples", num_samples)
    positive_int("channels", channels)
    num_samples, channels = int(num_samples), int(channels)
    path = tf.convert_to_tensor(path, tf.string)
    start = tf.cast(start, tf.int64)
    # soundfile would count a negative start from the end of the file.
    with tf.control_dependencies(
        [tf.debugging.assert_non_negative(start, message="read_excerpt: start must be >= 0")]
    ):
        start = tf.identity(start)
    if backend() == "tensorflow-io":
        audio = _read_tfio(path, start, num_samples)
        audio = tf.pad(audio, [[0, num_samples - tf.shape(audio)[0]], [0, 0]])
    else:
        audio = _read_soundfile(path, start, num_samples)
    check = tf.debugging.Assert(
        tf.equal(tf.shape(audio)[1], channels),
        ["audio file", path, "has", tf.shape(audio)[1], "channels, expected", channels],
    )
    with tf.control_dependencies([check]):
        audio = tf.identity(audio)
    return tf.ensure_shape(audio, (num_samples, channels))


def audio_info(path):
    """Length, channels and sample rate of an audio file, read from its header.

    Args:
        path: str or `Path`.

    Returns:
        tuple of ints `(num_samples, channels, rate)`.

    Raises:
        ValueError: if the file cannot be opened as audio.
    """
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"cannot read audio file '{path}': {error}") from None
    return int(info.frames), int(info.channels), int(info.samplerate)
