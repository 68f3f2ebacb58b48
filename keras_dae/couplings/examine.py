"""Examining a trained model: distil its couplings C, measure them and draw them.

`examine(model_path, out, frame_set, spectral=...)` writes to `out`:

    couplings.npy     C, float32 (N, N), output bin by input bin
    metrics.json      every number below (written last: its presence means
                      the directory is complete)
    history.csv       the loss per epoch (solver `fit`)
    couplings.png     C as a heat map (frequency axes in Hz)
    couplings-offsets.png    mean |C| against the offset from the diagonal
    couplings-diagonal.png   diagonal against off-diagonal energy per output bin
    jacobian.npy, jacobian*.png   with `jacobian=True`: the mean Jacobian

Besides the structure and fit metrics (`metrics.py`) every run reports how
far the data can be trusted to determine C (`trust` in metrics.json): the
fitting frames against N (fewer frames than bins leave C under-determined),
the rank and condition number of the frame matrix, the share of the model's
output bins that are zero on every frame (dead units), and a calibration
control: the same solver on the same frames with a known diagonal teacher
`y = g * x` (`g` drawn uniformly in [0.5, 1.5]); its diagonal energy ratio is
the most diagonal score these frames allow.
"""

import csv
import json
import logging
from pathlib import Path

import keras
import numpy as np

from keras_dae import runs
from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.couplings import figures, metrics
from keras_dae.couplings.jacobian import mean_jacobian
from keras_dae.couplings.references import calibration
from keras_dae.couplings.solver import SCHEDULES, solve, teacher_outputs
from keras_dae.locking import holds_lock

log = logging.getLogger(__name__)

COUPLINGS = "couplings.npy"
METRICS = "metrics.json"
JACOBIAN = "jacobian.npy"
HISTORY = "history.csv"
JACOBIAN_FRAMES = 256


def _write_json(path, data):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_plain) + "\n")


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _write_npy(path, array):
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def _write_history(path, history):
    names = list(history)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *names])
        for epoch, values in enumerate(zip(*(history[name] for name in names))):
            writer.writerow([epoch, *(float(value) for value in values)])


