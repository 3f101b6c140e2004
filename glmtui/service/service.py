"""The service: one engine connection, the store and the config, and the work running on them.

Whoever starts work (the scheduler, `glmtui agents run`, later the TUI and the HTTP API of
`glmtui serve`) starts it here and gets a `Work` to follow, answer and cancel; the service keeps
the running work (and the last finished) by id, and cancels all of it on shutdown.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any, TypeVar

from glmtui.errors import BadInput, Conflict
from glmtui.service.execution import Execution
from glmtui.service.records import AgentRecord, AgentStore
from glmtui.service.work import PlanRun, Slots, Work

W = TypeVar("W", bound=Work)
KEEP_FINISHED = 100  # finished work still found by id (the records have all of it)


class Service:
    def __init__(self, engine: Any, store: Any, config: Any, *, max_executions: int | None = None,
                 announce: Callable[[str], None] | None = None, engines: Any = None) -> None:
        """`engine` is the one used when a plan or an agent names none; `engines` (glmtui.docker.
        engines.Engines) the others, made from the config when first needed."""
        self.engine = engine
        self.engines = engines
        self.store = store
        self.config = config
        self.agents = AgentStore(store)
        self.slots = Slots(max_executions or config.get("serve.max_executions"))
        self.announce = announce or (lambda line: None)  # one line per execution started, ended or skipped
        self._work: dict[str, Work] = {}
        self._finished: collections.deque[str] = collections.deque()

    # -- starting work ----------------------------------------------------------------------

    def start_run(self, loaded: Any, **options: Any) -> PlanRun:
        """A plan run (options as PlanRun takes them: jobs, keep, resume, auto_approve, asks)."""
        return self._start(PlanRun(self, loaded, **options))

    def run_agent(self, name: str, trigger: str = "manual", *, scheduled: float | None = None,
                  auto_approve: bool = False, asks: bool = False) -> Execution | None:
        """Start an execution of agent `name`. Started by hand, one that cannot run raises
        BadInput (nothing recorded); started by the scheduler, it is recorded as skipped (the
        agent's last execution still runs) or failed (its approval would ask), and None returned."""
        agent = self.agents.get(name)
        problem = asking_problem(agent, self.config, auto_approve=auto_approve or asks)
        if problem:
            if trigger == "manual":
                raise BadInput(problem)
            self.record(agent.name, trigger, scheduled, "failure", problem)
            return None
        execution_id, blocking = self.agents.queue(agent.name, trigger, scheduled)
        if execution_id is None:
            reason = f"execution {blocking} of it still runs"
            if trigger == "manual":
                raise Conflict(f"agent {name} was not started again: {reason}",
                               hint=f"glmtui agents executions show {blocking}")
            self.record(agent.name, trigger, scheduled, "skipped", reason)
            return None
        return self._execute(agent, execution_id, auto_approve=auto_approve, asks=asks)

    def take_over(self, execution_id: str, *, auto_approve: bool = False) -> Execution:
        """Run an execution queued by another process and handed to this one (`agents run`
        without --wait hands its execution to a background process)."""
        record = self.agents.execution(execution_id)
        if not self.agents.claim(record.id):
            raise Conflict(f"execution {record.id} is {record.status}, not queued")
        return self._execute(self.agents.get(record.agent), record.id, auto_approve=auto_approve, asks=False)

    def _execute(self, agent: AgentRecord, execution_id: str, *, auto_approve: bool, asks: bool) -> Execution:
        record = self.agents.execution(execution_id)
        return self._start(Execution(self, agent, record, auto_approve=auto_approve, asks=asks))

    def record(self, agent: str, trigger: str, scheduled: float | None, status: str, reason: str) -> None:
        """An execution that ended before it started (skipped, refused), recorded and announced."""
        execution_id = self.agents.record(agent, trigger, scheduled, status, reason)
        self.announce(f"{agent}: execution {execution_id} {status} ({trigger}) · {reason}")

    def _start(self, work: W) -> W:
        self._work[work.id] = work
        work.on_done(self._done)
        work.start()
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
