"""The scheduler of saved agents: starts each active agent's execution at its fire times.

Every pass (`tick`) asks the wall clock what time it is and each schedule what its next fire
time after the last one handled is, so nothing drifts: a sleep of the machine or a jump of the
clock shows as a fire time far in the past (a missed one, see below) or a wait that is simply
recomputed. Between passes it sleeps until the next fire time, at most NAP seconds, so a
change of the clock, a suspend, or an agent applied, paused or removed by another process is
seen within that time. How far fire times have been handled is kept per agent in the store
(`handled_until`), so a scheduler that starts later knows what it missed.

A fire time missed (the scheduler was not running then, or saw it more than MISSED_AFTER late)
is caught up once with trigger `catch-up` under `catch_up: once` (the default), or recorded as
a skipped `catch-up` execution under `catch_up: skip`; several missed fire times count as one.
An agent whose last execution still runs is not started again: the skip is recorded.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Protocol

from glmtui.errors import GlmtuiError

NAP = 0.2  # seconds: the longest sleep between two passes
MISSED_AFTER = 60.0  # seconds late: a fire time seen later than this was missed (sleep, clock jump)
CLOCK_BACK = 1.0  # seconds: handled_until this far in the future means the clock was set back


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock (what fire times are in) and asyncio's sleep."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class _Entry:
    name: str
    schedule: Any  # glmtui.service.schedule.Schedule
    catch_up: str
    handled_until: float
    due: float  # the next fire time


class Scheduler:
    def __init__(self, service: Any, clock: Clock | None = None) -> None:
        self.service = service
        self.agents = service.agents
        self.clock = clock or SystemClock()
        self.entries: dict[str, _Entry] = {}
        self.started = False
        self._fingerprint: tuple | None = None

    async def run(self) -> None:
        """Pass after pass until cancelled."""
        while True:
            try:
                self.tick()
            except sqlite3.OperationalError as err:  # the database is busy beyond its timeout: next pass
                self.service.announce(f"the scheduler could not read or write the store ({err}); trying again")
            now = self.clock.now()
            due = min((entry.due for entry in self.entries.values()), default=now + NAP)
            await self.clock.sleep(min(max(due - now, 0.0), NAP))

    def tick(self) -> None:
        """One pass: notice changes to the agents, start what is due."""
        now = self.clock.now()
        if self.agents.changed() or not self.started:  # another process wrote: perhaps to the agents
            fingerprint = self.agents.fingerprint()
            if fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                self.load(now)
        for entry in self.entries.values():
            if entry.handled_until > now + CLOCK_BACK:  # the clock was set back: go on from now
                entry.handled_until, entry.due = now, entry.schedule.next_after(now)
                self.agents.set_handled(entry.name, now)
        for entry in sorted(self.entries.values(), key=lambda e: e.due):
            if entry.due > now:
                break
            self.fire(entry, now, missed=not self.started or now - entry.due > MISSED_AFTER)
        self.started = True

    @property
    def next_fire(self) -> float | None:
        return min((entry.due for entry in self.entries.values()), default=None)

    def load(self, now: float) -> None:
        """The active agents with a schedule, from the store; what was handled comes along."""
        entries: dict[str, _Entry] = {}
        for agent in self.agents.list():
            definition = agent.definition
            if agent.status != "active" or not definition.schedule_text:
                continue
            try:
                schedule = definition.schedule()
            except GlmtuiError as err:  # e.g. a time zone this machine does not know
                self.service.announce(f"{agent.name}: not scheduled: {err}")
                continue
            handled = agent.handled_until if agent.handled_until is not None else now
            known = self.entries.get(agent.name)
            if known is not None and known.schedule.text == schedule.text and known.handled_until > handled:
                handled = known.handled_until
            entries[agent.name] = _Entry(agent.name, schedule, definition.catch_up, handled,
                                         schedule.next_after(handled))
        self.entries = entries

    def fire(self, entry: _Entry, now: float, *, missed: bool) -> None:
        last = entry.schedule.last_at_or_before(now)
        try:
            if not missed:
                self.service.run_agent(entry.name, "schedule", scheduled=last)
            elif entry.catch_up == "once":
                self.service.run_agent(entry.name, "catch-up", scheduled=last)
            else:
                self.service.record(entry.name, "catch-up", last, "skipped",
                                     "missed while no scheduler ran (catch_up: skip)")
        except GlmtuiError as err:  # removed meanwhile, or the store is busy: the next pass sees
            self.service.announce(f"{entry.name}: not started: {err}")
        entry.handled_until = last
        entry.due = entry.schedule.next_after(last)
        self.agents.set_handled(entry.name, last)
