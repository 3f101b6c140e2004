"""The schedules of saved agents, run by the open TUI while no `glmtui serve` runs them.

One process per data folder runs the schedules: the holder of the scheduler lock beside the
database (glmtui.service.serve.SchedulerLock). The TUI takes it with role `tui` once its service
is up (after the first screen) and runs the scheduler (glmtui.service.scheduler) on that
service until it quits; while `glmtui serve` or another TUI holds it, the TUI only says who
does, and takes it when they let go (`take` is called again now and then). Nothing here
imports textual.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from glmtui.errors import Conflict

RUN_HERE = "schedules run by this TUI while it is open"


class TuiSchedules:
    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self.lock: Any = None  # glmtui.service.serve.SchedulerLock, made when first taken (not at start-up)
        self.scheduler: Any = None  # glmtui.service.scheduler.Scheduler, while this process runs it
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def take(self, service: Any) -> bool:
        """Run the schedules on `service` when no other process does; whether this one does now."""
        from glmtui.service.scheduler import Scheduler
        from glmtui.service.serve import SchedulerLock, scheduler_holder

        if self.running:
            return True
        if scheduler_holder(self.lock_path) is not None:  # cheaper than failing to take it
            return False
        self.lock = self.lock or SchedulerLock(self.lock_path)
        try:
            self.lock.acquire("tui")
        except Conflict:  # taken between the look and the try
            return False
        self.scheduler = Scheduler(service)
        self.task = asyncio.get_running_loop().create_task(self.scheduler.run(), name="glmtui scheduler")
        self.task.add_done_callback(lambda task: self._ended(task, service))
        return True

    def _ended(self, task: asyncio.Task[None], service: Any) -> None:
        """The scheduler stopped by itself (a bug): say so and let another process take over."""
        self.lock.release()
        self.scheduler = None
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            service.announce(f"the scheduler stopped: {type(error).__name__}: {error}")

    def reload(self) -> None:
        """This process changed the agents (its own commits do not count as changes for the
        scheduler's look at the store): the scheduler reads them again now."""
        if self.running:
            self.scheduler.load(self.scheduler.clock.now())

    def status(self, engine_answers: bool) -> str:
        """One line: who runs the schedules, or that nobody does and how to change that."""
        from glmtui.service.serve import schedules_status

        if self.running:
            return RUN_HERE
        status = schedules_status(self.lock_path)
        if not engine_answers and status.startswith("schedules are not being run"):
            status += "; this TUI runs them once the Docker engine answers"
        return status

    async def stop(self) -> None:
        """Stop the scheduler (the executions it started go on: the service ends them) and let
        go of the lock."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.lock is not None:
            self.lock.release()
