"""Tests of keras_dae.data.readers.

The same file runs in two environments: the main venv (TensorFlow 2.21, no
working tensorflow-io: the reader falls back to soundfile) and `.venv-tfio`
(TensorFlow 2.16 with tensorflow-io 0.37.1: the reader runs in the graph).
`TFIO_STACK` says which one this is, and the tests assert accordingly.
"""

import importlib.util
import logging

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from keras_dae.data import readers

TFIO_STACK = (
    tf.__version__.startswith("2.16.") and importlib.util.find_spec("tensorflow_io") is not None
)
EXPECTED_BACKEND = "tensorflow-io" if TFIO_STACK else "soundfile"
needs_tfio = pytest.mark.skipif(not TFIO_STACK, reason="needs .venv-tfio (make test-tfio)")

RATE = 8000
NUM_SAMPLES = 1000
EXCERPT = 256
# start of the file, middle, running past the end, wholly past the end
STARTS = (0, 400, NUM_SAMPLES - 100, NUM_SAMPLES + 50)
# (subtype, extension, tolerance against soundfile)
FORMATS = {
    "wav-pcm16": ("PCM_16", "wav", 1 / 32768),
    "wav-float": ("FLOAT", "wav", 1e-6),
    "flac-pcm16": ("PCM_16", "flac", 1 / 32768),
}


@pytest.fixture(autouse=True)
def fresh_backend(monkeypatch):
    """Every test decides the backend anew, from its own environment."""
    monkeypatch.delenv(readers.BACKEND_ENV, raising=False)
    readers.backend.cache_clear()
    yield
    readers.backend.cache_clear()


def write_audio(path, channels, fmt, seed=0):
    subtype, _, _ = FORMATS[fmt]
    audio = np.random.default_rng(seed).uniform(-0.9, 0.9, (NUM_SAMPLES, channels))
    soundfile.write(str(path), audio.astype(np.float32), RATE, subtype=subtype)
    return str(path)


def audio_file(tmp_path, channels, fmt):
    _, extension, _ = FORMATS[fmt]
    return write_audio(tmp_path / f"{fmt}-{channels}ch.{extension}", channels, fmt)


def soundfile_excerpt(path, start):
    """What soundfile gives for the excerpt, zero-padded past the end."""
    audio, _ = soundfile.read(path, dtype="float32", always_2d=True)
    audio = np.concatenate([audio, np.zeros((start + EXCERPT, audio.shape[1]), np.float32)])
    return audio[start : start + EXCERPT]


def read_in_map(paths, starts, channels, num_samples=EXCERPT, num_parallel_calls=None):
    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(starts, tf.int64)))
    dataset = dataset.map(
        lambda path, start: readers.read_excerpt(path, start, num_samples, channels),
        num_parallel_calls=num_parallel_calls,
    )
    assert dataset.element_spec == tf.TensorSpec((num_samples, channels), tf.float32)
    return [excerpt.numpy() for excerpt in dataset]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_read_excerpt_in_dataset_map_matches_soundfile(tmp_path, fmt, channels):
    path = audio_file(tmp_path, channels, fmt)
    excerpts = read_in_map([path] * len(STARTS), STARTS, channels)
    for start, excerpt in zip(STARTS, excerpts):
        np.testing.assert_allclose(
            excerpt,
            soundfile_excerpt(path, start),
            rtol=0,
            atol=FORMATS[fmt][2],
            err_msg=f"start={start}",
        )
    past_end = NUM_SAMPLES - STARTS[2]
    assert np.any(excerpts[2][:past_end] != 0)
    assert np.all(excerpts[2][past_end:] == 0)
    assert np.all(excerpts[3] == 0)


def test_read_excerpt_parallel_map_keeps_files_apart(tmp_path):
    # tensorflow-io re-opens one shared resource per op: without the lock,
    # parallel calls read each other's files now and then.
    paths = []
    for index in range(24):
        path = str(tmp_path / f"constant-{index}.wav")
        soundfile.write(path, np.full((4000, 1), index / 32, np.float32), RATE, subtype="FLOAT")
        paths.append(path)
    for _ in range(5):
        excerpts = read_in_map(
            paths, [1000] * len(paths), 1, num_samples=2000, num_parallel_calls=8
        )
        assert [float(np.unique(excerpt)[0]) for excerpt in excerpts] == [i / 32 for i in range(24)]
        assert all(np.unique(excerpt).size == 1 for excerpt in excerpts)


