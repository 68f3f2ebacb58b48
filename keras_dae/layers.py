"""The SkipFilter layer: the encode/decode/mask block of the three DAE models.

Why the whole block and not only the product `x * mask`: the paper's three
models differ in exactly two switches, the depth of the encoder and whether
the decoder's output is the estimate itself (`dae`, `deep-dae`) or a mask
applied to the input (`sf`, the skip-filtering connection). One layer with
those two switches makes that comparison explicit, gives every architecture
the same weight names (`encoder_kernel_0`, ..., `decoder_kernel`), which the
couplings analysis and the Jacobian checks read, and keeps the maths of all
three models in a single `call()` of a dozen lines.
"""

import math

import keras
from keras import ops

from keras_dae.checks import positive_int


def _clone_initializer(identifier):
    """A fresh initializer per weight.

    Reusing one unseeded Keras initializer instance gives identical values on
    every call, so equally shaped weights would start equal.
    """
    initializer = keras.initializers.get(identifier)
    return initializer.__class__.from_config(initializer.get_config())


@keras.saving.register_keras_serializable(package="keras_dae")
class SkipFilter(keras.layers.Layer):
    """Encoder, decoder and optional skip-filtering mask over magnitude frames.

    With input frames `x` of `num_bins` magnitudes it computes

        h_0 = x
        h_i = relu(h_{i-1} @ W_i + b_i)      for i = 1..num_encoder_layers
        d   = relu(h_L @ W_dec + b_dec)      (num_bins outputs)
        y   = x * d   if skip   else   d

    so with `skip=True` the decoder output `d` is a non-negative mask and the
    output is exactly zero wherever the input is.

    Args:
        hidden_size: int or None, default None. Width of every encoder layer;
            None means equal to the number of input bins.
        num_encoder_layers: int, default 1. Number of encoder layers.
        skip: bool, default True. Multiply the decoder output with the input.
        kernel_initializer: Keras initializer, default `"glorot_normal"`.
        bias_initializer: Keras initializer or None, default None. None uses
            PyTorch's `nn.Linear` default, uniform in `+-1/sqrt(fan_in)`, as
            in the authors' reference code.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor `(..., num_bins)` of magnitudes.

    Returns:
        float tensor of the same shape.

    Example:

    >>> layer = SkipFilter(hidden_size=32, skip=True)
    >>> y = layer(keras.ops.ones((4, 64)))
    """

    def __init__(
        self,
        hidden_size=None,
        num_encoder_layers=1,
        skip=True,
        kernel_initializer="glorot_normal",
        bias_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        positive_int("hidden_size", hidden_size, optional=True)
        positive_int("num_encoder_layers", num_encoder_layers)
        self.hidden_size = hidden_size
        self.num_encoder_layers = num_encoder_layers
        self.skip = bool(skip)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = (
            None if bias_initializer is None else keras.initializers.get(bias_initializer)
        )
        self.supports_masking = False

    def _bias_initializer(self, fan_in):
        if self.bias_initializer is None:
            limit = 1.0 / math.sqrt(fan_in)
            return keras.initializers.RandomUniform(-limit, limit)
        return _clone_initializer(self.bias_initializer)

    def build(self, input_shape):
        num_bins = input_shape[-1]
        if num_bins is None:
            raise ValueError(
                f"SkipFilter needs a known last (frequency) dimension. Received: input_shape={input_shape}"
            )
        hidden_size = self.hidden_size or num_bins
        self.encoder_kernels = []
        self.encoder_biases = []
        fan_in = num_bins
        for index in range(self.num_encoder_layers):
            self.encoder_kernels.append(
                self.add_weight(
                    name=f"encoder_kernel_{index}",
                    shape=(fan_in, hidden_size),
                    initializer=_clone_initializer(self.kernel_initializer),
                )
            )
            self.encoder_biases.append(
                self.add_weight(
                    name=f"encoder_bias_{index}",
                    shape=(hidden_size,),
                    initializer=self._bias_initializer(fan_in),
                )
            )
            fan_in = hidden_size
        self.decoder_kernel = self.add_weight(
            name="decoder_kernel",
            shape=(hidden_size, num_bins),
            initializer=_clone_initializer(self.kernel_initializer),
        )
        self.decoder_bias = self.add_weight(
            name="decoder_bias",
            shape=(num_bins,),
            initializer=self._bias_initializer(hidden_size),
        )

    def call(self, inputs):
        hidden = inputs
        for kernel, bias in zip(self.encoder_kernels, self.encoder_biases):
            hidden = ops.relu(ops.matmul(hidden, kernel) + bias)
        decoded = ops.relu(ops.matmul(hidden, self.decoder_kernel) + self.decoder_bias)
        if self.skip:
            return inputs * decoded
        return decoded

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_encoder_layers": self.num_encoder_layers,
            "skip": self.skip,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": (
                None
                if self.bias_initializer is None
                else keras.initializers.serialize(self.bias_initializer)
            ),
        }
