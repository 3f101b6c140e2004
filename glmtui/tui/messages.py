"""Messages the TUI's widgets post upwards (dataclasses; the app handles them)."""

from __future__ import annotations

import asyncio
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


@dataclass
class StepSelected(Message):
    """Show this step's output in the log pane: what is buffered now, then its live lines."""

    title: str
    lines: list[tuple[str, str]]  # (stream, line)
    log_file: Path | None = None


@dataclass
class StepOutput(Message):
    """Live lines of the step the log pane shows."""

    stream: str
    lines: list[str] = field(default_factory=list)


@dataclass
class RunStateChanged(Message):
    """A plan run started or ended in the plan pane."""

    running: bool
    run_id: str | None = None
    status: str | None = None  # when it ended: success, failure, cancelled


@dataclass
class ChatEvent(Message):
    """An event of the chat's agent (glmtui.events Token, ToolCall, ToolResult, Usage, ModelRetry),
    posted by the chat pane's sink: the agent reports to the sink, the pane shows it."""

    event: Any


@dataclass
class ApprovalAsked(Message):
    """The agent waits for the user's answer to `request` (an ApprovalRequest) on `answer`."""

    request: Any
    answer: asyncio.Future[str]


@dataclass
class ApprovalAnswered(Message):
    """The user answered an approval prompt: yes, no or always."""

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
