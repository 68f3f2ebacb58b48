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


def _bin_width(spectral):
    return spectral.sample_rate / spectral.fft_length


def _title(figure, title, notes):
    text = title + ("\n" + "\n".join(notes) if notes else "")
    figure.suptitle(text, fontsize=10)


def _heat_map(ax, matrix, spectral, top, dynamic_range_db):
    edge = (len(matrix) - 0.5) * _bin_width(spectral) / 1000.0
    low = -0.5 * _bin_width(spectral) / 1000.0
    return ax.imshow(
        _decibels(matrix), origin="lower", aspect="equal", extent=(low, edge, low, edge),
        vmin=top - dynamic_range_db, vmax=top, cmap="magma", interpolation="nearest",
    )


def plot_matrix(matrix, path, title, *, spectral, notes=(), formats=("png",), dynamic_range_db=DYNAMIC_RANGE_DB):
    """Heat map of `M[i, j]`: output frequency `i` (up) against input frequency `j` (across)."""
    return save_figure(matrix_figure(matrix, title, spectral=spectral, notes=notes, dynamic_range_db=dynamic_range_db),
                       path, formats)


def matrix_figure(matrix, title, *, spectral, notes=(), dynamic_range_db=DYNAMIC_RANGE_DB):
    """The `Figure` that `plot_matrix` saves."""
    figure = Figure(figsize=(7.2, 6.6), layout="constrained")
    ax = figure.subplots()
    image = _heat_map(ax, matrix, spectral, float(_decibels(matrix).max()), dynamic_range_db)
    ax.set_xlabel("input (mixture) frequency (kHz)")
    ax.set_ylabel("output (vocals) frequency (kHz)")
    figure.colorbar(image, ax=ax, shrink=0.85, label="20 log10 |M| (dB)")
    _title(figure, title, notes)
    return figure


def plot_offsets(matrix, path, title, *, spectral, notes=(), formats=("png",)):
    """Mean |M| at each offset `j - i` from the diagonal; bottom axis bins, top axis Hz."""
    offsets, means = metrics.offset_profile(matrix)
    figure = Figure(figsize=(8, 4.4), layout="constrained")
    ax = figure.subplots()
    ax.semilogy(offsets, _gaps(means), linewidth=0.9, color="tab:blue")
    ax.set_xlabel("offset j - i (bins): input bin above (+) or below (-) the output bin")
    ax.set_ylabel("mean |M| at the offset")
    ax.grid(True, which="both", alpha=0.3)
    width = _bin_width(spectral)
    top = ax.secondary_xaxis("top", functions=(lambda b: b * width, lambda hz: hz / width))
    top.set_xlabel("offset (Hz)")
    _title(figure, title, notes)
    return save_figure(figure, path, formats)


def plot_diagonal(matrix, path, title, *, spectral, notes=(), formats=("png",)):
    """Per output frequency: the diagonal entry's energy `M_ii^2` and the rest of the row's."""
    diagonal, off = metrics.energy_per_output(matrix)
    hertz = np.arange(len(diagonal)) * _bin_width(spectral)
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


def plot_compare(matrices, path, title, *, spectral, notes=None, formats=("png",),
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
        image = _heat_map(ax, matrix, spectral[name] if isinstance(spectral, dict) else spectral, top, dynamic_range_db)
        ax.set_title("\n".join([name, *notes.get(name, ())]), fontsize=9)
        ax.set_xlabel("input frequency (kHz)")
    axes[0].set_ylabel("output frequency (kHz)")
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="20 log10 |M| (dB, shared scale)")
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path, formats)


def plot_evolution(evolutions, path, title, *, spectral, final=None, formats=("png",),
                   dynamic_range_db=DYNAMIC_RANGE_DB):
    """How each model's couplings evolved while it trained.

    Top: diagonal energy (solid) and energy within 3 bins of the diagonal
    (dashed) against the training step, every model on shared axes; a hollow
    marker at the last step shows `final` (the final model's diagonal energy
    under another solver, e.g. the verdict's). Below, per model (one row), C
    at an early, a middle and the final checkpoint, on one colour scale per row.

    Args:
        evolutions: dict name -> `(rows, epochs, couplings)`: `evolution.read_rows`
            and `evolution.read_snapshots` of a run.
        spectral: `SpectralConfig` (frequency axes).
        path: output file (suffix replaced per format).
        title: str; should name the solver of the curves.
        final: dict name -> `(label, value)` or None.
    """
    names = list(evolutions)
    figure = Figure(figsize=(11, 4.2 + 3.2 * len(names)), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[4.2, 3.2 * len(names)])
    ax = top.subplots()
    colours = {name: f"C{index}" for index, name in enumerate(names)}
    for name in names:
        rows = evolutions[name][0]
        steps = [row["step"] for row in rows]
        ax.plot(steps, [row["diagonal_energy"] for row in rows], color=colours[name], marker=".",
                label=f"{name}: diagonal energy")
        ax.plot(steps, [row["band_energy_3"] for row in rows], color=colours[name], linestyle="--",
                label=f"{name}: energy |j-i|<=3")
        if final and name in final and rows:
            label, value = final[name]
            ax.plot([steps[-1]], [value], marker="o", markersize=9, markerfacecolor="none", linestyle="none",
                    color=colours[name], label=f"{name}: {label}")
    ax.set_xlabel("training step")
    ax.set_ylabel("share of C's energy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    ax.set_title(title, fontsize=10)
    grid = bottom.subplots(len(names), 3, squeeze=False)
    image = None
    for row_axes, name in zip(grid, names):
        epochs, couplings = evolutions[name][1], evolutions[name][2]
        if not len(epochs):
            for axis in row_axes:
                axis.set_axis_off()
            continue
        picks = sorted({0, len(epochs) // 2, len(epochs) - 1})
        picks = (picks + [picks[-1]] * 3)[:3]
        scale = max(float(_decibels(couplings[index]).max()) for index in picks)
        for axis, index, stage in zip(row_axes, picks, ("early", "middle", "final")):
            image = _heat_map(axis, couplings[index], spectral, scale, dynamic_range_db)
            axis.set_title(f"{name}, {stage}: epoch {int(epochs[index])}", fontsize=8)
            axis.tick_params(labelsize=7)
        row_axes[0].set_ylabel("output kHz", fontsize=8)
    for axis in grid[-1]:
        axis.set_xlabel("input kHz", fontsize=8)
    if image is not None:
        bottom.colorbar(image, ax=grid.ravel().tolist(), shrink=0.6, label="20 log10 |C| (dB, one scale per row)")
    return save_figure(figure, path, formats)
