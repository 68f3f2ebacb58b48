"""A spectrogram cache: MUSDB tracks as sharded TFRecord files of frames.

Decoding `.stem.mp4` files (ffmpeg) or long WAVs and taking their STFT costs
far more than training a DAE on the frames, so a dataset can be prepared once
and streamed from disk afterwards:

    DIR/index.json                     spectral settings, the track list
    DIR/<subset>-<i>-<name>.tfrecord   one shard per track, records of up to
                                       `FRAMES_PER_RECORD` frames
    DIR/<subset>-<i>-<name>.json       the shard's sidecar, written last:
                                       a shard without one is incomplete

Each shard holds every frame of its track, `(mixture, vocals)` magnitudes of
the mono (mean) downmix, the mixture being the sum of the four sources:
exactly `spectral.spectrogram` of the whole track, computed chunk by chunk.
The cache holds fixed, unaugmented frames (remixing and gains act on
waveforms, so they need the streaming pipeline).

Shards are written under a temporary name and renamed when whole; re-running
skips shards whose sidecar matches (and removes the temporaries a killed run
left, `atomic.remove_stale_temporaries`). `worker_index`/`num_workers` give
track `i` to worker `i % num_workers`, so several machines can prepare one
directory together; each rewrites `index.json` when it finishes. One
preparation holds the directory's lock (`keras_dae.locking`); workers share
it, each holding its own part (`worker-I`) alone.

`jobs` is orthogonal to the workers: within one worker's part (all of it
without workers), its shards are written by `jobs` spawned processes
(`keras_dae.workers`), one shard per task, the longest tracks first. This
process holds the lock (or the part), skips the complete shards before it
hands out the others, and writes `index.json`; each process writes its shard
and then its sidecar, atomically, exactly as the sequential path does, so
the shards are byte for byte those of `jobs=1`. After a `kill -9` the workers
exit within a second or two; only the shards in flight are lost, and a rerun
removes their temporaries and writes them.

Size: 2 x 4 x num_bins bytes per frame, about 6.5 GB per hour of audio at the
default 2049 bins.
"""

import contextlib
import json
import logging
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_dae import spectral as front_end
from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.checks import non_negative_int, positive_int
from keras_dae.data.example import SOURCES
from keras_dae.data.readers import iterate_reading
from keras_dae.data.tracks import read_track
from keras_dae.errors import tensorflow_detail, writing
from keras_dae.locking import directory_lock
from keras_dae.workers import in_processes, usable_cores

log = logging.getLogger(__name__)

FORMAT = "keras-dae-frames"
FORMAT_VERSION = 1
INDEX = "index.json"
FRAMES_PER_RECORD = 64
# Frames computed per STFT call (about 18 s of audio at the defaults).
CHUNK_FRAMES = 2048
# The default `jobs`: one preparation keeps about 1.3 cores busy on its own (TensorFlow's FFT, the decoding),
# and a worker takes about 4.5 s to start: on 2 cores `jobs=2` took 2.7-5 times as long as `jobs=1`.
CORES_PER_JOB = 2
VOCALS = SOURCES.index("vocals")


def _shard_name(position, track):
    slug = re.sub(r"[^A-Za-z0-9]+", "_", track.name).strip("_")[:60] or "track"
    return f"{track.subset}-{position:04d}-{slug}"


def _planned(tracks):
    """`(shard name, track)` for every track, in a fixed order."""
    return [(_shard_name(position, track), track) for position, track in enumerate(tracks)]


def _chunk_audio(track, spectral, first, last, whole=None):
    """Padded mono `(mixture, vocals)` samples of frames `[first, last)`, `(2, n)`."""
    start = first * spectral.hop_length - spectral.pad_left
    length = (last - first - 1) * spectral.hop_length + spectral.window_length
    skip = max(-start, 0)
    if whole is None:
        audio = read_track(track, start + skip, length - skip)
    else:
        audio = np.zeros((len(SOURCES), length - skip, 2), np.float32)
        piece = whole[:, start + skip : start + length]
        audio[:, : piece.shape[1]] = piece
    mono = audio.mean(axis=2)
    pair = np.stack([mono.sum(axis=0), mono[VOCALS]])
    return np.pad(pair, ((0, 0), (skip, 0)))


