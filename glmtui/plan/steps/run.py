"""`run`: a shell script inside the environment, output streamed live."""

from __future__ import annotations

import time

from glmtui.errors import NotFound
from glmtui.plan.expressions import parse
from glmtui.plan.shell import check_value, is_shell, render_script, shell_argv
from glmtui.plan.steps.base import StepContext, StepOutcome

OUTPUT_PREFIX = "/tmp/glmtui-out-"  # $GLMTUI_OUTPUT files, one per step attempt


def output_file(run_id: str, step: str, attempt: int) -> str:
    return f"{OUTPUT_PREFIX}{run_id}-{step}.{attempt}"


async def run_step(ctx: StepContext) -> StepOutcome:
    rendered = render_script(parse(ctx.step.spec), ctx.values)
    if is_shell(ctx.step.shell):
        for name in substituted_variables(ctx):
            check_value(name, ctx.env_vars[name])
    return await run_in_environment(ctx, [*shell_argv(ctx.step.shell), rendered.script], rendered.env)


def substituted_variables(ctx: StepContext) -> list[str]:
    """The step's environment variables (its own and the env's) whose values come from expressions:
    they reach the shell by name, as a script's values do."""
    templates = {**ctx.loaded.plan.env.environment, **ctx.step.environment}
    return [
        name
        for name, template in templates.items()
        if isinstance(template, str) and any(not expr.raw for expr in parse(template).expressions())
    ]


async def run_in_environment(
    ctx: StepContext, argv: list[str], environment: dict[str, str], *, what: str = "a command"
) -> StepOutcome:
    """argv as the step's work in the run's environment: output streamed and logged,
    $GLMTUI_OUTPUT read, the exit code judged (127: `what` was not found)."""
    out_file = output_file(ctx.run_id, ctx.step.id, ctx.attempt)
    environment = {
        **ctx.env_vars,
        **environment,
        "GLMTUI_OUTPUT": out_file,
        "GLMTUI_RUN_ID": ctx.run_id,
        "GLMTUI_STEP": ctx.step.id,
    }
    ctx.leftovers.add(out_file)  # until known absent: a cancelled step may have written it
    started = time.time()
    result = await ctx.engine.exec(
        ctx.environment, argv, environment=environment, workdir=ctx.workdir, user=ctx.user,
        timeout=ctx.timeout, on_output=ctx.output.feed, reap=not ctx.step.keep_running,
    )
    if ctx.egress:  # what the egress proxy refused the step, in its output
        from glmtui.docker.egress import Egress

        for line in await Egress(ctx.engine).blocked_lines(ctx.environment, started):
            ctx.output.feed(2, f"glmtui: {line}\n".encode())
    outputs = await read_outputs(ctx, out_file)
    if result.timed_out:
        return StepOutcome("failure", result.exit_code, "timeout", outputs)
    if result.exit_code != 0:
        reason = result.reason or f"exit code {result.exit_code}"
        if result.exit_code == 127:
            if not result.reason:
                reason += f": {what} was not found"
            reason += " (check its spelling, or install it in the image)"
        return StepOutcome("failure", result.exit_code, reason, outputs)
    return StepOutcome("success", 0, None, outputs)


async def read_outputs(ctx: StepContext, path: str) -> dict[str, str]:
    try:
        data = await ctx.engine.read_file(ctx.environment, path)
    except NotFound:
        ctx.leftovers.discard(path)
        return {}
    except IsADirectoryError:
        return {}
    return parse_output_file(data.decode("utf-8", "replace"))


def parse_output_file(text: str) -> dict[str, str]:
    """`key=value` lines, and GitHub's `key<<DELIM` … `DELIM` for values with newlines."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            outputs[key.strip()] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            outputs[key.strip()] = value
    return outputs
