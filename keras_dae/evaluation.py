"""BSS Eval v4 of a model on MUSDB tracks, with the mixture (floor) and ideal-ratio-mask (ceiling) references.

For every track, three methods are scored with `museval.eval_mus_track`
(1-second windows and hops, the SiSEC 2018 convention), vocals and
accompaniment, as SDR, SIR, SAR and ISR per window:

    model    `keras_dae.separate` with the given mask / Wiener settings
    mixture  the mixture itself as both estimates: the floor any separator
             should beat
    irm      the ideal ratio mask |V| / (|V| + |A|) of the true sources applied
             to the mixture STFT over all bins (the model's STFT settings),
             accompaniment = mixture - vocals: the ceiling of magnitude
             masking with the mixture phase

The mixture is the sum of the four sources, the accompaniment the sum of
drums, bass and other (musdb's convention). Each (method, track) score is
saved as museval's JSON in `OUT/<method>/<subset>/<track>.json` as soon as it
is computed (atomically), so a stopped evaluation resumes by skipping the
files already there. `OUT/evaluation.json` records the model file's SHA-256
and the settings; resuming into a directory of another model or settings is
refused. `evaluate` and `write_summary` hold the lock of `OUT`
(`keras_dae.locking`): a second evaluation into it is refused while one runs.

With `jobs` > 1 the tracks are scored in that many worker processes
(`keras_dae.workers`: spawned, the parent watched, threads shared out), one
track per task. Each worker loads the model once from its file and writes
the JSON of the tracks it scores itself, atomically, as the sequential path
does; the parent holds the lock of `OUT`, skips the finished tracks before
it hands out the others, and writes only `evaluation.json` and the summary.
The scores are those of `jobs=1`. After a `kill -9` only the tracks in
flight are lost; their temporaries are removed by the next run.

BSS Eval runs with its BLAS on one thread in both paths (`threadpoolctl`):
museval's least squares are ill-conditioned on some windows (the mixture as
its own estimate), where the threads' summation order moves SAR and ISR by
dB, so the scores depend neither on `jobs` nor on the machine's cores.

The summary aggregates like SiSEC: the median over a track's windows (NaN
windows, e.g. silent vocals, are ignored), then the median and the mean of
those over tracks.
"""

import dataclasses
import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.data.example import SOURCES
from keras_dae.data.tracks import read_track
from keras_dae.checks import one_of, positive_int
from keras_dae.locking import holds_lock
from keras_dae.separation.core import resolve, separate
from keras_dae.separation.masks import MASKS, ideal_ratio_mask
from keras_dae.tables import Table
from keras_dae.workers import in_processes, usable_cores

log = logging.getLogger(__name__)

METHODS = ("model", "mixture", "irm")
TARGETS = ("vocals", "accompaniment")
METRICS = ("SDR", "SIR", "SAR", "ISR")
STATISTICS = ("median", "mean")
SETTINGS = "evaluation.json"


@dataclasses.dataclass
class _Target:
    audio: np.ndarray


@dataclasses.dataclass
class _MusTrack:
    """What `museval.eval_mus_track` reads of a musdb `Track`."""

    name: str
    subset: str
    rate: int
    targets: dict


def load_sources(track):
    """`(mixture, {"vocals": ..., "accompaniment": ...})` of a `TrackInfo`, float32 `(samples, 2)`."""
    sources = read_track(track)
    vocals = sources[SOURCES.index("vocals")].copy()  # not a view, which would keep all four sources alive
    mixture = sources.sum(axis=0)
    del sources
    return mixture, {"vocals": vocals, "accompaniment": mixture - vocals}


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_settings(out, settings, overwrite):
    path = Path(out) / SETTINGS
    if path.exists() and not overwrite:
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != settings:
            changed = sorted(k for k in settings if (previous or {}).get(k) != settings[k])
            raise ValueError(
                f"'{out}' holds an evaluation with other settings ({', '.join(changed) or 'unreadable'}); "
                "use another `out`, or `overwrite=True` to start it again."
            )
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2, sort_keys=True))


def score_path(out, method, track):
    return Path(out) / method / track.subset / f"{track.name}.json"


def _finished(path):
    try:
        return bool(json.loads(path.read_text()).get("targets"))
    except (OSError, ValueError):
        return False


def _todo(out, methods, overwrite, track):
    return [m for m in methods if overwrite or not _finished(score_path(out, m, track))]


