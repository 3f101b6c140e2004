"""The one object through which glmtui touches a Docker engine.

The TUI, the plan runner and the agent tools share an `Engine`, so they share one connection
and one set of safe defaults (see `spec.py`). It satisfies `interface.ContainerEngine`.

One client underneath: `wire` (h11 on the connections of `transport`: a unix socket, TCP with
TLS, or SSH), for everything: environments, exec, files, images, logs, stats, events and
interactive shells. Its errors (glmtui.docker.errors) become the user's errors here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from glmtui.docker import archive
from glmtui.docker.endpoints import Endpoint, default_endpoint
from glmtui.docker.errors import EngineConnectionError, EngineHTTPError, unreachable
from glmtui.docker.transport import dialer_for
from glmtui.docker.types import CleanReport, EngineEvent, Environment, ExecResult, Stats
from glmtui.docker.spec import (
    LABEL_ENV,
    LABEL_MANAGED,
    MANAGED_FILTER,
    EnvSpec,
    check_name,
    checkpoints_name,
    container_name,
    volume_name,
)
from glmtui.docker.wire import Upgraded, Wire
from glmtui.errors import BadInput, Conflict, EngineUnreachable, GlmtuiError, NotFound, WorkFailed
from glmtui.units import format_bytes, parse_duration

CREATING_GRACE = 60  # seconds a container may stay "created" before `clean` takes it
END_SECONDS = 10  # how long `end_processes` tries to start its exec
STDOUT, STDERR = 1, 2
OutputCallback = Callable[[int, bytes], None]
# Every process of one exec, children and daemons included, inherits GLMTUI_EXEC=<tag> (and a
# run step's, GLMTUI_RUN_ID=<run>): this shell function ends those whose environment holds the
# NAME=value it is given (but the shell itself), which travels as an argument, never inside the
# script text. Stopped first, then killed, so no parent sees a child die and carries on; rounds
# until none is left. Shell builtins only (no process is started), so it works when a fork
# bomb holds the environment at its process limit.
_END_TAGGED = """
end_tagged() {
  rounds=0
  while [ "$rounds" -lt 20 ]; do
    rounds=$((rounds + 1))
    pids=
    for p in /proc/[0-9]*; do
      [ "${p#/proc/}" = "$$" ] && continue
      while IFS= read -r line || [ -n "$line" ]; do
        case $line in *"$1"*) pids="$pids ${p#/proc/}"; break;; esac
      done < "$p/environ"
    done 2>/dev/null
    [ -z "$pids" ] && return
    kill -STOP $pids 2>/dev/null
    kill -KILL $pids 2>/dev/null
  done
}
"""
# A timeout or a cancel (or the end of a run, see `end_processes`): another exec ends them.
_KILL_SCRIPT = _END_TAGGED + 'end_tagged "$1"\n'
# `reap`: the command runs under a shell that, once the command has ended, ends what it left
# behind, in the same exec (no extra round trip to the engine). A program that is not there is
# reported as when runc cannot start it: the reason names the program, not the shell.
_REAP_SCRIPT = _END_TAGGED + """
command -v "$1" >/dev/null 2>&1 || { echo 'glmtui: command not found' >&2; exit 127; }
(exec "$@")
status=$?
end_tagged "GLMTUI_EXEC=$GLMTUI_EXEC"
exit "$status"
"""
_NOT_FOUND = b"glmtui: command not found\n"  # what _REAP_SCRIPT says then
_START_FAILURE = b"OCI runtime exec failed"
_WORKDIR_FAILURE = re.compile(r'chdir to cwd \("(.*?)"\) set in config\.json failed: ([^:]+)')
# A pause after each read of a stream lets the next frames gather: a busy stream arrives in a
# few large pieces instead of thousands of 4 KiB frames, each costing the loop a wake-up.
COALESCE_SECONDS = 0.001
SHELL_ARGV = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"]


class InteractiveExec:
    """A process with a TTY inside an environment: write keys, read the screen, resize."""

    def __init__(self, engine: Engine, execution: str, stream: Upgraded) -> None:
        self._engine = engine
        self._exec = execution
        self._stream = stream

    async def read(self) -> bytes | None:
        """What the process wrote; None once it ended (or the engine went away)."""
        try:
            data = await self._stream.read()
        except EngineConnectionError:
            return None
        return data or None

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)

    async def resize(self, rows: int, columns: int) -> None:
        try:
            await self._engine._wire.json("POST", f"/exec/{self._exec}/resize", params={"h": rows, "w": columns})
        except (EngineHTTPError, EngineConnectionError):
            pass  # the process may have ended between the signal and the call

    async def close(self) -> int:
        self._stream.close()
        code = await self._engine._exec_exit_code(self._exec)
        return max(code, 0)


class Engine:
    """Async access to one Docker engine. Use `await Engine.connect()` and `await engine.close()`."""

    def __init__(self, wire: Wire, endpoint: Endpoint, version: Mapping[str, Any]) -> None:
        self._wire = wire
        self.endpoint = endpoint
        self.name = endpoint.name
        self.host = endpoint.host
        self.version_info = dict(version)
        self._owners: dict[str, tuple[int, int]] = {}  # container id -> uid, gid of files put in

    # -- connection -------------------------------------------------------------------------

    @classmethod
    async def connect(cls, target: str | Endpoint | None = None) -> Engine:
        """The engine of `target`: an Endpoint, an address (named `default`, as the config's
        docker_host), or None for the engine the docker CLI would use."""
        if isinstance(target, Endpoint):
            endpoint = target
        elif target is None:
            from glmtui.docker.endpoints import resolve

            endpoint = resolve()[None]
        else:
            endpoint = default_endpoint(target)
        wire = None
        try:
            wire = Wire(dialer_for(endpoint))
            version = await wire.connect()
        except (EngineConnectionError, EngineHTTPError) as err:
            if wire is not None:
                await wire.close()
            raise unreachable(endpoint.host, err, endpoint.name) from None
        return cls(wire, endpoint, version)

    @property
    def remote(self) -> bool:
        """Maybe another machine: its paths (bind mounts) are not this machine's."""
        return not self.endpoint.local

    async def close(self) -> None:
        await self._wire.close()

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
        if spec.allow:
            from glmtui.docker.egress import Egress

            await Egress(self).attach(spec.name, spec.allow, spec.upstream_proxy)
        async with self._translate(f"environment {spec.name!r}"):
            await self._wire.json("POST", "/volumes/create", body={
                "Name": spec.volume, "Labels": {LABEL_MANAGED: "true", LABEL_ENV: spec.name},
            })
        try:
            async with self._translate(f"environment {spec.name!r}"):
                created = await self._wire.json(
                    "POST", "/containers/create", params={"name": spec.container}, body=spec.container_config(),
                )
        except Conflict:
            # Someone created the same name at the same moment: theirs wins, their volume stays.
            raise Conflict(f"environment {spec.name!r} exists already", hint="pick another name or remove it")
        except BaseException:
            if not volume_existed:
                await self._remove_volume_quietly(spec.volume)
            if spec.allow:
                await asyncio.shield(self._detach_egress(spec.name))
            raise
        try:
            await self.start_environment(spec.name)
            if spec.ca_certificates:
                await self._install_ca(spec.name, spec.ca_certificates)
            for host_path, target in copy_in:
                await self.copy_in(spec.name, host_path, target)
        except BaseException:
            await asyncio.shield(self._undo_create(created["Id"], None if volume_existed else spec.volume))
            if spec.allow:
                await asyncio.shield(self._detach_egress(spec.name))
            raise
        return await self.get_environment(spec.name)

    async def _install_ca(self, name: str, certificates: bytes) -> None:
        """The user's CAs into the environment: their bundle, and the system store where it can."""
        from glmtui.docker.passthrough import CA_EXTRA, INSTALL_CA

        await self._put_archive(name, archive.pack_bytes(CA_EXTRA.strip("/"), certificates, 0o644, 0, 0))
        result = await self.exec(name, ["/bin/sh", "-c", INSTALL_CA], user="0")
        if result.exit_code != 0:
            raise WorkFailed(f"environment {name!r}: the CA certificates could not be installed: "
                             f"{result.stderr.decode(errors='replace').strip() or result.reason}")

    async def _undo_create(self, container_id: str, volume: str | None) -> None:
        await self._remove_quietly(f"/containers/{container_id}", force="1")
        if volume:
            await self._remove_volume_quietly(volume)

    async def list_environments(self, *, include_runs: bool = True) -> list[Environment]:
        entries = await self._list_containers(MANAGED_FILTER)
        # A container with the managed label but no environment name was not made by glmtui's create.
        envs = [Environment.from_list_entry(entry, self.name) for entry in entries if LABEL_ENV in (entry.get("Labels") or {})]
        if not include_runs:
            envs = [e for e in envs if not e.run_id]
        return sorted(envs, key=lambda e: e.name)

    async def get_environment(self, name: str) -> Environment:
        entry = await self._find_container(container_name(check_name(name)))
        if entry is None:
            raise NotFound(f"no environment named {name!r}", hint="`glmtui env list` shows them")
        return Environment.from_list_entry(entry, self.name)

    async def inspect_environment(self, name: str) -> dict[str, Any]:
        async with self._translate(f"environment {name!r}"):
            return await self._wire.json("GET", f"/containers/{container_name(name)}/json")

    async def start_environment(self, name: str) -> None:
        async with self._translate(f"environment {name!r}"):
            await self._wire.json("POST", f"/containers/{container_name(name)}/start")

    async def stop_environment(self, name: str, *, timeout: float = 10) -> None:
        async with self._translate(f"environment {name!r}"):
            await self._wire.json("POST", f"/containers/{container_name(name)}/stop", params={"t": int(timeout)})

    async def remove_environment(self, name: str, *, volume: bool = False) -> None:
        """Remove the container (and its volume); a volume whose container is gone goes too. Its
        checkpoint helper goes with it (and with the volume, its checkpoints)."""
        await self._remove_quietly(f"/containers/{checkpoints_name(name)}", force="1")
        try:
            async with self._translate(f"environment {name!r}"):
                await self._wire.json("DELETE", f"/containers/{container_name(name)}", params={"force": "1"})
        except Conflict as err:
            if "in progress" not in err.message:
                raise
            await self._wait_gone(name)  # someone else is removing it: the same end
        except NotFound:
            if not (volume and await self._volume_exists(volume_name(name))):
                raise
        await self._detach_egress(name)
        if volume:
            await self._remove_volume_quietly(volume_name(name))
            await self._remove_volume_quietly(checkpoints_name(name))

    async def _detach_egress(self, name: str) -> None:
        from glmtui.docker.egress import Egress

        await Egress(self).detach(name)

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
        reap: bool = False,
    ) -> ExecResult:
        """Run argv in an environment, stdout and stderr apart, as they come.

        With `on_output`, each chunk goes to it as `(STDOUT|STDERR, bytes)`; without, the
        output is collected into the result. On timeout or cancellation every process the
        command started is killed inside the container; with `reap`, also when it ends
        (what it left running in the background, daemons included).
        """
        if not argv:
            raise BadInput("no command given")
        self._wire.reserve(2)  # its output ends its connection, and its exit status needs another
        tag = uuid.uuid4().hex
        env_list = [f"{k}={v}" for k, v in (environment or {}).items()] + [f"GLMTUI_EXEC={tag}"]
        started, started_at = time.monotonic(), time.time()
        command = ["/bin/sh", "-c", _REAP_SCRIPT, "glmtui-reap", *argv] if reap else argv
        execution = await self._create_exec(name, command, env_list, workdir, user, attach=True)
        collected: dict[int, bytearray] = {STDOUT: bytearray(), STDERR: bytearray()}
        deliver = on_output or (lambda fd, data: collected[fd if fd in collected else STDOUT].extend(data))
        start_failure = bytearray()  # what runc says when the command cannot start at all
        timed_out = False
        try:
            async with self._wire.request(
                "POST", f"/exec/{execution}/start", body=json.dumps({"Detach": False, "Tty": False}).encode(),
            ) as response:
                async def pump() -> None:
                    first = True
                    async for fd, data in _demux(response.iter_any(), tty=False):
                        if first and (data.startswith(_START_FAILURE) or reap and data == _NOT_FOUND):
                            start_failure.extend(data)
                        else:
                            deliver(fd, data)
                        first = False

                try:
                    await asyncio.wait_for(pump(), timeout)
                except asyncio.TimeoutError:
                    timed_out = True
                    await self.end_processes(name, "GLMTUI_EXEC", tag, user=user)
        except asyncio.CancelledError:
            await asyncio.shield(self.end_processes(name, "GLMTUI_EXEC", tag, user=user))
            raise
        except EngineHTTPError as err:  # e.g. the environment stopped between create and start
            raise _translate_error(err, f"environment {name!r}") from None
        except EngineConnectionError as err:
            raise EngineUnreachable(f"lost the Docker engine {self.name} ({self.host}) during the command: {err}") from None
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
            started_program = command[0] if start_failure.startswith(_START_FAILURE) else argv[0]
            result.reason = _start_failure_reason(bytes(start_failure), started_program)
            if "not found" in result.reason:
                result.exit_code = 127
        elif exit_code == -1 or exit_code >= 128:
            result.reason = await self._why_ended(name, exit_code, since=started_at)
        return result

    async def spawn(self, name: str, argv: Sequence[str], *, user: str | None = None) -> None:
        """Start a command and return at once: for tidying up that nobody waits for."""
        execution = await self._create_exec(name, argv, [], None, user, attach=False)
        async with self._translate(f"environment {name!r}"):
            await self._wire.json("POST", f"/exec/{execution}/start", body={"Detach": True, "Tty": False})

    async def _create_exec(self, name: str, argv: Sequence[str], environment: list[str], workdir: str | None,
                           user: str | None, *, attach: bool) -> str:
        """A new exec in the environment (not started): its id."""
        async with self._translate(f"environment {name!r}"):
            created = await self._wire.json("POST", f"/containers/{container_name(name)}/exec", body={
                "Cmd": list(argv), "Env": environment, "WorkingDir": workdir or "", "User": user or "",
                "AttachStdin": False, "AttachStdout": attach, "AttachStderr": attach, "Tty": False,
            })
        return created["Id"]

    async def _exec_exit_code(self, execution: str) -> int:
        for _ in range(100):
            try:
                info = await self._wire.json("GET", f"/exec/{execution}/json")
            except EngineHTTPError:
                return -1
            except EngineConnectionError as err:
                raise unreachable(self.host, err, self.name) from None
            if not info.get("Running"):
                code = info.get("ExitCode")
                return -1 if code is None else int(code)
            await asyncio.sleep(0.01)
        return -1

    async def _why_ended(self, name: str, exit_code: int, *, since: float) -> str | None:
        """Why a command died of a signal: its environment stopped, it ran out of memory (the
        engine's `oom` event since the command started: the environment's init lives on, so
        its OOMKilled stays false), or a kill."""
        for _ in range(10):  # Docker needs a moment to see a killed container as stopped
            try:
                info = await self._wire.json("GET", f"/containers/{container_name(name)}/json")
            except EngineHTTPError:
                return "the environment was removed while the command ran"
            state = info["State"]
            if state.get("OOMKilled") or await self._ran_out_of_memory(name, since):
                limit = (info.get("HostConfig") or {}).get("Memory")
                return "the command ran out of memory" + (
                    f": the environment's limit is {format_bytes(limit)}" if limit else "")
            if not state.get("Running"):
                return "the environment stopped while the command ran"
            await asyncio.sleep(0.05)
        if exit_code > 128:
            return f"killed by signal {exit_code - 128}"
        return None

    async def _ran_out_of_memory(self, name: str, since: float) -> bool:
        """Whether the engine reported the environment out of memory since `since` (epoch seconds)."""
        filters = {"type": ["container"], "event": ["oom"], "container": [container_name(name)]}
        params = {"since": f"{since:.9f}", "until": f"{time.time():.9f}", "filters": json.dumps(filters)}
        async with self._wire.request("GET", "/events", params=params) as response:
            return bool((await response.read()).strip())

    async def end_processes(self, name: str, variable: str, value: str, *, user: str | None = None) -> None:
        """End every process in the environment whose environment holds variable=value.

        Its exec is tried again while it cannot start: a fork bomb at the process limit can
        take the threads runc needs, and gives them back as its processes die."""
        deadline = time.monotonic() + END_SECONDS
        while True:
            try:
                execution = await self._create_exec(
                    name, ["/bin/sh", "-c", _KILL_SCRIPT, "glmtui-kill", f"{variable}={value}"], [], None, user,
                    attach=False,
                )
                await self._wire.json("POST", f"/exec/{execution}/start", body={"Detach": True, "Tty": False})
                await self._exec_exit_code(execution)
                return
            except EngineHTTPError as err:
                if err.status != 500 or time.monotonic() > deadline:
                    return  # the environment stopped, or the exec never started
            except (GlmtuiError, EngineConnectionError):
                return  # the environment is gone: so are its processes
            await asyncio.sleep(0.05)

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
            created = await self._wire.json("POST", f"/containers/{container_name(name)}/exec", body={
                "Cmd": list(argv or SHELL_ARGV), "Env": [f"{k}={v}" for k, v in env.items()],
                "WorkingDir": workdir or "", "User": user or "", "Tty": True,
                "AttachStdin": True, "AttachStdout": True, "AttachStderr": True,
            })
            stream = await self._wire.upgrade("POST", f"/exec/{created['Id']}/start", {"Detach": False, "Tty": True})
        session = InteractiveExec(self, created["Id"], stream)
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
        async with self._translate(f"environment {name!r}"):
            async with self._wire.request("GET", f"/containers/{env.id}/logs", params=params) as response:
                async for chunk in _demux(response.iter_any(), tty):
                    yield chunk

    async def stats(self, name: str) -> AsyncIterator[Stats]:
        """A sample about every second while the environment runs (Docker's own pace)."""
        async with self._translate(f"environment {name!r}"):
            async with self._wire.request("GET", f"/containers/{container_name(name)}/stats",
                                          params={"stream": "1"}) as response:
                async for line in response.iter_lines():
                    if line.strip():
                        yield Stats.from_json(json.loads(line))

    async def events(self, *, reconnect: bool = True) -> AsyncIterator[EngineEvent]:
        """glmtui's containers, images and volumes as they change; survives the engine going
        away and coming back (a `disconnected` event, then `reconnected`, and what was missed)."""
        since: float | None = None
        connected = True
        delay = 0.2
        while True:
            params: dict[str, Any] = {"filters": json.dumps(MANAGED_FILTER)}
            if since is not None:
                params["since"] = f"{since:.9f}"
            try:
                async with self._wire.request("GET", "/events", params=params) as response:
                    if not connected:
                        connected, delay = True, 0.2
                        yield EngineEvent("engine", "reconnected", time=time.time(), engine=self.name)
                    async for line in response.iter_lines():
                        if not line.strip():
                            continue
                        event = _event_from_json(json.loads(line), self.name)
                        since = event.time
                        yield event
            except (EngineConnectionError, EngineHTTPError):
                pass
            if not reconnect:
                return
            if connected:
                connected = False
                yield EngineEvent("engine", "disconnected", time=time.time(), engine=self.name)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- files ------------------------------------------------------------------------------

    async def copy_in(self, name: str, source: Path, destination: str) -> None:
        """Put a host file or folder at `destination` (a trailing '/' means: into that folder)."""
        if not source.exists():
            raise NotFound(f"no such file or folder on the host: {source}")
        if destination.endswith("/"):
            destination += source.name
        uid, gid = await self.user_ids(name)
        data = archive.pack_path(source, destination.strip("/") or ".", uid, gid)
        await self._put_archive(name, data)

    async def write_file(self, name: str, path: str, content: bytes, *, mode: int = 0o644) -> None:
        uid, gid = await self.user_ids(name)
        await self._put_archive(name, archive.pack_bytes(path.strip("/"), content, mode, uid, gid))

    async def user_ids(self, name: str) -> tuple[int, int]:
        """The uid and gid of the environment's configured user (the image's, when none is set),
        as its /etc/passwd and /etc/group say; files put into the environment belong to them."""
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
        """Get a file or folder from the environment to `destination` on the host. A tree holding a
        link that points outside it (or anything else unsafe) is refused and nothing is written."""
        data = await self._get_archive(name, source)
        if destination.is_dir():
            destination = destination / archive.split_container_path(source)[1]
        try:
            return archive.unpack(data, destination.parent, rename_top=destination.name)
        except archive.UnsafeEntry as unsafe:
            parent = archive.split_container_path(source)[0]
            inside = str(PurePosixPath(parent) / unsafe.name)
            raise WorkFailed(f"copy of {source} refused: {inside} {unsafe.problem}; nothing was copied") from None

    async def read_file(self, name: str, path: str) -> bytes:
        return archive.read_single_file(await self._get_archive(name, path))

    async def _put_archive(self, name: str, data: bytes) -> None:
        async with self._translate(f"environment {name!r}"):
            async with self._wire.request(
                "PUT", f"/containers/{container_name(name)}/archive", params={"path": "/"}, body=data,
                content_type="application/x-tar",
            ) as response:
                await response.read()

    async def _get_archive(self, name: str, path: str) -> bytes:
        parent, base = archive.split_container_path(path)
        if not _is_utf8(base):
            return await self._tar_by_exec(name, parent, base)
        async with self._translate(f"{path!r} in environment {name!r}"):
            async with self._wire.request("GET", f"/containers/{container_name(name)}/archive",
                                          params={"path": path}) as response:
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
            await self._wire.json("GET", f"/images/{ref}/json")
            return True
        except EngineHTTPError as err:
            if err.status == 404:
                return False
            raise _translate_error(err, f"image {ref!r}") from None

    async def ensure_image(self, ref: str, *, on_progress: Callable[[str], None] | None = None) -> None:
        """Present locally: done. Absent: pulled, with progress. Neither: a clear error."""
        if await self.image_exists(ref):
            return
        repository, tag = _split_reference(ref)
        try:
            async with self._wire.request("POST", "/images/create",
                                          params={"fromImage": repository, "tag": tag}) as response:
                async for line in response.iter_lines():
                    if not line.strip():
                        continue
                    update = json.loads(line)
                    if "error" in update:
                        raise EngineHTTPError(500, update["error"])
                    if on_progress and update.get("status"):
                        detail = update.get("progress") or update.get("id") or ""
                        on_progress(f"{ref}: {update['status']} {detail}".rstrip())
        except EngineHTTPError as err:
            raise NotFound(
                f"image {ref!r} is not here and could not be pulled: "
                f"{err.message.splitlines()[0] if err.message else err.status}",
                hint="build it with `glmtui image build`, or name an image `docker images` lists",
            ) from None
        except EngineConnectionError as err:
            raise unreachable(self.host, err, self.name) from None

    async def list_images(self) -> list[dict[str, Any]]:
        async with self._translate("images"):
            images = await self._wire.json("GET", "/images/json")
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
        async with self._translate("image build"):
            async with self._wire.request("POST", "/build", params=params, body=context,
                                          content_type="application/x-tar") as response:
                async for line in response.iter_lines():
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
        async with self._translate("image import"):
            async with self._wire.request("POST", "/images/create", params={"fromSrc": "-", "repo": repo, "tag": tag},
                                          body=tar_path, content_type="application/x-tar") as response:
                async for line in response.iter_lines():
                    if line.strip() and "error" in (update := json.loads(line)):
                        raise GlmtuiError(f"image import failed: {update['error']}")

    async def tag_image(self, source: str, repo: str, tag: str) -> None:
        async with self._translate(f"image {source!r}"):
            await self._wire.json("POST", f"/images/{source}/tag", params={"repo": repo, "tag": tag})

    # -- clean ------------------------------------------------------------------------------

    async def clean(
        self,
        *,
        going_runs: Collection[str] = (),
        interrupted_runs: Collection[str] = (),
        names: Collection[str] = (),
        every_stopped: bool = False,
        volumes: bool = False,
        dry_run: bool = False,
    ) -> CleanReport:
        """Remove what is left over (with dry_run: only say what would go).

        - Throw-away environments of runs, with their workspaces: every one of `interrupted_runs`
          (their glmtui died), and every stopped one, but never one of `going_runs`.
        - Stopped named environments in `names`, or every one (every_stopped); their workspaces stay.
          The other stopped ones are reported as kept.
        - Dangling glmtui images; with `volumes`, every glmtui volume no container uses.
        A running environment stays, unless its run was interrupted.
        """
        report = CleanReport()
        settled = datetime.now(timezone.utc) - timedelta(seconds=CREATING_GRACE)
        for env in await self.list_environments():
            # "created" and young: another glmtui may be about to start it.
            stopped = env.status in ("exited", "dead") or (env.status == "created" and env.created < settled)
            if env.run_id:
                if env.run_id in going_runs or not (stopped or env.run_id in interrupted_runs):
                    continue
                if dry_run or await self._remove_quietly(f"/containers/{env.id}", force="1"):
                    if not dry_run:
                        await self._remove_volume_quietly(volume_name(env.name))
                    report.run_environments.append(env.name)
            elif stopped and (every_stopped or env.name in names):
                # No force: an environment that a run has just started again stays.
                if dry_run or await self._remove_quietly(f"/containers/{env.id}"):
                    report.environments.append(env.name)
            elif stopped:
                report.kept.append(env.name)
        await self._clean_leftovers_of_gone(report, settled, dry_run)
        filters = {"dangling": ["true"], "label": [f"{LABEL_MANAGED}=true"]}
        async with self._translate("images"):
            dangling = await self._wire.json("GET", "/images/json", params={"filters": json.dumps(filters)})
        for image in dangling:
            if dry_run or await self._remove_quietly(f"/images/{image['Id']}"):
                report.images.append(image["Id"].removeprefix("sha256:")[:12])
        if volumes:
            async with self._translate("volumes"):
                listing = await self._wire.json("GET", "/volumes", params={"filters": json.dumps(filters)})
            unused = [volume["Name"] for volume in listing.get("Volumes") or []]
            if dry_run:  # the workspaces of the environments that would go would be unused too
                every = await self._wire.json("GET", "/volumes", params={"filters": json.dumps(MANAGED_FILTER)})
                existing = {volume["Name"] for volume in every.get("Volumes") or []}
                unused += [volume_name(name) for name in report.environments if volume_name(name) in existing]
            for name in sorted(set(unused)):
                if dry_run or await self._remove_quietly(f"/volumes/{name}"):  # in use by now: stays
                    report.volumes.append(name)
        return report

    async def _clean_leftovers_of_gone(self, report: CleanReport, settled: datetime, dry_run: bool) -> None:
        """The checkpoint helpers and egress networks of environments that are gone (a network
        younger than CREATING_GRACE may be of an environment being made)."""
        from glmtui.docker.checkpoints import LABEL_CHECKPOINTS
        from glmtui.docker.egress import Egress
        from glmtui.docker.spec import LABEL_EGRESS

        gone = set(report.run_environments) | set(report.environments)
        present = {env.name for env in await self.list_environments()} - (gone if dry_run else set())
        for helper in await self._list_containers({"label": [LABEL_CHECKPOINTS]}):
            name = (helper.get("Labels") or {}).get(LABEL_CHECKPOINTS, "")
            if name not in present and (dry_run or await self._remove_quietly(f"/containers/{helper['Id']}", force="1")):
                report.checkpoint_helpers.append(name)
        async with self._translate("networks"):
            networks = await self._wire.json("GET", "/networks", params={"filters": json.dumps({"label": [LABEL_EGRESS]})})
        for network in networks:
            name = (network.get("Labels") or {}).get(LABEL_EGRESS, "")
            if name in present or _engine_time(network.get("Created", "")) > settled:
                continue
            if not dry_run:
                await Egress(self).detach(name)
            report.egress_networks.append(network["Name"])

    # -- helpers ----------------------------------------------------------------------------

    async def _find_container(self, container: str) -> dict[str, Any] | None:
        found = await self._list_containers({"name": [f"^/{container}$"], **MANAGED_FILTER})
        return found[0] if found else None

    async def _list_containers(self, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        async with self._translate("environments"):
            return await self._wire.json("GET", "/containers/json", params={"all": "1", "filters": json.dumps(filters)})

    async def _volume_exists(self, name: str) -> bool:
        try:
            await self._wire.json("GET", f"/volumes/{name}")
            return True
        except EngineHTTPError:
            return False

    async def _remove_volume_quietly(self, name: str) -> None:
        await self._remove_quietly(f"/volumes/{name}")

    async def _remove_quietly(self, path: str, **params: str) -> bool:
        """DELETE path; False when the engine refuses (in use, gone) or cannot be reached."""
        try:
            await self._wire.json("DELETE", path, params=params)
            return True
        except (EngineHTTPError, EngineConnectionError):
            return False

    @asynccontextmanager
    async def _translate(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except EngineHTTPError as err:
            raise _translate_error(err, what) from None
        except EngineConnectionError as err:
            raise unreachable(self.host, err, self.name) from None


def _engine_time(text: str) -> datetime:
    """An RFC 3339 time as the engine writes it (nanoseconds, UTC); the epoch if it is not one."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", text)
    if not match:
        return datetime.fromtimestamp(0, tz=timezone.utc)
    whole = datetime.fromisoformat(match[1]).replace(tzinfo=timezone.utc)
    return whole + timedelta(seconds=float(match[2] or 0))


def _split_reference(ref: str) -> tuple[str, str]:
    """An image reference as the pull API takes it: repository, and tag (or digest)."""
    if "@" in ref:
        repository, digest = ref.split("@", 1)
        return repository, digest
    repository, colon, tag = ref.rpartition(":")
    if not colon or "/" in tag:  # no tag, or the colon was a registry's port
        return ref, "latest"
    return repository, tag


def _translate_error(err: EngineHTTPError, what: str) -> GlmtuiError:
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
    workdir = _WORKDIR_FAILURE.search(text.decode(errors="replace"))  # runc: before it looks for the program
    if workdir:
        folder, problem = workdir.groups()
        if problem == "no such file or directory":
            return f"the working directory {folder!r} does not exist in the environment"
        return f"cannot enter the working directory {folder!r}: {problem}"
    if text == _NOT_FOUND or b"executable file not found" in text or b"no such file or directory" in text:
        return f"command not found: {program!r} is not in the environment's PATH"
    detail = text.decode(errors="replace").strip().rsplit(": ", 2)[-2:]
    return f"cannot start {program!r}: {' '.join(detail).removesuffix(' unknown')}"


def _event_from_json(data: Mapping[str, Any], engine: str) -> EngineEvent:
    actor = data.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    return EngineEvent(
        type=data.get("Type", ""),
        action=str(data.get("Action", "")).split(":")[0],
        name=attributes.get(LABEL_ENV),
        id=actor.get("ID"),
        time=data.get("timeNano", 0) / 1e9 or float(data.get("time", 0)),
        attributes=attributes,
        engine=engine,
    )


async def _demux(pieces: AsyncIterator[bytes], tty: bool) -> AsyncIterator[tuple[int, bytes]]:
    """Docker's multiplexed stream (8-byte headers: stream id, length; then the frame) as
    (STDOUT|STDERR, bytes): whatever has arrived, consecutive frames of a stream joined."""
    if tty:
        async for data in pieces:
            yield STDOUT, data
        return
    buffer = bytearray()
    async for data in pieces:
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
