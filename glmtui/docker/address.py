"""The Docker sockets of this machine, for the checks of mounts that would reach one. Light."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def engine_sockets(address: str) -> tuple[Path, ...]:
    """The Docker sockets of the engine's machine: the usual places and the socket `address`
    names (unix://PATH, ssh://HOST/PATH), with this machine's symlinks resolved and as written
    (another machine's are not this one's). Whoever reaches one of them controls that machine."""
    paths = list(DEFAULT_SOCKETS)
    if address.startswith("unix://"):
        paths.append(address[len("unix://"):])
    elif address.startswith("ssh://") and "/" in address[len("ssh://"):]:
        paths.append("/" + address[len("ssh://"):].split("/", 1)[1])
    return tuple(dict.fromkeys([*(Path(os.path.realpath(path)) for path in paths), *(Path(path) for path in paths)]))


def reached_socket(path: Path, sockets: tuple[Path, ...]) -> Path | None:
    """The socket that a mount of `path` (resolved) gives: the socket itself, or a folder holding it."""
    return next((socket for socket in sockets if socket == path or path in socket.parents), None)


def resolve_host(configured: str | None = None) -> str:
    """The address of the engine used when none is named: `configured` (the config's docker_host),
    else as the docker CLI resolves it (DOCKER_HOST, DOCKER_CONTEXT, its current context, the socket)."""
    from glmtui.docker.endpoints import resolve

    return resolve(configured)[None].host
