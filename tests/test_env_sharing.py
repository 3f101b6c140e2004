"""Runs that use one named environment: made once, however many start at once, and taking
turns in it unless their plan says it may be shared."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

import helpers
from plan_helpers import LiveRun, json_lines, of, write_plan

pytestmark = pytest.mark.docker

TURNS = """
    version: 1
    name: turns
    env: {name: @NAME@, image: glmtui/busybox:latest@SHARED@}
    steps:
      - id: work
        run: |
          echo "started in $(hostname)"
          sleep @SLEEP@
"""


def turns_plan(tmp_path, name: str, *, shared: bool = False, sleep: str = "0.3"):
    return write_plan(tmp_path, TURNS, NAME=name, SHARED=", shared: true" if shared else "", SLEEP=sleep)


def spans_of(events: list[dict]) -> tuple[float, float]:
    """When the run's one step started and ended."""
    return of(events, "step_started")[0]["ts"], of(events, "step_finished")[0]["ts"]


def test_runs_started_at_once_on_a_new_named_environment_make_it_once_and_take_turns(busybox_image, env_name,
                                                                                        tmp_path):
    plan = str(turns_plan(tmp_path, env_name))
    done = helpers.run_glmtui_many([("--run", plan, "--json")] * 5, timeout=180)
    assert [d.returncode for d in done] == [0] * 5, "\n".join(d.stderr for d in done)
    runs = [json_lines(d.stdout) for d in done]
    run_ids = {events[0]["run_id"] for events in runs}
    spans = sorted(spans_of(events) for events in runs)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), f"the runs overlapped: {spans}"
    waits = [e["message"] for events in runs for e in of(events, "progress") if e["message"].startswith("waiting")]
    assert waits, "no run said it was waiting"
    for message in waits:
        holder = message.removeprefix("waiting for run ").split(" ", 1)[0]
        assert holder in run_ids and message.endswith(f" to finish with environment {env_name}"), message
    assert len(helpers.docker("ps", "-aq", "--filter", f"name=^/{helpers.container_of(env_name)}$").stdout.split()) == 1


def test_runs_of_a_plan_that_shares_its_environment_run_together(busybox_image, env_name, tmp_path):
    plan = str(turns_plan(tmp_path, env_name, shared=True, sleep="2"))
    done = helpers.run_glmtui_many([("--run", plan, "--json")] * 3, timeout=180)
    assert [d.returncode for d in done] == [0] * 3, "\n".join(d.stderr for d in done)
    runs = [json_lines(d.stdout) for d in done]
    spans = [spans_of(events) for events in runs]
    assert max(start for start, _ in spans) < min(end for _, end in spans), f"the runs took turns: {spans}"
    said = [line for events in runs for e in of(events, "output") for line in e["lines"]]
    assert len(said) == 3 and len(set(said)) == 1, said  # in one container


async def test_creates_of_one_named_environment_at_once_use_the_one_made(engine, busybox_image, env_name, tmp_path):
    """Without the lock of this machine's runs (another user, another machine, `glmtui env
    create`): a creation that finds the name taken uses that environment once it runs."""
    from glmtui.config import Config
    from glmtui.plan import environment as run_env
    from glmtui.plan.permissions import HostAccess
    from glmtui.plan.validate import load_plan

    loaded = load_plan([turns_plan(tmp_path, env_name)], environ={})
    access = HostAccess.of(loaded.plan.dir, loaded.plan.permissions, engine.host)
    said: list[str] = []
    made = await asyncio.gather(*(
        run_env.prepare(engine, loaded, Config.load(), f"run-{i}", run_env.resolve(loaded, f"run-{i}", {}),
                        said.append, access)
        for i in range(5)
    ), return_exceptions=True)
    assert [getattr(m, "name", m) for m in made] == [env_name] * 5
    assert (await engine.get_environment(env_name)).running
    assert (await engine.exec(env_name, ["true"])).exit_code == 0
    assert any(line == f"environment {env_name} was created at the same time elsewhere: using it" for line in said), said


def test_ctrl_c_while_waiting_for_another_run_cancels_cleanly(glmtui, busybox_image, env_name, tmp_path):
    plan = turns_plan(tmp_path, env_name, sleep="4")
    first = LiveRun("--run", plan, "--json")
    second = None
    try:
        first.wait_for("output", step="work")
        second = LiveRun("--run", plan, "--json")
        waiting = second.wait_for("progress")
        assert waiting["message"] == f"waiting for run {first.run_id} to finish with environment {env_name}"
        second.signal(signal.SIGINT)
        assert second.finish(timeout=60) == 130, second.stderr
        assert "Traceback" not in second.stderr
        assert [e["status"] for e in of(second.events, "run_finished")] == ["cancelled"]
        assert of(second.events, "step_started") == []
        record = json.loads(glmtui("runs", "show", second.run_id, "--json").stdout)
        assert record["status"] == "cancelled" and record["steps"] == []
        assert first.finish(timeout=60) == 0, first.stderr  # the run it waited for is not disturbed
    finally:
        first.kill()
        if second is not None:
            second.kill()
