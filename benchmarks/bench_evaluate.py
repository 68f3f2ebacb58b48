"""Evaluation benchmark (paper scale): `keras_dae.evaluation.evaluate` with `jobs=1` against `jobs=2`.

Measures, in one process on this machine, the wall time of scoring the same
synthetic MUSDB18-HQ tracks (`--tracks` (4) of `--seconds` (20) seconds,
stereo, 44.1 kHz) with museval (BSS Eval v4, vocals and accompaniment) for
the two references that need no model, `mixture` and `irm`:

    jobs=1   one track after another in this process (the sequential path)
    jobs=2   two worker processes (spawned, TensorFlow and BLAS on one thread
             each), one track per task; the workers' start-up (importing
             TensorFlow) is included in the time

Each side writes into its own fresh output directory; the per-track JSON
files of the two are compared (they must be equal). Then the speed-up
jobs=1 / jobs=2. Rows during which other processes used more than 0.3 cores
are flagged.

Run from the repository root:

    .venv/bin/python benchmarks/bench_evaluate.py               # ~30 s on 2 cores
    .venv/bin/python benchmarks/bench_evaluate.py --seconds 60  # ~2 minutes
    .venv/bin/python benchmarks/bench_evaluate.py --quick      # 2 tracks of 5 s

Nothing is asserted; the exit code is 1 if the two runs' scores differ.
"""

import json
import sys

from harness import (
    CpuMeter,
    argument_parser,
    load_flag,
    print_machine,
    ratio,
    scratch_dir,
    section,
    synthetic_tracks,
)

METHODS = ("mixture", "irm")


def parse_args(argv=None):
    parser = argument_parser(__doc__, quick="2 tracks of 5 seconds (a smoke run)", seed=True, keep=True)
    parser.add_argument("--tracks", type=int, default=4, help="synthetic tracks (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per track (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs of the parallel side (default 2)")
    return parser.parse_args(argv)


def _scores(out):
    return {str(path.relative_to(out)): json.loads(path.read_text())
            for method in METHODS for path in sorted((out / method).rglob("*.json"))}


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.tracks, args.seconds = 2, 5.0
    print_machine()
    from keras_dae.evaluation import evaluate
    from keras_dae.workers import usable_cores

    with scratch_dir(args.keep, "bench_evaluate_") as scratch:
        tracks, taken = synthetic_tracks(scratch / "musdb", num_tracks=args.tracks, seconds=args.seconds,
                                         seed=args.seed, subset="test")
        audio = sum(track.num_samples / track.rate for track in tracks)
        section(f"{len(tracks)} tracks x {args.seconds:g} s, methods {', '.join(METHODS)}; "
                f"usable cores {usable_cores()} (data written in {taken:.1f} s)")
        rows = {}
        for jobs in (1, args.jobs):
            out = scratch / f"eval-jobs{jobs}"
            with CpuMeter() as meter:
                evaluate(None, tracks, out, methods=METHODS, jobs=jobs, overwrite=True)
            rows[jobs] = meter.seconds
            print(f"jobs={jobs}  {meter.seconds:7.1f} s wall  {meter.seconds / audio:6.3f} s per second of audio  "
                  f"{meter.own_cores:4.2f} cores used{load_flag(meter.other_load)}", flush=True)
        same = _scores(scratch / "eval-jobs1") == _scores(scratch / f"eval-jobs{args.jobs}")
        section("result")
        print(f"same scores (every JSON equal): {same}")
        print(f"speed-up (jobs=1 wall / jobs={args.jobs} wall): {ratio(rows[1], rows[args.jobs]):.2f}x")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
