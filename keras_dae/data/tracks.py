"""Finding MUSDB18 / MUSDB18-HQ tracks and checking them before training.

`list_tracks` enumerates tracks through `musdb.DB` (so musdb's subsets and
its 14-track validation split apply) and returns light `TrackInfo` records:
where each source lives, its sample rate, length and channel count. Audio is
read later, excerpt by excerpt, by the tf.data pipeline (`pipeline.py`).

Listing reads headers only (ffprobe for a `.stem.mp4`), so it cannot see NaN
or Inf samples, which a float WAV (or a decoded stream) may hold; reading
whole files to look for them would cost a pass over the whole data set
before every run. Instead every read checks the samples it reads
(`read_track` here, `readers.read_excerpt` in the pipeline) and raises a
one-line error naming the file and the first bad sample: training (through
the pipeline), `prepare` and `evaluate` all stop on it, before any NaN loss.

With no root at all (no argument, no `MUSDB_PATH`), the embedded example is
used: the real 6-second MUSDB18 excerpt in the stempeg wheel.
"""

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import soundfile

from keras_dae.checks import one_of
from keras_dae.data.example import EXAMPLE_TRACK, SOURCES, import_stempeg
from keras_dae.data.readers import audio_info, check_finite

log = logging.getLogger(__name__)

SUBSETS = ("train", "test")
SPLITS = ("train", "valid")
# MUSDB18's stream order inside a .stem.mp4: mixture, drums, bass, other, vocals.
STEM_IDS = {"drums": 1, "bass": 2, "other": 3, "vocals": 4}


@dataclasses.dataclass(frozen=True)
class TrackInfo:
    """Where a track's sources are and what they hold.

    Attributes:
        name: str, the track name.
        subset: str, `train` or `test` (`example` for the embedded clip).
        rate: int, sample rate in Hz (the same for all sources).
        num_samples: int, length in samples (the same for all sources).
        channels: int, 1 or 2 (mono sources are read as two equal channels).
        paths: tuple of str, one path per source in `SOURCES` order
            (`drums`, `bass`, `other`, `vocals`); the same `.stem.mp4` four
            times for MUSDB18.
        stem_ids: tuple of int or None, the stream of each source inside the
            `.stem.mp4`; None for WAV/FLAC folders.
        offset: int, default 0. First sample of the files that belongs to
            this track: a part of a track (`split_track`) is a `TrackInfo`
            whose `offset` and `num_samples` select the part.
    """

    name: str
    subset: str
    rate: int
    num_samples: int
    channels: int
    paths: tuple
    stem_ids: tuple = None
    offset: int = 0

    @property
    def is_stem(self):
        return self.stem_ids is not None

    @property
    def seconds(self):
        return self.num_samples / self.rate


def _check_channels(path, channels):
    if channels not in (1, 2):
        raise ValueError(
            f"'{path}' has {channels} channels; keras-dae reads mono or stereo sources."
        )


def _wav_track(name, subset, paths):
    """TrackInfo of a MUSDB18-HQ folder, checking every source file."""
    infos = []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"track '{name}' has no source file '{path}'.")
        num_samples, channels, rate = audio_info(path)
        if num_samples == 0:
            raise ValueError(f"'{path}' holds no samples (empty or truncated file).")
        _check_channels(path, channels)
        infos.append((num_samples, channels, rate))
    first_samples, first_channels, first_rate = infos[0]
    for path, (num_samples, channels, rate) in zip(paths, infos):
        if channels != first_channels:
            # The pipeline reads every source of a track with one channel count.
            raise ValueError(
                f"'{path}' has {channels} channel(s) but '{paths[0]}' has "
                f"{first_channels}; all sources of a track need the same number of channels."
            )
        if rate != first_rate:
            raise ValueError(
                f"'{path}' is at {rate} Hz but '{paths[0]}' is at "
                f"{first_rate} Hz; all sources of a track need one sample rate."
            )
        if num_samples != first_samples:
            raise ValueError(
                f"'{path}' has {num_samples} samples but '{paths[0]}' has {first_samples}; "
                "the sources of a track must have the same length (a truncated file?)."
            )
    return TrackInfo(
        name=name,
        subset=subset,
        rate=first_rate,
        num_samples=first_samples,
        channels=max(channels for _, channels, _ in infos),
        paths=tuple(str(path) for path in paths),
    )


