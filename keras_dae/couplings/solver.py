"""The neural couplings algorithm (NCA): one matrix that mimics a trained model.

A trained DAE `f` (the teacher) maps a mixture magnitude frame `x` (N bins)
to a vocals frame `f(x)`. NCA fits a single N x N matrix C, no bias, no
non-linearity, so that `C x` reproduces `f(x)` on mixture frames; `C[i, j]`
is how much input bin `j` contributes to output bin `i`. A strong diagonal
means per-bin (scalar) filtering; energy off the diagonal means the teacher
uses inter-frequency structure (Mimilakis et al., IEEE/ACM TASLP 28, 2020).

Two solvers:

    fit     `NeuralCouplings` (a Keras model holding C) trained with
            `model.fit` on `(x, f(x))`, the teacher frozen. Schedules:
            `paper`  L1 loss, Adam 1e-4, full batch, 600 epochs, Glorot-normal
                     init: the paper's set-up. Adam moves each entry of C by
                     roughly the learning rate per step, so 600 steps leave C
                     within about 0.1 of its random start.
            `fast`   (default) the same loss and init, Adam 2e-2 halved on
                     plateaus, mini-batches of 256 frames (smaller for small
                     frame sets, so that an epoch has at least 32 steps),
                     at most 300 epochs, early stopping on the loss.
            `converge` as `fast`, but stops only once the rate has been
                     halved down to 1e-5 of its start and the loss no
                     longer improves by 1e-6: about twice the epochs of
                     `fast`, within 1% of the L2 optimum where `fast` is
                     within a few percent.
    lstsq   the closed-form least-squares solution (L2), minimum-norm when
            the frames do not determine C, optionally ridge-regularised:
            min ||X C^T - Y||^2 + ridge * (trace(X^T X) / N) * ||C||^2.
"""

import dataclasses
import logging
import math

import keras
import numpy as np
import scipy.linalg
from keras import ops

from keras_dae import tracing
from keras_dae.checks import non_negative_number, one_of, positive_int
from keras_dae.optimizers import FusedAdam

tracing.install()

log = logging.getLogger(__name__)

SOLVERS = ("fit", "lstsq")
LOSSES = {"l1": "mean_absolute_error", "l2": "mean_squared_error"}
TARGET_BATCH = 1024
# The learning rate is not halved below the schedule's divided by this.
MIN_LR_DIVISOR = 256
# Cholesky of the Gram matrix is used while its diagonal spans less than 1e5.
MAX_CHOLESKY_RATIO = 1e-5


# Smallest decrease of the relative loss that counts as progress (plateaus, early stopping).
MIN_DELTA = 1e-3


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How `fit` trains C. `batch_size=None` means the whole frame set (full batch)."""

    learning_rate: float
    epochs: int
    batch_size: int = None
    patience: int = None  # epochs without a lower loss before stopping; None: never
    min_steps: int = 1  # batches per epoch at least (smaller batches for small frame sets)
    min_delta: float = MIN_DELTA  # smallest decrease of the relative loss that counts as progress
    min_lr_divisor: float = MIN_LR_DIVISOR  # the learning rate is not halved below learning_rate / this
    stop_at_floor: bool = False  # stop only once the learning rate has been halved down to its floor

    def batch_for(self, num_frames):
        """The batch size for `num_frames` frames."""
        batch = min(self.batch_size or num_frames, num_frames)
        return max(min(batch, math.ceil(num_frames / self.min_steps)), 1)

    def to_dict(self):
        return dataclasses.asdict(self)


SCHEDULES = {
    "paper": Schedule(learning_rate=1e-4, epochs=600, batch_size=None, patience=None),
    "fast": Schedule(learning_rate=2e-2, epochs=300, batch_size=256, patience=10, min_steps=32),
    # Runs to the optimum: the rate halved down to 1e-5 of its start before stopping.
    "converge": Schedule(learning_rate=2e-2, epochs=600, batch_size=256, patience=20, min_steps=32, min_delta=1e-6,
                         min_lr_divisor=1e5, stop_at_floor=True),
}


@keras.saving.register_keras_serializable(package="keras_dae")
class NeuralCouplings(keras.Model):
    """The NCA student: `y_hat = C x` with one trainable `(num_bins, num_bins)` matrix C.

    Args:
        num_bins: int, N.
        seed: int or None, seed of C's Glorot-normal initialisation.

    Example:

    >>> student = NeuralCouplings(4)
    >>> student(np.ones((2, 4), "float32")).shape
    TensorShape([2, 4])
    """

    def __init__(self, num_bins, seed=None, **kwargs):
        super().__init__(**kwargs)
        positive_int("num_bins", num_bins)
        self.num_bins = num_bins
        self.seed = seed
        self.couplings = self.add_weight(
            name="couplings",
            shape=(num_bins, num_bins),
            initializer=keras.initializers.GlorotNormal(seed=seed),
        )
        self.built = True

    def call(self, inputs):
        # y_i = sum_j C[i, j] x_j for every frame (row) of `inputs`.
        return ops.matmul(inputs, ops.transpose(self.couplings))

    @property
    def matrix(self):
        """C as a NumPy array (output bin, input bin)."""
        return np.asarray(self.couplings.numpy())

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "seed": self.seed}


def teacher_outputs(teacher, frames, verbose=0):
    """`f(x)` for every frame: the frozen teacher's predictions, float32 (none for no frames)."""
    frames = np.asarray(frames, np.float32)
    if not len(frames):  # Keras' `predict` fails on zero frames (UnboundLocalError in Keras 3.15)
        return np.zeros((0, *teacher.compute_output_shape((None, *frames.shape[1:]))[1:]), np.float32)
    return np.asarray(teacher.predict(frames, batch_size=TARGET_BATCH, verbose=verbose), np.float32)


