"""Training benchmark (issue 4): training frames per second against PyTorch and the matmul roofline.

Measures, in one run on this machine, training frames per second (one frame =
one `(mixture, vocals)` pair of `num_bins=2049` magnitudes, batch 256) of each
architecture (`dae`, `deep-dae`, `sf`; `--archs`):

    keras-dae, streaming   `model.fit` compiled as `keras_dae.training.train`
                           compiles (Adam(1e-4, global_clipnorm=0.5), L1
                           loss), fed by the package's own pipeline exactly as
                           `train` builds it (`training.make_data`: the
                           `musdb_frames` stream of 6-second excerpts of a
                           synthetic MUSDB18-HQ WAV tree, read, mixed and
                           STFT'd on the fly)
    keras-dae, prepared    the same fed by the TFRecord frame cache
                           (`prepared_frames`, via `make_data(prepared=...)`)
    PyTorch                the same maths in plain PyTorch on the CPU on
                           in-memory tensors: `nn.Linear` layers, ReLU, Keras'
                           Glorot-normal init (truncated normal), the same
                           biases, `torch.optim.Adam` with Keras' defaults
                           (betas 0.9/0.999, eps 1e-7), `clip_grad_norm_(0.5)`,
                           `nn.L1Loss`, batch 256, `torch.set_num_threads(2)`
    roofline               the model's matrix-product FLOPs per frame,
                           2 x 3 x (forward matmul FLOPs) (forward, input
                           gradient and weight gradient of every dense layer),
                           against the GFLOP/s `tf.matmul` reaches on exactly
                           those shapes (the three products of every layer, in
                           a `tf.function`, with the transposes the gradients use)

The keras-dae rows are compiled as the package compiles
(`keras_dae.training.compile_model`: `keras_dae.optimizers.FusedAdam`,
`steps_per_execution=1`, the datasets' own tf.data options), also fed
in-memory frames through tf.data for comparison, and, as the reference for
what FusedAdam buys, streamed with plain `keras.optimizers.Adam`; the
summary prints keras-dae/PyTorch and achieved/roofline against the issue's
targets (>= 1.1x and >= 75%). Every run first checks that FusedAdam's
updates equal keras Adam's to float rounding.

Then (`--no-investigate` skips it) it investigates why `model.fit` over a
tf.data pipeline may be slower than `train_on_batch` on a 2-core machine: the
`sf` model fed by (1) in-memory frames through `Dataset.from_tensor_slices(
...).batch(256).repeat()`, (2) the TFRecord cache and (3) the streaming
pipeline, each with one setting changed (`steps_per_execution`, tf.data
autotuning, its CPU budget, private thread pool, the final prefetch's size,
TensorFlow's inter-op threads, XLA, gradient clipping, the optimizer, ...),
and prints a table of frames/s per setting.

Measurements run in child processes (this script with `--worker`), so that
PyTorch and TensorFlow never share a process and thread-pool settings (which
only take effect before TensorFlow starts) get a process of their own; the
other TensorFlow measurements of a round share one child, run one after the
other, each with a fresh model and dataset. Each is repeated `--rounds` times
(default 3), in an order rotated by 1/rounds every round (with 3 rounds
each measurement runs once early, once midway and once late in its process),
and the median is reported with the rounds' min-max: this shared VM's speed
drifts by +-15% within minutes (tf.matmul alone: 110-150 GFLOP/s), so one
run of a setting proves little.
Each measurement times `--steps` training steps after `--warmup-steps`
(graph tracing, filling the shuffle buffer, tf.data's autotuning), from the
wall clock at the end of those steps (a Keras callback; with
`steps_per_execution=k` it fires every k steps, so both counts are rounded up
to multiples of k). Besides frames/s each row shows the CPU the child used
(`own cores`) and the CPU *other* processes used meanwhile (`other load`,
cores' worth, from /proc/stat): on this 2-core machine a row with other load
near 1 is worth about half, so run it on an idle machine.

The roofline's tf.matmul GFLOP/s is the best of 5 runs at the start and 5 at
the end (the machine's best, so the achieved/roofline ratios are not
flattered by a slow minute).

Run from the repository root (PyTorch from the `bench` extra:
`.venv/bin/pip install torch==2.13.0`, the CPU build):

    .venv/bin/python benchmarks/bench_train.py                 # everything, ~35 minutes
    .venv/bin/python benchmarks/bench_train.py --rounds 1      # the same once, ~12 minutes
    .venv/bin/python benchmarks/bench_train.py --quick         # smoke run, < 1 minute
    .venv/bin/python benchmarks/bench_train.py --archs sf --no-investigate
    .venv/bin/python benchmarks/bench_train.py --investigate-feeds memory

Nothing is asserted: it prints tables with PASS/MISS against the targets.
"""

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harness import (
    CpuMeter,
    argument_parser,
    cpu_sample,
    cpu_window,
    load_average,
    package_version,
    print_machine,
    random_frames,
    scratch_dir,
    section,
    synthetic_tracks,
    tree_bytes,
    verdict,
)

