"""Listing MUSDB trees with `list_tracks`: splits, layouts and every bad input."""

import os

import numpy as np
import pytest
import soundfile

from keras_dae.data.example import SOURCES
from keras_dae.data.pipeline import collect_frames, musdb_frames
from keras_dae.data.synthetic import synthesize_track, write_synthetic_musdb
from keras_dae.data.tracks import list_tracks, read_track
from keras_dae.spectral import SpectralConfig

RATE = 44100
CONFIG = SpectralConfig(num_bins=64)
# Two of the 14 names in musdb's validation list (musdb/configs/mus.yaml).
VALID_NAMES = ("Actions - One Minute Smile", "Leaf - Summerghost")


def _write_track(folder, sources, rate=RATE):
    """A MUSDB18-HQ track folder from `{source: (samples, channels) array}` of all sources."""
    folder.mkdir(parents=True)
    for name, audio in sources.items():
        soundfile.write(folder / f"{name}.wav", audio, rate, subtype="FLOAT")
    mixture = sum(sources[name] for name in SOURCES)
    soundfile.write(folder / "mixture.wav", mixture, rate, subtype="FLOAT")
    return folder


@pytest.fixture(scope="module")
def sources():
    return synthesize_track(0.5, rate=RATE, seed=4)


def _bytes_read():
    """Bytes this process has read through system calls so far (`rchar` of /proc/self/io)."""
    with open("/proc/self/io") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("rchar:"))


def _refuse_reading_audio(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("listing read audio samples")

    import stempeg

    monkeypatch.setattr(soundfile, "read", refuse)
    monkeypatch.setattr(soundfile.SoundFile, "read", refuse)
    monkeypatch.setattr(stempeg, "read_stems", refuse)


def test_listing_reads_headers_not_audio(tmp_path, monkeypatch):
    """Listing costs the same bytes whatever the tracks' length: headers (and musdb's fixed set-up), no audio."""
    for seconds in (2.0, 12.0):
        write_synthetic_musdb(tmp_path / f"{seconds:g}s", num_tracks=3, seconds=seconds, seed=1)
    list_tracks(tmp_path / "2s", is_wav=True)  # imports, once
    _refuse_reading_audio(monkeypatch)
    read = {}
    for seconds in (2.0, 12.0):
        before = _bytes_read()
        tracks = list_tracks(tmp_path / f"{seconds:g}s", is_wav=True)
        read[seconds] = _bytes_read() - before
        assert [track.num_samples for track in tracks] == [int(seconds * RATE)] * 3
    extra_audio = sum(p.stat().st_size for p in (tmp_path / "12s").rglob("*.wav")) * 10 / 12
    assert extra_audio > 40e6
    assert abs(read[12.0] - read[2.0]) < 1e-3 * extra_audio, read


@pytest.mark.slow
def test_listing_stems_reads_headers_not_audio(tmp_path, monkeypatch):
    """A `.stem.mp4` is listed through ffprobe (its header) and never decoded."""
    from keras_dae.data.synthetic import convert_to_stems

    write_synthetic_musdb(tmp_path / "wav", num_tracks=2, seconds=3.0, seed=1)
    convert_to_stems(tmp_path / "wav", tmp_path / "stems")
    _refuse_reading_audio(monkeypatch)
    tracks = list_tracks(tmp_path / "stems")
    assert [track.name for track in tracks] == ["synthetic-000", "synthetic-001"]
    assert all(abs(track.seconds - 3.0) < 0.05 for track in tracks)


def test_split_follows_musdb_validation_list(tmp_path):
    write_synthetic_musdb(tmp_path, num_tracks=4, seconds=0.25, seed=0)
    names = (*VALID_NAMES, "Zz Other - First", "Zz Other - Second")
    for index, name in enumerate(names):
        os.rename(tmp_path / "train" / f"synthetic-{index:03d}", tmp_path / "train" / name)
    valid = list_tracks(tmp_path, is_wav=True, split="valid")
    train = list_tracks(tmp_path, is_wav=True, split="train")
    assert [track.name for track in valid] == sorted(VALID_NAMES)
    assert [track.name for track in train] == ["Zz Other - First", "Zz Other - Second"]
    assert len(list_tracks(tmp_path, is_wav=True)) == 4
    track = valid[0]
    assert track.rate == RATE and track.num_samples == RATE // 4 and track.channels == 2
    assert track.paths == tuple(str(tmp_path / "train" / track.name / f"{s}.wav") for s in SOURCES)
    with pytest.raises(ValueError, match="train subset only"):
        list_tracks(tmp_path, is_wav=True, subsets=("train", "test"), split="valid")
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        list_tracks(tmp_path, is_wav=True, split="test")
    # A split with no track of the list names it.
    for name in VALID_NAMES:
        os.rename(tmp_path / "train" / name, tmp_path / "train" / f"renamed {name}")
    with pytest.raises(ValueError, match="no MUSDB tracks in the 'valid' split"):
        list_tracks(tmp_path, is_wav=True, split="valid")


def test_roots_without_tracks(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match="does not exist") as error:
        list_tracks(missing)
    assert str(missing) in str(error.value)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        list_tracks(a_file, is_wav=True)

    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    for is_wav in (True, False):
        with pytest.raises(ValueError, match="no MUSDB tracks") as error:
            list_tracks(empty, is_wav=is_wav)
        assert str(empty / "train") in str(error.value) and "is_wav" not in str(error.value)

    # The other layout is there: the message says which `is_wav` to pass (the CLI shows the flag).
    wav_root = tmp_path / "wav"
    write_synthetic_musdb(wav_root, num_tracks=1, seconds=0.1)
    with pytest.raises(ValueError, match=r"\.stem\.mp4 files\)\. .*need `is_wav=True`") as error:
        list_tracks(wav_root)
    assert str(wav_root / "train") in str(error.value)
    stem_root = tmp_path / "stems"
    (stem_root / "train").mkdir(parents=True)
    (stem_root / "train" / "a.stem.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="WAV stems\\)\\. .*need `is_wav=False`") as error:
        list_tracks(stem_root, is_wav=True)
    assert str(stem_root / "train") in str(error.value)


def _truncate(path, num_bytes):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - num_bytes])


