"""`FusedAdam` makes Keras Adam's updates, saves and loads like it, and works under MirroredStrategy."""

import json
import sys

import keras
import numpy as np
import pytest

from keras_dae.models import build_model
from keras_dae.optimizers import FusedAdam

NUM_BINS = 24


def _apply(optimizer_class, start, gradients, **kwargs):
    variables = [keras.Variable(w) for w in start]
    optimizer = optimizer_class(**kwargs)
    for step in gradients:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], variables))
    return [np.asarray(v.numpy()) for v in variables], optimizer


def _gradients(shapes, steps, scale, seed=0):
    """A fixed sequence of gradients of several magnitudes (some updates epsilon-dominated)."""
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(s) * scale * 10.0 ** rng.integers(-9, 1)).astype("float32") for s in shapes]
            for _ in range(steps)]


@pytest.mark.parametrize("kwargs, scale", [
    ({"learning_rate": 1e-3}, 1.0),
    ({"learning_rate": 1e-2, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-4}, 1.0),
    ({"learning_rate": 1e-3, "global_clipnorm": 0.5}, 100.0),  # clipping acts
    ({"learning_rate": 1e-3, "global_clipnorm": 1e6}, 1.0),  # clipping does not act
])
def test_updates_equal_keras_adam(kwargs, scale):
    start = build_model("sf", NUM_BINS).get_weights()
    gradients = _gradients([w.shape for w in start], steps=6, scale=scale)
    expected, _ = _apply(keras.optimizers.Adam, start, gradients, **kwargs)
    actual, optimizer = _apply(FusedAdam, start, gradients, **kwargs)
    moved = max(float(np.abs(e - s).max()) for e, s in zip(expected, start))
    assert moved > 1e-4  # the weights did move
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-4 * moved)
    assert int(optimizer.iterations.numpy()) == 6


def test_clipping_changes_the_update():
    """The clip-norm path is really taken: with clipping the result differs from without."""
    start = build_model("dae", NUM_BINS).get_weights()
    gradients = _gradients([w.shape for w in start], steps=1, scale=1e4)
    clipped, _ = _apply(FusedAdam, start, gradients, learning_rate=1.0, epsilon=1.0, global_clipnorm=1e-3)
    plain, _ = _apply(FusedAdam, start, gradients, learning_rate=1.0, epsilon=1.0)
    assert max(float(np.abs(c - p).max()) for c, p in zip(clipped, plain)) > 1e-3


def test_non_finite_gradient_gives_nan_like_keras():
    start = [np.ones((3, 3), "float32")]
    gradients = [[np.array([[np.inf, 0, 0]] * 3, "float32")]]
    expected, _ = _apply(keras.optimizers.Adam, start, gradients, learning_rate=1e-3, global_clipnorm=1.0)
    actual, _ = _apply(FusedAdam, start, gradients, learning_rate=1e-3, global_clipnorm=1.0)
    assert np.isnan(expected[0]).all() and np.isnan(actual[0]).all()


def _fit(optimizer, seed=3):
    keras.utils.set_random_seed(seed)
    model = build_model("sf", NUM_BINS)
    model.compile(optimizer=optimizer, loss="mae")
    rng = np.random.default_rng(seed)
    x = rng.random((64, NUM_BINS), dtype="float32")
    model.fit(x, 0.5 * x, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return model, x


def test_fit_equals_keras_adam():
    expected, _ = _fit(keras.optimizers.Adam(1e-3, global_clipnorm=0.5))
    actual, _ = _fit(FusedAdam(1e-3, global_clipnorm=0.5))
    for e, a in zip(expected.get_weights(), actual.get_weights()):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-6)


def test_saved_model_keeps_optimizer_and_resumes_identically(tmp_path):
    model, x = _fit(FusedAdam(1e-3, global_clipnorm=0.5))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is FusedAdam
    assert loaded.optimizer.global_clipnorm == 0.5
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 8
    for original, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())
    # One more epoch on each gives the same weights: the slots were restored, not reset.
    for m in (model, loaded):
        m.fit(x, 0.5 * x, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


_MIRRORED = '''
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from keras_dae.models import build_model
from keras_dae.optimizers import FusedAdam

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
x = rng.random((64, 16), dtype="float32")
weights = []
for optimizer in (keras.optimizers.Adam, FusedAdam):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = build_model("sf", 16)
        model.compile(optimizer=optimizer(1e-2, global_clipnorm=0.5), loss="mae")
    data = tf.data.Dataset.from_tensor_slices((x, 0.5 * x)).batch(16)
    model.fit(data, epochs=2, verbose=0)
    weights.append(model.get_weights())
start = build_model("sf", 16).get_weights()
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "diff": max(float(np.abs(a - b).max()) for a, b in zip(*weights)),
    "moved": max(float(np.abs(a - b).max()) for a, b in zip(weights[0], start)),
}))
'''


@pytest.mark.slow
def test_mirrored_strategy_equals_keras_adam(run_process):
    result = run_process(sys.executable, "-c", _MIRRORED)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["moved"] > 1e-3
    assert report["diff"] <= 1e-4 * report["moved"] + 1e-6
