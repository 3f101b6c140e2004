"""Saved agents and their executions, in the same SQLite file as the runs.

An execution links to the run of its one-step plan (the same id), whose step log is its
transcript. Rows are committed as they change, so another process (`glmtui agents ...` while
`glmtui serve` runs) sees them at once; a queued or running execution whose process is gone
reads as `interrupted`, like a run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from glmtui.errors import NotFound, did_you_mean
from glmtui.plan.runner import new_run_id
from glmtui.service.definition import AgentDefinition
from glmtui.store import Store, _alive

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    source TEXT NOT NULL,
    definition TEXT NOT NULL,
    digest TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    handled_until REAL
);
CREATE TABLE IF NOT EXISTS agent_executions (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    scheduled REAL,
    queued REAL NOT NULL,
    started REAL,
    finished REAL,
    result TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    turn_usage TEXT NOT NULL DEFAULT '[]',
    tool_calls TEXT NOT NULL DEFAULT '[]',
    run_id TEXT,
    pid INTEGER,
    host TEXT
);
CREATE INDEX IF NOT EXISTS agent_executions_agent ON agent_executions(agent, queued);
"""
ACTIVE = ("queued", "running")
FINAL = ("success", "failure", "cancelled", "skipped", "budget_spent", "interrupted")
TRIGGERS = ("schedule", "manual", "catch-up", "hook")
_EXECUTION_COLUMNS = ("id, agent, trigger, status, reason, scheduled, queued, started, finished, result, input_tokens,"
                      " output_tokens, turns, turn_usage, tool_calls, run_id, pid, host")


@dataclass
class AgentRecord:
    definition: AgentDefinition
    status: str  # active | paused
    created: float
    updated: float
    handled_until: float | None  # fire times up to here were handled by a scheduler

    @property
    def name(self) -> str:
        return self.definition.name

    def next_runs(self, count: int = 1, now: float | None = None) -> list[float]:
        """The next fire times, as the scheduler will see them (none while paused, none without a
        schedule)."""
        schedule = self.definition.schedule()
        if schedule is None or self.status != "active":
            return []
        after = max(time.time() if now is None else now, self.handled_until or 0.0)
        return schedule.upcoming(after, count)

    def applied(self, outcome: str) -> str:
        """What `agents apply` says of it: "nightly: created (every 30 minutes, next 2026-12-07 08:30:00)"."""
        nexts = self.next_runs()
        when = f", next {datetime.fromtimestamp(nexts[0]):%Y-%m-%d %H:%M:%S}" if nexts else ""
        return f"{self.name}: {outcome} ({self.schedule_words()}{when})"

    def schedule_words(self) -> str:
        """The schedule in words ("every 30 minutes", "At 08:00 on Monday (Europe/Berlin)"), or
        "by hand"; a schedule this machine cannot read (a time zone it lacks) with the reason."""
        if not self.definition.schedule_text:
            return "by hand"
        try:
            return self.definition.schedule().describe()
        except Exception as err:  # noqa: BLE001 - a zone this machine lacks: say so in the list
            return f"{self.definition.schedule_text} ({err})"


@dataclass
class ExecutionRecord:
    id: str
    agent: str
    trigger: str  # schedule | manual | catch-up | hook
    status: str  # queued | running | success | failure | cancelled | skipped | budget_spent | interrupted
    reason: str | None
    scheduled: float | None  # the fire time it was started for
    queued: float
    started: float | None = None
    finished: float | None = None
    result: str | None = None  # the agent's final message
    input_tokens: int = 0
    output_tokens: int = 0
    turns: int = 0
    turn_usage: list[list[int]] = field(default_factory=list)  # [input, output] of each model turn
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # tool, call, status, exit_code, duration
    run_id: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.finished is None else self.finished - self.started

    def as_json(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in self.__dataclass_fields__}
        data["duration"] = None if self.duration is None else round(self.duration, 3)
        return data


class AgentStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._db = store.connection
        self._db.executescript(_SCHEMA)
        self._seen_version: int | None = None

    def changed(self) -> bool:
        """Whether another connection committed since the last call (a cheap poll for the scheduler)."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        changed, self._seen_version = version != self._seen_version, version
        return changed

    def fingerprint(self) -> tuple:
        """What the scheduler's view of the agents depends on: names, definitions, statuses."""
        return tuple(self._db.execute("SELECT name, digest, status FROM agents ORDER BY name"))

    # -- agents -----------------------------------------------------------------------------

    def apply(self, definition: AgentDefinition) -> str:
        """Save an agent: "created", "updated" (its executions kept) or "unchanged"."""
        now = time.time()
        digest = definition.digest()
        row = self._db.execute("SELECT digest, definition FROM agents WHERE name = ?", (definition.name,)).fetchone()
        if row is not None and row[0] == digest:
            return "unchanged"
        values = (str(definition.file), definition.source, json.dumps(definition.data, ensure_ascii=False), digest, now)
        if row is None:
            self._db.execute(
                "INSERT INTO agents (file, source, definition, digest, created, updated, handled_until, name)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*values, now, now, definition.name))
            return "created"
        before = json.loads(row[1])
        rescheduled = any(before.get(key) != definition.data.get(key) for key in ("schedule", "timezone"))
        self._db.execute(
            "UPDATE agents SET file = ?, source = ?, definition = ?, digest = ?, updated = ?"
            + (", handled_until = ?" if rescheduled else "") + " WHERE name = ?",
            (*values, *((now,) if rescheduled else ()), definition.name))
        return "updated"

    def get(self, name: str) -> AgentRecord:
        row = self._db.execute(
            "SELECT file, source, definition, status, created, updated, handled_until FROM agents WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no agent {name!r}{did_you_mean(name, self.names())}", hint="`glmtui agents list` lists them")
        return _agent(row)

    def names(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM agents ORDER BY name")]

    def list(self) -> list[AgentRecord]:
        rows = self._db.execute(
            "SELECT file, source, definition, status, created, updated, handled_until FROM agents ORDER BY name")
        return [_agent(row) for row in rows]

    def set_status(self, name: str, status: str) -> bool:
        """Pause or resume; False when it already was. Resuming starts the schedule afresh: fire
        times missed while paused are not caught up."""
        current = self.get(name).status
        if current == status:
            return False
        self._db.execute("UPDATE agents SET status = ?, handled_until = ? WHERE name = ?", (status, time.time(), name))
        return True

    def set_handled(self, name: str, until: float) -> None:
        self._db.execute("UPDATE agents SET handled_until = ? WHERE name = ?", (until, name))

    def remove(self, name: str) -> int:
        """Forget the agent and its execution records (the runs stay); returns how many executions."""
        self.get(name)
        count = self._db.execute("DELETE FROM agent_executions WHERE agent = ?", (name,)).rowcount
        self._db.execute("DELETE FROM agents WHERE name = ?", (name,))
        return count

    # -- executions -------------------------------------------------------------------------

    def queue(self, agent: str, trigger: str, scheduled: float | None = None) -> tuple[str | None, str | None]:
        """(the id of a new execution of `agent`, queued by this process, None), or, when one of
        its executions is still queued or running, (None, that one's id) and nothing added. Checked
        and added in one transaction, so two processes cannot both start the agent."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            blocking = self._active(agent)
            execution_id = None if blocking else new_run_id()
            if execution_id:
                self._insert(execution_id, agent, trigger, "queued", scheduled)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return execution_id, blocking

    def record(self, agent: str, trigger: str, scheduled: float | None, status: str, reason: str) -> str:
        """An execution that ended before it started (skipped, or refused), with why."""
        execution_id = new_run_id()
        self._insert(execution_id, agent, trigger, status, scheduled, reason=reason, finished=True)
        return execution_id

    def _insert(self, execution_id: str, agent: str, trigger: str, status: str, scheduled: float | None, *,
                reason: str | None = None, finished: bool = False) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO agent_executions (id, agent, trigger, status, reason, scheduled, queued, finished, pid, host)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (execution_id, agent, trigger, status, reason, scheduled, now, now if finished else None, os.getpid(),
             socket.gethostname()),
        )

    def _active(self, agent: str) -> str | None:
        rows = self._db.execute(
            "SELECT id, pid, host FROM agent_executions WHERE agent = ? AND status IN ('queued', 'running')", (agent,)
        ).fetchall()
        for execution_id, pid, host in rows:
            if _alive(pid, host):
                return execution_id
            self._interrupted(execution_id)
        return None

    def active(self, agent: str) -> str | None:
        """The id of the agent's execution still queued or running, if any."""
        return self._active(agent)

    def hand_over(self, execution_id: str, pid: int) -> None:
        """The queued execution belongs to process `pid` now (a background `agents run`)."""
        self._db.execute("UPDATE agent_executions SET pid = ? WHERE id = ?", (pid, execution_id))

    def claim(self, execution_id: str) -> bool:
        """This process takes a queued execution over; False when it is not queued any more."""
        return self._db.execute(
            "UPDATE agent_executions SET pid = ?, host = ? WHERE id = ? AND status = 'queued'",
            (os.getpid(), socket.gethostname(), execution_id),
        ).rowcount == 1

    def start(self, execution_id: str) -> None:
        self._db.execute("UPDATE agent_executions SET status = 'running', started = ?, run_id = ? WHERE id = ?",
                         (time.time(), execution_id, execution_id))

    def progress(self, execution_id: str, input_tokens: int, output_tokens: int, turn_usage: list[list[int]]) -> None:
        self._db.execute(
            "UPDATE agent_executions SET input_tokens = ?, output_tokens = ?, turns = ?, turn_usage = ? WHERE id = ?",
            (input_tokens, output_tokens, len(turn_usage), json.dumps(turn_usage), execution_id))

    def finish(self, record: ExecutionRecord) -> None:
        record.finished = time.time()
        self._db.execute(
            "UPDATE agent_executions SET status = ?, reason = ?, finished = ?, result = ?, input_tokens = ?,"
            " output_tokens = ?, turns = ?, turn_usage = ?, tool_calls = ?, run_id = ? WHERE id = ?",
            (record.status, record.reason, record.finished, record.result, record.input_tokens, record.output_tokens,
             record.turns, json.dumps(record.turn_usage), json.dumps(record.tool_calls, ensure_ascii=False),
             record.run_id, record.id),
        )

    def _interrupted(self, execution_id: str) -> None:
        self._db.execute(
            "UPDATE agent_executions SET status = 'interrupted', reason = COALESCE(reason, ?) WHERE id = ?",
            ("the process running it ended before it did", execution_id))

    def execution(self, execution_id: str) -> ExecutionRecord:
        rows = self._db.execute(
            f"SELECT {_EXECUTION_COLUMNS} FROM agent_executions WHERE id = ? OR substr(id, 1, length(?)) = ?",
            (execution_id, execution_id, execution_id),
        ).fetchall()
        if len(rows) != 1:
            raise NotFound(f"no execution {execution_id!r}" if not rows else f"{execution_id!r} names {len(rows)} executions",
                           hint="`glmtui agents executions` lists them")
        return self._record(rows[0])

    def executions(self, agent: str | None = None, limit: int = 50) -> list[ExecutionRecord]:
        where, params = ("WHERE agent = ?", (agent,)) if agent else ("", ())
        rows = self._db.execute(
            f"SELECT {_EXECUTION_COLUMNS} FROM agent_executions {where} ORDER BY queued DESC, rowid DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [self._record(row) for row in rows]

    def last(self, agent: str) -> ExecutionRecord | None:
        found = self.executions(agent, limit=1)
        return found[0] if found else None

    def totals(self, agent: str, now: float | None = None) -> dict[str, dict[str, int]]:
        """Executions and tokens of the agent today (since local midnight), in 7 days, in all."""
        now = time.time() if now is None else now
        midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        totals = {}
        for span, since in (("today", midnight), ("7 days", now - 7 * 86400), ("all time", 0.0)):
            count, tokens_in, tokens_out = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0)"
                " FROM agent_executions WHERE agent = ? AND status != 'skipped' AND queued >= ?", (agent, since),
            ).fetchone()
            totals[span] = {"executions": count, "input_tokens": tokens_in, "output_tokens": tokens_out}
        return totals

    def transcript(self, record: ExecutionRecord) -> Path | None:
        """The step log of the execution's run: its transcript."""
        from glmtui.service.definition import STEP_ID

        if record.run_id is None:
            return None
        path = self.store.log_file(record.run_id, STEP_ID)
        return path if path.exists() else None

    def _record(self, row: tuple) -> ExecutionRecord:
        record = ExecutionRecord(
            id=row[0], agent=row[1], trigger=row[2], status=row[3], reason=row[4], scheduled=row[5], queued=row[6],
            started=row[7], finished=row[8], result=row[9], input_tokens=row[10], output_tokens=row[11], turns=row[12],
            turn_usage=json.loads(row[13]), tool_calls=json.loads(row[14]), run_id=row[15],
        )
        if record.status in ACTIVE and not _alive(row[16], row[17]):
            self._interrupted(record.id)
            record.status = "interrupted"
            record.reason = record.reason or "the process running it ended before it did"
        return record


def agent_json(agent: AgentRecord, last: ExecutionRecord | None, totals: dict, upcoming: float | None) -> dict[str, Any]:
    """An agent as `glmtui agents list --json` and the HTTP API show it."""
    definition = agent.definition
    return {
        "name": agent.name,
        "status": agent.status,
        "description": definition.description,
        "file": str(definition.file),
        "schedule": definition.schedule_text,
        "schedule_words": agent.schedule_words(),
        "timezone": definition.timezone,
        "catch_up": definition.catch_up,
        "next_run": upcoming,
        "last_execution": last.as_json() if last else None,
        "totals": totals,
        "definition": definition.data,
    }


def _agent(row: tuple) -> AgentRecord:
    file, source, data, status, created, updated, handled = row
    return AgentRecord(AgentDefinition(json.loads(data), Path(file), source), status, created, updated, handled)
