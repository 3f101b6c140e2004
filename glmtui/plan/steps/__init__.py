"""The step kinds, by name. A kind is an async function of a StepContext; the runner knows no kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from glmtui.plan.steps.agent import agent_step
from glmtui.plan.steps.base import StepContext, StepOutcome
from glmtui.plan.steps.files import copy_step, write_step
from glmtui.plan.steps.http import http_step
from glmtui.plan.steps.llm import llm_step
from glmtui.plan.steps.run import run_step

StepKind = Callable[[StepContext], Awaitable[StepOutcome]]


async def workflow_step(ctx: StepContext) -> StepOutcome:
    assert ctx.run_workflow is not None
    return await ctx.run_workflow(ctx)


KINDS: dict[str, StepKind] = {
    "run": run_step,
    "write": write_step,
    "copy": copy_step,
    "http": http_step,
    "workflow": workflow_step,
    "llm": llm_step,
    "agent": agent_step,
}
