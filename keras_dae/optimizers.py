"""`FusedAdam`: Keras' Adam with each variable's update in one TensorFlow kernel.

Keras 3 writes `Adam.update_step` in backend-neutral `keras.ops`; on
TensorFlow every variable's update then runs as about a dozen element-wise
kernels (`g - m`, `* (1 - beta_1)`, `assign_add`, `square`, ...), each a pass
over memory with its own temporary. The `sf` model at 2049 bins has 8.4 M
parameters, so the optimizer alone streams about 1 GB per step: on a 2-core
CPU that was 50-70 ms of a 130-160 ms training step, as long as the forward
and backward matrix products (`benchmarks/bench_train.py`).

TensorFlow's `ResourceApplyAdam` kernel makes the same update in one pass:

    m <- m + (g - m)(1 - beta_1)
    v <- v + (g^2 - v)(1 - beta_2)
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

which is Keras' formula (epsilon outside the square root included). Global
norm clipping likewise sums the squares with `tf.nn.l2_loss` in one pass
instead of squaring every gradient into a temporary. Results equal
`keras.optimizers.Adam`'s to float rounding (`tests/test_optimizers.py`); the
variables, config and saved files are Adam's, so checkpoints move between
the two. With another backend, or `amsgrad=True`, it is plain Keras Adam.

The Keras internals it needs (the clipping hook, Adam's slot variables, a
variable's resource handle) go through `keras_dae.compat`.
"""

import keras

from keras_dae import compat

FUSED_BACKEND = "tensorflow"


@keras.saving.register_keras_serializable(package="keras_dae")
class FusedAdam(compat.ClipGradientsHook, keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose update is TensorFlow's fused Adam kernel.

    Takes Adam's arguments. Example:

        model.compile(optimizer=FusedAdam(1e-4, global_clipnorm=0.5), loss="mae")
    """

    def _fused(self):
        return keras.backend.backend() == FUSED_BACKEND and not self.amsgrad

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused():
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        momentum, velocity = compat.adam_slots(self, variable)
        tf.raw_ops.ResourceApplyAdam(
            var=compat.resource_handle(variable),
            m=compat.resource_handle(momentum),
            v=compat.resource_handle(velocity),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )

    def clip_gradients(self, grads):
        if not (self._fused() and self.global_clipnorm and self.global_clipnorm > 0):
            return self.keras_clip_gradients(grads)
        import tensorflow as tf

        # Keras' clip_by_global_norm, with sum(g^2) from l2_loss (= sum(g^2) / 2).
        present = [g for g in grads if g is not None]
        norm = tf.sqrt(2.0 * tf.add_n([tf.cast(tf.nn.l2_loss(g), "float32") for g in present]))
        clip = tf.cast(self.global_clipnorm, norm.dtype)
        # `norm - norm` makes the scale NaN for a non-finite norm, as Keras does.
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
        return [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]
