"""When a training run has converged: the rule, and the Keras callback that applies it.

The rule (`Rule`): an epoch *improves* when the monitored loss (validation
loss where there is validation data, else training loss) falls below the
best so far by more than `min_delta` relative to it,

    best - loss > min_delta * |best|,

and the run has *converged* once `patience` epochs in a row did not improve.
A run that reaches its epoch cap first has not converged (`EPOCH_CAP`).

Unlike `keras.callbacks.EarlyStopping`, whose counters start from zero in
every `fit`, `ConvergenceStopping` rebuilds its state from the run's earlier
epochs (`history.csv`), so a run resumed after `kill -9` stops at the same
epoch as one that was never interrupted.
"""

import dataclasses
import math

import keras
import numpy as np

from keras_dae import checks

CONVERGED = "converged"
EPOCH_CAP = "epoch-cap"
NAN = "nan"
RUNNING = "running"
# Statuses of runs that are over (the last two: runs written before the convergence rule existed).
DONE = (CONVERGED, EPOCH_CAP, "finished", "stopped-early")


@dataclasses.dataclass(frozen=True)
class Rule:
    """No improvement by more than `min_delta` (relative) for `patience` epochs: converged."""

    patience: int = 20
    min_delta: float = 1e-3

    def __post_init__(self):
        checks.positive_int("patience", self.patience)
        if not (isinstance(self.min_delta, (int, float)) and not isinstance(self.min_delta, bool)
                and 0 <= self.min_delta < 1):
            raise checks.ParameterError(
                "min_delta", f"`min_delta` must be a number in [0, 1). Received: min_delta={self.min_delta!r}")

    def improves(self, value, best):
        """Whether the loss `value` improves on the best loss so far, `best` (inf before the first epoch)."""
        if value is None or not np.isfinite(value):
            return False
        return best - value > self.min_delta * abs(best) if math.isfinite(best) else True

    def step(self, best, wait, value):
        """`(best, wait)` after one more epoch with loss `value`; `wait` counts epochs since the best."""
        return (float(value), 0) if self.improves(value, best) else (best, wait + 1)

    def converged_at(self, values):
        """The number of epochs after which the rule stops a run with these losses, or None."""
        best, wait = math.inf, 0
        for epoch, value in enumerate(values, start=1):
            best, wait = self.step(best, wait, value)
            if wait >= self.patience:
                return epoch
        return None


class ConvergenceStopping(keras.callbacks.Callback):
    """Stops training when `rule` says the run has converged.

    Args:
        rule: `Rule`.
        monitor: str, the log to watch (`"val_loss"` or `"loss"`).
        history: the monitored values of the epochs done before this `fit`
            (a resumed run), in order.
    """

    def __init__(self, rule, monitor, history=()):
        super().__init__()
        self.rule, self.monitor = rule, monitor
        self.best, self.wait = math.inf, 0
        for value in history:
            self.best, self.wait = rule.step(self.best, self.wait, value)
        self.converged = False

    def on_epoch_end(self, epoch, logs=None):
        self.best, self.wait = self.rule.step(self.best, self.wait, (logs or {}).get(self.monitor))
        if self.wait >= self.rule.patience:
            self.converged = True
            self.model.stop_training = True
