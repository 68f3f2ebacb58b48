"""What the benchmark scripts share: argument set-up, the machine header, timing, CPU accounting, printing, data.

Every `bench_*.py` imports it as `import harness` (or `from harness import
...`): a script run as `python benchmarks/bench_x.py` has `benchmarks/` on
`sys.path`, so no path set-up is needed. Not a benchmark itself.

    argument_parser   an `ArgumentParser` described by the script's docstring,
                      with the common `--quick`, `--seed`, `--keep` options
    print_machine     the header every run starts with: Python, platform,
                      cores, TensorFlow, Keras, keras-dae, GPUs, the audio
                      backend, the load average
    CpuMeter          wall seconds, this process's cores and other processes'
                      load over a block (`cpu_sample`, `cpu_window` for two
                      samples taken apart)
    best_seconds      best of several timed calls after a warm-up
    ratio, verdict    a ratio (NaN when undefined) and PASS / MISS / n/a
                      against a target; `load_flag` marks a row that other
                      processes slowed down
    scratch_dir       `--keep DIR` or a temporary directory removed afterwards
    synthetic_tracks  a synthetic MUSDB18-HQ tree (reused when `--keep` has it)
    random_frames     random non-negative in-memory `(mixture, vocals)` frames

Importing it sets `TF_CPP_MIN_LOG_LEVEL=2` (unless set) so that TensorFlow's
C++ start-up messages stay out of the tables: import it before TensorFlow.
"""

import argparse
import contextlib
import importlib.metadata
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# Other load (cores' worth) above which a row is flagged as slowed down by other processes.
BUSY = 0.3


# --------------------------------------------------------------------------- arguments


def argument_parser(doc, *, quick=None, seed=False, keep=False):
    """An `ArgumentParser` whose description is the first paragraph of `doc` (the script's docstring).

    `quick`: the help of a `--quick` smoke-run flag (none if `None`);
    `seed`: add `--seed` (default 0); `keep`: add `--keep DIR` (write the
    data there and keep it; `scratch_dir` takes it).
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if quick is not None:
        parser.add_argument("--quick", action="store_true", help=quick)
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    if keep:
        parser.add_argument("--keep", help="write the data here and keep it (default: a temporary directory)")
    return parser


# --------------------------------------------------------------------------- the machine


def package_version(name):
    """The installed version of the distribution `name`, or `None`."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info():
    """`{what: value}` of the machine and the software stack (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    from keras_dae.data import readers

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu cores (os.cpu_count)": os.cpu_count(),
        "cpus usable (sched_getaffinity)": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras-dae": package_version("keras-dae") or "not installed (imported from the source tree)",
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "audio backend": readers.backend(),
        "load average (1, 5, 15 min)": load_average(),
    }


def section(title):
    print(f"\n== {title}", flush=True)


def print_machine():
    section("machine")
    for key, value in machine_info().items():
        print(f"  {key}: {value}")


def load_average():
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


# --------------------------------------------------------------------------- CPU and time


def cpu_sample():
    """`(wall seconds, machine busy seconds, own CPU seconds)` now.

    Busy: all cores' non-idle time from `/proc/stat` (steal included), NaN
    without it. Own: this process's threads and its waited-for children
    (such as ffmpeg).
    """
    wall = time.perf_counter()
    own = sum(os.times()[:4])
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return wall, float("nan"), own
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return wall, busy, own


def cpu_window(first, last):
    """`(seconds, own cores, other load)` between two `cpu_sample`s."""
    seconds = last[0] - first[0]
    if not seconds > 0:
        return seconds, float("nan"), float("nan")
    own = last[2] - first[2]
    other = max(last[1] - first[1] - own, 0.0)
    return seconds, own / seconds, other / seconds


class CpuMeter:
    """Wall seconds, own cores and other processes' load while a block ran.

    `own_cores`: CPU this process (and its waited-for children) used per
    second; `other_load`: the machine's busy time minus this process's, per
    second: 0 on a quiet machine, 1 if another process kept one core busy
    the whole time. NaN without `/proc/stat`.

        with CpuMeter() as meter:
            work()
        print(meter.seconds, meter.own_cores, meter.other_load)
    """

    def __enter__(self):
        self.start = cpu_sample()
        return self

    def __exit__(self, *exc):
        self.end = cpu_sample()

    @property
    def seconds(self):
        return self.end[0] - self.start[0]

    @property
    def own_cores(self):
        return cpu_window(self.start, self.end)[1]

    @property
    def other_load(self):
        return cpu_window(self.start, self.end)[2]


def best_seconds(function, repeats, warmup=True):
    """The shortest of `repeats` timed calls of `function()`, after one untimed call if `warmup`."""
    if warmup:
        function()  # tracing, first allocations
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------- printing


def ratio(top, bottom):
    """`top / bottom`, NaN when that is undefined (a missing or zero `bottom`)."""
    if top is None or bottom is None or not bottom or math.isnan(bottom):
        return float("nan")
    return top / bottom


def verdict(value, target):
    """`PASS` if `value >= target`, `MISS` if not, `n/a` if `value` is not a number."""
    if not math.isfinite(value):
        return "n/a"
    return "PASS" if value >= target else "MISS"


def load_flag(other_load):
    """A note for a row during which other processes used more than `BUSY` cores, else `""`."""
    return f"  SLOWED: other processes used ~{other_load:.1f} cores" if other_load > BUSY else ""


# --------------------------------------------------------------------------- data


@contextlib.contextmanager
def scratch_dir(keep, prefix):
    """`keep` (created) if given, else a temporary directory removed afterwards."""
    path = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def synthetic_tracks(root, *, num_tracks, seconds, seed=0, subset="train"):
    """`(tracks, seconds taken)`: a synthetic MUSDB18-HQ WAV tree at `root`, listed.

    Written by `keras_dae.data.synthetic.write_synthetic_musdb` unless
    `root/subset` exists already (a `--keep` directory of an earlier run:
    then 0 seconds).
    """
    from keras_dae.data.synthetic import write_synthetic_musdb
    from keras_dae.data.tracks import list_tracks

    root = Path(root)
    start = time.perf_counter()
    if not (root / subset).is_dir():
        write_synthetic_musdb(root, num_tracks=num_tracks, seconds=seconds, subset=subset, seed=seed)
    taken = time.perf_counter() - start
    return list_tracks(root, is_wav=True, subsets=subset), taken


def tree_bytes(path):
    """Bytes of all files under `path`."""
    return sum(item.stat().st_size for item in Path(path).rglob("*") if item.is_file())


def random_frames(count, num_bins, seed):
    """`count` random `(mixture, vocals)` frames: mixture uniform in [0, 1), vocals a random share of it."""
    rng = np.random.default_rng(seed)
    mixture = rng.random((count, num_bins), dtype=np.float32)
    return mixture, mixture * rng.random(mixture.shape, dtype=np.float32)
