"""Running work, owned by the service rather than by whoever started it.

A `Work` is one piece of running work (a plan run, an agent execution): it owns its asyncio
task, keeps its events (a bounded history, each event with a sequence number, so a subscriber
that comes late or comes back, e.g. an SSE client with Last-Event-ID, continues where it was)
and hands each new event to any number of subscribers; it is cancelled through `cancel()`;
its approvals are requests that whoever follows it answers (`answer()`): a person in the TUI,
a later API call, or `auto_approve` (--yes) which answers yes itself.

`PlanRun` is exactly the plan runner's run (glmtui.plan.runner.Runner) with the work's
`emit` as its sink; there is no second implementation of runs.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from glmtui.errors import BadInput
from glmtui.events import Event

HISTORY = 20_000  # events kept for subscribers that come late (older ones are on disk: step logs)
ANSWERS = ("yes", "no", "always")


@dataclass(frozen=True)
class ApprovalAsked(Event):
    """An agent asks before a tool call; `Work.answer(approval_id, ...)` answers."""

    kind: ClassVar[str] = "approval_asked"
    approval_id: str
    step: str
    tool: str
    subject: str
    pattern: str  # what "always" would allow from now on


@dataclass(frozen=True)
class ApprovalAnswered(Event):
    kind: ClassVar[str] = "approval_answered"
    approval_id: str
    answer: str  # yes | no | always


@dataclass
class Approval:
    id: str
    request: Any  # glmtui.agent.approval.ApprovalRequest
    future: asyncio.Future[str]


Subscriber = Callable[[int, Event], None]


class Work:
    """One piece of running work: its task, its events, its cancel, its approvals."""

    kind: ClassVar[str] = "work"

    def __init__(self, work_id: str) -> None:
        self.id = work_id
        self.status = "queued"  # queued | running | then the final status the kind gives
        self.error: BaseException | None = None  # what ended it, when not its own result
        self.task: asyncio.Task[Any] | None = None
        self.approvals: dict[str, Approval] = {}
        self._history: list[tuple[int, Event]] = []  # trimmed to the last HISTORY now and then
        self._seq = 0
        self._subscribers: list[Subscriber] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._done: list[Callable[[Work], None]] = []

    # -- events -----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """The sink of the work's events: numbered, kept, handed to every subscriber."""
        self._seq += 1
        self._history.append((self._seq, event))
        if len(self._history) > 2 * HISTORY:
            del self._history[:-HISTORY]
        for subscriber in self._subscribers:
            subscriber(self._seq, event)
        self._wake()

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def finished(self) -> bool:
        return self.task is not None and self.task.done()

    def history(self, after: int = 0) -> list[tuple[int, Event]]:
        """The kept events numbered above `after` (all kept ones when it is older than the history)."""
        first = self._seq - len(self._history) + 1
        return self._history[max(0, after - first + 1):]

    def subscribe(self, subscriber: Subscriber, *, after: int | None = None) -> Callable[[], None]:
        """Call `subscriber(seq, event)` for every event from now on, first for the kept ones
        numbered above `after` (None: none of the past). Returns the function that unsubscribes."""
        if after is not None:
            for seq, event in self.history(after):
                subscriber(seq, event)
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if subscriber in self._subscribers else None

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """The events numbered above `after`, then each new one, until the work has ended."""
        while True:
            items = self.history(after)
            for seq, event in items:
                yield seq, event
                after = seq
            if items:
                continue
            if self.finished:
                return
            if self._wakeup is None or self._wakeup.done():
                self._wakeup = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._wakeup)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # -- the task ---------------------------------------------------------------------------

    def start(self) -> Work:
        self.task = asyncio.get_running_loop().create_task(self._main(), name=f"{self.kind} {self.id}")
        return self

    async def _main(self) -> Any:
        try:
            return await self._work()
        except asyncio.CancelledError:
            self.status = "cancelled"
            raise
        except BaseException as err:
            self.error = err
            raise
        finally:
            for approval in self.approvals.values():
                approval.future.cancel()
            self._wake()
            for callback in self._done:
                callback(self)

    async def _work(self) -> Any:
        raise NotImplementedError

    def on_done(self, callback: Callable[[Work], None]) -> None:
        self._done.append(callback)

    def cancel(self) -> None:
        """Stop the work as Ctrl-C stops a headless run (its clean-up runs to the end)."""
        if self.task is not None:
            self.task.cancel()

    async def wait(self) -> Any:
        """The work's result once it has ended (its clean-up too); raises what ended it."""
        assert self.task is not None
        await asyncio.wait([self.task])
        return self.task.result()

    # -- approvals --------------------------------------------------------------------------

    async def ask(self, request: Any) -> str:
        """The approver given to the work's agents: an ApprovalAsked event, then the answer."""
        approval = Approval(uuid.uuid4().hex[:8], request, asyncio.get_running_loop().create_future())
        self.approvals[approval.id] = approval
        self.emit(ApprovalAsked(approval.id, request.step, request.tool, request.subject, request.pattern))
        try:
            answer = await approval.future
        finally:
            self.approvals.pop(approval.id, None)
        self.emit(ApprovalAnswered(approval.id, answer))
        return answer

    def answer(self, approval_id: str, answer: str) -> None:
        if answer not in ANSWERS:
            raise BadInput(f"answer {answer!r} is not one of {', '.join(ANSWERS)}")
        approval = self.approvals.get(approval_id)
        if approval is None or approval.future.done():
            raise BadInput(f"{self.kind} {self.id} has no open approval {approval_id!r}")
        approval.future.set_result(answer)


