"""The one object through which glmtui touches Docker (aiodocker underneath).

The TUI, the plan runner and the agent tools share an `Engine`, so they share
one connection and one set of safe defaults (see `spec.py`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from glmtui.docker.client import DockerError, DockerVolume, aiodocker, aiohttp

from glmtui.docker import archive
from glmtui.docker.address import resolve_host, unreachable
from glmtui.docker.types import CleanReport, EngineEvent, Environment, ExecResult, Stats
from glmtui.docker.spec import (
    LABEL_ENV,
    LABEL_MANAGED,
    MANAGED_FILTER,
    EnvSpec,
    check_name,
    container_name,
    volume_name,
)
from glmtui.errors import BadInput, Conflict, EngineUnreachable, GlmtuiError, NotFound
from glmtui.units import parse_duration

CREATING_GRACE = 60  # seconds a container may stay "created" before `clean` takes it
STDOUT, STDERR = 1, 2
OutputCallback = Callable[[int, bytes], None]
# Kills every process of one exec, children included: they all inherit GLMTUI_EXEC=<tag>.
# A constant script; the tag travels as an argument, never inside the script text.
# Stopped first, then killed, so no parent sees a child die and carries on.
_KILL_SCRIPT = """
for round in 1 2 3 4 5; do
  pids=
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    tr '\\0' '\\n' < "$p/environ" 2>/dev/null | grep -qxF "GLMTUI_EXEC=$1" && pids="$pids $pid"
  done
  [ -z "$pids" ] && exit 0
  kill -STOP $pids 2>/dev/null
  kill -KILL $pids 2>/dev/null
