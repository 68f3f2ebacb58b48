"""Couplings-evolution benchmark (issue 16): what `train --couplings-every K` costs, as a share of training time.

Measures, in one process, at 128 and at 2049 bins, an `sf` model compiled as
`keras-dae train` compiles it (FusedAdam, generalised KL, clipping), fed
random in-memory frames (batch 16):

    without   `model.fit` for `--epochs` (4) epochs of `--steps` (200) steps
    with      the same, plus `CouplingsEvolution(every=1)`: a checkpoint after
              every epoch (least-squares C on 4096 held-out frames, its
              metrics, the CSV, the growing `.npz`, TensorBoard scalars and
              the image)

The cost of one checkpoint is (with - without) / epochs; the cost of a step
is without / (epochs x steps). The share of training time at the default K
(`EVERY`, 5) is then projected for two epoch lengths:

    MUSDB epoch    what `train` runs by default on MUSDB18: one 6-second
                   excerpt of each of musdb's 86 train-split tracks, in
                   batches of 16 (3709 steps)
    quick preset   `reproduce --preset quick`: 50 steps per epoch

In-memory frames make a step cheaper than a streamed one, so the shares are
upper bounds for real training. Target: at most 10% at the default K.

    .venv/bin/python benchmarks/bench_evolution.py            # ~3 minutes
    .venv/bin/python benchmarks/bench_evolution.py --quick

Nothing is asserted.
"""

import tempfile
import time


from harness import argument_parser, print_machine, random_frames, section

BATCH = 16
MUSDB_TRAIN_TRACKS = 86  # musdb's train split of MUSDB18's train subset (100 - 14 validation tracks)
EXCERPT_SECONDS = 6.0
QUICK_STEPS = 50
TARGET = 0.10


def parse_args(argv=None):
    parser = argument_parser(__doc__, quick="2 epochs of 50 steps, 1024 frames", seed=True)
    parser.add_argument("--bins", type=int, nargs="+", default=[128, 2049], help="bin counts (default 128 2049)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per side (default 4)")
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch (default 200)")
    return parser.parse_args(argv)


def measure(num_bins, epochs, steps, num_frames, seed):
    """`(seconds per step, seconds per checkpoint)` at `num_bins`."""
    import keras

    from keras_dae.couplings.evolution import CouplingsEvolution
    from keras_dae.models import build_model
    from keras_dae.spectral import SpectralConfig
    from keras_dae.training import Settings, compile_model

    x, y = random_frames(epochs * steps * BATCH, num_bins, seed)
    held, _ = random_frames(num_frames, num_bins, seed + 1)
    spectral = SpectralConfig(num_bins=num_bins)
    seconds = {}
    for side in ("warm-up", "without", "with"):
        keras.utils.set_random_seed(seed)
        model = compile_model(build_model("sf", num_bins), Settings(arch="sf"))
        with tempfile.TemporaryDirectory() as run_dir:
            callbacks = [CouplingsEvolution(run_dir, held, spectral, every=1, steps_per_epoch=steps)] \
                if side == "with" else []
            start = time.perf_counter()
            model.fit(x, y, batch_size=BATCH, epochs=1 if side == "warm-up" else epochs, steps_per_epoch=steps,
                      shuffle=False, verbose=0, callbacks=callbacks)
            seconds[side] = time.perf_counter() - start
    per_step = seconds["without"] / (epochs * steps)
    per_checkpoint = max(seconds["with"] - seconds["without"], 0.0) / epochs
    return per_step, per_checkpoint


def main(argv=None):
    args = parse_args(argv)
    print_machine()
    from keras_dae.couplings.evolution import EVERY
    from keras_dae.spectral import SpectralConfig
    from keras_dae.training import EVOLUTION_FRAMES

    epochs, steps, frames = (2, 50, 1024) if args.quick else (args.epochs, args.steps, EVOLUTION_FRAMES)
    section(f"couplings evolution, every {EVERY} epochs (the default), {frames} held-out frames")
    print(f"{'bins':>5} {'s/step':>9} {'s/checkpoint':>13} {'MUSDB epoch':>12} {'share':>7} {'quick epoch':>12} "
          f"{'share':>7}")
    for num_bins in args.bins:
        per_step, per_checkpoint = measure(num_bins, epochs, steps, frames, args.seed)
        spectral = SpectralConfig(num_bins=num_bins)
        musdb_steps = MUSDB_TRAIN_TRACKS * spectral.num_frames(int(EXCERPT_SECONDS * spectral.sample_rate)) // BATCH
        shares = []
        for epoch_steps in (musdb_steps, QUICK_STEPS):
            training = EVERY * epoch_steps * per_step
            shares.append((epoch_steps, per_checkpoint / (training + per_checkpoint)))
        print(f"{num_bins:>5} {per_step:>9.5f} {per_checkpoint:>13.3f} "
              + " ".join(f"{steps_:>8} st. {share:>6.1%}" for steps_, share in shares)
              + f"   MUSDB: {'PASS' if shares[0][1] <= TARGET else 'MISS'}")
    print(f"\ntarget: the callback's share of training time at most {TARGET:.0%} at the default K on a MUSDB epoch")


if __name__ == "__main__":
    main()
