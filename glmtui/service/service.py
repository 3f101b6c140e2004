"""The service: one engine connection, the store and the config, and the work running on them.

Whoever starts work (the TUI through glmtui.service.backend, the headless `glmtui --run`, the
scheduler, `glmtui agents run`, later the HTTP API of `glmtui serve`) starts it here and gets a
`Work` to follow, answer and cancel; the service keeps the running work (and the last finished)
by id, and cancels all of it on shutdown. What only saved agents need (their records, the
Execution) is imported when first used: a headless run imports none of it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from glmtui.errors import BadInput, Conflict
from glmtui.service.work import PlanRun, Slots, Work

if TYPE_CHECKING:
    from glmtui.service.chat import ChatTurn, Chats
    from glmtui.service.execution import Execution
    from glmtui.service.records import AgentRecord, AgentStore

W = TypeVar("W", bound=Work)
KEEP_FINISHED = 100  # finished work still found by id (the records have all of it)
BY_HAND = ("manual", "hook")  # triggers whose start is refused at once (not recorded) when it cannot run


class Service:
    def __init__(self, engine: Any, store: Any, config: Any, *, max_executions: int | None = None,
                 announce: Callable[[str], None] | None = None, late_followers: bool = True,
                 engines: Any = None) -> None:
        """`late_followers`: False when only whoever starts work follows it (the headless run):
        the work then keeps none of its output for later (see glmtui.service.work). `engine` is
        the one used when a plan or an agent names none; `engines` (glmtui.docker.engines.Engines)
        the others, made from the config when first needed."""
        self.engine = engine
        self.engines = engines
        self.store = store
        self.config = config
        self.slots = Slots(max_executions or config.get("serve.max_executions"))
        self.announce = announce or (lambda line: None)  # one line per execution started, ended or skipped
        self.late_followers = late_followers
        self._work: dict[str, Work] = {}
        self._finished: collections.deque[str] = collections.deque()

    @cached_property
    def agents(self) -> AgentStore:
        from glmtui.service.records import AgentStore

        return AgentStore(self.store)

    @cached_property
    def chats(self) -> Chats:
        from glmtui.service.chat import Chats

        return Chats(self)

    # -- starting work ----------------------------------------------------------------------

    def start_run(self, loaded: Any, **options: Any) -> PlanRun:
        """A plan run (options as PlanRun takes them: jobs, keep, resume, auto_approve, asks, grant)."""
        return self._start(PlanRun(self, loaded, **options))

    def send_chat(self, environment: str, text: str, *, conversation_id: str | None = None,
                  provider: str | None = None, model: str | None = None, engine: str | None = None) -> ChatTurn:
        """One message to the agent of a conversation in `environment` on `engine` (None: the
        service's own); `conversation_id` None: a new conversation. Conflict while that
        conversation replies to another."""
        from glmtui.service.chat import ChatTurn

        if conversation_id is not None and any(
            isinstance(work, ChatTurn) and work.conversation_id == conversation_id for work in self.running()
        ):
            raise Conflict(f"conversation {conversation_id} is still replying to a message",
                           hint="stop that reply first")
        return self._start(ChatTurn(self.chats, environment=environment, text=text, conversation_id=conversation_id,
                                    provider=provider, model=model, engine=engine))

    def run_agent(self, name: str, trigger: str = "manual", *, scheduled: float | None = None,
                  auto_approve: bool = False, asks: bool = False,
                  variables: Mapping[str, str] | None = None) -> Execution | None:
        """Start an execution of agent `name`. Started by hand (or by a webhook), one that cannot
        run raises BadInput (nothing recorded); started by the scheduler, it is recorded as skipped
        (the agent's last execution still runs) or failed (its approval would ask), and None
        returned. `variables` add to what `${env.X}` sees (a webhook's payload)."""
        agent = self.agents.get(name)
        by_hand = trigger in BY_HAND
        problem = asking_problem(agent, self.config, auto_approve=auto_approve or asks)
        if problem:
            if by_hand:
                raise BadInput(problem)
            self.record(agent.name, trigger, scheduled, "failure", problem)
            return None
        execution_id, blocking = self.agents.queue(agent.name, trigger, scheduled)
        if execution_id is None:
            reason = f"execution {blocking} of it still runs"
            if by_hand:
                raise Conflict(f"agent {name} was not started again: {reason}",
                               hint=f"glmtui agents executions show {blocking}")
            self.record(agent.name, trigger, scheduled, "skipped", reason)
            return None
        return self._execute(agent, execution_id, auto_approve=auto_approve, asks=asks, variables=variables)

    def take_over(self, execution_id: str, *, auto_approve: bool = False) -> Execution:
        """Run an execution queued by another process and handed to this one (`agents run`
        without --wait hands its execution to a background process)."""
        record = self.agents.execution(execution_id)
        if not self.agents.claim(record.id):
            raise Conflict(f"execution {record.id} is {record.status}, not queued")
        return self._execute(self.agents.get(record.agent), record.id, auto_approve=auto_approve, asks=False)

    def _execute(self, agent: AgentRecord, execution_id: str, *, auto_approve: bool, asks: bool,
                 variables: Mapping[str, str] | None = None) -> Execution:
        from glmtui.service.execution import Execution

        record = self.agents.execution(execution_id)
        return self._start(Execution(self, agent, record, auto_approve=auto_approve, asks=asks, variables=variables))

    def record(self, agent: str, trigger: str, scheduled: float | None, status: str, reason: str) -> None:
        """An execution that ended before it started (skipped, refused), recorded and announced."""
        execution_id = self.agents.record(agent, trigger, scheduled, status, reason)
        self.announce(f"{agent}: execution {execution_id} {status} ({trigger}) · {reason}")

    def _start(self, work: W) -> W:
        if not self.late_followers:
            work.kept_output = 0
        self._work[work.id] = work
        work.on_done(self._done)
        work.start()
        # What ended it is the work's `error`, for whoever follows it: not a warning that nobody
        # retrieved the task's exception.
        work.task.add_done_callback(lambda task: task.cancelled() or task.exception())  # type: ignore[union-attr]
        return work

    def _done(self, work: Work) -> None:
        self._finished.append(work.id)
        while len(self._finished) > KEEP_FINISHED:
            self._work.pop(self._finished.popleft(), None)

    # -- engines ----------------------------------------------------------------------------

    async def engine_for(self, name: str | None) -> Any:
        """The engine `name` (a plan's env.engine); None: the service's own."""
        if name is None or name == self.engine.name:
            return self.engine
        return await self._engines().get(name)

    async def find_environment(self, name: str) -> Any:
        """The engine environment `name` is on (asking every engine when there are several)."""
        engine, _ = await self._engines().find_environment(name)
        return engine

    def _engines(self) -> Any:
        if self.engines is None:
            from glmtui.docker.engines import Engines

            self.engines = Engines.from_config(self.config, connected=[self.engine])
        return self.engines

    # -- finding work -----------------------------------------------------------------------

    def get(self, work_id: str) -> Work | None:
        return self._work.get(work_id)

    def running(self) -> list[Work]:
        return [work for work in self._work.values() if not work.finished]

    def recent(self) -> list[Work]:
        """The work still known: the running first (oldest first), then the finished (newest first)."""
        finished = [self._work[work_id] for work_id in reversed(self._finished)
                    if work_id in self._work and self._work[work_id].finished]
        return self.running() + finished

    async def shutdown(self) -> None:
        """Cancel every running work and wait for each to clean up (a second cancel of the
        caller does not cut that short)."""
        running = self.running()
        for work in running:
            work.cancel()
        if running:
            tasks = [work.task for work in running if work.task is not None]
            while not all(task.done() for task in tasks):
                try:
                    await asyncio.shield(asyncio.wait(tasks))
                except asyncio.CancelledError:
                    continue
        if "chats" in self.__dict__:  # chat sessions were opened: close their model clients
            await self.chats.close()
        if self.engines is not None:
            await self.engines.close()  # those it connected; the service's own engine is its owner's


def asking_problem(agent: AgentRecord, config: Any, *, auto_approve: bool) -> str | None:
    """Why the agent cannot run with nobody to answer its approvals, or None."""
    definition = agent.definition
    if definition.command is not None or auto_approve:
        return None
    from glmtui.plan.steps.agent import policy_for

    policy = policy_for(definition.data, config)
    if not policy.may_ask():
        return None
    if policy.default == "ask":
        source = "approval: ask" if "approval" in definition.data else "approval ask (the config's)"
    else:
        rule = next(rule for rule in policy.rules if rule.mode == "ask")
        source = f"the approval rule for {rule.tool or '*'}{' ' + repr(rule.pattern) if rule.pattern else ''}"
    return (f"agent {agent.name} may ask a person before a tool call ({source}) and nobody is there to answer: "
            f"run it with --yes, or set approval: auto or deny")
