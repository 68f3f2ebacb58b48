"""`keras-dae separate` and `keras_dae.separate`: formats, rates, lengths, names, bad input."""

import subprocess

import keras
import numpy as np
import pytest
import soundfile
import stempeg

from keras_dae.separation import files as files_module
from keras_dae.audiofile import AudioFileError, read_audio
from keras_dae.models import build_model
from keras_dae.separation.files import output_name, output_names, separate_file
from keras_dae.separation import separate
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)  # `model`, `saved_model` (conftest.py): an untrained sf over these bins


def _audio(samples, channels=2, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (samples, channels)).astype(np.float32)


def _write(path, audio, rate, **kwargs):
    soundfile.write(str(path), audio, rate, **kwargs)
    return path


def _encode(source, target):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), str(target)], check=True)
    return target


@pytest.mark.parametrize(("samples", "channels", "rate"), [
    (44100 + 17, 2, 44100), (30001, 1, 44100), (22050 + 3, 2, 22050), (101, 1, 22050), (1, 2, 44100),
])
def test_outputs_have_the_input_shape_and_rate(model, tmp_path, samples, channels, rate):
    audio = _audio(samples, channels)
    path = _write(tmp_path / "in.wav", audio, rate, subtype="FLOAT")
    outputs = separate_file(model, path, tmp_path / "out", spectral=CONFIG)
    assert set(outputs) == {"vocals", "accompaniment"}
    written = {}
    for stem, output in outputs.items():
        written[stem], written_rate = soundfile.read(output, dtype="float32", always_2d=True)
        assert written_rate == rate and written[stem].shape == (samples, channels)
    np.testing.assert_allclose(written["vocals"] + written["accompaniment"], audio, atol=1e-6)
    # The array API gives the same samples (one-shot soxr equals the streaming resampler).
    stems = separate(model, audio[:, 0] if channels == 1 else audio, rate, spectral=CONFIG)
    assert stems["vocals"].shape == (audio[:, 0] if channels == 1 else audio).shape
    np.testing.assert_allclose(stems["vocals"].reshape(samples, channels), written["vocals"], atol=1e-6)
    assert not [p for p in (tmp_path / "out" / "in").iterdir() if p.name.startswith(".")]  # no temporary left


def test_resampling_round_trip_keeps_a_model_rate_signal(model, tmp_path):
    """At 22.05 kHz the input goes up to 44.1 kHz and back: vocals of the 22.05 kHz file match
    those of the same signal at 44.1 kHz, resampled down, away from the band edge."""
    rate = 22050
    seconds = np.arange(2 * rate) / rate
    audio = (0.3 * np.sin(2 * np.pi * 440 * seconds) + 0.2 * np.sin(2 * np.pi * 2500 * seconds))[:, None]
    low = separate(model, audio.astype(np.float32), rate, spectral=CONFIG)["vocals"]
    import soxr

    high_input = soxr.resample(audio, rate, 44100, quality="HQ").astype(np.float32)
    high = separate(model, high_input, 44100, spectral=CONFIG)["vocals"]
    down = soxr.resample(high, 44100, rate, quality="HQ")[: len(low)]
    middle = slice(2000, -2000)
    assert np.abs(low[middle] - down[middle]).max() < 1e-3 * np.abs(low).max() + 1e-4


def test_every_format(model, tmp_path):
    base = _write(tmp_path / "base.wav", _audio(44100 + 5), 44100, subtype="PCM_16")
    inputs = [base, _encode(base, tmp_path / "song.flac"), _encode(base, tmp_path / "song.ogg"),
              _encode(base, tmp_path / "song.mp3"), stempeg.example_stem_path()]
    done, failed = files_module.separate_files(model, inputs, tmp_path / "out", spectral=CONFIG)
    assert not failed
    assert [outputs["vocals"].parent.name for _, outputs in done] == [
        "base", "song.flac", "song.ogg", "song.mp3", "The Easton Ellises - Falcon 69"]
    for path, outputs in done:
        decoded, rate = read_audio(path)
        vocals, written_rate = soundfile.read(outputs["vocals"], dtype="float32", always_2d=True)
        accompaniment, _ = soundfile.read(outputs["accompaniment"], dtype="float32", always_2d=True)
        assert written_rate == rate and vocals.shape == decoded.shape
        np.testing.assert_allclose(vocals + accompaniment, decoded, atol=1e-6)


