"""A tour of the library's first pieces on the embedded MUSDB18 excerpt.

Loads the real 6-second clip that ships with stempeg, computes its spectra
with the tf.signal front end, runs the frames through an (untrained) `sf`
model, and rebuilds the vocals from their true magnitude with the mixture
phase: the quality ceiling of any magnitude-only model at these settings.

    python examples/front_end_tour.py --out runs/tour
"""

import argparse
from pathlib import Path

import numpy as np
import soundfile

import keras_dae
from keras_dae import spectral
from keras_dae.data import load_example
from keras_dae.plots import plot_spectrograms


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/tour"))
    parser.add_argument("--num-bins", type=int, default=744, help="744 bins ~ 0-8 kHz")
    args = parser.parse_args()

    track = load_example().mono()
    mixture, vocals = track.mixture[:, 0], track.vocals[:, 0]
    config = keras_dae.SpectralConfig(sample_rate=track.rate, num_bins=args.num_bins)

    mixture_stft = spectral.stft(mixture, config)  # (frames, num_bins), complex64
    mixture_magnitude = spectral.magnitude(mixture_stft)
    vocals_magnitude = spectral.spectrogram(vocals, config)
    print(f"{track.name}: {len(mixture) / track.rate:.2f} s -> {mixture_magnitude.shape[0]} frames x {config.num_bins} bins")

    model = keras_dae.build_model("sf", num_bins=config.num_bins)
    estimate = model.predict(mixture_magnitude, batch_size=256, verbose=0)
    print(f"untrained sf model: {model.count_params():,} parameters, output {estimate.shape}")

    # The oracle: true vocal magnitudes with the mixture phase, bins above num_bins zeroed.
    oracle = spectral.istft_with_phase(vocals_magnitude, mixture_stft, len(mixture), config).numpy()
    lowpassed = spectral.istft(spectral.stft(vocals, config), len(vocals), config).numpy()
    print(f"oracle magnitude + mixture phase: {snr_db(lowpassed, oracle):.1f} dB SNR against the band-limited vocals")

    args.out.mkdir(parents=True, exist_ok=True)
    soundfile.write(args.out / "oracle_vocals.wav", oracle, track.rate)
    written = plot_spectrograms(
        {
            "mixture": mixture_magnitude.numpy(),
            "true vocals": vocals_magnitude.numpy(),
            "untrained sf model output": estimate,
        },
        config,
        args.out / "tour.png",
        title=f"{track.name}, lowest {config.num_bins} bins",
    )
    print("wrote", args.out / "oracle_vocals.wav", *written)


if __name__ == "__main__":
    main()
