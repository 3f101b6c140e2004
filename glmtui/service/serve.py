"""`glmtui serve`: the one long-lived process of a user, serving the service's faces.

It runs the scheduler of saved agents and serves, on one address, the HTTP API with its
Server-Sent Events and webhooks (glmtui.server), and the faces beside it (`faces()`: MCP, the
web dashboard), all on the same service. Exactly one process per user
(per data folder) runs the schedules: it holds an flock on `scheduler.lock` beside the database,
whose content names it (`scheduler_holder()` tells anyone who runs them). Ctrl-C or SIGTERM
cancels every running run and execution as Ctrl-C cancels a headless run (steps killed,
throw-away environments removed, recorded as cancelled), then stops the HTTP server, and exits
with 130.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from glmtui import paths
from glmtui.errors import EXIT_INTERRUPTED, Conflict
from glmtui.units import counted

LOG_LIMIT = 10 * 1024 * 1024  # agents.log is moved to agents.log.1 when over this at a start
UNIT_NAME = "glmtui.service"


# --- who runs the schedules --------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    pid: int | None
    role: str  # serve, or tui (the TUI runs them while no serve does)
    started: float | None

    def describe(self) -> str:
        what = {"serve": "glmtui serve", "tui": "the glmtui TUI"}.get(self.role, f"glmtui {self.role}")
        since = f", since {datetime.fromtimestamp(self.started):%Y-%m-%d %H:%M}" if self.started else ""
        return f"{what} (pid {self.pid}{since})" if self.pid else f"{what} (pid unknown{since})"


class SchedulerLock:
    """The lock of the one process that runs the schedules. flock, not fcntl's record locks:
    those are dropped when the process closes any descriptor of the file, e.g. while checking
    who holds it. The file is never removed (a removed file could be locked twice)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.scheduler_lock()
        self._fd: int | None = None

    def acquire(self, role: str = "serve") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = scheduler_holder(self.path)
            shown = holder.describe() if holder else "another process"
            kill = f"kill {holder.pid}" if holder and holder.pid else "stop it"
            raise Conflict(f"{shown} already runs the schedules of saved agents (one per user)",
                           hint=f"{kill} first") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "role": role, "started": time.time()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def scheduler_holder(path: Path | None = None) -> Holder | None:
    """The process that runs the schedules now, or None when none does."""
    path = path or paths.scheduler_lock()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                data = json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:
                data = {}
            return Holder(data.get("pid"), data.get("role", "serve"), data.get("started"))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def schedules_status(path: Path | None = None) -> str:
    """One line for a person: who runs the schedules (of the lock at `path`), or how to get them run."""
    holder = scheduler_holder(path)
    if holder is None:
        return "schedules are not being run: start `glmtui serve` (or `glmtui serve --install-user-unit`)"
    return f"schedules are run by {holder.describe()}"


# --- the log ---------------------------------------------------------------------------------


class AgentsLog:
    """Timestamped lines to agents.log (and echoed, e.g. to the terminal serve runs in)."""

    def __init__(self, path: Path | None = None, echo: IO[str] | None = None) -> None:
        self.path = path or paths.agents_log()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.stat().st_size > LOG_LIMIT:
                self.path.replace(self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self.echo = echo

    def line(self, text: str) -> None:
        stamped = f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}"
        self._file.write(stamped + "\n")
        if self.echo is not None:
            print(stamped, file=self.echo, flush=True)

    def close(self) -> None:
        self._file.close()


# --- serving ---------------------------------------------------------------------------------


def faces(service: Any, bind: Any, log: Any) -> list[Any]:
    """The faces served beside the HTTP API, behind its token (glmtui.server.app.Face): MCP at
    /mcp as it comes, and the web dashboard at / (last: it answers every path no other face has)."""
    from glmtui.server.dashboard import dashboard_face

    return [dashboard_face(log.line, bind.tls_cert)]


