"""`CouplingsEvolution`: C every K epochs equals lstsq distillation of that checkpoint; resume keeps rows whole."""

import keras
import numpy as np
import pytest

from keras_dae import build_model
from keras_dae.couplings import distill, metrics
from keras_dae.couplings.evolution import (
    CSV,
    ROW_METRICS,
    CouplingsEvolution,
    read_rows,
    read_snapshots,
    split_frames,
)
from keras_dae.spectral import SpectralConfig

BINS = 8


def _data(seed=0, count=256):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (count, BINS)).astype(np.float32)
    return x, (0.5 * x).astype(np.float32)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = build_model("sf", BINS, hidden_size=BINS)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae")
    return model


class _Snapshot(keras.callbacks.Callback):
    """Saves the weights at the epochs the evolution callback distils."""

    def __init__(self, every):
        super().__init__()
        self.every, self.weights = every, {}

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.weights[epoch + 1] = [w.copy() for w in self.model.get_weights()]


def test_couplings_at_each_checkpoint_equal_lstsq_distillation_of_its_weights(tmp_path):
    x, y = _data()
    frames, _ = _data(seed=1, count=200)
    model = _model()
    snapshot = _Snapshot(every=2)
    evolution = CouplingsEvolution(tmp_path, frames, SpectralConfig(num_bins=BINS), every=2, steps_per_epoch=4,
                                   tensorboard=False)
    model.fit(x, y, batch_size=64, epochs=6, verbose=0, shuffle=False, callbacks=[snapshot, evolution])
    rows = read_rows(tmp_path)
    assert [row["epoch"] for row in rows] == [2, 4, 6]
    assert [row["step"] for row in rows] == [8, 16, 24]
    epochs, couplings = read_snapshots(tmp_path)
    assert epochs.tolist() == [2, 4, 6] and couplings.shape == (3, BINS, BINS)
    fit_frames, _ = split_frames(frames)
    checkpoint = _model(seed=5)
    for index, epoch in enumerate(epochs):
        checkpoint.set_weights(snapshot.weights[int(epoch)])
        expected, _ = distill(checkpoint, fit_frames, solver="lstsq")
        np.testing.assert_allclose(couplings[index], expected, rtol=1e-4, atol=1e-5)
        assert rows[index]["diagonal_energy"] == pytest.approx(metrics.diagonal_energy_ratio(expected), abs=1e-5)
    assert not np.allclose(couplings[0], couplings[-1])  # the model moved between checkpoints


def test_resume_drops_later_rows_and_a_cut_line(tmp_path):
    x, y = _data()
    frames, _ = _data(seed=1, count=100)
    spectral = SpectralConfig(num_bins=BINS)
    model = _model()
    model.fit(x, y, epochs=4, verbose=0,
              callbacks=[CouplingsEvolution(tmp_path, frames, spectral, every=1, tensorboard=False)])
    assert [row["epoch"] for row in read_rows(tmp_path)] == [1, 2, 3, 4]
    # A crash after epoch 4's row, while writing a fifth; the backup says 2 epochs were done.
    with (tmp_path / CSV).open("a") as handle:
        handle.write("5,5,lstsq,0.1")
    CouplingsEvolution(tmp_path, frames, spectral, every=1, initial_epoch=2, tensorboard=False)
    assert [row["epoch"] for row in read_rows(tmp_path)] == [1, 2]
    assert read_snapshots(tmp_path)[0].tolist() == [1, 2]
    model.fit(x, y, initial_epoch=2, epochs=5, verbose=0,
              callbacks=[CouplingsEvolution(tmp_path, frames, spectral, every=1, initial_epoch=2, tensorboard=False)])
    rows = read_rows(tmp_path)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5]
    assert set(ROW_METRICS) <= set(rows[0])
    assert read_snapshots(tmp_path)[0].tolist() == [1, 2, 3, 4, 5]


def test_final_weights_get_a_checkpoint_when_training_stops_between_checkpoints(tmp_path):
    x, y = _data()
    frames, _ = _data(seed=1, count=100)
    stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 2))
    model = _model()
    model.fit(x, y, epochs=10, verbose=0, callbacks=[
        stop, CouplingsEvolution(tmp_path, frames, SpectralConfig(num_bins=BINS), every=2, tensorboard=False)])
    assert [row["epoch"] for row in read_rows(tmp_path)] == [2, 3]


def test_tensorboard_gets_scalars_and_an_image(tmp_path):
    import tensorflow as tf

    x, y = _data()
    frames, _ = _data(seed=1, count=100)
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[
        CouplingsEvolution(tmp_path, frames, SpectralConfig(num_bins=BINS), every=1, steps_per_epoch=3)])
    tags, steps = set(), set()
    for path in (tmp_path / "logs" / "couplings").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.add(value.tag)
                steps.add(event.step)
    assert {"couplings/diagonal_energy", "couplings/band_energy_3", "couplings/C"} <= tags
    assert {3, 6} <= steps


def test_bad_arguments():
    frames = np.ones((10, BINS), np.float32)
    with pytest.raises(ValueError, match="every"):
        CouplingsEvolution("unused", frames, SpectralConfig(num_bins=BINS), every=0)
    with pytest.raises(ValueError, match="frames"):
        CouplingsEvolution("unused", frames[:1], SpectralConfig(num_bins=BINS))
