"""`keras-dae separate` and `keras-dae evaluate`: forward to `keras_dae.separation` and `keras_dae.evaluation`."""

import sys

import click

from keras_dae_cli.common import (STATE, data_options, error_message, import_library, log, model_spectral_config,
                                  spectral_options, to_flags, track_progress)


def _load(ctx, model_path, spectral):
    """`(model, SpectralConfig)` of a run directory or `.keras` file (ValueError if unusable)."""
    from keras_dae import runs
    from keras_dae.separation import resolve

    loaded = runs.load_run_model(model_path)
    return resolve(loaded[0], spectral=model_spectral_config(ctx, loaded, spectral))


def _progress_for(path):
    """A progress bar over the seconds of `path` on a terminal, opened at the first update."""
    if STATE["quiet"] or not sys.stdout.isatty():
        return None
    state = {}

    def update(done, total):
        if "bar" not in state:
            state["bar"] = click.progressbar(length=max(int(round(total)), 1), label=click.format_filename(path),
                                             show_eta=True, show_pos=True, item_show_func=None)
            state["bar"].__enter__()
            state["shown"] = 0
        seconds = int(done)
        state["bar"].update(seconds - state["shown"])
        state["shown"] = seconds
        if done >= total:
            state["bar"].update(state["bar"].length - state["shown"])
            state["bar"].__exit__(None, None, None)

    return update


class _FilesBar:
    """A progress bar over the files separated in worker processes (several at once: no per-file bar), on a
    terminal's stderr, drawn as each file finishes; `clear()` erases it before a line is printed."""

    def __init__(self, num_files):
        self.bar = click.progressbar(length=num_files, label="files", file=sys.stderr, show_eta=True,
                                     show_pos=True)
        self.closed = False

    def __call__(self, num_finished, num_files):
        self.bar.update(num_finished - self.bar.pos)
        if num_finished >= num_files:
            self.close()

    def clear(self):
        if self.bar.pos > 0 and not self.closed:
            click.echo("\r\033[K", nl=False, err=True)

    def close(self):
        """Ends the bar on its own line, the cursor shown again (also after an error)."""
        if self.bar.pos > 0 and not self.closed:
            self.closed = True
            self.bar.render_finish()


def _files_progress(num_files, jobs):
    """A `_FilesBar` when several files go to worker processes and stderr is a terminal, else None."""
    from keras_dae.separation.files import default_jobs

    jobs = jobs or default_jobs()
    if STATE["quiet"] or not sys.stderr.isatty() or min(jobs, num_files) <= 1:
        return None
    return _FilesBar(num_files)


@click.command("separate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_path", type=click.Path(), required=True,
              help="Trained model: a run directory or its model.keras.")
@click.option("--out", type=click.Path(file_okay=False), default="separated", show_default=True,
              help="Output root: OUT/<input name>/vocals.wav and accompaniment.wav.")
@click.option("--mask", type=click.Choice(("subtract", "soft")), default="subtract", show_default=True,
              help="Vocals: the model's magnitude with the mixture phase (accompaniment = mixture - vocals), "
                   "or a power ratio mask from both estimates.")
@click.option("--wiener", type=click.IntRange(min=0), default=0, show_default=True,
              help="Iterations of multichannel Wiener filtering (norbert); 0: none.")
@click.option("--chunk-frames", type=click.IntRange(min=1), default=None,
              help="STFT frames processed at once (bounds memory). Default: 2048, or 512 with --wiener.")
@spectral_options
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Files separated at once, each in its own process holding one model and one chunk "
                   "(default: one per 4 usable cores, as one separation uses several; 1: one after another "
                   "in this process).")
@click.pass_context
def separate(ctx, inputs, model_path, out, mask, wiener, chunk_frames, overwrite, jobs, **spectral):
    """Separate each INPUT into vocals.wav and accompaniment.wav.

    Reads anything ffmpeg decodes (WAV, FLAC, OGG, MP3, M4A; for .stem.mp4 the
    mixture), mono or stereo, at any sample rate; the outputs are float32
    WAVs with the input's rate, length and channels. Long files are processed
    in chunks, so memory does not grow with their length. A file that fails
    is reported in one line and the others are still processed; the exit
    code is 1 if any failed. --jobs N separates N files at once in worker
    processes (the same outputs, reported in the same order).

    Spectral settings default to the model's run (config.json).
    """
    import_library()
    from keras_dae import runs
    from keras_dae.separation import separate_files

    model, config = _load(ctx, model_path, spectral)
    files_bar = _files_progress(len(inputs), jobs)

    def done(path, outputs):
        if files_bar:
            files_bar.clear()
        click.echo(f"{click.format_filename(path)}: wrote {outputs['vocals'].parent}/vocals.wav, accompaniment.wav")

    def failed(path, error):
        if files_bar:
            files_bar.clear()
        click.echo(f"keras-dae: error: {to_flags(error_message(error) or str(error))}", err=True)

    try:
        finished, errors = separate_files(
            model, list(inputs), out, spectral=config, mask=mask, wiener=wiener, chunk_frames=chunk_frames,
            overwrite=overwrite, on_done=done, on_error=failed, progress_for=None if files_bar else _progress_for,
            on_finish=files_bar, model_file=runs.model_file(model_path), jobs=jobs,
        )
    finally:
        if files_bar:
            files_bar.close()
    if errors and len(inputs) > 1:
        log.warning("%d of %d files failed; %d separated.", len(errors), len(inputs), len(finished))
    return 1 if errors else 0


