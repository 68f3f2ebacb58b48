"""Figures of a mapping matrix M (couplings or Jacobian), frequency axes in Hz.

    plot_matrix     M as a heat map, output frequency against input
                    frequency, colour 20 log10 |M| (dB below the largest entry)
    plot_offsets    mean |M| against the offset j - i, in bins and in Hz
    plot_diagonal   per output frequency: diagonal against off-diagonal energy
    plot_compare    several matrices side by side on one colour scale

Each takes `notes`, lines printed under the title (the trust facts of the
fit: frames against bins, condition number, dead units, calibration).
"""

import numpy as np
from matplotlib.figure import Figure

from keras_dae.couplings import metrics
from keras_dae.plots import save_figure

DYNAMIC_RANGE_DB = 60.0
FLOOR = 1e-12


def _decibels(matrix):
    return 20.0 * np.log10(np.maximum(np.abs(np.asarray(matrix, np.float64)), FLOOR))


def _gaps(values):
    """Zeros (dead rows, empty offsets) as gaps in a log-scale line, not spikes to a floor."""
    values = np.asarray(values, np.float64)
    return np.where(values > FLOOR, values, np.nan)


def _bin_width(config):
    return config.sample_rate / config.fft_length


def _title(figure, title, notes):
    text = title + ("\n" + "\n".join(notes) if notes else "")
    figure.suptitle(text, fontsize=10)


def _heat_map(ax, matrix, config, top, dynamic_range_db):
    edge = (len(matrix) - 0.5) * _bin_width(config) / 1000.0
    low = -0.5 * _bin_width(config) / 1000.0
    return ax.imshow(
        _decibels(matrix), origin="lower", aspect="equal", extent=(low, edge, low, edge),
        vmin=top - dynamic_range_db, vmax=top, cmap="magma", interpolation="nearest",
    )


def plot_matrix(matrix, config, path, title, notes=(), formats=("png",), dynamic_range_db=DYNAMIC_RANGE_DB):
    """Heat map of `M[i, j]`: output frequency `i` (up) against input frequency `j` (across)."""
    figure = Figure(figsize=(7.2, 6.6), layout="constrained")
    ax = figure.subplots()
    image = _heat_map(ax, matrix, config, float(_decibels(matrix).max()), dynamic_range_db)
    ax.set_xlabel("input (mixture) frequency (kHz)")
    ax.set_ylabel("output (vocals) frequency (kHz)")
    figure.colorbar(image, ax=ax, shrink=0.85, label="20 log10 |M| (dB)")
    _title(figure, title, notes)
    return save_figure(figure, path, formats)


def plot_offsets(matrix, config, path, title, notes=(), formats=("png",)):
    """Mean |M| at each offset `j - i` from the diagonal; bottom axis bins, top axis Hz."""
    offsets, means = metrics.offset_profile(matrix)
    figure = Figure(figsize=(8, 4.4), layout="constrained")
    ax = figure.subplots()
    ax.semilogy(offsets, _gaps(means), linewidth=0.9, color="tab:blue")
    ax.set_xlabel("offset j - i (bins): input bin above (+) or below (-) the output bin")
    ax.set_ylabel("mean |M| at the offset")
    ax.grid(True, which="both", alpha=0.3)
    width = _bin_width(config)
    top = ax.secondary_xaxis("top", functions=(lambda b: b * width, lambda hz: hz / width))
    top.set_xlabel("offset (Hz)")
    _title(figure, title, notes)
    return save_figure(figure, path, formats)


def plot_diagonal(matrix, config, path, title, notes=(), formats=("png",)):
    """Per output frequency: the diagonal entry's energy `M_ii^2` and the rest of the row's."""
    diagonal, off = metrics.energy_per_output(matrix)
    hertz = np.arange(len(diagonal)) * _bin_width(config)
    figure = Figure(figsize=(8, 4.4), layout="constrained")
    ax = figure.subplots()
    ax.semilogy(hertz, _gaps(diagonal), linewidth=0.9, label="diagonal  M_ii^2")
    ax.semilogy(hertz, _gaps(off), linewidth=0.9, label="off-diagonal  sum_{j != i} M_ij^2")
    ax.set_xlabel("output frequency (Hz)")
    ax.set_ylabel("energy of the row (gaps: zero)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    _title(figure, title, notes)
    return save_figure(figure, path, formats)


def plot_compare(matrices, config, path, title, notes=None, formats=("png",),
                 dynamic_range_db=DYNAMIC_RANGE_DB):
    """`matrices` (name -> M) side by side on one colour scale (the largest |M| of all is 0 dB up)."""
    if not matrices:
        raise ValueError("nothing to compare.")
    top = max(float(_decibels(matrix).max()) for matrix in matrices.values())
    count = len(matrices)
    figure = Figure(figsize=(4.6 * count + 1.2, 5.2), layout="constrained")
    axes = figure.subplots(1, count, squeeze=False)[0]
    notes = notes or {}
    for ax, (name, matrix) in zip(axes, matrices.items()):
        image = _heat_map(ax, matrix, config[name] if isinstance(config, dict) else config, top, dynamic_range_db)
        ax.set_title("\n".join([name, *notes.get(name, ())]), fontsize=9)
        ax.set_xlabel("input frequency (kHz)")
    axes[0].set_ylabel("output frequency (kHz)")
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="20 log10 |M| (dB, shared scale)")
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path, formats)
