"""`write` and `copy`: files into, out of and within reach of the environment."""

from __future__ import annotations

from pathlib import PurePosixPath

from glmtui.errors import BadInput
from glmtui.plan.expressions import to_text
from glmtui.plan.permissions import ENV_PREFIX
from glmtui.plan.steps.base import StepContext, StepOutcome, render
from glmtui.units import counted


def _container_path(ctx: StepContext, path: str) -> str:
    pure = PurePosixPath(path)
    return str(pure if pure.is_absolute() else PurePosixPath(ctx.workdir) / pure)


async def write_step(ctx: StepContext) -> StepOutcome:
    spec = ctx.step.spec
    path = _container_path(ctx, to_text(render(spec["path"], ctx.values)))
    content = to_text(render(spec.get("content", ""), ctx.values))
    mode = spec.get("mode", 0o644)
    if isinstance(mode, str):
        try:
            mode = int(mode, 8)
        except ValueError:
            raise BadInput(f"step {ctx.step.id}: mode {mode!r} is not an octal number like '0755'") from None
    data = content.encode()
    await ctx.engine.write_file(ctx.environment, path, data, mode=mode)
    ctx.output.write_text(f"wrote {counted(len(data), 'byte')} to {path}\n")
    return StepOutcome("success", 0, outputs={"path": path, "bytes": len(data)})


async def copy_step(ctx: StepContext) -> StepOutcome:
    source = to_text(render(ctx.step.spec["from"], ctx.values))
    target = to_text(render(ctx.step.spec["to"], ctx.values))
    from_env, to_env = source.startswith(ENV_PREFIX), target.startswith(ENV_PREFIX)
    if from_env == to_env:
        raise BadInput(
            f"step {ctx.step.id}: copy needs one side in the environment (env:/path) and one on the host"
        )
    if to_env:
        host = ctx.host_path(source, write=False, what=f"copy from {source!r}")
        destination = _container_path(ctx, target[len(ENV_PREFIX):])
        if target.endswith("/"):
            destination += "/"
        await ctx.engine.copy_in(ctx.environment, host, destination)
        ctx.output.write_text(f"copied {host} to env:{destination}\n")
    else:
        origin = _container_path(ctx, source[len(ENV_PREFIX):])
        host = ctx.host_path(target, write=True, what=f"copy to {target!r}")
        if target.endswith("/"):
            host.mkdir(parents=True, exist_ok=True)
        host.parent.mkdir(parents=True, exist_ok=True)
        await ctx.engine.copy_out(ctx.environment, origin, host)
        ctx.output.write_text(f"copied env:{origin} to {host}\n")
    return StepOutcome("success", 0)
