"""Data-throughput benchmark (issue 3): magnitude frames per second.

Measures, in one run on this machine, frames per second (one frame = one
`(mixture, vocals)` pair of `num_bins` magnitudes) of:

    (a) pipeline  `keras_dae.data.pipeline.musdb_frames` (tf.data, batch 256,
                  6-second excerpts, training mode with its shuffle buffer)
    (b) baseline  a plain Python loop over the same excerpts (the pipeline's
                  own, from `pipeline.excerpt_plans`, as many as (a) times):
                  `musdb.DB` track objects with `chunk_start`/`chunk_duration`,
                  `targets['vocals'].audio` plus the three other sources, mono
                  mean downmix, mixture = sum of sources, `librosa.stft` and
                  `abs` in NumPy, with the package's padding and window (the
                  same maths, checked once against `spectral.spectrogram`)
    (b2)          for information only: (b) with the package's `read_track`
                  (soundfile for WAVs) instead of musdb, i.e. how much of
                  (b)'s cost is musdb's reading (ffprobe + ffmpeg per source)
    (c) prepared  the TFRecord cache reader `keras_dae.data.prepare.
                  prepared_frames` (the cache of the first `--prepared-tracks`
                  whole tracks is written once first; the time that takes is
                  reported separately)
    training      what training the `sf` model at `num_bins=2049` consumes:
                  `model.fit`, Adam(1e-4), L1 loss, batch 256, on in-memory
                  random non-negative frames (so no input cost)
    fit on (a)    the same training fed by (a), both sharing the machine's
                  cores as in a real run (skip with `--no-fit-pipeline`)

and prints the ratios (a)/(b), (c)/(b), (a)/training, (c)/training against
the issue's targets: (a) >= 5x (b), and (a) >= 3x training.

How (a) and (c) are timed: the dataset repeats (`epochs=None`); the first
`--warmup-batches` batches (graph tracing, filling the 8192-frame shuffle
buffer, autotuning) are reported as start-up, then `--epochs` epochs' worth of
frames (`epochs x tracks x frames per excerpt`) are timed. With a full
shuffle buffer every frame handed out needs one frame produced, so this is
the steady-state production rate; timing a finite dataset to its end would
count the buffer's final drain as free frames. The warm-up must also drain
what the parallel map and prefetch made ahead while the shuffle buffer
filled; a timed part of fewer than 3 x 8192 frames is flagged SHORT, as
such frames can still inflate it (`--quick` is a smoke run, not a measurement).

Besides frames/s, each row shows the CPU this process used (`own cores`,
ffmpeg children included), frames per CPU-second, and how many cores' worth
of CPU *other* processes used meanwhile (`other load`, from /proc/stat): on a
shared 2-core machine frames/s halve when someone runs the test suite, while
frames per CPU-second barely move.

The data are synthetic MUSDB18-HQ tracks (`write_synthetic_musdb`, 32-bit
float WAVs) in a temporary directory, or a real MUSDB root with `--root`.
With `--stems` the same tracks are also converted to MUSDB18's `.stem.mp4`
layout and (a) and (b) are measured on it too, (a) both ways the pipeline
reads stems: ffmpeg for every excerpt (sets too big to keep decoded, such as
MUSDB18 itself) and decoded once into memory (small sets, such as this one).

With `--prepare-jobs` it measures only the writing of the cache (c) in
parallel: `prepare_dataset` of 4 synthetic tracks of `--prepare-seconds`
(30) seconds (2 of 5 s with `--quick`) at the default 2049 bins with
`jobs=1` (one shard after another in this process) and then `jobs=--jobs`
(2: spawned worker processes, their start-up included), each into a fresh
directory; it prints the wall times, the ratio `jobs=1` / `jobs=N` and
whether every shard and sidecar is the same bytes (exit code 1 if not).

Run from the repository root:

    .venv/bin/python benchmarks/bench_data.py            # default, a few minutes
    .venv/bin/python benchmarks/bench_data.py --prepare-jobs   # prepare, jobs=1 against jobs=2, ~1 minute
    .venv/bin/python benchmarks/bench_data.py --quick    # smoke run, < 1 minute
    .venv/bin/python benchmarks/bench_data.py --stems    # also the .stem.mp4 layout
    .venv/bin/python benchmarks/bench_data.py --profile  # also time (a) stage by stage
    .venv/bin/python benchmarks/bench_data.py --root ~/data/musdb18hq --is-wav

Nothing is asserted: it prints a table with PASS/MISS against the targets.
The shared helpers (CPU accounting, the machine header, ...) are in
`harness.py` beside it.
"""

