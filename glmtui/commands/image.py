"""glmtui image build|list."""

from __future__ import annotations

import click

from glmtui.commands.common import engine, engine_option, print_json, progress_printer, run, state


@click.group("image")
def image_group() -> None:
    """Workspace images (images/ in the source tree)."""


@image_group.command("build")
@click.argument("names", nargs=-1)
@click.option("--quiet", "-q", is_flag=True, help="No build output, only the result.")
@engine_option("The engine to build on (the build context is sent to it); default: the current one.")
def build(names: tuple[str, ...], quiet: bool, engine_name: str | None) -> None:
    """Build NAMES (default: every definition), each cached by content."""
    from glmtui.docker import images
    from glmtui.docker.passthrough import upstream_proxy

    wanted = [definition.name for definition in images.named(list(names))]
    proxy = upstream_proxy(state().config)
    show = None if quiet else progress_printer("  ")

    async def work():
        async with engine(engine_name) as docker:
            for name in wanted:
                click.echo(f"building {name}", err=True)
                result = await images.build_named(docker, name, proxy=proxy, on_progress=show)
                for note in result.notes:
                    click.echo(f"note: {note}", err=True)
                click.echo(f"{result.image}{' (cached)' if result.cached else ''}")

    run(work)


@image_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@engine_option("The engine whose images to list; default: the current one.")
def list_(as_json: bool, engine_name: str | None) -> None:
    """glmtui images on the engine, and the definitions that build them."""
    from glmtui.docker import images

    async def work():
        async with engine(engine_name) as docker:
            return await docker.list_images()

    found = run(work)
    definitions = images.definitions()
    rows = []
    for image in found:
        for tag in image.get("RepoTags") or ["<none>:<none>"]:
            rows.append({"tag": tag, "id": image["Id"].removeprefix("sha256:")[:12], "size": image.get("Size", 0)})
    if as_json:
        print_json({"images": rows, "definitions": {n: d.tag for n, d in definitions.items()}})
        return
    from glmtui.render import table
    from glmtui.units import format_bytes

    table(["IMAGE", "ID", "SIZE"], [[r["tag"], r["id"], format_bytes(r["size"])] for r in rows])
    built = {r["tag"].rsplit(":", 1)[0] for r in rows}
    missing = [n for n, d in definitions.items() if d.tag not in built]
    if missing:
        click.echo(f"not built yet: {', '.join(missing)} (glmtui image build {' '.join(missing)})")
