"""`keras-dae train --strategy mirrored|multiworker` on the CPU.

Mirrored replicates over two logical CPU devices; multiworker runs two local
worker processes on 127.0.0.1 that find each other through `TF_CONFIG`. Both
run in subprocesses: logical devices and a multi-worker strategy must be set
up before TensorFlow initialises, which it has in this process.

Each subprocess runs `tests/`-side instrumentation around the real command
(`_SCRIPT`): it records the strategy, the tracks and seed of every training
input pipeline, and the weights the worker ends `fit` with.
"""

import csv
import json
import math
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_dae import runs, training
from keras_dae.losses import get_loss
from keras_dae.spectral import SpectralConfig

NUM_BINS = 32
SECONDS = 2.0
# Two of the 14 names in musdb's validation list, so that validation runs too: `musdb_root` (conftest.py),
# four tracks of SECONDS seconds, names two train tracks so.
VALID_NAMES = ("Actions - One Minute Smile", "Leaf - Summerghost")
TRAIN_NAMES = ("synthetic-002", "synthetic-003")
TIMEOUT = 300  # seconds; a hung collective fails the test instead of blocking CI
# Keras' note that evaluating a dataset of unknown length ended: expected, in _check_run.
ENDED = pytest.mark.filterwarnings("ignore:Your input ran out of data")

_SCRIPT = '''
import json
import sys

mode, report = sys.argv[1:3]
if mode == "mirrored":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
else:
    # As `keras-dae train` does: TensorFlow loads and lists devices before any strategy exists.
    from keras_dae_cli.common import import_library

    import_library()

import keras
import numpy as np

from keras_dae import training
from keras_dae_cli import main

seen = {"replicas": [], "chief": [], "pipelines": []}
make_strategy, musdb_frames, make_callbacks = training.make_strategy, training.musdb_frames, training._callbacks


def recording_strategy(name):
    strategy = make_strategy(name)
    seen["replicas"].append(strategy.num_replicas_in_sync)
    seen["chief"].append(training.is_chief(strategy))
    return strategy


def recording_frames(tracks, **kwargs):
    if kwargs.get("training"):
        seen["pipelines"].append({"tracks": [track.name for track in tracks], "seed": kwargs["seed"]})
    return musdb_frames(tracks, **kwargs)


class FinalWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        np.savez(report + ".npz", *self.model.get_weights())
        with open(report, "w") as handle:
            json.dump(seen, handle)


training.make_strategy = recording_strategy
training.musdb_frames = recording_frames
training._callbacks = lambda *args, **kwargs: make_callbacks(*args, **kwargs) + [FinalWeights()]
main(["--quiet", "train", *sys.argv[3:]])
'''


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("script") / "train_worker.py"
    path.write_text(_SCRIPT)
    return path


def _train_args(root, out, strategy):
    return [
        "--strategy", strategy, "--out", str(out), "--root", str(root), "--is-wav",
        "--num-bins", str(NUM_BINS), "--hidden-size", "16", "--batch-size", "32",
        "--epochs", "2", "--steps-per-epoch", "3", "--excerpt-seconds", str(SECONDS),
    ]


def _start(script, mode, report, args, log, env=None):
    with open(log, "w") as handle:
        return subprocess.Popen(
            [sys.executable, str(script), mode, str(report), *args],
            stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )


