"""How a user interface starts and follows work: the `Backend` protocol, and `LocalBackend`.

The TUI starts plan runs and chat turns, lists running and recent work and attaches to it only
through a Backend, and follows, answers and cancels it only through the `WorkHandle` it gets.
Only plain data crosses it: the requests and WorkInfo below, and events (glmtui.events), which
read and write the JSON objects of `--json` (`Event.to_json`, `glmtui.events.from_json`). So a
second implementation can talk to `glmtui serve` over its HTTP API and Server-Sent Events (the
web dashboard runs a TUI per browser tab, and the runs a tab starts belong to the serve process
and outlive the tab) without the TUI changing.

`LocalBackend` is the implementation over a Service in this process (the TUI's own): its work
ends with the process, so `close()` cancels what still runs and waits for each clean-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from glmtui.errors import NotFound
from glmtui.events import Event
from glmtui.service.work import PlanRun, Work, error_line

FINAL = frozenset({"success", "failure", "cancelled", "budget_spent"})  # a status work ends with


@dataclass(frozen=True)
class RunRequest:
    """A plan run, as the person asked for it."""

    files: list[str]  # the plan file (several: merged in order, as -f gives them)
    workflow: str | None = None  # None: the plan's default
    inputs: dict[str, str] = field(default_factory=dict)  # as --input K=V gives them
    resume: str | None = None  # the run whose succeeded steps are reused
    grant: dict[str, Any] | None = None  # the host access agreed to (Permissions.as_json()); it must
    # cover what the plan declares, or the run does not start


@dataclass(frozen=True)
class ChatRequest:
    """One message to the agent of a conversation in an environment."""

    environment: str
    text: str
    conversation_id: str | None = None  # None: a new conversation
    provider: str | None = None  # None: the conversation's (a new one: the config's default)
    model: str | None = None
    engine: str | None = None  # the engine the environment is on; None: the service's own


@dataclass(frozen=True)
class WorkInfo:
    """Running or recent work, as a list shows it."""

    id: str
    kind: str  # run | execution | chat
    status: str  # queued | running | success | failure | cancelled | budget_spent
    title: str  # the plan's name, the agent's, "chat in ENV"
    created: float  # when it was started (seconds since the epoch)
    plan_file: str | None = None  # a run's plan, to show its steps
    inputs: dict[str, Any] = field(default_factory=dict)  # a run's inputs, masked as its record has them

    @property
    def running(self) -> bool:
        return self.status not in FINAL


class WorkHandle(Protocol):
    """Running (or ended) work: follow its events, cancel it, answer its approvals."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def status(self) -> str:
        """queued, running, then how it ended (FINAL)."""

    @property
    def error(self) -> str | None:
        """What ended it when that was an error (one line for a person), else None."""

    def events(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """(seq, event) numbered above `after`, from its start (0), then live, until it ends."""

    async def cancel(self) -> None:
        """Stop it as Ctrl-C stops a headless run; its clean-up runs to the end, its events say so."""

    async def answer(self, approval_id: str, answer: str) -> None:
        """Answer an ApprovalAsked event of it: yes, no or always (BadInput if it is not open)."""


class Backend(Protocol):
    in_process: bool  # True: the work runs in this process and ends with it (close() cancels it)

    async def start_run(self, request: RunRequest) -> WorkHandle:
        """Start a plan run; PlanInvalid or BadInput when it cannot start (nothing started)."""

    async def send_chat(self, request: ChatRequest) -> WorkHandle:
        """Start a chat turn; Conflict while the conversation replies to another message."""

    async def undo_chat(self, conversation_id: str) -> dict[str, str] | None:
        """The conversation's workspace back to before its last turn that changed files:
        {"checkpoint": the id gone back to, "rescue": the id that undoes the undo}; None when
        there is nothing to undo."""

    async def list_work(self) -> list[WorkInfo]:
        """The running work (oldest first), then the recent (newest first)."""

    async def attach(self, work_id: str) -> WorkHandle:
        """The handle of running or recent work; NotFound when it is not known."""

    async def close(self) -> None:
        """Done with the backend (the in-process one cancels its running work first)."""


class LocalHandle:
    def __init__(self, work: Work) -> None:
        self.work = work

    @property
    def id(self) -> str:
        return self.work.id

    @property
    def kind(self) -> str:
        return self.work.kind

    @property
    def status(self) -> str:
        return self.work.status

    @property
    def error(self) -> str | None:
        return error_line(self.work.error) if self.work.error is not None else None

    def events(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        return self.work.follow(after)

    async def cancel(self) -> None:
        self.work.cancel()

    async def answer(self, approval_id: str, answer: str) -> None:
        self.work.answer(approval_id, answer)


class LocalBackend:
    """The Backend over a Service of this process."""

    in_process = True

    def __init__(self, service: Any) -> None:
        self.service = service  # glmtui.service.service.Service

    async def start_run(self, request: RunRequest) -> LocalHandle:
        from glmtui.plan.permissions import Permissions
        from glmtui.plan.validate import load_plan

        loaded = load_plan([Path(file) for file in request.files], workflow=request.workflow,
                           inputs=dict(request.inputs), check_secrets=True,
                           docker_host=self.service.config.get("docker_host"))
        grant = Permissions.from_json(request.grant) if request.grant is not None else None
        return LocalHandle(self.service.start_run(loaded, resume=request.resume, asks=True, grant=grant))

    async def send_chat(self, request: ChatRequest) -> LocalHandle:
        return LocalHandle(self.service.send_chat(
            request.environment, request.text, conversation_id=request.conversation_id,
            provider=request.provider, model=request.model, engine=request.engine,
        ))

    async def undo_chat(self, conversation_id: str) -> dict[str, str] | None:
        done = await self.service.chats.undo(conversation_id)
        return None if done is None else {"checkpoint": done.checkpoint.id, "rescue": done.rescue.id}

    async def list_work(self) -> list[WorkInfo]:
        return [describe(work) for work in self.service.recent()]

    async def attach(self, work_id: str) -> LocalHandle:
        work = self.service.get(work_id)
        if work is None:
            raise NotFound(f"no work {work_id!r} in this glmtui", hint="its record may say more: glmtui runs")
        return LocalHandle(work)

    async def close(self) -> None:
        await self.service.shutdown()


def describe(work: Work) -> WorkInfo:
    plan_file, inputs = None, {}
    if isinstance(work, PlanRun) and work.loaded is not None:
        plan_file = str(work.loaded.plan.file)
        if work.runner is not None:
            inputs = work.runner.masker.mask_value(work.loaded.inputs)
    return WorkInfo(work.id, work.kind, work.status, work.title, work.created, plan_file, inputs)