async def serve(config: Any, bind: Any = None, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Hold the lock, run the scheduler and serve HTTP until Ctrl-C or SIGTERM; then refuse new
    work, cancel the running work (whose followers see it end), and stop the server."""
    from glmtui.docker.engine import Engine
    from glmtui.server.listen import Bind
    from glmtui.server.web import HttpFace
    from glmtui.service.scheduler import Scheduler
    from glmtui.service.service import Service
    from glmtui.store import Store

    out, err = out or sys.stdout, err or sys.stderr
    bind = bind or Bind(config.get("serve.host"), config.get("serve.port"))
    bind.check()
    lock = SchedulerLock()
    lock.acquire("serve")
    store = Store()
    log = AgentsLog(echo=out)
    engine = None
    try:
        engine = await Engine.connect(config.get("docker_host"))
        service = Service(engine, store, config, announce=log.line)
        scheduler = Scheduler(service)
        http = HttpFace(service, config, bind, log, faces(service, bind, log))
        warning = bind.warning()
        if warning:
            print(f"glmtui: {warning}", file=err, flush=True)
            log.line(warning)
        log.line(f"glmtui serve (pid {os.getpid()}): {'; '.join([_agents_line(service), *http.describe()])}; "
                 f"log {log.path}; Ctrl-C or `kill {os.getpid()}` stops it")
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if stopping.is_set():
                log.line("still stopping: cancelling the running work and cleaning up")
                return
            stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        schedules = asyncio.create_task(scheduler.run(), name="scheduler")
        serving = asyncio.create_task(http.run(), name="http")
        stopper = asyncio.create_task(stopping.wait())
        try:
            done, _ = await asyncio.wait([stopper, schedules, serving], return_when=asyncio.FIRST_COMPLETED)
            http.refuse_new_work()
            schedules.cancel()
            await asyncio.gather(schedules, return_exceptions=True)
            running = service.running()
            if running:
                kinds = collections.Counter(work.kind for work in running)
                log.line(f"stopping: cancelling {' and '.join(counted(n, f'running {kind}') for kind, n in sorted(kinds.items()))}")
            await service.shutdown()
            http.stop()
            await asyncio.gather(serving, return_exceptions=True)
            failed = [task for task in done if task is not stopper and not task.cancelled() and task.exception()]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        finally:
            stopper.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.line("glmtui serve stopped")
        return EXIT_INTERRUPTED
    finally:
        if engine is not None:
            await engine.close()
        store.close()
        log.close()
        lock.release()


def _agents_line(service: Any) -> str:
    agents = service.agents.list()
    scheduled = [a for a in agents if a.definition.schedule_text]
    active = sum(1 for a in scheduled if a.status == "active")
    paused = len(scheduled) - active
    return (f"runs the schedules of saved agents ({active} active{f', {paused} paused' if paused else ''}; "
            f"at most {service.slots.limit} executions at once)")


# --- keeping it running ------------------------------------------------------------------------


def user_unit() -> str:
    """A systemd user unit that keeps `glmtui serve` running (this Python, this glmtui)."""
    command = " ".join(_systemd_quote(word) for word in (sys.executable, "-m", "glmtui", "serve"))
    environment_file = paths.user_config_file().parent / "serve.env"
    return f"""\
[Unit]
Description=glmtui serve: runs the schedules of saved agents

[Service]
Type=simple
ExecStart={command}
WorkingDirectory=%h
# API keys (ZAI_API_KEY=...) and other variables for the agents, one per line; optional
EnvironmentFile=-{environment_file}
Restart=on-failure
RestartSec=10
# SIGTERM cancels the running executions and cleans up, then glmtui exits with 130
KillSignal=SIGTERM
TimeoutStopSec=90
SuccessExitStatus=130

[Install]
WantedBy=default.target
"""


def install_user_unit() -> tuple[Path, str]:
    """Write the unit; returns its path and "created", "updated" or "unchanged"."""
    path = paths.user_units_dir() / UNIT_NAME
    text = user_unit()
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return path, "unchanged"
        status = "updated"
    else:
        status = "created"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, status


def _systemd_quote(word: str) -> str:
    if word and not any(char in word for char in " \t\n\"'\\;$%"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$") + '"'
