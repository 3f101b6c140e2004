"""glmtui version, clean, completion."""

from __future__ import annotations

import platform
import sys

import click

from glmtui import __version__
from glmtui.commands.common import engine, print_json, run, state


@click.command("version")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def version(as_json: bool) -> None:
    """glmtui, Python, Docker engine and API versions, engine address."""
    from glmtui.docker.address import resolve_host
    from glmtui.docker.version import engine_version
    from glmtui.errors import EngineUnreachable

    info = {"glmtui": __version__, "python": platform.python_version(), "engine": None, "api": None}
    info["host"] = resolve_host(state().config.get("docker_host"))
    problem = None
    try:
        answer = engine_version(info["host"])
        info["engine"], info["api"] = answer.get("Version"), answer.get("ApiVersion")
    except EngineUnreachable as err:
        problem = err
    if as_json:
        print_json(info)
    else:
        click.echo(f"glmtui {info['glmtui']}  Python {info['python']}")
        engine_text = f"{info['engine']} (API {info['api']})" if info["engine"] else "unreachable"
        click.echo(f"Docker engine {engine_text} at {info['host']}")
    if problem:
        raise problem


@click.command("clean")
@click.option("--all", "everything", is_flag=True, help="Also glmtui volumes no environment uses.")
def clean(everything: bool) -> None:
    """Remove stopped glmtui containers, dangling glmtui images, environments of dead runs, old run logs."""
    from glmtui.store import Store

    store = Store()

    async def work():
        async with engine() as docker:
            runs = {env.run_id for env in await docker.list_environments() if env.run_id}
            dead = {run_id for run_id in runs if _interrupted(store, run_id)}
            orphans = await docker.remove_run_environments(dead)
            return orphans, await docker.clean(volumes=everything)

    try:
        orphans, report = run(work)
        pruned = store.prune(state().config.get("keep_runs_days"))
    finally:
        store.close()
    removed = (
        ("environments of interrupted runs", orphans),
        ("containers", report.containers),
        ("images", report.images),
        ("volumes", report.volumes),
        ("run records and logs", pruned),
    )
    for kind, names in removed:
        if names:
            click.echo(f"removed {len(names)} {kind}: {', '.join(names)}")
    if not any(names for _, names in removed):
        click.echo("nothing to clean")


def _interrupted(store, run_id: str) -> bool:
    """A run whose glmtui process is gone (a record we do not have: another machine's, left alone)."""
    from glmtui.errors import NotFound

    try:
        return store.run(run_id, with_steps=False).status == "interrupted"
    except NotFound:
        return False


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script, e.g. `eval "$(glmtui completion bash)"`."""
    from click.shell_completion import get_completion_class

    from glmtui.cli import cli

    completer = get_completion_class(shell)(cli, {}, "glmtui", "_GLMTUI_COMPLETE")
    sys.stdout.write(completer.source())