@click.command("evaluate")
@click.option("--model", "model_path", type=click.Path(), required=True,
              help="Trained model: a run directory or its model.keras.")
@data_options(subset="test")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output directory: museval JSON per method and track, results.md/csv/json.")
@click.option("--mask", type=click.Choice(("subtract", "soft")), default="subtract", show_default=True,
              help="Separation mask (see `keras-dae separate`).")
@click.option("--wiener", type=click.IntRange(min=0), default=0, show_default=True,
              help="Iterations of multichannel Wiener filtering; 0: none.")
@click.option("--references/--no-references", default=True, show_default=True,
              help="Also score the mixture (floor) and the ideal ratio mask (ceiling).")
@spectral_options
@click.option("--overwrite", is_flag=True, help="Recompute every track (default: resume, skipping finished ones).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Tracks scored at once, each in its own process holding one model and one track "
                   "(default: the usable cores, no more than the available memory holds for the longest "
                   "track; 1: one after another in this process).")
@click.pass_context
def evaluate(ctx, model_path, root, is_wav, subset, split, out, mask, wiener, references, overwrite, jobs,
             **spectral):
    """Score a model with museval (BSS Eval v4) on MUSDB tracks.

    Separates every track of --subset (default test; --root or MUSDB_PATH,
    otherwise the embedded 6-second excerpt), saves each track's museval JSON
    as it finishes, and prints SDR, SIR, SAR and ISR of vocals and
    accompaniment: the median over each track's 1-second windows, then the
    median and the mean over tracks. Rerunning resumes where it stopped.
    --jobs N scores N tracks at once in worker processes (same scores).
    """
    import_library()
    from keras_dae import evaluation, runs
    from keras_dae.data.tracks import list_tracks
    from keras_dae.locking import directory_lock

    model, config = _load(ctx, model_path, spectral)
    tracks = list_tracks(root, is_wav=is_wav, subsets=subset, split=split)
    progress = track_progress(len(tracks))
    finished = []

    def on_track(index, track, computed):  # in the order tracks finish (any order with --jobs > 1)
        finished.append(index)
        if progress:
            progress(len(finished))
        if not computed:
            log.info("%s: finished earlier, skipped", track.name)

    methods = evaluation.METHODS if references else ("model",)
    with directory_lock(out):  # one lock over the scores and the summary
        summary = evaluation.evaluate(
            model, tracks, out, spectral=config, model_file=runs.model_file(model_path), mask=mask, wiener=wiener,
            methods=methods, overwrite=overwrite, on_track=on_track, jobs=jobs,
        )
        table = evaluation.write_summary(out, summary)
    click.echo(table, nl=False)
    click.echo(f"wrote {out}/results.md, results.csv, results.json and one museval JSON per track")


@click.command("export")
@click.option("--model", "model_path", type=click.Path(), required=True,
              help="Trained model: a run directory or its model.keras.")
@click.option("--out", "base", type=click.Path(file_okay=False), required=True,
              help="Model base path of TF Serving: writes OUT/NAME/VERSION/.")
@click.option("--name", default=None, help="Model name (default: the run directory's name).")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Version number (default: one more than the highest under OUT/NAME).")
@spectral_options
@click.pass_context
def export(ctx, model_path, base, name, version, **spectral):
    """Export a trained model as a SavedModel for TensorFlow Serving.

    Signatures: serving_default (waveforms (batch, samples) at the model's
    rate -> vocals, accompaniment) and spectrogram (magnitudes (batch,
    frames, num_bins) -> vocals). The version appears atomically.
    """
    import_library()
    from keras_dae.export import default_name, export_model

    model, config = _load(ctx, model_path, spectral)
    # An empty --name is refused by the library (a usage error), not replaced by the default.
    name = default_name(model_path) if name is None else name
    target = export_model(model, base, spectral=config, name=name, version=version)
    click.echo(f"wrote {target} (signatures serving_default, spectrogram; {config.sample_rate} Hz mono waveforms)")
