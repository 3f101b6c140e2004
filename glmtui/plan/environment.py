"""The environment a run's steps share: a named one reused or created, or a throw-away one."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtui.config import Config
from glmtui.docker.interface import ContainerEngine
from glmtui.docker import passthrough
from glmtui.docker.images import build_folder
from glmtui.docker.spec import LABEL_EGRESS, EnvSpec, Mount, Resources
from glmtui.errors import BadInput, Conflict, GlmtuiError, NotFound
from glmtui.plan.expressions import ExpressionError, to_text
from glmtui.plan.model import LoadedPlan
from glmtui.plan.permissions import HostAccess
from glmtui.plan.steps.base import render

CREATE_ATTEMPTS = 3
REUSE_WAIT = 10  # seconds an environment someone else created may take to start
UNLISTED_GRACE = 1.0  # seconds a name taken by another creation may not be listed yet


@dataclass
class RunEnvironment:
    """The plan's env with its expressions evaluated (`resolve`), then made (`prepare`)."""

    name: str
    workdir: str
    user: str | None
    variables: dict[str, str]
    throwaway: bool
    image: str | None = None  # None: env.build, or the configured default image
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (host, container, read-only)
    copies: tuple[tuple[str, str], ...] = ()  # (host, container)
    egress: bool = False  # it has an egress allowlist (known once prepared)


def check_engine(loaded: LoadedPlan, engine: ContainerEngine) -> None:
    """BadInput when the plan's environment cannot be made right on `engine`: bind mounts on an
    engine that may be another machine, where their host paths would name that machine's files."""
    env = loaded.plan.env
    if env.mounts and engine.remote:
        raise BadInput(f"env.mounts: engine {engine.name} ({engine.host}) may be another machine, where the host "
                       "path of a bind mount names that machine's files, not this one's",
                       hint="bring files in with env.copy, or run on an engine of this machine (unix://)")


def throwaway_name(run_id: str) -> str:
    return f"run-{run_id}"


def render_value(value: Any, values: dict[str, Any]) -> str:
    return to_text(render(value, values))


def resolve(loaded: LoadedPlan, run_id: str, values: dict[str, Any]) -> RunEnvironment:
    """The plan's env with its expressions evaluated: a value that fails or does not fit is
    BadInput here, before the run is recorded or anything is made."""
    env = loaded.plan.env
    image = None
    if env.image is not None:
        image = _evaluated("env.image", env.image, values).strip()
        if not image:
            raise BadInput(f"env.image: {env.image!r} gives an empty image name")
    return RunEnvironment(
        name=env.name or throwaway_name(run_id),
        workdir=absolute_workdir("env.workdir", env.workdir, values),
        user=env.user,
        variables={k: _evaluated(f"env.environment.{k}", v, values) for k, v in env.environment.items()},
        throwaway=env.name is None,
        image=image,
        mounts=tuple(
            (_evaluated("env.mounts", m.host, values), _evaluated("env.mounts", m.container, values), m.read_only)
            for m in env.mounts
        ),
        copies=tuple((_evaluated("env.copy", c.host, values), _evaluated("env.copy", c.container, values)) for c in env.copy),
    )


def absolute_workdir(what: str, text: str, values: dict[str, Any]) -> str:
    """A working directory with its expressions evaluated; BadInput unless it is absolute."""
    path = _evaluated(what, text, values)
    if not path.startswith("/"):
        raise BadInput(f"{what}: {text!r} gives {path!r}, which is not an absolute path", hint="start it with /")
    return path


def _evaluated(what: str, text: Any, values: dict[str, Any]) -> str:
    try:
        return render_value(text, values)
    except ExpressionError as err:
        raise BadInput(f"{what}: {err}") from None


