"""Synthetic tracks in the MUSDB18 layouts: a test fixture, not music.

These signals exist so that tests, benchmarks and smoke runs can exercise the
data pipelines, training and separation end to end without the (licensed,
30 GB) MUSDB18 corpus. They only have the properties a separator relies on: a
harmonic "voice" (a held-note fundamental of 150-400 Hz with vibrato, 15-30
harmonics under moving formants, silent rests) over harmonic bass and chords
and percussive drums, stereo, 32-bit float, with a mixture that is the exact
sum of the sources. Nothing learned or measured on them says anything about
real singing voice separation.

`write_synthetic_musdb` writes MUSDB18-HQ's WAV tree
(`<subset>/<track>/{mixture,drums,bass,other,vocals}.wav`), which
`musdb.DB(root, is_wav=True)` reads; `convert_to_stems` turns that tree into
MUSDB18's `<subset>/<track>.stem.mp4` files, which `musdb.DB(root)` reads.
"""

import errno
import numbers
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile

from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.checks import ParameterError, non_negative_int, one_of, positive_int, positive_number
from keras_dae.data.example import SOURCES, import_stempeg  # SOURCES in MUSDB order: drums, bass, other, vocals
from keras_dae.data.tracks import STEM_IDS, SUBSETS
from keras_dae.errors import disk_error, size_text, writing
from keras_dae.locking import directory_lock

# The stream order of MUSDB18's `.stem.mp4` files (musdb's `stem_ids`).
STEM_ORDER = ("mixture",) + tuple(sorted(STEM_IDS, key=STEM_IDS.get))

# Formant centres (F1, F2, F3) in Hz of the vowels /a/ /e/ /i/ /o/ /u/,
# rounded from Peterson & Barney (1952).
VOWELS = np.array(
    [[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240]],
    dtype=np.float64,
)
FORMANT_WIDTHS = np.array([80.0, 100.0, 150.0])  # half-bandwidths in Hz
FORMANT_GAINS = np.array([1.0, 0.7, 0.4])
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# Source peaks before mixing, and the largest mixture peak allowed.
LEVELS = {"vocals": 0.35, "drums": 0.3, "bass": 0.3, "other": 0.2}
MAX_PEAK = 0.9


def _midi_to_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _seed_sequence(seed):
    def valid(part):
        return isinstance(part, numbers.Integral) and not isinstance(part, bool) and part >= 0

    if valid(seed):
        return np.random.SeedSequence(int(seed))
    if isinstance(seed, tuple) and seed and all(valid(part) for part in seed):
        return np.random.SeedSequence([int(part) for part in seed])
    raise ValueError(
        f"`seed` must be a non-negative int or a tuple of them. Received: seed={seed!r}"
    )


