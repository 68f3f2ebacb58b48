"""Hardening: no exit 0 with a wrong or missing result, file names that look like options, and
non-finite or extreme audio in `separate`.

Every CLI error test checks the convention: a non-zero exit, one line on stderr, no traceback.
"""

import json
import logging
import math
import os

import numpy as np
import pytest
import soundfile

from keras_dae import audiofile
from keras_dae.separation import separate
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)  # `model`, `saved_model` (conftest.py): an untrained sf over these bins
RATE = 44100


def _one_line_error(code, err):
    assert code not in (0, None), err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _noise(samples=RATE, channels=2, seed=0, level=0.3):
    return (level * np.random.default_rng(seed).standard_normal((samples, channels))).astype(np.float32)


@pytest.fixture(scope="module")
def nan_root(tmp_path_factory):
    """A MUSDB18-HQ tree of two 1-second tracks; the first one's vocals.wav (float) is all NaN."""
    from keras_dae.data.synthetic import write_synthetic_musdb

    root = tmp_path_factory.mktemp("nan-musdb")
    write_synthetic_musdb(root, num_tracks=2, seconds=1.0, seed=5)
    path = root / "train" / "synthetic-000" / "vocals.wav"
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    audio[:] = np.nan
    soundfile.write(path, audio, rate, subtype="FLOAT")
    return root


# -- 2. exit 0 with a wrong or missing result ---------------------------------


@pytest.mark.parametrize("value", [math.inf, math.nan, -math.inf])
def test_train_rejects_a_non_finite_learning_rate_up_front(tmp_path, value):
    from keras_dae.training import train

    with pytest.raises(ValueError, match="learning_rate must be positive and finite"):
        train("sf", tmp_path / "run", learning_rate=value, epochs=1)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_cli_train_rejects_a_non_finite_learning_rate(run_cli, tmp_path, value):
    code, out, err = run_cli("train", "--out", tmp_path / "run", "--learning-rate", value, "--epochs", "1",
                             "--num-bins", "64")
    line = _one_line_error(code, err)
    assert ("--learning-rate" in line or "learning_rate" in line) and "finite" in line
    assert "run directory" not in out
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.mark.slow
def test_a_run_that_ends_in_nan_raises_and_the_cli_exits_non_zero(run_cli, tmp_path):
    """A learning rate of 1e30 overflows the weights in the first epoch: `train` raises, config.json says
    "nan", no model.keras is written, and the command line never claims one."""
    from keras_dae.training import train

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match=r"stopped on a NaN loss in epoch 1 and no model was saved; "
                                           r"check the data for non-finite samples or lower `learning_rate`"):
        train("sf", run, spectral=CONFIG, learning_rate=1e30, epochs=2, steps_per_epoch=2, verbose=0)
    assert json.loads((run / "config.json").read_text())["status"] == "nan"
    assert not (run / "model.keras").exists()

    code, out, err = run_cli("train", "--out", run, "--learning-rate", "1e30", "--epochs", "2",
                             "--steps-per-epoch", "2", "--num-bins", "64", "--overwrite")
    line = _one_line_error(code, err)
    assert "NaN loss" in line and "--learning-rate" in line and "--overwrite" in line
    assert "model.keras" not in out and "run directory" not in out
    assert not (run / "model.keras").exists()


def test_the_nan_message_says_what_model_keras_holds(tmp_path):
    from keras_dae.training import _nan_message

    record = {"monitor": "val_loss", "best": {"val_loss": 0.5, "epoch": 3}}
    assert "no model was saved" in _nan_message(tmp_path, 5, record, chief=True)
    (tmp_path / "model.keras").write_bytes(b"")
    message = _nan_message(tmp_path, 5, record, chief=True)
    assert "in epoch 5 (model.keras holds the model of epoch 3, from before it)" in message
    assert "overwrite=True" in message


def test_best_model_skips_an_epoch_whose_training_loss_is_nan(tmp_path):
    from keras_dae.training import BestModel

    callback = BestModel(tmp_path / "model.keras", "val_loss")
    callback.on_epoch_end(0, {"loss": math.nan, "val_loss": 1.0})
    assert callback.best == math.inf and not (tmp_path / "model.keras").exists()


