"""Couplings benchmark (issue 5): how fast each solver of `keras_dae.couplings` gets C.

Measures, in one run on this machine, at `num_bins=2049` on 20,000 mixture
frames (`--num-bins`, `--frames`):

    paper   `fit_couplings(X, Y, schedule="paper")`: L1, Adam 1e-4, full
            batch, 600 epochs (one step each). Its final loss `L_paper` is
            the true full-set relative L1 of the C it returns,
            `mean|X C^T - Y| / mean|Y|` (the last epoch's Keras loss is the
            loss *before* the last step's update; both are printed)
    fast    `fit_couplings(X, Y, schedule="fast")`: Adam 2e-2 halved on
            plateaus, batches of 256, at most 300 epochs, early stopping.
            At every epoch end a callback stops the clock, computes the true
            full-set relative L1 of the current C and starts the clock again;
            reported: the seconds (evaluations excluded) until that loss first
            goes <= `L_paper`, the whole fit's seconds, its epochs and losses
    lstsq   `lstsq_couplings(X, Y)`: the closed-form least-squares C (L2
            optimum, float64 LAPACK); its relative L1 may be above or below
            the others' (it minimises another loss)

and prints the ratios paper seconds / fast seconds-to-reach-`L_paper` and
paper seconds / lstsq seconds. Every time runs from just before the call to
`fit_couplings` (building the dataset, tracing and the first epoch included)
to the epoch end or return it reports. Fast's time to reach `L_paper` has
the granularity of one epoch (the loss is only evaluated at epoch ends).

The frames: a synthetic MUSDB18-HQ tree (`write_synthetic_musdb`, `test`
subset) in a temporary directory, long enough for `--frames` frames at
`SpectralConfig(num_bins=N)` (~115 frames per second of audio); all their
`(mixture, vocals)` magnitude frames (`prepare.track_frames`, digitally
silent mixtures, max < 1e-6, dropped), of which `--frames` drawn at random
are X. The teacher f is not random: `build_model("sf", N)`, compiled as
`keras_dae.training.compile_model` compiles it (FusedAdam, learning rate
1e-3, global clip norm 0.5) with the package's default training loss, the
generalised KL (`--teacher-loss`), trained `--teacher-steps` steps of batch
256 on all the frames; Y = `teacher_outputs(f, X)`. (With L1 or L2 on these
raw magnitudes the sf model collapses within ~100 steps: most of its output
bins die and f(x) ~ 0, a degenerate Y. The run prints the teacher's relative
L1 to the true vocals, its dead output bins and its zero outputs, and warns
when it looks collapsed.)

Besides seconds, each row shows the CPU this process used (`own cores`) and
how many cores' worth of CPU *other* processes used meanwhile (`other load`,
from /proc/stat; both over the timed part only): on this 2-core machine an
other load near 1 core roughly halves the speed, so run it on an idle machine.

Cost at the defaults (about an hour on an idle 2-core machine): each paper
epoch is ~4 x 20000 x 2049^2 FLOPs (~335 GFLOP: forward and weight
gradient), so its 600 epochs take ~25-40 minutes at 130-85 GFLOP/s (the
idle medium smoke run reached ~130); a fast epoch is ~79 steps of 256
frames (the same FLOPs plus 79 Adam updates: 1.4-2x a paper epoch's time in
the medium smoke runs), and early stopping may come only near the 300-epoch
cap (at 276 in those runs), so up to ~25 minutes; each full-set evaluation
is a forward pass (~1.3-2 s, excluded from the time; they stop once
`L_paper` is reached unless `--trace`, which adds ~8 minutes); lstsq
~0.5-1 minute, several times that under other load.

Run from the repository root:

    .venv/bin/python benchmarks/bench_couplings.py            # 2049 bins, 20,000 frames: about an hour
    .venv/bin/python benchmarks/bench_couplings.py --quick    # smoke run: 257 bins, 3,000 frames, paper capped, ~30 s
    .venv/bin/python benchmarks/bench_couplings.py --num-bins 1025 --frames 8000 --paper-epochs 150   # ~4 minutes
    .venv/bin/python benchmarks/bench_couplings.py --trace    # evaluate the fast C at every epoch, print them all

Nothing is asserted: it prints the times, the losses and the ratios.
"""

