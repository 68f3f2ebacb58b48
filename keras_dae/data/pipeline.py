"""Streaming `(mixture, vocals)` magnitude frames from MUSDB tracks with tf.data.

The pipeline, per epoch (one random excerpt of every track):

    plan     tracks in a seeded random order; for each a random excerpt start,
             optionally a remix partner (vocals of one track over the
             accompaniment of another), random gains and channel swaps, all
             drawn with stateless RNG from `(seed, epoch, position)`, so the
             data do not depend on thread timing
    read     `map(num_parallel_calls=AUTOTUNE)`: decodes the four sources of
             the excerpt; WAV/FLAC in-graph (tensorflow-io where it loads,
             soundfile otherwise), `.stem.mp4` through ffmpeg, both cores busy
    mix      gains, channel swap, mono downmix, mixture = exact sum of sources
    spectra  `spectral.spectrogram` of mixture and vocals, in-graph
    frames   `interleave` over excerpts (frames of several tracks alternate),
             `shuffle`, `batch`, `prefetch`

Validation (`training=False`) uses fixed excerpts, no augmentation, no
shuffling, and one pass.
"""

import logging

import numpy as np
import tensorflow as tf

from keras_dae import spectral as front_end
from keras_dae.checks import one_of, positive_int, positive_number
from keras_dae.data.example import SOURCES
from keras_dae.data.tracks import read_track
from keras_dae.spectral import SpectralConfig

log = logging.getLogger(__name__)

VOCALS = SOURCES.index("vocals")
DOWNMIXES = ("mean", "left")
# Stem (.stem.mp4) sets whose decoded audio fits in this many bytes are
# decoded once and kept in memory.
STEM_CACHE_BYTES = 512 * 2**20
# Uniform draws per excerpt: partner track, two starts, 4 gains, 4 swaps.
_NUM_DRAWS = 11


def _check(tracks, spectral, batch_size, excerpt_seconds, gain_range, downmix, epochs):
    positive_int("epochs", epochs, optional=True)
    if not tracks:
        raise ValueError("musdb_frames needs at least one track.")
    rates = {track.rate for track in tracks}
    if rates != {spectral.sample_rate}:
        raise ValueError(
            f"tracks are at {sorted(rates)} Hz but the spectral settings say "
            f"{spectral.sample_rate} Hz; resample the data or set `sample_rate`."
        )
    positive_int("batch_size", batch_size)
    positive_number("excerpt_seconds", excerpt_seconds)
    low, high = gain_range
    if not 0 <= low <= high:
        raise ValueError(f"gain_range must be (low, high) with 0 <= low <= high. Received: {gain_range!r}")
    one_of("downmix", downmix, DOWNMIXES)


def _plans(tracks, seed, epochs, training, remix, excerpt_samples, first_epoch=0):
    """Dataset of excerpt plans: tracks, excerpt starts and the per-excerpt draws.

    Without remix the accompaniment is the vocals' own track at the same
    start, so the mixture is the track's real mixture there.
    """
    num_tracks = len(tracks)
    lengths = tf.constant([track.num_samples for track in tracks], tf.int64)

    def epoch_order(epoch):
        if training:
            keys = tf.random.stateless_uniform([num_tracks], seed=tf.stack([seed, epoch]))
            order = tf.argsort(keys)
        else:
            order = tf.range(num_tracks)
        return tf.data.Dataset.from_tensor_slices(
            (tf.fill([num_tracks], epoch), tf.range(num_tracks, dtype=tf.int64), tf.cast(order, tf.int64))
        )

    epochs_dataset = tf.data.Dataset.range(first_epoch, first_epoch + (2**62 if epochs is None else epochs))
    plans = epochs_dataset.flat_map(epoch_order)

    def start(track, draw):
        room = tf.maximum(tf.gather(lengths, track) - excerpt_samples + 1, 1)
        return tf.minimum(tf.cast(draw * tf.cast(room, tf.float32), tf.int64), room - 1)

    def draw(epoch, position, track):
        element = epoch * num_tracks + position
        draws = tf.random.stateless_uniform([_NUM_DRAWS], seed=tf.stack([seed + 1, element]), dtype=tf.float32)
        partner, vocals_start = track, start(track, draws[1])
        accompaniment_start = vocals_start
        if training and remix:
            partner = tf.minimum(tf.cast(draws[0] * num_tracks, tf.int64), num_tracks - 1)
            accompaniment_start = start(partner, draws[2])
        return {
            "vocals_track": track,
            "vocals_start": vocals_start,
            "accompaniment_track": partner,
            "accompaniment_start": accompaniment_start,
            "draws": draws,
        }

    return plans.map(draw)


