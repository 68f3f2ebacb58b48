"""Paper-scale benchmark: every stage of `reproduce --preset paper`, at three collection sizes, projected to MUSDB18.

Builds synthetic collections in MUSDB18 layout (`--sizes`, default 6, 9 and
12 tracks, a third of them test tracks, so that every size has two or more
tracks for two jobs; each `--seconds` (120) long: a short song, MUSDB18's
run from about 1 to 10 minutes; MUSDB18-HQ WAV folders, and the same tracks as
MUSDB18 `.stem.mp4` files for the stages that decode audio), and runs each
stage of the paper preset in a fresh process, measuring its wall time, its
CPU time (the process and its workers, `os.wait4`) and its peak memory (the
largest single process, `_peak_mb`):

    list             list_tracks of every track (headers)               grows with: tracks
    stream epoch     one training epoch's streamed decoding (tf.data,
                     one 6-s excerpt per train track, batches of 16)     train tracks
    prepare          the frame cache of the train tracks                 train audio
    frames           20,000 mixture frames of the test tracks            test audio
    separate         separate_files of the test mixtures                 test audio
    evaluate model   evaluate(methods=model): separation + museval       test audio
    evaluate refs    evaluate(methods=mixture, irm)                      test audio
    report           summarize + write the results tables                test tracks
  once (the same at every size):
    train steps      `--steps` steps of dae, deep-dae, sf at 2049 bins, batch 16
    couplings fit    examine, the L1 fit (fast schedule) on the 20,000 frames
    couplings lstsq  examine, least squares on the same frames
    jacobian         the mean Jacobian on examine's default frames

The CPU-bound stages that have `jobs` (prepare, separate, evaluate) run
with `jobs=1` (before: one track after another) and with the usable cores
(after). For each stage and size-dependent quantity a straight line
`seconds = a + b x` is fitted over the sizes (x: tracks or seconds of
audio); a stage whose cost per unit differs by more than 25% between the
first and the last interval is flagged as not linear.

The projection to full MUSDB18 (150 tracks: 100 train of which 14
validate, 50 test; about 6.5 h of train and 3.5 h of test audio) adds up
the paper preset: prepare once; each of the three models trains 100
epochs (the cap; convergence can stop it earlier) of ceil(86 x 690 / 16) =
3,709 steps; the couplings under both solvers for three models and four
per-bin teachers; museval of three models and the two references. On a
16-core machine the parallel stages are scaled by the CPU time they used
here and the parallel efficiency measured here (a projection, not a
measurement); single-process stages keep this machine's time. Training on
a GPU is projected from the FLOPs per step (6 x batch x the dense layers'
weights: forward, and twice that backward) at `--gpu-tflops` (default 14,
an FP32 V100-class peak) times `--gpu-efficiency` (default 0.3), with a
floor of `--gpu-step-ms` (default 2 ms: a small Keras step is bound by
launches, not FLOPs). These three are assumptions, printed with the result.

Run from the repository root (about 45 minutes on 2 cores, and several GB
in the scratch directory, `--keep DIR` to keep it; `--quick`: 6, 9 and 12
tracks of 10 s and 5 steps, about 8 minutes, only to try the script):

    .venv/bin/python benchmarks/bench_scale.py
    .venv/bin/python benchmarks/bench_scale.py --quick

Nothing is asserted.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import argument_parser, print_machine, scratch_dir, section

ARCHS = ("dae", "deep-dae", "sf")
NUM_BINS = 2049
BATCH = 16
EXCERPT_SECONDS = 6.0
MAX_FRAMES = 20_000
# MUSDB18: 150 tracks; musdb's split: 86 train + 14 validation + 50 test; about 10 h, a third of it test.
MUSDB18 = {"tracks": 150, "train tracks": 100, "test tracks": 50, "train seconds": 6.5 * 3600,
           "test seconds": 3.5 * 3600}
EPOCHS = 100
STEPS_PER_EPOCH = math.ceil(86 * 690 / BATCH)  # one 6-s excerpt (690 frames) per train track, batches of 16
PER_BIN_TEACHERS = 4
# Stages measured at every size: (name, the quantity it grows with, formats, has jobs).
SIZED = (
    ("list", "tracks", ("wav", "stem"), False),
    ("stream epoch", "train tracks", ("wav", "stem"), False),
    ("prepare", "train seconds", ("wav", "stem"), True),
    ("frames", "test seconds", ("wav",), False),
    ("separate", "test seconds", ("wav", "stem"), True),
    ("evaluate model", "test seconds", ("wav",), True),
    ("evaluate refs", "test seconds", ("wav",), True),
    ("report", "test tracks", ("wav",), False),
)


# --------------------------------------------------------------------------- the stages (in a child process)


def _tracks(spec, subsets):
    from keras_dae.data.tracks import list_tracks

    return list_tracks(spec["root"], is_wav=spec["format"] == "wav", subsets=subsets)


def _jobs(spec):
    return {"jobs": spec["jobs"]} if spec.get("jobs") else {}


def stage_list(spec):
    return {"tracks": len(_tracks(spec, ("train", "test")))}


def stage_stream_epoch(spec):
    from keras_dae.spectral import SpectralConfig
    from keras_dae.training import Settings, make_data

    data = make_data(Settings(), SpectralConfig(), root=spec["root"], is_wav=spec["format"] == "wav")
    steps = max(math.ceil(data.frames_per_epoch / BATCH), 1)
    for _ in data.train_fn(0, 0, 0, 1, BATCH).take(steps):
        pass
    return {"steps": steps}


def stage_prepare(spec):
    from keras_dae.data.prepare import prepare_dataset

    out = Path(spec["work"]) / "cache"
    shutil.rmtree(out, ignore_errors=True)
    prepare_dataset(_tracks(spec, "train"), out, **_jobs(spec))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out)
    return {"bytes": size}


def stage_frames(spec):
    import pickle

    from keras_dae.couplings.frames import track_frame_set

    frame_set = track_frame_set(_tracks(spec, "test"), max_frames=MAX_FRAMES)
    with open(Path(spec["work"]) / "frames.pickle", "wb") as handle:
        pickle.dump(frame_set, handle)
    return {"frames": len(frame_set.fit) + len(frame_set.held_out)}


def stage_separate(spec):
    from keras_dae.separation.files import separate_files

    tracks = _tracks(spec, "test")
    paths = [track.paths[0] if track.is_stem else str(Path(track.paths[0]).parent / "mixture.wav")
             for track in tracks]
    out = Path(spec["work"]) / "separated"
    shutil.rmtree(out, ignore_errors=True)
    separate_files(spec["model"], paths, out, **_jobs(spec))
    shutil.rmtree(out)
    return {"files": len(paths)}


def _evaluate(spec, model, methods):
    from keras_dae.evaluation import evaluate

    out = Path(spec["work"]) / f"eval-{'-'.join(methods)}-{spec.get('jobs') or 'all'}"
    shutil.rmtree(out, ignore_errors=True)
    evaluate(model, _tracks(spec, "test"), out, methods=methods, **_jobs(spec))
    return {"out": str(out)}


def stage_evaluate_model(spec):
    return _evaluate(spec, spec["model"], ("model",))


def stage_evaluate_refs(spec):
    return _evaluate(spec, None, ("mixture", "irm"))


def stage_report(spec):
    from keras_dae.evaluation import summarize, write_summary

    tracks = _tracks(spec, "test")
    summary = {}
    for out, methods in ((spec["model_eval"], ("model",)), (spec["refs_eval"], ("mixture", "irm"))):
        summary.update(summarize(out, tracks, methods))
    report = Path(spec["work"]) / "report"
    report.mkdir(exist_ok=True)
    write_summary(report, summary)
    return {"methods": len(summary)}


def stage_train_steps(spec):
    import numpy as np

    from keras_dae.models import build_model
    from keras_dae.training import Settings, compile_model

    model = compile_model(build_model(spec["arch"], NUM_BINS), Settings())
    rng = np.random.default_rng(0)
    mixture = rng.random((BATCH * (spec["steps"] + 5), NUM_BINS), dtype=np.float32)
    vocals = mixture * rng.random(mixture.shape, dtype=np.float32)
    model.fit(mixture[: 5 * BATCH], vocals[: 5 * BATCH], batch_size=BATCH, epochs=1, verbose=0)  # tracing
    start = time.perf_counter()
    model.fit(mixture[5 * BATCH:], vocals[5 * BATCH:], batch_size=BATCH, epochs=1, verbose=0)
    step = (time.perf_counter() - start) / spec["steps"]
    weights = sum(int(np.prod(w.shape)) for w in model.trainable_weights if len(w.shape) == 2)
    return {"step seconds": step, "flops per step": 6 * BATCH * weights}


def _frame_set(spec):
    import pickle

    with open(Path(spec["work"]) / "frames.pickle", "rb") as handle:
        return pickle.load(handle)


def _examine(spec, solver):
    from keras_dae.couplings import examine

    examine(spec["model"], Path(spec["work"]) / f"couplings-{solver}", _frame_set(spec), solver=solver,
            schedule="fast", overwrite=True)
    return {}


def stage_couplings_fit(spec):
    return _examine(spec, "fit")


def stage_couplings_lstsq(spec):
    return _examine(spec, "lstsq")


def stage_jacobian(spec):
    from keras_dae.couplings.examine import JACOBIAN_FRAMES
    from keras_dae.couplings.jacobian import mean_jacobian
    from keras_dae.runs import load_run_model

    model = load_run_model(spec["model"])[0]
    mean_jacobian(model, _frame_set(spec).fit[:JACOBIAN_FRAMES])
    return {"frames": JACOBIAN_FRAMES}


def _peak_mb():
    """The peak resident memory of this process or of any of its workers, MB.

    This process's own `VmHWM`, and its waited-for children's largest
    `ru_maxrss`: a child's high-water mark starts at its parent's resident
    size at the fork, which is below this process's own peak, so the maximum
    of the two is right (the parent's `os.wait4` figure for this process
    would start from the benchmark's own size).
    """
    import resource

    with open("/proc/self/status") as handle:
        own = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def child(stage, spec):
    result = globals()[f"stage_{stage.replace(' ', '_')}"](spec)
    print("RESULT " + json.dumps({**result, "peak_mb": _peak_mb()}), flush=True)


# --------------------------------------------------------------------------- measuring (the parent)


def run_stage(stage, spec, log):
    """`{"wall", "cpu", "peak_mb", **result}` of `stage` run in a fresh process."""
    command = [sys.executable, __file__, "--child", stage, "--spec", json.dumps(spec)]
    start = time.perf_counter()
    with open(log, "a") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"stage {stage} failed (exit {process.returncode}); its log: {log}")
    result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, **result}


def build_collections(work, sizes, seconds, formats):
    """`{size: {format: root}}`: the largest collection written once; smaller ones link a prefix of its tracks."""
    from keras_dae.data.synthetic import convert_to_stems, write_synthetic_musdb

    largest = work / f"collection-{max(sizes)}"
    tests = {size: max(1, size // 3) for size in sizes}
    wav = largest / "wav"
    if not wav.is_dir():
        start = time.perf_counter()
        write_synthetic_musdb(wav, num_tracks=max(sizes) - tests[max(sizes)], seconds=seconds, seed=1)
        write_synthetic_musdb(wav, num_tracks=tests[max(sizes)], seconds=seconds, seed=2, subset="test")
        print(f"  wrote {max(sizes)} WAV tracks of {seconds:g} s in {time.perf_counter() - start:.0f} s")
        if "stem" in formats:
            start = time.perf_counter()
            convert_to_stems(wav, largest / "stem", subsets=("train", "test"))
            print(f"  encoded them as .stem.mp4 in {time.perf_counter() - start:.0f} s")
    roots = {}
    for size in sizes:
        counts = {"train": size - tests[size], "test": tests[size]}
        roots[size] = {}
        for fmt in formats:
            root = work / f"collection-{size}" / fmt
            roots[size][fmt] = root
            if size == max(sizes) or root.is_dir():
                continue
            for subset, count in counts.items():
                entries = sorted((largest / fmt / subset).iterdir())[:count]
                for entry in entries:
                    target = root / subset / entry.name
                    if entry.is_dir():
                        target.mkdir(parents=True)
                        for item in entry.iterdir():
                            (target / item.name).symlink_to(item)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.symlink_to(entry)
    return roots, tests


def quantity(name, size, tests, seconds):
    test = tests[size]
    train = size - test
    return {"tracks": size, "train tracks": train, "test tracks": test, "train seconds": train * seconds,
            "test seconds": test * seconds}[name]


def fit_line(xs, ys):
    """`(a, b, shape)`: least squares `y = a + b x`, and the shape of the growth.

    `flat`: the largest size cost less than 10% more than the smallest (the
    line is then `a` = the mean, `b` = 0: what does not grow is not
    extrapolated from noise); `linear`: the cost per unit of the first and
    the last interval within 25% of each other; else `NOT linear`.
    """
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    if ys[-1] - ys[0] < 0.1 * mean_y:
        return mean_y, 0.0, "flat"
    b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    a = mean_y - b * mean_x
    first = (ys[1] - ys[0]) / (xs[1] - xs[0])
    last = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    linear = min(first, last) > 0 and max(first, last) / min(first, last) <= 1.25
    return a, b, "linear" if linear else "NOT linear"


def hms(seconds):
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main():
    parser = argument_parser(__doc__, quick="6, 9 and 12 tracks of 10 s, 5 training steps", keep=True)
    parser.add_argument("--sizes", default="6,9,12", help="collection sizes in tracks (default 6,9,12)")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of every track (default 120)")
    parser.add_argument("--steps", type=int, default=30, help="training steps timed per model (default 30)")
    parser.add_argument("--gpu-tflops", type=float, default=14.0)
    parser.add_argument("--gpu-efficiency", type=float, default=0.3)
    parser.add_argument("--gpu-step-ms", type=float, default=2.0)
    parser.add_argument("--cores", type=int, default=16, help="the bigger machine projected to (default 16)")
    parser.add_argument("--report-only", action="store_true",
                        help="print the report of the measurements an earlier run saved in --keep DIR")
    parser.add_argument("--child")
    parser.add_argument("--spec")
    args = parser.parse_args()
    if args.child:
        return child(args.child, json.loads(args.spec))
    if args.quick:
        args.sizes, args.seconds, args.steps = "6,9,12", 10.0, 5
    sizes = sorted(int(size) for size in args.sizes.split(","))
    if len(sizes) < 3:
        raise SystemExit("--sizes needs three or more sizes to fit a slope and see whether it is linear")
    from keras_dae.workers import usable_cores

    cores = usable_cores()
    print_machine()
    with scratch_dir(args.keep, "bench-scale-") as work:
        log = work / "stages.log"
        section(f"collections: {sizes} tracks of {args.seconds:g} s (a third test), WAV and .stem.mp4")
        roots, tests = build_collections(work, sizes, args.seconds, ("wav", "stem"))
        model = work / "sf.keras"
        if not model.exists():
            from keras_dae.models import build_model

            build_model("sf", NUM_BINS).save(model)  # untrained: the cost of a stage does not depend on the weights
        saved = work / "measurements.json"
        if args.report_only:
            found = json.loads(saved.read_text())
            rows = {tuple(json.loads(key)): {int(size): row for size, row in by_size.items()}
                    for key, by_size in found["rows"].items()}
            once = found["once"]
        else:
            rows = measure_sized(roots, tests, sizes, cores, model, work, log)
            once = measure_once(sizes, roots, model, work, log, args.steps)
            saved.write_text(json.dumps({"rows": {json.dumps(key): by_size for key, by_size in rows.items()},
                                         "once": once}))
        report(rows, once, sizes, tests, args, cores)
        print(f"\nstage logs: {log}" if args.keep else "")


def measure_sized(roots, tests, sizes, cores, model, work, log):
    section("stages at each size (wall s / CPU s / peak MB of the largest process)")
    rows = {}
    for size in sizes:
        for stage, grows, formats, has_jobs in SIZED:
            for fmt in formats:
                for jobs in ((1, cores) if has_jobs and cores > 1 else (None,)):
                    spec = {"root": str(roots[size][fmt]), "format": fmt, "work": str(work / f"w-{size}-{fmt}"),
                            "model": str(model), "jobs": jobs}
                    Path(spec["work"]).mkdir(exist_ok=True)
                    if stage == "report":
                        spec.update(model_eval=str(Path(spec["work"]) / f"eval-model-{cores}"),
                                    refs_eval=str(Path(spec["work"]) / f"eval-mixture-irm-{cores}"))
                    result = run_stage(stage, spec, log)
                    key = (stage, fmt, jobs)
                    rows.setdefault(key, {})[size] = result
                    print(f"  {size:>3} tracks  {stage:<15} {fmt:<4} jobs={jobs or '-':<3} "
                          f"{result['wall']:8.1f} {result['cpu']:8.1f} {result['peak_mb']:8.0f}", flush=True)
    return rows


def measure_once(sizes, roots, model, work, log, steps):
    section(f"stages whose cost does not depend on the collection (20,000 frames; {steps} steps)")
    spec = {"root": str(roots[max(sizes)]["wav"]), "format": "wav", "work": str(work / f"w-{max(sizes)}-wav"),
            "model": str(model), "steps": steps}
    # The frame set of the largest collection (written by its `frames` stage) feeds the couplings.
    once = {}
    for arch in ARCHS:
        once[f"train step {arch}"] = run_stage("train steps", {**spec, "arch": arch}, log)
    for stage in ("couplings fit", "couplings lstsq", "jacobian"):
        once[stage] = run_stage(stage, spec, log)
    for name, result in once.items():
        extra = f"  {result['step seconds'] * 1e3:.1f} ms/step" if "step seconds" in result else ""
        print(f"  {name:<20} {result['wall']:8.1f} {result['cpu']:8.1f} {result['peak_mb']:8.0f}{extra}")
    return once


def report(rows, once, sizes, tests, args, cores):
    section("growth with the collection, and the projection to MUSDB18")
    print(f"  {'stage':<15} {'fmt':<4} {'jobs':<4} {'x':<13} {'a (s)':>7} {'b (s/x)':>9} {'growth':>10} "
          f"{'peak MB':>8} {'MUSDB18 here':>12} {f'{args.cores} cores':>9}")
    projected = {}
    for (stage, fmt, jobs), by_size in rows.items():
        grows = next(g for s, g, _, _ in SIZED if s == stage)
        xs = [quantity(grows, size, tests, args.seconds) for size in sizes]
        a, b, shape = fit_line(xs, [by_size[size]["wall"] for size in sizes])
        _, cpu_b, _ = fit_line(xs, [by_size[size]["cpu"] for size in sizes])
        here = a + b * MUSDB18[grows]
        if jobs and jobs > 1:
            # CPU per unit over the cores it can use, at the parallel efficiency measured here.
            efficiency = cpu_b / (b * jobs) if b > 0 and cpu_b > 0 else 1.0
            bigger = a + cpu_b * MUSDB18[grows] / (args.cores * min(efficiency, 1.0))
        else:
            bigger = here
        projected[(stage, fmt, jobs)] = (here, bigger)
        peak = max(by_size[size]["peak_mb"] for size in sizes)
        print(f"  {stage:<15} {fmt:<4} {jobs or '-':<4} {grows:<13} {a:7.1f} {b:9.4f} {shape:>10} "
              f"{peak:8.0f} {hms(here):>12} {hms(bigger):>9}")
    cache = rows[("prepare", "wav", 1 if cores > 1 else None)][max(sizes)]["bytes"]
    per_second = cache / quantity("train seconds", max(sizes), tests, args.seconds)
    print(f"\n  frame cache: {per_second / 1e6:.2f} MB per second of audio at {NUM_BINS} bins: "
          f"{per_second * MUSDB18['train seconds'] / 1e9:.0f} GB for MUSDB18's train subset")
    step = {arch: once[f"train step {arch}"]["step seconds"] for arch in ARCHS}
    flops = {arch: once[f"train step {arch}"]["flops per step"] for arch in ARCHS}
    stream = projected[("stream epoch", "wav", None)][0] / STEPS_PER_EPOCH  # decoding per step, MUSDB18-sized epoch
    section(f"training ({EPOCHS} epochs x {STEPS_PER_EPOCH} steps per model)")
    gpu = {}
    for arch in ARCHS:
        gpu_step = max(flops[arch] / (args.gpu_tflops * 1e12 * args.gpu_efficiency), args.gpu_step_ms / 1e3)
        gpu[arch] = gpu_step * EPOCHS * STEPS_PER_EPOCH
        print(f"  {arch:<9} {step[arch] * 1e3:6.1f} ms/step here ({flops[arch] / 1e9:.2f} GFLOP/step): "
              f"{hms(step[arch] * EPOCHS * STEPS_PER_EPOCH)} on this CPU from a cache; "
              f"PROJECTED on a GPU: {gpu_step * 1e3:.1f} ms/step, {hms(gpu[arch])}")
    print(f"  streamed decoding: {stream * 1e3:.1f} ms per step (WAV) on this machine; a streamed run adds "
          f"{hms(stream * EPOCHS * STEPS_PER_EPOCH)} per model unless the GPU hides it behind the steps")
    couplings = (len(ARCHS) + PER_BIN_TEACHERS) * (once["couplings fit"]["wall"] + once["couplings lstsq"]["wall"])
    section("reproduce --preset paper on MUSDB18 (prepare, then train from the cache), projected")
    # After: each command's default jobs here (prepare one per 2 cores, evaluate one per core).
    after = {"prepare": max(1, cores // 2), "evaluate model": cores, "evaluate refs": cores}
    for label, jobs_here, jobs_big in (("before (jobs=1)", {}, 1), ("after (defaults)", after, cores)):
        def cost(stage, which):
            jobs = jobs_here.get(stage, 1)
            key = (stage, "wav", jobs if (stage, "wav", jobs) in projected else None)
            return projected[key][which]

        for which, machine in ((0, "this machine, CPU training"), (1, f"{args.cores} cores + a GPU (projected)")):
            parallel = which == 1 and jobs_big > 1
            stages = {
                "list": cost("list", which),
                "prepare": cost("prepare", 1 if parallel else 0),
                "train x3": sum(gpu.values()) if which else sum(step[a] for a in ARCHS) * EPOCHS * STEPS_PER_EPOCH,
                "frames": cost("frames", which),
                "couplings": couplings,
                "evaluate x3": 3 * cost("evaluate model", 1 if parallel else 0),
                "references": cost("evaluate refs", 1 if parallel else 0),
                "report": cost("report", which),
            }
            total = sum(stages.values())
            parts = ", ".join(f"{name} {hms(seconds)}" for name, seconds in stages.items())
            print(f"  {label:<16} {machine:<34} total {hms(total):>7}: {parts}")
    print(f"\n  assumptions: MUSDB18 {MUSDB18}; GPU {args.gpu_tflops:g} TFLOP/s x {args.gpu_efficiency:g}, "
          f"floor {args.gpu_step_ms:g} ms/step; couplings = ({len(ARCHS)} models + {PER_BIN_TEACHERS} per-bin "
          "teachers) x (fit + lstsq); training at the 100-epoch cap")


if __name__ == "__main__":
    main()
