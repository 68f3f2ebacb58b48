"""The paper's comparison through the library API, step by step (what `keras-dae reproduce` does).

1. data: a MUSDB root, or demo tracks made from the embedded MUSDB18 clip;
2. train `dae`, `deep-dae` and `sf` with the same settings;
3. take one set of mixture frames from the test tracks;
4. distil each model's neural couplings C on them (with a calibration: the same
   solver on a known diagonal teacher);
5. score each model with museval;
6. decide, from the couplings' metrics, whether the paper's finding held.

    python examples/reproduce_step_by_step.py --out runs/steps            # ~4 minutes on 2 cores
    python examples/reproduce_step_by_step.py --out runs/steps --root ~/musdb18 --num-bins 744 --epochs 100

Unlike `keras-dae reproduce` this does not resume: it starts over each time.
"""

import argparse
import logging
from pathlib import Path

import keras_dae
from keras_dae import evaluation
from keras_dae import couplings
from keras_dae.couplings import track_frame_set
from keras_dae.data.demo import write_demo_musdb
from keras_dae.data.tracks import list_tracks
from keras_dae.reproduce import ARCHS, finding


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/steps"))
    parser.add_argument("--root", help="a MUSDB18 root (default: demo tracks from the embedded clip)")
    parser.add_argument("--is-wav", action="store_true", help="the root is MUSDB18-HQ")
    parser.add_argument("--num-bins", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--demo-seconds", type=float, default=30.0)
    parser.add_argument("--max-frames", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    # 1. Data. Demo tracks: synthetic tracks with the real clip mixed in (not MUSDB18; see keras_dae.data.demo).
    root, is_wav = args.root, args.is_wav
    if root is None:
        root, is_wav = args.out / "data", True
        write_demo_musdb(root, num_train=6, num_test=2, seconds=args.demo_seconds)
    spectral = keras_dae.SpectralConfig(num_bins=args.num_bins)

    # 2. Train the three models (each a run directory: model.keras, config.json, history.csv, logs/).
    for arch in ARCHS:
        keras_dae.train(arch, args.out / "runs" / arch, spectral=spectral, root=root, is_wav=is_wav, overwrite=True,
                        hidden_size=args.num_bins, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                        verbose=0)
        print(f"trained {arch}")

    # 3. One set of test-set mixture frames for every model (80% to fit C, 20% held out).
    test_tracks = list_tracks(root, is_wav=is_wav, subsets="test")
    frames = track_frame_set(test_tracks, spectral=spectral, max_frames=args.max_frames)
    print(f"{len(frames.fit)} fitting frames of {spectral.num_bins} bins from {len(test_tracks)} test tracks")

    # 4. Neural couplings of each model: C fitted with model.fit (L1 loss), metrics and figures.
    records = {}
    for arch in ARCHS:
        records[arch] = couplings.examine(args.out / "runs" / arch, args.out / "couplings" / arch, frames,
                                          spectral=spectral, schedule="converge", overwrite=True)
        print(f"{arch}: diagonal energy ratio {records[arch]['couplings']['diagonal_energy_ratio']:.3f}")
    couplings.compare([args.out / "couplings" / arch for arch in ARCHS], args.out / "couplings" / "compare")

    # 5. museval scores of each model (a run directory: its own spectral settings), with the mixture (floor)
    #    and the ideal ratio mask (ceiling).
    summaries = {}
    for arch in ARCHS:
        summaries[arch] = keras_dae.evaluate(args.out / "runs" / arch, test_tracks, args.out / "eval" / arch,
                                             methods=("model",), overwrite=True)["model"]
    summaries.update(keras_dae.evaluate(None, test_tracks, args.out / "eval" / "references", spectral=spectral,
                                        methods=("mixture", "irm"), overwrite=True))
    print(evaluation.format_table(summaries))

    # 6. The finding, decided from the metrics.
    verdict, sentence = finding(records)
    print(f"{verdict}: {sentence}")
    print(f"figures: {args.out / 'couplings' / 'compare' / 'comparison.png'}")


if __name__ == "__main__":
    main()
