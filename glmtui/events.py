"""The typed events of work: a plan run, an agent execution, a chat turn. The TUI and the
headless renderer are two sinks of one stream.

Every event becomes one JSON object with its kind in "event" and a timestamp "ts"
(docs/plan-format.md, "Running"), and `from_json` reads that object back as the same event, so
events cross a process boundary (`glmtui serve`'s Server-Sent Events) as plain JSON. Every
kind is registered in KINDS when its class is made; all of them are defined here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

KINDS: dict[str, type[Event]] = {}  # "run_started" -> RunStarted, ...


@dataclass(frozen=True)
class Event:
    """What a run reports, in the order it happens; `kind` names it in JSON."""

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            assert kind not in KINDS, f"two events of kind {kind!r}"
            KINDS[kind] = cls

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: asdict() deep-copies every output line, millions of them.
        return {"event": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Event:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def from_json(data: dict[str, Any]) -> Event:
    """The event of a `to_json()` object (a line of `--json`, an SSE message's data)."""
    from glmtui.errors import BadInput

    kind = KINDS.get(data.get("event"))  # type: ignore[arg-type]
    if kind is None:
        raise BadInput(f"unknown event {data.get('event')!r}")
    try:
        return kind._from_json(data)
    except (TypeError, KeyError) as err:
        raise BadInput(f"event {data['event']!r} is not whole: {err}") from None


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

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Output:
        return cls(data["step"], data["stream"], "\n".join(data["lines"]), ts=data["ts"])

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


# --- approvals: an agent asks a person (or whoever follows the work) before a tool call --------


@dataclass(frozen=True)
class ApprovalAsked(Event):
    """An agent asks before a tool call; the work's `answer(approval_id, ...)` answers. Its
    arguments and subject are masked as the tool call's are."""

    kind: ClassVar[str] = "approval_asked"
    approval_id: str
    step: str
    tool: str
    subject: str  # what the rules look at: the command, or the path
    pattern: str  # what "always" would allow from now on
    arguments: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.tool}: {self.subject}" if self.subject else self.tool


@dataclass(frozen=True)
class ApprovalAnswered(Event):
    kind: ClassVar[str] = "approval_answered"
    approval_id: str
    answer: str  # yes | no | always


# --- a chat turn: one message to the agent of a conversation ---------------------------------


@dataclass(frozen=True)
class TurnStarted(Event):
    """The message is the conversation's from here on (an error before it: it was not sent)."""

    kind: ClassVar[str] = "turn_started"
    conversation_id: str
    environment: str
    provider: str
    model: str
    input_tokens: int  # of the conversation so far
    output_tokens: int


@dataclass(frozen=True)
class TurnFinished(Event):
    """The agent answered (`finished`), or stopped first: max_turns or its budget (`reason`)."""

    kind: ClassVar[str] = "turn_finished"
    finished: bool
    reason: str | None = None


# --- an agent execution ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionFinished(Event):
    """The last event of an execution: what its record says."""

    kind: ClassVar[str] = "execution_finished"
    execution_id: str
    agent: str
    trigger: str
    status: str  # success | failure | cancelled | budget_spent
    reason: str | None
    result: str | None
    input_tokens: int
    output_tokens: int
    turns: int


Sink = Callable[[Event], None]