BATCH_SIZE = 256
EXCERPT_SECONDS = 6.0
ARCHS = ("dae", "deep-dae", "sf")
TARGET_VS_TORCH = 1.1
TARGET_VS_ROOFLINE = 0.75
# In-memory frames cycled through by the `memory` feed, PyTorch and train_on_batch.
MEMORY_BATCHES = 16
RESULT_PREFIX = "BENCH_TRAIN_RESULT "

# Compiling with plain `keras.optimizers.Adam` instead of the package's `FusedAdam`.
KERAS_ADAM = {"optimizer": "keras"}


# --------------------------------------------------------------------------- specs


@dataclasses.dataclass
class Spec:
    """One measurement, run in a child process."""

    kind: str = "fit"  # fit | train_on_batch | torch
    arch: str = "sf"
    feed: str = "memory"  # memory | numpy | stream | prepared (fit); memory (others)
    steps: int = 60
    warmup: int = 10
    spe: int = 1  # steps_per_execution
    jit: bool = False
    clip_norm: float = 0.5
    learning_rate: float = 1e-4
    optimizer: str = "package"  # package: FusedAdam, as train compiles; keras: keras.optimizers.Adam
    seed: int = 0
    # tf.data options applied to the training dataset (None: leave as the package sets them)
    autotune: bool = None
    cpu_budget: int = None
    private_threadpool: int = None
    max_intra_op: int = None
    inject_prefetch: bool = None
    # buffer of the dataset's final prefetch instead of AUTOTUNE (None: as the package sets it)
    prefetch: int = None
    # TensorFlow's thread pools (None: TensorFlow's default, the number of cores)
    inter_op: int = None
    intra_op: int = None
    # data
    root: str = None
    prepared: str = None

    def with_(self, **changes):
        return dataclasses.replace(self, **changes)

    def process_key(self):
        """Specs with equal keys can share a child process (same thread pools, same framework)."""
        return ("torch",) if self.kind == "torch" else ("tensorflow", self.inter_op, self.intra_op)


@dataclasses.dataclass
class Measured:
    """What a child reports for one spec, or the summary of several rounds."""

    name: str
    frames: int = 0
    seconds: float = float("nan")
    own_cores: float = float("nan")
    other_load: float = float("nan")
    startup: float = float("nan")
    note: str = ""
    error: str = ""
    rates: list = dataclasses.field(default_factory=list)  # every round's frames/s (summaries)

    @property
    def rate(self):
        if self.rates:
            return float(np.median(self.rates))
        return self.frames / self.seconds if self.seconds and self.seconds > 0 else float("nan")

    @property
    def spread(self):
        """`min-max` of the rounds' frames/s."""
        if len(self.rates) < 2:
            return ""
        return f"{min(self.rates):,.0f}-{max(self.rates):,.0f}"


def run_batch(items, timeout=3600):
    """Runs `[(name, Spec)]` one after another in one child process; returns their `Measured`."""
    specs = [dataclasses.asdict(spec) for _, spec in items]
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(specs)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [Measured(name, error=f"timed out after {timeout} s") for name, _ in items]
    reported = {}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            index, result = json.loads(line[len(RESULT_PREFIX):])
            reported[index] = result
    tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
    return [
        Measured(name, **reported[index]) if index in reported
        else Measured(name, error=f"child failed (exit {done.returncode}): {tail}")
        for index, (name, _) in enumerate(items)
    ]


def _rotated(items, round_index, rounds):
    """`items` rotated by `round_index / rounds` of their length.

    Over the rounds every item runs in a different part of its child
    process's sequence (start, middle, end), so neither being first in a
    process nor a slow spell at a fixed time falls on the same items each round.
    """
    shift = round_index * len(items) // max(rounds, 1) if items else 0
    return items[shift:] + items[:shift]


def measure(items, rounds, label=""):
    """Measures `[(name, Spec)]` `rounds` times; returns `{name: Measured}` summaries (median frames/s).

    Each round runs one child process per group of specs that can share one
    (`Spec.process_key`), the groups and the specs within them rotated by a
    third (with 3 rounds) every round (see `_rotated`).
    """
    runs = {name: [] for name, _ in items}
    groups = {}
    for name, spec in items:
        groups.setdefault(spec.process_key(), []).append((name, spec))
    for round_index in range(rounds):
        started = time.perf_counter()
        for group in _rotated(list(groups.values()), round_index, rounds):
            for measured in run_batch(_rotated(group, round_index, rounds)):
                runs[measured.name].append(measured)
        print(f"  {label}round {round_index + 1}/{rounds}: {time.perf_counter() - started:.0f} s", flush=True)
    summaries = {}
    for name, measured in runs.items():
        good = [m for m in measured if not m.error]
        if not good:
            summaries[name] = measured[0]
            continue
        summaries[name] = Measured(
            name, frames=sum(m.frames for m in good), seconds=sum(m.seconds for m in good),
            own_cores=float(np.mean([m.own_cores for m in good])),
            other_load=float(max(m.other_load for m in good)),
            note=good[0].note + (f"; {len(measured) - len(good)} round(s) failed" if len(good) < len(measured) else ""),
            rates=[m.rate for m in good],
        )
    return summaries


