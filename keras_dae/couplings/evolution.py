"""How a model's mapping evolves while it trains: C distilled every K epochs.

`CouplingsEvolution` is a Keras callback. Every `every` epochs (and after the
last one) it distils the couplings C of the model being trained on one fixed
set of held-out mixture frames with the closed-form least-squares solver
(`lstsq_couplings`: deterministic, seconds at 2049 bins, so the curve shows
the model changing and not the solver's noise) and writes, in the run
directory:

    couplings_evolution.csv   one row per checkpoint: epoch, step, and the
                              metrics of `ROW_METRICS` (see docs/metrics.md)
    couplings_evolution.npz   the snapshots of C: `epochs` (int array) and
                              `couplings` `(checkpoints, N, N)` float32
    logs/couplings/           TensorBoard: the metrics as scalars and C as an
                              image with frequency axes, at the training step

The frames are split once into fitting frames (C is fitted on them) and
held-out frames (the fit quality of C and of the best per-bin diagonal are
measured on them). A resumed run (after `kill -9`, `BackupAndRestore`)
first drops the rows and snapshots of epochs after the restored one, so the
CSV has one row per checkpoint, none missing or repeated.

The solver matters: lstsq and the paper's L1 `fit` give different diagonal
energies for the same model (lstsq is lower on the models measured so far),
so the CSV names its solver and a reproduction also distils the final model
with the verdict's solver.
"""

import csv
import io
import json
import logging
from pathlib import Path

import keras
import numpy as np

from keras_dae.atomic import atomic_path
from keras_dae.checks import positive_int
from keras_dae.runs import read_csv_rows
from keras_dae.couplings import metrics
from keras_dae.couplings.jacobian import mean_jacobian
from keras_dae.couplings.solver import TARGET_BATCH, lstsq_couplings

log = logging.getLogger(__name__)

CSV = "couplings_evolution.csv"
SNAPSHOTS = "couplings_evolution.npz"
TENSORBOARD = "couplings"  # under the run's logs/
SOLVER = "lstsq"
EVERY = 5
HELD_OUT = 0.2
JACOBIAN_FRAMES = 64
ROW_METRICS = (
    "diagonal_energy",
    "band_energy_3",
    "relative_l1_couplings",
    "relative_l1_best_diagonal",
)
JACOBIAN_METRICS = ("jacobian_diagonal_energy", "jacobian_band_energy_3")


def split_frames(frames, held_out=HELD_OUT, seed=0):
    """`(fit, held)`: a fixed random split of `frames` `(num_frames, N)`."""
    frames = np.asarray(frames, np.float32)
    order = np.random.default_rng(seed).permutation(len(frames))
    count = int(round(len(frames) * held_out))
    return frames[np.sort(order[count:])], frames[np.sort(order[:count])]


def _outputs(model, frames):
    """`model`'s outputs for `frames`, in `teacher_outputs`' batches but without `predict`'s per-call set-up
    (most of a checkpoint's time at 128 bins)."""
    return np.concatenate([np.asarray(model(frames[start : start + TARGET_BATCH], training=False), np.float32)
                           for start in range(0, len(frames), TARGET_BATCH)])


def checkpoint_metrics(model, fit_frames, held_frames, jacobian_frames=0):
    """C of `model` on `fit_frames` (lstsq) and its metrics: `(C, dict of ROW_METRICS [+ JACOBIAN_METRICS])`."""
    fit_targets = _outputs(model, fit_frames)
    matrix = lstsq_couplings(fit_frames, fit_targets)
    held = held_frames if len(held_frames) else fit_frames
    held_targets = _outputs(model, held) if len(held_frames) else fit_targets
    quality = metrics.fit_quality(matrix, fit_frames, fit_targets, held, held_targets)
    row = {
        "diagonal_energy": metrics.diagonal_energy_ratio(matrix),
        "band_energy_3": metrics.band_energy_ratio(matrix, 3),
        "relative_l1_couplings": quality["matrix"]["relative_l1"],
        "relative_l1_best_diagonal": quality["best_diagonal"]["relative_l1"],
    }
    if jacobian_frames:
        jacobian = mean_jacobian(model, fit_frames[:jacobian_frames])
        row["jacobian_diagonal_energy"] = metrics.diagonal_energy_ratio(jacobian)
        row["jacobian_band_energy_3"] = metrics.band_energy_ratio(jacobian, 3)
    return matrix, row


def _parse_row(row):
    parsed = {key: float(value) for key, value in row.items() if key not in ("epoch", "step", "solver")}
    parsed.update(epoch=int(row["epoch"]), step=int(row["step"]), solver=row["solver"])
    return parsed


def read_rows(run_dir):
    """The rows of `couplings_evolution.csv` as dicts (numbers as float, epoch and step as int); [] if none.

    A line cut short by a crash ends the rows (`runs.read_csv_rows`).
    """
    return read_csv_rows(Path(run_dir) / CSV, _parse_row)