import dataclasses
import math
import sys
import time

import numpy as np

from harness import (
    CpuMeter,
    argument_parser,
    cpu_sample,
    load_average,
    load_flag,
    print_machine,
    scratch_dir,
    section,
    synthetic_tracks,
)

BATCH_SIZE = 256
TRACKS = 4
# Audio written beyond what `--frames` needs (silent frames are dropped; the teacher gets more).
MARGIN = 1.15
SILENCE = 1e-6
TEACHER_LEARNING_RATE = 1e-3
# The ridge of the information row (lstsq_couplings' normal-equations path).
RIDGE = 1e-6


@dataclasses.dataclass
class Timed:
    """One measured solver: seconds, CPU, losses, notes."""

    name: str
    seconds: float = float("nan")
    own_cores: float = float("nan")
    other_load: float = float("nan")
    loss: float = float("nan")  # true full-set relative L1 of the C it returns
    note: str = ""


class PausableMeter:
    """`CpuMeter`'s wall clock and CPU counters, summed over the running parts only.

    `pause()`/`resume()` leave an evaluation out: `seconds`, `own_cores` and
    `other_load` cover the time between `start()` and `stop()` minus the pauses.
    """

    def __init__(self):
        self.totals = np.zeros(3)  # wall, machine busy, own CPU seconds while running
        self.since = None

    def start(self):
        self.since = np.array(cpu_sample())
        return self

    def pause(self):
        now = np.array(cpu_sample())
        self.totals += now - self.since
        self.since = None

    resume = start
    stop = pause

    def elapsed(self):
        """Running seconds so far (the current part included)."""
        current = time.perf_counter() - self.since[0] if self.since is not None else 0.0
        return self.totals[0] + current

    @property
    def seconds(self):
        return float(self.totals[0])

    @property
    def own_cores(self):
        return float(self.totals[2] / self.totals[0]) if self.totals[0] > 0 else float("nan")

    @property
    def other_load(self):
        return float(max(self.totals[1] - self.totals[2], 0.0) / self.totals[0]) if self.totals[0] > 0 else float("nan")