# --------------------------------------------------------------------------- child side


def memory_frames(num_bins, seed):
    """Random non-negative `(mixture, vocals)` frames, `MEMORY_BATCHES` batches' worth."""
    return random_frames(MEMORY_BATCHES * BATCH_SIZE, num_bins, seed)


def _set_threads(spec):
    import tensorflow as tf

    if spec.inter_op is not None:
        tf.config.threading.set_inter_op_parallelism_threads(spec.inter_op)
    if spec.intra_op is not None:
        tf.config.threading.set_intra_op_parallelism_threads(spec.intra_op)


@contextlib.contextmanager
def _prefetch_as(buffer_size):
    """Within it, `Dataset.prefetch(AUTOTUNE)` uses `buffer_size` (simulates editing the package).

    `musdb_frames` and `prepared_frames` end with `prefetch(tf.data.AUTOTUNE)`,
    their only prefetch; with `buffer_size=0` it is left out.
    """
    import tensorflow as tf

    original = tf.data.Dataset.prefetch

    def prefetch(self, size, name=None):
        if size == tf.data.AUTOTUNE:
            return self if buffer_size == 0 else original(self, buffer_size, name=name)
        return original(self, size, name=name)

    tf.data.Dataset.prefetch = prefetch
    try:
        yield
    finally:
        tf.data.Dataset.prefetch = original


def _options(spec):
    import tensorflow as tf

    options = tf.data.Options()
    changed = False
    if spec.autotune is not None:
        options.autotune.enabled, changed = spec.autotune, True
    if spec.cpu_budget is not None:
        options.autotune.cpu_budget, changed = spec.cpu_budget, True
    if spec.private_threadpool is not None:
        options.threading.private_threadpool_size, changed = spec.private_threadpool, True
    if spec.max_intra_op is not None:
        options.threading.max_intra_op_parallelism, changed = spec.max_intra_op, True
    if spec.inject_prefetch is not None:
        options.experimental_optimization.inject_prefetch, changed = spec.inject_prefetch, True
    return options if changed else None


def _settings(spec):
    from keras_dae.training import Settings

    return Settings(arch=spec.arch, loss="l1", learning_rate=spec.learning_rate, batch_size=BATCH_SIZE,
                    clip_norm=spec.clip_norm or None, seed=spec.seed, excerpt_seconds=EXCERPT_SECONDS,
                    steps_per_execution=spec.spe)


def _dataset(spec, num_bins):
    """The training dataset of `spec.feed`, with `spec`'s tf.data options."""
    import tensorflow as tf

    from keras_dae.spectral import SpectralConfig
    from keras_dae.training import make_data

    if spec.feed == "memory":
        mixture, vocals = memory_frames(num_bins, spec.seed)
        dataset = tf.data.Dataset.from_tensor_slices((mixture, vocals)).batch(BATCH_SIZE).repeat()
        if spec.prefetch is not None and spec.prefetch > 0:
            dataset = dataset.prefetch(spec.prefetch)
    elif spec.feed in ("stream", "prepared"):
        # Exactly what `keras_dae.training.train` feeds `fit` (default strategy).
        kwargs = {"prepared": spec.prepared} if spec.feed == "prepared" else {"root": spec.root, "is_wav": True}
        with _prefetch_as(spec.prefetch) if spec.prefetch is not None else contextlib.nullcontext():
            data = make_data(_settings(spec), SpectralConfig(), **kwargs)
            dataset = data.train_fn(spec.seed, 0, 0, 1, BATCH_SIZE)
    else:
        raise ValueError(f"unknown feed {spec.feed!r}")
    options = _options(spec)
    return dataset if options is None else dataset.with_options(options)


def _model(spec, num_bins):
    """`build_model` compiled as `keras_dae.training.train` compiles it."""
    import keras

    from keras_dae.losses import get_loss
    from keras_dae.models import build_model

    model = build_model(spec.arch, num_bins)
    from keras_dae.optimizers import FusedAdam

    adam = FusedAdam if spec.optimizer == "package" else keras.optimizers.Adam
    optimizer = adam(spec.learning_rate, global_clipnorm=spec.clip_norm or None)
    model.compile(optimizer=optimizer, loss=get_loss("l1"), steps_per_execution=spec.spe, jit_compile=spec.jit)
    return model