def _score_track(track, out, todo, model, spectral, mask, wiener):
    """Scores the methods `todo` on one track and writes each one's JSON atomically; returns `todo`."""
    import museval
    from threadpoolctl import threadpool_limits

    if not todo:
        return todo
    mixture, references = load_sources(track)
    target = _MusTrack(track.name, track.subset, track.rate,
                       {name: _Target(audio) for name, audio in references.items()})
    for method in todo:
        if method == "model":
            estimates = separate(model, mixture, track.rate, spectral=spectral, mask=mask, wiener=wiener)
        elif method == "mixture":
            estimates = {"vocals": mixture, "accompaniment": mixture}
        else:
            estimates = ideal_ratio_mask(mixture, references["vocals"], references["accompaniment"], spectral)
        with threadpool_limits(1):  # the same numbers whatever the cores (see the module docstring)
            scores = museval.eval_mus_track(target, estimates)
        with atomic_path(score_path(out, method, track)) as tmp:
            tmp.write_text(scores.json)
    return todo


# --------------------------------------------------------------------------- memory per job

# What a job holds whatever the track's length: TensorFlow, the model, the separation's and the ideal ratio
# mask's chunks (about 1.05 GB measured with an sf model at 2049 bins, benchmarks/bench_evaluate_memory.py;
# rounded up so that `job_bytes` is at or above the measured peaks).
JOB_FIXED_BYTES = 1.2e9


def job_bytes(num_samples):
    """The planned peak memory (bytes) of a job scoring a stereo track of `num_samples` samples.

    `JOB_FIXED_BYTES` plus what grows with the track: museval's BSS Eval
    (v4, whole-track distortion filters) holds the FFTs of both references
    (4 channels) and of one estimate (2), complex128 over `n_fft`, the power
    of two at or above `num_samples + 511`, and three such temporaries while
    it correlates them: 144 bytes per FFT point; and 108 bytes per sample,
    measured, of which 88 are the track's float32 arrays (mixture, two
    references, two estimates), museval's copies of the references and
    estimates, and the estimate it zero-pads in float64. 3-10% above the
    peaks measured from 20 s to 10 minutes.
    """
    n_fft = 2 ** math.ceil(math.log2(num_samples + 511))
    return JOB_FIXED_BYTES + 144 * n_fft + 108 * num_samples


