"""The `keras-dae` command line (installed as the package `keras_dae_cli`).

Each command parses its options, configures logging, calls one library
function and says where results went. The library is imported inside the
commands, so `keras-dae --help` and `--version` answer without loading
TensorFlow.
"""

import sys

import click

from keras_dae_cli import analysis_commands, data_commands, model_commands, separation_commands, train_commands
from keras_dae_cli.common import STATE, command_flags, configure_logging, error_message, to_flags, usage_message


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-dae", prog_name="keras-dae")
@click.option("-v", "--verbose", count=True, help="More output; -vv also shows tracebacks.")
@click.option("--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx, verbose, quiet):
    """Train and explain denoising-autoencoder singing-voice separators.

    Models of Mimilakis et al., "Examining the Mapping Functions of Denoising
    Autoencoders in Singing Voice Separation" (IEEE/ACM TASLP, vol. 28, 2020).
    """
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet exclude each other.")
    ctx.obj = {"verbose": verbose, "quiet": quiet}
    STATE["verbose"] = verbose
    STATE["quiet"] = quiet
    # The library's messages name its parameters; this command's options show them as flags (`to_flags`).
    STATE["flags"] = command_flags(ctx.command.get_command(ctx, ctx.invoked_subcommand or ""))
    STATE["command"] = ctx.invoked_subcommand
    configure_logging(verbose, quiet)


COMMANDS = (
    model_commands.models,
    model_commands.spectrogram,
    data_commands.synth,
    data_commands.prepare,
    data_commands.info,
    train_commands.train,
    analysis_commands.couplings,
    analysis_commands.reproduce,
    separation_commands.separate,
    separation_commands.evaluate,
    separation_commands.export,
)
for _command in COMMANDS:
    cli.add_command(_command)


def main(argv=None):
    """Entry point of the `keras-dae` console script.

    Runs click in non-standalone mode so that every error a user can cause is
    printed as exactly one line on stderr, with exit code 2 for usage errors
    (click's, and the library's `ParameterError` about one of the command's
    options, `usage_message`) and 1 for the rest (`error_message`: bad
    files, data, a full disk, too little memory). The library's errors name
    its Python parameters; `to_flags` shows them as the command's flags.
    Any other exception is a bug and keeps its traceback.
    """
    STATE["flags"] = {}
    STATE["command"] = None
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
    except Exception as error:
        usage = usage_message(error)
        message = None if usage else error_message(error)
        if STATE["verbose"] >= 2 or (usage is None and message is None):
            raise
        if usage:
            click.echo(usage, err=True)
            sys.exit(2)
        click.echo(f"keras-dae: error: {to_flags(message)} (rerun with -vv for details)", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