def test_listing_reads_headers_and_reading_names_the_non_finite_file(nan_root):
    """`list_tracks` does not read samples (a pass over MUSDB before every run); `read_track` checks what
    it reads and names the file and the first bad sample."""
    from keras_dae.data.tracks import list_tracks, read_track

    tracks = list_tracks(nan_root, is_wav=True)
    assert [track.name for track in tracks] == ["synthetic-000", "synthetic-001"]
    read_track(tracks[1])  # finite
    bad = str(nan_root / "train" / "synthetic-000" / "vocals.wav")
    with pytest.raises(ValueError, match=rf"^audio file '{bad}' holds non-finite samples \(NaN or Inf\), "
                                         r"the first at sample 100;"):
        read_track(tracks[0], start=100, num_samples=50)


def test_check_finite_names_the_stream_and_the_first_bad_sample():
    from keras_dae.data.readers import check_finite

    audio = np.zeros((10, 2), np.float32)
    check_finite(audio, "a.wav")
    audio[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"^audio file 'x.stem.mp4' \(vocals stream\) holds non-finite samples "
                                         r"\(NaN or Inf\), the first at sample 1007;"):
        check_finite(audio, "x.stem.mp4", start=1000, stream="vocals")


def test_the_pipeline_reader_raises_a_message_that_data_error_recovers(nan_root):
    import tensorflow as tf

    from keras_dae.data.readers import call_reading, data_error, iterate_reading, read_excerpt

    path = str(nan_root / "train" / "synthetic-000" / "vocals.wav")
    dataset = tf.data.Dataset.from_tensor_slices([path]).map(lambda p: read_excerpt(p, 0, 100, 2))
    with pytest.raises(tf.errors.OpError) as caught:
        list(dataset)
    assert data_error(caught.value).startswith(f"audio file '{path}' holds non-finite samples")
    with pytest.raises(ValueError, match="holds non-finite samples"):
        list(iterate_reading(dataset))
    with pytest.raises(ValueError, match="holds non-finite samples"):
        call_reading(list, dataset)
    assert data_error(ValueError("something else")) is None


def test_data_error_reads_the_graph_assertion_of_the_tensorflow_io_backend():
    """tensorflow-io reads in the graph, where the check is a `tf.debugging.Assert` with the same data
    as `read_excerpt`'s (that backend itself needs .venv-tfio)."""
    import tensorflow as tf

    from keras_dae.data.readers import NON_FINITE, data_error

    @tf.autograph.experimental.do_not_convert
    def read(path):
        audio = tf.constant([[np.nan, 0.0]])
        check = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(audio)), ["audio file", path, NON_FINITE])
        with tf.control_dependencies([check]):
            return tf.identity(audio)

    with pytest.raises(tf.errors.OpError) as caught:
        list(tf.data.Dataset.from_tensor_slices(["/data/-a b.wav"]).map(read))
    assert data_error(caught.value) == ("audio file '/data/-a b.wav' holds non-finite samples (NaN or Inf); "
                                        "keras-dae trains and evaluates on finite audio only: repair or remove "
                                        "the file.")


def test_prepare_stops_on_a_non_finite_stem_naming_it(nan_root, tmp_path):
    from keras_dae.data.prepare import prepare_dataset
    from keras_dae.data.tracks import list_tracks

    tracks = list_tracks(nan_root, is_wav=True)
    with pytest.raises(ValueError, match=r"^audio file '.*synthetic-000/vocals.wav' holds non-finite samples"):
        prepare_dataset(tracks, tmp_path / "cache", spectral=CONFIG)


@pytest.mark.slow
def test_cli_train_on_a_non_finite_stem_names_the_file(run_cli, nan_root, tmp_path):
    code, out, err = run_cli("train", "--out", tmp_path / "run", "--root", nan_root, "--is-wav", "--epochs", "2",
                             "--steps-per-epoch", "2", "--num-bins", "64")
    line = _one_line_error(code, err)
    assert "synthetic-000/vocals.wav' holds non-finite samples (NaN or Inf)" in line
    assert "run directory" not in out and not (tmp_path / "run" / "model.keras").exists()


