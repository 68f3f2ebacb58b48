"""Training a DAE with `model.fit`: data, strategy, callbacks, the run directory.

`train(arch="sf", out="runs/sf", ...)` is what `keras-dae train` calls. It
streams `(mixture, vocals)` frames from one of three sources:

    prepared=DIR   a frame cache written by `keras-dae prepare` (fastest);
                   validation from `prepared_valid=DIR` if given
    root=PATH      MUSDB18 (or MUSDB18-HQ with is_wav=True) through the
                   tf.data pipeline: musdb's `train` split for training, its
                   14-track `valid` split for validation
    neither        the embedded 6-second MUSDB18 excerpt: its first 80% for
                   training, the last 20% held out for validation

and writes a run directory (see `runs.py`) that a re-run resumes.
"""

import dataclasses
import functools
import logging
import math
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_dae import runs
from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.convergence import CONVERGED, DONE, EPOCH_CAP, NAN, RUNNING, ConvergenceStopping, Rule
from keras_dae.couplings.evolution import CouplingsEvolution
from keras_dae.couplings.frames import loud
from keras_dae.checks import ParameterError, one_of, positive_int, positive_number
from keras_dae.data.pipeline import musdb_frames
from keras_dae.distribute import (
    STRATEGIES,
    backup_dir,
    distributed_dataset,
    is_chief,
    make_strategy,
    prepare_multiworker,
    worker_id,
)
from keras_dae.data.prepare import cache_errors, prepared_frames, read_index
from keras_dae.data.readers import call_reading
from keras_dae.data.tracks import list_tracks, split_track
from keras_dae.errors import writing
from keras_dae.locking import clear_directory, directory_lock
from keras_dae.losses import LOSSES, get_loss
from keras_dae.models import ARCHITECTURES, build_model
from keras_dae.optimizers import FusedAdam
from keras_dae.spectral import SpectralConfig

log = logging.getLogger(__name__)

