"""Evaluation memory benchmark: the peak memory of scoring one track, per second of track.

Measures, in one run on this machine, the peak resident memory (`ru_maxrss`)
of a fresh Python process that scores one synthetic MUSDB18-HQ track
(stereo, 44.1 kHz) of each `--seconds` (20 and 60) with
`keras_dae.evaluation.evaluate(..., jobs=1)`: the three methods (`model`,
`mixture`, `irm`), an `sf` model at `--num-bins` (2049) with random weights
loaded from its `.keras` file. That process is what one job of
`evaluate --jobs N` holds (TensorFlow, the model, one track's audio and
museval's arrays).

Two code paths, each in its own processes:

    new  the package as it is
    old  the code before 2026-11-29, restored in the process: the ideal
         ratio mask over the whole track at once (`chunk_frames=None`, the
         same samples) and `load_sources` keeping all four sources alive

From the two shortest lengths it fits peak = fixed + slope x seconds and
prints both, the ratio old / new per length, and the model of
`keras_dae.evaluation.job_bytes` (what `jobs=None` plans with) beside the
measured new peak. The JSON scores of the two paths are compared (they must
be equal).

Run from the repository root:

    .venv/bin/python benchmarks/bench_evaluate_memory.py                    # 20 and 60 s: ~3 minutes
    .venv/bin/python benchmarks/bench_evaluate_memory.py --seconds 20 60 240 # and a 4-minute track (old: ~9 GB)
    .venv/bin/python benchmarks/bench_evaluate_memory.py --quick            # 5 and 10 s, new only: a smoke run

Nothing is asserted; the exit code is 1 if the two paths' scores differ.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from harness import argument_parser, print_machine, ratio, scratch_dir, section, synthetic_tracks

PATHS = ("old", "new")


def parse_args(argv=None):
    parser = argument_parser(__doc__, quick="5 and 10 seconds, the new path only (a smoke run)", seed=True, keep=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[20.0, 60.0],
                        help="track lengths, each in its own processes (default 20 60)")
    parser.add_argument("--num-bins", type=int, default=2049, help="the model's bins (default 2049)")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="code paths (default both)")
    parser.add_argument("--child", nargs=4, metavar=("PATH", "ROOT", "MODEL", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- one scoring, in a fresh process


def _restore_old_path():
    """The code before 2026-11-29 in this process: the whole-track IRM and the four sources kept alive."""
    import functools

    from keras_dae import evaluation
    from keras_dae.data.example import SOURCES
    from keras_dae.data.tracks import read_track

    def load_sources(track):
        sources = read_track(track)
        vocals = sources[SOURCES.index("vocals")]  # a view: all four sources stay alive
        mixture = sources.sum(axis=0)
        return mixture, {"vocals": vocals, "accompaniment": mixture - vocals}

    evaluation.load_sources = load_sources
    evaluation.ideal_ratio_mask = functools.partial(evaluation.ideal_ratio_mask, chunk_frames=None)


def child(path, root, model, out):
    from keras_dae import evaluation
    from keras_dae.data.tracks import list_tracks

    if path == "old":
        _restore_old_path()
    tracks = list_tracks(root, is_wav=True, subsets="test")
    start = time.perf_counter()
    evaluation.evaluate(model, tracks, out, jobs=1, overwrite=True)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds}))
    return 0


def run_child(path, root, model, out):
    command = [sys.executable, __file__, "--child", path, str(root), str(model), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {path} path on {root.name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the run


def _scores(out):
    return {str(p.relative_to(out)): json.loads(p.read_text()) for p in sorted(Path(out).rglob("*/*/*.json"))}


def _fit(points):
    """`(fixed MB, MB per second)` of the line through the two shortest `(seconds, MB)` points."""
    (s0, m0), (s1, m1) = sorted(points)[:2]
    slope = (m1 - m0) / (s1 - s0)
    return m0 - slope * s0, slope


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(*args.child)
    if args.quick:
        args.seconds, args.paths = [5.0, 10.0], ["new"]
    print_machine()
    import keras

    from keras_dae import evaluation
    from keras_dae.models import build_model

    same = True
    with scratch_dir(args.keep, "bench_evaluate_memory_") as scratch:
        keras.utils.set_random_seed(args.seed)
        model = scratch / "model.keras"
        build_model("sf", args.num_bins, hidden_size=args.num_bins).save(model)
        peaks = {path: {} for path in args.paths}
        section(f"peak memory of one job (evaluate, jobs=1, methods model, mixture, irm; sf at {args.num_bins} bins)")
        for seconds in sorted(args.seconds):
            root = scratch / f"musdb-{seconds:g}s"
            tracks, _ = synthetic_tracks(root, num_tracks=1, seconds=seconds, seed=args.seed, subset="test")
            planned = evaluation.job_bytes(tracks[0].num_samples) / 1e6
            for path in args.paths:
                record = run_child(path, root, model, scratch / f"eval-{path}-{seconds:g}s")
                peaks[path][seconds] = record["peak_mb"]
                print(f"{path}  {seconds:6.0f} s track  peak {record['peak_mb']:7.0f} MB  "
                      f"({record['seconds']:5.1f} s to score)", flush=True)
            if "new" in args.paths:
                print(f"      job_bytes() plans {planned:7.0f} MB for it", flush=True)
            if len(args.paths) == 2:
                equal = _scores(scratch / f"eval-old-{seconds:g}s") == _scores(scratch / f"eval-new-{seconds:g}s")
                same = same and equal
                print(f"      old / new: {ratio(peaks['old'][seconds], peaks['new'][seconds]):.2f}x; "
                      f"same scores (every JSON equal): {equal}", flush=True)
        section("result")
        for path in args.paths:
            if len(peaks[path]) >= 2:
                fixed, slope = _fit(peaks[path].items())
                four = fixed + slope * 240
                print(f"{path}: about {fixed:.0f} MB + {slope:.1f} MB per second of track "
                      f"(a 4-minute track about {four / 1000:.1f} GB by this line)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
