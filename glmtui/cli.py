"""The `glmtui` command line. Imports stay light: help and version start fast."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from glmtui import __version__
from glmtui.commands.common import State, fail, settle
from glmtui.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BadInput

# Each command by where it is defined: its module is imported when the command runs, so
# `glmtui --run` loads the plan commands only (--help and completion load them all).
COMMANDS = {
    "agents": "glmtui.commands.agents:agents_group",
    "chats": "glmtui.commands.chats:chats_group",
    "clean": "glmtui.commands.system:clean",
    "completion": "glmtui.commands.system:completion",
    "config": "glmtui.commands.config:config_group",
    "engines": "glmtui.commands.engines:engines_group",
    "env": "glmtui.commands.env:env_group",
    "image": "glmtui.commands.image:image_group",
    "init": "glmtui.commands.config:init",
    "logs": "glmtui.commands.env:logs",
    "mcp": "glmtui.commands.mcp:mcp",
    "models": "glmtui.commands.models:models_group",
    "plan": "glmtui.commands.plan:plan_group",
    "runs": "glmtui.commands.plan:runs_group",
    "serve": "glmtui.commands.serve:serve",
    "version": "glmtui.commands.system:version",
}


class LazyGroup(click.Group):
    """The root group, whose commands (COMMANDS) are imported as they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            import importlib

            module, attribute = COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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


cli.add_command(tui)


def expand_args(args: list[str]) -> list[str]:
    """`glmtui --run PLAN ...` is `glmtui plan run PLAN ...`; `glmtui PLAN` is the TUI with PLAN."""
    for index, arg in enumerate(args):
        if arg == "--run":
            return args[:index] + ["plan", "run"] + args[index + 1 :]
        if arg.startswith("--run="):
            return args[:index] + ["plan", "run", arg.split("=", 1)[1]] + args[index + 1 :]
        if not arg.startswith("-"):
            if arg not in COMMANDS and arg not in cli.commands and (arg.endswith((".yaml", ".yml")) or Path(arg).is_file()):
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
