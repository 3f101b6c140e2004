"""An agent execution: the plan run of the agent's one-step plan, and its record.

It waits for one of the service's execution slots, builds the agent's plan
(glmtui.service.definition.execution_plan) and runs it as every plan run is run (PlanRun), while
its events fill the record: the tokens of every turn, every tool call and its exit status,
the final message. The transcript is the step log of the run, which has the execution's id.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from glmtui.errors import GlmtuiError, NotFound
from glmtui.events import Event, ExecutionFinished, RunStarted, StepFinished, ToolCall, ToolResult, Usage
from glmtui.service.definition import STEP_ID, execution_plan
from glmtui.service.records import AgentRecord, ExecutionRecord
from glmtui.service.work import PlanRun
from glmtui.transcript import summarize_call
from glmtui.units import counted

EXIT_CODES = {"success": 0, "cancelled": 130}  # anything else: 1


class Execution(PlanRun):
    kind: ClassVar[str] = "execution"

    def __init__(self, service: Any, agent: AgentRecord, record: ExecutionRecord, *, auto_approve: bool = False,
                 asks: bool = False, variables: Mapping[str, str] | None = None) -> None:
        super().__init__(service, None, run_id=record.id, auto_approve=auto_approve, asks=asks)
        self.agent = agent
        self.record = record
        self.variables = dict(variables or {})  # more for ${env.X} (a webhook's payload)
        self._calls: dict[str, dict[str, Any]] = {}
        self._step: StepFinished | None = None
        self._run_started = False

    @property
    def title(self) -> str:
        return self.agent.name

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.record.status, 1)

    def emit(self, event: Event) -> None:
        record = self.record
        if isinstance(event, Usage) and event.step == STEP_ID:
            record.turn_usage.append([event.input_tokens, event.output_tokens])
            record.input_tokens, record.output_tokens = event.total_input_tokens, event.total_output_tokens
            record.turns = len(record.turn_usage)
            self.service.agents.progress(record.id, record.input_tokens, record.output_tokens, record.turn_usage)
        elif isinstance(event, ToolCall):
            self._calls[event.call_id] = call = {"tool": event.tool, "call": summarize_call(event.tool, event.arguments),
                                                 "status": "running", "exit_code": None, "duration": None}
            record.tool_calls.append(call)
        elif isinstance(event, ToolResult) and event.call_id in self._calls:
            self._calls[event.call_id].update(status=event.status, exit_code=event.exit_code, duration=event.duration)
        elif isinstance(event, StepFinished) and event.step == STEP_ID:
            self._step = event
            record.result = event.outputs.get("result")
        elif isinstance(event, RunStarted):
            self._run_started = True
        super().emit(event)

    async def _work(self) -> ExecutionRecord:
        record, agents = self.record, self.service.agents
        try:
            async with self.service.slots:
                agents.start(record.id)
                record.status, record.started = "running", time.time()
                self.status = "running"
                self.service.announce(f"{record.agent}: execution {record.id} started ({record.trigger})")
                environ = {**os.environ, **self.variables} if self.variables else None
                self.loaded = execution_plan(self.agent.definition, self.service.config, environ)
                await self._check_environment()
                await super()._work()
                self._conclude()
        except asyncio.CancelledError:
            record.status = "cancelled"
            if record.started is None:
                record.reason = "cancelled before it started"
            raise
        except GlmtuiError as err:
            record.status = "failure"
            record.reason = self._masked("; ".join(str(err).splitlines()))
        except Exception as err:  # a bug: recorded as what it is, then raised
            record.status = "failure"
            record.reason = self._masked(f"internal error: {type(err).__name__}: {err}")
            raise
        finally:
            self._record_end()
        return record

    async def _check_environment(self) -> None:
        """An agent whose env names an environment works in that one, on its engine: it is not made for it."""
        name = self.agent.definition.environment
        if name is None:
            return
        try:
            self.engine_name = (await self.service.find_environment(name)).name
        except NotFound:
            raise NotFound(f"environment {name} does not exist", hint=f"glmtui env create {name}, or give the "
                           "agent an env block with an image") from None

    def _conclude(self) -> None:
        record, step = self.record, self._step
        status = self.result.status
        if status != "failure":
            record.status = status
            return
        budget = self.agent.definition.budget
        spent = budget is not None and record.input_tokens + record.output_tokens >= budget
        record.status = "budget_spent" if spent and step is not None and step.status == "failure" else "failure"
        record.reason = step.reason if step is not None else "the run failed"

    def _record_end(self) -> None:
        record = self.record
        for call in record.tool_calls:
            if call["status"] == "running":
                call["status"] = "cancelled"
        record.run_id = record.id if self._run_started else None
        self.status = record.status
        self.service.agents.finish(record)
        self.emit(ExecutionFinished(record.id, record.agent, record.trigger, record.status, record.reason,
                                    record.result, record.input_tokens, record.output_tokens, record.turns))
        self.service.announce(f"{record.agent}: execution {record.id} {describe(record)}")

    def _masked(self, text: str) -> str:
        return self.runner.masker.mask(text) if self.runner is not None else text


def describe(record: ExecutionRecord) -> str:
    """'success in 12.3s · 3 turns · 1,234 tokens in / 56 out', with the reason when there is one."""
    parts = [record.status]
    if record.duration is not None:
        parts[0] += f" in {record.duration:.1f}s"
    if record.turns:
        parts.append(counted(record.turns, "turn"))
    if record.input_tokens or record.output_tokens:
        parts.append(f"{record.input_tokens:,} tokens in / {record.output_tokens:,} out")
    if record.reason:
        parts.append(record.reason)
    return " · ".join(parts)
