"""Running work, owned by the service rather than by whoever started it.

A `Work` is one piece of running work (a plan run, an agent execution, a chat turn): it owns
its asyncio task, keeps its events (each with a sequence number, so a subscriber that comes
late or comes back, e.g. the TUI attaching to a run or an SSE client with Last-Event-ID,
continues where it was) and hands each new event to any number of subscribers; it is cancelled
through `cancel()`; its approvals are requests that whoever follows it answers (`answer()`): a
person in the TUI, a later API call, or `auto_approve` (--yes) which answers yes itself.

The history keeps every event but the oldest output: once the text of the kept Output and
Token events passes HISTORY_TEXT characters, the oldest of them are dropped (the step logs on
disk have all of it), so a late follower still sees every step start and end. Once the work
has ended, it keeps ENDED_TEXT characters of its output (the service keeps ended work for a
while: a hundred long runs must not hold all their output). Work that nobody can follow late
(the headless run's) keeps none: `kept_output = 0`.

`PlanRun` is exactly the plan runner's run (glmtui.plan.runner.Runner) with the work's
`emit` as its sink; there is no second implementation of runs.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, ClassVar

from glmtui.errors import BadInput, GlmtuiError
from glmtui.events import ApprovalAnswered, ApprovalAsked, Event, Output, Token

HISTORY_TEXT = 4_000_000  # characters of output kept for followers that come late (all of it is on disk)
ENDED_TEXT = 500_000  # ... once the work has ended
ANSWERS = ("yes", "no", "always")
_TEXT_EVENTS = (Output, Token)


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
        self.created = time.time()
        self.status = "queued"  # queued | running | then the final status the kind gives
        self.error: BaseException | None = None  # what ended it, when not its own result
        self.task: asyncio.Task[Any] | None = None
        self.approvals: dict[str, Approval] = {}
        self._history: list[tuple[int, Event]] = []  # in order of seq; the oldest output dropped
        self._text = 0  # characters of the Output and Token events in the history
        self.kept_output = HISTORY_TEXT  # at most this many of them (then the oldest half goes)
        self._seq = 0
        self._subscribers: list[Subscriber] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._done: list[Callable[[Work], None]] = []

    @property
    def title(self) -> str:
        """What a person calls it in a list: the plan's name, the agent's, the chat's environment."""
        return f"{self.kind} {self.id}"

    # -- events -----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """The sink of the work's events: numbered, kept, handed to every subscriber."""
        self._seq += 1
        if not isinstance(event, _TEXT_EVENTS):
            self._history.append((self._seq, event))
        elif self.kept_output:
            self._history.append((self._seq, event))
            self._text += len(event.text)
            if self._text > self.kept_output:
                self._drop_output(self.kept_output // 2)
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
        """The kept events numbered above `after`."""
        return self._history[bisect.bisect_right(self._history, after, key=itemgetter(0)):]

    def _drop_output(self, keep: int) -> None:
        """The oldest Output and Token events, until `keep` characters of them are left (a pass
        over the history now and then, not at every event)."""
        if self._text <= keep:
            return
        kept: list[tuple[int, Event]] = []
        for seq, event in self._history:
            if self._text > keep and isinstance(event, _TEXT_EVENTS):
                self._text -= len(event.text)  # type: ignore[attr-defined]
                continue
            kept.append((seq, event))
        self._history = kept

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
            if self.status in ("queued", "running"):
                self.status = "failure"
            raise
        finally:
            for approval in self.approvals.values():
                approval.future.cancel()
            self._drop_output(min(ENDED_TEXT, self.kept_output))
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
        self.emit(ApprovalAsked(approval.id, request.step, request.tool, request.subject, request.pattern,
                                dict(request.arguments)))
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


def error_line(error: BaseException) -> str:
    """What a person reads of what ended work: a GlmtuiError's line, else the bug, in one line."""
    if isinstance(error, GlmtuiError):
        return str(error)
    lines = str(error).strip().splitlines()
    return f"internal error: {type(error).__name__}" + (f": {lines[0]}" if lines else "")


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

    @property
    def title(self) -> str:
        return self.loaded.plan.name if self.loaded is not None else super().title

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