def _round_up(value, multiple):
    return int(math.ceil(value / multiple) * multiple)


def child_fit(spec, num_bins):
    import keras

    started = time.perf_counter()
    model = _model(spec, num_bins)
    warmup, steps = _round_up(spec.warmup, spec.spe), _round_up(spec.steps, spec.spe)

    class Clock(keras.callbacks.Callback):
        """`(last step done, wall/CPU sample)` at the end of every execution."""

        def __init__(self):
            super().__init__()
            self.marks = []

        def on_train_batch_end(self, batch, logs=None):
            self.marks.append((batch, cpu_sample()))

    clock = Clock()
    if spec.feed == "numpy":
        mixture, vocals = memory_frames(num_bins, spec.seed)
        repeats = -(-(warmup + steps) // MEMORY_BATCHES)
        model.fit(np.tile(mixture, (repeats, 1)), np.tile(vocals, (repeats, 1)), batch_size=BATCH_SIZE,
                  epochs=1, steps_per_epoch=warmup + steps, verbose=0, shuffle=False, callbacks=[clock])
    else:
        dataset = _dataset(spec, num_bins)
        model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, shuffle=False, callbacks=[clock])
    first = next((mark for mark in clock.marks if mark[0] >= warmup - 1), None)
    last = clock.marks[-1]
    if first is None or last[0] <= first[0]:
        raise RuntimeError(f"too few steps timed: {clock.marks[:3]}...")
    seconds, own, other = cpu_window(first[1], last[1])
    note = f"jit_compile={model.jit_compile}" if spec.jit else ""
    return dict(frames=(last[0] - first[0]) * BATCH_SIZE, seconds=seconds, own_cores=own, other_load=other,
                startup=first[1][0] - started, note=note)


def child_train_on_batch(spec, num_bins):
    import tensorflow as tf

    started = time.perf_counter()
    model = _model(spec, num_bins)
    mixture, vocals = memory_frames(num_bins, spec.seed)
    batches = [(tf.constant(mixture[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]),
                tf.constant(vocals[i * BATCH_SIZE:(i + 1) * BATCH_SIZE])) for i in range(MEMORY_BATCHES)]
    for step in range(spec.warmup):
        model.train_on_batch(*batches[step % MEMORY_BATCHES])
    first = cpu_sample()
    for step in range(spec.steps):
        model.train_on_batch(*batches[step % MEMORY_BATCHES])
    seconds, own, other = cpu_window(first, cpu_sample())
    return dict(frames=spec.steps * BATCH_SIZE, seconds=seconds, own_cores=own, other_load=other,
                startup=first[0] - started)


