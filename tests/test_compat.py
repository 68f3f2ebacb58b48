"""The private Keras, TensorFlow and tensorflow-io APIs behind `keras_dae.compat` still behave as it relies on.

One test (or two) per private API: that it exists with the signature
`compat.py` calls it with, and a small behavioural check where it is cheap.
A failure names the API and the installed versions: the upgrade changed
something keras-dae depends on, so adapt `keras_dae/compat.py` (and only
then widen setup.cfg's pins). Runs on the main stack and, in `make test-tfio`,
on the `tfio` extra's TensorFlow 2.16 stack.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dae import compat

INSTALLED = f"Keras {keras.__version__} with TensorFlow {tf.__version__}"


def changed(api, what):
    return (
        f"{api} changed in the installed {INSTALLED}: {what}. keras_dae/compat.py relies on it "
        f"(checked on {compat.CHECKED}); adapt compat.py before widening setup.cfg's pins."
    )


def parameters(owner, name, api):
    """The parameter names of `owner.name`, or a failure naming `api`."""
    function = getattr(owner, name, None)
    if function is None:
        pytest.fail(changed(api, f"`{owner.__name__}.{name}` no longer exists"), pytrace=False)
    return list(inspect.signature(function).parameters)


def expect(condition, api, what):
    if not condition:
        pytest.fail(changed(api, what), pytrace=False)


def small_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    return model


def small_data():
    rng = np.random.default_rng(0)
    x = rng.random((8, 4), dtype="float32")
    return x, 0.5 * x


# --------------------------------------------------------------------------- optimizers

CLIP = "keras BaseOptimizer._clip_gradients(self, grads) (compat.ClipGradientsHook)"


def test_clip_gradients_signature():
    found = parameters(keras.optimizers.Adam, "_clip_gradients", CLIP)
    expect(found == ["self", "grads"], CLIP, f"its parameters are {found}, not ['self', 'grads']")


def test_clip_gradients_hook_is_what_apply_calls():
    calls = []

    class Zeroing(compat.ClipGradientsHook, keras.optimizers.SGD):
        def clip_gradients(self, grads):
            calls.append(len(grads))
            return [keras.ops.zeros_like(g) for g in grads]

    variable = keras.Variable(np.ones(3, "float32"))
    Zeroing(learning_rate=1.0).apply_gradients([(keras.ops.ones(3), variable)])
    expect(calls == [1], CLIP, f"`apply_gradients` called the hook {len(calls)} times, not once")
    expect(np.array_equal(variable.numpy(), np.ones(3)), CLIP,
           "`apply_gradients` did not update with the gradients the hook returned")


def test_keras_clip_gradients_is_keras_clipping():
    class Hooked(compat.ClipGradientsHook, keras.optimizers.Adam):
        pass

    clipped = Hooked(global_clipnorm=1.0).keras_clip_gradients([keras.ops.convert_to_tensor([3.0, 4.0]), None])
    expect(clipped[1] is None, CLIP, "a `None` gradient did not stay `None`")
    expect(np.allclose(keras.ops.convert_to_numpy(clipped[0]), [0.6, 0.8]), CLIP,
           f"global_clipnorm=1 clipped [3, 4] to {keras.ops.convert_to_numpy(clipped[0])}, not [0.6, 0.8]")


def test_hook_names_are_not_keras_own():
    for name in ("clip_gradients", "keras_clip_gradients"):
        expect(not hasattr(keras.optimizers.Adam, name), f"keras Optimizer.{name}",
               f"Keras now defines `{name}` itself, which compat.ClipGradientsHook would shadow")


SLOTS = "keras Adam._momentums / Adam._velocities / BaseOptimizer._get_variable_index (compat.adam_slots)"


def test_get_variable_index_signature():
    found = parameters(keras.optimizers.Adam, "_get_variable_index", SLOTS)
    expect(found == ["self", "variable"], SLOTS, f"its parameters are {found}, not ['self', 'variable']")


def test_adam_slots_are_each_variables_moments():
    variables = [keras.Variable(np.zeros((2, 3), "float32")), keras.Variable(np.zeros(4, "float32"))]
    gradients = [np.full((2, 3), 2.0, "float32"), np.arange(4, dtype="float32")]
    optimizer = keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.999)
    optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gradients], variables))
    for variable, gradient in zip(variables, gradients):
        try:
            momentum, velocity = compat.adam_slots(optimizer, variable)
        except (AttributeError, KeyError, IndexError, TypeError) as error:
            pytest.fail(changed(SLOTS, f"{type(error).__name__}: {error}"), pytrace=False)
        # From zero slots, one step: m = (1 - beta_1) g, v = (1 - beta_2) g^2.
        expect(np.allclose(momentum.numpy(), 0.1 * gradient), SLOTS,
               f"the first slot of a {variable.shape} variable is not its first moment")
        expect(np.allclose(velocity.numpy(), 0.001 * gradient**2), SLOTS,
               f"the second slot of a {variable.shape} variable is not its second moment")


HANDLE = "keras TensorFlow-backend Variable.handle (compat.resource_handle)"


def test_resource_handle_is_the_variables_resource():
    variable = keras.Variable(np.zeros(3, "float32"))
    try:
        handle = compat.resource_handle(variable)
    except AttributeError as error:
        pytest.fail(changed(HANDLE, str(error)), pytrace=False)
    expect(handle.dtype == tf.resource, HANDLE, f"it is a {handle.dtype} tensor, not a resource")
    tf.raw_ops.AssignAddVariableOp(resource=handle, value=tf.ones(3))
    expect(np.array_equal(variable.numpy(), np.ones(3)), HANDLE,
           "a kernel writing through the handle did not change the variable")


# --------------------------------------------------------------------------- the trainer

BUILD = "keras Trainer._symbolic_build(iterator=None, data_batch=None) (compat.symbolic_build)"
MAYBE_BUILD = ("keras TensorFlowTrainer._maybe_symbolic_build(iterator=None, data_batch=None) "
               "(compat.replace_symbolic_build)")
STEPS = "keras TensorFlowTrainer using the instance's train_step/test_step (compat.wrap_step_functions)"
REDUCE = ("keras reduce_per_replica's multi-worker strategy.reduce('MEAN', v, axis=0) "
          "(distribute.prepare_multiworker, compat.wrap_step_functions)")


def test_symbolic_build_signature():
    found = parameters(keras.Model, "_symbolic_build", BUILD)
    expect(found == ["self", "iterator", "data_batch"], BUILD,
           f"its parameters are {found}, not ['self', 'iterator', 'data_batch']")


def test_symbolic_build_builds_the_optimizer():
    model = small_model()
    expect(not model.optimizer.built, BUILD, "the optimizer was built by `compile` already")
    compat.symbolic_build(model, small_data())
    expect(model.optimizer.built, BUILD, "it did not build the optimizer")
    momentum, _ = compat.adam_slots(model.optimizer, model.trainable_variables[0])
    expect(tuple(momentum.shape) == tuple(model.trainable_variables[0].shape), BUILD,
           "the optimizer's slots were not made for the model's variables")


def test_maybe_symbolic_build_signature():
    found = parameters(keras.Model, "_maybe_symbolic_build", MAYBE_BUILD)
    expect(found == ["self", "iterator", "data_batch"], MAYBE_BUILD,
           f"its parameters are {found}, not ['self', 'iterator', 'data_batch']")


def test_replaced_symbolic_build_is_what_fit_and_evaluate_call():
    model = small_model()
    calls = []

    def build(iterator=None, data_batch=None):
        calls.append("iterator" if iterator is not None else "data_batch")
        compat.symbolic_build(model, small_data())

    compat.replace_symbolic_build(model, build)
    x, y = small_data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    expect(len(calls) == 1, MAYBE_BUILD, f"`fit` called the replacement {len(calls)} times, not once")
    model.evaluate(x, y, batch_size=4, verbose=0)
    expect(len(calls) == 2, MAYBE_BUILD, "`evaluate` did not call the replacement")


def test_wrapped_steps_are_what_fit_and_evaluate_run():
    model = small_model()

    def wrap(step):
        def wrapped(data):
            return {**step(data), "wrapped": tf.constant(1.0)}

        return wrapped

    compat.wrap_step_functions(model, wrap)
    x, y = small_data()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    expect("wrapped" in history.history, STEPS, f"`fit` logged {sorted(history.history)}, not the wrapped step's")
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    expect("wrapped" in logs, STEPS, f"`evaluate` returned {sorted(logs)}, not the wrapped step's")


def test_multiworker_logs_are_averaged_over_axis_0():
    """The reduction `prepare_multiworker`'s 1-element-vector logs work around (tensorflow/tensorflow#72388).

    Only a multi-worker run shows it (`tests/test_distribute.py` runs two
    workers); this reads the source, so that a change fails here first.
    """
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError as error:
        pytest.fail(changed(REDUCE, f"keras.src.backend.tensorflow.trainer: {error}"), pytrace=False)
    source = inspect.getsource(getattr(trainer, "reduce_per_replica", lambda: None))
    expect('strategy.reduce("MEAN", v, axis=0)' in source, REDUCE,
           "reduce_per_replica no longer averages the steps' values with axis=0 (fixed upstream?); "
           "re-check whether prepare_multiworker's vector logs are still needed and still right")


# --------------------------------------------------------------------------- tensorflow-io

TFIO = "tensorflow_io.python.ops.core_ops io_audio_readable_* (compat.tfio_core_ops)"


def test_tfio_core_ops():
    """Where tensorflow-io works (the `tfio` extra's TensorFlow 2.16): its audio ops, as `readers.py` calls them."""
    pytest.importorskip("tensorflow_io")
    from keras_dae.data import readers

    problem = readers.tfio_problem()
    if problem is not None and not tf.__version__.startswith("2.16."):
        pytest.skip(f"tensorflow-io does not work with TensorFlow {tf.__version__}: {problem}")
    expect(problem is None, TFIO, f"readers' test read failed: {problem}")
    core_ops = compat.tfio_core_ops()
    expected = {
        "io_audio_readable_init": ["input"],
        "io_audio_readable_spec": ["input"],
        "io_audio_readable_read": ["input", "start", "stop", "dtype"],
    }
    for name, leading in expected.items():
        found = parameters(core_ops, name, TFIO) if hasattr(core_ops, name) else None
        expect(found is not None and found[: len(leading)] == leading, TFIO,
               f"`{name}` has parameters {found}, not {leading}...")
