"""The `glmtui` command line. Imports stay light: help and version start fast."""

from __future__ import annotations

import sys

import click

from glmtui import __version__
from glmtui.commands.common import State, fail
from glmtui.commands.config import config_group, init
from glmtui.commands.env import env_group, logs
from glmtui.commands.image import image_group
from glmtui.commands.plan import plan_group, runs_group
from glmtui.commands.system import clean, completion, version
from glmtui.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option("--run", "run_plan", metavar="PLAN", help="Run PLAN headless (the same as `glmtui plan run PLAN`).")
@click.version_option(__version__, "-V", "--version", prog_name="glmtui")
@click.pass_context
def cli(ctx: click.Context, debug: bool, run_plan: str | None) -> None:
    """glmtui: AI coding work inside isolated Docker environments."""
    ctx.obj = State(debug=debug)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for command in (init, env_group, logs, plan_group, runs_group, config_group, image_group, clean, version, completion):
    cli.add_command(command)


def expand_run(args: list[str]) -> list[str]:
    """`glmtui [--debug] --run PLAN ...` is `glmtui [--debug] plan run PLAN ...`."""
    for index, arg in enumerate(args):
        if arg == "--run":
            return args[:index] + ["plan", "run"] + args[index + 1 :]
        if arg.startswith("--run="):
            return args[:index] + ["plan", "run", arg.split("=", 1)[1]] + args[index + 1 :]
        if not arg.startswith("-"):
            break
    return args


def main() -> None:
    args = expand_run(sys.argv[1:])
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="glmtui", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("glmtui: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        click.echo("glmtui: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:  # noqa: BLE001 - one line for the user, the traceback with --debug
        fail(err, debug)