def child_torch(spec, num_bins):
    """The same training in plain PyTorch on in-memory tensors."""
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(spec.seed)
    started = time.perf_counter()
    from keras_dae.models import ARCHITECTURES

    settings = ARCHITECTURES[spec.arch]
    hidden = num_bins
    sizes = [num_bins] + [hidden] * settings["num_encoder_layers"] + [num_bins]
    layers = [nn.Linear(fan_in, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    with torch.no_grad():
        for layer in layers:
            # Keras' GlorotNormal: a normal truncated at 2 std, rescaled to keep the variance.
            fan_out, fan_in = layer.weight.shape
            std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if settings["bias_initializer"] == "zeros":
                layer.bias.zero_()
            # else: nn.Linear's default bias init, which the Keras models copy

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(layers)

        def forward(self, x):
            hidden = x
            for layer in self.layers:
                hidden = torch.relu(layer(hidden))
            return x * hidden if settings["skip"] else hidden

    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=spec.learning_rate, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.L1Loss()
    mixture, vocals = memory_frames(num_bins, spec.seed)
    batches = [(torch.from_numpy(mixture[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]),
                torch.from_numpy(vocals[i * BATCH_SIZE:(i + 1) * BATCH_SIZE])) for i in range(MEMORY_BATCHES)]

    def step(index):
        x, y = batches[index % MEMORY_BATCHES]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        if spec.clip_norm:
            nn.utils.clip_grad_norm_(net.parameters(), spec.clip_norm)
        optimizer.step()
        return loss

    for index in range(spec.warmup):
        step(index)
    first = cpu_sample()
    for index in range(spec.steps):
        loss = step(index)
    float(loss)
    seconds, own, other = cpu_window(first, cpu_sample())
    return dict(frames=spec.steps * BATCH_SIZE, seconds=seconds, own_cores=own, other_load=other,
                startup=first[0] - started, note=f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def worker(specs_json):
    """Runs a list of specs (one `Spec.process_key`) in order; prints one result line each."""
    specs = [Spec(**spec) for spec in json.loads(specs_json)]
    if specs[0].kind != "torch":
        _set_threads(specs[0])
    for index, spec in enumerate(specs):
        if spec.kind == "torch":
            result = child_torch(spec, 2049)
        else:
            import keras

            result = child_train_on_batch(spec, 2049) if spec.kind == "train_on_batch" else child_fit(spec, 2049)
            keras.backend.clear_session()
        gc.collect()
        print(RESULT_PREFIX + json.dumps([index, result]), flush=True)


# --------------------------------------------------------------------------- roofline


def layer_shapes(arch, num_bins, hidden_size=None):
    """`(fan_in, fan_out)` of every dense layer of `arch`."""
    from keras_dae.models import ARCHITECTURES

    hidden = hidden_size or num_bins
    sizes = [num_bins] + [hidden] * ARCHITECTURES[arch]["num_encoder_layers"] + [num_bins]
    return list(zip(sizes[:-1], sizes[1:]))


def matmul_flops(shapes, batch, skip_first_input_gradient=False):
    """Matrix-product FLOPs of one training step: 3 products of 2*B*K*M per layer.

    With `skip_first_input_gradient`, the first layer's input gradient (which
    nothing needs, and which TensorFlow and PyTorch both skip) is not counted.
    """
    total = sum(3 * 2 * batch * fan_in * fan_out for fan_in, fan_out in shapes)
    if skip_first_input_gradient:
        total -= 2 * batch * shapes[0][0] * shapes[0][1]
    return total


PRODUCTS = ("forward", "input gradient", "weight gradient")


def measure_matmul(shapes, batch, seconds=3.0, products=PRODUCTS):
    """`(GFLOP/s, CpuMeter)` of `tf.matmul` doing `products` of every layer of `shapes`.

    Forward `X (B,K) @ W (K,M)`, input gradient `dY (B,M) @ W^T` and weight
    gradient `X^T @ dY` (inner dimension B), with the transposes the gradient
    of `ops.matmul` uses, all in one `tf.function`, called until `seconds`
    have passed after a warm-up.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    tensors = []
    for fan_in, fan_out in shapes:
        tensors.append((
            tf.constant(rng.random((batch, fan_in), dtype=np.float32)),
            tf.constant(rng.standard_normal((fan_in, fan_out), dtype=np.float32)),
            tf.constant(rng.random((batch, fan_out), dtype=np.float32)),
        ))

    @tf.function
    def run():
        outputs = []
        for x, w, dy in tensors:
            if "forward" in products:
                outputs.append(tf.matmul(x, w))
            if "input gradient" in products:
                outputs.append(tf.matmul(dy, w, transpose_b=True))
            if "weight gradient" in products:
                outputs.append(tf.matmul(x, dy, transpose_a=True))
        return outputs

    for _ in range(3):
        run()
    calls = 0
    with CpuMeter() as meter:
        while calls < 3 or time.perf_counter() - meter.start[0] < seconds:
            outputs = run()
            calls += 1
        outputs[-1].numpy()
    flops = calls * len(products) * sum(2 * batch * fan_in * fan_out for fan_in, fan_out in shapes)
    return flops / meter.seconds / 1e9, meter


# --------------------------------------------------------------------------- parent side


def parse_args(argv=None):
    parser = argument_parser(__doc__, quick="smoke run (< 1 minute): sf only, few steps", seed=True, keep=True)
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures (default all three)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times every measurement is repeated; the median is reported (default 3)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per measurement (default 40)")
    parser.add_argument("--warmup-steps", type=int, default=10, help="steps excluded as start-up (default 10)")
    parser.add_argument("--tracks", type=int, default=8, help="synthetic tracks (default 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per synthetic track (default 20)")
    parser.add_argument("--clip-norm", type=float, default=0.5,
                        help="global_clipnorm of Adam, as keras-dae train's default (0: none; default 0.5)")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip PyTorch")
    parser.add_argument("--no-investigate", dest="investigate", action="store_false",
                        help="skip the table of fit settings")
    parser.add_argument("--investigate-feeds", default="memory,prepared,stream",
                        help="feeds of the investigation table (default memory,prepared,stream)")
    parser.add_argument("--investigate-steps", type=int, default=30,
                        help="timed steps per cell of the investigation table (default 30, after 8 warm-up)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.archs = [arch.strip() for arch in args.archs.split(",") if arch.strip()]
    unknown = sorted(set(args.archs) - set(ARCHS))
    if unknown:
        parser.error(f"unknown archs {unknown}; valid ones are {', '.join(ARCHS)}")
    args.investigate_feeds = [feed.strip() for feed in args.investigate_feeds.split(",") if feed.strip()]
    unknown = sorted(set(args.investigate_feeds) - {"memory", "prepared", "stream"})
    if unknown:
        parser.error(f"unknown feeds {unknown}; valid ones are memory, prepared, stream")
    args.investigate_warmup = 8
    if args.quick:
        args.archs, args.steps, args.warmup_steps, args.rounds = ["sf"], 6, 3, 1
        args.investigate_steps, args.investigate_warmup = 6, 3
        args.tracks, args.seconds = 2, 8.0
        args.investigate_feeds = ["memory"]
    return args


def investigation_variants(quick):
    """`(name, Spec changes, feeds it applies to or None for all)` of the investigation."""
    variants = [
        ("package default: spe=1, tf.data defaults", {}, None),
        ("steps_per_execution=10", {"spe": 10}, None),
        ("steps_per_execution=50", {"spe": 50}, None),
        ("tf.data autotune off", {"autotune": False}, None),
        ("tf.data autotune.cpu_budget=1", {"cpu_budget": 1}, None),
        ("tf.data private_threadpool_size=1", {"private_threadpool": 1}, None),
        ("tf.data inject_prefetch off", {"inject_prefetch": False}, ("memory",)),
        ("final prefetch(1) instead of AUTOTUNE", {"prefetch": 1}, ("prepared", "stream")),
        ("final prefetch(4) instead of AUTOTUNE", {"prefetch": 4}, ("prepared", "stream")),
        ("TensorFlow inter-op threads=1", {"inter_op": 1}, None),
        ("fit on NumPy arrays (Keras' array adapter)", {"feed": "numpy"}, ("memory",)),
        ("train_on_batch loop (no tf.data)", {"kind": "train_on_batch"}, ("memory",)),
        ("jit_compile=True (XLA)", {"jit": True}, ("memory",)),
        ("no gradient clipping", {"clip_norm": 0.0}, ("memory",)),
        ("keras.optimizers.Adam (before FusedAdam)", KERAS_ADAM, None),
        ("keras Adam + steps_per_execution=10", {**KERAS_ADAM, "spe": 10}, None),
        ("keras Adam + tf.data autotune off", {**KERAS_ADAM, "autotune": False}, ("prepared", "stream")),
    ]
    if quick:
        variants = [variants[0], variants[-3]]
    return variants


def make_data(args, workdir):
    """Writes the synthetic WAV tree and its TFRecord cache; returns `(root, prepared, lines)`."""
    from keras_dae.data.prepare import prepare_dataset
    from keras_dae.spectral import SpectralConfig

    config = SpectralConfig()
    root, prepared = workdir / "wav", workdir / "prepared"
    tracks, synth = synthetic_tracks(root, num_tracks=args.tracks, seconds=args.seconds, seed=args.seed)
    start = time.perf_counter()
    prepare_dataset(tracks, prepared, spectral=config, progress=False)
    written = time.perf_counter() - start
    size = tree_bytes(prepared)
    per_excerpt = config.num_frames(int(round(EXCERPT_SECONDS * config.sample_rate)))
    lines = [
        f"{len(tracks)} synthetic tracks x {args.seconds:g} s (WAV) at {root}, written in {synth:.1f} s",
        f"TFRecord cache of them at {prepared}: {size / 2**20:.0f} MiB, written in {written:.1f} s",
        f"{config}",
        f"streaming epoch: {len(tracks)} excerpts x {EXCERPT_SECONDS:g} s = {len(tracks) * per_excerpt} frames "
        f"(shuffle buffer min(8192, that), as keras_dae.training.train sets it)",
    ]
    return root, prepared, lines


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    started = time.perf_counter()
    print_machine()
    torch = package_version("torch")
    if torch:
        print(f"  torch: {torch}")
    else:
        print("  torch: not installed (pip install torch==2.13.0, the bench extra); PyTorch rows skipped")
        args.torch = False
    with scratch_dir(args.keep, "bench_train_") as workdir:
        run(args, workdir)
    print(f"  whole run: {time.perf_counter() - started:.0f} s")
    return 0


def check_fused_adam(clip_norm, steps=5, num_bins=257):
    """Compares FusedAdam with keras Adam on the same gradients: `(max |diff|, max |change|)`.

    Two copies of the `sf` model's weights take `steps` updates from the same
    random gradients (a fixed sequence, so that no data-dependent rounding
    feeds back: with Adam, a near-zero gradient whose sign flips by rounding
    moves a weight by a whole learning rate), learning rate 1e-3, with
    `clip_norm`. Returns the largest weight difference between the two and the
    largest change of a weight, to compare it with.
    """
    import keras

    from keras_dae.models import build_model
    from keras_dae.optimizers import FusedAdam

    start = build_model("sf", num_bins).get_weights()
    rng = np.random.default_rng(1)
    # Gradients of several magnitudes, so clipping acts and some updates are eps-dominated.
    grads = [[rng.standard_normal(w.shape).astype(np.float32) * 10.0 ** rng.integers(-9, 0) for w in start]
             for _ in range(steps)]
    finals = []
    for adam in (keras.optimizers.Adam, FusedAdam):
        variables = [keras.Variable(w) for w in start]
        optimizer = adam(1e-3, global_clipnorm=clip_norm or None)
        for step_grads in grads:
            optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step_grads], variables))
        finals.append([np.asarray(v.numpy()) for v in variables])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*finals))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(finals[0], start))
    return diff, moved


def roofline_section(args, earlier=None):
    """Measures tf.matmul on the models' products; returns `{arch: {...}}`.

    With `earlier` (a previous call's result) the best GFLOP/s of both is kept:
    the roofline is what tf.matmul can do on this machine, whose speed drifts.
    """
    section("roofline: tf.matmul on the models' products (3 per dense layer: forward, 2 gradients)"
            + (", again at the end" if earlier else ""))
    repeats, seconds = (2, 0.5) if args.quick else (5, 1.5)
    by_shapes = {}
    roofline = {}
    for arch in args.archs:
        shapes = layer_shapes(arch, 2049)
        key = tuple(sorted(set(shapes)))
        if key not in by_shapes:
            runs = [measure_matmul(list(key), BATCH_SIZE, seconds) for _ in range(repeats)]
            if earlier is not None:
                runs_best = max(runs, key=lambda run: run[0])
                by_shapes[key] = max(runs_best, (earlier[arch]["gflops"], earlier[arch]["meter"]), key=lambda r: r[0])
            else:
                by_shapes[key] = max(runs, key=lambda run: run[0])
            print(f"  {' + '.join(f'{k}x{m}' for k, m in key)} weights, batch {BATCH_SIZE}: tf.matmul, the 3 products "
                  f"together: {', '.join(f'{run[0]:.0f}' for run in runs)} GFLOP/s in {repeats} runs of {seconds:g} s "
                  f"(own cores {by_shapes[key][1].own_cores:.2f}, other load {by_shapes[key][1].other_load:.2f}); "
                  f"best {by_shapes[key][0]:.0f}" + (" (with the first measurement's)" if earlier else ""), flush=True)
        gflops = by_shapes[key][0]
        counted = matmul_flops(shapes, BATCH_SIZE) / BATCH_SIZE
        needed = matmul_flops(shapes, BATCH_SIZE, skip_first_input_gradient=True) / BATCH_SIZE
        roofline[arch] = dict(gflops=gflops, counted=counted, needed=needed, fps=gflops * 1e9 / counted,
                              meter=by_shapes[key][1])
        print(f"  {arch:<9} {len(shapes)} dense layers: {counted / 1e6:.1f} MFLOP/frame (2 x 3 x forward; "
              f"{needed / 1e6:.1f} without the first layer's unneeded input gradient) -> roofline "
              f"{roofline[arch]['fps']:,.0f} frames/s", flush=True)
    if not args.quick and earlier is None:
        shapes = [(2049, 2049)]
        rates = [f"{product} {max(measure_matmul(shapes, BATCH_SIZE, 1.0, (product,))[0] for _ in range(3)):.0f}"
                 for product in PRODUCTS]
        print(f"  each product alone, best of 3 (GFLOP/s): {', '.join(rates)}")
    return roofline


def print_summaries(summaries, name_width=44):
    print(f"  {'measurement':<{name_width}} {'frames/s':>9} {'rounds min-max':>15} {'own cores':>9} "
          f"{'other load':>10}  notes")
    for row in summaries:
        if row.error:
            print(f"  {row.name:<{name_width}} {'-':>9}  {row.error}")
            continue
        print(f"  {row.name:<{name_width}} {row.rate:>9,.0f} {row.spread:>15} {row.own_cores:>9.2f} "
              f"{row.other_load:>10.2f}  {row.note}", flush=True)


MAIN_ROWS = (
    ("streaming", {"feed": "stream"}),
    ("prepared", {"feed": "prepared"}),
    ("in-memory", {"feed": "memory"}),
    ("streaming, keras Adam", {"feed": "stream", **KERAS_ADAM}),
)


def run(args, workdir):
    section("data")
    root, prepared, lines = make_data(args, workdir)
    for line in lines:
        print(f"  {line}")
    base = Spec(steps=args.steps, warmup=args.warmup_steps, clip_norm=args.clip_norm, seed=args.seed,
                root=str(root), prepared=str(prepared))
    print(f"  every row: batch {BATCH_SIZE}, num_bins 2049, L1 loss, Adam(1e-4), global clip norm "
          f"{args.clip_norm or 'none'}; {args.warmup_steps} warm-up + {args.steps} timed steps, "
          f"median of {args.rounds} round(s)")
    diff, moved = check_fused_adam(args.clip_norm)
    print(f"  FusedAdam check: 5 updates from the same gradients (lr 1e-3, clip norm {args.clip_norm or 'none'}) "
          f"differ from keras Adam's by at most {diff:.1e} (weights moved by up to {moved:.1e}): "
          f"{'SAME to float rounding' if diff <= 1e-4 * moved else 'DIFFERENT'}")

    roofline = roofline_section(args)

    section(f"keras-dae model.fit vs PyTorch ({', '.join(args.archs)})")
    rows = MAIN_ROWS if not args.quick else (MAIN_ROWS[0], MAIN_ROWS[3])
    items = [(f"{arch}: {name}", base.with_(arch=arch, **changes)) for arch in args.archs for name, changes in rows]
    if args.torch:
        items += [(f"{arch}: PyTorch, in-memory tensors", base.with_(arch=arch, kind="torch")) for arch in args.archs]
    results = measure(items, args.rounds)
    print_summaries(results.values())

    if args.investigate:
        section("investigation: sf, model.fit with one setting changed (median frames/s)")
        feeds = args.investigate_feeds
        variants = investigation_variants(args.quick)
        inv = base.with_(arch="sf", steps=args.investigate_steps, warmup=args.investigate_warmup)
        cells = [((name, feed), inv.with_(feed=feed).with_(**changes))
                 for name, changes, only in variants for feed in feeds if only is None or feed in only]
        table = measure([(f"{name} | {feed}", spec) for (name, feed), spec in cells], args.rounds)
        width = max(len(name) for name, _, _ in variants)
        print(f"  {args.investigate_warmup} warm-up + {args.investigate_steps} timed steps per cell (rounded up to "
              f"multiples of steps_per_execution); median of {args.rounds} round(s), [min-max]")
        print(f"  {'setting':<{width}} " + " ".join(f"{feed:>9} {'[min-max]':<13}" for feed in feeds))
        loads = []
        for name, _, _ in variants:
            line = []
            for feed in feeds:
                row = table.get(f"{name} | {feed}")
                if row is None:
                    line.append(f"{'':>23}")
                elif row.error:
                    line.append(f"{'error':>9} {'':<13}")
                    loads.append(f"{name} | {feed}: {row.error[-120:]}")
                else:
                    spread = f"[{row.spread}]" if row.spread else ""
                    line.append(f"{row.rate:>9,.0f} {spread:<13}")
                    loads.append(row.other_load)
            print(f"  {name:<{width}} " + " ".join(line).rstrip(), flush=True)
        numbers = [load for load in loads if isinstance(load, float)]
        if numbers:
            print(f"  other load in the cells: at most {max(numbers):.2f} cores (mean {np.mean(numbers):.2f})")
        for problem in (load for load in loads if isinstance(load, str)):
            print(f"  error: {problem}")
        print("  memory: Dataset.from_tensor_slices(in-memory frames).batch(256).repeat(); prepared: the TFRecord")
        print("  cache; stream: musdb_frames on the WAV tree (both exactly as keras_dae.training.train builds them).")

    roofline = roofline_section(args, roofline)

    section("summary: targets keras-dae >= 1.1x PyTorch, >= 75% of the matmul roofline")
    print(f"  {'arch':<9} {'keras-dae feed':<28} {'frames/s':>9} {'PyTorch':>8} {'/PyTorch':>9} {'':>4} "
          f"{'roofline':>8} {'/roofline':>9} {'':>4}")
    for arch in args.archs:
        torch_row = results.get(f"{arch}: PyTorch, in-memory tensors")
        torch_rate = torch_row.rate if torch_row and not torch_row.error else float("nan")
        for name, _ in rows:
            row = results[f"{arch}: {name}"]
            vs_torch = row.rate / torch_rate
            vs_roof = row.rate / roofline[arch]["fps"]
            print(f"  {arch:<9} {name:<28} {row.rate:>9,.0f} {torch_rate:>8,.0f} {vs_torch:>8.2f}x "
                  f"{verdict(vs_torch, TARGET_VS_TORCH):>4} {roofline[arch]['fps']:>8,.0f} {vs_roof:>8.0%} "
                  f"{verdict(vs_roof, TARGET_VS_ROOFLINE):>4}")
    print("  roofline: 2 x 3 x forward matmul FLOPs per frame at the GFLOP/s tf.matmul reaches on those products;")
    print("  counting only the products that run (no input gradient for the first layer) gives a higher roofline,")
    print("  i.e. the /roofline column times 5/6 (dae, sf) or 11/12 (deep-dae).")
    print("  rows compiled as keras_dae.training.train compiles (FusedAdam); 'keras Adam': keras.optimizers.Adam")
    print("  instead, everything else unchanged (the package before FusedAdam).")
    print(f"  load average at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