EXAMPLE_VALIDATION_FRACTION = 0.2
# Without musdb's validation tracks (its split is by MUSDB18 track name), this share of the train tracks, the
# last ones by name, is held out for validation (at least one track when there are two or more).
HELD_OUT_TRACKS = 0.15
# Held-out mixture frames on which `couplings_every` distils C (fewer frames than bins leave C under-determined).
EVOLUTION_FRAMES = 4096
VALIDATION_BATCH = 256
# Frames in the shuffle buffer; a smaller epoch uses its own size (filling
# 8192 frames from a 6-second clip would decode it fifteen times first).
SHUFFLE_BUFFER = 8192


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of a training run (recorded in `config.json`)."""

    arch: str = "sf"
    hidden_size: int = None
    loss: str = "kl"
    learning_rate: float = 1e-4
    batch_size: int = 16
    epochs: int = 100
    steps_per_epoch: int = None
    clip_norm: float = 0.5
    patience: int = 20
    min_delta: float = 1e-3
    seed: int = 0
    excerpt_seconds: float = 6.0
    remix: bool = False
    random_gain: bool = False
    strategy: str = "default"
    steps_per_execution: int = 1
    couplings_every: int = None
    couplings_jacobian: bool = False

    def check(self):
        one_of("arch", self.arch, ARCHITECTURES)
        one_of("loss", self.loss, LOSSES)
        one_of("strategy", self.strategy, STRATEGIES)
        for name in ("batch_size", "epochs", "patience", "steps_per_execution"):
            positive_int(name, getattr(self, name))
        Rule(self.patience, self.min_delta)
        for name in ("hidden_size", "steps_per_epoch", "couplings_every"):
            positive_int(name, getattr(self, name), optional=True)
        for name in ("learning_rate", "excerpt_seconds"):
            positive_number(name, getattr(self, name))
        positive_number("clip_norm", self.clip_norm, optional=True)
        if self.strategy != "default" and self.steps_per_execution > 1:
            # Keras 3's multi-step loop fails under tf.distribute ("You must feed a value for placeholder tensor").
            raise ParameterError(
                "steps_per_execution", f"steps_per_execution > 1 works only with the default strategy. Received: "
                f"steps_per_execution={self.steps_per_execution}, strategy={self.strategy!r}"
            )


# -- data ---------------------------------------------------------------------


@dataclasses.dataclass
class Data:
    """What `train` feeds: a per-input-pipeline dataset function and a validation set."""

    train_fn: object  # (seed, first_epoch, pipeline_id, num_pipelines, batch_size) -> Dataset
    validation: object  # Dataset or None
    frames_per_epoch: int
    description: dict
    validation_frames: int = 0


def _shard(items, pipeline_id, num_pipelines):
    return items[pipeline_id::num_pipelines] if len(items) >= num_pipelines else items


def _no_autoshard(dataset):
    # Validation is a fixed, generated stream: split it by elements, not files.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def make_data(settings, spectral, *, root=None, is_wav=False, prepared=None, prepared_valid=None):
    """The training and validation data of a run (see the module docstring); `spectral` its `SpectralConfig`."""
    if prepared is not None:
        index = read_index(prepared, spectral=spectral)

        def train_fn(seed, first_epoch, pipeline_id, num_pipelines, batch_size):
            # A resumed run reshuffles differently from its first epochs.
            dataset = prepared_frames(prepared, batch_size=batch_size, seed=seed + first_epoch, spectral=spectral)
            return dataset.shard(num_pipelines, pipeline_id) if num_pipelines > 1 else dataset

        validation, validation_frames = None, 0
        if prepared_valid is not None:
            validation = _no_autoshard(
                prepared_frames(prepared_valid, batch_size=VALIDATION_BATCH, training=False, spectral=spectral)
            )
            validation_frames = read_index(prepared_valid, spectral=spectral)["total_frames"]
        description = {"source": "prepared", "prepared": str(prepared),
                       "prepared_valid": str(prepared_valid) if prepared_valid else None,
                       "tracks": len(index["shards"])}
        return Data(train_fn, validation, index["total_frames"], description, validation_frames)

    streaming = dict(excerpt_seconds=settings.excerpt_seconds)
    if root is None and not os.environ.get("MUSDB_PATH"):
        track = list_tracks()[0]
        train_part, valid_part = split_track(track, 1 - EXAMPLE_VALIDATION_FRACTION)
        train_tracks, valid_tracks = [train_part], [valid_part]
        # Excerpts no longer than the held-in part, so no frame crosses into validation.
        streaming["excerpt_seconds"] = min(settings.excerpt_seconds, train_part.seconds)
        valid_seconds = valid_part.seconds
        description = {"source": "example", "validation": f"last {EXAMPLE_VALIDATION_FRACTION:.0%} of the clip"}
    else:
        train_tracks, valid_tracks, validation = _train_and_valid_tracks(root, is_wav)
        valid_seconds = settings.excerpt_seconds
        description = {"source": "musdb", "root": str(root or os.environ.get("MUSDB_PATH")),
                       "is_wav": is_wav, "validation": validation}
    description.update(train_tracks=[t.name for t in train_tracks], valid_tracks=[t.name for t in valid_tracks])

    def frames(seconds):
        return spectral.num_frames(int(round(seconds * spectral.sample_rate)))

    frames_per_epoch = len(train_tracks) * frames(streaming["excerpt_seconds"])

    def train_fn(seed, first_epoch, pipeline_id, num_pipelines, batch_size):
        tracks = _shard(train_tracks, pipeline_id, num_pipelines)
        return musdb_frames(
            tracks, spectral=spectral, batch_size=batch_size, seed=seed + 7919 * pipeline_id, training=True,
            first_epoch=first_epoch, remix=settings.remix, random_gain=settings.random_gain,
            shuffle_buffer=min(SHUFFLE_BUFFER, max(frames_per_epoch, batch_size)), **streaming,
        )

    validation = None
    if valid_tracks:
        validation = musdb_frames(
            valid_tracks, spectral=spectral, batch_size=VALIDATION_BATCH, training=False, excerpt_seconds=valid_seconds,
        )
        # Fixed excerpts: decode them once, not every epoch.
        validation = _no_autoshard(validation.cache())
    return Data(train_fn, validation, frames_per_epoch, description, len(valid_tracks) * frames(valid_seconds))


def _train_and_valid_tracks(root, is_wav):
    """`(train tracks, validation tracks, how validation was chosen)` of a MUSDB-layout root.

    musdb's `valid` split names 14 MUSDB18 train tracks; a collection without
    them (synthetic or demo tracks, another data set) holds out its last
    `HELD_OUT_TRACKS` of train tracks by name instead.
    """
    try:
        return (list_tracks(root, is_wav=is_wav, subsets="train", split="train"),
                list_tracks(root, is_wav=is_wav, subsets="train", split="valid"), "musdb valid split")
    except ValueError:
        tracks = sorted(list_tracks(root, is_wav=is_wav, subsets="train"), key=lambda track: track.name)
    if len(tracks) < 2:
        log.warning("one train track and none in musdb's validation split: training without validation")
        return tracks, [], None
    count = max(1, round(HELD_OUT_TRACKS * len(tracks)))
    held = tracks[-count:]
    log.info("no tracks in musdb's validation split: holding out %s for validation",
             ", ".join(track.name for track in held))
    return tracks[:-count], held, f"held-out train tracks: {', '.join(track.name for track in held)}"


def evolution_frames(data, spectral, max_frames=EVOLUTION_FRAMES):
    """Up to `max_frames` non-silent mixture frames `(frames, num_bins)` of the validation set (else of the
    first training batches), for `CouplingsEvolution`; `(frames, source)`."""
    if data.validation is not None:
        batches, source = data.validation, "validation"
    else:
        log.warning("no validation data: the couplings evolution uses training frames (not held out)")
        batches, source = data.train_fn(0, 0, 0, 1, VALIDATION_BATCH), "training"
    kept, count = [], 0
    for mixture, _ in batches:  # the whole validation set (a partly read cache would be discarded)
        if count >= max_frames:
            if source == "validation":
                continue
            break
        mixture = np.asarray(mixture, np.float32).reshape(-1, spectral.num_bins)
        mixture = mixture[loud(mixture)]  # the couplings' own rule for silent frames
        kept.append(mixture)
        count += len(mixture)
    frames = np.concatenate(kept)[:max_frames] if kept else np.zeros((0, spectral.num_bins), np.float32)
    if len(frames) < 2:
        raise ValueError("too few non-silent frames to follow the couplings while training; "
                         "use more validation data or leave `couplings_every` unset.")
    return frames, source


# -- callbacks ----------------------------------------------------------------


class BestModel(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves, atomically (a temporary name, then a rename)."""

    def __init__(self, path, monitor, best=math.inf):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or value >= self.best:
            return
        if not np.isfinite((logs or {}).get("loss", 0.0)):
            return  # an epoch whose training loss went NaN (TerminateOnNaN stops it) is never the best
        self.best = float(value)
        with atomic_path(self.path) as tmp:
            self.model.save(tmp)


