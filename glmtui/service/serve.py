"""What `glmtui serve` (glmtui.server.process) and the TUI share about running the schedules.

Exactly one process per user (per data folder) runs the schedules of saved agents: it holds an
flock on `scheduler.lock` beside the database (SchedulerLock), whose content names it
(`scheduler_holder()` tells anyone who runs them); AgentsLog is the log of what it started and
how it ended; `install_user_unit()` writes the systemd user unit that keeps serve running.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from glmtui import paths
from glmtui.errors import Conflict

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
