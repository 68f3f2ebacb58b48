"""The neural couplings algorithm (NCA): what mapping a trained model learned.

    solver       `NeuralCouplings` (the one-matrix student), `distill` (from a
                 teacher model), `solve`, `fit_couplings` (the paper's L1
                 `model.fit`), `lstsq_couplings` (closed-form least squares)
    frames       the mixture frames C is fitted on (`FrameSet`)
    metrics      numbers that describe C (diagonal energy, band energy, ...)
    references   the calibration and the per-bin references: what a per-bin
                 mapping scores on the same frames
    jacobian     the model's mean Jacobian, a second view of the mapping
    figures      C drawn with frequency axes
    examine      all of the above for one trained model, into a directory
    compare      several examined models side by side

Data flows frames -> solver -> metrics/references -> examine -> compare.
"""

from keras_dae.couplings.compare import compare, comparison_table, read_result
from keras_dae.couplings.examine import examine
from keras_dae.couplings.frames import FrameSet, prepared_frame_set, track_frame_set
from keras_dae.couplings.jacobian import mean_jacobian
from keras_dae.couplings.references import MIN_CALIBRATION, PER_BIN_TEACHERS, calibration, per_bin_references
from keras_dae.couplings.solver import (
    SCHEDULES,
    SOLVERS,
    NeuralCouplings,
    Schedule,
    distill,
    fit_couplings,
    lstsq_couplings,
    solve,
    teacher_outputs,
)

__all__ = [
    "MIN_CALIBRATION",
    "PER_BIN_TEACHERS",
    "SCHEDULES",
    "SOLVERS",
    "FrameSet",
    "NeuralCouplings",
    "Schedule",
    "calibration",
    "compare",
    "comparison_table",
    "distill",
    "examine",
    "fit_couplings",
    "lstsq_couplings",
    "mean_jacobian",
    "per_bin_references",
    "prepared_frame_set",
    "read_result",
    "solve",
    "teacher_outputs",
    "track_frame_set",
]
