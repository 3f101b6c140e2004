"""The `glmtui` command line. Imports stay light: help and version start fast."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from glmtui import __version__
from glmtui.commands.agents import agents_group
from glmtui.commands.common import State, fail, settle
from glmtui.commands.chats import chats_group
from glmtui.commands.config import config_group, init
from glmtui.commands.engines import engines_group
from glmtui.commands.env import env_group, logs
from glmtui.commands.image import image_group
from glmtui.commands.models import models_group
from glmtui.commands.plan import plan_group, runs_group
from glmtui.commands.serve import serve
from glmtui.commands.system import clean, completion, version
from glmtui.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BadInput


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option("--run", "run_plan", metavar="PLAN", help="Run PLAN headless (the same as `glmtui plan run PLAN`).")
@click.version_option(__version__, "-V", "--version", prog_name="glmtui")
@click.pass_context
def cli(ctx: click.Context, debug: bool, run_plan: str | None) -> None:
    """glmtui: AI coding work inside isolated Docker environments.

    Without a command, the terminal UI opens (`glmtui PLAN` opens it with PLAN).
    """
    ctx.obj = State(debug=debug)
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


@click.command("tui", hidden=True)
@click.argument("plan", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
def tui(plan: Path | None) -> None:
    """The full-screen terminal UI (what `glmtui [PLAN]` opens)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInput("the terminal UI needs a terminal", hint="for scripts and CI: glmtui --run PLAN")
    from glmtui.tui.app import run_tui

    settle()
    sys.exit(run_tui(plan))


for command in (tui, init, env_group, logs, plan_group, runs_group, agents_group, serve, models_group, chats_group,
                config_group, image_group, engines_group, clean, version, completion):
    cli.add_command(command)


def expand_args(args: list[str]) -> list[str]:
    """`glmtui --run PLAN ...` is `glmtui plan run PLAN ...`; `glmtui PLAN` is the TUI with PLAN."""
    for index, arg in enumerate(args):
        if arg == "--run":
            return args[:index] + ["plan", "run"] + args[index + 1 :]
        if arg.startswith("--run="):
            return args[:index] + ["plan", "run", arg.split("=", 1)[1]] + args[index + 1 :]
        if not arg.startswith("-"):
            if arg not in cli.commands and (arg.endswith((".yaml", ".yml")) or Path(arg).is_file()):
                return args[:index] + ["tui"] + args[index:]
            break
    return args


def entry() -> NoReturn:
    """The `glmtui` command: main(), then an exit that skips the interpreter's tear-down (about
    40 ms of freeing modules, a tenth of a short run) once everything is written. Nothing of
    glmtui needs it: records are committed and files closed when a command returns.

    The collector is off while modules load (about 10 ms of a start); `settle()` turns it on
    where a command's long part begins."""
    gc.disable()
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):  # sys.exit("message"): Python's own convention
        print(code, file=sys.stderr)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader went away (`| head`), or a stream was closed
        pass
    os._exit(code or 0)


def main() -> None:
    args = expand_args(sys.argv[1:])
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