def _bad_tracks():
    """`(name, make(folder, sources) -> the bad file, message pattern)`."""

    def missing(folder, sources):
        os.remove(folder / "bass.wav")
        return folder / "bass.wav"

    def empty(folder, sources):
        soundfile.write(folder / "vocals.wav", np.zeros((0, 2), np.float32), RATE, subtype="FLOAT")
        return folder / "vocals.wav"

    def truncated(folder, sources):
        _truncate(folder / "other.wav", 1001)  # also cuts a sample in half
        return folder / "other.wav"

    def truncated_first(folder, sources):  # drums come first: the message names both files
        _truncate(folder / "drums.wav", 800)
        return folder / "drums.wav"

    def header_only(folder, sources):  # cut inside the header: not audio any more
        _truncate(folder / "vocals.wav", (folder / "vocals.wav").stat().st_size - 40)
        return folder / "vocals.wav"

    def shorter(folder, sources):
        soundfile.write(folder / "vocals.wav", sources["vocals"][:-100], RATE, subtype="FLOAT")
        return folder / "vocals.wav"

    def other_rate(folder, sources):
        soundfile.write(folder / "bass.wav", sources["bass"], RATE // 2, subtype="FLOAT")
        return folder / "bass.wav"

    def six_channels(folder, sources):
        soundfile.write(folder / "other.wav", np.tile(sources["other"], (1, 3)), RATE, subtype="FLOAT")
        return folder / "other.wav"

    def mixed_channels(folder, sources):
        soundfile.write(folder / "vocals.wav", sources["vocals"][:, :1], RATE, subtype="FLOAT")
        return folder / "vocals.wav"

    def not_audio(folder, sources):
        (folder / "drums.wav").write_text("not audio")
        return folder / "drums.wav"

    return [
        ("missing", missing, "has no source file"),
        ("empty", empty, "holds no samples"),
        ("truncated", truncated, "same length \\(a truncated file\\?\\)"),
        ("truncated_first", truncated_first, "same length \\(a truncated file\\?\\)"),
        ("header_only", header_only, "cannot read audio file"),
        ("shorter", shorter, "has 21950 samples but .* has 22050"),
        ("other_rate", other_rate, "is at 22050 Hz but .* is at 44100 Hz"),
        ("six_channels", six_channels, "has 6 channels; keras-dae reads mono or stereo"),
        ("mixed_channels", mixed_channels, "has 1 channel\\(s\\) but .* has 2; all sources .* same number"),
        ("not_audio", not_audio, "cannot read audio file"),
    ]


@pytest.mark.parametrize("name, make, message", _bad_tracks(), ids=[case[0] for case in _bad_tracks()])
def test_bad_tracks_are_value_errors_naming_the_file(tmp_path, sources, name, make, message):
    # One good track, and a bad one after it: the good one does not hide it.
    _write_track(tmp_path / "train" / "A good one", sources)
    folder = _write_track(tmp_path / "train" / "B bad one", sources)
    bad_file = make(folder, sources)
    with pytest.raises(ValueError, match=message) as error:
        list_tracks(tmp_path, is_wav=True)
    assert str(bad_file) in str(error.value)


def _frames(tracks, **kwargs):
    kwargs = {"batch_size": 64, "seed": 0, "excerpt_seconds": 0.5, "epochs": 1, **kwargs}
    return collect_frames(musdb_frames(tracks, spectral=CONFIG, **kwargs))


def test_mono_track_reads_as_two_equal_channels(tmp_path, sources):
    mono = {name: audio[:, :1] for name, audio in sources.items()}
    dual = {name: np.tile(audio, (1, 2)) for name, audio in mono.items()}
    _write_track(tmp_path / "train" / "dual", dual)
    _write_track(tmp_path / "train" / "mono", mono)
    dual_track, mono_track = list_tracks(tmp_path, is_wav=True)
    assert mono_track.channels == 1 and dual_track.channels == 2
    audio = read_track(mono_track)
    assert audio.shape == (4, RATE // 2, 2)
    np.testing.assert_array_equal(audio[..., 0], audio[..., 1])
    np.testing.assert_array_equal(audio, read_track(dual_track))
    # Same seed, same gains: the mono track's frames are the dual-mono track's.
    mono_frames = _frames([mono_track], random_gain=True)
    dual_frames = _frames([dual_track], random_gain=True)
    for mono_part, dual_part in zip(mono_frames, dual_frames):
        assert mono_part.shape == (CONFIG.num_frames(RATE // 2), 64)
        assert np.all(np.isfinite(mono_part)) and mono_part.max() > 0
        np.testing.assert_allclose(mono_part, dual_part, rtol=1e-5, atol=1e-5 * dual_part.max())


def test_silent_track_gives_zero_frames(tmp_path):
    silence = np.zeros((RATE // 2, 2), np.float32)
    _write_track(tmp_path / "train" / "silence", {name: silence for name in SOURCES})
    tracks = list_tracks(tmp_path, is_wav=True)
    for kwargs in ({"training": False}, {"random_gain": True, "remix": True}):
        mixture, vocals = _frames(tracks, **kwargs)
        assert mixture.shape == vocals.shape == (CONFIG.num_frames(RATE // 2), 64)
        assert not np.any(np.isnan(mixture)) and not np.any(np.isnan(vocals))
        assert np.all(mixture == 0) and np.all(vocals == 0)
