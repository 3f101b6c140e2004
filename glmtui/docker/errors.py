"""The engine layer's one family of errors, and the user's error each becomes.

The client (`wire`) raises only these two: the engine answered with an error status
(EngineHTTPError), or it could not be reached or was lost (EngineConnectionError, whatever the
way: a socket, TCP, TLS or SSH). `Engine` turns them into the errors a user sees.
"""

from __future__ import annotations

from glmtui.errors import EngineUnreachable


class EngineError(Exception):
    """Something between glmtui and a Docker engine went wrong."""


class EngineHTTPError(EngineError):
    """The engine answered with an error status; `message` is its own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class EngineConnectionError(EngineError, ConnectionError):
    """The engine could not be reached, or the connection was lost: one line saying why, and
    what to do when that is known (a refused SSH key, an untrusted certificate)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def unreachable(address: str, err: BaseException, name: str = "default") -> EngineUnreachable:
    """The user's error for an engine that does not answer (named, when it is not the default)."""
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    hint = getattr(err, "hint", None)
    if hint is None and address.startswith("unix://"):
        hint = "start it (e.g. `sudo dockerd &`), or point docker_host / DOCKER_HOST at one"
    engine = "the Docker engine" if name == "default" else f"the Docker engine {name}"
    error = EngineUnreachable(f"cannot reach {engine} at {address} ({detail})", hint=hint)
    error.reason = detail
    return error