def _stem_track(name, subset, path):
    """TrackInfo of a MUSDB18 `.stem.mp4`, checking its streams."""
    stempeg = import_stempeg()
    # Absolute: stempeg puts the path last on ffprobe's command line, where a relative name
    # beginning with `-` would be read as an option.
    path = os.path.abspath(path)
    try:
        info = stempeg.Info(path)
        num_streams = info.nb_audio_streams
    except Exception as error:  # ffprobe failures surface as several exception types
        raise ValueError(f"cannot read '{path}': {error}") from None
    if num_streams < 5:
        raise ValueError(
            f"'{path}' has {num_streams} audio streams; a MUSDB18 .stem.mp4 has 5 "
            "(mixture, drums, bass, other, vocals)."
        )
    rates = {info.rate(index) for index in STEM_IDS.values()}
    if len(rates) != 1:
        raise ValueError(f"the streams of '{path}' have different sample rates {sorted(rates)}.")
    for index in STEM_IDS.values():
        _check_channels(path, info.channels(index))
    num_samples = min(int(info.samples(index)) for index in STEM_IDS.values())
    if num_samples <= 0:
        raise ValueError(f"'{path}' holds no samples (empty or truncated file).")
    return TrackInfo(
        name=name,
        subset=subset,
        rate=int(rates.pop()),
        num_samples=num_samples,
        channels=max(info.channels(index) for index in STEM_IDS.values()),
        paths=(str(path),) * len(SOURCES),
        stem_ids=tuple(STEM_IDS[source] for source in SOURCES),
    )


