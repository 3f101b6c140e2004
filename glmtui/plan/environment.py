"""The environment a run's steps share: a named one reused or created, or a throw-away one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtui.config import Config
from glmtui.docker.engine import Engine
from glmtui.docker.images import build_folder
from glmtui.docker.spec import EnvSpec, Mount, Resources
from glmtui.errors import Conflict, NotFound
from glmtui.plan.expressions import to_text
from glmtui.plan.model import LoadedPlan
from glmtui.plan.steps.base import render

CREATE_ATTEMPTS = 3
REUSE_WAIT = 10  # seconds an environment someone else created may take to start


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
) -> RunEnvironment:
    """Get the run's environment running: reuse, start, build, create, copy in."""
    plan, env = loaded.plan, loaded.plan.env
    variables = {k: render_value(v, values) for k, v in env.environment.items()}
    name = env.name or throwaway_name(run_id)
    prepared = RunEnvironment(name, env.workdir, env.user, variables, throwaway=env.name is None)
    if env.name:
        try:
            existing = await engine.get_environment(env.name)
        except NotFound:
            existing = None
        if existing is not None:
            if not existing.running:
                progress(f"starting environment {env.name}")
                await engine.start_environment(env.name)
            return prepared
    image = await _image(engine, loaded, config, progress)
    resources = Resources.parse(
        env.resources.memory or config.get("resources.memory"),
        env.resources.cpus or config.get("resources.cpus"),
        env.resources.pids or config.get("resources.pids"),
    )
    mounts = tuple(
        Mount.parse(
            f"{render_value(m.host, values)}:{m.container}{':ro' if m.read_only else ''}",
            base=plan.dir,
            allow_docker_socket=env.allow_docker_socket,
        )
        for m in env.mounts
    )
    spec = EnvSpec(
        name=name,
        image=image,
        workdir=env.workdir,
        mounts=mounts,
        environment=variables,
        user=env.user,
        resources=resources,
        network=env.network,
        run_id=run_id if prepared.throwaway else None,
        labels={"glmtui.plan": plan.name},
    )
    copy_in = [(plan.host_path(render_value(c.host, values)), c.container) for c in env.copy]
    for host, _ in copy_in:
        if not host.exists():
            raise NotFound(f"env.copy: host path {host} does not exist")
    progress(f"creating {'throw-away ' if prepared.throwaway else ''}environment {name} from {image}")
    if prepared.throwaway:
        await engine.create_environment(spec, copy_in=copy_in, on_progress=progress)
    else:
        await _create_or_reuse(engine, spec, copy_in, progress)
    return prepared


async def _create_or_reuse(
    engine: Engine, spec: EnvSpec, copy_in: list[tuple[Path, str]], progress: Callable[[str], None]
) -> None:
    """Create the named environment; when someone else creates it at the same moment (another
    user's run, `glmtui env create`), use theirs once it runs."""
    for _ in range(CREATE_ATTEMPTS):
        try:
            await engine.create_environment(spec, copy_in=copy_in, on_progress=progress)
            return
        except Conflict:
            pass
        deadline = time.monotonic() + REUSE_WAIT
        while True:
            try:
                existing = await engine.get_environment(spec.name)
            except NotFound:
                break  # theirs failed and is gone: create it after all
            if existing.running:
                progress(f"environment {spec.name} was created at the same time elsewhere: using it")
                return
            if existing.status != "created" or time.monotonic() > deadline:
                progress(f"starting environment {spec.name}")
                await engine.start_environment(spec.name)
                return
            await asyncio.sleep(0.1)  # made, not started yet
    raise Conflict(f"environment {spec.name!r} was created and removed again while this run tried to create it",
                   hint="run the plan again")


async def _image(engine: Engine, loaded: LoadedPlan, config: Config, progress: Callable[[str], None]) -> str:
    env, plan = loaded.plan.env, loaded.plan
    if env.build is None:
        return env.image or config.get("default_image")
    build = env.build
    context = plan.host_path(build.context)
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