def parse_args(argv=None):
    parser = argument_parser(
        __doc__, quick="smoke run: 257 bins, 3000 frames, 300 teacher steps, paper capped at 100 epochs",
        seed=True, keep=True,
    )
    parser.add_argument("--num-bins", type=int, default=2049, help="N, the bins kept (default 2049)")
    parser.add_argument("--frames", type=int, default=20000, help="mixture frames X (default 20000)")
    parser.add_argument("--teacher-steps", type=int, default=150,
                        help="training steps of batch 256 for the sf teacher (default 150)")
    parser.add_argument("--teacher-loss", choices=("kl", "l1", "l2"), default="kl",
                        help="the teacher's training loss (default kl, the package's; l1 and l2 collapse it)")
    parser.add_argument("--teacher-lr", type=float, default=TEACHER_LEARNING_RATE,
                        help=f"the teacher's learning rate (default {TEACHER_LEARNING_RATE:g})")
    parser.add_argument("--paper-epochs", type=int, default=None,
                        help="cap the paper schedule at this many epochs (default: its own 600); a capped "
                             "run is not the paper's schedule and is labelled so")
    parser.add_argument("--trace", action="store_true",
                        help="evaluate the fast C's full-set loss at every epoch (default: until it reaches "
                             "the paper's) and print every epoch")
    parser.add_argument("--no-lstsq", dest="lstsq", action="store_false", help="skip lstsq")
    args = parser.parse_args(argv)
    if args.quick:
        # 257 bins need more steps than 2049 for a teacher that is not collapsed; they are cheap.
        args.num_bins, args.frames, args.teacher_steps = 257, 3000, 300
        args.paper_epochs = args.paper_epochs or 100
    for name in ("num_bins", "frames", "teacher_steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.paper_epochs is not None and args.paper_epochs <= 0:
        parser.error("--paper-epochs must be positive")
    return args


# --------------------------------------------------------------------------- data and teacher


def make_frames(args, config, workdir):
    """`(mixture, vocals, lines)`: every non-silent frame of a synthetic test tree."""
    from keras_dae.data.prepare import track_frames

    root = workdir / "wav"
    seconds = math.ceil(args.frames * MARGIN / config.frames_per_second / TRACKS) + 1
    tracks, synth = synthetic_tracks(root, num_tracks=TRACKS, seconds=seconds, seed=args.seed, subset="test")
    start = time.perf_counter()
    mixtures, vocals = [], []
    for track in tracks:
        for mixture, voice in track_frames(track, spectral=config):
            mixtures.append(mixture)
            vocals.append(voice)
    mixture, voice = np.concatenate(mixtures), np.concatenate(vocals)
    stft = time.perf_counter() - start
    loud = mixture.max(axis=1) >= SILENCE
    lines = [
        f"{len(tracks)} synthetic tracks x {tracks[0].seconds:.0f} s (WAV, test subset) at {root}, "
        f"written in {synth:.1f} s",
        f"{config}",
        f"{len(mixture)} (mixture, vocals) frames in {stft:.1f} s, {int((~loud).sum())} digitally silent "
        f"(max < {SILENCE:g}) dropped",
    ]
    return mixture[loud], voice[loud], lines


def train_teacher(mixture, vocals, args):
    """The sf teacher, trained `args.teacher_steps` steps; returns `(model, Timed, first loss, last loss)`."""
    import tensorflow as tf

    from keras_dae.models import build_model
    from keras_dae.training import Settings, compile_model

    import keras

    keras.utils.set_random_seed(args.seed)
    settings = Settings(arch="sf", loss=args.teacher_loss, learning_rate=args.teacher_lr, batch_size=BATCH_SIZE,
                        seed=args.seed)
    teacher = compile_model(build_model("sf", args.num_bins), settings)
    dataset = (tf.data.Dataset.from_tensor_slices((mixture, vocals))
               .shuffle(len(mixture), seed=args.seed).repeat().batch(BATCH_SIZE).prefetch(2))
    losses = []

    class Losses(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float((logs or {}).get("loss", float("nan"))))

    with CpuMeter() as meter:
        teacher.fit(dataset, epochs=1, steps_per_epoch=args.teacher_steps, verbose=0, shuffle=False,
                    callbacks=[Losses()])
    timed = Timed(f"teacher: sf, {args.teacher_steps} steps", meter.seconds, meter.own_cores, meter.other_load,
                  note=f"{teacher.count_params() / 1e6:.2f} M params, FusedAdam({args.teacher_lr:g}), "
                       f"{args.teacher_loss} loss, clip norm {settings.clip_norm}")
    # Keras' batch "loss" is the running mean over the epoch: the first is one batch's, the last the mean of all.
    return teacher, timed, losses[0], losses[-1]


def draw_frames(mixture, count, seed):
    """`count` of the frames, drawn at random without replacement, in their order."""
    if len(mixture) < count:
        raise SystemExit(f"only {len(mixture)} non-silent frames for --frames {count} "
                         "(a --keep tree written for fewer?)")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(mixture), size=count, replace=False))


# --------------------------------------------------------------------------- losses


class FullSetLoss:
    """The true relative L1 `mean|X C^T - Y| / mean|Y|` of any C, on TensorFlow's threads.

    TensorFlow, not NumPy: OpenBLAS's threads would keep spinning after an
    evaluation and slow the timed fit down. Sums in float64.
    """

    def __init__(self, frames, targets):
        import tensorflow as tf

        self.tf = tf
        self.frames = tf.constant(frames, tf.float32)
        self.targets = tf.constant(targets, tf.float32)
        self.scale = float(np.sum(np.abs(targets), dtype=np.float64))
        if not self.scale > 0:
            raise SystemExit("the teacher outputs 0 on every frame (collapsed): nothing to fit; see --teacher-loss")
        self._sum = tf.function(self._error_sum)

    def _error_sum(self, matrix):
        tf = self.tf
        error = tf.abs(tf.matmul(self.frames, matrix, transpose_b=True) - self.targets)
        return tf.reduce_sum(tf.cast(error, tf.float64))

    def __call__(self, matrix):
        matrix = self.tf.convert_to_tensor(matrix, self.tf.float32)
        return float(self._sum(matrix)) / self.scale


