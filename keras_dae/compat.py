"""Every private Keras, TensorFlow and tensorflow-io API keras-dae uses, in one place.

keras-dae needs a few things the libraries offer no public way to do:

- `FusedAdam` (`keras_dae/optimizers.py`) replaces Keras' gradient clipping
  and reads Adam's slot variables to hand them to TensorFlow's fused kernel;
- `distribute.prepare_multiworker` works around two bugs of Keras 3's
  TensorFlow trainer under `MultiWorkerMirroredStrategy`;
- `data/readers.py` calls tensorflow-io's audio ops directly, in the graph.

Each of those goes through a small function or class here, whose docstring
says which private API it relies on and why. `tests/test_compat.py` checks
every one of them against the installed versions (signature, and a small
behavioural check where it is cheap) and fails naming the API and the
versions, so a Keras or TensorFlow upgrade that changes one fails there, not
somewhere deep in training. setup.cfg pins Keras and TensorFlow to the
versions these were checked on; widening a pin means running
`tests/test_compat.py` on the new version first.

Checked on (`CHECKED`): Keras 3.15.1 with TensorFlow 2.21.0 (the main
stack) and with TensorFlow 2.16.2 (the `tfio` extra's stack, with
tensorflow-io 0.37.1).
"""

CHECKED = "Keras 3.15.1 with TensorFlow 2.21.0 and 2.16.2 (tensorflow-io 0.37.1 on 2.16.2)"


# --------------------------------------------------------------------------- optimizers


class ClipGradientsHook:
    """Mixin for a `keras.optimizers.Optimizer` subclass: its gradient clipping by `clip_gradients`.

    Put it before the Keras optimizer class (`class MyAdam(ClipGradientsHook,
    keras.optimizers.Adam)`) and override `clip_gradients(grads)`; call
    `keras_clip_gradients(grads)` for Keras' own clipping.

    Private API: `BaseOptimizer._clip_gradients(self, grads)`. Keras' `apply`
    (`_backend_apply_gradients`) calls it once per step with the list of
    gradients (`None` for a variable without one), before weight decay and
    `update_step`, and updates with the list it returns. It is the only place
    to change how `clipnorm` / `global_clipnorm` / `clipvalue` are applied;
    Keras has no public hook there. Checked on `CHECKED`.
    """

    def _clip_gradients(self, grads):  # Keras' private hook
        return self.clip_gradients(grads)

    def clip_gradients(self, grads):
        """The gradients `update_step` gets; by default Keras' clipping. Override it."""
        return self.keras_clip_gradients(grads)

    def keras_clip_gradients(self, grads):
        """Keras' own clipping (`clipnorm`, `global_clipnorm` or `clipvalue`) of `grads`."""
        return super()._clip_gradients(grads)


def adam_slots(optimizer, variable):
    """`(momentum, velocity)`: the slot variables a built `keras.optimizers.Adam` keeps for `variable`.

    Private API: `BaseOptimizer._get_variable_index(variable)` (the
    variable's position among the trainable variables the optimizer was
    built with) and `Adam._momentums` / `Adam._velocities` (the slot lists
    `Adam.build` makes, in that order). Keras' own `Adam.update_step` reads
    them the same way; there is no public accessor (`optimizer.variables`
    is a flat list whose order is an implementation detail too). Checked on
    `CHECKED`.
    """
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def resource_handle(variable):
    """The TensorFlow resource tensor of a Keras variable (TensorFlow backend), for `tf.raw_ops` kernels.

    Relies on the `handle` property of the TensorFlow backend's `Variable`
    (`keras/src/backend/tensorflow/core.py`: the wrapped `tf.Variable`'s
    handle), which is not part of Keras' documented API. Checked on
    `CHECKED`.
    """
    return variable.handle


# --------------------------------------------------------------------------- the trainer


def symbolic_build(model, data_batch):
    """Builds `model`'s state for training from a batch's shapes, without running a step.

    Creates what the first `fit` step would: unbuilt layers, the compiled
    loss and metrics, and the optimizer's variables (Adam's slots), from
    symbolic tensors shaped like `data_batch` (`(x, y)`, arrays or tensors).
    Call it in the strategy's scope for distributed variables.

    Private API: `Trainer._symbolic_build(iterator=None, data_batch=None)`,
    which `fit` and `evaluate` use themselves (through `_maybe_symbolic_build`);
    Keras has no public way to build the optimizer and compiled metrics
    before the first step. Checked on `CHECKED`.
    """
    model._symbolic_build(data_batch=data_batch)


def replace_symbolic_build(model, build):
    """Makes this model's `fit`, `evaluate`, `train_on_batch` and `test_on_batch` call `build` to build.

    `build(iterator=None, data_batch=None)` replaces Keras' own first-batch
    build for this model only.

    Private API: `TensorFlowTrainer._maybe_symbolic_build(iterator=None,
    data_batch=None)`, which those methods call (with keyword arguments)
    before their first step; replaced as an attribute of the instance. Under
    a strategy Keras' version averages the first batch with
    `strategy.reduce`, which fails with several workers
    (keras-team/keras#20585). Checked on `CHECKED`.
    """
    model._maybe_symbolic_build = build


def wrap_step_functions(model, wrap):
    """Replaces this model's `train_step` and `test_step` by `wrap(step)` (call before the first `fit`).

    `train_step` and `test_step` are public, meant to be overridden in a
    subclass; replacing them on an instance relies on Keras' TensorFlow
    trainer reading `self.train_step` / `self.test_step` when it first makes
    its train and test functions (`make_train_function`), which it then keeps.

    Private behaviour `distribute.prepare_multiworker` relies on besides:
    under a multi-worker collective strategy Keras' `reduce_per_replica`
    (`keras/src/backend/tensorflow/trainer.py`) averages every value a step
    returns with `strategy.reduce("MEAN", value, axis=0)`, which fails on a
    scalar (tensorflow/tensorflow#72388), so the wrapped steps return
    1-element vectors. Checked on `CHECKED`.
    """
    model.train_step = wrap(model.train_step)
    model.test_step = wrap(model.test_step)


# --------------------------------------------------------------------------- tensorflow-io


def tfio_core_ops():
    """tensorflow-io's op wrappers: `io_audio_readable_init`, `io_audio_readable_spec`, `io_audio_readable_read`.

    Private API: the module `tensorflow_io.python.ops.core_ops` (the ops
    behind `tfio.audio.AudioIOTensor`). Called directly they run in the graph
    on a file name and sample offsets that are tensors, inside a
    `tf.data.Dataset.map`, and read only the requested slice; the public
    `AudioIOTensor` is a Python object made per file. Imports tensorflow-io
    (raises `ImportError` without it). Checked on tensorflow-io 0.37.1 with
    TensorFlow 2.16.2, its only working stack (the `tfio` extra).
    """
    from tensorflow_io.python.ops import core_ops

    return core_ops
