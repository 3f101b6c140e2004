"""The typed events a run emits. The TUI and the headless renderer are two sinks of one stream.

Every event becomes one JSON object with its kind in "event" and a timestamp "ts"
(docs/plan-format.md, "Running").
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """What a run reports, in the order it happens; `kind` names it in JSON."""

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: asdict() deep-copies every output line, millions of them.
        return {"event": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True)
class RunStarted(Event):
    """A run began: its id, plan, workflow and environment."""

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
    """A step (or one attempt of it) began."""

    kind: ClassVar[str] = "step_started"
    step: str
    attempt: int = 1


@dataclass(frozen=True)
class Output(Event):
    """Whole lines of a step's output, kept as one text (no final newline): splitting
    millions of lines costs more than the plain renderer, which never needs them apart."""

    kind: ClassVar[str] = "output"
    step: str
    stream: str  # stdout | stderr
    text: str

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "ts": self.ts, "step": self.step, "stream": self.stream, "lines": self.lines}

    def json_line(self) -> str:
        """`json.dumps(self.to_json())`, without splitting the text: a text with no backslash
        escapes each newline as the two characters \\n and nothing else as them, so the
        escaped text becomes the array of its lines with one replace (a fifth of the time)."""
        if "\\" in self.text:
            return json.dumps(self.to_json(), ensure_ascii=False)
        head = json.dumps({"event": self.kind, "ts": self.ts, "step": self.step, "stream": self.stream}, ensure_ascii=False)
        lines = json.dumps(self.text, ensure_ascii=False).replace("\\n", '", "')
        return f'{head[:-1]}, "lines": [{lines}]}}'


@dataclass(frozen=True)
class StepFinished(Event):
    """A step ended: its status, exit code, outputs and why it failed or was skipped."""

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
    """A run ended, with its status."""

    kind: ClassVar[str] = "run_finished"
    run_id: str
    status: str  # success | failure | cancelled
    duration: float
    kept_environment: str | None = None  # a throw-away environment kept by --keep


# --- what llm and agent steps (and the chat) add; `step` is the step id, or "chat" ---------


@dataclass(frozen=True)
class Token(Event):
    """A piece of the model's reply as it streams: `text`, or `reasoning` (its thinking)."""

    kind: ClassVar[str] = "token"
    step: str
    text: str
    channel: str = "text"  # text | reasoning


@dataclass(frozen=True)
class ToolCall(Event):
    """An agent asked for a tool call."""

    kind: ClassVar[str] = "tool_call"
    step: str
    call_id: str
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolResult(Event):
    """A tool call ended: what the model was given, its status and exit code."""

    kind: ClassVar[str] = "tool_result"
    step: str
    call_id: str
    tool: str
    status: str  # ok | error | denied | cancelled
    output: str  # what the model was given (masked)
    exit_code: int | None = None
    duration: float = 0.0


@dataclass(frozen=True)
class ModelRetry(Event):
    """A model call failed in a way that passes (a rate limit, a server error, a dropped
    connection) and is tried again after `delay` seconds: `message` says all that in one line."""

    kind: ClassVar[str] = "model_retry"
    step: str
    message: str
    delay: float
    attempt: int  # the attempt about to be made: 2 for the first retry
    attempts: int  # at most


@dataclass(frozen=True)
class Usage(Event):
    """Tokens of one model turn, and of the whole step or conversation so far."""

    kind: ClassVar[str] = "usage"
    step: str
    input_tokens: int
    output_tokens: int
    total_input_tokens: int
    total_output_tokens: int


Sink = Callable[[Event], None]
