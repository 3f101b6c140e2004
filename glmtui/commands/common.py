"""What every command shares: running async work, the engine, errors, output."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, TypeVar

import click

from glmtui.errors import GlmtuiError

if TYPE_CHECKING:
    from glmtui.config import Config
    from glmtui.docker.engines import Engines
    from glmtui.docker.interface import ContainerEngine

T = TypeVar("T")


class State:
    """Passed down the click context: global flags."""

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from glmtui.config import Config

            self._config = Config.load()
        return self._config


def state() -> State:
    return click.get_current_context().find_object(State) or State()


def fail(err: BaseException, debug: bool) -> None:
    """Print one clear line (or the traceback with --debug) and exit with the right status."""
    if debug:
        import traceback

        traceback.print_exception(err)
    if isinstance(err, GlmtuiError):
        click.echo(f"glmtui: error: {err}", err=True)
        sys.exit(err.exit_code)
    click.echo(f"glmtui: error: {type(err).__name__}: {err}", err=True)
    click.echo("glmtui: this is a bug; run again with --debug for the traceback", err=True)
    sys.exit(1)


def settle() -> None:
    """Start-up is over: what it built lives to the end, out of the collector's way (freeze),
    and collection resumes (`cli.entry` stops it while modules load)."""
    gc.freeze()
    gc.enable()


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end; `cli.main` turns its errors into one line."""
    import asyncio  # not at the top: `glmtui --help` must not pay for it

    settle()
    return asyncio.run(work())


@asynccontextmanager
async def engine(name: str | None = None) -> AsyncIterator[ContainerEngine]:
    """The engine `name` (None: the one used when none is named), connected for the command."""
    from glmtui.docker.endpoints import from_config
    from glmtui.docker.engine import Engine

    connected = await Engine.connect(from_config(state().config)[name])
    try:
        yield connected
    finally:
        await connected.close()


@asynccontextmanager
async def engines() -> AsyncIterator[Engines]:
    """Every engine (glmtui.docker.engines), each connected when first asked for."""
    from glmtui.docker.engines import Engines

    async with Engines.from_config(state().config) as every:
        yield every


FIND_ON_ENGINE = "The engine the environment is on (`glmtui engines list`); needed only when two have the name."


def engine_option(help_text: str = FIND_ON_ENGINE) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--engine NAME."""
    return click.option("--engine", "engine_name", metavar="NAME", help=help_text)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def progress_printer(prefix: str = "") -> Callable[[str], None]:
    """Progress lines to stderr, so stdout stays clean for scripts."""

    def show(line: str) -> None:
        click.echo(f"{prefix}{line}", err=True)

    return show


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    from glmtui.errors import BadInput

    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"{what} {pair!r} is not KEY=VALUE")
        result[key] = value
    return result


def parse_variables(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    """NAME=VALUE pairs of environment variables (-e, --env): each NAME a variable name."""
    import re

    from glmtui.errors import BadInput

    variables = parse_pairs(pairs, what)
    for name in variables:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise BadInput(f"{what} {name}=...: {name!r} is not a variable name", hint="letters, digits and _, not starting with a digit")
    return variables
