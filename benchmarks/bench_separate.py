"""Separation benchmark (issue 6): real-time factor and peak memory of `keras-dae separate`.

Measures, in one run on this machine, each case in a fresh Python process
(so that its peak resident memory is its own):

    package  `keras_dae.separation.separate_file` (what `keras-dae
             separate` runs): ffmpeg decoding, chunked STFT / model / inverse
             STFT, WAV writing; on a `--short-minutes` (3) and a
             `--long-minutes` (60) stereo 44.1 kHz 16-bit WAV
    numpy    the same inference written plainly, whole file at once:
             soundfile reads the file, `librosa.stft` (framed exactly as the
             package's STFT), the model's weights applied with NumPy
             (`relu(x W + b)`, float32 OpenBLAS), `librosa.istft`, soundfile
             writes both stems; on the short input only. Its vocals are
             checked against the package's (same maths, so equal to ~1e-4)

with an `sf` model of `num_bins = hidden_size` 2049 and 744 (`--bins`),
random weights (speed does not depend on them). Each time runs from just
before the call to its return (model built, TensorFlow imported and warmed
up before). Real-time factor = seconds of audio / seconds taken.

The roofline: the model's FLOPs per second of stereo audio (frames per
second x 2 channels x 2 products x 2 N H) against `tf.matmul`'s best
throughput, in this process, on the shapes a chunk multiplies ((2 x 2048 +
margins) x N by N x H, float32): the real-time factor the matrix products
alone would allow. The package's share of it is the efficiency.

Targets (printed as met / NOT met): >= 70% of the roofline at 2049 bins,
>= 150x real time at 744 bins, peak memory < 1.5 GB on the long input, and
faster than the NumPy version.

Then `--jobs` side by side: `keras_dae.separation.separate_files` on
`--jobs-files` (4) stereo 44.1 kHz WAVs of `--jobs-seconds` (30) with
`jobs=1` (one file after another in the process) and `jobs=2` (two spawned
worker processes, one file per task), at the first of `--bins`, each side in
a fresh process from the model file (the workers' start, importing
TensorFlow and loading the model, is in the time). It prints both wall
times, the speed-up jobs=1 / jobs=2 and whether the two wrote the same
samples. `--jobs-only` runs just this comparison.

Besides seconds, each row shows the CPU its process used (`own cores`) and
how many cores other processes used meanwhile (`other load`): run it on an
idle machine.

Run from the repository root:

    .venv/bin/python benchmarks/bench_separate.py            # 3 and 60 minutes, 2049 and 744 bins: ~15 minutes
    .venv/bin/python benchmarks/bench_separate.py --quick    # 0.5 and 2 minutes: ~2 minutes
    .venv/bin/python benchmarks/bench_separate.py --jobs-only --bins 2049   # jobs=1 against jobs=2: ~1 minute

Nothing is asserted; the exit code is 1 if the two `--jobs` sides wrote different samples.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harness import CpuMeter, argument_parser, best_seconds, load_flag, print_machine, ratio, scratch_dir, section

RATE = 44100
CHANNELS = 2
TARGET_ROOFLINE = 0.70
TARGET_RT_744 = 150.0
TARGET_PEAK_GB = 1.5


def parse_args(argv=None):
    parser = argument_parser(__doc__, quick="smoke run: 0.5 and 2 minutes, --jobs files of 10 s")
    parser.add_argument("--short-minutes", type=float, default=3.0)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--bins", type=int, nargs="+", default=[2049, 744])
    parser.add_argument("--workdir", default=None, help="where the inputs and outputs go (default: a temporary dir)")
    parser.add_argument("--jobs-files", type=int, default=4, help="files of the --jobs comparison (default 4)")
    parser.add_argument("--jobs-seconds", type=float, default=30.0, help="their length (default 30 s)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs of the parallel side (default 2)")
    parser.add_argument("--jobs-only", action="store_true", help="only the jobs=1 / jobs=2 comparison")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child process: package|numpy|jobs
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--num-bins", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--case-jobs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.short_minutes, args.long_minutes, args.jobs_seconds = 0.5, 2.0, 10.0
    return args


def write_input(path, minutes):
    """A stereo 44.1 kHz 16-bit WAV of `minutes`: the embedded clip's mixture, tiled with varying gains."""
    import soundfile

    from keras_dae.data import load_example

    clip = load_example().mixture.astype(np.float32)
    total = int(round(minutes * 60 * RATE))
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(str(path), "w", samplerate=RATE, channels=CHANNELS, subtype="PCM_16") as out:
        written = 0
        while written < total:
            block = clip[: total - written] * rng.uniform(0.5, 1.0)
            out.write(block)
            written += len(block)
    return total / RATE


