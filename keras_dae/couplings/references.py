"""What a per-bin mapping scores: the calibration and the per-bin references.

C has no bias and the bins of real spectra are correlated, so the diagonal
energy of a fitted C depends on the frames as well as on the model. These
controls fit the same solver, on the same frames, to teachers whose mapping is
known to treat every bin on its own:

    calibration          a linear per-bin gain `y = g * x` (`g` uniform in
                         [0.5, 1.5]): the most diagonal score the frames allow
    per-bin references   the linear gain, a soft gate, a threshold and a
                         compression (`PER_BIN_TEACHERS`): the range of scores
                         of per-bin mappings on these frames
"""

import hashlib
import json

import numpy as np

from keras_dae.couplings import metrics
from keras_dae.couplings.solver import solve

# A diagonal teacher on the frames must score at least this for them to tell a diagonal mapping from another.
MIN_CALIBRATION = 0.9

_CALIBRATIONS = {}  # (frames digest, solver options, seed) -> result: models examined on one frame set share it


def teacher_gains(frames, seed):
    """The per-bin gains of the calibration's (and the per-bin references') teachers, uniform in [0.5, 1.5]."""
    return np.random.default_rng(seed + 1).uniform(0.5, 1.5, frames.shape[1]).astype(np.float32)


PER_BIN_SCORES = ("diagonal_energy_ratio", "band_energy_ratio_3")


def _per_bin_scores(matrix):
    """`PER_BIN_SCORES` of a fitted C."""
    return {"diagonal_energy_ratio": metrics.diagonal_energy_ratio(matrix),
            "band_energy_ratio_3": metrics.band_energy_ratio(matrix, 3)}


def calibration(frames, solver_options, seed, verbose=0):
    """The solver on a known diagonal teacher over `frames`: how diagonal a fit these frames allow.

    Deterministic in its arguments, so it is computed once per process for
    each frame set, solver and seed (a reproduction examines three models on
    the same frames).
    """
    frames = np.ascontiguousarray(frames, np.float32)
    key = (hashlib.sha256(frames.tobytes()).hexdigest(), frames.shape, json.dumps(solver_options, sort_keys=True),
           seed)
    if key not in _CALIBRATIONS:
        gains = teacher_gains(frames, seed)
        matrix, _ = solve(frames, frames * gains, verbose=verbose, **solver_options)
        truth = np.diag(gains)
        _CALIBRATIONS[key] = {
            **_per_bin_scores(matrix),
            "relative_error_to_truth": float(np.linalg.norm(matrix - truth) / np.linalg.norm(truth)),
        }
    return dict(_CALIBRATIONS[key])


# Teachers that filter every bin on its own, `y_i = h_i(x_i)`, with gains `g` in [0.5, 1.5] and `t` each
# bin's median over the frames: a linear gain (the calibration), a soft gate, a threshold, a compression.
PER_BIN_TEACHERS = {
    "linear gain": lambda x, g, t: g * x,
    "soft gate": lambda x, g, t: g * x * x / (x + t),
    "threshold": lambda x, g, t: g * np.maximum(x - t, 0),
    "compression": lambda x, g, t: g * np.sqrt(x * t),
}


def per_bin_references(frames, solver_options, seed, verbose=0):
    """Diagonal energy of C for each of `PER_BIN_TEACHERS`, fitted by the same solver on `frames`.

    C has no bias and the frames' bins are correlated, so even a teacher that
    treats every bin on its own gets off-diagonal couplings once it is not
    linear: these scores are the range a per-bin model can show on these
    frames (the linear one is the calibration).

    Returns:
        dict teacher name -> `{"diagonal_energy_ratio", "band_energy_ratio_3"}`.
    """
    frames = np.asarray(frames, np.float32)
    gains = teacher_gains(frames, seed)
    medians = np.median(frames, axis=0) + np.float32(1e-12)
    results = {}
    for name, teacher in PER_BIN_TEACHERS.items():
        if name == "linear gain":  # the calibration's teacher and gains: computed (and cached) there
            linear = calibration(frames, solver_options, seed, verbose)
            results[name] = {key: linear[key] for key in PER_BIN_SCORES}
            continue
        matrix, _ = solve(frames, teacher(frames, gains, medians).astype(np.float32), verbose=verbose,
                          **solver_options)
        results[name] = _per_bin_scores(matrix)
    return results
