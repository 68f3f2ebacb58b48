"""The convergence rule: stops on a plateau and not before; a resumed run stops where an uninterrupted one does."""

import keras
import numpy as np
import pytest

from keras_dae.convergence import ConvergenceStopping, Rule


def test_the_rule_stops_after_patience_epochs_without_a_relative_improvement():
    rule = Rule(patience=3, min_delta=0.01)
    # Falls by 10% per epoch for 5 epochs, then by 0.2% per epoch: a plateau from epoch 6.
    losses = [1.0 * 0.9**k for k in range(5)] + [0.9**4 * 0.998**k for k in range(1, 10)]
    assert rule.converged_at(losses) == 8  # epochs 6, 7, 8 stay within 1% of the best (epoch 5)
    assert rule.converged_at(losses[:7]) is None  # two epochs of plateau: not yet


def test_a_slow_drift_counts_once_it_adds_up_to_min_delta():
    # 0.5% per epoch: within 1% of the best for two epochs, then 1.5% below it, which is an improvement.
    rule = Rule(patience=3, min_delta=0.01)
    assert rule.converged_at([0.995**k for k in range(60)]) is None


def test_an_improvement_larger_than_min_delta_resets_the_wait():
    rule = Rule(patience=3, min_delta=0.01)
    losses = [1.0, 1.0, 1.0, 0.98, 0.98, 0.98, 0.98]
    assert rule.converged_at(losses) == 7
    assert rule.converged_at([1.0, 1.0, 1.0, 1.0]) == 4


def test_a_steadily_falling_loss_never_converges():
    rule = Rule(patience=2, min_delta=1e-3)
    assert rule.converged_at([0.98**k for k in range(500)]) is None


def test_non_finite_losses_do_not_count_as_improvements():
    rule = Rule(patience=2, min_delta=0.0)
    assert rule.converged_at([1.0, float("nan"), float("inf")]) == 3


@pytest.mark.parametrize("patience, min_delta", [(0, 0.1), (2, -0.1), (2, 1.0), (True, 0.1), (2, "0.1")])
def test_bad_rules(patience, min_delta):
    with pytest.raises(ValueError):
        Rule(patience=patience, min_delta=min_delta)


class _Losses(keras.callbacks.Callback):
    """Feeds a fixed sequence of validation losses to the callbacks after it."""

    def __init__(self, losses):
        super().__init__()
        self.losses = losses

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.losses[epoch]


def _fit(losses, callback, initial_epoch=0):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 2)), epochs=len(losses), initial_epoch=initial_epoch,
                        verbose=0, callbacks=[_Losses(losses), callback])
    return initial_epoch + len(history.epoch)


def test_the_callback_stops_fit_where_the_rule_says_and_resumes_with_its_state():
    rule = Rule(patience=3, min_delta=0.01)
    losses = [1.0, 0.8, 0.6, 0.599, 0.598, 0.597, 0.596, 0.595, 0.594, 0.5]
    callback = ConvergenceStopping(rule, "val_loss")
    assert _fit(losses, callback) == 6 and callback.converged
    # Killed after epoch 4, resumed: it must still stop after epoch 6, not restart its patience.
    resumed = ConvergenceStopping(rule, "val_loss", history=losses[:4])
    assert _fit(losses, resumed, initial_epoch=4) == 6 and resumed.converged
    # Without the history its patience would start again at epoch 5: it would stop two epochs late.
    fresh = ConvergenceStopping(rule, "val_loss")
    assert _fit(losses, fresh, initial_epoch=4) == 8


def test_the_callback_runs_to_the_cap_when_the_loss_keeps_falling():
    callback = ConvergenceStopping(Rule(patience=2, min_delta=0.01), "val_loss")
    assert _fit([0.9**k for k in range(8)], callback) == 8 and not callback.converged
