"""glmtui version, clean, completion."""

from __future__ import annotations

import platform
import sys

import click

from glmtui import __version__
from glmtui.commands.common import engine, engine_option, print_json, run, state


@click.command("version")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def version(as_json: bool) -> None:
    """glmtui, Python, Docker engine and API versions, engine address (of the engine used when
    none is named; `glmtui engines list` shows every engine)."""
    from glmtui.errors import EngineUnreachable

    info = {"glmtui": __version__, "python": platform.python_version(), "engine": None, "api": None}
    problem = None

    async def ask() -> None:
        async with engine() as docker:
            info["engine"], info["api"] = docker.version_info.get("Version"), docker.version_info.get("ApiVersion")

    from glmtui.docker.endpoints import from_config

    endpoint = from_config(state().config)[None]
    info["host"], info["engine_name"] = endpoint.host, endpoint.name
    try:
        run(ask)
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
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "everything", is_flag=True,
              help="Also every stopped named environment, and every glmtui volume no container uses "
                   "(the workspaces of removed environments among them).")
@click.option("--dry-run", "-n", is_flag=True, help="Only list what would be removed.")
@engine_option("The engine to clean (`glmtui engines list`); default: the current one.")
def clean(names: tuple[str, ...], everything: bool, dry_run: bool, engine_name: str | None) -> None:
    """Remove what is left over: the throw-away environments of runs that ended (never one whose
    run still goes), dangling glmtui images, and run and `env exec` records older than
    keep_runs_days with their logs. Named environments go only when named (NAME, if stopped;
    their workspaces stay) or with --all."""
    from glmtui.docker.spec import check_name
    from glmtui.store import Store
    from glmtui.units import counted

    for name in names:
        check_name(name)
    store = Store()

    async def work():
        async with engine(engine_name) as docker:
            envs = {env.name: env for env in await docker.list_environments()}
            _check_named(names, envs)
            runs = {env.run_id: _run_status(store, env.run_id) for env in envs.values() if env.run_id}
            return await docker.clean(
                going_runs={run_id for run_id, status in runs.items() if status == "running"},
                interrupted_runs={run_id for run_id, status in runs.items() if status == "interrupted"},
                names=set(names), every_stopped=everything, volumes=everything, dry_run=dry_run,
            )

    try:
        report = run(work)
        days = state().config.get("keep_runs_days")
        runs_pruned = store.prune(days, dry_run=dry_run)
        execs_pruned = store.prune_execs(days, dry_run=dry_run)
    finally:
        store.close()
    removed = (
        ("throw-away environment", report.run_environments, ""),
        ("environment", report.environments, ""),
        ("image", report.images, ""),
        ("volume", report.volumes, ""),
        ("checkpoint helper", report.checkpoint_helpers, " (of environments that are gone)"),
        ("egress network", report.egress_networks, " (of environments that are gone)"),
        ("run record", runs_pruned, " (with logs)"),
        ("exec record", execs_pruned, " (with logs)"),
    )
    verb = "would remove" if dry_run else "removed"
    for noun, gone, also in removed:
        if gone:
            click.echo(f"{verb} {counted(len(gone), noun)}{also}: {', '.join(gone)}")
    if not any(gone for _, gone, _ in removed):
        click.echo("nothing to clean")
    if report.kept:
        click.echo(f"kept {counted(len(report.kept), 'stopped environment')}: {', '.join(report.kept)} "
                   "(glmtui clean NAME, or --all, removes them)")


def _check_named(names: tuple[str, ...], envs: dict) -> None:
    """Every NAME is an environment, and stopped: nothing is removed otherwise."""
    from glmtui.errors import BadInput, NotFound, did_you_mean

    for name in names:
        env = envs.get(name)
        if env is None:
            raise NotFound(f"no environment named {name!r}{did_you_mean(name, envs)}",
                           hint="`glmtui env list` shows them")
        if env.status not in ("exited", "dead", "created"):
            raise BadInput(f"environment {name!r} is {env.status}: clean removes stopped ones",
                           hint=f"stop it first (glmtui env stop {name}), or remove it: glmtui env remove {name}")


def _run_status(store, run_id: str) -> str | None:
    """The recorded status of a run (`interrupted`: its glmtui is gone); None when we have no
    record of it (another user's, another machine's)."""
    from glmtui.errors import NotFound

    try:
        return store.run(run_id, with_steps=False).status
    except NotFound:
        return None


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script, e.g. `eval "$(glmtui completion bash)"`."""
    from click.shell_completion import get_completion_class

    from glmtui.cli import cli

    completer = get_completion_class(shell)(cli, {}, "glmtui", "_GLMTUI_COMPLETE")
    sys.stdout.write(completer.source())