def track_frames(track, *, spectral=None):
    """Yields `(mixture, vocals)` float32 `(frames, num_bins)` chunks of a whole track.

    Their concatenation equals `keras_dae.spectral.spectrogram` (at
    `spectral`, a `SpectralConfig`, default the paper's) of the track's mono
    mixture (sum of sources) and vocals. WAV sources are read chunk by chunk;
    a `.stem.mp4` is decoded once (ffmpeg cannot seek sample-exactly).
    """
    spectral = spectral or front_end.SpectralConfig()
    total = spectral.num_frames(track.num_samples)
    # In a dict emptied at the end: `tf.numpy_function` keeps `load` registered after the dataset is gone, and
    # with it whatever `load` holds (a whole decoded track: 170 MB per 2 minutes, kept for every track prepared).
    held = {"whole": read_track(track) if track.is_stem else None}
    firsts = list(range(0, total, CHUNK_FRAMES))

    def load(first):
        last = min(int(first) + CHUNK_FRAMES, total)
        return _chunk_audio(track, spectral, int(first), last, held["whole"])

    def spectra(first):
        pair = tf.numpy_function(load, [first], tf.float32, stateful=False)
        pair.set_shape([2, None])
        frames = front_end.magnitude(front_end.stft_frames(pair, spectral))
        return frames[0], frames[1]

    dataset = tf.data.Dataset.from_tensor_slices(np.array(firsts, np.int64))
    dataset = dataset.map(spectra, num_parallel_calls=2, deterministic=True).prefetch(1)
    try:
        # A source's error (e.g. a NaN sample, `read_track`) as its one-line ValueError, not TensorFlow's.
        yield from iterate_reading(dataset.as_numpy_iterator())
    finally:
        held.clear()


def _records(mixture, vocals):
    for begin in range(0, len(mixture), FRAMES_PER_RECORD):
        mix = np.ascontiguousarray(mixture[begin : begin + FRAMES_PER_RECORD])
        voc = np.ascontiguousarray(vocals[begin : begin + FRAMES_PER_RECORD])
        feature = {
            "mixture": tf.train.Feature(bytes_list=tf.train.BytesList(value=[mix.tobytes()])),
            "vocals": tf.train.Feature(bytes_list=tf.train.BytesList(value=[voc.tobytes()])),
            "frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[len(mix)])),
        }
        # Deterministic: the map of features is otherwise serialised in an order that varies between processes
        # (upb's hash seed), so the same shard written by another process (`jobs`, a rerun) had other bytes.
        yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def _write_shard(directory, name, track, spectral, progress):
    """Writes `name.tfrecord` then its sidecar `name.json`; returns the sidecar."""
    frames = 0
    shard = directory / f"{name}.tfrecord"
    with atomic_path(shard) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for mixture, vocals in track_frames(track, spectral=spectral):
                for record in _records(mixture, vocals):
                    writer.write(record)
                frames += len(mixture)
                if progress is not None:
                    progress.add(len(mixture))
    sidecar = {
        "track": track.name,
        "subset": track.subset,
        "file": shard.name,
        "frames": frames,
        "bytes": shard.stat().st_size,
        "spectral": spectral.to_dict(),
    }
    _write_json(directory / f"{name}.json", sidecar)
    return sidecar


def _worker_write_shard(directory, name, track, spectral):
    """One task of a worker process: `_write_shard` without a progress bar (the parent advances it)."""
    return _write_shard(Path(directory), name, track, spectral, None)


def _write_in_workers(directory, todo, spectral, jobs, bar):
    """Writes the shards `todo` (`[(name, track)]`) in `jobs` worker processes, `bar` advanced as each finishes."""
    # The longest tracks first, so that no long shard starts last while the other jobs sit idle.
    todo = sorted(todo, key=lambda planned: -planned[1].num_samples)
    items = [(str(directory), name, track, spectral) for name, track in todo]
    finished = in_processes(_worker_write_shard, items, jobs=jobs,
                            describe=lambda item: f"shard '{item[1]}' (track '{item[2].name}')")
    for (_, name, _, _), sidecar in finished:
        log.debug("wrote shard %s", name)
        if bar is not None:
            bar.add(sidecar["frames"])