class RunStatus(keras.callbacks.Callback):
    """Keeps `config.json`'s `epochs_completed` current."""

    def __init__(self, run_dir, record):
        super().__init__()
        self.run_dir = run_dir
        self.record = record

    def on_epoch_end(self, epoch, logs=None):
        self.record["epochs_completed"] = epoch + 1
        runs.write_config(self.run_dir, self.record)


def _callbacks(run_dir, settings, monitor, chief, worker, record, history, stopping, evolution):
    best = min((row[monitor] for row in history if _saveable(row, monitor)), default=math.inf)
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if chief:
        callbacks += [
            keras.callbacks.CSVLogger(str(run_dir / runs.HISTORY), append=True),
            BestModel(run_dir / runs.MODEL, monitor, best),
            keras.callbacks.TensorBoard(str(run_dir / runs.LOGS), update_freq="epoch"),
            RunStatus(run_dir, record),
        ]
    callbacks += [
        stopping,
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(settings.patience // 2, 1)),
    ]
    if evolution is not None and chief:
        callbacks.append(evolution)
    backup = backup_dir(run_dir, chief, worker)
    # Last, so that when the backup says "epoch N done", N's row and model are written.
    callbacks.append(keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True))
    return callbacks


# -- the run ------------------------------------------------------------------


def compile_model(model, settings):
    """Compiles `model` for training as `train` does: `FusedAdam` (Keras' Adam, one kernel per variable)."""
    optimizer = FusedAdam(settings.learning_rate, global_clipnorm=settings.clip_norm or None)
    model.compile(optimizer=optimizer, loss=get_loss(settings.loss),
                  steps_per_execution=settings.steps_per_execution)
    return model


