"""Figures. Built on `matplotlib.figure.Figure` (no pyplot), so plotting never
changes a user's interactive backend and works without a display."""

import dataclasses
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from keras_dae import spectral as front_end
from keras_dae.atomic import atomic_path
from keras_dae.audiofile import read_audio
from keras_dae.data.example import load_example


def save_figure(figure, path, formats=("png",)):
    """Saves `figure` to `path` with each suffix in `formats`, atomically.

    Returns:
        list of the written paths.
    """
    written = []
    for fmt in formats:
        target = Path(path).with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
        written.append(target)
    return written


def plot_spectrograms(spectra, spectral, path, title=None, dynamic_range_db=80.0):
    """Draws magnitude spectrograms one above the other on a shared dB scale.

    Args:
        spectra: dict from a label to a magnitude spectrogram, array
            `(frames, num_bins)`.
        spectral: `SpectralConfig` the spectrograms were made with (for the
            time and frequency axes).
        path: output file; its suffix is replaced by `.png`.
        title: str or None, the figure title.
        dynamic_range_db: float, default 80. Colour range below the loudest bin.

    Returns:
        list of the written paths.
    """
    if not spectra:
        raise ValueError("plot_spectrograms needs at least one spectrogram.")
    decibels = {
        label: 20.0 * np.log10(np.maximum(np.asarray(spectrum, np.float64), 1e-10))
        for label, spectrum in spectra.items()
    }
    top = max(float(values.max()) for values in decibels.values())
    figure = Figure(figsize=(10, 2.6 * len(spectra)), layout="constrained")
    axes = figure.subplots(len(spectra), 1, sharex=True, squeeze=False)[:, 0]
    nyquist_shown = spectral.bin_frequencies()[-1] / 1000.0
    for ax, (label, values) in zip(axes, decibels.items()):
        # Frame k is centred on sample k * hop + window // 2 - pad_left.
        first = (spectral.window_length // 2 - spectral.pad_left - spectral.hop_length / 2) / spectral.sample_rate
        last = first + values.shape[0] / spectral.frames_per_second
        image = ax.imshow(
            values.T,
            origin="lower",
            aspect="auto",
            extent=(first, last, 0.0, nyquist_shown),
            vmin=top - dynamic_range_db,
            vmax=top,
            cmap="magma",
            interpolation="nearest",
        )
        ax.set_ylabel("frequency (kHz)")
        ax.set_title(label, loc="left", fontsize=10)
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(image, ax=list(axes), label="magnitude (dB)")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_audio_spectrograms(audio_path, out, num_bins=None):
    """Plots the spectrogram of an audio file, or of the embedded example.

    Args:
        audio_path: str, `Path` or None. A WAV/FLAC/OGG file (downmixed to
            mono); None plots the mixture, vocals and accompaniment of the
            embedded MUSDB18 excerpt.
        out: output PNG path.
        num_bins: int or None. Lowest bins to show; None shows all.

    Returns:
        list of the written paths.
    """
    if audio_path is None:
        track = load_example().mono()
        waveforms = {
            "mixture": track.mixture,
            "vocals": track.vocals,
            "accompaniment (drums + bass + other)": track.accompaniment,
        }
        rate, title = track.rate, f"{track.name} (embedded MUSDB18 excerpt)"
    else:
        audio, rate = read_audio(audio_path)
        waveforms = {"mixture (mono)": audio.mean(axis=1, keepdims=True)}
        title = str(audio_path)
    spectral = front_end.SpectralConfig(sample_rate=rate)
    if num_bins is not None:
        spectral = dataclasses.replace(spectral, num_bins=num_bins)
    spectra = {
        label: front_end.spectrogram(waveform[:, 0], spectral).numpy()
        for label, waveform in waveforms.items()
    }
    return plot_spectrograms(spectra, spectral, out, title=title)
