"""The typed events a run emits. The TUI and the headless renderer are two sinks of one stream.

Every event becomes one JSON object with its kind in "event" and a timestamp "ts"
(PLAN-FORMAT.md, "Running").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: asdict() deep-copies every output line, millions of them.
        return {"event": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_id: str
    plan: str
    workflow: str
    environment: str | None = None
    throwaway: bool = False


@dataclass(frozen=True)
class Progress(Event):
    """Preparation the user waits for: image pulls and builds, environment creation."""

    kind: ClassVar[str] = "progress"
    message: str


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step_started"
    step: str
    attempt: int = 1


@dataclass(frozen=True)
class Output(Event):
    kind: ClassVar[str] = "output"
    step: str
    stream: str  # stdout | stderr
    lines: list[str]


@dataclass(frozen=True)
class StepFinished(Event):
    kind: ClassVar[str] = "step_finished"
    step: str
    status: str  # success | failure | skipped | cancelled
    exit_code: int | None = None
    duration: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    attempt: int = 1
    allowed_failure: bool = False  # failed with continue_on_error


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    run_id: str
    status: str  # success | failure | cancelled
    duration: float
    kept_environment: str | None = None  # a throw-away environment kept by --keep


Sink = Callable[[Event], None]
