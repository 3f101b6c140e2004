"""Where the Docker engine is, and the one error for when it does not answer. Light: no aiodocker."""

from __future__ import annotations

import os

from glmtui.errors import EngineUnreachable

DEFAULT_HOST = "unix:///var/run/docker.sock"


def resolve_host(configured: str | None = None) -> str:
    """The engine address: config, then DOCKER_HOST, then the default socket."""
    return configured or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def unreachable(address: str, err: BaseException) -> EngineUnreachable:
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return EngineUnreachable(
        f"cannot reach the Docker engine at {address} ({detail})",
        hint="start it (e.g. `sudo dockerd &`), or point docker_host / DOCKER_HOST at one",
    )