def excerpt_plans(tracks, *, excerpt_samples, seed=0, epochs=1, training=True, remix=False, first_epoch=0):
    """The excerpts `musdb_frames` reads, in the order it reads them.

    For checking the pipeline from outside: `musdb_frames` with the same
    arguments (and `excerpt_samples = round(excerpt_seconds * sample_rate)`)
    makes excerpt `i` from the vocals of track `plans[i, 0]` at sample
    `plans[i, 1]` and the drums, bass and other of track `plans[i, 2]` at
    sample `plans[i, 3]`; without remix (or with `training=False`) the two
    are the same track and start.

    Args:
        tracks: list of `TrackInfo`.
        excerpt_samples: int, the excerpt length in samples.
        seed, training, remix, first_epoch: as for `musdb_frames`.
        epochs: int, default 1; a finite number of passes (1 when
            `training=False`, as in `musdb_frames`).

    Returns:
        int64 array `(excerpts, 4)`: vocals track index, vocals start,
        accompaniment track index, accompaniment start.
    """
    if not training:
        epochs = 1
    positive_int("epochs", epochs)
    keys = ("vocals_track", "vocals_start", "accompaniment_track", "accompaniment_start")
    plans = _plans(tracks, tf.constant(seed, tf.int64), epochs, training, remix, int(excerpt_samples), first_epoch)
    rows = [[plan[key] for key in keys] for plan in plans.as_numpy_iterator()]
    return np.array(rows, np.int64).reshape(-1, len(keys))


def _reader(tracks, excerpt_samples):
    """Graph function `(plan) -> (4, excerpt_samples, 2)` float32 source audio."""

    if any(track.is_stem for track in tracks):
        decoded_bytes = sum(track.num_samples for track in tracks) * len(SOURCES) * 2 * 4
        # ffmpeg costs about 0.5 s per excerpt: a set small enough (the embedded
        # clip, a few tracks) is decoded once and excerpts are cut in memory.
        cache = {} if decoded_bytes <= STEM_CACHE_BYTES else None
        if cache is None:
            log.warning(
                "%d .stem.mp4 tracks (%.1f GB decoded) are decoded with ffmpeg excerpt by excerpt "
                "(about 1 s each); for full-speed training prepare a frame cache "
                "(keras-dae prepare) or convert the set to WAV (MUSDB18-HQ layout)",
                len(tracks), decoded_bytes / 1e9,
            )

        def excerpt(index, start):
            track = tracks[int(index)]
            if cache is None:
                return read_track(track, start, excerpt_samples)
            if int(index) not in cache:
                cache[int(index)] = read_track(track)
            audio = np.zeros((len(SOURCES), excerpt_samples, 2), np.float32)
            piece = cache[int(index)][:, int(start) : int(start) + excerpt_samples]
            audio[:, : piece.shape[1]] = piece
            return audio

        def read_python(vocals_track, vocals_start, accompaniment_track, accompaniment_start):
            vocals = excerpt(vocals_track, vocals_start)
            if accompaniment_track == vocals_track and accompaniment_start == vocals_start:
                return vocals
            audio = excerpt(accompaniment_track, accompaniment_start)
            audio[VOCALS] = vocals[VOCALS]
            return audio

        def read(plan):
            keys = ("vocals_track", "vocals_start", "accompaniment_track", "accompaniment_start")
            audio = tf.numpy_function(
                read_python,
                [plan[key] for key in keys],
                tf.float32,
                stateful=False,
            )
            audio.set_shape([len(SOURCES), excerpt_samples, 2])
            return audio

        return read

    from keras_dae.data import readers  # chooses tensorflow-io or soundfile once

    paths = tf.constant([list(track.paths) for track in tracks])
    channels = tf.constant([track.channels for track in tracks], tf.int32)
    offsets = tf.constant([track.offset for track in tracks], tf.int64)
    lengths = tf.constant([track.num_samples for track in tracks], tf.int64)

    def read_file(track, source, start):
        path = paths[track, source]
        file_start = start + tf.gather(offsets, track)

        def stereo():
            return readers.read_excerpt(path, file_start, excerpt_samples, 2)

        def mono():
            return tf.tile(readers.read_excerpt(path, file_start, excerpt_samples, 1), [1, 2])

        audio = tf.cond(tf.equal(tf.gather(channels, track), 1), mono, stereo)
        # A part of a file (`split_track`) ends before the file does: zeros after it.
        inside = tf.range(excerpt_samples, dtype=tf.int64) < tf.gather(lengths, track) - start
        return tf.where(inside[:, tf.newaxis], audio, 0.0)

    def read(plan):
        audio = []
        for source_index, source in enumerate(SOURCES):
            which = "vocals" if source == "vocals" else "accompaniment"
            audio.append(read_file(plan[f"{which}_track"], source_index, plan[f"{which}_start"]))
        return tf.stack(audio)

    return read


