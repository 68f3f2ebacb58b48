"""What every `keras-dae` command shares: state, logging, importing the library, its messages as flags."""

import importlib.util
import logging
import math
import os
import re
import sys
from pathlib import Path

import click

log = logging.getLogger("keras_dae")

# Exceptions that a user's input can cause inside the library: shown as one
# line (with `-vv`, as a traceback).
USER_ERRORS = (ValueError, OSError, RuntimeError)
# `flags`: the running command's Python parameter names -> its options (`command_flags`); `command`: its name.
STATE = {"verbose": 0, "quiet": False, "flags": {}, "command": None}


def library_module(name):
    """The module `keras_dae.NAME`, loaded without running `keras_dae/__init__.py` (which imports TensorFlow).

    For the modules that import nothing of the package (`names`, `errors`).
    `find_spec` of the top-level package locates it without importing it;
    the module is registered as `keras_dae.NAME`, so that importing the
    library later reuses it instead of loading it a second time.
    """
    qualified = f"keras_dae.{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    package = importlib.util.find_spec("keras_dae")
    path = Path(next(iter(package.submodule_search_locations))) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(qualified, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module


def library_names():
    """The module `keras_dae.names` (`library_module`)."""
    return library_module("names")


# The library's architectures (`keras_dae.ARCHITECTURES`), without importing TensorFlow.
ARCH_NAMES = library_names().ARCHITECTURE_NAMES

# A parameter mention of the library's messages: `name` or `name=value` in backticks.
_MENTION = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`")


def command_flags(command):
    """`{python parameter name: click.Option}` of a command's options (`--out` is `out`, `--model` `model_path`)."""
    if command is None:
        return {}
    return {param.name: param for param in command.params
            if isinstance(param, click.Option) and any(opt.startswith("--") for opt in param.opts)}


def _flag(option, value):
    """How a user passes `name=value` (or names `name`, value None) on the command line."""
    long = next(opt for opt in option.opts if opt.startswith("--"))
    if value is None:
        return long
    if option.is_flag and value in ("True", "False"):
        if value == "True":
            return long
        off = next((opt for opt in option.secondary_opts if opt.startswith("--")), None)
        return off or f"no {long}"
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]  # a repr'd string: --strategy mirrored, not --strategy 'mirrored'
    return f"{long} {value}"


def to_flags(message, flags=None):
    """A library message with its parameter mentions rewritten as the running command's flags.

    The library names the parameters a caller should set in backticks,
    `` `name` `` or `` `name=value` `` (`keras_dae.checks`); for the options of
    the running command (`flags`, default `STATE["flags"]`) these become
    `--name` / `--name value` / `--flag` (`True`) / `no --flag` (`False`):

        "choose another `out` or add `overwrite=True`" -> "choose another --out or add --overwrite"
        "use `num_bins=64`"                               -> "use --num-bins 64"

    Mentions of other names and everything else (`Received: name=value`,
    paths, numbers) are left as they are.
    """
    flags = STATE["flags"] if flags is None else flags

    def replace(match):
        name, value = match.groups()
        return _flag(flags[name], value) if name in flags else match.group(0)

    return _MENTION.sub(replace, message)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_message(error):
    """The one line `main` prints for an error that input, data, memory or the disk can cause; None for a bug.

    USER_ERRORS as their first line (a full disk, a read-only file system or
    a file where a directory should be as `keras_dae.errors.disk_message`
    says it, with the path); `MemoryError` and TensorFlow's errors
    (`tf.errors.OpError`: out of memory, corrupted data, ...) in one line of
    `keras_dae.errors`. Anything else is a bug, shown as a traceback.
    """
    errors = library_module("errors")
    if isinstance(error, MemoryError):
        return errors.memory_message(error)
    if errors.is_tensorflow_error(error):
        return errors.disk_message(error) or errors.tensorflow_message(error)
    if isinstance(error, USER_ERRORS):
        return (errors.disk_message(error) if isinstance(error, OSError) else None) or _first_line(error)
    return None


def usage_message(error):
    """The usage-error line (exit code 2) of a library `ParameterError` about an option of the running command.

    The library raises `keras_dae.checks.ParameterError` for a value that is
    wrong in itself (`num_bins` above the FFT's bins, `window_length` above
    `fft_length`); when that parameter is one of the running command's
    options, the mistake is on the command line. None otherwise.
    """
    checks = sys.modules.get("keras_dae.checks")
    if checks is None or not isinstance(error, checks.ParameterError):
        return None
    option = STATE["flags"].get(error.parameter)
    if option is None:
        return None
    long = next(opt for opt in option.opts if opt.startswith("--"))
    command = f"keras-dae {STATE['command']}" if STATE["command"] else "keras-dae"
    message = to_flags(_first_line(error)).rstrip()
    message += "" if message.endswith((".", "!", "?")) else "."
    return f"{command}: error: Invalid value for '{long}': {message} Try '{command} --help'."


class _FlagsFilter(logging.Filter):
    """Shows the library's log messages with the command's flags (`to_flags`)."""

    def filter(self, record):
        if record.name.startswith("keras_dae") and STATE["flags"]:
            message = record.getMessage()
            rewritten = to_flags(message)
            if rewritten != message:
                record.msg, record.args = rewritten, None
        return True


def import_library():
    """Imports keras_dae, hiding TensorFlow's C++ start-up log unless -v.

    TensorFlow 2.21 logs through absl before `TF_CPP_MIN_LOG_LEVEL` applies
    (oneDNN, CUDA probing, a `cuInit` error on machines without a GPU), so the
    only way to keep a command's output to its own lines is to point file
    descriptor 2 elsewhere while TensorFlow loads and probes its devices.
    Python exceptions raised meanwhile still propagate and are shown.
    """
    # Set before TensorFlow loads (below it loads before `keras_dae`, which sets the same default): the fd-2
    # trick covers only the import, and TensorFlow logs INFO lines long after it (`I0000 ...
    # tf_record_dataset_op.cc ...` reading a frame cache). INFO and WARNING lines only with -vv; a value the
    # user set wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if STATE["verbose"] >= 2 else "2")
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
    for handler in logging.getLogger().handlers:
        handler.addFilter(_FlagsFilter())
    # Keras' own progress bars follow --quiet too.
    for name in ("tensorflow", "absl", "h5py", "matplotlib", "numba", "PIL"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


class FiniteFloatRange(click.FloatRange):
    """`click.FloatRange` that also refuses `nan` and `inf` (which it lets through: `nan` compares false).

    The library refuses them too (`keras_dae.checks`); here they are the
    usage errors they are (exit code 2), before anything is loaded.
    """

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


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