def test_read_excerpt_eager_with_python_arguments(tmp_path):
    path = audio_file(tmp_path, 2, "wav-float")
    excerpt = readers.read_excerpt(path, 10, EXCERPT, 2)
    np.testing.assert_allclose(excerpt.numpy(), soundfile_excerpt(path, 10), rtol=0, atol=1e-6)


def test_read_excerpt_rejects_wrong_channels_negative_start_and_missing_file(tmp_path):
    path = audio_file(tmp_path, 2, "wav-pcm16")
    with pytest.raises(tf.errors.InvalidArgumentError, match="channels"):
        read_in_map([path], [0], channels=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="start must be >= 0"):
        read_in_map([path], [-5], channels=2)
    with pytest.raises(tf.errors.OpError, match="missing.wav"):
        read_in_map([str(tmp_path / "missing.wav")], [0], channels=2)


@pytest.mark.parametrize("name, value", [("num_samples", 0), ("channels", 1.0)])
def test_read_excerpt_validates_static_arguments(name, value):
    arguments = {"num_samples": EXCERPT, "channels": 2, name: value}
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        readers.read_excerpt("x.wav", 0, **arguments)


@pytest.mark.parametrize("channels", [1, 2])
def test_audio_info(tmp_path, channels):
    path = audio_file(tmp_path, channels, "flac-pcm16")
    assert readers.audio_info(path) == (NUM_SAMPLES, channels, RATE)


def test_audio_info_names_the_unreadable_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    with pytest.raises(ValueError, match="notes.wav"):
        readers.audio_info(path)
    with pytest.raises(ValueError, match="missing.flac"):
        readers.audio_info(tmp_path / "missing.flac")


def test_backend_fits_the_stack(caplog):
    with caplog.at_level(logging.INFO, logger=readers.__name__):
        assert readers.backend() == EXPECTED_BACKEND
    (record,) = [r for r in caplog.records if r.name == readers.__name__]
    assert record.getMessage().startswith(f"audio backend: {EXPECTED_BACKEND}")
    if not TFIO_STACK:
        assert "tensorflow-io not used: " in record.getMessage()


def test_backend_is_decided_once(monkeypatch):
    assert readers.backend() == EXPECTED_BACKEND
    monkeypatch.setenv(readers.BACKEND_ENV, "soundfile")
    assert readers.backend() == EXPECTED_BACKEND
    readers.backend.cache_clear()
    assert readers.backend() == "soundfile"


def test_forcing_soundfile(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(readers.BACKEND_ENV, "soundfile")
    with caplog.at_level(logging.INFO, logger=readers.__name__):
        assert readers.backend() == "soundfile"
    assert f"forced by {readers.BACKEND_ENV}" in caplog.text
    path = audio_file(tmp_path, 2, "wav-pcm16")
    (excerpt,) = read_in_map([path], [900], 2)
    np.testing.assert_array_equal(excerpt, soundfile_excerpt(path, 900))


def test_forcing_tensorflow_io(monkeypatch):
    monkeypatch.setenv(readers.BACKEND_ENV, "tensorflow-io")
    if TFIO_STACK:
        assert readers.backend() == "tensorflow-io"
    else:
        message = "KERAS_DAE_AUDIO_BACKEND=tensorflow-io, but tensorflow-io cannot be used: "
        with pytest.raises(RuntimeError, match=message + r"\S"):
            readers.backend()


def test_unknown_backend_is_an_error(monkeypatch):
    monkeypatch.setenv(readers.BACKEND_ENV, "ffmpeg")
    with pytest.raises(ValueError, match="Received: KERAS_DAE_AUDIO_BACKEND='ffmpeg'"):
        readers.backend()


@needs_tfio
def test_tensorflow_io_reads_in_the_graph():
    reader = tf.function(lambda path, start: readers.read_excerpt(path, start, EXCERPT, 2))
    graph_def = reader.get_concrete_function(
        tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.int64)
    ).graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    assert "IO>AudioReadableRead" in ops
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}


@needs_tfio
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_both_backends_agree(tmp_path, monkeypatch, fmt, channels):
    path = audio_file(tmp_path, channels, fmt)
    results = {}
    for backend in readers.BACKENDS:
        monkeypatch.setenv(readers.BACKEND_ENV, backend)
        readers.backend.cache_clear()
        results[backend] = read_in_map([path] * len(STARTS), STARTS, channels)
    for start, tfio, sf in zip(STARTS, results["tensorflow-io"], results["soundfile"]):
        np.testing.assert_allclose(tfio, sf, rtol=0, atol=FORMATS[fmt][2], err_msg=f"start={start}")