def train(
    arch=Settings.arch,
    out="runs/sf",
    *,
    spectral=None,
    root=None,
    is_wav=False,
    prepared=None,
    prepared_valid=None,
    hidden_size=Settings.hidden_size,
    loss=Settings.loss,
    learning_rate=Settings.learning_rate,
    batch_size=Settings.batch_size,
    epochs=Settings.epochs,
    steps_per_epoch=Settings.steps_per_epoch,
    clip_norm=Settings.clip_norm,
    patience=Settings.patience,
    min_delta=Settings.min_delta,
    seed=Settings.seed,
    excerpt_seconds=Settings.excerpt_seconds,
    remix=Settings.remix,
    random_gain=Settings.random_gain,
    strategy=Settings.strategy,
    steps_per_execution=Settings.steps_per_execution,
    couplings_every=Settings.couplings_every,
    couplings_jacobian=Settings.couplings_jacobian,
    overwrite=False,
    verbose=1,
):
    """Trains one of the paper's DAEs and returns `(model, run_dir)`.

    The defaults are `Settings`' (the paper's); every setting is recorded in
    the run's `config.json`.

    Args:
        arch: str, default `"sf"`. `"dae"`, `"deep-dae"` or `"sf"`.
        out: str or `Path`, the run directory.
        spectral: `SpectralConfig` or None (the paper's defaults).
        root: str, `Path` or None. The MUSDB root; None: `MUSDB_PATH`, else
            the embedded clip.
        is_wav: bool, default False. The root is MUSDB18-HQ (WAV folders).
        prepared, prepared_valid: frame caches from `keras-dae prepare`
            (`keras_dae.data.prepare.prepare_dataset`) to train (and
            validate) on instead of streaming.
        hidden_size: int or None. Encoder width H; None: `num_bins`.
        loss: str, default `"kl"`. `"kl"` (generalised Kullback-Leibler, the
            authors'), `"l1"` or `"l2"`.
        learning_rate: float, default 1e-4 (Adam).
        batch_size: int, default 16. Frames per batch (global, over all replicas).
        epochs: int, default 100. At most this many epochs.
        steps_per_epoch: int or None. None: one excerpt per track
            (streaming) or every cached frame.
        clip_norm: float or None, default 0.5. Global gradient-norm clipping.
        patience: int, default 20. The convergence rule (`keras_dae.convergence`):
            training stops, converged, after `patience` epochs in a row
            without an improvement of the monitored loss (validation loss
            when there is validation data) by more than `min_delta` of its
            best value; the learning rate halves after half of them.
        min_delta: float in [0, 1), default 1e-3. The relative improvement
            that counts (see `patience`).
        seed: int, default 0. Seeds the weights' initialisation and the data.
        excerpt_seconds: float, default 6. Excerpt of each track per epoch
            (streaming).
        remix: bool, default False. Vocals of one track over the
            accompaniment of another (streaming).
        random_gain: bool, default False. A random gain per source (streaming).
        strategy: str, default `"default"`. `tf.distribute` strategy:
            `"default"`, `"mirrored"` or `"multiworker"` (reads `TF_CONFIG`).
        steps_per_execution: int, default 1. Training steps per call into the
            TensorFlow graph (the default strategy only).
        couplings_every: int or None. Every this many epochs (and after the
            last), distil the couplings C on fixed held-out mixture frames
            with the least-squares solver and record them
            (`keras_dae.couplings.evolution`): `couplings_evolution.csv` and
            `.npz` in the run, TensorBoard scalars and images.
        couplings_jacobian: bool, default False. With `couplings_every`, also
            record the mean Jacobian's diagonal energy.
        overwrite: bool, default False. Start over in `out` even if it holds a run.
        verbose: int, default 1. Keras' `fit` verbosity (0 silent, 1 progress bar).

    Returns:
        `(keras.Model, Path)`: the best model (by validation loss, or
        training loss without validation) and the run directory.

    Raises:
        ValueError: bad settings, no data, a run directory that holds
            another kind of run or cannot be written, or audio that cannot
            be read or holds a NaN or Inf sample (the message names the file).
        RuntimeError: the run stopped on a NaN loss (`config.json` records
            status `"nan"`; `model.keras` keeps an earlier epoch's model, if
            any, but the run did not finish), or it ended without any
            epoch fit to save, so no `model.keras` was written.
        keras_dae.locking.DirectoryInUse: another process is writing `out`
            (`train` holds its lock, `keras_dae.locking`, while it runs).
    """
    settings = Settings(
        arch=arch, hidden_size=hidden_size, loss=loss, learning_rate=learning_rate, batch_size=batch_size,
        epochs=epochs, steps_per_epoch=steps_per_epoch, clip_norm=clip_norm, patience=patience,
        min_delta=min_delta, seed=seed, excerpt_seconds=excerpt_seconds, remix=remix, random_gain=random_gain,
        strategy=strategy, steps_per_execution=steps_per_execution, couplings_every=couplings_every,
        couplings_jacobian=couplings_jacobian,
    )
    settings.check()
    spectral = spectral or SpectralConfig()
    run_dir = Path(out)
    strategy = make_strategy(settings.strategy)
    chief = is_chief(strategy)
    # Held before the run directory is read or written: only the chief writes the run directory, every
    # other worker only its own backup (`distribute.backup_dir`).
    locked = run_dir if chief else backup_dir(run_dir, chief, worker_id(strategy))
    # A full disk or a read-only file system: one line naming the run directory (`keras_dae.errors`).
    label = "run directory " if chief else ""
    with directory_lock(locked, label=label), writing(locked, label):
        if chief:
            remove_stale_temporaries(run_dir)
        return _train(settings, spectral, run_dir, strategy, chief, root=root, is_wav=is_wav, prepared=prepared,
                      prepared_valid=prepared_valid, overwrite=overwrite, verbose=verbose)


