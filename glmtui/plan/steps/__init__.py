"""The step kinds, by name. A kind is an async function of a StepContext; the runner knows no kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from glmtui.errors import WorkFailed
from glmtui.plan.steps.agent import agent_step
from glmtui.plan.steps.base import StepContext, StepOutcome
from glmtui.plan.steps.files import copy_step, write_step
from glmtui.plan.steps.http import http_step
from glmtui.plan.steps.llm import llm_step
from glmtui.plan.steps.run import run_step

StepKind = Callable[[StepContext], Awaitable[StepOutcome]]


async def _not_available(ctx: StepContext) -> StepOutcome:
    raise WorkFailed(f"step {ctx.step.id}: `{ctx.step.kind}` steps are not available yet in this glmtui")


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


def available(name: str) -> bool:
    return KINDS.get(name, _not_available) is not _not_available


def register(name: str, kind: StepKind) -> None:
    """How the agent kinds plug in without touching the runner."""
    KINDS[name] = kind
