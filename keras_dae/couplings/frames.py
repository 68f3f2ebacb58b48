"""Mixture frames to examine a model on: whole tracks, sampled evenly, split in time.

NCA fits C on test-set mixture frames. A full MUSDB18 test set is about a
million frames of 2049 bins (8 GB), so `max_frames` (default 20,000) are
drawn at random over all tracks, each track contributing in proportion to
its length. Digitally silent frames (every bin below `SILENCE`) say nothing
about the mapping and are dropped. The last `HELD_OUT` of each track's
frames (in time) are held out to measure how well C generalises; the rest
are the fitting frames.
"""

import dataclasses
import logging

import numpy as np

from keras_dae.checks import positive_int
from keras_dae.data.prepare import iter_shards, read_index, track_frames
from keras_dae.spectral import SpectralConfig

log = logging.getLogger(__name__)

MAX_FRAMES = 20_000
HELD_OUT = 0.2
SILENCE = 1e-6


@dataclasses.dataclass
class FrameSet:
    """Mixture frames for the analysis: `fit` and `held_out`, float32 `(frames, num_bins)`."""

    fit: np.ndarray
    held_out: np.ndarray
    description: dict


def _quotas(lengths, max_frames):
    total = sum(lengths)
    if max_frames is None or total <= max_frames:
        return list(lengths)
    return [min(length, int(round(max_frames * length / total))) for length in lengths]


def _pick(frames, quota, rng):
    if quota >= len(frames):
        return frames
    return frames[np.sort(rng.choice(len(frames), quota, replace=False))]


def _split(per_track, held_out):
    fit, held = [], []
    for frames in per_track:
        cut = len(frames) - int(round(len(frames) * held_out))
        fit.append(frames[:cut])
        held.append(frames[cut:])
    return fit, held


def loud(frames):
    """Which frames `(num_frames, num_bins)` are not digitally silent (some bin at least `SILENCE`)."""
    return frames.max(axis=1, initial=0.0) >= SILENCE


def _frame_set(names, per_track, description, held_out):
    kept, silent = [], 0
    for frames in per_track:
        loud_frames = loud(frames)
        silent += int((~loud_frames).sum())
        kept.append(frames[loud_frames])
    if not sum(len(frames) for frames in kept):
        raise ValueError(f"all {silent} mixture frames are silent: there is nothing to examine the model on.")
    fit, held = _split(kept, held_out)
    fit, held = np.concatenate(fit), np.concatenate(held)
    if not len(fit):
        raise ValueError("too few mixture frames to examine the model on (none left to fit on).")
    description = dict(
        description, tracks=list(names), frames_fit=len(fit), frames_held_out=len(held),
        silent_frames_dropped=silent, held_out_fraction=held_out,
    )
    return FrameSet(fit, held, description)


def track_frame_set(tracks, *, spectral=None, max_frames=MAX_FRAMES, seed=0, held_out=HELD_OUT, progress=None):
    """Frames of `tracks` (`TrackInfo`s): mono mixture spectrograms.

    Args:
        tracks: list of `TrackInfo` (`keras_dae.data.tracks.list_tracks`).
        spectral: `SpectralConfig` or None (the paper's defaults); the
            examined model's settings.
        max_frames: int or None, default `MAX_FRAMES`. Frames drawn over all
            tracks, in proportion to their lengths; None: every frame.
        seed: int, default 0. Seeds the drawing.
        held_out: float, default `HELD_OUT`. The last part of each track's
            frames (in time) held out to measure the fit.
        progress: callable or None, called with the number of tracks done.

    Returns:
        `FrameSet`.
    """
    if not tracks:
        raise ValueError("no tracks to take mixture frames from.")
    positive_int("max_frames", max_frames, optional=True)
    spectral = spectral or SpectralConfig()
    lengths = [spectral.num_frames(track.num_samples) for track in tracks]
    rng = np.random.default_rng(seed)
    per_track = []
    for done, (track, quota) in enumerate(zip(tracks, _quotas(lengths, max_frames))):
        mixture = np.concatenate([chunk for chunk, _ in track_frames(track, spectral=spectral)])
        per_track.append(_pick(mixture, quota, rng))
        if progress is not None:
            progress(done + 1)
    description = {"source": "tracks", "frames_available": sum(lengths)}
    return _frame_set([track.name for track in tracks], per_track, description, held_out)


def prepared_frame_set(directory, *, spectral=None, max_frames=MAX_FRAMES, seed=0, held_out=HELD_OUT,
                       progress=None):
    """Frames of a cache written by `keras-dae prepare` (the mixture of each of its tracks).

    `spectral`: `SpectralConfig` or None; if given, the cache must have been
    prepared with it. The other arguments as for `track_frame_set`.
    """
    positive_int("max_frames", max_frames, optional=True)
    index = read_index(directory, spectral=spectral)
    quotas = _quotas([shard["frames"] for shard in index["shards"]], max_frames)
    rng = np.random.default_rng(seed)
    per_track = []
    for done, ((_, mixture, _), quota) in enumerate(zip(iter_shards(directory, spectral=spectral), quotas)):
        per_track.append(_pick(mixture, quota, rng))
        if progress is not None:
            progress(done + 1)
    names = [shard["track"] for shard in index["shards"]]
    description = {"source": "prepared", "prepared": str(directory), "frames_available": index["total_frames"]}
    return _frame_set(names, per_track, description, held_out)
