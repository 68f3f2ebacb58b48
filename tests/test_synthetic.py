import musdb
import numpy as np
import pytest
import soundfile

from keras_dae.data.synthetic import (
    SOURCES,
    STEM_ORDER,
    convert_to_stems,
    synthesize_track,
    write_synthetic_musdb,
)
from keras_dae.data.tracks import list_tracks

RATE = 44100


def _frames(x, size):
    return x[: len(x) // size * size].reshape(-1, size)


def test_sources_are_stereo_float32_and_sum_below_one():
    sources = synthesize_track(1.5, rate=RATE, seed=0)
    assert tuple(sources) == SOURCES == ("drums", "bass", "other", "vocals")
    for name, audio in sources.items():
        assert audio.shape == (round(1.5 * RATE), 2) and audio.dtype == np.float32, name
        assert np.abs(audio).max() > 0.05, name
        assert not np.array_equal(audio[:, 0], audio[:, 1]), name  # panned, not dual mono
    assert np.abs(sum(sources.values())).max() < 1.0
    assert synthesize_track(0.5, rate=8000)["vocals"].shape == (4000, 2)


def test_seed_determines_the_track():
    first, again, other = (synthesize_track(2.0, seed=seed) for seed in (3, 3, 4))
    for name in SOURCES:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.allclose(first[name], other[name]), name


def _f0_by_autocorrelation(frame, rate):
    lags = np.arange(rate // 420, rate // 140 + 1)  # 140-420 Hz
    correlation = np.array([np.dot(frame[:-lag], frame[lag:]) for lag in lags]) / np.dot(frame, frame)
    return rate / lags[correlation.argmax()], correlation.max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vocals_are_harmonic_and_sometimes_silent(seed):
    sources = synthesize_track(6.0, rate=RATE, seed=seed)
    vocals, drums = sources["vocals"][:, 0].astype(np.float64), sources["drums"][:, 0].astype(np.float64)
    frames = _frames(vocals, 2048)
    frame = frames[np.sqrt((frames**2).mean(1)).argmax()]  # the loudest, voiced frame
    f0, periodicity = _f0_by_autocorrelation(frame, RATE)
    assert 140 < f0 < 420 and periodicity > 0.8
    # The strongest spectral peaks sit on multiples of that fundamental.
    # (Blackman: a Hann window's -31 dB side lobes would count as peaks.)
    spectrum = np.abs(np.fft.rfft(frame * np.blackman(frame.size), n=16384))
    freqs = np.fft.rfftfreq(16384, 1 / RATE)
    peaks = np.flatnonzero((spectrum[1:-1] > spectrum[:-2]) & (spectrum[1:-1] > spectrum[2:])) + 1
    peaks = peaks[spectrum[peaks] > spectrum.max() / 100]
    strongest = freqs[peaks[np.argsort(spectrum[peaks])[-8:]]]
    harmonic_numbers = strongest / f0
    np.testing.assert_allclose(harmonic_numbers, np.round(harmonic_numbers), atol=0.15)
    assert len(set(np.round(harmonic_numbers))) >= 5

    def mean_flatness(x):  # over the frames with sound: drums alternate noise and kick sines
        frames = _frames(x, 2048)
        frames = frames[np.sqrt((frames**2).mean(1)) > 0.1 * np.sqrt((frames**2).mean(1)).max()]
        power = np.abs(np.fft.rfft(frames * np.hanning(2048), axis=1)) ** 2 + 1e-12
        return np.mean(np.exp(np.log(power).mean(1)) / power.mean(1))

    assert mean_flatness(vocals) < mean_flatness(drums) / 100

    # A one-beat rest (>= 60/132 s) opens every track; other rests follow.
    assert np.all(vocals[: int(0.45 * RATE)] == 0)
    silent = (np.abs(_frames(vocals, 2205)) < 1e-6).all(axis=1)  # 50 ms frames
    assert 0.1 < silent.mean() < 0.7


def _read(path):
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return audio, rate


def test_writes_the_musdb18hq_tree_with_an_exact_mixture(tmp_path):
    dirs = write_synthetic_musdb(tmp_path, num_tracks=3, seconds=1.0, seed=5)
    assert dirs == [tmp_path / "train" / f"synthetic-00{index}" for index in range(3)]
    for track_dir in dirs:
        assert sorted(p.name for p in track_dir.iterdir()) == sorted(f"{name}.wav" for name in STEM_ORDER)
        assert soundfile.info(track_dir / "mixture.wav").subtype == "FLOAT"
        sources = {name: _read(track_dir / f"{name}.wav")[0] for name in SOURCES}
        mixture, rate = _read(track_dir / "mixture.wav")
        assert rate == RATE and mixture.shape == (RATE, 2)
        np.testing.assert_array_equal(
            mixture, sources["vocals"] + sources["drums"] + sources["bass"] + sources["other"]
        )
    np.testing.assert_array_equal(
        _read(dirs[2] / "vocals.wav")[0], synthesize_track(1.0, seed=(5, 0, 2))["vocals"]
    )
    # The test subset of the same seed holds other tracks.
    (test_dir,) = write_synthetic_musdb(tmp_path, num_tracks=1, seconds=1.0, seed=5, subset="test")
    assert not np.allclose(_read(test_dir / "vocals.wav")[0], _read(dirs[0] / "vocals.wav")[0])


def test_musdb_reads_the_wav_tree(tmp_path):
    write_synthetic_musdb(tmp_path, num_tracks=2, seconds=1.0, seed=1)
    db = musdb.DB(root=str(tmp_path), is_wav=True, subsets="train")
    assert [track.name for track in db] == ["synthetic-000", "synthetic-001"]
    track = db[1]
    assert track.rate == RATE and set(track.sources) == set(SOURCES)
    assert track.audio.shape == (RATE, 2)
    vocals = _read(tmp_path / "train" / "synthetic-001" / "vocals.wav")[0]
    # musdb decodes through 16-bit PCM.
    np.testing.assert_allclose(track.targets["vocals"].audio, vocals, atol=2**-15)
    np.testing.assert_allclose(track.sources["bass"].audio, track.targets["bass"].audio)
    summed = sum(source.audio for source in track.sources.values())
    np.testing.assert_allclose(track.audio, summed, atol=4 * 2**-15)


def _aligned_correlation(estimate, reference, max_lag):
    """Correlation at the best lag within `max_lag` samples (encoder delay)."""
    size = len(estimate) + len(reference)
    cross = np.fft.irfft(np.fft.rfft(estimate, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.r_[0 : max_lag + 1, -max_lag:0]
    lag = lags[np.argmax(cross[lags])]
    x, y = estimate[max(lag, 0) :], reference[max(-lag, 0) :]
    n = min(len(x), len(y))
    return np.corrcoef(x[:n], y[:n])[0, 1]


def test_stems_read_with_musdb_and_match_the_wavs(tmp_path):
    wav_root, stem_root = tmp_path / "wav", tmp_path / "stems"
    write_synthetic_musdb(wav_root, num_tracks=2, seconds=2.0, seed=2)
    written = convert_to_stems(wav_root, stem_root)
    assert written == [stem_root / "train" / f"synthetic-00{index}.stem.mp4" for index in range(2)]
    assert sorted(p.name for p in (stem_root / "train").iterdir()) == [p.name for p in written]

    db = musdb.DB(root=str(stem_root), subsets="train")
    assert [track.name for track in db] == ["synthetic-000", "synthetic-001"]
    track = db[0]
    assert track.rate == RATE
    vocals = track.sources["vocals"].audio
    # AAC pads the last frame: at most 1024 samples more than the WAV.
    assert vocals.ndim == 2 and vocals.shape[1] == 2 and 2 * RATE <= len(vocals) <= 2 * RATE + 1024
    for name in ("vocals", "mixture"):
        reference = _read(wav_root / "train" / "synthetic-000" / f"{name}.wav")[0][:, 0]
        decoded = vocals if name == "vocals" else track.audio
        assert _aligned_correlation(decoded[:, 0], reference, max_lag=1024) > 0.99, name


def test_convert_to_stems_validates(tmp_path):
    with pytest.raises(ValueError, match="Received: subsets=\\('valid',\\)"):
        convert_to_stems(tmp_path, tmp_path / "out", subsets="valid")
    with pytest.raises(FileNotFoundError, match="train"):
        convert_to_stems(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_tracks": 0}, "Received: num_tracks=0"),
        ({"num_tracks": 1.5}, "Received: num_tracks=1.5"),
        ({"num_tracks": True}, "Received: num_tracks=True"),
        ({"seconds": 0.0}, "Received: seconds=0.0"),
        ({"seconds": -1}, "Received: seconds=-1"),
        ({"seconds": float("inf")}, "Received: seconds=inf"),
        ({"rate": 0}, "Received: rate=0"),
        ({"rate": 44100.0}, "Received: rate=44100.0"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"subset": "valid"}, "Received: subset='valid'"),
    ],
)
def test_write_validates_arguments(tmp_path, kwargs, message):
    arguments = {"num_tracks": 1, "seconds": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        write_synthetic_musdb(tmp_path, **arguments)
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seconds": 1e-6}, "at least one sample"),
        ({"seed": (1, -2)}, "Received: seed=\\(1, -2\\)"),
        ({"seed": "0"}, "Received: seed='0'"),
    ],
)
def test_synthesize_validates_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthesize_track(**{"seconds": 0.1, **kwargs})


def test_synth_command_writes_the_tree(tmp_path, run_cli):
    code, out, err = run_cli("synth", "--out", tmp_path, "--tracks", "2", "--seconds", "0.5",
                             "--seed", "7", "--rate", "22050", "--subset", "test")
    assert code == 0, err
    assert out == f"wrote 2 tracks to {tmp_path / 'test'}\n"
    vocals, rate = _read(tmp_path / "test" / "synthetic-001" / "vocals.wav")
    assert rate == 22050
    np.testing.assert_array_equal(vocals, synthesize_track(0.5, rate=22050, seed=(7, 1, 1))["vocals"])


@pytest.mark.parametrize(
    "args",
    [["--tracks", "0"], ["--seconds", "0"], ["--rate", "0"], ["--seed", "-1"], ["--subset", "valid"]],
)
def test_synth_command_rejects_bad_values(tmp_path, args, run_cli):
    options = {"--out": str(tmp_path), "--tracks": "1", "--seconds": "0.1"}
    options.update(zip(args[::2], args[1::2]))
    code, out, err = run_cli("synth", *(x for pair in options.items() for x in pair))
    assert code == 2 and args[0] in err and out == ""
    assert list(tmp_path.iterdir()) == []


def test_synth_console_script(tmp_path, run_cli):
    """The installed script in a fresh process: its output is its own lines, whatever TensorFlow logs."""
    out = tmp_path / "synthetic"
    code, stdout, stderr = run_cli("synth", "--out", out, "--tracks", "1", "--seconds", "1", quiet=False,
                                   process=True)
    assert code == 0, stderr
    assert stdout == f"wrote 1 tracks to {out / 'train'}\n"
    (track,) = list_tracks(out, is_wav=True)
    assert track.name == "synthetic-000" and track.num_samples == RATE and track.channels == 2
    # A bad value: one error line, exit code 2, nothing written.
    code, stdout, stderr = run_cli("synth", "--out", tmp_path / "none", "--tracks", "0", "--seconds", "1",
                                   quiet=False, process=True)
    assert code == 2 and stdout == ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "error" in lines[0] and "--tracks" in lines[0] and "Traceback" not in stderr
    assert not (tmp_path / "none").exists()