def test_chunked_files_equal_whole_files(model, tmp_path):
    audio = _audio(3 * 22050 + 11, seed=3)
    path = _write(tmp_path / "in.wav", audio, 22050, subtype="FLOAT")
    whole = separate_file(model, path, tmp_path / "whole", spectral=CONFIG, chunk_frames=100_000)
    chunked = separate_file(model, path, tmp_path / "chunked", spectral=CONFIG, chunk_frames=5)
    np.testing.assert_allclose(soundfile.read(chunked["vocals"])[0], soundfile.read(whole["vocals"])[0], atol=1e-4)


def test_identity_model_returns_the_mixture():
    """A model whose output is its input (sf with a mask of 1), over all bins: vocals = mixture."""
    full = SpectralConfig(num_bins=SpectralConfig().max_bins)
    identity = build_model("sf", full.num_bins, hidden_size=1)
    identity.set_weights([np.ones_like(w) if w.ndim == 1 and w.shape[0] == full.num_bins else np.zeros_like(w)
                          for w in identity.get_weights()])
    audio = _audio(20000, seed=5)
    for mask in ("subtract", "soft"):
        stems = separate(identity, audio, 44100, spectral=full, mask=mask)
        np.testing.assert_allclose(stems["vocals"], audio, atol=1e-5)
        np.testing.assert_allclose(stems["accompaniment"], 0, atol=1e-5)


def test_soft_mask_and_wiener(model, tmp_path):
    audio = _audio(2 * 44100, seed=6)
    subtract = separate(model, audio, 44100, spectral=CONFIG)["vocals"]
    soft = separate(model, audio, 44100, spectral=CONFIG, mask="soft")["vocals"]
    once = separate(model, audio, 44100, spectral=CONFIG, wiener=1)
    twice = separate(model, audio, 44100, spectral=CONFIG, wiener=2)["vocals"]
    assert np.abs(soft - subtract).max() > 1e-3 and np.abs(twice - once["vocals"]).max() > 1e-4
    np.testing.assert_allclose(once["vocals"] + once["accompaniment"], audio, atol=1e-6)
    # One chunk holding the whole file gives the same Wiener result as the file path with that chunk size.
    path = _write(tmp_path / "in.wav", audio, 44100, subtype="FLOAT")
    written = separate_file(model, path, tmp_path / "out", spectral=CONFIG, wiener=1, chunk_frames=10_000)
    whole = separate(model, audio, 44100, spectral=CONFIG, wiener=1, chunk_frames=10_000)["vocals"]
    np.testing.assert_allclose(soundfile.read(written["vocals"], dtype="float32")[0], whole, atol=1e-5)


def test_output_names_are_safe_and_distinct():
    assert output_name("/music/Song One.stem.mp4") == "Song One"
    assert output_name("a/b/../..hidden.wav") == "hidden"
    assert output_name('dir/we:ird*na?me".flac') == "we_ird_na_me_"
    assert output_name("/x/.wav") == "wav"
    assert output_names(["a/x.wav", "b/x.mp3", "c/x.wav", "y.wav"]) == ["x.wav", "x.mp3", "x.wav-2", "y"]
    for name in output_names(["../../etc/passwd", "..", "/"]):
        assert "/" not in name and name not in ("", ".", "..")


def test_existing_outputs_are_kept_without_overwrite(model, tmp_path):
    path = _write(tmp_path / "in.wav", _audio(5000), 44100)
    first = separate_file(model, path, tmp_path / "out", spectral=CONFIG)
    before = first["vocals"].read_bytes()
    with pytest.raises(FileExistsError, match="`overwrite=True`"):
        separate_file(model, path, tmp_path / "out", spectral=CONFIG)
    _write(path, _audio(5000, seed=9), 44100)
    separate_file(model, path, tmp_path / "out", spectral=CONFIG, overwrite=True)
    assert first["vocals"].read_bytes() != before