def lstsq_couplings(frames, targets, ridge=0.0):
    """The least-squares C with `C x ~= y` for every frame; float32 `(N, N)`.

    Args:
        frames: `(num_frames, N)` inputs x.
        targets: `(num_frames, N)` outputs y.
        ridge: float >= 0. 0: the minimum-norm least-squares solution;
            otherwise the penalty `ridge * mean(diag(X^T X))` on `||C||^2`.
    """
    x = np.asarray(frames, np.float64)
    y = np.asarray(targets, np.float64)
    _check_pair(x, y)
    non_negative_number("ridge", ridge)
    gram = x.T @ x
    if ridge > 0:
        gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
    solution = _solve_normal_equations(gram, x.T @ y) if ridge > 0 or len(x) >= x.shape[1] else None
    if solution is None:
        # Under-determined or ill-conditioned: the minimum-norm solution (SVD).
        solution, *_ = np.linalg.lstsq(x, y, rcond=None)
    return np.ascontiguousarray(solution.T, dtype=np.float32)


def _solve_normal_equations(gram, rhs):
    """`gram^-1 rhs` by Cholesky, or None when `gram` is too ill-conditioned for it.

    The normal equations square the frame matrix's condition number; with
    Cholesky's diagonal as the estimate, up to about 1e5 for the frames
    (1e10 here) the float64 solution keeps about six digits. Several times
    faster than the SVD of the frames at 2049 bins.
    """
    try:
        factor = scipy.linalg.cho_factor(gram, lower=True)
    except np.linalg.LinAlgError:
        return None
    diagonal = np.abs(np.diagonal(factor[0]))
    if diagonal.min() <= diagonal.max() * MAX_CHOLESKY_RATIO:
        return None
    return scipy.linalg.cho_solve(factor, rhs)


def _check_pair(frames, targets):
    if frames.ndim != 2 or frames.shape != targets.shape:
        raise ValueError(
            f"frames and targets must both be (num_frames, num_bins). Received: {frames.shape} and {targets.shape}"
        )
    if len(frames) == 0:
        raise ValueError("there are no frames to fit the couplings on.")