def read_snapshots(run_dir):
    """`(epochs, couplings)` from `couplings_evolution.npz`; empty arrays if none."""
    path = Path(run_dir) / SNAPSHOTS
    if not path.is_file():
        return np.zeros(0, np.int64), np.zeros((0, 0, 0), np.float32)
    with np.load(path) as data:
        return data["epochs"], data["couplings"]


class CouplingsEvolution(keras.callbacks.Callback):
    """Distils C every `every` epochs on fixed frames and records its metrics.

    Args:
        run_dir: the run directory (the CSV, the snapshots and `logs/` go there).
        frames: float array `(num_frames, N)` of held-out mixture magnitude
            frames (not used for training); split once by `split_frames`.
        spectral: the `SpectralConfig` of the frames (frequency axes of the image).
        every: int, distil after every `every`-th epoch (and after the last).
        steps_per_epoch: int, to give each row its training step.
        initial_epoch: int, epochs done before this `fit` (a resumed run):
            rows and snapshots of later epochs are dropped.
        jacobian: bool, also record the mean Jacobian's diagonal and band
            energy on `JACOBIAN_FRAMES` of the fitting frames.
        tensorboard: bool, write TensorBoard scalars and images under `logs/couplings`.
        seed: int, seeds the split of the frames.
    """

    def __init__(self, run_dir, frames, spectral, *, every=EVERY, steps_per_epoch=1, initial_epoch=0, jacobian=False,
                 tensorboard=True, seed=0):
        super().__init__()
        positive_int("every", every)
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 2 or len(frames) < 2:
            raise ValueError(f"frames must be (num_frames >= 2, num_bins). Received shape {frames.shape}")
        self.run_dir = Path(run_dir)
        self.fit_frames, self.held_frames = split_frames(frames, seed=seed)
        self.spectral = spectral
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.jacobian_frames = min(JACOBIAN_FRAMES, len(self.fit_frames)) if jacobian else 0
        self.tensorboard = tensorboard
        self._writer = None
        self._last_done = None
        self._last_epoch = None
        self._drop_after(initial_epoch)

    def _drop_after(self, epoch):
        """Keeps only the rows and snapshots of epochs <= `epoch` (a resumed run redoes the later ones).

        They are then held in memory (`_rows`, `_snapshots`) and written whole at each checkpoint.
        """
        rows = read_rows(self.run_dir)
        self._rows = [row for row in rows if row["epoch"] <= epoch]
        if self._rows != rows or (rows and not (self.run_dir / CSV).read_text().endswith("\n")):
            self._write_rows(self._rows)
        epochs, couplings = read_snapshots(self.run_dir)
        keep = epochs <= epoch
        self._snapshots = dict(zip(epochs[keep].tolist(), couplings[keep]))
        if len(epochs) and not keep.all():
            self._write_snapshots()

    def _columns(self):
        return ["epoch", "step", "solver", *ROW_METRICS, *(JACOBIAN_METRICS if self.jacobian_frames else ())]

    def _write_rows(self, rows):
        with atomic_path(self.run_dir / CSV) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, self._columns(), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def _write_snapshots(self):
        epochs = sorted(self._snapshots)
        with atomic_path(self.run_dir / SNAPSHOTS) as tmp:
            with tmp.open("wb") as handle:
                np.savez(handle, epochs=np.asarray(epochs, np.int64),
                         couplings=np.asarray([self._snapshots[epoch] for epoch in epochs], np.float32))

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        self._last_epoch = done
        if done % self.every == 0 or done == self.params.get("epochs"):
            self._checkpoint(done)

    def on_train_end(self, logs=None):
        # Early stopping ends between checkpoints: the final weights get one too.
        if self._last_epoch and self._last_done != self._last_epoch:
            self._checkpoint(self._last_epoch)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _checkpoint(self, done):
        matrix, values = checkpoint_metrics(self.model, self.fit_frames, self.held_frames, self.jacobian_frames)
        row = {"epoch": done, "step": done * self.steps_per_epoch, "solver": SOLVER, **values}
        self._rows = [r for r in self._rows if r["epoch"] < done] + [row]
        self._write_rows(self._rows)
        self._snapshots = {epoch: value for epoch, value in self._snapshots.items() if epoch < done}
        self._snapshots[done] = matrix
        self._write_snapshots()
        self._last_done = done
        if self.tensorboard:
            self._summaries(row, matrix)
        log.debug("couplings at epoch %d: %s", done, json.dumps(values))

    def _summaries(self, row, matrix):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.run_dir / "logs" / TENSORBOARD))
        with self._writer.as_default(step=row["step"]):
            for name in self._columns()[3:]:
                tf.summary.scalar(f"couplings/{name}", row[name])
            image = tf.io.decode_png(matrix_png(matrix, self.spectral, f"C ({SOLVER}) at epoch {row['epoch']}"))
            tf.summary.image("couplings/C", image[None], max_outputs=1)
        self._writer.flush()


def matrix_png(matrix, spectral, title):
    """C drawn as `figures.plot_matrix` draws it, as PNG bytes (for TensorBoard)."""
    from keras_dae.couplings import figures

    buffer = io.BytesIO()
    figures.matrix_figure(matrix, title, spectral=spectral).savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()