def _mixer(training, random_gain, gain_range, channel_swap, downmix):
    """Graph function `(audio, plan) -> (mixture, vocals)` mono waveforms."""

    def mix(audio, plan):
        draws = plan["draws"]
        if training and random_gain:
            low, high = gain_range
            gains = low + (high - low) * draws[3:7]
            audio = audio * gains[:, tf.newaxis, tf.newaxis]
        if training and channel_swap:
            swap = draws[7:11] < 0.5
            audio = tf.where(swap[:, tf.newaxis, tf.newaxis], tf.reverse(audio, axis=[2]), audio)
        mono = tf.reduce_mean(audio, axis=2) if downmix == "mean" else audio[:, :, 0]
        return tf.reduce_sum(mono, axis=0), mono[VOCALS]

    return mix


def musdb_frames(
    tracks,
    *,
    spectral=None,
    batch_size,
    seed=0,
    excerpt_seconds=6.0,
    training=True,
    remix=False,
    random_gain=False,
    gain_range=(0.25, 1.25),
    channel_swap=False,
    downmix="mean",
    epochs=None,
    first_epoch=0,
    shuffle_buffer=8192,
    cycle_length=4,
    drop_remainder=False,
):
    """A `tf.data.Dataset` of `(mixture, vocals)` magnitude frame batches.

    Args:
        tracks: list of `TrackInfo` (from `list_tracks`).
        spectral: `SpectralConfig` or None (the paper's defaults); its
            `sample_rate` must match the tracks.
        batch_size: int, frames per batch.
        seed: int, default 0. Everything random derives from it.
        excerpt_seconds: float, default 6. Length of each track's excerpt
            per epoch (shorter tracks are zero-padded).
        training: bool, default True. False: fixed excerpts, no augmentation,
            no shuffling, one pass (for validation).
        remix: bool. Vocals of one track over the accompaniment of another.
        random_gain: bool. Each source scaled by a gain uniform in `gain_range`.
        gain_range: `(low, high)`, default `(0.25, 1.25)`.
        channel_swap: bool. Each source's left and right swapped with
            probability 1/2. It changes nothing with the default mean
            downmix (the mean of two channels does not depend on their
            order); use it with `downmix="left"`.
        downmix: str, `"mean"` (default) or `"left"`: how stereo becomes the
            mono signal the models see.
        epochs: int or None. Passes over the tracks; None repeats forever
            when training, and means 1 for validation.
        first_epoch: int, default 0. Number of the first epoch: a resumed
            training run passes the epochs already done, so it does not
            replay the excerpts of its first epochs.
        shuffle_buffer: int, default 8192. Frames in the shuffle buffer.
        cycle_length: int, default 4. Excerpts whose frames interleave.
        drop_remainder: bool, default False. Drop a last, smaller batch.

    Returns:
        `tf.data.Dataset` of `(mixture, vocals)`, each float32
        `(batch, spectral.num_bins)`.

    Raises:
        ValueError: for bad arguments or tracks at another sample rate.
    """
    spectral = spectral or SpectralConfig()
    _check(tracks, spectral, batch_size, excerpt_seconds, gain_range, downmix, epochs)
    if channel_swap and downmix == "mean" and training:
        log.warning("channel_swap has no effect with the mean downmix; use `downmix='left'`")
    excerpt_samples = int(round(excerpt_seconds * spectral.sample_rate))
    if not training:
        epochs = 1
    read = _reader(tracks, excerpt_samples)
    mix = _mixer(training, random_gain, gain_range, channel_swap, downmix)

    def excerpt_spectra(plan):
        mixture, vocals = mix(read(plan), plan)
        spectra = front_end.spectrogram(tf.stack([mixture, vocals]), spectral)
        return spectra[0], spectra[1]

    dataset = _plans(tracks, tf.constant(seed, tf.int64), epochs, training, remix, excerpt_samples, first_epoch)
    dataset = dataset.map(excerpt_spectra, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.interleave(
        lambda mixture, vocals: tf.data.Dataset.from_tensor_slices((mixture, vocals)),
        cycle_length=cycle_length,
        block_length=16,
    )
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def collect_frames(dataset, max_frames=None):
    """Materialises a frames dataset into NumPy arrays `(frames, num_bins)`."""
    mixtures, vocals = [], []
    count = 0
    for mixture, vocal in dataset.as_numpy_iterator():
        mixtures.append(mixture)
        vocals.append(vocal)
        count += len(mixture)
        if max_frames is not None and count >= max_frames:
            break
    if not mixtures:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    mixture, vocal = np.concatenate(mixtures), np.concatenate(vocals)
    return mixture[:max_frames], vocal[:max_frames]
