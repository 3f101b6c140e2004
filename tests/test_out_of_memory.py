"""A command killed for memory says so, with the environment's limit, not "killed by signal 9"."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import BUSYBOX

pytestmark = pytest.mark.docker

# awk doubles a string until the kernel kills it: the environment's memory runs out, the
# environment itself (its init) goes on running.
EAT_MEMORY = ["awk", "BEGIN { s = \"x\"; while (1) s = s s }"]
LIMIT = 32 * 1024 * 1024


async def test_a_command_out_of_memory_names_the_limit(engine, make_env):
    env = await make_env(resources=_resources(LIMIT))
    result = await engine.exec(env.name, EAT_MEMORY)
    assert result.exit_code == 137
    assert result.reason == "the command ran out of memory: the environment's limit is 32.0MiB"
    assert (await engine.exec(env.name, ["true"])).ok, "the environment is still running"


async def test_a_command_killed_by_a_signal_is_not_called_out_of_memory(engine, make_env):
    env = await make_env(resources=_resources(LIMIT))
    result = await engine.exec(env.name, ["sh", "-c", "kill -9 $$"])
    assert result.exit_code == 137
    assert result.reason == "killed by signal 9"


def test_a_step_out_of_memory_says_so_on_the_command_line(glmtui, env_name, tmp_path: Path):
    assert glmtui("env", "create", env_name, "--image", BUSYBOX, "--memory", "32m").returncode == 0
    plan = tmp_path / "eat.yaml"
    plan.write_text(f"version: 1\nname: eat\nenv: {{name: {env_name}}}\nsteps:\n"
                    "  - id: eat\n    run: awk 'BEGIN { s = \"x\"; while (1) s = s s }'\n")
    done = glmtui("--run", str(plan))
    assert done.returncode == 1, done.stderr
    assert "eat failure" in done.stdout
    assert "the command ran out of memory: the environment's limit is 32.0MiB" in done.stdout
    assert "signal 9" not in done.stdout


def _resources(memory: int):
    from glmtui.docker.spec import Resources

    return Resources(memory=memory)