async def prepare(
    engine: ContainerEngine,
    loaded: LoadedPlan,
    config: Config,
    run_id: str,
    prepared: RunEnvironment,
    progress: Callable[[str], None],
    access: HostAccess,
) -> RunEnvironment:
    """Get the run's environment (from `resolve`) running: reuse, start, build, create, copy in;
    reaching on the host only the plan's folder and what `access` grants (HostAccessRefused otherwise)."""
    plan, env = loaded.plan, loaded.plan.env
    name = prepared.name
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
            return dataclasses.replace(prepared, egress=LABEL_EGRESS in existing.labels)
    image = prepared.image or await _image(engine, loaded, config, progress, access)
    resources = Resources.parse(
        env.resources.memory or config.get("resources.memory"),
        env.resources.cpus or config.get("resources.cpus"),
        env.resources.pids or config.get("resources.pids"),
    )
    mounts = []
    for host, container, read_only in prepared.mounts:
        text = f"{host}:{container}{':ro' if read_only else ''}"
        access.mount(host, write=not read_only, what=f"mount {text!r}")  # before it is looked at
        mounts.append(Mount.parse(text, base=plan.dir))
    spec = EnvSpec(
        name=name,
        image=image,
        workdir=prepared.workdir,
        mounts=tuple(mounts),
        environment=prepared.variables,
        user=env.user,
        resources=resources,
        network=env.network,
        allow=env.allow,
        upstream_proxy=passthrough.upstream_proxy(config),
        ca_certificates=passthrough.ca_certificates(config),
        run_id=run_id if prepared.throwaway else None,
        labels={"glmtui.plan": plan.name},
    )
    copy_in = [(access.path(host, write=False, what=f"env.copy {host!r}"), container) for host, container in prepared.copies]
    for host, _ in copy_in:
        if not host.exists():
            raise NotFound(f"env.copy: host path {host} does not exist")
    progress(f"creating {'throw-away ' if prepared.throwaway else ''}environment {name} from {image}")
    if prepared.throwaway:
        await engine.create_environment(spec, copy_in=copy_in, on_progress=progress)
        created = True
    else:
        created = await _create_or_reuse(engine, spec, copy_in, progress)
    if created:
        writable = [m.source for m in spec.mounts if not m.read_only]
        if writable:
            try:
                access.root((await engine.user_ids(name))[0], env.user or "", writable, f"environment {name}")
            except GlmtuiError:
                await engine.remove_environment(name, volume=prepared.throwaway)  # a named one's volume may hold work
                raise
    else:  # made by someone else at the same moment: it may reach only what this run may
        await _check_existing(engine, name, access)
        existing = await engine.get_environment(name)
        return dataclasses.replace(prepared, egress=LABEL_EGRESS in existing.labels)
    return dataclasses.replace(prepared, egress=bool(spec.allow))


async def _create_or_reuse(
    engine: ContainerEngine, spec: EnvSpec, copy_in: list[tuple[Path, str]], progress: Callable[[str], None]
) -> bool:
    """Create the named environment (True); when someone else creates it at the same moment
    (another user's run, `glmtui env create`), use theirs once it runs (False)."""
    for _ in range(CREATE_ATTEMPTS):
        try:
            await engine.create_environment(spec, copy_in=copy_in, on_progress=progress)
            return True
        except Conflict:
            pass
        deadline = time.monotonic() + REUSE_WAIT
        missing_since = None
        while True:
            try:
                existing = await engine.get_environment(spec.name)
            except NotFound:
                # The engine takes the name before it lists the container: absent for a moment
                # may be theirs still being made; absent for longer, theirs failed and is gone.
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since > UNLISTED_GRACE:
                    break  # create it after all
                await asyncio.sleep(0.05)
                continue
            missing_since = None
            if existing.running:
                progress(f"environment {spec.name} was created at the same time elsewhere: using it")
                return False
            if existing.status != "created" or time.monotonic() > deadline:
                progress(f"starting environment {spec.name}")
                await engine.start_environment(spec.name)
                return False
            await asyncio.sleep(0.1)  # made, not started yet
    raise Conflict(f"environment {spec.name!r} was created and removed again while this run tried to create it",
                   hint="run the plan again")


async def _check_existing(engine: ContainerEngine, name: str, access: HostAccess) -> None:
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
    engine: ContainerEngine, loaded: LoadedPlan, config: Config, progress: Callable[[str], None], access: HostAccess
) -> str:
    env, plan = loaded.plan.env, loaded.plan
    if env.build is None:
        return config.get("default_image")
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
        proxy=passthrough.upstream_proxy(config),
        on_progress=progress,
    )
    if result.cached:
        progress(f"image {result.image} is up to date")
    return result.image
