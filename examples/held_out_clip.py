"""What a model trained on the embedded clip can do on audio it has not heard.

`keras-dae train` without a MUSDB root trains on the first 80% of the
embedded 6-second MUSDB18 excerpt and holds out the last 20% (about 1.2 s)
for validation. This script trains such a run, separates the held-out
stretch with it (`keras_dae.separate`, stereo, the subtract mask) and
compares the vocals estimate with two trivial ones, by the signal-to-
distortion ratio over the whole stretch,

    SDR(s, e) = 10 log10( sum s^2 / sum (s - e)^2 )     (dB, both channels)

    model               the trained model's vocals
    mixture             the mixture itself as the vocals estimate
    best scaled mixture a * mixture, with the least-squares a (the best any
                        constant gain on the mixture can do)

A model that has learned to separate beats the best scaled mixture; one that
has only learned the clip does not.

    python examples/held_out_clip.py --out runs/held-out       # sf, 744 bins, until converged
    python examples/held_out_clip.py --arch dae --num-bins 128 --learning-rate 1e-3
"""

import argparse
import json
from pathlib import Path

import numpy as np

import keras_dae
from keras_dae.data import load_example
from keras_dae.training import EXAMPLE_VALIDATION_FRACTION


def sdr_db(reference, estimate):
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/held-out"))
    parser.add_argument("--arch", default="sf", choices=keras_dae.ARCHITECTURES)
    parser.add_argument("--num-bins", type=int, default=744)
    parser.add_argument("--epochs", type=int, default=100, help="the epoch cap (training stops once converged)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    spectral = keras_dae.SpectralConfig(num_bins=args.num_bins)
    model, run_dir = keras_dae.train(args.arch, args.out, spectral=spectral, epochs=args.epochs,
                                     learning_rate=args.learning_rate, seed=args.seed, verbose=0)
    run = json.loads((run_dir / "config.json").read_text())
    track = load_example()
    cut = int(round(len(track.mixture) * (1 - EXAMPLE_VALIDATION_FRACTION)))
    mixture, vocals = track.mixture[cut:], track.vocals[cut:]
    estimate = keras_dae.separate(model, mixture, track.rate, spectral=spectral)["vocals"]
    gain = float(np.sum(mixture * vocals) / np.sum(mixture * mixture))
    scores = {"model": sdr_db(vocals, estimate), "mixture": sdr_db(vocals, mixture),
              "best scaled mixture": sdr_db(vocals, gain * mixture)}
    print(f"{args.arch}, {args.num_bins} bins: {run['status']} after {run['epochs_completed']} epochs")
    print(f"held-out stretch: the last {len(mixture) / track.rate:.2f} s of the clip")
    for name, value in scores.items():
        print(f"vocals SDR, {name}: {value:.2f} dB")
    print(f"model - best scaled mixture: {scores['model'] - scores['best scaled mixture']:+.2f} dB")
    (args.out / "held_out.json").write_text(json.dumps({**scores, "gain": gain, "status": run["status"]}, indent=2))


if __name__ == "__main__":
    main()
