"""The paper's comparison in one call: train dae, deep-dae and sf, distil their couplings, evaluate, report.

Stages, each recorded in `OUT/stages.json` when it finishes, so a rerun skips
finished stages and continues where it stopped:

    data               without a MUSDB root: demo tracks (`data.demo`) in `OUT/data`, with
                       validation tracks
    train/<arch>       `training.train` into `OUT/runs/<arch>` (itself resumable), until it
                       converges (or reaches the epoch cap), with the couplings evolution
                       (`couplings_every`)
    couplings/<arch>   `couplings.examine` into `OUT/couplings/<arch>` with the verdict's
                       solver, every model on the same mixture frames of the test data
    couplings-lstsq/<arch>  the same with the least-squares solver, `OUT/couplings-lstsq/<arch>`
    evaluate/<arch>    `evaluation.evaluate` (the model) into `OUT/eval/<arch>`
    per-bin references what teachers that filter each bin on their own score on the same
                       frames (`couplings.per_bin_references`), under both solvers
    references         the mixture and ideal-ratio-mask scores, once, `OUT/eval/references`
    compare            `couplings.compare` of the three couplings
    report             `OUT/report.md` and `OUT/report.html` (`reproduce.report`), with the
                       training curves and the evolution figure

The statement of whether the paper's finding held (`finding`) is decided from
the couplings metrics, never written by hand: the plain DAEs' diagonal energy
ratios against sf's, and first whether the data can decide at all.
"""

import dataclasses
import json
import logging
import os
from pathlib import Path

from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.checks import one_of
from keras_dae.data.demo import write_demo_musdb
from keras_dae.locking import holds_lock
from keras_dae.reproduce.finding import ARCHS, finding, trend
from keras_dae.reproduce.report import Results, write_report

log = logging.getLogger(__name__)

STAGES = "stages.json"
DEMO_DATA = "data"
PER_BIN = "per_bin_references.json"
PER_BIN_LSTSQ = "per_bin_references_lstsq.json"
LSTSQ = "couplings-lstsq"  # OUT/couplings-lstsq/<arch>: the final models under the least-squares solver


@dataclasses.dataclass(frozen=True)
class Preset:
    """Sizes of a reproduction. `None` keeps the package's (the paper's) default."""

    num_bins: int = 2049
    hidden_size: int = None
    epochs: int = None  # the epoch cap; training stops earlier once converged (`patience`, `min_delta`)
    steps_per_epoch: int = None
    batch_size: int = None
    learning_rate: float = None
    patience: int = None
    min_delta: float = None
    couplings_every: int = 5  # the couplings evolution while training (least squares)
    max_frames: int = 20_000
    couplings_solver: str = "fit"
    couplings_schedule: str = "fast"
    couplings_epochs: int = None
    # Without a MUSDB root: demo tracks (`data.demo`), train and test, validation, and their length in seconds.
    demo_tracks: tuple = (6, 2)
    demo_valid: int = 1
    demo_seconds: float = 30.0

    def train_settings(self):
        names = ("hidden_size", "epochs", "steps_per_epoch", "batch_size", "learning_rate", "patience", "min_delta",
                 "couplings_every")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


PRESETS = {
    # The paper's settings (docs/paper.md): every default of `train` and `couplings` (2049 bins, 100 epochs, ...).
    "paper": Preset(),
    # Minutes on a 2-core CPU: 128 bins (0-1.4 kHz), so that the 4000 fitting frames of the demo data's
    # test tracks determine C; the converging schedule, as the fast one only reaches a calibration of 0.72
    # on them (0.98 with this one). Each model trains until it converges, at 10 times the paper's learning
    # rate (1e-3) so that the three converge within minutes; 400 epochs of 50 steps is only the cap.
    "quick": Preset(num_bins=128, hidden_size=128, epochs=400, steps_per_epoch=50, learning_rate=1e-3,
                    max_frames=5000, couplings_schedule="converge"),
}


class _Stages:
    """The finished stages of a reproduction, persisted as each one finishes."""

    def __init__(self, out, settings):
        self.path = Path(out) / STAGES
        found = json.loads(self.path.read_text()) if self.path.exists() else {}
        if found and found.get("settings") != settings:
            raise ValueError(
                f"'{out}' holds a reproduction with other settings; use another `out` or remove it."
            )
        self.state = {"settings": settings, "done": found.get("done", [])}

    def run(self, name, function):
        if name in self.state["done"]:
            log.info("%s: finished earlier, skipped", name)
            return
        log.info("%s ...", name)
        function()
        self.state["done"].append(name)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.state, indent=2))


