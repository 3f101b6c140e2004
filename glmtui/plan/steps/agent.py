"""`agent`: a tool-using agent working inside the environment until it is done.

Two drivers:

- `builtin` (the default): glmtui's own agent loop (glmtui.agent.loop) runs on the host and
  calls the model from there; its tools (glmtui.agent.tools) act only inside the environment.
  The API key never enters the environment.
- any other name, with `command`: an agent program installed in the environment (a coding CLI
  such as Claude Code) started with the prompt as its last argument. It gets the provider's
  endpoint and key by name in its process's environment (OPENAI_BASE_URL, OPENAI_API_KEY,
  ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_MODEL, GLMTUI_MODEL) and the prompt in
  GLMTUI_PROMPT; its output streams like a `run` step's, with the key hidden.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from glmtui.errors import BadInput
from glmtui.plan.expressions import to_text
from glmtui.plan.model import PlanError, PlanInvalid
from glmtui.plan.steps.base import TAIL_BYTES, StepContext, StepOutcome, render
from glmtui.plan.steps.llm import Transcript, _close, masker_of, model_for, model_step_problem
from glmtui.units import counted

BUILTIN = "builtin"


async def always_yes(_request: Any) -> str:
    """The approver of a headless run with --yes."""
    return "yes"


def policy_for(spec: Mapping[str, Any], config: Any) -> Any:
    """The step's approval (else the config's) with the config's rules and then the step's own
    `approval_rules` (a saved agent's): of the rules that match a call, deny wins."""
    from glmtui.agent.approval import Policy

    mode = spec.get("approval") or (config.get("approval") if config is not None else "ask")
    rules = (config.get("approval_rules") if config is not None else None) or []
    return Policy.from_config(mode, [*rules, *(spec.get("approval_rules") or [])])


def driver_of(spec: Mapping[str, Any]) -> str:
    driver = spec.get("driver")
    return BUILTIN if driver in (None, "", BUILTIN) else str(driver)


async def agent_step(ctx: StepContext) -> StepOutcome:
    spec = render(ctx.step.spec, ctx.values)
    if driver_of(spec) == BUILTIN:
        return await _builtin(ctx, spec)
    return await _command(ctx, spec)


# --- builtin --------------------------------------------------------------------------------------


async def _builtin(ctx: StepContext, spec: Mapping[str, Any]) -> StepOutcome:
    from glmtui.agent.client import ModelClient, ModelError
    from glmtui.agent.loop import Agent, system_prompt
    from glmtui.agent.tools import Toolbox

    provider, key = model_for(ctx, spec)
    config = ctx.config
    tools = spec.get("tools")
    toolbox = Toolbox(ctx.engine, ctx.environment, workdir=ctx.workdir, user=ctx.user,
                      allowed=list(tools) if tools is not None else None)
    info = await ctx.engine.get_environment(ctx.environment)
    extra = to_text(spec["system"]) if spec.get("system") is not None else None
    system = system_prompt(toolbox, environment=ctx.environment, image=info.image, workdir=ctx.workdir, extra=extra)
    max_turns = int(spec.get("max_turns") or (config.get("max_turns") if config is not None else 30))
    policy = policy_for(spec, config)
    approver = ctx.approver or (always_yes if ctx.auto_approve else None)
    prompt = to_text(spec["prompt"])
    transcript = Transcript(ctx)
    transcript.prompt(prompt)
    client = ModelClient(provider, api_key=key)
    masker = masker_of(ctx)
    checkpoints: list[str] = []
    agent = Agent(
        client, toolbox, system=system, policy=policy, sink=transcript, approver=approver,
        step=ctx.output.step, model=provider.model, max_turns=max_turns, budget=spec.get("budget"), masker=masker,
        before_change=_checkpointer(ctx, transcript, checkpoints) if ctx.loaded.plan.env.name else None,
    )
    try:
        result = await agent.send(prompt)
    except ModelError as err:
        usage = agent.usage.as_dict()
        transcript.usage_line(usage)
        outputs = {"result": masker.mask(_last_text(agent.messages))}
        return StepOutcome("failure", None, str(err).splitlines()[0], outputs, usage=usage,
                           extra={"turns": agent.turns, **({"checkpoint": checkpoints[0]} if checkpoints else {})})
    finally:
        transcript.end_text()
        await _close(client)
    usage = result.usage.as_dict()
    transcript.usage_line(usage)
    outputs = {"result": masker.mask(result.text)}
    extra = {"turns": result.turns, **({"checkpoint": checkpoints[0]} if checkpoints else {})}
    if not result.finished:
        return StepOutcome("failure", None, result.reason or f"stopped after {counted(max_turns, 'turn')} (max_turns)",
                           outputs, usage=usage, extra=extra)
    return StepOutcome("success", None, None, outputs, usage=usage, extra=extra)


def _checkpointer(ctx: StepContext, transcript: Transcript, taken: list[str]) -> Any:
    """In a named environment (a throw-away one goes at the run's end): a checkpoint before the
    agent's first change, named in the step's log (which `agents executions show` prints)."""

    async def before_change(_message: str) -> None:
        from glmtui.docker.checkpoints import Checkpoints

        checkpoint = await Checkpoints(ctx.engine, ctx.environment).take(
            f"run {ctx.run_id} step {ctx.step.id}: before the agent's changes", reuse=True)
        taken.append(checkpoint.id)
        transcript.note(f"checkpoint {checkpoint.id} of {ctx.environment} taken before the agent's changes "
                        f"(glmtui env rollback {ctx.environment} {checkpoint.id} undoes them)")

    return before_change


def _last_text(messages: Iterable[Mapping[str, Any]]) -> str:
    for message in reversed(list(messages)):
        if message.get("role") == "assistant" and message.get("content"):
            return str(message["content"])
    return ""


# --- an agent program in the environment --------------------------------------------------------


def command_argv(command: Any) -> list[str]:
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as err:
            raise BadInput(f"command {command!r} does not split into words: {err}") from None
    return [to_text(word) for word in command or ()]


async def _command(ctx: StepContext, spec: Mapping[str, Any]) -> StepOutcome:
    from glmtui.plan.steps.run import run_in_environment

    driver = driver_of(spec)
    argv = command_argv(spec.get("command"))
    if not argv:
        raise BadInput(f"step {ctx.step.id}: driver {driver} needs a command: the agent program and its arguments")
    provider, key = model_for(ctx, spec)
    prompt = to_text(spec["prompt"])
    environment = {  # the endpoint and the key, by name, to this process only
        "OPENAI_BASE_URL": provider.base_url,
        "OPENAI_API_KEY": key,
        "ANTHROPIC_AUTH_TOKEN": key,
        "ANTHROPIC_MODEL": provider.model,
        "GLMTUI_MODEL": provider.model,
        "GLMTUI_PROVIDER": provider.name,
        "GLMTUI_PROMPT": prompt,
    }
    if provider.anthropic_base_url:
        environment["ANTHROPIC_BASE_URL"] = provider.anthropic_base_url
    if spec.get("system") is not None:
        environment["GLMTUI_SYSTEM"] = to_text(spec["system"])
    outcome = await run_in_environment(ctx, [*argv, prompt], environment, what=f"the agent program {argv[0]!r}")
    said = ctx.output.tail("stdout")[-TAIL_BYTES:].decode("utf-8", "replace").strip()
    outcome.outputs["result"] = masker_of(ctx).mask(said)
    return outcome


# --- before a run starts --------------------------------------------------------------------------


def _steps(workflow: Any, workflows: Mapping[str, Any]) -> Iterable[Any]:
    seen: set[str] = set()
    pending = [workflow]
    while pending:
        current = pending.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        for step in current.steps:
            yield step
            if step.kind == "workflow" and step.spec in workflows:
                pending.append(workflows[step.spec])


def preflight(loaded: Any, config: Any, *, auto_approve: bool = False, approver: Any = None) -> list[str]:
    """What must hold before a run with llm or agent steps starts: each step's provider is known
    and its API key set, and an agent whose approval policy may ask has someone to ask (--yes).
    Returns the API keys (to hide); raises PlanInvalid with every problem."""
    problems: list[PlanError] = []
    keys: list[str] = []
    for step in _steps(loaded.workflow, loaded.plan.workflows):
        if step.kind not in ("llm", "agent"):
            continue
        where = f"step {step.id}"
        problem, key = model_step_problem(step, config, loaded)
        if problem:
            problems.append(PlanError.at(step.location, f"{where}: {problem}"))
        if key:
            keys.append(key)
        spec = step.spec if isinstance(step.spec, Mapping) else {}
        if step.kind != "agent" or driver_of(spec) != BUILTIN or auto_approve or approver is not None:
            continue
        try:
            policy = policy_for(spec, config)
        except BadInput as err:
            problems.append(PlanError.at(step.location, f"{where}: {err}"))
            continue
        if policy.default == "ask":
            source = "approval ask" if spec.get("approval") else "approval ask (the config's `approval`)"
            problems.append(PlanError.at(
                step.location, f"{where}: {source} needs a person: run with --yes, or set approval: auto"))
        elif policy.may_ask():
            rule = next(r for r in policy.rules if r.mode == "ask")
            what = rule.tool or "*"
            if rule.pattern:
                what += f" {rule.pattern!r}"
            problems.append(PlanError.at(
                step.location, f"{where}: the approval rule for {what} asks a person: run with --yes, or change approval_rules"))
    if problems:
        raise PlanInvalid(problems)
    return keys