def _prepare_out(out, overwrite):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out` '{out}' is a file; give a directory.")
    if (out / METRICS).exists() and not overwrite:
        raise ValueError(f"'{out}' already holds couplings ({METRICS}); choose another `out` or add `overwrite=True`.")
    runs.ensure_writable(out)
    remove_stale_temporaries(out)  # what a killed run left (the caller holds the lock of `out`)
    return out


def _schedule_record(solver, schedule, epochs, num_frames):
    if solver != "fit":
        return None
    schedule = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    record = schedule.to_dict()
    record.update(batch_size_used=schedule.batch_for(num_frames), max_epochs=epochs or schedule.epochs)
    return record


def _trust(frame_set, outputs, num_bins, solver_options, seed, verbose):
    fit = frame_set.fit
    trust = {
        "frames_fit": int(len(fit)),
        "num_bins": int(num_bins),
        "under_determined": bool(len(fit) < num_bins),
        **metrics.singular_value_summary(fit),
        "dead_output_units": metrics.dead_unit_share(outputs),
    }
    if trust["under_determined"]:
        log.warning(
            "only %d fitting frames for %d bins: C is under-determined, so its structure is partly the "
            "solver's choice (see trust.calibration); use more frames (`max_frames`, more tracks) or fewer bins",
            len(fit), num_bins,
        )
    log.info("calibration: the same solver on a known diagonal teacher over the same frames")
    trust["calibration"] = calibration(fit, solver_options, seed, verbose)
    return trust


def _matrix_metrics(matrix, frame_set, fit_targets, held_targets):
    held = frame_set.held_out if len(frame_set.held_out) else frame_set.fit
    held_targets = held_targets if len(frame_set.held_out) else fit_targets
    return {
        **metrics.shape_metrics(matrix),
        "fit_quality": metrics.fit_quality(matrix, frame_set.fit, fit_targets, held, held_targets),
    }


def notes_of(record, part="couplings"):
    """The trust facts of a metrics record as short lines for figures of `part` (couplings or jacobian)."""
    trust = record["trust"]
    determined = "UNDER-DETERMINED" if trust["under_determined"] else "determined"
    ratio = f"diagonal energy {record[part]['diagonal_energy_ratio']:.3f}"
    if part != "couplings":
        ratio += f" (C: {record['couplings']['diagonal_energy_ratio']:.3f})"
    return [
        f"{trust['frames_fit']} frames for {trust['num_bins']} bins ({determined}), "
        f"cond. {trust['condition_number']:.1e}, dead output units {trust['dead_output_units']:.0%}",
        f"{ratio}; a known diagonal teacher on these frames: {trust['calibration']['diagonal_energy_ratio']:.3f}",
    ]


def _draw(matrix, spectral, out, stem, label, notes, formats):
    written = []
    options = {"spectral": spectral, "notes": notes, "formats": formats}
    written += figures.plot_matrix(matrix, out / f"{stem}.png", f"{label}: output by input frequency", **options)
    written += figures.plot_offsets(matrix, out / f"{stem}-offsets.png",
                                    f"{label}: mean magnitude by offset from the diagonal", **options)
    written += figures.plot_diagonal(matrix, out / f"{stem}-diagonal.png",
                                     f"{label}: diagonal and off-diagonal energy per output frequency", **options)
    return written


@holds_lock("out")
def examine(model_path, out, frame_set, *, spectral=None, loaded=None, solver="fit", schedule="fast", loss="l1",
            ridge=0.0, epochs=None, jacobian=False, jacobian_frames=JACOBIAN_FRAMES, formats=("png",), seed=0,
            overwrite=False, verbose=0):
    """Distils the couplings of the model at `model_path` on `frame_set` and writes `out`.

    Args:
        model_path: a `.keras` file or run directory (see `runs.load_run_model`);
            recorded in metrics.json.
        out: the output directory.
        frame_set: `frames.FrameSet` of mixture frames at `spectral`.
        spectral: `SpectralConfig` or None. The settings of the frames (for
            the Hz axes and the record); None: the model's run's
            (`config.json`), else the paper's with the model's `num_bins`.
        loaded: None, or the `(model, info, run_config)` that
            `runs.load_run_model(model_path)` returns, when the caller has
            loaded the model already (it is not loaded again).
        solver, schedule, loss, ridge, seed, epochs: see `keras_dae.couplings.distill`.
        jacobian: also compute the mean Jacobian on `jacobian_frames` of the frames.
        formats: figure formats (`"png"`, `"pdf"`).
        overwrite: replace couplings already in `out`.
        verbose: Keras progress bars.

    Returns:
        dict, the contents of metrics.json.

    Raises:
        keras_dae.locking.DirectoryInUse: another process is writing `out`
            (`examine` holds its lock while it runs).

    Example:

    >>> frames = track_frame_set(list_tracks(subsets="test"), spectral=spectral)
    >>> record = examine("runs/sf", "couplings/sf", frames, spectral=spectral)
    >>> record["couplings"]["diagonal_energy_ratio"]
    """
    teacher, info, run_config = loaded or runs.load_run_model(model_path)
    spectral = spectral or runs.run_spectral(info, run_config)
    if info["num_bins"] != spectral.num_bins:
        raise ValueError(
            f"the model has {info['num_bins']} bins but the frames {spectral.num_bins}; "
            f"use `num_bins={info['num_bins']}` (and the model's other spectral settings)."
        )
    out = _prepare_out(out, overwrite)
    solver_options = {"solver": solver, "schedule": schedule, "loss": loss, "ridge": ridge, "seed": seed,
                      "epochs": epochs}
    fit_targets = teacher_outputs(teacher, frame_set.fit, verbose=0)
    held_targets = teacher_outputs(teacher, frame_set.held_out, verbose=0)
    log.info("fitting C (%s) on %d frames of %d bins", solver, len(frame_set.fit), spectral.num_bins)
    matrix, history = solve(frame_set.fit, fit_targets, verbose=verbose, **solver_options)
    outputs = np.concatenate([fit_targets, held_targets])
    record = {
        "model": {"path": str(model_path), **info, "run": (run_config or {}).get("data")},
        "spectral": spectral.to_dict(),
        "data": frame_set.description,
        "solver": {
            **solver_options,
            "schedule": _schedule_record(solver, schedule, epochs, len(frame_set.fit)),
            "epochs_run": len(history.get("loss", [])) or None,
            "final_relative_loss": float(history["loss"][-1]) if history.get("loss") else None,
        },
        "couplings": _matrix_metrics(matrix, frame_set, fit_targets, held_targets),
        "trust": _trust(frame_set, outputs, spectral.num_bins, solver_options, seed, verbose),
        "versions": runs.versions(),
    }
    _write_npy(out / COUPLINGS, matrix)
    if history:
        _write_history(out / HISTORY, history)
    label = f"{info['arch']} couplings C ({solver})"
    _draw(matrix, spectral, out, "couplings", label, notes_of(record), formats)
    if jacobian:
        chosen = np.random.default_rng(seed).permutation(len(frame_set.fit))[:jacobian_frames]
        log.info("mean Jacobian over %d frames", len(chosen))
        bar = keras.utils.Progbar(len(chosen), unit_name="frame") if verbose else None
        jac = mean_jacobian(teacher, frame_set.fit[np.sort(chosen)], progress=bar.update if bar else None)
        record["jacobian"] = {
            "frames": int(len(chosen)),
            **_matrix_metrics(jac, frame_set, fit_targets, held_targets),
            "relative_distance_to_couplings": float(np.linalg.norm(jac - matrix) / max(np.linalg.norm(jac), 1e-30)),
        }
        _write_npy(out / JACOBIAN, jac)
        _draw(jac, spectral, out, "jacobian", f"{info['arch']} mean Jacobian ({len(chosen)} frames)",
              notes_of(record, "jacobian"), formats)
    _write_json(out / METRICS, record)
    return record
