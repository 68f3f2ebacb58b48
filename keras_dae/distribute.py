"""`tf.distribute` for training: strategies by name, the chief, per-worker state.

    default      one device (TensorFlow's default strategy)
    mirrored     `MirroredStrategy` over all local GPUs, or all logical CPU
                 devices when there is no GPU
    multiworker  `MultiWorkerMirroredStrategy`, the cluster from `TF_CONFIG`

The training data is sharded per input pipeline (`distributed_dataset`);
only the chief writes the run directory, each worker keeps its own backup.
"""

import json
import os

import numpy as np
import tensorflow as tf

from keras_dae import compat, runs

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name):
    """The `tf.distribute` strategy called `name`.

    `mirrored` replicates over all local GPUs, or over all logical CPU devices
    when there is no GPU; `multiworker` reads the cluster from `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        read_tf_config()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, TypeError, KeyError, tf.errors.OpError) as error:
            detail = str(getattr(error, "message", "") or error).strip().splitlines()
            raise ValueError(f"cannot set up the cluster that the TF_CONFIG environment variable describes "
                             f"({(detail[0] if detail else type(error).__name__)[:200]}).") from None
    raise ValueError(f"Unknown strategy {name!r}; valid ones are {', '.join(STRATEGIES)}.")


_TF_CONFIG_FORM = ('{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}; '
                   "see the README's multi-worker section")


def read_tf_config():
    """The cluster and task of the `TF_CONFIG` environment variable, checked: a dict.

    Raises:
        ValueError: naming TF_CONFIG, when it is unset, not JSON, or not of
            the form `{"cluster": {JOB: [ADDRESS, ...]}, "task": {"type":
            JOB, "index": I}}` with task I of that job in the cluster.
    """
    text = os.environ.get("TF_CONFIG")
    if not text or not text.strip():
        raise ValueError(
            "`strategy='multiworker'` needs the cluster in the TF_CONFIG environment variable "
            "(see the README's multi-worker section)."
        )
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"the TF_CONFIG environment variable is not valid JSON ({error}); it should read "
                         f"{_TF_CONFIG_FORM}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise ValueError(f"the TF_CONFIG environment variable needs a \"cluster\" and a \"task\": it should read "
                         f"{_TF_CONFIG_FORM}.")
    for job, addresses in cluster.items():
        listed = list(addresses.values()) if isinstance(addresses, dict) else addresses
        if not isinstance(listed, list) or not all(isinstance(address, str) for address in listed):
            raise ValueError(f"job {job!r} of the TF_CONFIG environment variable's cluster must list "
                             f"\"host:port\" addresses; it should read {_TF_CONFIG_FORM}.")
    job, index = task.get("type"), task.get("index")
    if job not in cluster or isinstance(index, bool) or not isinstance(index, int) or \
            not 0 <= index < len(cluster[job]):
        raise ValueError(f"the task of the TF_CONFIG environment variable ({json.dumps(task)}) is not in its cluster "
                         f"(jobs {', '.join(f'{name} x{len(tasks)}' for name, tasks in cluster.items())}).")
    return config


def cluster_workers(strategy):
    """How many workers (chief included) the strategy's cluster has; 1 without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(sum(len(spec.get(job) or ()) for job in ("chief", "worker")), 1)


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def prepare_multiworker(model, strategy, num_bins):
    """Lets Keras 3's `fit` and `evaluate` run `model` under `MultiWorkerMirroredStrategy`.

    Keras 3's TensorFlow trainer (3.15 here) fails twice with several workers
    (keras-team/keras#20585, tensorflow/tensorflow#72388):

    1. It builds a model created in a strategy's scope from the first batch,
       which it first averages with `strategy.reduce`; that reduce fails on
       an `(x, y)` tuple ("Attempt to convert a value (PerReplica ...) to a
       Tensor"). Here the model is built from zero frames of the known shape
       instead, in the scope: the same state (the optimizer's slots among it).
    2. It averages every step's logs over the workers with
       `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar loss
       ("Invalid reduction dimension 0 for input with 0 dimensions"). Here
       the train and test steps return their logs as 1-element vectors,
       whose mean over axis 0 and the workers is the scalar Keras expects.

    Both go through Keras internals, in `keras_dae.compat` (`symbolic_build`,
    `replace_symbolic_build`, `wrap_step_functions`).
    """
    frames = np.zeros((1, num_bins), np.float32)

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            compat.symbolic_build(model, (frames, frames))

    def as_vectors(step):
        def vector_step(data):
            return {name: tf.reshape(value, [-1]) for name, value in step(data).items()}

        return vector_step

    build()
    compat.replace_symbolic_build(model, build)
    # Keras averages the logs over workers (problem 2) only when there are several; with one worker
    # (a TF_CONFIG cluster of one) the vectors would reach the callbacks (TensorBoard: "Expected scalar shape").
    if cluster_workers(strategy) > 1:
        compat.wrap_step_functions(model, as_vectors)


def worker_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def backup_dir(run_dir, chief, worker):
    """Where this worker's `BackupAndRestore` keeps its state.

    The chief's is `RUN/backup`; worker 1's is `RUN/backup-worker-1`, beside
    it rather than inside: every `BackupAndRestore` deletes its directory
    when `fit` ends, and where the workers share `RUN` the chief's would
    delete the others' while they may still be writing them.
    """
    return run_dir / runs.BACKUP if chief else run_dir / f"{runs.BACKUP}-{worker}"


def distributed_dataset(strategy, dataset_fn, batch_size):
    """The training input for `strategy`: `dataset_fn(pipeline_id, num_pipelines, batch_size)`.

    Under a mirrored strategy every input pipeline (one per worker) builds
    its own shard at the per-replica batch size; otherwise the one dataset.
    """
    if isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):

        def per_pipeline(context):
            batch = context.get_per_replica_batch_size(batch_size)
            return dataset_fn(context.input_pipeline_id, context.num_input_pipelines, batch)

        return strategy.distribute_datasets_from_function(per_pipeline)
    return dataset_fn(0, 1, batch_size)
