"""What the rest of glmtui asks of an engine: the declared interface of the engine layer.

`glmtui.docker.engine.Engine` (a Docker engine, local or remote) satisfies it, and so does the
snapshot tests' fake; another backend (Kubernetes) would sit beside them. Names are environment
names; errors are glmtui.errors' (NotFound, Conflict, BadInput, EngineUnreachable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from glmtui.docker.spec import EnvSpec
from glmtui.docker.types import CleanReport, EngineEvent, Environment, ExecResult, Stats

OutputCallback = Callable[[int, bytes], None]  # (1 stdout | 2 stderr, bytes)


class InteractiveSession(Protocol):
    """A process with a terminal inside an environment (a shell)."""

    async def read(self) -> bytes | None: ...  # None once it ended

    async def write(self, data: bytes) -> None: ...

    async def resize(self, rows: int, columns: int) -> None: ...

    async def close(self) -> int: ...  # its exit status


@runtime_checkable
class ContainerEngine(Protocol):
    name: str  # the engine's name (`default`, a context's, a configured one)
    host: str  # its address
    version_info: dict[str, Any]

    @property
    def remote(self) -> bool: ...  # maybe another machine: host paths there are not this machine's

    async def close(self) -> None: ...

    # environments
    async def create_environment(self, spec: EnvSpec, *, copy_in: Sequence[tuple[Path, str]] = (),
                                 on_progress: Callable[[str], None] | None = None) -> Environment: ...

    async def list_environments(self, *, include_runs: bool = True) -> list[Environment]: ...

    async def get_environment(self, name: str) -> Environment: ...

    async def inspect_environment(self, name: str) -> dict[str, Any]: ...

    async def start_environment(self, name: str) -> None: ...

    async def stop_environment(self, name: str, *, timeout: float = 10) -> None: ...

    async def remove_environment(self, name: str, *, volume: bool = False) -> None: ...

    # commands
    async def exec(self, name: str, argv: Sequence[str], *, environment: Mapping[str, str] | None = None,
                   workdir: str | None = None, user: str | None = None, timeout: float | None = None,
                   on_output: OutputCallback | None = None, reap: bool = False) -> ExecResult: ...

    async def spawn(self, name: str, argv: Sequence[str], *, user: str | None = None) -> None: ...

    async def end_processes(self, name: str, variable: str, value: str, *, user: str | None = None) -> None: ...

    async def open_interactive(self, name: str, argv: Sequence[str] | None = None, *, rows: int = 24,
                               columns: int = 80, environment: Mapping[str, str] | None = None,
                               workdir: str | None = None, user: str | None = None) -> InteractiveSession: ...

    # output and changes
    def logs(self, name: str, *, follow: bool = False, tail: int | None = None, since: str | float | None = None,
             timestamps: bool = False) -> AsyncIterator[tuple[int, bytes]]: ...

    def stats(self, name: str) -> AsyncIterator[Stats]: ...

    def events(self, *, reconnect: bool = True) -> AsyncIterator[EngineEvent]: ...

    # files
    async def copy_in(self, name: str, source: Path, destination: str) -> None: ...

    async def copy_out(self, name: str, source: str, destination: Path) -> list[Path]: ...

    async def write_file(self, name: str, path: str, content: bytes, *, mode: int = 0o644) -> None: ...

    async def read_file(self, name: str, path: str) -> bytes: ...

    async def user_ids(self, name: str) -> tuple[int, int]: ...

    # images
    async def image_exists(self, ref: str) -> bool: ...

    async def ensure_image(self, ref: str, *, on_progress: Callable[[str], None] | None = None) -> None: ...

    async def list_images(self) -> list[dict[str, Any]]: ...

    async def build_image(self, context: bytes, tags: Sequence[str], *, dockerfile: str = "Dockerfile",
                          args: Mapping[str, str] | None = None, network: str | None = None,
                          on_progress: Callable[[str], None] | None = None) -> str: ...

    async def import_image(self, tar_path: Path, repo: str, tag: str) -> None: ...

    async def tag_image(self, source: str, repo: str, tag: str) -> None: ...

    # leftovers
    async def clean(self, *, going_runs: Collection[str] = (), interrupted_runs: Collection[str] = (),
                    names: Collection[str] = (), every_stopped: bool = False, volumes: bool = False,
                    dry_run: bool = False) -> CleanReport: ...
