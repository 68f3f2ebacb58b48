"""Export benchmark (issue 7): the SavedModel's `serving_default` against in-process `keras_dae.separate`.

Measures, in one process on this machine, with an `sf` model of
`--num-bins` (2049) bins and random weights (speed does not depend on them):

    savedmodel  `tf.saved_model.load` of `keras-dae export`'s output, its
                `serving_default` signature called on `(batch, samples)`
                float32 10-second mono clips at 44.1 kHz: batch 1 and batch 8
    separate    `keras_dae.separate(model, clips, 44100)` on the same clips
                (batch 8: the clips as 8 channels of one call, which is how
                the package processes several channels)

Each row: the best of `--repeats` (5) timed calls after one warm-up call;
requests per second (calls) and clips per second. Then the ratios
SavedModel / separate. Both sides compute the same thing (checked: max
difference printed). What TF Serving adds on top (RPC, serialisation) is
not included.

Run from the repository root:

    .venv/bin/python benchmarks/bench_export.py                 # ~2 minutes
    .venv/bin/python benchmarks/bench_export.py --num-bins 744

Nothing is asserted.
"""

import sys
import tempfile
import time

import numpy as np

from harness import argument_parser, best_seconds, print_machine, ratio, section

RATE = 44100
SECONDS = 10.0


def parse_args(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--num-bins", type=int, default=2049, help="bins of the sf model (default 2049)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row; the best is reported (default 5)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print_machine()
    import keras
    import tensorflow as tf

    import keras_dae
    from keras_dae.data import load_example
    from keras_dae.export import export_model
    from keras_dae.models import build_model
    from keras_dae.spectral import SpectralConfig

    keras.utils.set_random_seed(0)
    config = SpectralConfig(num_bins=args.num_bins)
    model = build_model("sf", args.num_bins, hidden_size=args.num_bins)
    mixture = load_example().mixture.mean(axis=1).astype(np.float32)
    samples = int(SECONDS * RATE)
    clip = np.resize(mixture, samples)
    rng = np.random.default_rng(0)
    batches = {size: np.stack([np.roll(clip, int(rng.integers(samples))) for _ in range(size)]) for size in (1, 8)}
    with tempfile.TemporaryDirectory(prefix="bench_export_") as base:
        section(f"export (sf, {args.num_bins} bins)")
        start = time.perf_counter()
        path = export_model(model, base, spectral=config, name="sf")
        print(f"export: {time.perf_counter() - start:.1f} s -> {path}")
        start = time.perf_counter()
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        print(f"tf.saved_model.load: {time.perf_counter() - start:.1f} s")
        section(f"{SECONDS:g}-second mono clips at {RATE} Hz, best of {args.repeats}")
        rows = {}
        for size, clips in batches.items():
            tensor = tf.constant(clips)
            served = serve(waveforms=tensor)["vocals"].numpy()
            direct = keras_dae.separate(model, clips.T, RATE, spectral=config)["vocals"].T
            difference = float(np.abs(served - direct).max())
            saved_seconds = best_seconds(lambda: serve(waveforms=tensor)["vocals"].numpy(), args.repeats)
            separate_seconds = best_seconds(
                lambda: keras_dae.separate(model, clips.T, RATE, spectral=config), args.repeats
            )
            rows[size] = (saved_seconds, separate_seconds)
            for name, seconds in (("savedmodel", saved_seconds), ("separate", separate_seconds)):
                print(f"batch {size}  {name:10}  {seconds:7.3f} s/request  {1 / seconds:6.2f} requests/s  "
                      f"{size / seconds:6.2f} clips/s  {size * SECONDS / seconds:6.1f}x real time")
            print(f"batch {size}  same result: max |savedmodel - separate| vocals = {difference:.1e}")
        section("ratios (SavedModel / separate, requests per second)")
        for size, (saved_seconds, separate_seconds) in rows.items():
            print(f"batch {size}: {ratio(separate_seconds, saved_seconds):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
