"""Model commands of `keras-dae`: looking at the architectures and the front end."""

from pathlib import Path

import click

from keras_dae_cli.common import ARCH_NAMES, import_library


@click.command()
@click.option(
    "--arch",
    "archs",
    type=click.Choice(ARCH_NAMES),
    multiple=True,
    help="Architecture to show (repeatable). Default: all three.",
)
@click.option("--num-bins", type=click.IntRange(min=1), default=2049, show_default=True,
              help="Frequency bins N of the input and output frames.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=None,
              help="Encoder width H. Default: equal to --num-bins.")
def models(archs, num_bins, hidden_size):
    """Print each architecture's layers and parameter count."""
    import_library()
    from keras_dae.models import build_model, describe_model

    for arch in archs or ARCH_NAMES:
        model = build_model(arch, num_bins=num_bins, hidden_size=hidden_size)
        model.summary(print_fn=click.echo)
        for weight in model.weights:
            click.echo(f"  {weight.path:<40} {str(tuple(weight.shape)):>14}")
        info = describe_model(model)
        click.echo(
            f"{arch}: num_bins={info['num_bins']} hidden_size={info['hidden_size']} "
            f"parameters={info['num_params']:,}\n"
        )


@click.command()
@click.argument("audio", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="PNG file to write.")
@click.option("--num-bins", type=click.IntRange(min=1), default=2049, show_default=True,
              help="Lowest bins to show (2049 = all, up to the Nyquist frequency).")
def spectrogram(audio, out, num_bins):
    """Plot the spectrogram of AUDIO (any format ffmpeg decodes), or of the embedded example.

    Without AUDIO, plots the mixture, vocals and accompaniment of the real
    6-second MUSDB18 excerpt that ships with stempeg.
    """
    import_library()
    from keras_dae.atomic import remove_stale_temporaries
    from keras_dae.plots import plot_audio_spectrograms

    # One file, not a directory: no lock; a killed earlier run's temporary of this very file goes.
    target = Path(out).with_suffix(".png")
    remove_stale_temporaries(target.parent, finals={target.name})
    written = plot_audio_spectrograms(audio, out, num_bins=num_bins)
    click.echo(f"wrote {', '.join(str(path) for path in written)}")
