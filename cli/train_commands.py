"""`keras-dae train`: forwards its options to `keras_dae.training.train`."""

import click

from keras_dae_cli.common import (
    ARCH_NAMES,
    STATE,
    FiniteFloatRange,
    data_options,
    import_library,
    spectral_config,
    spectral_options,
)


@click.command("train")
@click.option("--arch", type=click.Choice(ARCH_NAMES), default="sf", show_default=True,
              help="Architecture.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run directory (re-running resumes it).")
@data_options(selection=False)
@click.option("--prepared", type=click.Path(file_okay=False, exists=True), default=None,
              help="Train on a frame cache from `keras-dae prepare` instead of streaming.")
@click.option("--prepared-valid", type=click.Path(file_okay=False, exists=True), default=None,
              help="Validate on this frame cache.")
@spectral_options
@click.option("--hidden-size", type=click.IntRange(min=1), default=None,
              help="Encoder width H. Default: --num-bins.")
@click.option("--loss", type=click.Choice(("kl", "l1", "l2")), default="kl", show_default=True,
              help="Generalised Kullback-Leibler (the authors'), L1 or L2.")
@click.option("--learning-rate", type=FiniteFloatRange(min=0, min_open=True), default=1e-4,
              show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Frames per batch (global, over all replicas).")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Default: one excerpt per track (streaming) or every cached frame.")
@click.option("--clip-norm", type=FiniteFloatRange(min=0, min_open=True), default=0.5,
              show_default=True, help="Global gradient-norm clipping.")
@click.option("--patience", type=click.IntRange(min=1), default=20, show_default=True,
              help="Converged after this many epochs without an improvement by --min-delta "
                   "(the learning rate halves after half of them).")
@click.option("--min-delta", type=FiniteFloatRange(min=0, max=1, max_open=True), default=1e-3, show_default=True,
              help="Improvement of the monitored loss, relative to its best, that counts.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--excerpt-seconds", type=FiniteFloatRange(min=0, min_open=True), default=6.0,
              show_default=True, help="Excerpt of each track per epoch (streaming).")
@click.option("--remix", is_flag=True, help="Vocals of one track over the accompaniment of another.")
@click.option("--random-gain", is_flag=True, help="Random gain per source.")
@click.option("--strategy", type=click.Choice(("default", "mirrored", "multiworker")),
              default="default", show_default=True,
              help="tf.distribute strategy (multiworker reads TF_CONFIG).")
@click.option("--steps-per-execution", type=click.IntRange(min=1), default=1, show_default=True,
              help="Training steps per call into the TensorFlow graph.")
@click.option("--couplings-every", type=click.IntRange(min=1), default=None,
              help="Distil the couplings C (least squares, held-out frames) every K epochs: "
                   "couplings_evolution.csv/.npz and TensorBoard.")
@click.option("--couplings-jacobian", is_flag=True,
              help="With --couplings-every, also record the mean Jacobian's diagonal energy.")
@click.option("--overwrite", is_flag=True, help="Start over even if --out holds a run.")
def train(arch, out, root, is_wav, prepared, prepared_valid, num_bins,
          window_length, fft_length, hop_length, overwrite, **settings):
    """Train a DAE (dae, deep-dae or sf) and write a run directory.

    With --root (or MUSDB_PATH), trains on musdb's train split and validates
    on its 14-track valid split. Without --root, --prepared or MUSDB_PATH,
    trains on the embedded 6-second MUSDB18 excerpt (last 20% held out).
    """
    import_library()
    from keras_dae.training import train as train_model

    config = spectral_config(num_bins, window_length, fft_length, hop_length)
    _, run_dir = train_model(
        arch, out, spectral=config, root=root, is_wav=is_wav, prepared=prepared,
        prepared_valid=prepared_valid, overwrite=overwrite, verbose=0 if STATE["quiet"] else 1,
        **settings,
    )
    # What is there, never a model.keras that is not: `train` raises when a run ends without one (a worker
    # other than the chief may not see the chief's files).
    written = [name for name in ("model.keras", "config.json", "history.csv") if (run_dir / name).is_file()]
    written += ["logs/"] if (run_dir / "logs").is_dir() else []
    click.echo(f"run directory: {run_dir} ({', '.join(written) or 'nothing written here'})")
