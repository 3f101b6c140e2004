"""Runs that share a named environment take turns: a lock per engine and environment.

A run holds its environment's lock from before the environment is made until the run has
ended; runs of plans that say `env: {shared: true}` hold it together (a shared lock), and
take turns only while one of them makes or starts the environment. These are flock(2) locks
on files in the user data folder: the system releases them when their process ends, however
it ends. They are seen by the runs of this user on this machine, not by others on the same
engine.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Callable

from glmtui import paths

POLL_SECONDS = 0.1  # a waiting run tries again this often (never blocked: Ctrl-C works)


class EnvironmentLock:
    """`purpose` names what the holders do: "run" (the whole run) or "make" (make it ready)."""

    def __init__(self, host: str, name: str, purpose: str = "run") -> None:
        engine = hashlib.sha256(host.encode()).hexdigest()[:12]
        self.name = name
        self.purpose = purpose
        self.path = paths.locks_dir() / f"{name}@{engine}.{purpose}.lock"
        self._fd: int | None = None

    async def acquire(self, holder: str, *, shared: bool, on_wait: Callable[[str], None]) -> None:
        """Hold the lock, waiting for it while another run has it (`on_wait` is told once,
        with a line naming that run); then name `holder` in the file for runs that wait."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            told = False
            while not _try_lock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX):
                if not told:
                    on_wait(self._waiting_line(os.pread(fd, 200, 0).decode(errors="replace").strip()))
                    told = True
                await asyncio.sleep(POLL_SECONDS)
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        except BaseException:
            os.close(fd)  # a lock it held goes with it
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _waiting_line(self, holder: str) -> str:
        who = f"run {holder}" if holder else "another run"
        if self.purpose == "make":
            return f"waiting for {who} to make environment {self.name} ready"
        return f"waiting for {who} to finish with environment {self.name}"


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