done
"""
_START_FAILURE = b"OCI runtime exec failed"
# A pause after each read of a stream lets the next frames gather: a busy stream arrives in a
# few large pieces instead of thousands of 4 KiB frames, each costing the loop a wake-up.
COALESCE_SECONDS = 0.001
SHELL_ARGV = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"]


class InteractiveExec:
    """A process with a TTY inside an environment: write keys, read the screen, resize."""

    def __init__(self, execution: Any, stream: Any) -> None:
        self._exec = execution
        self._stream = stream

    async def read(self) -> bytes | None:
        message = await self._stream.read_out()
        return None if message is None else message.data

    async def write(self, data: bytes) -> None:
        await self._stream.write_in(data)

    async def resize(self, rows: int, columns: int) -> None:
        try:
            await self._exec.resize(h=rows, w=columns)
        except DockerError:
            pass  # the process may have ended between the signal and the call

    async def close(self) -> int:
        await self._stream.close()
        for _ in range(50):
            info = await self._exec.inspect()
            if not info.get("Running"):
                return info.get("ExitCode") or 0
            await asyncio.sleep(0.02)
        return info.get("ExitCode") or 0


class Engine:
    """Async access to one Docker engine. Use `await Engine.connect()` and `await engine.close()`."""

    def __init__(self, docker: aiodocker.Docker, host: str, version: Mapping[str, Any]) -> None:
        self._docker = docker
        self.host = host
        self.version_info = dict(version)
        self._owners: dict[str, tuple[int, int]] = {}  # container id -> uid, gid of files put in

    # -- connection -------------------------------------------------------------------------

    @classmethod
    async def connect(cls, host: str | None = None) -> Engine:
        address = resolve_host(host)
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=5)
        try:
            docker = aiodocker.Docker(url=address, timeout=timeout)
        except (ValueError, OSError) as err:
            raise unreachable(address, err) from None
        try:
            version = await asyncio.wait_for(docker.version(), 10)
        except (aiohttp.ClientError, OSError, DockerError, asyncio.TimeoutError) as err:
            await docker.close()
            raise unreachable(address, err) from None
        return cls(docker, address, version)

    async def close(self) -> None:
        await self._docker.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- environments -----------------------------------------------------------------------

    async def create_environment(
        self,
        spec: EnvSpec,
        *,
        copy_in: Sequence[tuple[Path, str]] = (),
        on_progress: Callable[[str], None] | None = None,
    ) -> Environment:
        """Create and start an environment; on any failure nothing is left behind."""
        await self.ensure_image(spec.image, on_progress=on_progress)
        if await self._find_container(spec.container):
            raise Conflict(f"environment {spec.name!r} exists already", hint="pick another name or remove it")
        volume_existed = await self._volume_exists(spec.volume)
        async with self._translate(f"environment {spec.name!r}"):
            await self._docker.volumes.create(
                {"Name": spec.volume, "Labels": {LABEL_MANAGED: "true", LABEL_ENV: spec.name}}
            )
        try:
            async with self._translate(f"environment {spec.name!r}"):
                container = await self._docker.containers.create(spec.container_config(), name=spec.container)
        except Conflict:
            # Someone created the same name at the same moment: theirs wins, their volume stays.
            raise Conflict(f"environment {spec.name!r} exists already", hint="pick another name or remove it")
        except BaseException:
            if not volume_existed:
                await self._remove_volume_quietly(spec.volume)
            raise
        try:
            async with self._translate(f"environment {spec.name!r}"):
                await container.start()
            for host_path, target in copy_in:
                await self.copy_in(spec.name, host_path, target)
        except BaseException:
            await asyncio.shield(self._undo_create(container, None if volume_existed else spec.volume))
            raise
        return await self.get_environment(spec.name)

    async def _undo_create(self, container: Any, volume: str | None) -> None:
        try:
            await container.delete(force=True)
        except (DockerError, aiohttp.ClientError):
            pass
        if volume:
            await self._remove_volume_quietly(volume)

    async def list_environments(self, *, include_runs: bool = True) -> list[Environment]:
        async with self._translate("environments"):
            entries = await self._docker.containers.list(all=True, filters=json.dumps(MANAGED_FILTER))
        # A container with the managed label but no environment name was not made by glmtui's create.
        envs = [Environment.from_list_entry(c._container) for c in entries if LABEL_ENV in (c._container.get("Labels") or {})]
        if not include_runs:
            envs = [e for e in envs if not e.run_id]
        return sorted(envs, key=lambda e: e.name)

    async def get_environment(self, name: str) -> Environment:
        entry = await self._find_container(container_name(check_name(name)))
        if entry is None:
            raise NotFound(f"no environment named {name!r}", hint="`glmtui env list` shows them")
        return Environment.from_list_entry(entry)

    async def inspect_environment(self, name: str) -> dict[str, Any]:
        async with self._translate(f"environment {name!r}"):
            return await self._container(name).show()

    async def start_environment(self, name: str) -> None:
        async with self._translate(f"environment {name!r}"):
            await self._container(name).start()

    async def stop_environment(self, name: str, *, timeout: float = 10) -> None:
        async with self._translate(f"environment {name!r}"):
            await self._container(name).stop(t=int(timeout))

    async def remove_environment(self, name: str, *, volume: bool = False) -> None:
        """Remove the container (and its volume); a volume whose container is gone goes too."""
        try:
            async with self._translate(f"environment {name!r}"):
                await self._container(name).delete(force=True, v=False)
        except Conflict as err:
            if "in progress" not in err.message:
                raise
            await self._wait_gone(name)  # someone else is removing it: the same end
        except NotFound:
            if not (volume and await self._volume_exists(volume_name(name))):
                raise
        if volume:
            await self._remove_volume_quietly(volume_name(name))

    async def remove_run_environments(self, run_ids: set[str]) -> list[str]:
        """Throw-away environments of the given runs, running or not, with their volumes."""
        removed = []
        for env in await self.list_environments():
            if env.run_id in run_ids:
                await self.remove_environment(env.name, volume=True)
                removed.append(env.name)
        return removed

    async def _wait_gone(self, name: str, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and await self._find_container(container_name(name)):
            await asyncio.sleep(0.1)

    # -- exec -------------------------------------------------------------------------------

    async def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Run argv in an environment, stdout and stderr apart, as they come.

        With `on_output`, each chunk goes to it as `(STDOUT|STDERR, bytes)`; without, the
        output is collected into the result. On timeout or cancellation every process the
        command started is killed inside the container.
        """
        if not argv:
            raise BadInput("no command given")
        tag = uuid.uuid4().hex
        env_list = [f"{k}={v}" for k, v in (environment or {}).items()] + [f"GLMTUI_EXEC={tag}"]
        container = self._container(name)
        started = time.monotonic()
        async with self._translate(f"environment {name!r}"):
            execution = await container.exec(
                cmd=list(argv),
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
                environment=env_list,
                workdir=workdir,
                user=user or "",
            )
        collected: dict[int, bytearray] = {STDOUT: bytearray(), STDERR: bytearray()}
        deliver = on_output or (lambda fd, data: collected[fd if fd in collected else STDOUT].extend(data))
        start_failure = bytearray()  # what runc says when the command cannot start at all
        timed_out = False
        streaming = aiohttp.ClientTimeout(total=None, sock_read=None)
        try:
            # Not aiodocker's exec stream: one message per frame costs a tenth of a fast
            # command's time; our demux hands over whatever frames have arrived at once.
            async with self._docker._query(
                f"exec/{execution.id}/start", "POST", data=json.dumps({"Detach": False, "Tty": False}),
                headers={"Content-Type": "application/json"}, timeout=streaming,
            ) as response:
                async def pump() -> None:
                    first = True
                    async for fd, data in _demux(response.content, tty=False):
                        if first and data.startswith(_START_FAILURE):
                            start_failure.extend(data)
                        else:
                            deliver(fd, data)
                        first = False

                try:
                    await asyncio.wait_for(pump(), timeout)
                except asyncio.TimeoutError:
                    timed_out = True
                    await self._kill_exec(name, tag, user)
        except asyncio.CancelledError:
            await asyncio.shield(self._kill_exec(name, tag, user))
            raise
        except (aiohttp.ClientError, OSError) as err:
            raise EngineUnreachable(f"lost the Docker engine during the command: {err}") from None
        exit_code = await self._exec_exit_code(execution)
        result = ExecResult(
            exit_code=exit_code,
            duration=time.monotonic() - started,
            stdout=bytes(collected[STDOUT]),
            stderr=bytes(collected[STDERR]),
            timed_out=timed_out,
        )
        if timed_out:
            result.reason = f"timed out after {timeout:g}s; its processes were killed"
        elif start_failure:
            result.reason = _start_failure_reason(bytes(start_failure), argv[0])
            if "not found" in result.reason:
                result.exit_code = 127
        elif exit_code == -1 or exit_code >= 128:
            result.reason = await self._why_ended(name, exit_code)
        return result

    async def spawn(self, name: str, argv: Sequence[str], *, user: str | None = None) -> None:
        """Start a command and return at once: for tidying up that nobody waits for."""
        async with self._translate(f"environment {name!r}"):
            execution = await self._container(name).exec(
                cmd=list(argv), stdout=False, stderr=False, tty=False, user=user or ""
            )
            await execution.start(detach=True)

    async def _exec_exit_code(self, execution: Any) -> int:
        for _ in range(100):
            try:
                info = await execution.inspect()
            except DockerError:
                return -1
            except (aiohttp.ClientError, OSError) as err:
                raise unreachable(self.host, err) from None
            if not info.get("Running"):
                code = info.get("ExitCode")
                return -1 if code is None else int(code)
            await asyncio.sleep(0.01)
        return -1

    async def _why_ended(self, name: str, exit_code: int) -> str | None:
        """Why a command died of a signal: its environment stopped, ran out of memory, or a kill."""
        for _ in range(10):  # Docker needs a moment to see a killed container as stopped
            try:
                state = (await self._container(name).show())["State"]
            except DockerError:
                return "the environment was removed while the command ran"
            if state.get("OOMKilled"):
                return "the environment ran out of memory and the command was killed"
            if not state.get("Running"):
                return "the environment stopped while the command ran"
            await asyncio.sleep(0.05)
        if exit_code > 128:
            return f"killed by signal {exit_code - 128}"
        return None

    async def _kill_exec(self, name: str, tag: str, user: str | None) -> None:
        try:
            execution = await self._container(name).exec(
                cmd=["sh", "-c", _KILL_SCRIPT, "glmtui-kill", tag], stdout=True, stderr=True, tty=False, user=user or ""
            )
            await execution.start(detach=True)
            await self._exec_exit_code(execution)
        except (DockerError, aiohttp.ClientError, OSError):
            pass  # the environment is gone: so are its processes

    async def open_interactive(
        self,
        name: str,
        argv: Sequence[str] | None = None,
        *,
        rows: int = 24,
        columns: int = 80,
        environment: Mapping[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
    ) -> InteractiveExec:
        """A TTY process (a shell by default: bash, falling back to sh)."""
        env = {"TERM": os.environ.get("TERM", "xterm-256color"), **(environment or {})}
        async with self._translate(f"environment {name!r}"):
            execution = await self._container(name).exec(
                cmd=list(argv or SHELL_ARGV),
                stdout=True,
                stderr=True,
                stdin=True,
                tty=True,
                environment=[f"{k}={v}" for k, v in env.items()],
                workdir=workdir,
                user=user or "",
            )
            stream = execution.start(detach=False)
            await stream.__aenter__()
        session = InteractiveExec(execution, stream)
        await session.resize(rows, columns)
        return session

    # -- logs and events --------------------------------------------------------------------

    async def logs(
        self,
        name: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        since: str | float | None = None,
        timestamps: bool = False,
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The container's own output as (STDOUT|STDERR, bytes) chunks."""
        params: dict[str, Any] = {
            "stdout": "1",
            "stderr": "1",
            "follow": "1" if follow else "0",
            "timestamps": "1" if timestamps else "0",
            "tail": "all" if tail is None else str(tail),
        }
        if since is not None:
            seconds = since if isinstance(since, (int, float)) else parse_duration(since, what="since")
            params["since"] = f"{time.time() - seconds:.3f}"
        env = await self.get_environment(name)
        tty = (await self.inspect_environment(name))["Config"].get("Tty", False)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._translate(f"environment {name!r}"):
            async with self._docker._query(
                f"containers/{env.id}/logs", params=params, timeout=timeout
            ) as response:
                async for chunk in _demux(response.content, tty):
                    yield chunk

    async def stats(self, name: str) -> AsyncIterator[Stats]:
        """A sample about every second while the environment runs (Docker's own pace)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._translate(f"environment {name!r}"):
            async with self._docker._query(
                f"containers/{container_name(name)}/stats", params={"stream": "1"}, timeout=timeout
            ) as response:
                async for line in response.content:
                    if line.strip():
                        yield Stats.from_json(json.loads(line))

    async def events(self, *, reconnect: bool = True) -> AsyncIterator[EngineEvent]:
        """glmtui's containers, images and volumes as they change; survives engine restarts."""
        since: float | None = None
        connected = True
        delay = 0.2
        while True:
            params: dict[str, Any] = {"filters": json.dumps(MANAGED_FILTER)}
            if since is not None:
                params["since"] = f"{since:.9f}"
            try:
                timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
                async with self._docker._query("events", params=params, timeout=timeout) as response:
                    if not connected:
                        connected, delay = True, 0.2
                        yield EngineEvent("engine", "reconnected", time=time.time())
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = _event_from_json(json.loads(line))
                        since = event.time
                        yield event
            except (aiohttp.ClientError, OSError, DockerError, asyncio.TimeoutError):
                pass
            if not reconnect:
                return
            if connected:
                connected = False
                yield EngineEvent("engine", "disconnected", time=time.time())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- files ------------------------------------------------------------------------------

    async def copy_in(self, name: str, source: Path, destination: str) -> None:
        """Put a host file or folder at `destination` (a trailing '/' means: into that folder)."""
        if not source.exists():
            raise NotFound(f"no such file or folder on the host: {source}")
        if destination.endswith("/"):
            destination += source.name
        uid, gid = await self._owner(name)
        data = archive.pack_path(source, destination.strip("/") or ".", uid, gid)
        await self._put_archive(name, data)

    async def write_file(self, name: str, path: str, content: bytes, *, mode: int = 0o644) -> None:
        uid, gid = await self._owner(name)
        await self._put_archive(name, archive.pack_bytes(path.strip("/"), content, mode, uid, gid))

    async def _owner(self, name: str) -> tuple[int, int]:
        """Who files put into the environment belong to: its configured user."""
        info = await self.inspect_environment(name)
        if info["Id"] in self._owners:  # resolved once per container: write steps come often
            return self._owners[info["Id"]]
        user = info["Config"].get("User") or ""
        files = ["", ""]
        if user and not user.replace(":", "").isdigit():
            for index, path in enumerate(("/etc/passwd", "/etc/group")):
                try:
                    files[index] = (await self.read_file(name, path)).decode(errors="replace")
                except (GlmtuiError, IsADirectoryError):
                    pass
        owner = self._owners[info["Id"]] = archive.owner_ids(user, *files)
        return owner

    async def copy_out(self, name: str, source: str, destination: Path) -> list[Path]:
        """Get a file or folder from the environment to `destination` on the host."""
        data = await self._get_archive(name, source)
        if destination.is_dir():
            destination = destination / archive.split_container_path(source)[1]
        return archive.unpack(data, destination.parent, rename_top=destination.name)

    async def read_file(self, name: str, path: str) -> bytes:
        return archive.read_single_file(await self._get_archive(name, path))

    async def _put_archive(self, name: str, data: bytes) -> None:
        async with self._translate(f"environment {name!r}"):
            async with self._docker._query(
                f"containers/{container_name(name)}/archive",
                method="PUT",
                data=data,
                headers={"content-type": "application/x-tar"},
                params={"path": "/"},
            ) as response:
                await response.read()

    async def _get_archive(self, name: str, path: str) -> bytes:
        parent, base = archive.split_container_path(path)
        if not _is_utf8(base):
            return await self._tar_by_exec(name, parent, base)
        async with self._translate(f"{path!r} in environment {name!r}"):
            async with self._docker._query(
                f"containers/{container_name(name)}/archive", params={"path": path}
            ) as response:
                return await response.read()

    async def _tar_by_exec(self, name: str, parent: str, base: str) -> bytes:
        """Docker's archive API answers an empty tar for a name that is not UTF-8; tar inside does not.

        The name travels as octal escapes that printf turns back into its bytes: no byte of
        it is ever read as shell code or as a printf directive.
        """
        escaped = "".join(f"\\{byte:03o}" for byte in os.fsencode(base))
        script = 'name=$(printf "$1"; echo .); exec tar -c -C "$2" -- "${name%.}"'
        result = await self.exec(name, ["sh", "-c", script, "sh", escaped, parent])
        if result.exit_code != 0:
            raise NotFound(f"no {parent}/{base!r} in environment {name!r}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    # -- images -----------------------------------------------------------------------------

    async def image_exists(self, ref: str) -> bool:
        try:
            await self._docker.images.inspect(ref)
            return True
        except DockerError as err:
            if err.status == 404:
                return False
            raise _translate_error(err, f"image {ref!r}") from None

    async def ensure_image(self, ref: str, *, on_progress: Callable[[str], None] | None = None) -> None:
        """Present locally: done. Absent: pulled, with progress. Neither: a clear error."""
        if await self.image_exists(ref):
            return
        try:
            async for update in self._docker.images.pull(ref, stream=True):
                if "error" in update:
                    raise DockerError(500, {"message": update["error"]})
                if on_progress and update.get("status"):
                    detail = update.get("progress") or update.get("id") or ""
                    on_progress(f"{ref}: {update['status']} {detail}".rstrip())
        except (DockerError, aiohttp.ClientError) as err:
            message = err.message if isinstance(err, DockerError) else str(err)
            raise NotFound(
                f"image {ref!r} is not here and could not be pulled: {message.splitlines()[0] if message else err}",
                hint="build it with `glmtui image build`, or name an image `docker images` lists",
            ) from None

    async def list_images(self) -> list[dict[str, Any]]:
        async with self._translate("images"):
            images = await self._docker.images.list()
        return [
            image
            for image in images
            if (image.get("Labels") or {}).get(LABEL_MANAGED) == "true"
            or any(tag.startswith("glmtui/") for tag in image.get("RepoTags") or [])
        ]

    async def build_image(
        self,
        context: bytes,
        tags: Sequence[str],
        *,
        dockerfile: str = "Dockerfile",
        args: Mapping[str, str] | None = None,
        network: str | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> str:
        """Build from a tar'ed context; returns the image id. Errors carry the failing line."""
        params: dict[str, str] = {"t": tags[0], "dockerfile": dockerfile, "rm": "1", "forcerm": "1"}
        params["labels"] = json.dumps({LABEL_MANAGED: "true"})
        if args:
            params["buildargs"] = json.dumps(dict(args))
        if network:
            params["networkmode"] = network
        image_id = ""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._translate("image build"):
            async with self._docker._query(
                "build",
                method="POST",
                params=params,
                data=context,
                headers={"content-type": "application/x-tar"},
                timeout=timeout,
            ) as response:
                async for line in response.content:
                    if not line.strip():
                        continue
                    update = json.loads(line)
                    if "error" in update:
                        raise GlmtuiError(f"image build failed: {update['error'].strip()}")
                    if "aux" in update and "ID" in update["aux"]:
                        image_id = update["aux"]["ID"]
                    text = (update.get("stream") or update.get("status") or "").rstrip()
                    if text and on_progress:
                        on_progress(text)
        for extra in tags[1:]:
            repo, _, tag = extra.rpartition(":")
            await self.tag_image(tags[0], repo, tag)
        return image_id

    async def import_image(self, tar_path: Path, repo: str, tag: str) -> None:
        """`docker import`: a root file system tar becomes an image."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        with tar_path.open("rb") as data:
            async with self._translate("image import"):
                async with self._docker._query(
                    "images/create",
                    method="POST",
                    params={"fromSrc": "-", "repo": repo, "tag": tag},
                    data=data,
                    headers={"content-type": "application/x-tar"},
                    timeout=timeout,
                ) as response:
                    async for line in response.content:
                        if line.strip() and "error" in (update := json.loads(line)):
                            raise GlmtuiError(f"image import failed: {update['error']}")

    async def tag_image(self, source: str, repo: str, tag: str) -> None:
        async with self._translate(f"image {source!r}"):
            await self._docker.images.tag(source, repo, tag=tag)

    # -- clean ------------------------------------------------------------------------------

    async def clean(self, *, volumes: bool = False) -> CleanReport:
        """Stopped glmtui containers, dangling glmtui images, and (volumes=True) unused glmtui volumes."""
        report = CleanReport()
        async with self._translate("environments"):
            entries = await self._docker.containers.list(all=True, filters=json.dumps(MANAGED_FILTER))
        settled = datetime.now(timezone.utc) - timedelta(seconds=CREATING_GRACE)
        for env in (Environment.from_list_entry(c._container) for c in entries):
            # "created" and young: another glmtui may be about to start it.
            if env.status in ("exited", "dead") or (env.status == "created" and env.created < settled):
                try:
                    await self._docker.containers.container(env.id).delete(force=True)
                    report.containers.append(env.name)
                except DockerError:
                    pass
        async with self._translate("images"):
            dangling = await self._docker.images.list(
                filters=json.dumps({"dangling": ["true"], "label": [f"{LABEL_MANAGED}=true"]})
            )
        for image in dangling:
            try:
                await self._docker.images.delete(image["Id"], force=False)
                report.images.append(image["Id"].removeprefix("sha256:")[:12])
            except DockerError:
                pass
        if volumes:
            listing = await self._docker.volumes.list(filters=json.dumps(MANAGED_FILTER))
            for volume in listing.get("Volumes") or []:
                try:
                    await DockerVolume(self._docker, volume["Name"]).delete()
                    report.volumes.append(volume["Name"])
                except DockerError:
                    pass  # in use by an environment that still exists
        return report

    # -- helpers ----------------------------------------------------------------------------

    def _container(self, name: str) -> Any:
        return self._docker.containers.container(container_name(name))

    async def _find_container(self, container: str) -> dict[str, Any] | None:
        filters = {"name": [f"^/{container}$"], **MANAGED_FILTER}
        async with self._translate("environments"):
            found = await self._docker.containers.list(all=True, filters=json.dumps(filters))
        return found[0]._container if found else None

    async def _volume_exists(self, name: str) -> bool:
        try:
            await DockerVolume(self._docker, name).show()
            return True
        except DockerError:
            return False

    async def _remove_volume_quietly(self, name: str) -> None:
        try:
            await DockerVolume(self._docker, name).delete()
        except (DockerError, aiohttp.ClientError):
            pass

    @asynccontextmanager
    async def _translate(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except DockerError as err:
            raise _translate_error(err, what) from None
        except (aiohttp.ClientConnectionError, ConnectionError, FileNotFoundError) as err:
            raise unreachable(self.host, err) from None


def _translate_error(err: DockerError, what: str) -> GlmtuiError:
    message = (err.message or "").strip().splitlines()[0] if err.message else str(err)
    if err.status == 404:
        if what.startswith("environment "):
            return NotFound(f"no {what}", hint="`glmtui env list` shows them")
        return NotFound(f"{what}: {message}")
    if err.status == 409:
        if "is not running" in message:
            return BadInput(f"{what} is not running", hint=f"start it: glmtui env start {what.split(chr(39))[1]}")
        return Conflict(f"{what}: {message}")
    if err.status == 400:
        return BadInput(f"{what}: {message}")
    return GlmtuiError(f"{what}: the Docker engine answered {err.status}: {message}")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _start_failure_reason(text: bytes, program: str) -> str:
    if b"executable file not found" in text or b"no such file or directory" in text:
        return f"command not found: {program!r} is not in the environment's PATH"
    detail = text.decode(errors="replace").strip().rsplit(": ", 2)[-2:]
    return f"cannot start {program!r}: {' '.join(detail).removesuffix(' unknown')}"


def _event_from_json(data: Mapping[str, Any]) -> EngineEvent:
    actor = data.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    return EngineEvent(
        type=data.get("Type", ""),
        action=str(data.get("Action", "")).split(":")[0],
        name=attributes.get(LABEL_ENV),
        id=actor.get("ID"),
        time=data.get("timeNano", 0) / 1e9 or float(data.get("time", 0)),
        attributes=attributes,
    )


async def _demux(content: aiohttp.StreamReader, tty: bool) -> AsyncIterator[tuple[int, bytes]]:
    """Docker's multiplexed stream (8-byte headers: stream id, length; then the frame) as
    (STDOUT|STDERR, bytes): whatever has arrived, consecutive frames of a stream joined."""
    if tty:
        async for data in content.iter_any():
            yield STDOUT, data
        return
    buffer = bytearray()
    async for data in content.iter_any():
        buffer += data
        for chunk in _whole_frames(buffer):
            yield chunk
        await asyncio.sleep(COALESCE_SECONDS)


def _whole_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """The complete frames at the start of `buffer`, taken out of it."""
    runs: list[tuple[int, list[memoryview]]] = []
    end = len(buffer)
    position = 0
    with memoryview(buffer) as view:
        while end - position >= 8:
            length = int.from_bytes(view[position + 4 : position + 8], "big")
            stop = position + 8 + length
            if stop > end:
                break
            fd = STDERR if view[position] == 2 else STDOUT
            if length:
                if runs and runs[-1][0] == fd:
                    runs[-1][1].append(view[position + 8 : stop])
                else:
                    runs.append((fd, [view[position + 8 : stop]]))
            position = stop
        chunks = [(fd, b"".join(parts)) for fd, parts in runs]
        for _, parts in runs:
            for part in parts:
                part.release()
    del buffer[:position]
    return chunks
