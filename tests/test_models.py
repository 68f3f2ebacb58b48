import keras
import numpy as np
import pytest

from keras_dae.models import ARCHITECTURES, build_model, describe_model

ARCHS = list(ARCHITECTURES)
NUM_BINS, HIDDEN = 24, 16


def _relu(x):
    return np.maximum(x, 0.0)


def _reference(arch, weights, x):
    """The formulas of docs/paper.md in NumPy, from the model's own weights."""
    named = {weight.name: np.asarray(weight, np.float64) for weight in weights}
    num_layers = 3 if arch == "deep-dae" else 1
    hidden = x.astype(np.float64)
    for index in range(num_layers):
        hidden = _relu(hidden @ named[f"encoder_kernel_{index}"] + named[f"encoder_bias_{index}"])
    decoded = _relu(hidden @ named["decoder_kernel"] + named["decoder_bias"])
    return x * decoded if arch == "sf" else decoded


def _randomize(model, seed=0):
    """Non-zero random weights and biases, so a dropped bias changes the output."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()])


def _frames(seed=1, batch=32):
    return np.abs(np.random.default_rng(seed).standard_normal((batch, NUM_BINS))).astype(np.float32)


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_and_names(arch):
    model = build_model(arch, NUM_BINS, hidden_size=HIDDEN)
    assert model.input_shape == (None, NUM_BINS)
    assert model.output_shape == (None, NUM_BINS)
    assert model(_frames()).shape == (32, NUM_BINS)
    assert model.name == arch.replace("-", "_")
    assert model.output_names == ["vocals"]


@pytest.mark.parametrize("arch", ARCHS)
def test_output_equals_numpy_formula(arch):
    model = build_model(arch, NUM_BINS, hidden_size=HIDDEN)
    _randomize(model)
    x = _frames()
    expected = _reference(arch, model.weights, x)
    assert np.count_nonzero(expected) > expected.size // 4  # the ReLUs leave real signal
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_keras_file_round_trip(arch, tmp_path):
    model = build_model(arch, NUM_BINS, hidden_size=HIDDEN)
    _randomize(model, seed=2)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _frames(seed=3)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    assert describe_model(loaded) == describe_model(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_get_config_round_trip(arch):
    model = build_model(arch, NUM_BINS, hidden_size=HIDDEN)
    _randomize(model, seed=4)
    clone = keras.Model.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = _frames(seed=5)
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(model(x)))


def test_sf_is_exactly_input_times_mask():
    model = build_model("sf", NUM_BINS, hidden_size=HIDDEN)
    _randomize(model, seed=6)
    x = _frames(seed=7)
    x[:, ::4] = 0.0
    x[3] = 0.0
    y = np.asarray(model(x))
    assert np.all(y[:, ::4] == 0.0) and np.all(y[3] == 0.0)
    layer = model.get_layer("skip_filter")
    weights = {w.name: np.asarray(w) for w in layer.weights}
    mask = _relu(_relu(x @ weights["encoder_kernel_0"] + weights["encoder_bias_0"]) @ weights["decoder_kernel"] + weights["decoder_bias"])
    np.testing.assert_allclose(y, x * mask, rtol=1e-5, atol=1e-6)


def test_initialisation_per_arch():
    sf = build_model("sf", NUM_BINS)
    dae = build_model("dae", NUM_BINS)
    sf_biases = [np.asarray(w) for w in sf.weights if "bias" in w.name]
    assert all(not np.any(bias) for bias in sf_biases)
    dae_biases = [np.asarray(w) for w in dae.weights if "bias" in w.name]
    assert all(np.std(bias) > 0 for bias in dae_biases)


def test_sizes_and_parameter_counts():
    n, h = 64, 32
    dae = describe_model(build_model("dae", n, hidden_size=h))
    assert dae == {"arch": "dae", "num_bins": n, "hidden_size": h, "num_params": 2 * n * h + h + n}
    deep = describe_model(build_model("deep-dae", n, hidden_size=h))
    assert deep["num_params"] == n * h + 2 * h * h + 3 * h + h * n + n
    sf = describe_model(build_model("sf", n))
    assert sf["hidden_size"] == n and sf["num_params"] == 2 * n * n + 2 * n
    assert len([w for w in build_model("deep-dae", n).weights if "encoder_kernel" in w.name]) == 3


def test_unknown_arch_lists_valid_ones():
    with pytest.raises(ValueError, match="Unknown arch 'unet'; valid ones are dae, deep-dae, sf"):
        build_model("unet", 16)


@pytest.mark.parametrize("kwargs", [{"num_bins": 0}, {"num_bins": -4}, {"num_bins": 16, "hidden_size": 0}])
def test_non_positive_sizes(kwargs):
    with pytest.raises(ValueError, match="positive integer"):
        build_model("sf", **kwargs)


def test_describe_rejects_other_models():
    inputs = keras.Input((8,))
    other = keras.Model(inputs, keras.layers.Dense(8)(inputs))
    with pytest.raises(ValueError, match="not a keras-dae model"):
        describe_model(other)
