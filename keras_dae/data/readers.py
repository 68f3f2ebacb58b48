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

Non-finite samples: integer PCM (every FLAC, and MUSDB18-HQ's WAVs) cannot
hold NaN or Inf, but a float WAV can, and one NaN turns a whole training
run's loss into NaN. Every excerpt read here is checked as it is read (both
backends; `check_finite`), and a non-finite sample raises an error naming
the file and the sample, so the check costs no extra pass over the data.
Listing tracks (`keras_dae.data.tracks.list_tracks`) reads headers only and
does not look at samples. Inside a `tf.data` pipeline the error arrives as a
`tf.errors.OpError`; `data_error` recovers its one-line message.
"""

import functools
import gc
import logging
import os
import re
import tempfile
import traceback
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


NON_FINITE = "holds non-finite samples (NaN or Inf)"
FINITE_ONLY = "keras-dae trains and evaluates on finite audio only: repair or remove the file."


def check_finite(audio, path, start=0, stream=None):
    """`audio` (samples first) if every sample is finite; a ValueError naming `path` otherwise.

    Args:
        audio: array `(samples[, channels])` read from `path`.
        path: the file, named in the message.
        start: int, the file's sample at which `audio` begins (the message
            gives the first bad sample's position in the file).
        stream: str or None, the stream of a multi-stream file (e.g. `"vocals"`).
    """
    finite = np.isfinite(audio)
    if finite.all():
        return audio
    bad = ~finite if finite.ndim == 1 else ~finite.reshape(len(finite), -1).all(axis=1)
    where = f" ({stream} stream)" if stream else ""
    raise ValueError(
        f"audio file '{path}'{where} {NON_FINITE}, the first at sample {int(start) + int(np.argmax(bad))}; "
        + FINITE_ONLY
    )


_RAISED = re.compile(r"^ValueError: (.+)$")  # what the readers raise in `tf.numpy_function`


def data_error(error):
    """The one-line message of a reader's error raised inside `tf.data`, or None.

    A `ValueError` raised in a `tf.numpy_function` (the soundfile backend,
    `.stem.mp4` reading) and a failed `tf.debugging.Assert` naming an audio
    file (tensorflow-io) reach the caller as a `tf.errors.OpError` whose
    message holds a traceback; this picks out the original line.
    """
    lines = [line.strip() for line in str(getattr(error, "message", None) or error).splitlines()]
    for line in reversed(lines):
        match = _RAISED.match(line)
        if match and "'" in match.group(1):  # the readers' messages name a file in quotes
            return match.group(1)
    for line in lines:
        if "assertion failed:" in line and "audio file" in line:
            # tf.debugging.Assert's data, each in brackets: [audio file] [PATH] [what].
            parts = [part.strip() for part in re.findall(r"\[([^\]]*)\]", line.split("assertion failed:", 1)[1])]
            if len(parts) == 3 and parts[0] == "audio file":
                advice = f"; {FINITE_ONLY}" if parts[2] == NON_FINITE else ""
                return f"audio file '{parts[1]}' {parts[2]}{advice}"
            return " ".join(parts)
    return None


def _released(error):
    """`data_error(error)` after dropping what the error's traceback holds of the failed pipeline.

    Its iterator is held by the traceback's frames and reference cycles. Left
    to the interpreter's exit, destroying it waits for map calls into Python
    that can no longer run, and the process hangs after printing the error;
    released here (and collected by the caller), it is destroyed while
    Python still runs.
    """
    message = data_error(error)
    if message is not None:
        logger.debug("the data pipeline failed: %s", error)
        traceback.clear_frames(error.__traceback__)
    return message


def call_reading(function, *args, **kwargs):
    """`function(*args, **kwargs)` (which consumes a `tf.data` pipeline that reads audio, e.g.
    `model.fit`), with a reader's error in it (a NaN sample, an unreadable file) raised as its
    one-line `ValueError` (`data_error`); other errors go on unchanged."""
    try:
        return function(*args, **kwargs)
    except tf.errors.OpError as error:
        message = _released(error)
        if message is None:
            raise
    gc.collect()
    raise ValueError(message)  # outside the except block: no reference to the OpError


def iterate_reading(iterable):
    """Yields from `iterable` (a `tf.data` pipeline that reads audio) as `call_reading` calls."""
    iterator = iter(iterable)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            message = _released(error)
            if message is None:
                raise
            break
        yield item
    del iterator
    gc.collect()
    raise ValueError(message)


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
        return check_finite(audio, path, start)

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
            file has another number of channels, the excerpt holds a NaN or
            Inf sample (`data_error` gives the message), or the file cannot be read
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
        # The soundfile backend checks in `check_finite`; here a graph assertion (see `data_error`).
        finite = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(audio)), ["audio file", path, NON_FINITE])
        with tf.control_dependencies([finite]):
            audio = tf.identity(audio)
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