def _write_json(path, data):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read '{path}': {error}") from None


def _complete_sidecar(directory, name, spectral):
    """The shard's sidecar if the shard is whole and matches `spectral`, else None."""
    path = directory / f"{name}.json"
    if not path.is_file():
        return None
    try:
        sidecar = json.loads(path.read_text())
        size = (directory / sidecar["file"]).stat().st_size
    except (OSError, ValueError, KeyError):
        return None
    if size != sidecar.get("bytes") or sidecar.get("spectral") != spectral.to_dict():
        return None
    return sidecar


def _index(directory, planned, spectral, selection):
    shards = []
    for name, track in planned:
        sidecar = _complete_sidecar(directory, name, spectral)
        shards.append(
            {
                "name": name,
                "track": track.name,
                "subset": track.subset,
                "file": f"{name}.tfrecord",
                "frames": sidecar["frames"] if sidecar else None,
            }
        )
    done = [shard["frames"] for shard in shards if shard["frames"] is not None]
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "spectral": spectral.to_dict(),
        "downmix": "mean",
        "frames_per_record": FRAMES_PER_RECORD,
        "selection": selection,
        "shards": shards,
        "complete": len(done) == len(shards),
        "total_frames": int(sum(done)),
    }


def _differences(cached, wanted):
    """`num_bins 64 there, 65 here`, for each setting that differs."""
    keys = sorted(set(cached) | set(wanted))
    return ", ".join(
        f"{key} {cached.get(key)} there, {wanted.get(key)} here"
        for key in keys if cached.get(key) != wanted.get(key)
    )


def _check_existing(directory, planned, spectral):
    path = directory / INDEX
    if not path.is_file():
        return
    index = _read_json(path)
    if index.get("format") != FORMAT:
        raise ValueError(f"'{directory}' holds another kind of data; choose an empty `out`.")
    if index.get("spectral") != spectral.to_dict():
        raise ValueError(
            f"'{directory}' was prepared with other spectral settings "
            f"({_differences(index.get('spectral') or {}, spectral.to_dict())}); "
            "use another `out` or `overwrite=True`."
        )
    names = [shard["name"] for shard in index.get("shards", [])]
    if names != [name for name, _ in planned]:
        raise ValueError(
            f"'{directory}' was prepared from another track selection "
            f"({len(names)} tracks); use another `out` or `overwrite=True`."
        )


def _remove_previous(directory):
    for path in directory.glob("*.tfrecord"):
        path.unlink()
    for path in directory.glob("*.json"):
        path.unlink()