def fit_couplings(frames, targets, *, schedule="fast", loss="l1", seed=0, epochs=None, verbose=0, callbacks=()):
    """Trains a `NeuralCouplings` on `(frames, targets)` with `model.fit`.

    Args:
        frames, targets: `(num_frames, N)` float arrays, x and y.
        schedule: `"fast"`, `"converge"`, `"paper"` or a `Schedule`.
        loss: `"l1"` (the paper's) or `"l2"`.
        seed: int, seeds C's initialisation and the batch order.
        epochs: int or None, at most this many epochs instead of the schedule's.
        verbose: int, 0 silent, else one progress bar over the epochs.
        callbacks: extra Keras callbacks.

    C does not change when x and y are scaled together, so both are divided
    by the mean |y| for the fit: the loss is then relative (L1: mean |error|
    over mean |y|; L2: over mean |y| squared), whatever the magnitudes' scale,
    and the plateau and stopping thresholds (`MIN_DELTA`) mean the same on
    any data. Adam's steps do not depend on that scale.

    Returns:
        `(NeuralCouplings, history dict)`, the history's loss relative as above.
    """
    frames = np.asarray(frames, np.float32)
    targets = np.asarray(targets, np.float32)
    _check_pair(frames, targets)
    one_of("loss", loss, LOSSES)
    if isinstance(schedule, str):
        schedule = SCHEDULES[one_of("schedule", schedule, SCHEDULES)]
    if epochs is not None:
        schedule = dataclasses.replace(schedule, epochs=epochs)
    student = NeuralCouplings(frames.shape[1], seed=seed)
    batch_size = schedule.batch_for(len(frames))
    steps = math.ceil(len(frames) / batch_size)
    # One epoch per call into the graph, from a dataset built once: with
    # small frame sets a fit is otherwise all Python and tf.data overhead.
    student.compile(optimizer=FusedAdam(schedule.learning_rate), loss=LOSSES[loss], steps_per_execution=steps)
    callbacks = list(callbacks)
    if schedule.patience:
        min_lr = schedule.learning_rate / schedule.min_lr_divisor
        callbacks += [
            keras.callbacks.ReduceLROnPlateau(
                monitor="loss", factor=0.5, patience=max(schedule.patience // 2, 1), min_delta=schedule.min_delta,
                min_lr=min_lr, verbose=0,
            ),
            PlateauStopping(
                monitor="loss", patience=schedule.patience, min_delta=schedule.min_delta, restore_best_weights=True,
                min_lr=min_lr if schedule.stop_at_floor else None,
            ),
        ]
    if verbose:
        callbacks.append(EpochBar(schedule.epochs))
    history = student.fit(
        _dataset(frames, targets, batch_size, seed), steps_per_epoch=steps, epochs=schedule.epochs,
        callbacks=callbacks, verbose=0, shuffle=False,  # the dataset shuffles itself
    )
    return student, history.history


def _dataset(frames, targets, batch_size, seed):
    """`(x, y)` batches, x and y divided by the mean |y|, reshuffled every pass, repeated."""
    import tensorflow as tf

    mean = float(np.mean(np.abs(targets)))
    scale = np.float32(1.0 / mean if mean > 0 else 1.0)
    pairs = (frames * scale, targets * scale)
    if batch_size >= len(frames):
        return tf.data.Dataset.from_tensors(pairs).repeat()
    dataset = tf.data.Dataset.from_tensor_slices(pairs)
    dataset = dataset.shuffle(len(frames), seed=seed, reshuffle_each_iteration=True)
    return dataset.repeat().batch(batch_size, drop_remainder=True).prefetch(2)


def _learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class PlateauStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that, given `min_lr`, stops only once the learning rate is down to it.

    Placed after `ReduceLROnPlateau`: while the rate is still being halved, a
    plateau is the halving's job; stopping then leaves Adam's mini-batch noise
    at the higher rate in C (measured: 0.1-2.5% above the L2 optimum).
    """

    def __init__(self, min_lr=None, **kwargs):
        super().__init__(**kwargs)
        self.min_lr = min_lr

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.min_lr is not None and self.model.stop_training and self.stopped_epoch == epoch:
            if _learning_rate(self.model) > self.min_lr * (1 + 1e-6):
                self.model.stop_training = False
                self.stopped_epoch = 0


class EpochBar(keras.callbacks.Callback):
    """One progress bar over the epochs (not one per epoch), with the loss and learning rate."""

    def __init__(self, epochs):
        super().__init__()
        self.bar = keras.utils.Progbar(epochs, unit_name="epoch", stateful_metrics=["loss", "learning_rate"])
        self.seen = 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen = epoch + 1
        rate = _learning_rate(self.model)
        self.bar.update(self.seen, [("loss", (logs or {}).get("loss", float("nan"))), ("learning_rate", rate)])

    def on_train_end(self, logs=None):
        if self.seen < self.bar.target:  # stopped early: close the bar's line
            self.bar.update(self.seen, finalize=True)


def distill(teacher, frames, *, solver="fit", schedule="fast", loss="l1", ridge=0.0, seed=0, epochs=None,
            verbose=0):
    """Distils the couplings matrix C of `teacher` on mixture `frames`.

    Args:
        teacher: a Keras model mapping `(batch, N)` to `(batch, N)`; frozen.
        frames: `(num_frames, N)` mixture magnitude frames.
        solver: `"fit"` (NCA with `model.fit`) or `"lstsq"` (closed form, L2).
        schedule, loss, seed, epochs: for `"fit"`, see `fit_couplings`.
        ridge: for `"lstsq"`, see `lstsq_couplings`.
        verbose: progress bars (0: none).

    Returns:
        `(C, history)`: float32 `(N, N)`, and the loss per epoch (`fit`) or
        an empty dict (`lstsq`).

    Example:

    >>> C, _ = distill(model, frames, solver="lstsq")
    """
    frames = np.asarray(frames, np.float32)
    targets = teacher_outputs(teacher, frames, verbose=verbose)
    return solve(frames, targets, solver=solver, schedule=schedule, loss=loss, ridge=ridge, seed=seed,
                 epochs=epochs, verbose=verbose)


def solve(frames, targets, *, solver="fit", schedule="fast", loss="l1", ridge=0.0, seed=0, epochs=None, verbose=0):
    """C from `(frames, targets)` with `solver`; see `distill`."""
    if one_of("solver", solver, SOLVERS) == "lstsq":
        return lstsq_couplings(frames, targets, ridge), {}
    student, history = fit_couplings(frames, targets, schedule=schedule, loss=loss, seed=seed, epochs=epochs,
                                     verbose=verbose)
    return student.matrix, history
