"""What every `keras-dae` command shares: state, logging, importing the library."""

import logging
import os
import sys

import click

log = logging.getLogger("keras_dae")

ARCH_NAMES = ("dae", "deep-dae", "sf")
# Exceptions that a user's input can cause inside the library: shown as one
# line (with `-vv`, as a traceback).
USER_ERRORS = (ValueError, OSError, RuntimeError)
STATE = {"verbose": 0, "quiet": False}


def import_library():
    """Imports keras_dae, hiding TensorFlow's C++ start-up log unless -v.

    TensorFlow 2.21 logs through absl before `TF_CPP_MIN_LOG_LEVEL` applies
    (oneDNN, CUDA probing, a `cuInit` error on machines without a GPU), so the
    only way to keep a command's output to its own lines is to point file
    descriptor 2 elsewhere while TensorFlow loads and probes its devices.
    Python exceptions raised meanwhile still propagate and are shown.
    """
    if STATE["verbose"] or "tensorflow" in sys.modules:
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


def track_progress(total):
    """A Keras progress bar's `update` over `total` tracks, or None under --quiet."""
    if STATE["quiet"]:
        return None
    import keras

    return keras.utils.Progbar(total, unit_name="track").update


def configure_logging(verbose, quiet):
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    # Keras' own progress bars follow --quiet too.
    for name in ("tensorflow", "absl", "h5py", "matplotlib", "numba", "PIL"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def data_options(subset="train", selection=True):
    """`--root/--is-wav` and (with `selection`) `--subset/--split`, shared by commands."""

    def decorate(command):
        options = [
            click.option("--root", type=click.Path(file_okay=False), envvar="MUSDB_PATH",
                         show_envvar=True, default=None,
                         help="MUSDB18 root (holds train/ and test/). Default: the embedded "
                              "6-second MUSDB18 excerpt."),
            click.option("--is-wav", is_flag=True,
                         help="The root is MUSDB18-HQ (WAV folders), not .stem.mp4 files."),
            click.option("--subset", type=click.Choice(("train", "test")), default=subset,
                         show_default=True, help="MUSDB subset."),
            click.option("--split", type=click.Choice(("train", "valid")), default=None,
                         help="musdb's split of the train subset (valid = its 14 tracks)."),
        ]
        if not selection:
            options = options[:2]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def spectral_options(command):
    """`--num-bins/--window-length/--fft-length/--hop-length` (the paper's defaults)."""
    options = [
        click.option("--num-bins", type=click.IntRange(min=1), default=2049, show_default=True,
                     help="Frequency bins N kept from the bottom of the spectrum."),
        click.option("--window-length", type=click.IntRange(min=2), default=2049,
                     show_default=True, help="Hamming window length in samples."),
        click.option("--fft-length", type=click.IntRange(min=2), default=4096,
                     show_default=True, help="FFT size."),
        click.option("--hop-length", type=click.IntRange(min=1), default=384,
                     show_default=True, help="Hop between frames in samples."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def model_spectral_config(ctx, loaded, values):
    """A trained model's spectral settings: its run's (`config.json`), unless given on the command line.

    `loaded` is `runs.load_run_model`'s `(model, info, run_config)`. Without a
    run config, unset options take the paper's values and the model's `num_bins`.
    """
    from keras_dae.spectral import SpectralConfig

    _, info, run_config = loaded
    settings = dict((run_config or {}).get("spectral") or {"num_bins": info["num_bins"]})
    for name, value in values.items():
        if name not in settings or ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            settings[name] = value
    return SpectralConfig.from_dict(settings)


def spectral_config(num_bins, window_length, fft_length, hop_length):
    """The `SpectralConfig` of the spectral options (ValueError if inconsistent)."""
    from keras_dae.spectral import SpectralConfig

    return SpectralConfig(
        num_bins=num_bins, window_length=window_length, fft_length=fft_length, hop_length=hop_length
    )