@holds_lock("out")
def reproduce(out, *, root=None, is_wav=False, preset="quick", seed=0, verbose=0, jobs=None, prepared=None,
              prepared_valid=None):
    """Runs every stage (skipping finished ones) and writes `OUT/report.md`.

    Args:
        out: the output directory.
        root, is_wav: the MUSDB root (None: `MUSDB_PATH`, else demo tracks made from the embedded clip).
        preset: `"quick"`, `"paper"` or a `Preset`.
        seed: seeds training, the frames and the couplings fit.
        verbose: progress output of the stages (0: none).
        jobs: positive int or None: the tracks scored at once by the
            evaluation stages (`evaluation.evaluate`'s `jobs`; None: the
            usable cores). The scores do not depend on it.
        prepared, prepared_valid: frame caches (`keras-dae prepare`) of the
            root's train tracks and of its validation tracks: the models train
            from them (`training.train`'s `prepared`) instead of streaming the
            root's audio. The couplings and scores still read the root's test
            tracks. Recorded in the settings (a rerun must give the same).

    Returns:
        `(verdict, sentence)`, see `finding`.

    Raises:
        keras_dae.locking.DirectoryInUse: another process is writing `out`. A
            reproduction holds the lock of `out` while it runs, and each stage
            that writes a directory of its own (`OUT/data`, `OUT/runs/<arch>`,
            `OUT/couplings/<arch>`, `OUT/eval/<arch>`, ...) its lock too.
    """
    from keras_dae import couplings, evaluation, runs, training
    from keras_dae.couplings import evolution
    from keras_dae.couplings.frames import track_frame_set
    from keras_dae.data.tracks import list_tracks
    from keras_dae.spectral import SpectralConfig

    if isinstance(preset, Preset):
        sizes, preset = preset, "custom"
    else:
        sizes = PRESETS[one_of("preset", preset, PRESETS)]
    out = Path(out)
    spectral = SpectralConfig(num_bins=sizes.num_bins)
    root = root or os.environ.get("MUSDB_PATH") or None
    demo = root is None
    settings = {"preset": preset, "sizes": dataclasses.asdict(sizes), "root": str(root) if root else None,
                "is_wav": is_wav, "data": "demo" if demo else "musdb", "seed": seed}
    if prepared is not None:  # only then, so that the settings of earlier reproductions still match
        if demo:
            raise ValueError("`prepared` frames need the MUSDB root of their test tracks; give `root` too.")
        settings.update(prepared=str(prepared), prepared_valid=str(prepared_valid) if prepared_valid else None)
    elif prepared_valid is not None:
        raise ValueError("`prepared_valid` is the validation cache of a `prepared` one; give `prepared` too.")
    if not demo:  # a bad root is reported before anything is written
        test_tracks = list_tracks(root, is_wav=is_wav, subsets="test")
    out.mkdir(parents=True, exist_ok=True)
    # What a killed run left in OUT and its folders (stages.json, reports, per-bin scores); the stages' own
    # directories (OUT/runs/<arch>, OUT/couplings/<arch>, ...) are cleaned by the stage, under its own lock.
    remove_stale_temporaries(out, depth=1)
    stages = _Stages(out, json.loads(json.dumps(settings)))  # as stages.json holds them (tuples as lists)
    if demo:
        root, is_wav = out / DEMO_DATA, True
        num_train, num_test = sizes.demo_tracks
        stages.run("data", lambda: write_demo_musdb(root, num_train, num_test, seconds=sizes.demo_seconds, seed=seed,
                                                    num_valid=sizes.demo_valid))
        test_tracks = list_tracks(root, is_wav=is_wav, subsets="test")
    data_note = _data_note(demo, root, is_wav, sizes, test_tracks, prepared, prepared_valid)
    frames = {}

    def frame_set():
        if "set" not in frames:
            frames["set"] = track_frame_set(test_tracks, spectral=spectral, max_frames=sizes.max_frames, seed=seed)
        return frames["set"]

    # One set of solver options for every fit on the frames, so the calibration is computed once (its cache key).
    solver_options = {"solver": sizes.couplings_solver, "schedule": sizes.couplings_schedule, "loss": "l1",
                      "ridge": 0.0, "seed": seed, "epochs": sizes.couplings_epochs}
    # The other solver, so the verdict can say whether it holds under both (and the evolution's solver).
    lstsq_options = {"solver": "lstsq", "schedule": sizes.couplings_schedule, "loss": "l1", "ridge": 0.0,
                     "seed": seed, "epochs": None}
    for arch in ARCHS:
        run_dir = out / "runs" / arch
        stages.run(f"train/{arch}", lambda: training.train(
            arch, run_dir, spectral=spectral, root=root, is_wav=is_wav, prepared=prepared,
            prepared_valid=prepared_valid, verbose=verbose, seed=seed, **sizes.train_settings()))
        stages.run(f"couplings/{arch}", lambda: couplings.examine(
            run_dir, out / "couplings" / arch, frame_set(), spectral=spectral, overwrite=True, verbose=verbose,
            **solver_options))
        stages.run(f"{LSTSQ}/{arch}", lambda: couplings.examine(
            run_dir, out / LSTSQ / arch, frame_set(), spectral=spectral, overwrite=True, verbose=verbose,
            **lstsq_options))

        def score(arch=arch, run_dir=run_dir):
            # The model's own spectral settings (its run's config.json), its file's digest recorded.
            evaluation.evaluate(run_dir, test_tracks, out / "eval" / arch, methods=("model",), overwrite=True,
                                jobs=jobs)

        stages.run(f"evaluate/{arch}", score)
    per_bin_path, per_bin_lstsq_path = out / "couplings" / PER_BIN, out / LSTSQ / PER_BIN_LSTSQ

    def per_bin(path, options):
        scores = couplings.per_bin_references(frame_set().fit, options, seed, verbose=verbose)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(scores, indent=2))

    stages.run("per-bin references", lambda: per_bin(per_bin_path, solver_options))
    stages.run("per-bin references (lstsq)", lambda: per_bin(per_bin_lstsq_path, lstsq_options))
    stages.run("references", lambda: evaluation.evaluate(
        None, test_tracks, out / "eval" / "references", spectral=spectral, methods=("mixture", "irm"),
        overwrite=True, jobs=jobs))
    couplings_dirs = [out / "couplings" / arch for arch in ARCHS]
    stages.run("compare", lambda: couplings.compare(couplings_dirs, out / "couplings" / "compare"))
    records = {arch: couplings.read_result(out / "couplings" / arch)[1] for arch in ARCHS}
    lstsq_records = {arch: couplings.read_result(out / LSTSQ / arch)[1] for arch in ARCHS}
    per_bin_scores = json.loads(per_bin_path.read_text())
    per_bin_lstsq = json.loads(per_bin_lstsq_path.read_text())
    training_runs = {arch: runs.read_config(out / "runs" / arch) for arch in ARCHS}
    trends = {arch: trend(row["diagonal_energy"] for row in evolution.read_rows(out / "runs" / arch))
              for arch in ARCHS}
    verdict, sentence = finding(records, training=training_runs, per_bin=per_bin_scores,
                                lstsq={"records": lstsq_records, "per_bin": per_bin_lstsq}, trends=trends)
    summaries = {arch: evaluation.summarize(out / "eval" / arch, test_tracks, ("model",))["model"] for arch in ARCHS}
    summaries.update(evaluation.summarize(out / "eval" / "references", test_tracks, ("mixture", "irm")))
    results = Results(settings, data_note, records, summaries, per_bin_scores, verdict, sentence, ARCHS,
                      training=training_runs, lstsq_records=lstsq_records, lstsq_per_bin=per_bin_lstsq, trends=trends)
    stages.run("report", lambda: write_report(out, results))
    return verdict, sentence


def _data_note(demo, root, is_wav, sizes, test_tracks, prepared=None, prepared_valid=None):
    if demo:
        num_train, num_test = sizes.demo_tracks
        return (f"Data: no MUSDB root was given, so {num_train} train, {sizes.demo_valid} validation and {num_test} "
                f"test demo tracks of "
                f"{sizes.demo_seconds:g} s were made (`keras_dae.data.demo`): synthetic tracks with the embedded "
                "6-second MUSDB18 excerpt mixed in, in `data/`. This is demo data, not MUSDB18: the finding says "
                "what these models learned from it, not whether the paper's MUSDB18 result holds, and the real "
                "excerpt is in both subsets, so the scores are not a generalisation figure.")
    layout = "MUSDB18-HQ (WAV)" if is_wav else "MUSDB18 (stems)"
    trained = "its train subset"
    if prepared is not None:
        trained = f"the frame cache `{prepared}`" + (f", validated on `{prepared_valid}`" if prepared_valid else "")
    return (f"Data: {layout} at `{root}`; the models trained on {trained}; couplings and scores on its "
            f"{len(test_tracks)} test tracks.")