def test_a_failure_mid_write_leaves_old_outputs_and_no_temporaries(model, tmp_path, monkeypatch):
    path = _write(tmp_path / "in.wav", _audio(50000), 44100)
    first = separate_file(model, path, tmp_path / "out", spectral=CONFIG)
    before = {stem: output.read_bytes() for stem, output in first.items()}

    def failing(*args, **kwargs):
        yield np.zeros((10, 2), np.float32)
        raise RuntimeError("disk full")

    monkeypatch.setattr(files_module, "separate_blocks", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        separate_file(model, path, tmp_path / "out", spectral=CONFIG, overwrite=True)
    assert {stem: output.read_bytes() for stem, output in first.items()} == before
    assert sorted(p.name for p in first["vocals"].parent.iterdir()) == ["accompaniment.wav", "vocals.wav"]
    with pytest.raises(RuntimeError):
        separate_file(model, path, tmp_path / "fresh", spectral=CONFIG)
    assert not (tmp_path / "fresh" / "in").exists()


def _bad_inputs(tmp_path):
    good = _write(tmp_path / "good.wav", _audio(44100), 44100, subtype="PCM_16")
    data = good.read_bytes()
    (tmp_path / "truncated.wav").write_bytes(data[: len(data) // 2 + 1])
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("not audio")
    _write(tmp_path / "zero.wav", np.zeros((0, 2), np.float32), 44100)
    (tmp_path / "folder.wav").mkdir()
    return good, {
        "truncated.wav": "truncated", "empty.flac": "empty (0 bytes)", "text.mp3": "cannot read",
        "zero.wav": "holds no audio samples", "folder.wav": "is a directory", "missing.ogg": "does not exist",
    }


def test_cli_separates_and_reports_each_bad_file(saved_model, tmp_path, run_cli):
    good, bad = _bad_inputs(tmp_path)
    names = ["truncated.wav", "empty.flac", good.name, "text.mp3", "zero.wav", "folder.wav", "missing.ogg"]
    code, out, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "out",
                          *(tmp_path / name for name in names))
    assert code == 1
    *lines, summary = err.strip().splitlines()
    assert len(lines) == len(bad)  # one line per bad file, none for the good one
    assert summary.endswith("6 of 7 files failed; 1 separated.")
    for line, name in zip(lines, [n for n in names if n != good.name]):
        assert name in line and bad[name] in line, (name, line)
    assert "good.wav: wrote" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]
    audio, _ = soundfile.read(tmp_path / "out" / "good" / "vocals.wav", always_2d=True)
    assert audio.shape == (44100, 2)
    # Again: the outputs exist now.
    code, _, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "out", good)
    assert code == 1 and "--overwrite" in err and err.count("\n") == 1
    code, _, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "out", "--overwrite",
                        "--mask", "soft", "--wiener", "1", good)
    assert code == 0, err


def test_cli_bad_model(saved_model, tmp_path, run_cli):
    audio = _write(tmp_path / "in.wav", _audio(4000), 44100)
    other = keras.Sequential([keras.Input((CONFIG.num_bins,)), keras.layers.Dense(CONFIG.num_bins)])
    other.save(tmp_path / "other.keras")
    for args, message in [
        (["--model", tmp_path / "other.keras"], "not a keras-dae model"),
        (["--model", audio], "is not a Keras model file"),
        (["--model", saved_model, "--num-bins", "32"], "the model takes 64 bins"),
    ]:
        code, _, err = run_cli("separate", *args, "--out", tmp_path / "out", audio)
        assert code == 1 and message in err and err.count("\n") == 1, (args, err)


def test_unwritable_output_directory(saved_model, tmp_path, run_cli):
    audio = _write(tmp_path / "in.wav", _audio(4000), 44100)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output directory should be")
    code, _, err = run_cli("separate", "--model", saved_model, "--out", blocker / "sub", audio)
    assert "cannot create output directory" in err and "in.wav" not in err.splitlines()[-1]
    assert code == 1 and err.count("\n") == 1
    code, _, err = run_cli("separate", "--model", saved_model, "--out", blocker, audio)
    assert code == 2 and "is a file" in err and err.count("\n") == 1


def test_api_errors(model):
    with pytest.raises(ValueError, match="samples > 0"):
        separate(model, np.zeros((0, 2), np.float32), 44100, spectral=CONFIG)
    with pytest.raises(ValueError, match="64 bins"):
        separate(model, _audio(100), 44100, spectral=SpectralConfig(num_bins=32))
    with pytest.raises(AudioFileError, match="does not exist"):
        read_audio("/nonexistent.wav")