def sf_model(num_bins):
    import keras

    from keras_dae.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("sf", num_bins, hidden_size=num_bins)


def numpy_weights(model):
    """The sf model's weights as NumPy arrays, by name."""
    return {weight.path.split("/")[-1]: np.asarray(weight.numpy()) for weight in model.weights}


def numpy_separate(weights, config, audio):
    """Whole-file vocals with librosa STFTs and NumPy products, framed as `keras_dae.spectral`."""
    import librosa

    # keras_dae.spectral frames samples [k hop, k hop + window) of the input padded by pad_left;
    # librosa (center=False) puts the window in the middle of each n_fft frame, (fft - window) // 2 in.
    shift = (config.fft_length - config.window_length) // 2
    frames = config.num_frames(len(audio))
    left = config.pad_left + shift
    length = shift + (frames - 1) * config.hop_length + config.fft_length
    options = dict(n_fft=config.fft_length, hop_length=config.hop_length, win_length=config.window_length,
                   window="hamming", center=False)
    vocals = np.empty_like(audio)
    for channel in range(audio.shape[1]):
        padded = np.zeros(length, np.float32)
        padded[left : left + len(audio)] = audio[:, channel]
        spectrum = librosa.stft(padded, **options)[: config.num_bins, :frames].T  # (frames, bins)
        magnitude = np.abs(spectrum)
        hidden = np.maximum(magnitude @ weights["encoder_kernel_0"] + weights["encoder_bias_0"], 0)
        mask = np.maximum(hidden @ weights["decoder_kernel"] + weights["decoder_bias"], 0)
        estimate = (mask * magnitude) * (spectrum / np.maximum(magnitude, 1e-30))
        estimate[magnitude == 0] = mask[magnitude == 0] * magnitude[magnitude == 0]
        full = np.zeros((config.max_bins, frames), np.complex64)
        full[: config.num_bins] = estimate.T
        restored = librosa.istft(full, length=length, **options)
        vocals[:, channel] = restored[left : left + len(audio)]
    return vocals


def jobs_child(args):
    """`separate_files` of every WAV in `args.input` with `jobs=args.case_jobs`, timed; prints a JSON line."""
    from keras_dae.separation import separate_files
    from keras_dae.spectral import SpectralConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.keras"
    sf_model(args.num_bins).save(model_path)  # seeded: the same model on both sides
    inputs = sorted(Path(args.input).glob("*.wav"))
    with CpuMeter() as meter:
        done, failed = separate_files(model_path, inputs, out, spectral=SpectralConfig(num_bins=args.num_bins),
                                      jobs=args.case_jobs, overwrite=True)
    print(json.dumps({"seconds": meter.seconds, "own_cores": meter.own_cores, "other_load": meter.other_load,
                      "failed": [str(error) for _, error in failed],
                      "vocals": [str(outputs["vocals"]) for _, outputs in done]}))


def child(args):
    """One timed case in this (fresh) process; prints a JSON line."""
    import soundfile

    if args.case == "jobs":
        return jobs_child(args)

    from keras_dae.spectral import SpectralConfig

    config = SpectralConfig(num_bins=args.num_bins)
    model = sf_model(args.num_bins)
    model(np.zeros((4, args.num_bins), np.float32))  # warm up
    out = Path(args.out)
    with CpuMeter() as meter:
        if args.case == "package":
            from keras_dae.separation import separate_file

            outputs = separate_file(model, args.input, out, spectral=config, overwrite=True)
        else:
            audio, rate = soundfile.read(args.input, dtype="float32", always_2d=True)
            vocals = numpy_separate(numpy_weights(model), config, audio)
            target = out / (Path(args.input).stem + "-numpy")
            target.mkdir(parents=True, exist_ok=True)
            outputs = {"vocals": target / "vocals.wav", "accompaniment": target / "accompaniment.wav"}
            soundfile.write(outputs["vocals"], vocals, rate, subtype="FLOAT")
            soundfile.write(outputs["accompaniment"], audio - vocals, rate, subtype="FLOAT")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    gflops, per_second, bound = roofline(args.num_bins, config)  # in this process, right after the run
    chunk_seconds, model_seconds = chunk_breakdown(model, config) if args.case == "package" else (0.0, 0.0)
    print(json.dumps({"seconds": meter.seconds, "own_cores": meter.own_cores, "other_load": meter.other_load,
                      "peak_mb": own, "child_peak_mb": children, "vocals": str(outputs["vocals"]),
                      "gflops": gflops, "flops_per_second": per_second, "bound": bound,
                      "chunk_seconds": chunk_seconds, "model_seconds": model_seconds}))


