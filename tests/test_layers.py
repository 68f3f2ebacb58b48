import math

import keras
import numpy as np
import pytest

from keras_dae.layers import SkipFilter


def test_output_shape_for_frames_and_sequences():
    layer = SkipFilter(hidden_size=8)
    assert layer(np.ones((4, 16), np.float32)).shape == (4, 16)
    # Dense maths on the last axis: (batch, frames, bins) works too.
    assert layer(np.ones((2, 5, 16), np.float32)).shape == (2, 5, 16)
    assert layer.compute_output_shape((None, 16)) == (None, 16)


def test_weights_are_named_and_shaped():
    layer = SkipFilter(hidden_size=8, num_encoder_layers=3)
    layer.build((None, 16))
    shapes = {weight.name: tuple(weight.shape) for weight in layer.weights}
    assert shapes == {
        "encoder_kernel_0": (16, 8),
        "encoder_bias_0": (8,),
        "encoder_kernel_1": (8, 8),
        "encoder_bias_1": (8,),
        "encoder_kernel_2": (8, 8),
        "encoder_bias_2": (8,),
        "decoder_kernel": (8, 16),
        "decoder_bias": (16,),
    }


def test_hidden_size_defaults_to_input_bins():
    layer = SkipFilter()
    layer.build((None, 12))
    assert tuple(layer.decoder_kernel.shape) == (12, 12)


def test_equally_shaped_weights_start_different():
    # One unseeded initializer instance reused would give identical kernels.
    layer = SkipFilter(num_encoder_layers=3)
    layer.build((None, 32))
    kernels = [np.asarray(kernel) for kernel in layer.encoder_kernels] + [np.asarray(layer.decoder_kernel)]
    for first in range(len(kernels)):
        for second in range(first + 1, len(kernels)):
            assert not np.allclose(kernels[first], kernels[second])


def test_default_bias_is_pytorch_fan_in_uniform():
    layer = SkipFilter(hidden_size=50)
    layer.build((None, 400))
    bias = np.asarray(layer.encoder_biases[0])
    assert np.all(np.abs(bias) <= 1 / math.sqrt(400)) and np.std(bias) > 0
    decoder_bias = np.asarray(layer.decoder_bias)
    assert np.all(np.abs(decoder_bias) <= 1 / math.sqrt(50)) and np.abs(decoder_bias).max() > 1 / math.sqrt(400)
    zero = SkipFilter(bias_initializer="zeros")
    zero.build((None, 10))
    assert not np.any(np.asarray(zero.decoder_bias))


def test_kernels_are_glorot_normal():
    layer = SkipFilter(hidden_size=300)
    layer.build((None, 500))
    kernel = np.asarray(layer.encoder_kernels[0])
    # Keras' glorot_normal: truncated normal with stddev sqrt(2 / (fan_in + fan_out)).
    assert np.std(kernel) == pytest.approx(math.sqrt(2 / 800), rel=0.1)


def test_skip_output_is_input_times_mask():
    layer = SkipFilter(hidden_size=6, skip=True)
    x = np.abs(np.random.default_rng(0).standard_normal((5, 10))).astype(np.float32)
    x[:, ::3] = 0.0
    y = np.asarray(layer(x))
    assert np.all(y[:, ::3] == 0.0)
    no_skip = SkipFilter(hidden_size=6, skip=False)
    no_skip.build((None, 10))
    no_skip.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, x * np.asarray(no_skip(x)), rtol=1e-6)


def test_config_round_trip():
    layer = SkipFilter(hidden_size=7, num_encoder_layers=2, skip=False, bias_initializer="zeros", name="block")
    config = layer.get_config()
    clone = SkipFilter.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(1).random((3, 9)).astype(np.float32)
    layer(x)
    clone.build((None, 9))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))
    # Registered for serialization under the package name.
    assert keras.saving.get_registered_name(SkipFilter) == "keras_dae>SkipFilter"
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, SkipFilter) and restored.num_encoder_layers == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": -3}, "hidden_size"),
        ({"hidden_size": 2.5}, "hidden_size"),
        ({"num_encoder_layers": 0}, "num_encoder_layers"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SkipFilter(**kwargs)


def test_unknown_last_dimension_is_an_error():
    with pytest.raises(ValueError, match="known last"):
        SkipFilter().build((None, None))