import dataclasses
import gc
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from harness import (
    CpuMeter,
    argument_parser,
    load_flag,
    print_machine,
    random_frames,
    ratio,
    scratch_dir,
    section,
    synthetic_tracks,
    tree_bytes,
    verdict,
)

BATCH_SIZE = 256
EXCERPT_SECONDS = 6.0
TARGET_PIPELINE_VS_BASELINE = 5.0
TARGET_PIPELINE_VS_TRAINING = 3.0
# Timed parts of fewer frames than 3 shuffle buffers are flagged: frames made
# ahead (parallel map, prefetch) while the buffer filled weigh in them.
SHORT_WINDOW_FRAMES = 3 * 8192


@dataclasses.dataclass
class Result:
    """One measured data source: frames timed, seconds, and notes."""

    name: str
    frames: int
    seconds: float
    startup: float = 0.0
    note: str = ""
    other_load: float = float("nan")
    own_cores: float = float("nan")

    @property
    def rate(self):
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def parse_args(argv=None):
    parser = argument_parser(__doc__, quick="smoke run: 2 tracks x 8 s, short timings", seed=True, keep=True)
    parser.add_argument("--tracks", type=int, default=8, help="synthetic tracks (default 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per synthetic track (default 20)")
    parser.add_argument("--root", help="use this MUSDB root instead of synthetic tracks")
    parser.add_argument("--is-wav", action="store_true", help="with --root: MUSDB18-HQ (WAV folders)")
    parser.add_argument("--subsets", default="train", help="with --root: subset to read (default train)")
    parser.add_argument("--epochs", type=float, default=10,
                        help="epochs' worth of frames timed for (a) and (c), and excerpts for (b) (default 10)")
    parser.add_argument("--warmup-batches", type=int, default=20,
                        help="batches excluded as start-up; the first waits for the shuffle buffer (default 20)")
    parser.add_argument("--train-steps", type=int, default=60, help="timed training steps (default 60)")
    parser.add_argument("--stems", action="store_true", help="also measure (a) and (b) on .stem.mp4 files")
    parser.add_argument("--stem-epochs", type=float, default=5, help="epochs' worth timed on stems (default 5)")
    parser.add_argument("--no-fit-pipeline", dest="fit_pipeline", action="store_false",
                        help="skip timing model.fit fed by (a)")
    parser.add_argument("--profile", action="store_true", help="also time the stages of (a) separately")
    parser.add_argument("--no-prepared", action="store_true", help="skip (c)")
    parser.add_argument("--prepared-tracks", type=int, default=8,
                        help="tracks written to the TFRecord cache for (c) (default 8; ~6.5 GB per hour of audio)")
    parser.add_argument("--prepare-jobs", action="store_true",
                        help="only time prepare_dataset with jobs=1 against jobs=--jobs on 4 synthetic tracks")
    parser.add_argument("--jobs", type=int, default=2,
                        help="with --prepare-jobs: jobs of the parallel side (default 2)")
    parser.add_argument("--prepare-seconds", type=float, default=30.0,
                        help="with --prepare-jobs: seconds per track (default 30)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tracks, args.seconds, args.epochs = 2, 8.0, 4
        args.warmup_batches, args.train_steps, args.stem_epochs = 12, 10, 4
        args.fit_pipeline = False
    return args


# --------------------------------------------------------------------------- set-up


def make_wav_tree(args, workdir):
    """Writes the synthetic MUSDB18-HQ tree (unless `--root`); returns `(root, is_wav, seconds taken)`."""
    if args.root:
        return Path(args.root), args.is_wav, 0.0
    _, seconds = synthetic_tracks(workdir / "wav", num_tracks=args.tracks, seconds=args.seconds, seed=args.seed)
    return workdir / "wav", True, seconds


def make_stem_tree(wav_root, workdir):
    from keras_dae.data.synthetic import convert_to_stems

    start = time.perf_counter()
    convert_to_stems(wav_root, workdir / "stems", subsets=("train",))
    return workdir / "stems", time.perf_counter() - start


def frames_budget(tracks, config, epochs):
    """Frames in `epochs` epochs of one excerpt per track."""
    per_excerpt = config.num_frames(int(round(EXCERPT_SECONDS * config.sample_rate)))
    return int(round(epochs * len(tracks))) * per_excerpt, per_excerpt


# --------------------------------------------------------------------------- timing


def time_batches(name, dataset, num_frames, warmup_batches, note=""):
    """A `Result` for `num_frames` frames of `dataset` after a warm-up.

    Start-up covers creating the iterator and the first `warmup_batches`
    batches. The frames are not copied to NumPy (a training step takes the
    tensors as they are). The iterator is deleted at the end, so that its
    background threads stop before the next measurement.
    """
    start = time.perf_counter()
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    startup = time.perf_counter() - start
    count = 0
    with CpuMeter() as meter:
        while count < num_frames:
            mixture, _ = next(iterator)
            count += int(mixture.shape[0])
    del iterator, mixture
    gc.collect()
    if count < SHORT_WINDOW_FRAMES:
        note = "; ".join(filter(None, [note, "SHORT window: may count frames made during start-up"]))
    return Result(name, count, meter.seconds, startup, note, meter.other_load, meter.own_cores)


def bench_pipeline(tracks, config, args, epochs, name="(a) pipeline"):
    from keras_dae.data.pipeline import musdb_frames

    num_frames, _ = frames_budget(tracks, config, epochs)
    dataset = musdb_frames(
        tracks, spectral=config, batch_size=BATCH_SIZE, excerpt_seconds=EXCERPT_SECONDS,
        training=True, epochs=None, seed=args.seed,
    )
    result = time_batches(name, dataset, num_frames, args.warmup_batches)
    per_excerpt = frames_budget(tracks, config, 1)[1]
    result.note = "; ".join(filter(None, [f"{result.rate / per_excerpt:.1f} excerpts/s", result.note]))
    return result


def bench_stem_pipelines(tracks, config, args):
    """(a) on `.stem.mp4` files: both ways the pipeline reads them.

    `pipeline.py` decodes a stem set whose audio fits in `STEM_CACHE_BYTES`
    (512 MiB: the synthetic set, not MUSDB18's 10 hours) once and cuts
    excerpts in memory; larger sets run ffmpeg for every excerpt. Setting
    `STEM_CACHE_BYTES = 0` measures the second way on the same files.
    """
    from keras_dae.data import pipeline

    if not hasattr(pipeline, "STEM_CACHE_BYTES"):
        return [bench_pipeline(tracks, config, args, args.stem_epochs, "(a) stems, ffmpeg per excerpt")]
    saved = pipeline.STEM_CACHE_BYTES
    try:
        pipeline.STEM_CACHE_BYTES = 0
        per_excerpt = bench_pipeline(tracks, config, args, args.stem_epochs, "(a) stems, ffmpeg per excerpt")
    finally:
        pipeline.STEM_CACHE_BYTES = saved
    cached = bench_pipeline(tracks, config, args, args.stem_epochs, "(a) stems, decoded once")
    cached.note += "; start-up includes decoding every track"
    return [per_excerpt, cached]


# --------------------------------------------------------------------------- (b) baseline


def package_padding(num_samples, config):
    """`(left, right)` zeros that `spectral._pad` adds to `num_samples` samples."""
    num_frames = config.num_frames(num_samples)
    padded = (num_frames - 1) * config.hop_length + config.window_length
    return config.pad_left, padded - config.pad_left - num_samples


def librosa_spectrogram(mono, config, window):
    """`(frames, num_bins)` magnitudes by librosa, framed as `spectral.spectrogram`.

    The package pads `window - hop` zeros on the left and frames windows of
    `window_length` samples, zero-filled to the FFT size at their end; librosa
    centres a `win_length` window inside each `n_fft`-sample frame (at offset
    `(n_fft - win_length) // 2`). So the same padding plus that offset gives
    the same windowed samples in every frame, hence the same magnitudes.
    The window is the symmetric Hamming window `tf.signal` makes for odd
    lengths (librosa's `window="hamming"` would be the periodic one).
    """
    import librosa

    left, right = package_padding(len(mono), config)
    offset = (config.fft_length - config.window_length) // 2
    tail = config.fft_length - config.window_length - offset
    padded = np.pad(mono, (left + offset, right + tail))
    spectrum = librosa.stft(
        padded, n_fft=config.fft_length, hop_length=config.hop_length,
        win_length=config.window_length, window=window, center=False,
    )
    return np.abs(spectrum[: config.num_bins]).T


def baseline_excerpt(track, start_seconds, config, window):
    """One excerpt the plain way: mono `(mixture, vocals)` audio and spectra."""
    track.chunk_start = start_seconds
    track.chunk_duration = EXCERPT_SECONDS
    vocals = track.targets["vocals"].audio.mean(axis=1)
    others = [track.sources[name].audio.mean(axis=1) for name in ("drums", "bass", "other")]
    mixture = vocals + sum(others)
    audio = (mixture.astype(np.float32), vocals.astype(np.float32))
    return audio, [librosa_spectrogram(signal, config, window) for signal in audio]


def excerpt_list(tracks, num_excerpts, config, seed):
    """`(track index, start sample)` of the excerpts `musdb_frames` reads.

    From `pipeline.excerpt_plans` (the pipeline's own excerpts, in its order)
    when it exists; otherwise shuffled epochs with uniform random starts.
    """
    excerpt_samples = int(round(EXCERPT_SECONDS * config.sample_rate))
    num_epochs = -(-num_excerpts // len(tracks))
    try:
        from keras_dae.data.pipeline import excerpt_plans
    except ImportError:
        excerpt_plans = None
    if excerpt_plans is not None:
        rows = excerpt_plans(tracks, excerpt_samples=excerpt_samples, seed=seed, epochs=num_epochs)
        return [(int(row[0]), int(row[1])) for row in rows[:num_excerpts]]
    rng = np.random.default_rng(seed)
    plan = []
    for _ in range(num_epochs):
        for index in rng.permutation(len(tracks)):
            room = max(tracks[index].num_samples - excerpt_samples, 0)
            plan.append((int(index), int(rng.integers(0, room + 1))))
    return plan[:num_excerpts]


def baseline_plan(database, tracks, num_excerpts, config, seed):
    """`(musdb track, start seconds)` of the excerpts of `excerpt_list`."""
    by_name = {track.name: track for track in database.tracks}
    return [
        (by_name[tracks[index].name], start / tracks[index].rate)
        for index, start in excerpt_list(tracks, num_excerpts, config, seed)
    ]


def bench_numpy_loop(tracks, num_excerpts, config, args, name="(b2) read_track+librosa"):
    """Like (b) without musdb: `read_track` (soundfile for WAVs) in the loop.

    Not one of the issue's measurements: it shows how much of (b)'s cost is
    musdb's reading (an ffprobe and an ffmpeg process per source).
    """
    import scipy.signal

    from keras_dae.data.example import SOURCES
    from keras_dae.data.tracks import read_track

    vocals_index = SOURCES.index("vocals")
    excerpt_samples = int(round(EXCERPT_SECONDS * config.sample_rate))
    window = scipy.signal.get_window(config.window, config.window_length, fftbins=False)
    plan = excerpt_list(tracks, num_excerpts, config, args.seed)
    start = time.perf_counter()
    librosa_spectrogram(np.zeros(config.sample_rate, np.float32), config, window)
    startup = time.perf_counter() - start
    frames = 0
    with CpuMeter() as meter:
        for index, first in plan:
            mono = read_track(tracks[index], first, excerpt_samples).mean(axis=2)
            mixture, vocals = mono.sum(axis=0), mono[vocals_index]
            spectra = [librosa_spectrogram(signal, config, window) for signal in (mixture, vocals)]
            frames += len(spectra[0])
    note = f"{len(plan) / meter.seconds:.2f} excerpts/s; info only, no target"
    return Result(name, frames, meter.seconds, startup, note, meter.other_load, meter.own_cores)


def open_musdb(root, is_wav, subsets):
    import musdb

    return musdb.DB(root=str(root), is_wav=is_wav, subsets=subsets)


def bench_baseline(root, is_wav, tracks, num_excerpts, config, args, name="(b) musdb+librosa"):
    """Times the plain loop; start-up (musdb.DB, librosa's first call) apart."""
    import scipy.signal

    start = time.perf_counter()
    database = open_musdb(root, is_wav, args.subsets)
    window = scipy.signal.get_window(config.window, config.window_length, fftbins=False)
    plan = baseline_plan(database, tracks, num_excerpts, config, args.seed)
    librosa_spectrogram(np.zeros(config.sample_rate, np.float32), config, window)
    startup = time.perf_counter() - start
    frames = 0
    with CpuMeter() as meter:
        for track, start_seconds in plan:
            _, (mixture_frames, _) = baseline_excerpt(track, start_seconds, config, window)
            frames += len(mixture_frames)
    note = f"{len(plan) / meter.seconds:.2f} excerpts/s"
    return Result(name, frames, meter.seconds, startup, note, meter.other_load, meter.own_cores), database


def check_same_maths(database, tracks, config):
    """Compares one baseline excerpt with the package on the same audio.

    Returns lines to print: the STFT maths (same audio through librosa and
    `spectral.spectrogram`) and the audio itself (musdb's read against
    `read_track`, the pipeline's read).
    """
    import scipy.signal

    from keras_dae import spectral
    from keras_dae.data.tracks import read_track

    window = scipy.signal.get_window(config.window, config.window_length, fftbins=False)
    track = database.tracks[0]
    start_seconds = min(1.0, max(track.duration - EXCERPT_SECONDS, 0.0))
    (mixture, vocals), (mixture_frames, _) = baseline_excerpt(track, start_seconds, config, window)
    ours = spectral.spectrogram(mixture, config).numpy()
    same_shape = ours.shape == mixture_frames.shape
    error = np.abs(ours - mixture_frames).max() / np.abs(ours).max() if same_shape else float("inf")
    lines = [
        f"STFT maths: librosa {mixture_frames.shape} vs spectral.spectrogram {ours.shape} on the same audio, "
        f"max |diff| / max = {error:.1e} -> {'SAME' if error < 1e-3 else 'DIFFERENT'} (tolerance 1e-3)"
    ]
    info = next((info for info in tracks if info.name == track.name), None)
    if info is not None:
        first = int(round(start_seconds * info.rate))
        sources = read_track(info, first, len(mixture)).mean(axis=2)
        package_mixture = sources.sum(axis=0)
        audio_error = np.abs(package_mixture[: len(mixture)] - mixture).max()
        lines.append(
            f"audio: musdb read vs read_track, max |diff| = {audio_error:.1e} "
            "(musdb decodes through ffmpeg as 16-bit PCM: ~1e-4 expected for float WAVs)"
        )
    return lines


# --------------------------------------------------------------------------- (c) prepared


def prepare_module():
    """`keras_dae.data.prepare`, or the reason it cannot be used."""
    try:
        from keras_dae.data import prepare
    except ImportError as error:
        return None, f"keras_dae.data.prepare not importable ({error})"
    missing = [name for name in ("prepare_dataset", "prepared_frames") if not hasattr(prepare, name)]
    if missing:
        return None, f"keras_dae.data.prepare lacks {', '.join(missing)}"
    return prepare, None


def bench_prepared(tracks, config, args, workdir, num_frames):
    """Writes the TFRecord cache (timed apart), then times reading it."""
    prepare, problem = prepare_module()
    if prepare is None:
        return None, 0.0, problem
    out = workdir / "prepared"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    tracks = tracks[: args.prepared_tracks]
    prepare.prepare_dataset(tracks, out, spectral=config, progress=False)
    prepare_seconds = time.perf_counter() - start
    dataset = prepare.prepared_frames(
        out, batch_size=BATCH_SIZE, seed=args.seed, training=True, epochs=None, spectral=config
    )
    size = tree_bytes(out)
    result = time_batches("(c) TFRecord reader", dataset, num_frames, args.warmup_batches,
                          f"cache {size / 2**20:.0f} MiB")
    return result, prepare_seconds, None


def bench_prepare_jobs(args, config, workdir):
    """`prepare_dataset` with `jobs=1`, then `jobs=args.jobs`, on the same tracks: True if their files are equal."""
    from keras_dae.data.prepare import prepare_dataset
    from keras_dae.workers import usable_cores

    num_tracks, seconds = (2, 5.0) if args.quick else (4, args.prepare_seconds)
    tracks, taken = synthetic_tracks(workdir / "prepare-jobs", num_tracks=num_tracks, seconds=seconds, seed=args.seed)
    section(f"prepare_dataset: {len(tracks)} tracks x {seconds:g} s, {config.num_bins} bins, jobs=1 against "
            f"jobs={args.jobs}; usable cores {usable_cores()} (data written in {taken:.1f} s)")
    walls, files = {}, {}
    for jobs in (1, args.jobs):
        out = workdir / f"prepared-jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        with CpuMeter() as meter:
            prepare_dataset(tracks, out, spectral=config, progress=False, jobs=jobs)
        walls[jobs] = meter.seconds
        files[jobs] = {path.name: path.read_bytes() for path in sorted(out.iterdir())
                       if path.suffix in (".tfrecord", ".json")}
        print(f"  jobs={jobs}  {meter.seconds:6.1f} s wall  {meter.own_cores:4.2f} cores used"
              f"{load_flag(meter.other_load)}", flush=True)
    same = files[1] == files[args.jobs]
    print(f"  same bytes (every shard, sidecar and index.json): {same}")
    print(f"  speed-up (jobs=1 wall / jobs={args.jobs} wall): {ratio(walls[1], walls[args.jobs]):.2f}x")
    return same


# --------------------------------------------------------------------------- training


def training_model(num_bins):
    import keras

    from keras_dae.models import build_model

    model = build_model("sf", num_bins=num_bins)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mean_absolute_error")
    return model


def step_timer():
    """A Keras callback recording the wall time at the end of every training step."""
    import keras

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    return StepTimes()


def timed_fit(name, model, dataset, warmup_steps, steps, note=""):
    """A `Result` for `steps` training steps after `warmup_steps` (start-up)."""
    timer = step_timer()
    start = time.perf_counter()
    with CpuMeter() as meter:
        model.fit(dataset, epochs=1, steps_per_epoch=warmup_steps + steps, verbose=0,
                  shuffle=False, callbacks=[timer])
    startup = timer.times[warmup_steps - 1] - start
    seconds = timer.times[-1] - timer.times[warmup_steps - 1]
    return Result(name, steps * BATCH_SIZE, seconds, startup, note, meter.other_load, meter.own_cores)


def bench_training(config, args):
    import tensorflow as tf

    mixture, vocals = random_frames(16 * BATCH_SIZE, config.num_bins, args.seed)
    dataset = tf.data.Dataset.from_tensor_slices((mixture, vocals)).batch(BATCH_SIZE).repeat()
    model = training_model(config.num_bins)
    note = f"sf, {model.count_params() / 1e6:.1f} M params, jit_compile={model.jit_compile}"
    return timed_fit("training sf (in-memory)", model, dataset, 3, args.train_steps, note)


def bench_fit_pipeline(tracks, config, args):
    from keras_dae.data.pipeline import musdb_frames

    dataset = musdb_frames(
        tracks, spectral=config, batch_size=BATCH_SIZE, excerpt_seconds=EXCERPT_SECONDS,
        training=True, epochs=None, seed=args.seed,
    )
    model = training_model(config.num_bins)
    return timed_fit("training sf fed by (a)", model, dataset, 5, args.train_steps,
                     "pipeline and training share the cores")


# --------------------------------------------------------------------------- profile


def count_elements(dataset, count, warmup=2):
    """`(elements per second, elements per CPU-second)` of `count` elements after `warmup`."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    with CpuMeter() as meter:
        for _ in range(count):
            next(iterator)
    del iterator
    gc.collect()
    return count / meter.seconds, count / (meter.seconds * meter.own_cores)


def profile_pipeline(tracks, config, args):
    """Rows `(stage, excerpts/s, excerpts/CPU-s)` of (a)'s stages, each alone.

    Uses the pipeline's private helpers (`_plans`, `_reader`, `_mixer`), so it
    may need updating when `pipeline.py` changes.
    """
    import tensorflow as tf

    from keras_dae import spectral
    from keras_dae.data import pipeline

    excerpt_samples = int(round(EXCERPT_SECONDS * config.sample_rate))
    per_excerpt = config.num_frames(excerpt_samples)
    count = max(8, int(round(args.epochs * len(tracks))))
    seed = tf.constant(args.seed, tf.int64)
    try:
        plans = pipeline._plans(tracks, seed, None, True, False, excerpt_samples)
    except TypeError:  # before excerpt starts moved into the plans
        plans = pipeline._plans(tracks, seed, None, True, False)
    read = pipeline._reader(tracks, excerpt_samples)
    mix = pipeline._mixer(True, False, (0.25, 1.25), False, "mean")

    def spectra(plan):
        mixture, vocals = mix(read(plan), plan)
        both = spectral.spectrogram(tf.stack([mixture, vocals]), config)
        return both[0], both[1]

    def to_frames(dataset, shuffle):
        dataset = dataset.interleave(
            lambda m, v: tf.data.Dataset.from_tensor_slices((m, v)), cycle_length=4, block_length=16
        )
        if shuffle:
            dataset = dataset.shuffle(8192, seed=args.seed)
        return dataset.batch(BATCH_SIZE).prefetch(2)

    def per_excerpt_of_batches(dataset):
        num_batches = count * per_excerpt // BATCH_SIZE
        rate, cpu_rate = count_elements(dataset, num_batches, warmup=40)
        return rate * BATCH_SIZE / per_excerpt, cpu_rate * BATCH_SIZE / per_excerpt

    parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    waveforms = tf.random.uniform([2, excerpt_samples])
    memory = tf.data.Dataset.range(2**62).map(lambda _: spectral.spectrogram(waveforms, config)[0])
    memory_spectra = spectral.spectrogram(waveforms[0], config)
    in_memory = tf.data.Dataset.range(2**62).map(lambda _: (memory_spectra, memory_spectra))
    rows = [
        ("read 4 sources (soundfile, numpy_function)", *count_elements(plans.map(read, **parallel).prefetch(2), count)),
        ("STFT of 2 x 6 s only (1 at a time)", *count_elements(memory.prefetch(1), count)),
        ("read + mix + STFT (parallel map)", *count_elements(plans.map(spectra, **parallel).prefetch(2), count)),
        ("frames only: in-memory spectra -> interleave, batch", *per_excerpt_of_batches(to_frames(in_memory, False))),
        ("frames only: ... + shuffle 8192", *per_excerpt_of_batches(to_frames(in_memory, True))),
        ("read + mix + STFT + interleave + batch", *per_excerpt_of_batches(to_frames(plans.map(spectra, **parallel), False))),
    ]
    full = pipeline.musdb_frames(tracks, spectral=config, batch_size=BATCH_SIZE, training=True, epochs=None, seed=args.seed)
    result = time_batches("full", full, count * per_excerpt, args.warmup_batches)
    rows.append(("full musdb_frames (+ shuffle 8192, prefetch)", result.rate / per_excerpt,
                 result.rate / result.own_cores / per_excerpt))
    return rows, per_excerpt


# --------------------------------------------------------------------------- report


def print_table(results):
    print(f"{'measurement':<30} {'frames/s':>9} {'frames':>7} {'timed s':>7} {'start-up s':>10} "
          f"{'own cores':>9} {'frames/CPU-s':>12} {'other load':>10}  notes")
    for result in results:
        print(
            f"{result.name:<30} {result.rate:>9,.0f} {result.frames:>7} {result.seconds:>7.1f} "
            f"{result.startup:>10.1f} {result.own_cores:>9.2f} {result.rate / result.own_cores:>12,.0f} "
            f"{result.other_load:>10.2f}  {result.note}"
        )


def print_ratios(pipeline, baseline, prepared, training, label=""):
    print(f"ratios{label}:")
    rows = [("(a)/(b)", pipeline, baseline, TARGET_PIPELINE_VS_BASELINE)]
    if prepared is not None:
        rows.append(("(c)/(b)", prepared, baseline, None))
    if training is not None:
        rows.append(("(a)/training", pipeline, training, TARGET_PIPELINE_VS_TRAINING))
        if prepared is not None:
            rows.append(("(c)/training", prepared, training, None))
    for name, top, bottom, target in rows:
        if top is None or bottom is None:
            continue
        value = ratio(top.rate, bottom.rate)
        goal = f"target >= {target:g}x: {verdict(value, target)}" if target else "(no target)"
        print(f"  {name:<14} {value:8.2f}x   {goal}")


def main(argv=None):
    args = parse_args(argv)
    from keras_dae.data.tracks import list_tracks
    from keras_dae.spectral import SpectralConfig

    config = SpectralConfig()
    print_machine()
    with scratch_dir(args.keep, "bench_data_") as workdir:
        if args.prepare_jobs:
            return 0 if bench_prepare_jobs(args, config, workdir) else 1
        run(args, config, workdir, list_tracks)


def run(args, config, workdir, list_tracks):
    section("data")
    root, is_wav, synth_seconds = make_wav_tree(args, workdir)
    tracks = list_tracks(root, is_wav=is_wav, subsets=args.subsets)
    num_frames, per_excerpt = frames_budget(tracks, config, args.epochs)
    num_excerpts = num_frames // per_excerpt
    kind = "WAV folders" if is_wav else ".stem.mp4"
    print(f"  {len(tracks)} tracks ({kind}) at {root}, {sum(t.seconds for t in tracks):.0f} s in all"
          + (f", synthesized in {synth_seconds:.1f} s" if synth_seconds else ""))
    print(f"  {config}")
    print(f"  batch {BATCH_SIZE}, excerpts {EXCERPT_SECONDS:g} s = {per_excerpt} frames; timing "
          f"{num_excerpts} excerpts = {num_frames} frames ({args.epochs:g} epochs' worth) per measurement")

    results = []
    section("(a) pipeline: musdb_frames")
    pipeline = bench_pipeline(tracks, config, args, args.epochs)
    results.append(pipeline)
    print_table([pipeline])

    section("(b) plain loop: musdb + librosa")
    baseline, database = bench_baseline(root, is_wav, tracks, num_excerpts, config, args)
    results.append(baseline)
    print_table([baseline])
    for line in check_same_maths(database, tracks, config):
        print(f"  check: {line}")
    numpy_loop = bench_numpy_loop(tracks, num_excerpts, config, args)
    results.append(numpy_loop)
    print_table([numpy_loop])

    prepared = None
    if not args.no_prepared:
        section("(c) TFRecord cache: prepare_dataset + prepared_frames")
        prepared, prepare_seconds, problem = bench_prepared(tracks, config, args, workdir, num_frames)
        if prepared is None:
            print(f"  skipped: {problem}")
        else:
            results.append(prepared)
            print_table([prepared])
            audio_seconds = sum(t.seconds for t in tracks[: args.prepared_tracks])
            print(f"  prepare_dataset (untimed above): {prepare_seconds:.1f} s for {audio_seconds:.0f} s of audio "
                  f"= {audio_seconds / prepare_seconds:.1f}x real time, "
                  f"{config.frames_per_second * audio_seconds / prepare_seconds:,.0f} frames/s")

    section("training consumption: sf, num_bins=2049, batch 256")
    training = bench_training(config, args)
    results.append(training)
    print_table([training])
    if args.fit_pipeline:
        fed = bench_fit_pipeline(tracks, config, args)
        results.append(fed)
        print_table([fed])

    stem_results = []
    if args.stems and is_wav:
        section(".stem.mp4 layout (ffmpeg decoding)")
        stem_root, convert_seconds = make_stem_tree(root, workdir)
        stem_tracks = list_tracks(stem_root, is_wav=False, subsets=args.subsets)
        stem_frames, _ = frames_budget(stem_tracks, config, args.stem_epochs)
        print(f"  converted in {convert_seconds:.1f} s; timing {stem_frames // per_excerpt} excerpts")
        stem_pipelines = bench_stem_pipelines(stem_tracks, config, args)
        print_table(stem_pipelines)
        stem_baseline, _ = bench_baseline(
            stem_root, False, stem_tracks, stem_frames // per_excerpt, config, args, "(b) musdb+librosa, stems"
        )
        print_table([stem_baseline])
        stem_results = [(pipeline, stem_baseline) for pipeline in stem_pipelines]
        results += stem_pipelines + [stem_baseline]

    if args.profile:
        section("profile of (a): each stage alone")
        rows, per_excerpt = profile_pipeline(tracks, config, args)
        print(f"  {'stage':<52} {'excerpts/s':>10} {'frames/s':>9} {'frames/CPU-s':>12} {'CPU ms/excerpt':>14}")
        for name, rate, cpu_rate in rows:
            print(f"  {name:<52} {rate:>10.1f} {rate * per_excerpt:>9,.0f} {cpu_rate * per_excerpt:>12,.0f} "
                  f"{1000 / cpu_rate:>14.1f}")

    section("summary")
    print_table(results)
    print()
    print_ratios(pipeline, baseline, prepared, training)
    for stem_pipeline, stem_baseline in stem_results:
        print_ratios(stem_pipeline, stem_baseline, None, training, f" ({stem_pipeline.name})")
    print("targets: (a) >= 5x (b); (a) >= 3x what training sf at num_bins=2049, batch 256 consumes.")
    print("own cores: CPU this process (and its ffmpeg children) used per second of the timed part;")
    print("frames/CPU-s: frames per CPU-second, the cost, which other processes disturb much less than frames/s;")
    print("other load: cores' worth of CPU other processes used meanwhile (0 = quiet machine; with 2 cores,")
    print("            near 1 means the frames/s above are roughly halved).")


if __name__ == "__main__":
    sys.exit(main())