def epoch_clock(meter, evaluate=None, target=None, keep_evaluating=False):
    """A Keras callback recording, at every epoch end, the running seconds, Keras' loss, the learning rate.

    With `evaluate`, it pauses `meter`, computes the full-set loss of the
    student's current C and resumes; once that loss is <= `target` it stops
    evaluating unless `keep_evaluating`. It is the first callback, so the
    schedule's own callbacks (plateaus, early stopping) stay in the timed part.
    """
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.records = []  # (epoch, seconds, keras loss, learning rate, full-set loss or nan)
            self.reached = None  # the first record whose full-set loss <= target
            self.reached_cpu = (float("nan"), float("nan"))  # (own cores, other load) until then
            self.evaluation_seconds = 0.0

        def on_epoch_end(self, epoch, logs=None):
            seconds = meter.elapsed()
            meter.pause()
            started = time.perf_counter()
            loss = float((logs or {}).get("loss", float("nan")))
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            full = float("nan")
            if evaluate is not None and (self.reached is None or keep_evaluating):
                full = evaluate(keras.ops.convert_to_tensor(self.model.couplings))
            record = (epoch + 1, seconds, loss, rate, full)
            self.records.append(record)
            if self.reached is None and target is not None and full <= target:
                self.reached = record
                self.reached_cpu = (meter.own_cores, meter.other_load)
            self.evaluation_seconds += time.perf_counter() - started
            meter.resume()

    return EpochClock()


# --------------------------------------------------------------------------- the solvers


def run_fit(frames, targets, schedule, seed, clock_args, epochs=None):
    """`(student, history, clock, meter)` of one `fit_couplings` call, timed from just before it."""
    from keras_dae.couplings import fit_couplings

    meter = PausableMeter()
    clock = epoch_clock(meter, **clock_args)
    meter.start()
    student, history = fit_couplings(frames, targets, schedule=schedule, loss="l1", seed=seed, epochs=epochs,
                                     callbacks=[clock])
    meter.stop()
    return student, history, clock, meter


def after_last_epoch(meter, clock):
    """A note if the call returned noticeably later than its last epoch end (it should not)."""
    gap = meter.seconds - clock.records[-1][1]
    return f"; {gap:.1f} s between the last epoch end and the return" if gap > 1.0 else ""


def print_rows(rows):
    print(f"  {'measurement':<34} {'seconds':>9} {'own cores':>9} {'other load':>10} {'rel. L1':>9}  notes")
    for row in rows:
        print(f"  {row.name:<34} {row.seconds:>9.1f} {row.own_cores:>9.2f} {row.other_load:>10.2f} "
              f"{row.loss:>9.4f}  {row.note}{load_flag(row.other_load)}", flush=True)


def print_epochs(records, every):
    print(f"    {'epoch':>5} {'seconds':>9} {'keras loss':>10} {'lr':>9} {'full-set':>9}")
    last = len(records)
    for epoch, seconds, loss, rate, full in records:
        if epoch in (1, 2, 3, last) or epoch % every == 0 or not math.isnan(full) and epoch <= 10:
            full_text = f"{full:>9.4f}" if not math.isnan(full) else f"{'-':>9}"
            print(f"    {epoch:>5} {seconds:>9.1f} {loss:>10.4f} {rate:>9.2e} {full_text}")


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    print_machine()
    with scratch_dir(args.keep, "bench_couplings_") as workdir:
        run(args, workdir)
    print(f"  whole run: {time.perf_counter() - started:.0f} s")
    return 0


