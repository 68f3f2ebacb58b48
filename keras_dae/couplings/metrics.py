"""Numbers that describe a mapping matrix M (couplings C or a Jacobian J).

The paper looks at C as an image and gives no single number; these are the
package's own. M is `(N, N)`, output bin `i` by input bin `j` (`y_i = sum_j
M[i, j] x_j`); `d = j - i` is the offset of an entry from the diagonal.

    diagonal_energy_ratio   sum_i M_ii^2 / sum_ij M_ij^2
                            1: purely per-bin filtering; 1/N for a matrix
                            with equal energy everywhere
    band_energy_ratio(k)    sum_{|j-i|<=k} M_ij^2 / sum_ij M_ij^2
                            energy within k bins of the diagonal
    mean_absolute_offset    sum_ij |M_ij| |j - i| / sum_ij |M_ij|  (bins)
                            how far, on average, inputs reach outputs
    offset_profile(d)       mean_i |M_i,i+d| over the entries at offset d
    relative_l1(M)          sum |X M^T - Y| / sum |Y|     on held-out frames
    relative_l2(M)          ||X M^T - Y||_F / ||Y||_F     on held-out frames

The fit quality is given for M, for the identity (the mixture as the
estimate) and for the best diagonal matrix (per bin, the least-squares gain
`g_i = sum x_i y_i / sum x_i^2` on the fitting frames), so what the
off-diagonal part adds is the difference between M's and the diagonal's.
"""

import numpy as np

BANDS = (1, 3, 10)


def _energy(matrix):
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a mapping matrix must be square. Received shape {matrix.shape}")
    return matrix**2


def diagonal_energy_ratio(matrix):
    """`sum diag(M)^2 / sum M^2` (0 for an all-zero matrix)."""
    energy = _energy(matrix)
    total = energy.sum()
    return float(np.trace(energy) / total) if total > 0 else 0.0


def band_energy_ratio(matrix, k):
    """Share of `sum M^2` within `k` bins of the diagonal (`|j - i| <= k`)."""
    energy = _energy(matrix)
    total = energy.sum()
    offsets = _offsets(len(energy))
    return float(energy[np.abs(offsets) <= k].sum() / total) if total > 0 else 0.0


def _offsets(size):
    index = np.arange(size)
    return index[None, :] - index[:, None]  # j - i


def mean_absolute_offset(matrix):
    """`sum |M_ij| |j - i| / sum |M_ij|`, in bins."""
    magnitude = np.abs(np.asarray(matrix, np.float64))
    total = magnitude.sum()
    return float((magnitude * np.abs(_offsets(len(magnitude)))).sum() / total) if total > 0 else 0.0


def offset_profile(matrix):
    """`(offsets, mean |M| at each offset)`, offsets `-(N-1) .. N-1`."""
    magnitude = np.abs(np.asarray(matrix, np.float64))
    size = len(magnitude)
    offsets = np.arange(-(size - 1), size)
    # M[i, i + d] lies on numpy's diagonal d.
    means = np.array([np.diagonal(magnitude, offset).mean() for offset in offsets])
    return offsets, means


def energy_per_output(matrix):
    """`(diagonal, off_diagonal)` energy of each output bin's row: `M_ii^2` and `sum_{j != i} M_ij^2`."""
    energy = _energy(matrix)
    diagonal = np.diagonal(energy).copy()
    return diagonal, energy.sum(axis=1) - diagonal


def relative_errors(matrix, frames, targets):
    """`{"relative_l1", "relative_l2"}` of `frames @ M^T` against `targets`."""
    frames = np.asarray(frames, np.float64)
    targets = np.asarray(targets, np.float64)
    error = frames @ np.asarray(matrix, np.float64).T - targets
    l1 = np.abs(targets).sum()
    l2 = np.linalg.norm(targets)
    return {
        "relative_l1": float(np.abs(error).sum() / l1) if l1 > 0 else float("nan"),
        "relative_l2": float(np.linalg.norm(error) / l2) if l2 > 0 else float("nan"),
    }


def best_diagonal(frames, targets):
    """Per-bin least-squares gains `g_i = sum x_i y_i / sum x_i^2` (0 where x_i is always 0)."""
    frames = np.asarray(frames, np.float64)
    targets = np.asarray(targets, np.float64)
    power = (frames**2).sum(axis=0)
    cross = (frames * targets).sum(axis=0)
    return np.divide(cross, power, out=np.zeros_like(power), where=power > 0)


def shape_metrics(matrix):
    """The structure numbers of M (no data needed)."""
    metrics = {
        "diagonal_energy_ratio": diagonal_energy_ratio(matrix),
        "mean_absolute_offset_bins": mean_absolute_offset(matrix),
    }
    for k in BANDS:
        metrics[f"band_energy_ratio_{k}"] = band_energy_ratio(matrix, k)
    return metrics


def fit_quality(matrix, fit_frames, fit_targets, held_frames, held_targets):
    """Relative errors on held-out frames of M, the identity and the best diagonal (fitted on the fit frames)."""
    size = np.asarray(matrix).shape[0]
    diagonal = np.diag(best_diagonal(fit_frames, fit_targets))
    return {
        name: relative_errors(candidate, held_frames, held_targets)
        for name, candidate in (("matrix", matrix), ("identity", np.eye(size)), ("best_diagonal", diagonal))
    }


def singular_value_summary(frames):
    """`{"rank", "condition_number"}` of the frame matrix (nonzero singular values only)."""
    singular = np.linalg.svd(np.asarray(frames, np.float64), compute_uv=False)
    if singular.size == 0 or singular[0] == 0:
        return {"rank": 0, "condition_number": float("inf")}
    tolerance = singular[0] * max(np.shape(frames)) * np.finfo(np.float64).eps
    kept = singular[singular > tolerance]
    return {"rank": int(kept.size), "condition_number": float(kept[0] / kept[-1])}


def dead_unit_share(outputs, tolerance=0.0):
    """Share of output bins that are `<= tolerance` in every frame."""
    outputs = np.asarray(outputs)
    if outputs.size == 0:
        return float("nan")
    return float(np.mean(np.all(outputs <= tolerance, axis=0)))