def _train(settings, spectral, run_dir, strategy, chief, *, root, is_wav, prepared, prepared_valid, overwrite,
           verbose):
    """`train`, holding the lock of what this process writes (the run directory, or a worker's backup)."""
    record = {**dataclasses.asdict(settings), "spectral": spectral.to_dict()}

    previous = None if overwrite else runs.read_config(run_dir)
    if previous is not None:
        runs.check_compatible(run_dir, previous, record)
        if previous.get("status") in DONE:
            if not (run_dir / runs.MODEL).is_file():
                raise RuntimeError(f"'{run_dir}' holds a finished run but no {runs.MODEL}; "
                                   "train again with `overwrite=True`.")
            log.info("'%s' is a finished run (%s epochs); add `overwrite=True` to train again",
                     run_dir, previous.get("epochs_completed"))
            return runs.load_run_model(run_dir)[0], run_dir  # a damaged model.keras named as such
    if chief:
        runs.prepare_directory(run_dir, overwrite)

    data = make_data(settings, spectral, root=root, is_wav=is_wav, prepared=prepared, prepared_valid=prepared_valid)
    monitor = "val_loss" if data.validation is not None else "loss"
    steps = settings.steps_per_epoch or max(math.ceil(data.frames_per_epoch / settings.batch_size), 1)
    backup = backup_dir(run_dir, chief, worker_id(strategy))
    if overwrite and not chief:
        clear_directory(backup)  # the chief's prepare_directory clears only its own; the lock file stays
    done = runs.backup_epoch(backup)
    # Every worker rebuilds the convergence rule's state from the earlier epochs (a shared run directory).
    history = runs.truncate_history(run_dir, done) if chief else runs.read_history(run_dir)[:done]
    if done:
        log.info("resuming '%s' after epoch %d", run_dir, done)
    record.update(
        data=data.description, monitor=monitor, steps_per_epoch_used=steps, status=RUNNING,
        epochs_completed=done, versions=runs.versions(), git_commit=runs.git_commit(),
        frames_per_epoch=data.frames_per_epoch,
    )
    if chief:
        runs.write_config(run_dir, record)

    # The seed fixes the weights' initialisation as well as the data order.
    keras.utils.set_random_seed(settings.seed)
    with strategy.scope():
        model = build_model(settings.arch, spectral.num_bins, settings.hidden_size)
        compile_model(model, settings)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        prepare_multiworker(model, strategy, spectral.num_bins)
    training_set = distributed_dataset(
        strategy, functools.partial(data.train_fn, settings.seed, done), settings.batch_size
    )
    stopping = ConvergenceStopping(Rule(settings.patience, settings.min_delta), monitor,
                                   [row.get(monitor) for row in history])
    evolution = None
    if settings.couplings_every:
        with cache_errors(prepared, prepared_valid):
            frames, source = call_reading(evolution_frames, data, spectral)
        record["couplings_evolution"] = {"every": settings.couplings_every, "frames": len(frames), "source": source,
                                         "solver": "lstsq"}
        evolution = CouplingsEvolution(run_dir, frames, spectral, every=settings.couplings_every,
                                       steps_per_epoch=steps, initial_epoch=done,
                                       jacobian=settings.couplings_jacobian, seed=settings.seed)
    callbacks = _callbacks(run_dir, settings, monitor, chief, worker_id(strategy), record, history, stopping,
                           evolution)
    validation_steps = None
    if data.validation is not None and strategy.num_replicas_in_sync == 1:
        validation_steps = max(math.ceil(data.validation_frames / VALIDATION_BATCH), 1)
    with cache_errors(prepared, prepared_valid):
        fit = call_reading(
            model.fit, training_set, epochs=settings.epochs, steps_per_epoch=steps,
            validation_data=data.validation, validation_steps=validation_steps,
            callbacks=callbacks, verbose=verbose, shuffle=False,  # the datasets shuffle themselves
        )
    losses = fit.history.get("loss", [])
    rows = runs.read_history(run_dir) if chief else []
    completed = len(rows) if chief else done + len(losses)
    if losses and not np.isfinite(losses[-1]):
        status = NAN
    elif stopping.converged:
        status = CONVERGED
    else:
        status = EPOCH_CAP
    record.update(status=status, epochs_completed=completed, steps_completed=completed * steps,
                  **_monitored(rows, monitor))
    if chief:
        runs.write_config(run_dir, record)
        if status == EPOCH_CAP:
            log.warning("'%s' stopped at its epoch cap (%d epochs) without converging by the rule (patience %d, "
                        "min_delta %g); train longer with a larger `epochs`", run_dir, completed, settings.patience,
                        settings.min_delta)
    if status == NAN:
        raise RuntimeError(_nan_message(run_dir, completed, record, chief))
    if chief:
        if not (run_dir / runs.MODEL).is_file():
            raise RuntimeError(
                f"training of '{run_dir}' ended after {completed} epochs without a finite {monitor} and no model "
                f"was saved; check the data for non-finite samples or lower `learning_rate`, then train again "
                f"with `overwrite=True`."
            )
        model = keras.saving.load_model(run_dir / runs.MODEL)
    return model, run_dir