def run(args, workdir):
    from keras_dae.couplings import SCHEDULES, lstsq_couplings, teacher_outputs
    from keras_dae.spectral import SpectralConfig

    config = SpectralConfig(num_bins=args.num_bins)
    n = args.num_bins
    section("data")
    mixture, vocals, lines = make_frames(args, config, workdir)
    for line in lines:
        print(f"  {line}")
    chosen = draw_frames(mixture, args.frames, args.seed)

    section("teacher")
    teacher, teacher_row, first_loss, mean_loss = train_teacher(mixture, vocals, args)
    print(f"  trained on all {len(mixture)} frames: {args.teacher_loss} loss of the first batch {first_loss:.4g}, "
          f"mean over the {args.teacher_steps} steps {mean_loss:.4g} (raw magnitudes)")
    frames = mixture[chosen]
    start = time.perf_counter()
    targets = teacher_outputs(teacher, frames)
    predict_seconds = time.perf_counter() - start
    evaluate = FullSetLoss(frames, targets)
    truth = vocals[chosen]
    dead = float(np.mean(np.all(targets == 0, axis=0)))
    zeros = float(np.mean(targets == 0))
    level = float(np.mean(np.abs(targets)) / np.mean(np.abs(truth)))
    to_vocals = np.sum(np.abs(targets - truth)) / np.sum(np.abs(truth))
    mixture_to_vocals = np.sum(np.abs(frames - truth)) / np.sum(np.abs(truth))
    print(f"  X: {frames.shape[0]} mixture frames x {n} bins drawn at random; Y = teacher_outputs(f, X) "
          f"in {predict_seconds:.1f} s")
    print(f"  teacher on X: relative L1 to the true vocals {to_vocals:.4f} "
          f"(f = 0 gives 1, f = x gives {mixture_to_vocals:.4f}); "
          f"mean|Y| / mean|vocals| {level:.3f}; output bins zero on every frame {dead:.1%}; zero outputs {zeros:.1%}")
    if dead > 0.5 or level < 0.1:
        print("  WARNING: the teacher looks collapsed (f(x) ~ 0): Y is degenerate and so is the comparison; "
              "use --teacher-loss kl or fewer --teacher-steps / a lower --teacher-lr")
    print(f"  reference relative L1 on (X, Y): C = 0 gives 1.0000; C = I (Y ~ X) {evaluate(np.eye(n)):.4f}")
    print_rows([teacher_row])

    rows = [teacher_row]
    paper = SCHEDULES["paper"]
    capped = args.paper_epochs is not None and args.paper_epochs != paper.epochs
    paper_epochs = args.paper_epochs or paper.epochs
    section(f"paper schedule: L1, Adam {paper.learning_rate:g}, full batch, {paper_epochs} epochs"
            + (f" (CAPPED: the paper runs {paper.epochs})" if capped else ""))
    student, history, clock, meter = run_fit(frames, targets, "paper", args.seed, {},
                                             epochs=paper_epochs if capped else None)
    paper_loss = evaluate(student.couplings)
    paper_row = Timed("paper" + (f" (CAPPED at {paper_epochs} epochs)" if capped else ""), meter.seconds,
                      meter.own_cores, meter.other_load, paper_loss,
                      f"{len(history['loss'])} epochs, first epoch end at {clock.records[0][1]:.1f} s "
                      f"(tracing included), {meter.seconds / len(history['loss']):.2f} s/epoch"
                      + after_last_epoch(meter, clock))
    rows.append(paper_row)
    print_epochs(clock.records, max(len(clock.records) // 6, 1))
    print(f"  L_paper = full-set relative L1 of the final C: {paper_loss:.4f} (the last epoch's Keras loss, "
          f"before its update: {history['loss'][-1]:.4f}; the first epoch's: {history['loss'][0]:.4f})")
    print_rows([paper_row])
    del student

    fast = SCHEDULES["fast"]
    section(f"fast schedule: L1, Adam {fast.learning_rate:g} halved on plateaus, batch "
            f"{fast.batch_for(len(frames))}, at most {fast.epochs} epochs, early stopping")
    student, history, clock, meter = run_fit(
        frames, targets, "fast", args.seed,
        {"evaluate": evaluate, "target": paper_loss, "keep_evaluating": args.trace},
    )
    fast_loss = evaluate(student.couplings)
    epochs = len(history["loss"])
    fast_row = Timed("fast, whole fit", meter.seconds, meter.own_cores, meter.other_load, fast_loss,
                     f"{epochs} epochs x {math.ceil(len(frames) / fast.batch_for(len(frames)))} steps, "
                     f"final lr {clock.records[-1][3]:.2e}; {clock.evaluation_seconds:.1f} s of evaluations "
                     "excluded; C restored from its best epoch" + after_last_epoch(meter, clock))
    print_epochs(clock.records, 1 if args.trace else max(epochs // 6, 1))
    reached = clock.reached
    if reached is not None:
        epoch, seconds, _, _, full = reached
        reach_row = Timed("fast, to reach L_paper", seconds, *clock.reached_cpu, full,
                          f"epoch {epoch} of {epochs} (epoch granularity: an upper bound)")
        print(f"  fast reached L_paper {paper_loss:.4f} at epoch {epoch}: full-set loss {full:.4f} "
              f"after {seconds:.1f} s")
    else:
        best = np.nanmin([record[4] for record in clock.records])
        reach_row = Timed("fast, to reach L_paper", float("nan"), fast_row.own_cores, fast_row.other_load, best,
                          "NOT REACHED (loss: its best full-set loss)")
        print(f"  fast did NOT reach L_paper {paper_loss:.4f}: best full-set loss {best:.4f}")
    print(f"  final C (best epoch by Keras' loss, restored by early stopping): full-set loss {fast_loss:.4f}")
    rows += [reach_row, fast_row]
    print_rows([reach_row, fast_row])
    del student

    lstsq_row = None
    if args.lstsq:
        section("lstsq: closed-form least squares (float64 LAPACK, minimum norm)")
        with CpuMeter() as lstsq_meter:
            matrix = lstsq_couplings(frames, targets)
        lstsq_row = Timed("lstsq", lstsq_meter.seconds, lstsq_meter.own_cores, lstsq_meter.other_load,
                          evaluate(matrix), "minimises L2; its L1 may be above or below the fits'")
        rows.append(lstsq_row)
        del matrix
        # For information: with a ridge the normal equations (X^T X + r I) C^T = X^T Y always apply.
        with CpuMeter() as ridge_meter:
            matrix = lstsq_couplings(frames, targets, ridge=RIDGE)
        ridge_row = Timed(f"lstsq ridge={RIDGE:g} (information)", ridge_meter.seconds, ridge_meter.own_cores,
                          ridge_meter.other_load, evaluate(matrix),
                          "ridge=1e-6: always the normal equations (Cholesky)")
        rows.append(ridge_row)
        print_rows([lstsq_row, ridge_row])
        print("  lstsq: Cholesky of the normal equations while the frames are well-conditioned, else the SVD")
        print("  (np.linalg.lstsq), whose OpenBLAS threads slow down several-fold when another process holds a core.")

    section(f"summary: num_bins {n}, {len(frames)} frames"
            + (f" (paper CAPPED at {paper_epochs} epochs: not the paper's schedule)" if capped else ""))
    print_rows(rows)
    print()
    print(f"  L_paper (full-set relative L1 after the paper schedule): {paper_loss:.4f}")
    print("  paper seconds / fast seconds to reach L_paper: "
          + (f"{paper_row.seconds:.1f} / {reach_row.seconds:.1f} = {paper_row.seconds / reach_row.seconds:.1f}x"
             if reached is not None else "n/a (fast never reached L_paper)"))
    print(f"  paper seconds / whole fast fit:                {paper_row.seconds:.1f} / {fast_row.seconds:.1f} = "
          f"{paper_row.seconds / fast_row.seconds:.2f}x (fast's final loss {fast_loss:.4f})")
    if lstsq_row is not None:
        print(f"  paper seconds / lstsq seconds:                 {paper_row.seconds:.1f} / {lstsq_row.seconds:.1f} = "
              f"{paper_row.seconds / lstsq_row.seconds:.1f}x (lstsq's L1 {lstsq_row.loss:.4f})")
    print("  seconds: from just before fit_couplings / lstsq_couplings to the epoch end or return reported,")
    print("           the fast fit's full-set evaluations excluded; rel. L1: mean|X C^T - Y| / mean|Y| of that C.")
    print("  own cores: CPU this process used per second of the timed part; other load: cores' worth of CPU")
    print("             other processes used meanwhile (0 = quiet; near 1 on this 2-core machine roughly")
    print("             halves the speed, and rows marked SLOWED are not comparable).")
    print(f"  load average at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
