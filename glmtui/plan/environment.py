"""The environment a run's steps share: a named one reused or created, or a throw-away one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glmtui.config import Config
from glmtui.docker.engine import Engine
from glmtui.docker.images import build_folder
from glmtui.docker.spec import EnvSpec, Mount, Resources
from glmtui.errors import GlmtuiError, NotFound
from glmtui.plan.expressions import to_text
from glmtui.plan.model import LoadedPlan
from glmtui.plan.permissions import HostAccess
from glmtui.plan.steps.base import render


@dataclass
class RunEnvironment:
    name: str
    workdir: str
    user: str | None
    variables: dict[str, str]
    throwaway: bool


def throwaway_name(run_id: str) -> str:
    return f"run-{run_id}"


def render_value(value: Any, values: dict[str, Any]) -> str:
    return to_text(render(value, values))


async def prepare(
    engine: Engine,
    loaded: LoadedPlan,
    config: Config,
    run_id: str,
    values: dict[str, Any],
    progress: Callable[[str], None],
    access: HostAccess,
) -> RunEnvironment:
    """Get the run's environment running: reuse, start, build, create, copy in; reaching on the
    host only the plan's folder and what `access` grants (HostAccessRefused otherwise)."""
    plan, env = loaded.plan, loaded.plan.env
    variables = {k: render_value(v, values) for k, v in env.environment.items()}
    name = env.name or throwaway_name(run_id)
    prepared = RunEnvironment(name, env.workdir, env.user, variables, throwaway=env.name is None)
    access.network(env.network, "env.network")
    if env.name:
        try:
            existing = await engine.get_environment(env.name)
        except NotFound:
            existing = None
        if existing is not None:
            await _check_existing(engine, env.name, access)
            if not existing.running:
                progress(f"starting environment {env.name}")
                await engine.start_environment(env.name)
            return prepared
    image = await _image(engine, loaded, config, progress, access)
    resources = Resources.parse(
        env.resources.memory or config.get("resources.memory"),
        env.resources.cpus or config.get("resources.cpus"),
        env.resources.pids or config.get("resources.pids"),
    )
    mounts = []
    for written in env.mounts:
        host = render_value(written.host, values)
        text = f"{host}:{written.container}{':ro' if written.read_only else ''}"
        access.mount(host, write=not written.read_only, what=f"mount {text!r}")  # before it is looked at
        mounts.append(Mount.parse(text, base=plan.dir))
    spec = EnvSpec(
        name=name,
        image=image,
        workdir=env.workdir,
        mounts=tuple(mounts),
        environment=variables,
        user=env.user,
        resources=resources,
        network=env.network,
        run_id=run_id if prepared.throwaway else None,
        labels={"glmtui.plan": plan.name},
    )
    copy_in = []
    for written in env.copy:
        host = render_value(written.host, values)
        copy_in.append((access.path(host, write=False, what=f"env.copy {host!r}"), written.container))
    for host, _ in copy_in:
        if not host.exists():
            raise NotFound(f"env.copy: host path {host} does not exist")
    progress(f"creating {'throw-away ' if prepared.throwaway else ''}environment {name} from {image}")
    await engine.create_environment(spec, copy_in=copy_in, on_progress=progress)
    writable = [m.source for m in spec.mounts if not m.read_only]
    if writable:
        try:
            access.root((await engine.user_ids(name))[0], env.user or "", writable, f"environment {name}")
        except GlmtuiError:
            await engine.remove_environment(name, volume=prepared.throwaway)  # a named one's volume may hold work
            raise
    return prepared


async def _check_existing(engine: Engine, name: str, access: HostAccess) -> None:
    """A named environment made before (by another plan, or by hand) reaches the host only as
    far as this run may: its bind mounts, its network, root with a writable mount."""
    info = await engine.inspect_environment(name)
    what = f"environment {name}"
    writable = []
    for mount in info.get("Mounts") or []:
        if mount.get("Type") == "bind":
            access.mount(mount["Source"], write=bool(mount.get("RW")), what=f"{what} (its mount of {mount['Source']})")
            if mount.get("RW"):
                writable.append(mount["Source"])
    access.network((info.get("HostConfig") or {}).get("NetworkMode"), what)
    if writable:
        access.root((await engine.user_ids(name))[0], (info.get("Config") or {}).get("User") or "", writable, what)


async def _image(
    engine: Engine, loaded: LoadedPlan, config: Config, progress: Callable[[str], None], access: HostAccess
) -> str:
    env, plan = loaded.plan.env, loaded.plan
    if env.build is None:
        return env.image or config.get("default_image")
    build = env.build
    access.network(build.network, "env.build.network")
    context = access.path(build.context, write=False, what=f"env.build.context {build.context!r}")
    if not context.is_dir():
        raise NotFound(f"env.build.context: {context} is not a folder")
    progress(f"building the image of {plan.name} from {context}")
    result = await build_folder(
        engine,
        context,
        f"glmtui/plan-{plan.name}",
        dockerfile=build.dockerfile or "Dockerfile",
        args={k: to_text(v) for k, v in build.args.items()},
        network=build.network,
        on_progress=progress,
    )
    if result.cached:
        progress(f"image {result.image} is up to date")
    return result.image