def _saveable(row, monitor):
    """Whether a history row's epoch could be saved as the best: finite `monitor` and training loss."""
    value, loss = row.get(monitor), row.get("loss", 0.0)
    return value is not None and np.isfinite(value) and loss is not None and np.isfinite(loss)


def _nan_message(run_dir, completed, record, chief):
    """The error of a run that stopped on a NaN loss: whether `model.keras` holds an earlier epoch's model."""
    saved = chief and (run_dir / runs.MODEL).is_file()
    best = record.get("best") or {}
    if saved and best.get("epoch") and np.isfinite(best.get(record["monitor"], math.nan)):
        kept = f" ({runs.MODEL} holds the model of epoch {best['epoch']}, from before it)"
    else:
        kept = " and no model was saved"
    return (f"training of '{run_dir}' stopped on a NaN loss in epoch {completed}{kept}; check the data "
            f"for non-finite samples or lower `learning_rate`, then train again with `overwrite=True`.")


def _monitored(rows, monitor):
    """`{"best": {monitor, epoch}, "last": {monitor, epoch}}` of the history rows (empty without rows)."""
    values = [(row["epoch"] + 1, row[monitor]) for row in rows if row.get(monitor) is not None]
    # The best is what `BestModel` saves: a finite value of an epoch whose training loss was finite too.
    finite = [(row["epoch"] + 1, row[monitor]) for row in rows if _saveable(row, monitor)]
    if not values:
        return {}
    best = min(finite, key=lambda item: item[1]) if finite else values[-1]
    return {"best": {monitor: float(best[1]), "epoch": best[0]},
            "last": {monitor: float(values[-1][1]), "epoch": values[-1][0]}}
