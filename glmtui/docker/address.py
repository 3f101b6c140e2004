"""Where the Docker engine is, and the one error for when it does not answer. Light: no aiodocker."""

from __future__ import annotations

import os
from pathlib import Path

from glmtui.errors import EngineUnreachable

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def resolve_host(configured: str | None = None) -> str:
    """The engine address: config, then DOCKER_HOST, then the default socket."""
    return configured or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def engine_sockets(address: str) -> tuple[Path, ...]:
    """The Docker sockets of this machine, symlinks resolved: the usual places and the socket of
    `address` when it is unix://. Whoever reaches one of them controls the host."""
    paths = list(DEFAULT_SOCKETS)
    if address.startswith("unix://"):
        paths.append(address[len("unix://"):])
    return tuple(dict.fromkeys(Path(os.path.realpath(path)) for path in paths))


def reached_socket(path: Path, sockets: tuple[Path, ...]) -> Path | None:
    """The socket that a mount of `path` (resolved) gives: the socket itself, or a folder holding it."""
    return next((socket for socket in sockets if socket == path or path in socket.parents), None)


def unreachable(address: str, err: BaseException) -> EngineUnreachable:
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return EngineUnreachable(
        f"cannot reach the Docker engine at {address} ({detail})",
        hint="start it (e.g. `sudo dockerd &`), or point docker_host / DOCKER_HOST at one",
    )