def _score(rng, seconds):
    """Tempo, key and one triad per bar, shared by all sources of a track."""
    beat = 60.0 / rng.uniform(84.0, 132.0)
    tonic = int(rng.integers(0, 12))
    scale = MAJOR if rng.random() < 0.5 else MINOR
    num_bars = int(np.ceil(seconds / (4 * beat))) + 1
    # I, then any of I IV V vi, as scale degrees.
    degrees = [0] + [int(d) for d in rng.choice([0, 3, 4, 5], size=num_bars - 1)]

    def pitch_class(degree):
        return (tonic + 12 * (degree // 7) + scale[degree % 7]) % 12

    chords = [tuple(pitch_class(d + step) for step in (0, 2, 4)) for d in degrees]
    scale_classes = {(tonic + interval) % 12 for interval in scale}
    return {"beat": beat, "chords": chords, "scale": scale_classes}


def _in_range(pitch_class, low):
    """The MIDI note of `pitch_class` in the octave starting at `low`."""
    return low + (pitch_class - low) % 12


def _harmonics(phase, num_harmonics):
    """Yields `(h, sin(h * phase))` for h = 1..num_harmonics.

    Uses sin((h + 1) x) = 2 cos(x) sin(h x) - sin((h - 1) x): two multiplies
    per harmonic instead of a `sin` each (about 7 times faster).
    """
    previous, current = np.zeros_like(phase), np.sin(phase)
    twice_cos = 2 * np.cos(phase)
    for h in range(1, num_harmonics + 1):
        yield h, current
        previous, current = current, twice_cos * current - previous


def _note(freq, length, rate, amplitudes, attack, release, decay=None):
    """One harmonic note `(length,)`: harmonic `h` has `amplitudes[h - 1]`.

    With `decay` (seconds), harmonic `h` decays as `exp(-t (h + 3) / (4 decay))`,
    a plucked string's brighter onset; harmonics above 0.45 `rate` are left out.
    """
    t = np.arange(length) / rate
    out = np.zeros(length)
    num_harmonics = min(len(amplitudes), int(np.ceil(0.45 * rate / freq)) - 1)
    if decay is None:
        fade, step = np.ones(length), 1.0
    else:
        fade, step = np.exp(-t / decay), np.exp(-t / (4 * decay))
    for h, partial in _harmonics(2 * np.pi * freq * t, num_harmonics):
        out += amplitudes[h - 1] * fade * partial
        fade = fade * step
    ramp_in = np.clip(t / attack, 0.0, 1.0)
    ramp_out = np.clip((length / rate - t) / release, 0.0, 1.0)
    return out * ramp_in * ramp_out


def _add(out, start, signal):
    stop = min(len(out), start + len(signal))
    if start < stop:
        out[start:stop] += signal[: stop - start]


def _vocals(rng, score, num_samples, rate):
    """Held notes with vibrato and moving formants, separated by rests."""
    beat = score["beat"]
    hop = max(1, rate // 200)  # pitch, formants and envelope at a 200 Hz control rate
    num_frames = num_samples // hop + 2
    frame_times = np.arange(num_frames) * hop / rate
    candidates = [m for m in range(51, 67) if m % 12 in score["scale"]]  # 156-370 Hz

    log_f0 = np.full(num_frames, np.log(_midi_to_hz(candidates[0])))
    formants = np.tile(VOWELS[0], (num_frames, 1))
    envelope = np.zeros(num_frames)
    # A one-beat rest first, so every track has some silent vocals; later
    # rests (1-2 beats) only ever follow a note.
    time, resting = beat, True
    while time < frame_times[-1]:
        if not resting and rng.random() < 0.25:
            time += beat * int(rng.choice([1, 2]))
            resting = True
            continue
        resting = False
        length = beat * int(rng.choice([1, 2, 3]))
        chord = score["chords"][int(time // (4 * beat))]
        weights = np.array([3.0 if m % 12 in chord else 1.0 for m in candidates])
        midi = rng.choice(candidates, p=weights / weights.sum())
        start_vowel, stop_vowel = VOWELS[rng.choice(len(VOWELS), size=2)]
        first, last = np.searchsorted(frame_times, [time, time + 0.9 * length])
        # Hold pitch and vowel until the next note, so rests do not glide.
        log_f0[first:] = np.log(_midi_to_hz(midi))
        position = np.linspace(0.0, 1.0, last - first)[:, None]
        formants[first:last] = (1 - position) * start_vowel + position * stop_vowel
        formants[last:] = stop_vowel
        span = frame_times[first:last] - time
        envelope[first:last] = np.clip(
            np.minimum(span / 0.04, (0.9 * length - span) / 0.08), 0.0, 1.0
        ) * rng.uniform(0.7, 1.0)
        time += length

    # Portamento and smooth vowel changes: a 40 ms moving average.
    kernel = np.ones(max(1, int(0.04 * rate / hop)))
    kernel /= kernel.size
    pad = kernel.size // 2

    def smooth(x):
        padded = np.pad(x, (pad, kernel.size - 1 - pad), mode="edge")
        return np.convolve(padded, kernel, mode="valid")

    vibrato_rate, vibrato_depth = rng.uniform(5.0, 6.0), rng.uniform(0.015, 0.03)
    f0 = np.exp(smooth(log_f0)) * (1 + vibrato_depth * np.sin(2 * np.pi * vibrato_rate * frame_times))
    formants = np.stack([smooth(formants[:, k]) for k in range(3)], axis=1)

    num_harmonics = int(rng.integers(15, 31))
    harmonics = np.arange(1, num_harmonics + 1)
    freqs = f0[:, None] * harmonics  # (frames, harmonics)
    resonance = FORMANT_GAINS / (
        1 + ((freqs[..., None] - formants[:, None, :]) / FORMANT_WIDTHS) ** 2
    )
    amplitudes = envelope[:, None] * (resonance.sum(-1) + 0.02) / harmonics
    amplitudes[freqs >= 0.45 * rate] = 0.0

    positions = np.arange(num_samples) / hop
    frames = np.arange(num_frames)
    phase = np.mod(2 * np.pi * np.cumsum(np.interp(positions, frames, f0)) / rate, 2 * np.pi)
    out = np.zeros(num_samples)
    for h, partial in _harmonics(phase, num_harmonics):
        out += np.interp(positions, frames, amplitudes[:, h - 1]) * partial
    return out


def _bass(rng, score, num_samples, rate):
    """Plucked low notes (41-117 Hz) on the chord roots and fifths."""
    beat = score["beat"]
    amplitudes = 1.0 / np.arange(1, 9) ** 1.2
    out = np.zeros(num_samples)
    time = 0.0
    while time * rate < num_samples:
        length = beat * int(rng.choice([1, 2]))
        root = score["chords"][int(time // (4 * beat))][0]
        midi = _in_range(root, 28) + (7 if rng.random() < 0.25 else 0)  # MIDI 28-46
        note = _note(_midi_to_hz(midi), int(length * rate), rate, amplitudes, 0.005, 0.02, decay=0.4)
        _add(out, int(time * rate), note)
        time += length
    return out


def _other(rng, score, num_samples, rate):
    """A soft pad playing each bar's triad, and a few brighter, clarinet-like notes."""
    beat = score["beat"]
    pad = 1.0 / np.arange(1, 7) ** 2
    odd = np.array([1.0 / h if h % 2 else 0.0 for h in range(1, 12)])
    out = np.zeros(num_samples)
    for bar, chord in enumerate(score["chords"]):
        start = int(bar * 4 * beat * rate)
        if start >= num_samples:
            break
        for pitch_class in chord:
            freq = _midi_to_hz(_in_range(pitch_class, 55))
            _add(out, start, 0.4 * _note(freq, int(4 * beat * rate), rate, pad, 0.15, 0.25))
        for step in range(4):
            if rng.random() < 0.3:
                freq = _midi_to_hz(_in_range(int(rng.choice(chord)), 67))
                note = _note(freq, int(beat * rate), rate, odd, 0.01, 0.05, decay=0.6)
                _add(out, start + int(step * beat * rate), 0.5 * note)
    return out


def _drums(rng, score, num_samples, rate):
    """Kick, snare and hi-hat hits on an eighth-note grid."""
    eighth = score["beat"] / 2
    t = np.arange(int(0.35 * rate)) / rate
    kick_freq = 45.0 + 100.0 * np.exp(-t / 0.03)  # the pitch drop of a kick drum
    kick = np.sin(2 * np.pi * np.cumsum(kick_freq) / rate) * np.exp(-t / 0.12)
    snare_t, hat_t = t[: int(0.25 * rate)], t[: int(0.08 * rate)]
    out = np.zeros(num_samples)
    step = 0
    while step * eighth * rate < num_samples:
        start, position = int(step * eighth * rate), step % 8
        if position in (0, 4) or (position in (5, 7) and rng.random() < 0.3):
            _add(out, start, kick)
        if position in (2, 6):
            noise = rng.standard_normal(snare_t.size) * 0.35 * np.exp(-snare_t / 0.07)
            body = 0.5 * np.sin(2 * np.pi * 190.0 * snare_t) * np.exp(-snare_t / 0.05)
            _add(out, start, noise + body)
        if rng.random() < 0.9:
            # A difference of white noise: hiss without the lows.
            hiss = np.diff(rng.standard_normal(hat_t.size + 1)) * 0.15
            _add(out, start, hiss * np.exp(-hat_t / 0.015) * (1.0 if position % 2 else 0.6))
        step += 1
    return out


_SYNTHS = {"vocals": _vocals, "drums": _drums, "bass": _bass, "other": _other}


def synthesize_track(seconds, rate=44100, seed=0):
    """Synthesizes the four sources of one test track (not music).

    The sources share a tempo (84-132 bpm), a key and a chord per bar. Each
    is scaled to its own peak level and panned slightly; if the mixture would
    peak above 0.9, all four are scaled down together, so
    `vocals + drums + bass + other` stays below 1.0 in absolute value.

    Args:
        seconds: float, the length of the track.
        rate: int, sample rate in Hz. Defaults to 44100.
        seed: non-negative int, or tuple of them. Defaults to 0. Equal seeds
            give identical tracks; others give other tempi, keys, chords and
            melodies.

    Returns:
        dict from source name (`drums`, `bass`, `other`, `vocals`, in that
        order, `SOURCES`) to float32 arrays `(samples, 2)`, with
        `samples = round(seconds * rate)`.

    Raises:
        ValueError: if an argument is out of range.
        MemoryError: the track does not fit in this machine's memory.

    Example:

    >>> sources = synthesize_track(2.0, rate=22050, seed=3)
    >>> sources["vocals"].shape
    (44100, 2)
    """
    positive_number("seconds", seconds)
    positive_int("rate", rate)
    sequence = _seed_sequence(seed)
    num_samples = int(round(seconds * rate))
    if num_samples < 1:
        raise ParameterError(
            "seconds", f"`seconds` must last at least one sample at rate={rate}. Received: seconds={seconds}"
        )
    _check_memory(num_samples, seconds, rate)
    # One generator per source, so that changing one source's synthesis does
    # not change the others.
    score_seed, *source_seeds = sequence.spawn(1 + len(SOURCES))
    score = _score(np.random.default_rng(score_seed), num_samples / rate)
    sources = {}
    for name, source_seed in zip(SOURCES, source_seeds):
        rng = np.random.default_rng(source_seed)
        mono = _SYNTHS[name](rng, score, num_samples, rate)
        peak = np.abs(mono).max()
        mono = mono * (LEVELS[name] / peak) if peak > 0 else mono
        pan = rng.uniform(-0.1, 0.1) if name == "vocals" else rng.uniform(-0.3, 0.3)
        sources[name] = mono[:, None] * np.array([1.0 - pan, 1.0 + pan])
    peak = np.abs(sum(sources.values())).max()
    scale = min(1.0, MAX_PEAK / peak) if peak > 0 else 1.0
    return {name: (audio * scale).astype(np.float32) for name, audio in sources.items()}


# Peak bytes per sample of `synthesize_track` (measured: 120) and of writing its mixture beside it.
BYTES_PER_SAMPLE = 128


def _physical_memory():
    """Bytes of physical memory, or None if the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _check_memory(num_samples, seconds, rate):
    """A `MemoryError` naming `seconds` if one track cannot fit in this machine's memory (it is made whole)."""
    needed, memory = num_samples * BYTES_PER_SAMPLE, _physical_memory()
    if memory is not None and needed > memory:
        raise MemoryError(
            f"a synthetic track of {seconds:g} s at {rate} Hz needs about {size_text(needed)} of memory, more "
            f"than this machine's {size_text(memory)} (each track is made whole); use a shorter `seconds`."
        )


def _check_disk(out, num_tracks, seconds, rate):
    """An `OSError` (ENOSPC) naming `out` if the tracks cannot fit on its file system, before writing any."""
    needed = num_tracks * (len(SOURCES) + 1) * int(round(seconds * rate)) * 2 * 4  # float32 stereo WAVs
    existing = next((path for path in [Path(out), *Path(out).absolute().parents] if path.is_dir()), None)
    if existing is None:
        return
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise disk_error(
            f"{num_tracks} synthetic track{'s' if num_tracks > 1 else ''} of {seconds:g} s need about "
            f"{size_text(needed)} but '{existing}' has {size_text(free)} free; write fewer or shorter tracks, "
            "or choose another `out`.", errno.ENOSPC
        )


def write_synthetic_musdb(out, num_tracks, seconds, rate=44100, seed=0, subset="train"):
    """Writes synthetic test tracks (not music) in MUSDB18-HQ's WAV layout.

    Writes `out/<subset>/synthetic-000/{mixture,vocals,drums,bass,other}.wav`
    and so on, 32-bit float stereo, where `mixture` is the float32 sum
    `vocals + drums + bass + other` (in that order) of the other four files,
    exactly. Track `i` is `synthesize_track(seconds, rate, seed=(seed, s, i))`
    with `s` the index of `subset` in `("train", "test")`, so the train and
    test subsets of one seed share no track. Each file is written to a
    temporary name and renamed into place, the mixture last; existing tracks
    of the same names are overwritten, other files are left alone.

    Args:
        out: str or `Path`, the root directory (musdb's `root`).
        num_tracks: int, how many tracks to write.
        seconds: float, the length of each track.
        rate: int, sample rate in Hz. Defaults to 44100.
        seed: non-negative int. Defaults to 0.
        subset: `"train"` or `"test"`. Defaults to `"train"`.

    Returns:
        list of `Path`, the track directories, in name order.

    Raises:
        ValueError: if an argument is out of range.
        MemoryError: a track of `seconds` does not fit in memory (one line).
        OSError: the disk is full (one line naming `out`).
        keras_dae.locking.DirectoryInUse: another process is writing `out`.

    Example:

    >>> dirs = write_synthetic_musdb("data/synthetic", num_tracks=4, seconds=10.0)
    >>> len(musdb.DB(root="data/synthetic", is_wav=True, subsets="train"))
    4
    """
    positive_int("num_tracks", num_tracks)
    positive_number("seconds", seconds)
    positive_int("rate", rate)
    non_negative_int("seed", seed)
    one_of("subset", subset, SUBSETS)
    _check_memory(int(round(seconds * rate)), seconds, rate)
    _check_disk(out, num_tracks, seconds, rate)
    width = max(3, len(str(num_tracks - 1)))
    track_dirs = []
    # One writer of `out` at a time; the temporaries of a killed writer (`<subset>/<track>/.*.tmp-*.wav`) go.
    with directory_lock(out), writing(out, "synthetic tracks in "):
        remove_stale_temporaries(out, depth=2)
        for index in range(num_tracks):
            sources = synthesize_track(seconds, rate=rate, seed=(int(seed), SUBSETS.index(subset), index))
            mixture = sources["vocals"] + sources["drums"] + sources["bass"] + sources["other"]
            track_dir = Path(out) / subset / f"synthetic-{index:0{width}d}"
            for name, audio in [*sources.items(), ("mixture", mixture)]:
                with atomic_path(track_dir / f"{name}.wav") as tmp:
                    soundfile.write(tmp, audio, rate, subtype="FLOAT", format="WAV")
            track_dirs.append(track_dir)
    return track_dirs


def convert_to_stems(root, out, subsets=("train",)):
    """Converts a MUSDB18-HQ WAV tree into MUSDB18's `.stem.mp4` layout.

    Each `root/<subset>/<track>/` holding a `mixture.wav` becomes
    `out/<subset>/<track>.stem.mp4` with five AAC streams (mixture, drums,
    bass, other, vocals), written by `stempeg` through the system ffmpeg to a
    temporary name and renamed into place. Like MUSDB18 itself, the result is
    lossy: stempeg passes the audio through 16-bit PCM, then AAC.

    Args:
        root: str or `Path`, a tree as written by `write_synthetic_musdb`.
        out: str or `Path`, the root of the stems tree (may equal `root`).
        subsets: tuple of `"train"` / `"test"`, or one of them. Defaults to
            `("train",)`.

    Returns:
        list of `Path`, the `.stem.mp4` files written.

    Raises:
        ValueError: if a subset name is unknown, or a track's files differ
            in shape or sample rate.
        FileNotFoundError: if `root/<subset>` is missing.
        RuntimeError: if ffmpeg/ffprobe are missing or ffmpeg fails.
    """
    stempeg = import_stempeg()
    subsets = (subsets,) if isinstance(subsets, str) else tuple(subsets)
    for subset in subsets:
        if subset not in SUBSETS:
            raise ValueError(f"Each subset must be one of {SUBSETS}. Received: subsets={subsets!r}")
    written = []
    for subset in subsets:
        subset_dir = Path(root) / subset
        if not subset_dir.is_dir():
            raise FileNotFoundError(f"No directory {subset_dir} to convert.")
        for track_dir in sorted(p for p in subset_dir.iterdir() if (p / "mixture.wav").is_file()):
            stems, rates = [], set()
            for name in STEM_ORDER:
                audio, file_rate = soundfile.read(track_dir / f"{name}.wav", dtype="float32", always_2d=True)
                stems.append(audio)
                rates.add(file_rate)
            if len(rates) != 1 or len({audio.shape for audio in stems}) != 1:
                raise ValueError(f"The WAV files of {track_dir} differ in sample rate or shape.")
            path = Path(out) / subset / f"{track_dir.name}.stem.mp4"
            # A writer per call: stempeg's default writer is one shared instance
            # that keeps the sample rate and stem names of its first call.
            writer = stempeg.StreamsWriter(codec="aac", bitrate=256000, stem_names=list(STEM_ORDER))
            with atomic_path(path) as tmp:
                # Absolute: stempeg puts the output path last on ffmpeg's command line, where a
                # relative name beginning with `-` would be read as an option.
                stempeg.write_stems(str(Path(tmp).absolute()), np.stack(stems), sample_rate=rates.pop(),
                                    writer=writer)
            written.append(path)
    return written