class PlanRun(Work):
    """A plan run: the plan runner's run, reporting to the work's events."""

    kind: ClassVar[str] = "run"

    def __init__(
        self,
        service: Any,
        loaded: Any,
        *,
        run_id: str | None = None,
        jobs: int | None = None,
        keep: bool = False,
        resume: str | None = None,
        auto_approve: bool = False,
        asks: bool = False,
        grant: Any = None,
    ) -> None:
        """`asks`: an agent step that must ask is asked through `answer()` (someone follows the
        run); else only `auto_approve` lets such a plan run. `grant` (glmtui.plan.permissions.
        Permissions) is the host access whoever starts the run agreed to (--allow, a dialog, a
        server's policy); the run starts only when it covers what the plan declares."""
        from glmtui.plan.runner import new_run_id

        super().__init__(run_id or new_run_id())
        self.service = service
        self.loaded = loaded
        self.jobs, self.keep, self.resume = jobs, keep, resume
        self.auto_approve, self.asks = auto_approve, asks
        self.grant = grant
        self.engine_name: str | None = None  # the engine to run on, when known before the plan says
        self.runner: Any = None  # glmtui.plan.runner.Runner, once started
        self.result: Any = None  # glmtui.plan.runner.RunResult

    async def _work(self) -> Any:
        from glmtui.plan.runner import Runner

        engine = await self.service.engine_for(self.engine_name or self.loaded.plan.env.engine)
        self.runner = runner = Runner(
            engine, self.loaded, sink=self.emit, store=self.service.store, config=self.service.config,
            jobs=self.jobs, keep=self.keep, resume=self.resume, auto_approve=self.auto_approve,
            approver=self.ask if self.asks else None, run_id=self.id, grant=self.grant,
        )
        self.status = "running"
        self.result = await runner.run()
        self.status = self.result.status
        return self.result


class Slots:
    """At most `limit` holders at once; the others wait in the order they came."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        if self.busy < self.limit and not self._waiting:
            self.busy += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot came just as the waiter was cancelled: pass it on
            else:
                self._waiting.remove(turn)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot goes to the next in line; busy stays
                return
        self.busy -= 1

    @property
    def waiting(self) -> int:
        return len(self._waiting)