def prepare_dataset(
    tracks,
    out,
    *,
    spectral=None,
    worker_index=0,
    num_workers=1,
    selection=None,
    overwrite=False,
    progress=True,
    jobs=1,
):
    """Writes the frames of `tracks` as a sharded TFRecord cache in `out`.

    Args:
        tracks: list of `TrackInfo` (from `list_tracks`), the same list on
            every worker.
        out: str or `Path`, the cache directory (created).
        spectral: `SpectralConfig` or None (the paper's defaults); its
            `sample_rate` must match the tracks.
        worker_index: int, default 0. This worker's part: tracks `i` with
            `i % num_workers == worker_index`.
        num_workers: int, default 1.
        selection: dict or None. How the tracks were chosen (root, subsets,
            split), recorded in the index.
        overwrite: bool, default False. Remove a previous cache in `out`
            first (otherwise complete shards are kept and skipped, and a cache
            with other settings or tracks is refused).
        progress: bool, default True. A progress bar in frames (with
            `jobs` > 1 it advances by a shard's frames as each shard ends).
        jobs: positive int or None, default 1: how many shards (of this
            worker's part) are written at once, each in its own worker
            process. None (what `keras-dae prepare` uses): one job per
            `CORES_PER_JOB` usable cores, at least 1; 1: in this process, one shard after
            another. At most one job per shard to write is started (one
            shard left: this process). The shards are byte for byte those of
            `jobs=1`. Memory per job: a job reads a WAV track chunk by chunk
            (`CHUNK_FRAMES` frames, about 18 s at the defaults, a few chunks
            in flight), so its peak does not grow with the track: measured peak
            RSS (`VmHWM`) of a worker writing one shard of a 44.1 kHz stereo
            MUSDB18-HQ track at 2049 bins, 1.15 GB for 60 s, 1.2-1.3 GB for
            240 s (and 480 s), of which 0.67 GB is TensorFlow loaded; about
            the same at 64 bins (the FFT's full spectrum is computed before
            the bins are kept). A `.stem.mp4` track (MUSDB18) is the
            exception: ffmpeg cannot seek sample-exactly, so `track_frames`
            decodes it whole first (`_chunk_audio`'s `whole`), about 1.8 MB
            more per second of track: 1.24 GB for 60 s, 1.57 GB for 240 s.
            Each job runs TensorFlow and BLAS on `usable_cores() // jobs`
            threads. Speed: one process already keeps about 1.3 cores busy
            and a worker takes seconds to start, so on 2 cores `jobs=2` was
            slower than `jobs=1` (`benchmarks/bench_data.py --prepare-jobs`:
            0.2x on 4 x 30 s, 0.4x on 4 x 240 s). Processes are spawned: a
            script calling `prepare_dataset` with `jobs` > 1 must do so under
            `if __name__ == "__main__":`.

    Returns:
        dict, the index written to `out/index.json`; `complete` is False
        while other workers' shards are missing.

    Raises:
        ValueError: bad worker settings, tracks at another sample rate, or an
            existing cache that does not match.
        keras_dae.locking.DirectoryInUse: another process is preparing `out`
            (or, with several workers, this worker's part of it).
    """
    if not tracks:
        raise ValueError("prepare_dataset needs at least one track.")
    spectral = spectral or front_end.SpectralConfig()
    positive_int("num_workers", num_workers)
    positive_int("jobs", jobs, optional=True)
    if non_negative_int("worker_index", worker_index) >= num_workers:
        raise ValueError(
            f"worker_index must be in [0, {num_workers}). Received: worker_index={worker_index!r}"
        )
    rates = sorted({track.rate for track in tracks})
    if rates != [spectral.sample_rate]:
        raise ValueError(
            f"tracks are at {', '.join(map(str, rates))} Hz but the spectral settings say "
            f"{spectral.sample_rate} Hz; resample the data or set `sample_rate`."
        )
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"`out` '{directory}' is a file; give a directory.")
    planned = _planned(tracks)
    with contextlib.ExitStack() as locks:
        if num_workers == 1:
            locks.enter_context(directory_lock(directory))
            remove_stale_temporaries(directory)
        else:
            # The workers of one cache share its directory; each holds its own part (its shards) alone.
            locks.enter_context(directory_lock(directory, shared=True))
            locks.enter_context(directory_lock(directory, part=f"worker-{worker_index}"))
            mine = [name for position, (name, _) in enumerate(planned) if position % num_workers == worker_index]
            remove_stale_temporaries(directory, finals={f"{name}{suffix}" for name in mine
                                                        for suffix in (".tfrecord", ".json")})
        with writing(directory, "frame cache "):  # a full disk: one line naming the cache
            return _write_cache(directory, planned, spectral, worker_index, num_workers, selection, overwrite,
                                progress, jobs)