def split_track(track, fraction):
    """Cuts a track in two at `fraction` of its length: `(first part, second part)`.

    Used to hold out the end of the embedded clip for validation. Each part
    reads only its own samples.

    Raises:
        ValueError: if `fraction` is not strictly between 0 and 1 or a part
            would be empty.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1. Received: fraction={fraction!r}")
    cut = int(round(track.num_samples * fraction))
    if cut == 0 or cut == track.num_samples:
        raise ValueError(f"track '{track.name}' is too short to split at {fraction}.")
    first = dataclasses.replace(track, name=f"{track.name} [0:{fraction:g}]", num_samples=cut)
    second = dataclasses.replace(
        track, name=f"{track.name} [{fraction:g}:1]", num_samples=track.num_samples - cut,
        offset=track.offset + cut,
    )
    return first, second


def example_track():
    """TrackInfo of the embedded MUSDB18 excerpt."""
    stempeg = import_stempeg()
    return dataclasses.replace(
        _stem_track(EXAMPLE_TRACK, "example", stempeg.example_stem_path()), subset="example"
    )


def _layout_hint(root, subsets, is_wav):
    """Suggests `is_wav` (or not) when the other layout is what is there."""
    for subset in subsets:
        folder = Path(root) / subset
        if not folder.is_dir():
            continue
        has_stems = any(folder.glob("*.stem.mp4"))
        has_wav_dirs = any(folder.glob("*/mixture.wav")) or any(folder.glob("*/vocals.wav"))
        if is_wav and has_stems:
            return " It holds .stem.mp4 files (MUSDB18), which need `is_wav=False`."
        if not is_wav and has_wav_dirs:
            return " It holds WAV folders (MUSDB18-HQ), which need `is_wav=True`."
    return ""


def list_tracks(root=None, is_wav=False, subsets="train", split=None):
    """Lists and checks the tracks of a MUSDB18 or MUSDB18-HQ root.

    Args:
        root: str, `Path` or None. The dataset root; None uses the
            `MUSDB_PATH` environment variable, and with neither the embedded
            6-second example (one log line says so).
        is_wav: bool, default False. True for MUSDB18-HQ (WAV folders).
        subsets: str or sequence of str, default `"train"`; `train`, `test`.
        split: str or None. With `subsets="train"`: `train` or `valid`
            (musdb's 14-track validation split); None for the whole subset.

    Returns:
        list of `TrackInfo`, sorted by subset and name.

    Raises:
        ValueError: a root that does not exist or holds no tracks, a bad
            subset or split, or a track with a missing, unreadable, empty or
            mismatched source (the message names the file). Samples are not
            read here: NaN or Inf samples are caught when they are read
            (see the module docstring).
    """
    subsets = (subsets,) if isinstance(subsets, str) else tuple(subsets)
    for subset in subsets:
        one_of("subset", subset, SUBSETS)
    if split is not None:
        one_of("split", split, SPLITS)
        if subsets != ("train",):
            raise ValueError("A split (train/valid) applies to the train subset only.")
    root = root if root is not None else os.environ.get("MUSDB_PATH") or None
    if root is None:
        log.info(
            "no MUSDB root given (`root` or MUSDB_PATH): using the embedded 6-second "
            "MUSDB18 excerpt '%s'",
            EXAMPLE_TRACK,
        )
        return [example_track()]
    if not Path(root).is_dir():
        raise ValueError(f"MUSDB root '{root}' does not exist or is not a directory.")
    import_stempeg()  # musdb imports stempeg: give the clear ffmpeg message first
    import musdb

    # An absolute root gives absolute track paths: no file name handed to ffmpeg/ffprobe begins with `-`.
    database = musdb.DB(root=os.path.abspath(root), is_wav=is_wav, subsets=list(subsets), split=split)
    tracks = []
    for track in database.tracks:
        if is_wav:
            folder = Path(track.path).parent
            paths = [str(folder / f"{source}.wav") for source in SOURCES]
            tracks.append(_wav_track(track.name, track.subset, paths))
        else:
            tracks.append(_stem_track(track.name, track.subset, track.path))
    if not tracks:
        where = ", ".join(str(Path(root) / subset) for subset in subsets)
        kind = "track folders with WAV stems" if is_wav else ".stem.mp4 files"
        split_note = f" in the '{split}' split" if split else ""
        raise ValueError(
            f"no MUSDB tracks{split_note} under {where} (expected {kind})."
            + _layout_hint(root, subsets, is_wav)
        )
    return tracks


def read_track(track, start=0, num_samples=None):
    """Reads sources of a track in Python, float32 `(4, samples, 2)`.

    Sources in `SOURCES` order; mono sources are duplicated to two channels;
    reading past the end zero-pads to `num_samples`. For `.stem.mp4` files the
    start is rounded by ffmpeg's seeking to within a few milliseconds.

    Args:
        track: `TrackInfo`.
        start: int, first sample.
        num_samples: int or None; None reads to the end.

    Returns:
        float32 array `(len(SOURCES), num_samples, 2)`.

    Raises:
        ValueError: a source holds a NaN or Inf sample in the part read
            (the message names the file, and the stream of a `.stem.mp4`).
    """
    start = int(start)
    if num_samples is None:
        num_samples = max(track.num_samples - start, 0)
    num_samples = int(num_samples)
    out = np.zeros((len(SOURCES), num_samples, 2), np.float32)
    available = max(min(num_samples, track.num_samples - start), 0)
    if available == 0:
        return out
    if track.is_stem:
        stempeg = import_stempeg()
        stems, _ = stempeg.read_stems(
            os.path.abspath(track.paths[0]),  # never a name beginning with `-` (see `_stem_track`)
            start=(track.offset + start) / track.rate,
            duration=available / track.rate,
            stem_id=list(track.stem_ids),
            dtype=np.float32,
            always_3d=True,
        )
        audio = stems[:, :available]
        for source, samples in zip(SOURCES, audio):
            check_finite(samples, track.paths[0], track.offset + start, stream=source)
        out[:, : audio.shape[1]] = audio if audio.shape[2] == 2 else audio[..., :1]
        return out
    for index, path in enumerate(track.paths):
        audio, _ = soundfile.read(
            path, start=track.offset + start, frames=available, dtype="float32", always_2d=True
        )
        check_finite(audio, path, track.offset + start)
        out[index, : audio.shape[0]] = audio if audio.shape[1] == 2 else audio[:, :1]
    return out
