"""Messages the TUI's widgets post upwards (dataclasses; the app handles them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class EnvironmentAction(Message):
    """The user asked for something on an environment: start_stop, shell, remove, logs, details, new,
    chat (the chat pane works in it from now on)."""

    action: str
    name: str | None = None
    engine: str | None = None  # the engine it is on (None: the app's own)


@dataclass
class StepSelected(Message):
    """Show this step's output in the log pane: what is buffered now, then its live lines."""

    title: str
    lines: list[tuple[str, str, float]]  # (stream, line, when it was written)
    log_file: Path | None = None


@dataclass
class StepOutput(Message):
    """Live lines of the step the log pane shows, written at `timestamp` (None: now)."""

    stream: str
    lines: list[str] = field(default_factory=list)
    timestamp: float | None = None


@dataclass
class StepDeselected(Message):
    """The plan pane shows another plan now: the step the log pane showed is no longer on screen,
    so the log pane shows nothing."""


@dataclass
class RunStateChanged(Message):
    """The plan pane follows a run (it started it, or attached to it with `p`), or no longer
    does: the run ended, or the pane let it go on without it."""

    running: bool
    run_id: str | None = None
    status: str | None = None  # when it is no longer followed: success, failure, cancelled, or running


@dataclass
class ChatEvent(Message):
    """An event of the chat's agent (glmtui.events Token, ToolCall, ToolResult, Usage, ModelRetry),
    posted by the chat pane's sink: the agent reports to the sink, the pane shows it."""

    event: Any


@dataclass
class PromptAnswered(Message):
    """The user answered an approval prompt of the chat: yes, no or always."""

    prompt: Any
    answer: str


@dataclass
class TranscriptSelected(Message):
    """Show an agent execution's transcript in the log pane: its lines so far (while it runs, the
    new ones follow as StepOutput)."""

    title: str
    lines: list[str]
    log_file: Path | None = None


@dataclass
class AgentsChanged(Message):
    """The agents pane saved, paused, resumed or removed an agent (the scheduler reads them again)."""


@dataclass
class SaveAsAgent(Message):
    """ctrl+a in the chat: the new-agent form, prefilled from the conversation."""

    prompt: str
    environment: str | None = None
    provider: str | None = None
    model: str | None = None
