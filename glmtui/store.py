"""Run records in SQLite (user data dir) and each step's full log in a file beside it; the
commands `glmtui env exec` ran, each with its log.

Every change is committed at once, so a record survives the glmtui process being
killed: a run still marked running whose process is gone shows as `interrupted`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmtui import paths
from glmtui.errors import NotFound
from glmtui.steplog import times_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    plan_file TEXT NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    inputs TEXT NOT NULL DEFAULT '{}',
    environment TEXT,
    throwaway INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    host TEXT,
    engine TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    started REAL,
    finished REAL,
    exit_code INTEGER,
    reason TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    stdout_tail BLOB,
    stderr_tail BLOB,
    usage TEXT,
    turns INTEGER,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
CREATE INDEX IF NOT EXISTS runs_environment ON runs(environment, started);
CREATE TABLE IF NOT EXISTS execs (
    id TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    command TEXT NOT NULL,
    shell INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    finished REAL,
    exit_code INTEGER,
    reason TEXT,
    engine TEXT
);
CREATE INDEX IF NOT EXISTS execs_environment ON execs(environment, started);
"""
# What came since the first release, for databases made before it: (version, statement). The
# schema above runs too whenever a database is behind, and makes the new tables and indexes.
_MIGRATIONS = [
    (1, "ALTER TABLE steps ADD COLUMN turns INTEGER"),
    (2, "CREATE INDEX IF NOT EXISTS runs_environment ON runs(environment, started)"),
    (3, "ALTER TABLE runs ADD COLUMN engine TEXT"),  # the engine a run's environment is on
    (4, "ALTER TABLE execs ADD COLUMN engine TEXT"),
]


@dataclass
class StepRecord:
    """A step of a recorded run."""

    step: str
    status: str
    attempt: int = 1
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    stdout_tail: bytes = b""
    stderr_tail: bytes = b""
    usage: dict[str, int] | None = None
    turns: int | None = None  # agent steps

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.finished is None else self.finished - self.started


@dataclass
class ExecRecord:
    """A command `glmtui env exec` ran (or a shell it opened), masked."""

    id: str
    environment: str
    command: list[str]  # empty for a shell
    shell: bool
    started: float
    finished: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    engine: str | None = None  # the name of the engine the environment was on


@dataclass
class RunRecord:
    """A recorded run, with its steps when asked for."""

    id: str
    plan: str
    plan_file: str
    workflow: str
    status: str
    started: float
    finished: float | None
    inputs: dict[str, Any]
    environment: str | None
    throwaway: bool
    steps: list[StepRecord] = field(default_factory=list)
    engine: str | None = None  # the name of the engine its environment was on (None: before engines)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "plan": self.plan,
            "plan_file": self.plan_file,
            "workflow": self.workflow,
            "status": self.status,
            "started": self.started,
            "finished": self.finished,
            "duration": None if self.finished is None else round(self.finished - self.started, 3),
            "inputs": self.inputs,
            "environment": self.environment,
            "engine": self.engine,
            "steps": [
                {
                    "step": s.step,
                    "status": s.status,
                    "attempt": s.attempt,
                    "exit_code": s.exit_code,
                    "duration": None if s.duration is None else round(s.duration, 3),
                    "reason": s.reason,
                    "outputs": s.outputs,
                    "usage": s.usage,
                    **({"turns": s.turns} if s.turns is not None else {}),
                }
                for s in self.steps
            ],
        }


