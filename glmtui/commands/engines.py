"""glmtui engines list|check: the Docker engines glmtui knows, and whether each answers."""

from __future__ import annotations

import click

from glmtui.commands.common import engines, print_json, run


@click.group("engines")
def engines_group() -> None:
    """Docker engines by name: default (docker_host / DOCKER_HOST / the socket), Docker contexts,
    and the config's engines.NAME (unix://, tcp:// with TLS, ssh://)."""


@engines_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def list_(as_json: bool) -> None:
    """Every engine: its address, whether it answers, its version, its environments (* marks the
    engine used when none is named)."""
    rows = run(lambda: _probe(None))
    if as_json:
        print_json(rows)
        return
    from glmtui.render import table

    table(
        ["NAME", "ADDRESS", "REACHABLE", "VERSION", "ENVIRONMENTS"],
        [[row["name"] + (" *" if row["current"] else ""), row["address"], "yes" if row["reachable"] else "no",
          row["version"] or "-", "-" if row["environments"] is None else str(row["environments"])] for row in rows],
    )
    if not all(row["reachable"] for row in rows):
        click.echo("(`glmtui engines check` says why an engine does not answer, and what to do)", err=True)


@engines_group.command("check")
@click.argument("name", required=False)
def check(name: str | None) -> None:
    """One line per engine (or for NAME): what works, or what to do. Exit status 3 when one does
    not answer."""
    from glmtui.errors import EXIT_ENGINE

    rows = run(lambda: _probe(name, images=True))
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        if row["reachable"]:
            line = (f"ok    {row['name']:<{width}}  {row['address']}: Docker {row['version']} (API {row['api']}), "
                    f"{row['environments']} environment{'s' if row['environments'] != 1 else ''}")
            if row["missing_image"]:
                line += (f"; the default image {row['missing_image']} is not there "
                         f"(build it there: glmtui image build --engine {row['name']})")
        else:
            line = f"fail  {row['name']:<{width}}  {row['address']}: {row['error']}"
        click.echo(line)
    if not all(row["reachable"] for row in rows):
        raise SystemExit(EXIT_ENGINE)


async def _probe(name: str | None, *, images: bool = False) -> list[dict]:
    """What each engine (or `name`) says: version and environments, or why it does not answer.
    Names of one engine (the same address) are asked once."""
    import asyncio

    from glmtui.commands.common import state
    from glmtui.errors import GlmtuiError

    default_image = state().config.get("default_image")
    async with engines() as every:
        endpoints = [every.endpoint(name)] if name else [every.endpoint(n) for n in every.endpoints.names]

        async def ask(endpoint) -> dict:
            row = {"name": endpoint.name, "address": endpoint.host, "source": endpoint.source,
                   "current": endpoint.name == every.current, "reachable": False, "version": None, "api": None,
                   "environments": None, "error": None}
            try:
                engine = await every.get(endpoint.name)
                environments = await engine.list_environments(include_runs=False)
                row.update(reachable=True, version=engine.version_info.get("Version"),
                           api=engine.version_info.get("ApiVersion"), environments=len(environments))
                if images:
                    row["missing_image"] = None if await engine.image_exists(default_image) else default_image
            except GlmtuiError as err:
                reason = getattr(err, "reason", None)
                row["error"] = f"{reason}{f' ({err.hint})' if err.hint else ''}" if reason else str(err)
            return row

        firsts: dict = {}
        for endpoint in endpoints:  # one question per engine; its other names share the answer
            firsts.setdefault(endpoint.same_engine_as, endpoint)
        answers = dict(zip(firsts, await asyncio.gather(*(ask(e) for e in firsts.values()))))
        rows = []
        for endpoint in endpoints:
            row = dict(answers[endpoint.same_engine_as])
            row.update(name=endpoint.name, source=endpoint.source, current=endpoint.name == every.current)
            rows.append(row)
        return rows