def chunk_breakdown(model, config, repeats=3):
    """Best seconds of one full chunk's maths (STFT, model, mask, inverse) and of its model call alone."""
    from keras_dae.separation.core import CHUNK_FRAMES, _Chunker

    margin = -(-config.window_length // config.hop_length)
    frames = CHUNK_FRAMES + 2 * margin
    piece = np.random.default_rng(0).uniform(-0.5, 0.5, (CHANNELS, (frames - 1) * config.hop_length
                                                         + config.window_length)).astype(np.float32)
    chunker = _Chunker(model, config, "subtract", 0)
    magnitude = np.abs(chunker.spectrum(piece)).reshape(-1, config.num_bins)
    chunk = model_only = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        chunker.vocals(piece)
        chunk = min(chunk, time.perf_counter() - start)
        start = time.perf_counter()
        chunker.predict(magnitude).numpy()
        model_only = min(model_only, time.perf_counter() - start)
    return chunk, model_only


def run_case(case, path, num_bins, out, jobs=None):
    command = [sys.executable, __file__, "--case", case, "--input", str(path), "--num-bins", str(num_bins),
               "--out", str(out)] + ([] if jobs is None else ["--case-jobs", str(jobs)])
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{case} at {num_bins} bins failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def matmul_throughput(num_bins, rows, repeats=7):
    """Best GFLOP/s of tf.matmul on (rows, N) x (N, N) float32, as a chunk multiplies."""
    import tensorflow as tf

    x = tf.random.uniform((rows, num_bins))
    w = tf.random.uniform((num_bins, num_bins))

    def three():
        for _ in range(3):
            y = tf.matmul(x, w)
        y.numpy()

    best = best_seconds(three, repeats) / 3
    return 2 * rows * num_bins * num_bins / best / 1e9


def chunk_seconds_of_audio(config):
    """Seconds of audio one full chunk covers."""
    from keras_dae.separation.core import CHUNK_FRAMES

    return CHUNK_FRAMES * config.hop_length / RATE


def flops_per_second(num_bins, config):
    """The sf model's FLOPs per second of stereo audio: 2 products of 2 N H per frame and channel."""
    return RATE / config.hop_length * CHANNELS * 2 * (2 * num_bins * num_bins)


def roofline(num_bins, config):
    """`(GFLOP/s, FLOPs per second of audio, real-time factor the products allow)`."""
    from keras_dae.separation.core import CHUNK_FRAMES

    margin = -(-config.window_length // config.hop_length)
    rows = CHANNELS * (CHUNK_FRAMES + 2 * margin)
    gflops = matmul_throughput(num_bins, rows)
    per_second = flops_per_second(num_bins, config)
    return gflops, per_second, gflops * 1e9 / per_second


def main(argv=None):
    args = parse_args(argv)
    if args.case:
        return child(args)
    print_machine()
    with scratch_dir(args.workdir, "bench_separate_") as workdir:
        return run(args, workdir)


def _flag(record):
    return load_flag(record["other_load"])


def run_jobs(args, workdir):
    """The `--jobs` comparison: `--jobs-files` files with jobs=1, then with `--jobs`, each in a fresh process."""
    import soundfile

    from keras_dae.workers import usable_cores

    num_bins = args.bins[0]
    folder = workdir / "jobs-inputs"
    folder.mkdir(exist_ok=True)
    audio = sum(write_input(folder / f"in{index}.wav", args.jobs_seconds / 60) for index in range(args.jobs_files))
    section(f"--jobs: {args.jobs_files} files x {args.jobs_seconds:g} s stereo 44.1 kHz, sf at {num_bins} bins; "
            f"usable cores {usable_cores()}")
    rows = {}
    for jobs in (1, args.jobs):
        record = run_case("jobs", folder, num_bins, workdir / f"jobs{jobs}", jobs=jobs)
        if record["failed"]:
            raise SystemExit(f"jobs={jobs}: {record['failed']}")
        rows[jobs] = record
        print(f"jobs={jobs}  {record['seconds']:7.1f} s wall  {audio / record['seconds']:6.1f}x RT  "
              f"own cores {record['own_cores']:.2f}  other load {record['other_load']:.2f}{_flag(record)}", flush=True)
    same = all(np.array_equal(soundfile.read(one, dtype="float32")[0], soundfile.read(two, dtype="float32")[0])
               for one, two in zip(rows[1]["vocals"], rows[args.jobs]["vocals"]))
    print(f"same samples (every vocals.wav): {same}")
    speed_up = ratio(rows[1]["seconds"], rows[args.jobs]["seconds"])
    print(f"speed-up (jobs=1 wall / jobs={args.jobs} wall): {speed_up:.2f}x")
    return 0 if same else 1


def run(args, workdir):
    import soundfile

    from keras_dae.spectral import SpectralConfig

    if args.jobs_only:
        return run_jobs(args, workdir)
    section("inputs")
    inputs = {}
    for label, minutes in (("short", args.short_minutes), ("long", args.long_minutes)):
        path = workdir / f"{label}.wav"
        inputs[label] = (path, write_input(path, minutes))
        print(f"{label}: {minutes:g} min stereo 44.1 kHz 16-bit, {path.stat().st_size / 1e6:.0f} MB")
    rows = []
    summary = {}
    for num_bins in args.bins:
        config = SpectralConfig(num_bins=num_bins)
        section(f"sf, num_bins = hidden_size = {num_bins}")
        print(f"the model needs {flops_per_second(num_bins, config) / 1e9:.2f} GFLOP per second of stereo audio; "
              "the roofline (`bound`) is measured in each case's process right after its run")
        results = {}
        for case, label in (("package", "short"), ("package", "long"), ("numpy", "short")):
            path, seconds = inputs[label]
            record = run_case(case, path, num_bins, workdir / "out")
            record["rt"] = seconds / record["seconds"]
            bound = record["bound"]
            results[(case, label)] = record
            rows.append((num_bins, case, label, seconds, record))
            print(f"{case:8} {label:5} {seconds / 60:6.1f} min  {record['seconds']:8.1f} s  {record['rt']:7.1f}x RT  "
                  f"{record['rt'] / bound:5.0%} of roofline ({record['gflops']:.0f} GFLOP/s: {bound:.0f}x)  "
                  f"peak {record['peak_mb']:6.0f} MB  "
                  f"own cores {record['own_cores']:.2f}  other load {record['other_load']:.2f}{_flag(record)}")
            if record["chunk_seconds"]:
                chunk_audio = chunk_seconds_of_audio(config)
                print(f"         one chunk ({chunk_audio:.1f} s of stereo audio): all maths {record['chunk_seconds']:.3f} s "
                      f"({chunk_audio / record['chunk_seconds']:.0f}x RT), of which the model "
                      f"{record['model_seconds']:.3f} s ({record['model_seconds'] / record['chunk_seconds']:.0%}); "
                      f"the rest of the run (decoding, I/O, resampling) "
                      f"{max(record['seconds'] - seconds / chunk_audio * record['chunk_seconds'], 0):.1f} s")
        package = soundfile.read(results[("package", "short")]["vocals"], dtype="float32")[0]
        plain = soundfile.read(results[("numpy", "short")]["vocals"], dtype="float32")[0]
        difference = float(np.abs(package - plain).max() / max(np.abs(plain).max(), 1e-12))
        print(f"same maths: max |package - numpy| vocals = {difference:.1e} of the peak")
        summary[num_bins] = {"results": results, "difference": difference}
    section("ratios and targets")
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    for num_bins, found in summary.items():
        short, long, plain = (found["results"][key] for key in (("package", "short"), ("package", "long"),
                                                                 ("numpy", "short")))
        share = long["rt"] / long["bound"]
        print(f"{num_bins} bins: package / numpy (short) {short['rt'] / plain['rt']:.2f}x "
              f"[faster: {met(short['rt'] > plain['rt'])}]; long input {long['rt']:.1f}x real time = {share:.0%} "
              f"of the roofline; peak memory long {long['peak_mb'] / 1024:.2f} GB "
              f"[< {TARGET_PEAK_GB} GB: {met(long['peak_mb'] / 1024 < TARGET_PEAK_GB)}]")
        if num_bins == 2049:
            print(f"  target >= {TARGET_ROOFLINE:.0%} of the roofline at 2049 bins: {met(share >= TARGET_ROOFLINE)}")
        if num_bins == 744:
            print(f"  target >= {TARGET_RT_744:.0f}x real time at 744 bins: {met(long['rt'] >= TARGET_RT_744)}")
    return run_jobs(args, workdir)


if __name__ == "__main__":
    sys.exit(main())