def _finish(processes, logs):
    """Waits for the processes; kills them all if one fails or TIMEOUT passes, and then fails with their logs."""
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(process.poll() is None for process in processes):
            if time.monotonic() > deadline or any(process.poll() for process in processes):
                break
            time.sleep(0.5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    failed = [(process.returncode, log) for process, log in zip(processes, logs) if process.returncode != 0]
    details = "\n".join(
        f"--- {log} (exit code {code}{', killed' if code == -9 else ''}):\n{log.read_text()[-4000:]}"
        for code, log in failed
    )
    assert not failed, details


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for handle in sockets:
            handle.bind(("127.0.0.1", 0))
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def _history(run_dir):
    with (run_dir / runs.HISTORY).open(newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _check_run(run_dir, root):
    """A finished 2-epoch run, written once, whose val_loss is the full validation set's loss."""
    expected = sorted([runs.CONFIG, runs.HISTORY, runs.LOGS, runs.MODEL])  # no backup left, no other worker's files
    assert sorted(path.name for path in run_dir.iterdir()) == expected
    config = json.loads((run_dir / runs.CONFIG).read_text())
    assert config["status"] == "epoch-cap" and config["epochs_completed"] == 2
    assert config["monitor"] == "val_loss"
    assert config["data"]["valid_tracks"] == sorted(VALID_NAMES)
    history = _history(run_dir)
    assert [row["epoch"] for row in history] == [0, 1]
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["val_loss"]) for row in history)
    # The best model's val_loss, computed under the strategy over the sharded
    # validation set (validation_steps=None), is its loss over the whole set.
    model = keras.saving.load_model(run_dir / runs.MODEL)
    model.compile(loss=get_loss("kl"))
    data = training.make_data(training.Settings(excerpt_seconds=SECONDS), SpectralConfig(num_bins=NUM_BINS),
                              root=root, is_wav=True)
    best = min(row["val_loss"] for row in history)
    np.testing.assert_allclose(model.evaluate(data.validation, verbose=0), best, rtol=1e-5)
    return history, model


@pytest.mark.slow
@ENDED
def test_mirrored_over_two_logical_cpus(musdb_root, script, tmp_path):
    run_dir, report = tmp_path / "run", tmp_path / "report.json"
    process = _start(script, "mirrored", report, _train_args(musdb_root, run_dir, "mirrored"), tmp_path / "log")
    _finish([process], [tmp_path / "log"])
    seen = json.loads(report.read_text())
    assert seen["replicas"] == [2] and seen["chief"] == [True]
    # One input pipeline on one machine: all training tracks, split between the replicas by batch.
    assert seen["pipelines"] == [{"tracks": list(TRAIN_NAMES), "seed": 0}]
    _, model = _check_run(run_dir, musdb_root)
    assert model.count_params() == 2 * NUM_BINS * 16 + 16 + NUM_BINS


@pytest.mark.slow
@ENDED
def test_multiworker_two_local_workers(musdb_root, script, tmp_path):
    run_dir = tmp_path / "run"  # one run directory, as on a file system the workers share
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes, logs, reports = [], [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        reports.append(tmp_path / f"worker-{index}.json")
        logs.append(tmp_path / f"worker-{index}.log")
        processes.append(_start(script, "multiworker", reports[-1], _train_args(musdb_root, run_dir, "multiworker"),
                                logs[-1], env={"TF_CONFIG": json.dumps(tf_config)}))
    _finish(processes, logs)

    seen = [json.loads(report.read_text()) for report in reports]
    assert [worker["replicas"] for worker in seen] == [[2], [2]]
    assert [worker["chief"] for worker in seen] == [[True], [False]]
    # One input pipeline per worker, each with its own track and seed.
    pipelines = [pipeline for worker in seen for pipeline in worker["pipelines"]]
    assert [len(worker["pipelines"]) for worker in seen] == [1, 1]
    assert [pipeline["tracks"] for pipeline in pipelines] == [[TRAIN_NAMES[0]], [TRAIN_NAMES[1]]]
    assert pipelines[0]["seed"] != pipelines[1]["seed"]

    final = [np.load(f"{report}.npz") for report in reports]
    assert len(final[0].files) == 4
    for name in final[0].files:
        np.testing.assert_array_equal(final[0][name], final[1][name])
    # Only the chief wrote the run directory (one history row per epoch, no
    # backups left); its model is the workers' model when the last epoch was the best.
    history, model = _check_run(run_dir, musdb_root)
    if history[-1]["val_loss"] == min(row["val_loss"] for row in history):
        for saved, name in zip(model.get_weights(), final[0].files):
            np.testing.assert_array_equal(saved, final[0][name])


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        training.make_strategy("multiworker")


@pytest.mark.parametrize("strategy", ["mirrored", "multiworker"])
def test_distributed_steps_per_execution_is_one(strategy, tmp_path):
    # Keras 3's multi-step loop fails under tf.distribute; refused before any strategy exists.
    with pytest.raises(ValueError, match="steps_per_execution > 1 works only with the default strategy"):
        training.train("sf", tmp_path / "run", strategy=strategy, steps_per_execution=2)
    assert not (tmp_path / "run").exists()