def available_memory():
    """Bytes that can still be allocated, or None if unknown.

    `MemAvailable` of `/proc/meminfo`, lowered to what the process's
    control group still allows if it has a memory limit (cgroup v2
    `memory.max` or v1 `memory.limit_in_bytes`, less its usage without its
    reclaimable file cache).
    """
    try:
        with open("/proc/meminfo") as handle:
            found = dict(line.split(":", 1) for line in handle)
        available = int(found["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    for limit, usage, cache in _cgroup_memory():
        if limit < 1 << 60:  # "max" and v1's unlimited are larger
            available = min(available, max(limit - usage + cache, 0))
    return available


def _cgroup_memory():
    """`(limit, usage, inactive file cache)` bytes of each memory control group this process is in."""
    try:
        with open("/proc/self/cgroup") as handle:
            lines = [line.rstrip("\n").split(":", 2) for line in handle]
    except OSError:
        return []
    found = []
    for _, controllers, path in (line for line in lines if len(line) == 3):
        if controllers == "":
            base, files = Path("/sys/fs/cgroup"), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            base, files = Path("/sys/fs/cgroup/memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                          "total_inactive_file")
        else:
            continue
        for directory in (base / path.lstrip("/"), base):  # a cgroup namespace shows its own root as "/"
            try:
                limit, usage = ((directory / name).read_text().strip() for name in files[:2])
                stat = dict(line.split() for line in (directory / "memory.stat").read_text().splitlines())
                found.append((int(limit) if limit != "max" else 1 << 62, int(usage), int(stat.get(files[2], 0))))
                break
            except (OSError, ValueError):
                continue
    return found


def default_jobs(tracks):
    """`jobs=None` for `tracks` to score: one per usable core and track, at most as many as the available
    memory holds (`available_memory() // job_bytes(longest track)`, at least 1)."""
    cores = usable_cores()
    most = min(cores, len(tracks))
    available = available_memory()
    if most <= 1 or available is None:
        return max(most, 1)
    longest = max(tracks, key=lambda track: track.num_samples)
    need = job_bytes(longest.num_samples)
    jobs = max(1, min(most, int(available // need)))
    log.info("jobs=%d for %d tracks: %d usable cores, %.1f GB of memory available, about %.1f GB per job for "
             "the longest track ('%s', %.0f s)", jobs, len(tracks), cores, available / 1e9, need / 1e9,
             longest.name, longest.num_samples / longest.rate)
    return jobs


# --------------------------------------------------------------------------- worker processes

_WORKER = {}


def _init_worker(model_file, spectral):
    _WORKER.update(model_file=model_file, spectral=spectral, model=None)


def _worker_score(index, track, out, todo, mask, wiener):
    """One task of a worker: `_score_track` with this worker's model, loaded from its file on first use."""
    if "model" in todo and _WORKER["model"] is None:
        _WORKER["model"], _ = resolve(_WORKER["model_file"], spectral=_WORKER["spectral"])
    return _score_track(track, out, todo, _WORKER["model"], _WORKER["spectral"], mask, wiener)


def _score_in_workers(pending, out, jobs, model_file, spectral, mask, wiener, on_track):
    """Scores `pending` (`[(index, track, todo)]`) in `jobs` worker processes; `on_track` as each finishes."""
    items = [(index, track, out, todo, mask, wiener) for index, track, todo in pending]
    finished = in_processes(_worker_score, items, jobs=jobs, initializer=_init_worker,
                            initargs=(None if model_file is None else str(model_file), spectral),
                            describe=lambda item: f"track '{item[1].name}'")
    for (index, track, *_), computed in finished:
        if on_track:
            on_track(index, track, computed)


@holds_lock("out")
def evaluate(model, tracks, out, *, spectral=None, model_file=None, mask="subtract", wiener=0, methods=METHODS,
             overwrite=False, on_track=None, jobs=None):
    """Scores `methods` on `tracks`, saving each track's museval JSON as it finishes.

    Args:
        model: a keras-dae Keras model, a `.keras` file or a run directory;
            None to score only the references (`methods` without `"model"`).
        tracks: list of `TrackInfo` (`keras_dae.data.tracks.list_tracks`).
        out: the output directory.
        spectral: `SpectralConfig` or None: the model's run's settings (see
            `separation.resolve`); without a model, the paper's.
        model_file: the model's file, recorded by its SHA-256 so that a resumed
            evaluation is of the same model, and loaded by the worker processes
            (`jobs` > 1); default the file of a `model` given as a path.
        mask, wiener: the separation settings (`separation.separate`).
        methods: which of `METHODS` to score.
        overwrite: recompute everything (otherwise finished tracks are skipped).
        on_track: callable `(index, track, computed)` after each track, in the
            order they finish (any order with `jobs` > 1), `index` the track's
            position in `tracks`, `computed` the methods scored now (not resumed).
        jobs: positive int or None: how many tracks are scored at once, each
            in its own worker process. None: one per usable core
            (`usable_cores()`) and track to score, but no more than the
            available memory holds for the longest of them (`default_jobs`,
            logged at INFO), or 1 for an in-memory `model` without a
            `model_file` (a Keras model cannot be sent to another process);
            1: in this process, one track after another. At most one job per
            track to compute is started (one track left: this process).
            Memory: each job holds TensorFlow and one model (loaded from
            `model_file`, only when `"model"` is scored), the separation's and
            the ideal ratio mask's chunks (bounded), one track's audio (the
            mixture, the two references and the two estimates, float32
            stereo) and museval's arrays for it, which grow with the track
            (FFTs of the whole track, complex128, over the power of two at or
            above its samples). Measured peak of a job with a 2049-bin `sf`:
            about 1.05 GB + 14.3 MB per second of 44.1 kHz stereo track
            (20 s: 1.3 GB, 60 s: 1.9 GB, a 4-minute track 4.6 GB, a
            10-minute one 8.6 GB: museval's share steps at each power of two
            of samples, between 11 and 18 MB per second; `job_bytes` plans
            with it); `jobs=1` needs as much per track, in this process; this
            process holds the model too.
            Each job runs TensorFlow and BLAS on one thread. Processes are
            spawned: a script calling `evaluate` with `jobs` > 1 must do so
            under `if __name__ == "__main__":`.

    Returns:
        the summary, see `summarize`.
    """
    from keras_dae import runs
    from keras_dae.spectral import SpectralConfig

    out = Path(out)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; valid ones are {', '.join(METHODS)}.")
    positive_int("jobs", jobs, optional=True)
    if model is None:
        if "model" in methods:
            raise ValueError(f"`model` is None but `methods` include 'model'. Received: methods={methods!r}")
        spectral = spectral or SpectralConfig()
    else:
        if model_file is None and isinstance(model, (str, os.PathLike)):
            model_file = runs.model_file(model)
        model, spectral = resolve(model, spectral=spectral)
    one_of("mask", mask, MASKS)
    needs_file = "model" in methods and model_file is None
    if jobs is None and needs_file:
        jobs = 1
    elif jobs is not None and jobs > 1 and needs_file:
        raise ValueError(
            f"a Keras model in memory cannot be sent to worker processes; give `model` as a file or run "
            f"directory, or its `model_file`, or `jobs=1`. Received: jobs={jobs}"
        )
    settings = {"mask": mask, "wiener": wiener, "spectral": spectral.to_dict(),
                "model_sha256": file_digest(model_file) if model_file else None}
    remove_stale_temporaries(out, depth=2)  # what a killed run left, up to OUT/<method>/<subset>/
    _check_settings(out, settings, overwrite)
    todos = [_todo(out, methods, overwrite, track) for track in tracks]
    if jobs is None:
        jobs = default_jobs([track for track, todo in zip(tracks, todos) if todo])
    jobs = min(jobs, sum(1 for todo in todos if todo))
    if jobs <= 1:  # in this process, in order
        for index, (track, todo) in enumerate(zip(tracks, todos)):
            _score_track(track, out, todo, model, spectral, mask, wiener)
            if on_track:
                on_track(index, track, todo)
        return summarize(out, tracks, methods)
    pending = []
    for index, (track, todo) in enumerate(zip(tracks, todos)):
        if todo:
            pending.append((index, track, todo))
        elif on_track:
            on_track(index, track, todo)
    log.info("scoring %d tracks in %d processes", len(pending), jobs)
    _score_in_workers(pending, out, jobs, model_file, spectral, mask, wiener, on_track)
    return summarize(out, tracks, methods)


def track_medians(path):
    """`{target: {metric: median over windows}}` of one museval JSON (NaN windows ignored)."""
    found = json.loads(Path(path).read_text())
    medians = {}
    for target in found["targets"]:
        values = {metric: [frame["metrics"][metric] for frame in target["frames"]] for metric in METRICS}
        medians[target["name"]] = {
            metric: _nan_statistic(np.median, v) for metric, v in values.items()
        }
    return medians


def _nan_statistic(function, values):
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(function(values)) if len(values) else float("nan")


def summarize(out, tracks, methods=METHODS):
    """`{method: {target: {metric: {"median": x, "mean": y}}}}` over the tracks' window medians."""
    summary = {}
    for method in methods:
        per_track = [track_medians(score_path(out, method, track)) for track in tracks
                     if score_path(out, method, track).exists()]
        summary[method] = {
            target: {
                metric: {
                    "median": _nan_statistic(np.median, [t[target][metric] for t in per_track]),
                    "mean": _nan_statistic(np.mean, [t[target][metric] for t in per_track]),
                }
                for metric in METRICS
            }
            for target in TARGETS
        }
        summary[method]["tracks"] = len(per_track)
    return summary


def summary_table(summary):
    """The summary as a `Table`: one row per method, target and statistic."""
    header = ["method", "target", "over tracks", *(f"{m} (dB)" for m in METRICS)]
    rows = [[method, target, statistic, *(f"{targets[target][m][statistic]:.2f}" for m in METRICS)]
            for method, targets in summary.items() for target in TARGETS for statistic in STATISTICS]
    return Table(header, rows, align=("left",) * 3 + ("right",) * len(METRICS))


def format_table(summary):
    """The summary as a Markdown table (`summary_table`)."""
    return summary_table(summary).markdown()


@holds_lock("out")
def write_summary(out, summary):
    """`OUT/results.md`, `results.csv` and `results.json`; returns the Markdown table."""
    out = Path(out)
    table = format_table(summary)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(table)
    rows = ["method,target,statistic," + ",".join(METRICS)]
    for method, targets in summary.items():
        for target in TARGETS:
            for statistic in STATISTICS:
                rows.append(",".join([method, target, statistic]
                                     + [f"{targets[target][m][statistic]:.4f}" for m in METRICS]))
    with atomic_path(out / "results.csv") as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    return table