@pytest.mark.slow
def test_cli_train_on_a_non_finite_stem_exits_in_a_fresh_process(run_cli, nan_root, tmp_path):
    """The failed pipeline's iterator is released before the interpreter exits: destroyed at exit, it
    waited for map calls into Python that could no longer run, and the process hung after the error."""
    code, out, err = run_cli("train", "--out", tmp_path / "run", "--root", nan_root, "--is-wav", "--epochs", "2",
                             "--steps-per-epoch", "2", "--num-bins", "64", process=True, timeout=180)
    assert "holds non-finite samples" in _one_line_error(code, err)


# -- 5. file names reaching ffmpeg and ffprobe --------------------------------


def test_tool_url_is_an_absolute_file_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert audiofile.tool_url("-i.wav") == f"file:{tmp_path}/-i.wav"
    assert audiofile.tool_url("-") == f"file:{tmp_path}/-"
    assert audiofile.tool_url("concat:a.wav|b.wav") == f"file:{tmp_path}/concat:a.wav|b.wav"


@pytest.fixture
def dash_files(tmp_path, monkeypatch):
    """Real audio files whose names begin with `-`, in the working directory: `-i.wav` (float),
    `-y.mp3`, `--help.flac`; the names as relative paths."""
    import subprocess

    monkeypatch.chdir(tmp_path)
    audio = _noise(RATE // 2)
    soundfile.write("-i.wav", audio, RATE, subtype="FLOAT")
    soundfile.write("--help.flac", audio.clip(-1, 1), RATE)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", "file:-i.wav", "file:-y.mp3"], check=True)
    return ["-i.wav", "-y.mp3", "--help.flac"]


def test_audiofile_reads_names_that_look_like_options(dash_files):
    for name in dash_files:
        audio, rate = audiofile.read_audio(name)
        assert rate == RATE and audio.shape[1] == 2 and len(audio) >= RATE // 2


def test_cli_separate_and_spectrogram_take_names_that_look_like_options(run_cli, saved_model, dash_files):
    code, out, err = run_cli("separate", "--model", saved_model, "--out", "sep", "--", *dash_files)
    assert code == 0, err
    for name in ("-i", "-y", "--help"):
        for stem in ("vocals", "accompaniment"):
            assert os.path.isfile(os.path.join("sep", name, f"{stem}.wav"))
    code, out, err = run_cli("spectrogram", "--out", "-spec.png", "--", "-i.wav")
    assert code == 0, err
    assert os.path.isfile("-spec.png")


@pytest.mark.slow
def test_stems_prepare_and_evaluate_under_names_that_look_like_options(run_cli, saved_model, tmp_path, monkeypatch):
    """A relative root `-stems` holding `-track.stem.mp4`: stempeg puts paths last on ffprobe's and
    ffmpeg's command lines, so keras-dae hands it absolute paths."""
    from keras_dae.data.synthetic import convert_to_stems, write_synthetic_musdb

    monkeypatch.chdir(tmp_path)
    write_synthetic_musdb("-wavs", num_tracks=1, seconds=1.0, seed=3, subset="test")
    os.rename("-wavs/test/synthetic-000", "-wavs/test/-track")
    assert [str(p) for p in convert_to_stems("-wavs", "-stems", subsets=("test",))] == ["-stems/test/-track.stem.mp4"]
    code, out, err = run_cli("prepare", "--root=-stems", "--subset", "test", "--out", "-cache", "--num-bins", "64")
    assert code == 0, err
    code, out, err = run_cli("evaluate", "--model", saved_model, "--root=-stems", "--out", "-eval",
                             "--no-references")
    assert code == 0, err
    assert "| model | vocals | median |" in out


# -- 6. non-finite and extreme audio in separate ------------------------------


def test_separate_repairs_nan_and_inf_as_silence_with_a_warning(model, caplog):
    audio = _noise(RATE)
    audio[1000:1010] = np.nan
    audio[5000, 0] = np.inf
    audio[6000, 1] = -np.inf
    bad = ~np.isfinite(audio)
    with caplog.at_level(logging.WARNING, logger="keras_dae"):
        stems = separate(model, audio, RATE, spectral=CONFIG)
    assert "audio holds 22 non-finite samples (NaN or Inf) of 88200" in caplog.text
    vocals, accompaniment = stems["vocals"], stems["accompaniment"]
    assert np.isfinite(vocals).all() and np.isfinite(accompaniment).all()
    assert not vocals[bad].any() and not accompaniment[bad].any()
    np.testing.assert_allclose((vocals + accompaniment)[~bad], audio[~bad], atol=1e-6)
    # The finite samples far from the repaired ones are separated as if those had been silence.
    clean = separate(model, np.where(bad, 0, audio), RATE, spectral=CONFIG)["vocals"]
    np.testing.assert_allclose(vocals[~bad], clean[~bad], atol=1e-6)


def test_separate_of_nothing_but_nan_gives_silence(model):
    stems = separate(model, np.full(4000, np.nan, np.float32), 22050, spectral=CONFIG)
    assert not stems["vocals"].any() and not stems["accompaniment"].any()


def test_separate_scales_an_input_above_full_scale(model):
    """Divided by a power of two, separated, the vocals multiplied back: exactly the separation of the
    input at full scale, times that power of two; vocals + accompaniment = input to float32 rounding."""
    audio = _noise(RATE)
    audio *= np.float32(0.75 / np.abs(audio).max())  # within full scale: separated as it is
    loud = audio * np.float32(2.0**14)  # peak 12288, divided by 2**14 for the model: `audio` exactly
    quiet = separate(model, audio, RATE, spectral=CONFIG)
    stems = separate(model, loud, RATE, spectral=CONFIG)
    np.testing.assert_array_equal(stems["vocals"], quiet["vocals"] * np.float32(2.0**14))
    peak = np.abs(loud).max()
    assert np.abs(stems["vocals"]).max() < 2 * peak
    assert np.abs(stems["vocals"] + stems["accompaniment"] - loud).max() <= 1e-6 * peak


def test_separate_blocks_checks_the_scale(model):
    from keras_dae.separation.core import input_scale, separate_blocks

    assert input_scale(0.0) == input_scale(1.0) == input_scale(math.nan) == 1.0
    assert input_scale(1.5) == 2.0 and input_scale(1e4) == 16384.0 and input_scale(3e38) == 2.0**128
    with pytest.raises(ValueError, match="scale must be positive and finite"):
        list(separate_blocks(model, lambda a, b: np.zeros((b - a, 1), np.float32), 10, 1, spectral=CONFIG,
                             scale=math.inf))


def _read(path):
    return soundfile.read(str(path), dtype="float32", always_2d=True)[0]


def test_cli_separate_repairs_a_float_wav_with_nan_and_inf(run_cli, saved_model, tmp_path):
    audio = _noise(RATE // 2)
    audio[100:110, 0] = np.nan
    audio[2000] = np.inf
    bad = ~np.isfinite(audio)
    soundfile.write(tmp_path / "damaged.wav", audio, RATE, subtype="FLOAT")
    code, out, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "sep",
                             tmp_path / "damaged.wav")
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.strip()]
    assert len(warning) == 1 and "damaged.wav' holds 12 non-finite samples (NaN or Inf) of 44100" in warning[0]
    vocals = _read(tmp_path / "sep/damaged/vocals.wav")
    accompaniment = _read(tmp_path / "sep/damaged/accompaniment.wav")
    assert np.isfinite(vocals).all() and np.isfinite(accompaniment).all()
    assert not vocals[bad].any() and not accompaniment[bad].any()
    np.testing.assert_allclose((vocals + accompaniment)[~bad], audio[~bad], atol=1e-6)


@pytest.mark.parametrize("rate", [RATE, 22050])
def test_cli_separate_keeps_a_peak_1e4_float_wav_at_its_level(run_cli, saved_model, tmp_path, rate):
    audio = _noise(rate // 2)
    audio *= np.float32(1e4 / np.abs(audio).max())
    soundfile.write(tmp_path / "loud.wav", audio, rate, subtype="FLOAT")
    code, out, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "sep", tmp_path / "loud.wav")
    assert code == 0, err
    vocals, accompaniment = _read(tmp_path / "sep/loud/vocals.wav"), _read(tmp_path / "sep/loud/accompaniment.wav")
    assert np.abs(vocals).max() < 2e4
    assert np.abs(vocals + accompaniment - audio).max() <= 1e-6 * 1e4
    # The file API separates as the array API does.
    np.testing.assert_allclose(vocals, separate(saved_model, audio, rate)["vocals"], atol=1e-6 * 1e4)