class Store:
    def __init__(self, database: Path | None = None, logs: Path | None = None, exec_logs: Path | None = None) -> None:
        self.database = database or paths.database_file()
        self.logs = logs or paths.runs_dir()
        self.exec_logs = exec_logs or paths.execs_dir()
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.database, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Survives the process being killed; only a power cut could lose the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == _MIGRATIONS[-1][0]:
            return
        new = not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'steps'").fetchone()
        self._db.executescript(_SCHEMA)
        for number, statement in _MIGRATIONS:
            if version < number and not new:
                try:
                    self._db.execute(statement)
                except sqlite3.OperationalError as err:
                    if "duplicate column" not in str(err):  # another glmtui migrated it just now
                        raise
        self._db.execute(f"PRAGMA user_version = {_MIGRATIONS[-1][0]}")

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The database, for the other records kept in it (conversations)."""
        return self._db

    # -- writing ----------------------------------------------------------------------------

    def start_run(
        self, run_id: str, *, plan: str, plan_file: str, workflow: str, inputs: dict[str, Any],
        environment: str | None, throwaway: bool, engine: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO runs (id, plan, plan_file, workflow, status, started, inputs, environment, throwaway, pid,"
            " host, engine) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (run_id, plan, plan_file, workflow, time.time(), json.dumps(inputs, default=str), environment,
             int(throwaway), os.getpid(), socket.gethostname(), engine),
        )
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)

    def finish_run(self, run_id: str, status: str) -> None:
        self._db.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, time.time(), run_id))

    def save_step(self, run_id: str, record: StepRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO steps (run_id, step, status, attempt, started, finished, exit_code, reason,"
            " outputs, stdout_tail, stderr_tail, usage, turns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, record.step, record.status, record.attempt, record.started, record.finished, record.exit_code,
             record.reason, json.dumps(record.outputs, default=str), record.stdout_tail, record.stderr_tail,
             json.dumps(record.usage) if record.usage else None, record.turns),
        )

    def start_exec(self, environment: str, command: list[str], *, shell: bool = False,
                   engine: str | None = None) -> ExecRecord:
        record = ExecRecord(uuid.uuid4().hex[:12], environment, command, shell, time.time(), engine=engine)
        self._db.execute(
            "INSERT INTO execs (id, environment, command, shell, started, engine) VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, environment, json.dumps(command), int(shell), record.started, engine),
        )
        self.exec_logs.mkdir(parents=True, exist_ok=True)
        return record

    def finish_exec(self, exec_id: str, exit_code: int | None, reason: str | None = None) -> None:
        self._db.execute(
            "UPDATE execs SET finished = ?, exit_code = ?, reason = ? WHERE id = ?",
            (time.time(), exit_code, reason, exec_id),
        )

    def forget_exec(self, exec_id: str) -> None:
        self._db.execute("DELETE FROM execs WHERE id = ?", (exec_id,))
        for path in (self.exec_log(exec_id), times_file(self.exec_log(exec_id))):
            path.unlink(missing_ok=True)

    def exec_log(self, exec_id: str) -> Path:
        return self.exec_logs / f"{exec_id}.log"

    def run_dir(self, run_id: str) -> Path:
        return self.logs / run_id

    def log_file(self, run_id: str, step: str) -> Path:
        return self.run_dir(run_id) / f"{step}.log"

    # -- reading ----------------------------------------------------------------------------

    def runs(self, limit: int = 50, *, with_steps: bool = False) -> list[RunRecord]:
        """The newest runs, newest first; their steps too when asked (`glmtui runs --json`)."""
        rows = self._db.execute(
            "SELECT id FROM runs ORDER BY started DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self.run(row[0], with_steps=with_steps) for row in rows]

    def run_ids_in(self, environment: str, *, ended_since: float = 0) -> list[str]:
        """The runs recorded with this environment (those that ended before `ended_since` left
        out), oldest first."""
        rows = self._db.execute(
            "SELECT id FROM runs WHERE environment = ? AND (finished IS NULL OR finished >= ?) ORDER BY started",
            (environment, ended_since),
        ).fetchall()
        return [row[0] for row in rows]

    def execs(self, environment: str, *, ended_since: float = 0) -> list[ExecRecord]:
        """The commands `env exec` ran in this environment (those that ended before `ended_since`
        left out), oldest first."""
        rows = self._db.execute(
            "SELECT id, environment, command, shell, started, finished, exit_code, reason, engine FROM execs"
            " WHERE environment = ? AND (finished IS NULL OR finished >= ?) ORDER BY started",
            (environment, ended_since),
        ).fetchall()
        return [ExecRecord(r[0], r[1], json.loads(r[2]), bool(r[3]), *r[4:]) for r in rows]

    def run(self, run_id: str, *, with_steps: bool = True) -> RunRecord:
        row = self._db.execute(
            "SELECT id, plan, plan_file, workflow, status, started, finished, inputs, environment, throwaway, pid, host,"
            " engine FROM runs WHERE id = ? OR substr(id, 1, length(?)) = ? ORDER BY started DESC",  # a prefix, literally
            (run_id, run_id, run_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"no run {run_id!r}", hint="`glmtui runs` lists them")
        record = RunRecord(
            id=row[0], plan=row[1], plan_file=row[2], workflow=row[3], status=row[4], started=row[5],
            finished=row[6], inputs=json.loads(row[7]), environment=row[8], throwaway=bool(row[9]), engine=row[12],
        )
        if record.status == "running" and not _alive(row[10], row[11]):
            record.status = "interrupted"
            self._db.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (record.id,))
            self._db.execute(
                "UPDATE steps SET status = 'interrupted' WHERE run_id = ? AND status = 'running'", (record.id,)
            )
        if with_steps:
            record.steps = self.steps(record.id)
        return record

    def steps(self, run_id: str) -> list[StepRecord]:
        rows = self._db.execute(
            "SELECT step, status, attempt, started, finished, exit_code, reason, outputs, stdout_tail, stderr_tail,"
            " usage, turns FROM steps WHERE run_id = ? ORDER BY COALESCE(started, 1e18), rowid",
            (run_id,),
        ).fetchall()
        return [
            StepRecord(
                step=r[0], status=r[1], attempt=r[2], started=r[3], finished=r[4], exit_code=r[5], reason=r[6],
                outputs=json.loads(r[7]), stdout_tail=r[8] or b"", stderr_tail=r[9] or b"",
                usage=json.loads(r[10]) if r[10] else None, turns=r[11],
            )
            for r in rows
        ]

    def prune(self, older_than_days: float, *, dry_run: bool = False) -> list[str]:
        """Forget finished runs older than the limit, with their logs (dry_run: only name them)."""
        cutoff = time.time() - older_than_days * 86400
        rows = self._db.execute(
            "SELECT id FROM runs WHERE started < ? AND status != 'running'", (cutoff,)
        ).fetchall()
        for (run_id,) in [] if dry_run else rows:
            self._db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        return [row[0] for row in rows]

    def prune_execs(self, older_than_days: float, *, dry_run: bool = False) -> list[str]:
        """Forget `env exec` commands that ended before the limit, with their logs."""
        cutoff = time.time() - older_than_days * 86400
        rows = self._db.execute("SELECT id FROM execs WHERE COALESCE(finished, started) < ?", (cutoff,)).fetchall()
        for (exec_id,) in [] if dry_run else rows:
            self.forget_exec(exec_id)
        return [row[0] for row in rows]


def _alive(pid: int | None, host: str | None) -> bool:
    """Is the process that wrote this running record still there? (Another machine's: trust it.)"""
    if host != socket.gethostname():
        return True
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"glmtui" in cmdline.read_bytes() or pid == os.getpid()
    except OSError:
        return True  # no /proc: the pid alone must do
