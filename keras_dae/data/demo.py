"""Demo data for `keras-dae reproduce` without MUSDB18: the real clip mixed into longer synthetic tracks.

The embedded 6-second MUSDB18 excerpt alone is too little to train the models
or to determine the couplings of 128 bins (its ~560 test frames are one
short passage, strongly correlated). `write_demo_musdb` writes a MUSDB18-HQ
WAV tree whose every track is, source by source, a synthetic track
(`synthetic.synthesize_track`: harmonic voice, bass, chords, drums) plus the
real clip's same source, tiled to the track's length from a random offset
and with a random gain per source. Train and test tracks differ in their
synthetic part and in the clip's offsets and gains; the real clip itself is
in both, so the test scores are not a generalisation figure.

This is demo data: nothing measured on it says anything about MUSDB18.
"""

from pathlib import Path

import numpy as np
import soundfile

from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.checks import non_negative_int, positive_int, positive_number
from keras_dae.data.example import SOURCES, load_example
from keras_dae.data.synthetic import synthesize_track
from keras_dae.locking import directory_lock

CLIP_GAINS = (0.5, 1.5)  # range of the random gain of each clip source
MAX_PEAK = 0.99


def demo_track(clip, seconds, seed):
    """One demo track: dict source -> float32 `(samples, 2)`, the synthetic track plus the tiled clip."""
    sources = synthesize_track(seconds, rate=clip.rate, seed=seed)
    rng = np.random.default_rng(seed)
    num_samples = len(sources["vocals"])
    clip_length = len(clip.sources["vocals"])
    offset = int(rng.integers(clip_length))
    index = (offset + np.arange(num_samples)) % clip_length
    mixed = {name: sources[name] + rng.uniform(*CLIP_GAINS) * clip.sources[name][index] for name in SOURCES}
    peak = np.abs(sum(mixed.values())).max()
    scale = min(1.0, MAX_PEAK / peak) if peak > 0 else 1.0
    return {name: (audio * scale).astype(np.float32) for name, audio in mixed.items()}


def write_demo_musdb(out, num_train=6, num_test=2, seconds=30.0, seed=0, num_valid=1):
    """Writes demo tracks in MUSDB18-HQ's WAV layout (`musdb.DB(out, is_wav=True)` reads it).

    Writes `out/{train,test}/demo-NNN/{mixture,drums,bass,other,vocals}.wav`
    and the validation tracks `out/train/demo-valid-NNN/`, 32-bit float stereo
    at 44.1 kHz, the mixture the exact float32 sum of the four sources; each
    file through a temporary name, the mixture last. The validation tracks
    sort last in `train/`, which is what training holds out of a collection
    without musdb's validation tracks (`training.HELD_OUT_TRACKS`).

    Args:
        out: str or `Path`, the root directory.
        num_train, num_test: int >= 1, tracks per subset.
        seconds: float > 0, the length of each track.
        seed: int >= 0; train, validation and test tracks of one seed share no synthetic part.
        num_valid: int >= 0, validation tracks.

    Returns:
        list of `Path`, the track directories.
    """
    positive_int("num_train", num_train)
    positive_int("num_test", num_test)
    non_negative_int("num_valid", num_valid)
    positive_number("seconds", seconds)
    non_negative_int("seed", seed)
    clip = load_example()
    track_dirs = []
    kinds = (("train", "demo", num_train), ("test", "demo", num_test), ("train", "demo-valid", num_valid))
    with directory_lock(out):  # one writer at a time; a killed writer's temporaries go
        remove_stale_temporaries(out, depth=2)
        for kind_index, (subset, prefix, count) in enumerate(kinds):
            for index in range(count):
                sources = demo_track(clip, seconds, seed=(int(seed), 100 + kind_index, index))
                mixture = sources["vocals"] + sources["drums"] + sources["bass"] + sources["other"]
                track_dir = Path(out) / subset / f"{prefix}-{index:03d}"
                for name, audio in [*sources.items(), ("mixture", mixture)]:
                    with atomic_path(track_dir / f"{name}.wav") as tmp:
                        soundfile.write(tmp, audio, clip.rate, subtype="FLOAT", format="WAV")
                track_dirs.append(track_dir)
    return track_dirs
