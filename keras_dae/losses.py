"""Training losses on magnitude frames `(batch, num_bins)`.

Each loss averages over frequency bins, so one frame's loss does not grow
with `num_bins`, then Keras averages over the batch:

    kl   generalised Kullback-Leibler divergence of the target `y` from the
         estimate `y_hat`, the authors' usual training loss:
         mean_k( y_k * log((y_k + eps) / (y_hat_k + eps)) - y_k + y_hat_k )
    l1   mean_k |y_k - y_hat_k|
    l2   mean_k (y_k - y_hat_k)^2

(The reference code sums over bins; a constant factor `num_bins` that Adam's
step size does not depend on.)
"""

import keras
from keras import ops

from keras_dae.checks import one_of, positive_number

LOSSES = ("kl", "l1", "l2")


@keras.saving.register_keras_serializable(package="keras_dae")
class GeneralizedKL(keras.losses.Loss):
    """Generalised Kullback-Leibler divergence `D(y || y_hat)` of magnitude spectra.

    It is zero only where `y_hat == y`, non-negative for non-negative inputs,
    and, unlike L2, weighs errors relative to the magnitude, so quiet bins
    count. `eps` keeps the logarithm finite at silent bins.

    Args:
        epsilon: float, default 1e-8.
        name, reduction, dtype: as for `keras.losses.Loss`.
    """

    def __init__(self, epsilon=1e-8, name="generalized_kl", reduction="sum_over_batch_size", dtype=None):
        positive_number("epsilon", epsilon)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_true = ops.convert_to_tensor(y_true, self.dtype)
        y_pred = ops.cast(y_pred, y_true.dtype)
        ratio = ops.log((y_true + self.epsilon) / (y_pred + self.epsilon))
        return ops.mean(y_true * ratio - y_true + y_pred, axis=-1)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def get_loss(name):
    """The Keras loss for `kl`, `l1` or `l2`.

    Raises:
        ValueError: for another name.
    """
    one_of("loss", name, LOSSES)
    if name == "kl":
        return GeneralizedKL()
    if name == "l1":
        return keras.losses.MeanAbsoluteError(name="l1")
    if name == "l2":
        return keras.losses.MeanSquaredError(name="l2")