def _write_cache(directory, planned, spectral, worker_index, num_workers, selection, overwrite, progress, jobs):
    """`prepare_dataset` in `directory`, whose lock (or this worker's part of it) this process holds."""
    if overwrite:
        _remove_previous(directory)
    else:
        _check_existing(directory, planned, spectral)
    selection = dict(selection or {})
    # An index listing the planned shards first, so a stopped run can be resumed
    # and an incomplete cache is recognised as such.
    _write_json(directory / INDEX, _index(directory, planned, spectral, selection))

    mine = [(name, track) for position, (name, track) in enumerate(planned)
            if position % num_workers == worker_index]
    todo = [(name, track) for name, track in mine if _complete_sidecar(directory, name, spectral) is None]
    skipped = len(mine) - len(todo)
    if skipped:
        log.info("%d of %d shards already complete in '%s': skipping them", skipped, len(mine), directory)
    total = sum(spectral.num_frames(track.num_samples) for _, track in todo)
    bar = keras.utils.Progbar(total, unit_name="frame") if progress and todo else None
    jobs = min(max(1, usable_cores() // CORES_PER_JOB) if jobs is None else jobs, len(todo))
    if jobs <= 1:  # in this process, in order
        for name, track in todo:
            log.debug("writing shard %s (%s)", name, track.name)
            _write_shard(directory, name, track, spectral, bar)
    else:
        log.info("writing %d shards in %d processes", len(todo), jobs)
        _write_in_workers(directory, todo, spectral, jobs, bar)
    index = _index(directory, planned, spectral, selection)
    _write_json(directory / INDEX, index)
    return index


def read_index(directory, *, spectral=None):
    """Reads and checks a prepared cache's index.

    Args:
        directory: str or `Path`.
        spectral: `SpectralConfig` or None. If given, the cache must have been
            prepared with it.

    Returns:
        dict with the index, plus `spectral_config` (its `SpectralConfig`) and `files`
        (the shard paths).

    Raises:
        ValueError: no index, another format, other spectral settings, or
            missing shards.
    """
    directory = Path(directory)
    path = directory / INDEX
    if not path.is_file():
        raise ValueError(
            f"'{directory}' is not a prepared dataset (no {INDEX}); create one with keras-dae prepare."
        )
    index = _read_json(path)
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("version") != FORMAT_VERSION:
        raise ValueError(f"'{path}' is not a keras-dae frame cache of version {FORMAT_VERSION}.")
    try:  # a damaged index: a plain ValueError naming it (not a `ParameterError`, which is about an option)
        cached = front_end.SpectralConfig.from_dict(index["spectral"])
        if not all(isinstance(shard, dict) and {"name", "file", "track"} <= shard.keys() for shard in index["shards"]):
            raise ValueError("a shard entry without its name, file and track")
    except (KeyError, TypeError, ValueError) as error:
        detail = f"no {error}" if isinstance(error, KeyError) else str(error).strip().splitlines()[0]
        raise ValueError(f"'{path}' is damaged ({detail}); prepare the cache again.") from None
    if spectral is not None and cached != spectral:
        raise ValueError(
            f"'{directory}' was prepared with other spectral settings "
            f"({_differences(cached.to_dict(), spectral.to_dict())}); prepare it again with yours."
        )
    missing = [shard["name"] for shard in index["shards"]
               if _complete_sidecar(directory, shard["name"], cached) is None]
    if missing:
        raise ValueError(
            f"prepared dataset '{directory}' is incomplete: {len(missing)} of "
            f"{len(index['shards'])} shards missing (first: '{missing[0]}'); "
            "run keras-dae prepare again (for every worker)."
        )
    index = dict(index, spectral_config=cached, files=[str(directory / shard["file"]) for shard in index["shards"]])
    index["total_frames"] = sum(
        _complete_sidecar(directory, shard["name"], cached)["frames"] for shard in index["shards"]
    )
    return index


def _parser(num_bins):
    """Parses one record into `(mixture, vocals)` float32 `(frames, num_bins)`."""
    features = {
        "mixture": tf.io.FixedLenFeature([], tf.string),
        "vocals": tf.io.FixedLenFeature([], tf.string),
        "frames": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        example = tf.io.parse_single_example(record, features)
        shape = tf.stack([example["frames"], num_bins])
        mixture = tf.reshape(tf.io.decode_raw(example["mixture"], tf.float32), shape)
        vocals = tf.reshape(tf.io.decode_raw(example["vocals"], tf.float32), shape)
        return mixture, vocals

    return parse


def iter_shards(directory, *, spectral=None):
    """Yields `(name, mixture, vocals)` of each track of a prepared cache, in order.

    `mixture` and `vocals` are the whole track's float32 `(frames, num_bins)`
    spectrograms. Checks the cache like `read_index`.
    """
    index = read_index(directory, spectral=spectral)
    parse = _parser(index["spectral_config"].num_bins)
    empty = np.zeros((0, index["spectral_config"].num_bins), np.float32)
    for shard, path in zip(index["shards"], index["files"]):
        pairs = _read_shard(directory, path, parse)
        mixture = np.concatenate([empty] + [m for m, _ in pairs])
        vocals = np.concatenate([empty] + [v for _, v in pairs])
        yield shard["name"], mixture, vocals


# What reading a damaged shard raises: a record whose checksum fails (DataLossError, "corrupted record at N"),
# a record that does not parse or has another shape (InvalidArgumentError), a shard gone (NotFoundError).
_DAMAGE = (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)


def _read_shard(directory, path, parse):
    """The `(mixture, vocals)` records of the shard `path` of the cache `directory`; ValueError if damaged."""
    try:
        return list(tf.data.TFRecordDataset(path).map(parse).as_numpy_iterator())
    except _DAMAGE as error:
        raise ValueError(damaged_shard_message(directory, path, error)) from None


def damaged_shard_message(directory, path, error):
    """The one line for the shard `path` of the cache `directory` that cannot be read (`error`)."""
    name = Path(path).name
    stem = name.removesuffix(".tfrecord")
    return (f"prepared dataset '{directory}' has a damaged shard '{name}' ({tensorflow_detail(error)[:120]}); "
            f"delete {name} and {stem}.json there and run keras-dae prepare again to rewrite it.")


def check_shards(directory, *, spectral=None):
    """Reads every record of a prepared cache: ValueError naming the first damaged shard, if any.

    Checks the cache like `read_index` first. `tf.data` reports a damaged
    record (`DataLossError: corrupted record at 12`) without the file it is
    in; `cache_errors` calls this to find it.
    """
    index = read_index(directory, spectral=spectral)
    parse = _parser(index["spectral_config"].num_bins)
    for path in index["files"]:
        try:
            for _ in tf.data.TFRecordDataset(path).map(parse):
                pass
        except _DAMAGE as error:
            raise ValueError(damaged_shard_message(directory, path, error)) from None


@contextlib.contextmanager
def cache_errors(*directories):
    """Turns an error reading frame caches inside `tf.data` into a ValueError naming the damaged shard.

    For a block that consumes `prepared_frames` of `directories` (`model.fit`):
    on a `tf.errors.OpError` that a damaged shard raises, reads the caches'
    shards again (`check_shards`) and raises the error naming the first
    damaged one. Otherwise (None entries are skipped, and when every shard
    reads fine) the original error goes on.
    """
    try:
        yield
    except _DAMAGE:
        for directory in directories:
            if directory is not None:
                check_shards(directory)
        raise


def prepared_frames(
    directory,
    *,
    batch_size,
    seed=0,
    training=True,
    epochs=None,
    shuffle_buffer=8192,
    cycle_length=4,
    drop_remainder=False,
    spectral=None,
):
    """Streams a prepared cache as `(mixture, vocals)` batches, like `musdb_frames`.

    Args:
        directory: str or `Path`, written by `prepare_dataset`.
        batch_size: int, frames per batch.
        seed: int, default 0; shard order and frame shuffling derive from it.
        training: bool, default True. False: one pass in order, no shuffling.
        epochs: int or None. Passes over the cache; None repeats forever when
            training, and means 1 for validation.
        shuffle_buffer: int, default 8192. Frames in the shuffle buffer.
        cycle_length: int, default 4. Shards read (and interleaved) at once.
        drop_remainder: bool, default False.
        spectral: `SpectralConfig` or None; if given, the cache must match it.

    Returns:
        `tf.data.Dataset` of `(mixture, vocals)`, float32 `(batch, num_bins)`.
    """
    positive_int("batch_size", batch_size)
    index = read_index(directory, spectral=spectral)
    num_bins = index["spectral_config"].num_bins
    files = tf.data.Dataset.from_tensor_slices(index["files"])
    if training:
        files = files.shuffle(len(index["files"]), seed=seed, reshuffle_each_iteration=True)
        files = files.repeat(epochs)
    parse = _parser(num_bins)
    dataset = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=cycle_length,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
