"""`keras-dae couplings` and `keras-dae reproduce`: forward to `keras_dae.couplings` and `keras_dae.reproduce`."""

from pathlib import Path

import click

from keras_dae_cli.common import (STATE, FiniteFloatRange, data_options, import_library, model_spectral_config,
                                  spectral_options, track_progress)


def _frame_set(config, root, is_wav, subset, split, prepared, max_frames, seed):
    from keras_dae.couplings.frames import prepared_frame_set, track_frame_set
    from keras_dae.data.prepare import read_index
    from keras_dae.data.tracks import list_tracks

    if prepared:
        total = len(read_index(prepared, spectral=config)["shards"])
        return prepared_frame_set(prepared, spectral=config, max_frames=max_frames, seed=seed,
                                  progress=track_progress(total))
    tracks = list_tracks(root, is_wav=is_wav, subsets=subset, split=split)
    return track_frame_set(tracks, spectral=config, max_frames=max_frames, seed=seed,
                           progress=track_progress(len(tracks)))


@click.command("couplings")
@click.argument("directories", nargs=-1, type=click.Path(file_okay=False))
@click.option("--model", "model_path", type=click.Path(), default=None,
              help="Trained model: a run directory or its model.keras.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--compare", is_flag=True,
              help="Draw the couplings in DIRECTORIES (outputs of earlier runs) side by side.")
@data_options(subset="test")
@click.option("--prepared", type=click.Path(file_okay=False, exists=True), default=None,
              help="Take the mixture frames from a `keras-dae prepare` cache.")
@spectral_options
@click.option("--max-frames", type=click.IntRange(min=2), default=20_000, show_default=True,
              help="Mixture frames drawn over all tracks (20% held out to measure the fit).")
@click.option("--solver", type=click.Choice(("fit", "lstsq")), default="fit", show_default=True,
              help="NCA with model.fit, or closed-form least squares.")
@click.option("--schedule", type=click.Choice(("fast", "converge", "paper")), default="fast", show_default=True,
              help="fit: mini-batches and early stopping; the same run to the optimum (about twice the epochs); "
                   "or the paper's 600 full-batch epochs.")
@click.option("--loss", type=click.Choice(("l1", "l2")), default="l1", show_default=True, help="fit: loss.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="fit: at most this many epochs (default: the schedule's, 300 fast / 600 converge and paper).")
@click.option("--ridge", type=FiniteFloatRange(min=0), default=0.0, show_default=True,
              help="lstsq: penalty on ||C||^2, relative to the mean frame energy per bin.")
@click.option("--jacobian", is_flag=True, help="Also the model's mean input-output Jacobian.")
@click.option("--jacobian-frames", type=click.IntRange(min=1), default=256, show_default=True,
              help="Frames the mean Jacobian averages over.")
@click.option("--pdf", is_flag=True, help="Figures as PDF too.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace couplings already in --out.")
@click.pass_context
def couplings(ctx, directories, model_path, out, compare, root, is_wav, subset, split, prepared,
              max_frames, solver, schedule, loss, max_epochs, ridge, jacobian, jacobian_frames, pdf, seed, overwrite,
              **spectral):
    """Distil a trained model's couplings matrix C (the paper's NCA) and draw it.

    Fits C so that C x reproduces the model's output on mixture frames of
    musdb's test subset (--root or MUSDB_PATH; otherwise the embedded
    6-second excerpt) and writes couplings.npy, metrics.json and figures to
    --out. Spectral settings default to the model's run (config.json).

    With --compare DIR_A DIR_B ..., draws earlier outputs side by side on
    one colour scale and writes a comparison table instead.
    """
    formats = ("png", "pdf") if pdf else ("png",)
    if compare:
        if model_path:
            raise click.UsageError("--compare takes couplings directories, not --model.")
        import_library()
        from keras_dae.couplings import compare as compare_dirs

        table = compare_dirs(directories, out, formats=formats)
        click.echo(table, nl=False)
        click.echo(f"wrote {out}/comparison.png, comparison.md, comparison.csv")
        return
    if directories:
        raise click.UsageError(f"unexpected arguments {' '.join(directories)} (did you mean --compare?)")
    if not model_path:
        raise click.UsageError("give --model RUN_DIR (or its model.keras), or --compare DIRS.")
    import_library()
    from keras_dae import runs
    from keras_dae.couplings import examine

    loaded = runs.load_run_model(model_path)
    config = model_spectral_config(ctx, loaded, spectral)
    frame_set = _frame_set(config, root, is_wav, subset, split, prepared, max_frames, seed)
    record = examine(
        model_path, out, frame_set, spectral=config, loaded=loaded, solver=solver, schedule=schedule, loss=loss,
        ridge=ridge, epochs=max_epochs, jacobian=jacobian, jacobian_frames=jacobian_frames, formats=formats, seed=seed,
        overwrite=overwrite, verbose=0 if STATE["quiet"] else 1,
    )
    quality = record["couplings"]["fit_quality"]
    click.echo(
        f"{record['model']['arch']}: diagonal energy ratio {record['couplings']['diagonal_energy_ratio']:.3f} "
        f"(calibration {record['trust']['calibration']['diagonal_energy_ratio']:.3f}), held-out relative L1 "
        f"C {quality['matrix']['relative_l1']:.3f} / best diagonal {quality['best_diagonal']['relative_l1']:.3f} "
        f"/ identity {quality['identity']['relative_l1']:.3f}"
    )
    click.echo(f"wrote {out}/couplings.npy, metrics.json and figures")


@click.command("reproduce")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output directory (resumable).")
@data_options(selection=False)
@click.option("--preset", type=click.Choice(("quick", "paper")), default="quick", show_default=True,
              help="quick: sizes that finish in minutes on a CPU; paper: the paper's settings.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--prepared", type=click.Path(file_okay=False, exists=True), default=None,
              help="Train from this frame cache of the root's train tracks (keras-dae prepare).")
@click.option("--prepared-valid", type=click.Path(file_okay=False, exists=True), default=None,
              help="Validate on this frame cache of the root's validation tracks.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Tracks scored at once by the evaluation stages, in worker processes (same scores). "
                   "[default: the usable cores]")
def reproduce(out, root, is_wav, preset, seed, prepared, prepared_valid, jobs):
    """Train dae, deep-dae and sf, distil their couplings, evaluate them and write OUT/report.md and .html.

    Without --root (or MUSDB_PATH) it makes demo tracks from the embedded MUSDB18 clip. Rerunning
    continues where a stopped run ended; finished stages are skipped.
    """
    import_library()
    from keras_dae.reproduce import reproduce as run
    from keras_dae.reproduce import REPORT_HTML, REPORT_MD

    verdict, sentence = run(out, root=root, is_wav=is_wav, preset=preset, seed=seed, jobs=jobs, prepared=prepared,
                            prepared_valid=prepared_valid, verbose=0 if STATE["quiet"] else 1)
    click.echo(sentence)
    click.echo(f"report: {Path(out) / REPORT_MD} and {Path(out) / REPORT_HTML}")
