"""The `keras-dae` command line (installed as the package `keras_dae_cli`).

Each command parses its options, configures logging, calls one library
function and says where results went. The library is imported inside the
commands, so `keras-dae --help` and `--version` answer without loading
TensorFlow.
"""

import logging
import os
import sys

import click

log = logging.getLogger("keras_dae")

ARCH_NAMES = ("dae", "deep-dae", "sf")
# Exceptions that a user's input can cause inside the library: shown as one
# line (with `-vv`, as a traceback).
USER_ERRORS = (ValueError, OSError, RuntimeError)
_STATE = {"verbose": 0}


def _import_library():
    """Imports keras_dae, hiding TensorFlow's C++ start-up log unless -v.

    TensorFlow 2.21 logs through absl before `TF_CPP_MIN_LOG_LEVEL` applies
    (oneDNN, CUDA probing, a `cuInit` error on machines without a GPU), so the
    only way to keep a command's output to its own lines is to point file
    descriptor 2 elsewhere while TensorFlow loads and probes its devices.
    Python exceptions raised meanwhile still propagate and are shown.
    """
    if _STATE["verbose"] or "tensorflow" in sys.modules:
        import keras_dae  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        import keras_dae  # noqa: F401

        tf.config.list_physical_devices("GPU")
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _configure_logging(verbose, quiet):
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    # Keras' own progress bars follow --quiet too.
    for name in ("tensorflow", "absl", "h5py", "matplotlib", "numba", "PIL"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-dae", prog_name="keras-dae")
@click.option("-v", "--verbose", count=True, help="More output; -vv also shows tracebacks.")
@click.option("--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx, verbose, quiet):
    """Train and explain denoising-autoencoder singing-voice separators.

    Models of Mimilakis et al., "Examining the Mapping Functions of Denoising
    Autoencoders in Singing Voice Separation" (TASLP 2019).
    """
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet exclude each other.")
    ctx.obj = {"verbose": verbose, "quiet": quiet}
    _STATE["verbose"] = verbose
    _configure_logging(verbose, quiet)


@cli.command()
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
    _import_library()
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


@cli.command()
@click.argument("audio", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="PNG file to write.")
@click.option("--num-bins", type=click.IntRange(min=1), default=2049, show_default=True,
              help="Lowest bins to show (2049 = all, up to the Nyquist frequency).")
def spectrogram(audio, out, num_bins):
    """Plot the spectrogram of AUDIO (WAV/FLAC/OGG), or of the embedded example.

    Without AUDIO, plots the mixture, vocals and accompaniment of the real
    6-second MUSDB18 excerpt that ships with stempeg.
    """
    _import_library()
    from keras_dae.plots import plot_audio_spectrograms

    written = plot_audio_spectrograms(audio, out, num_bins=num_bins)
    click.echo(f"wrote {', '.join(str(path) for path in written)}")


from keras_dae_cli.data_commands import synth  # noqa: E402

cli.add_command(synth)


def main(argv=None):
    """Entry point of the `keras-dae` console script.

    Runs click in non-standalone mode so that every error a user can cause is
    printed as exactly one line on stderr, with exit code 2 for usage errors
    and 1 for the rest.
    """
    try:
        result = cli.main(args=argv, prog_name="keras-dae", standalone_mode=False)
    except click.ClickException as error:
        where = error.ctx.command_path if getattr(error, "ctx", None) else "keras-dae"
        hint = f" Try '{where} --help'." if isinstance(error, click.UsageError) else ""
        click.echo(f"{where}: error: {error.format_message()}{hint}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("keras-dae: aborted", err=True)
        sys.exit(130)
    except USER_ERRORS as error:
        if _STATE["verbose"] >= 2:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        click.echo(f"keras-dae: error: {message} (rerun with -vv for details)", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
