"""The Docker engine restarting under glmtui: a run fails cleanly with its records intact, and
the event stream says disconnected, then reconnected. These tests restart an engine of their own
(tests/private_dockerd.py), never the machine's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from plan_helpers import LiveRun, of, write_plan
from private_dockerd import PrivateDockerd

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def dockerd(busybox_image: str) -> Iterator[PrivateDockerd]:
    """A private engine holding the machine engine's busybox image."""
    engine = PrivateDockerd()
    engine.start()
    try:
        engine.load_image_from_machine(busybox_image)
        yield engine
    finally:
        engine.close()


def test_a_run_fails_cleanly_when_the_engine_restarts(glmtui, tmp_path, dockerd):
    plan = write_plan(tmp_path, """
        version: 1
        name: restart
        env: {image: glmtui/busybox:latest}
        steps:
          - id: long
            run: echo started; sleep 300
        """)
    on_it = {"DOCKER_HOST": dockerd.host}
    run = LiveRun("--run", plan, "--json", env=on_it)
    run.wait_for("output", step="long")
    run_id = run.run_id
    try:
        dockerd.restart()
        code = run.finish(timeout=60)
        events = run.events
        assert code == 1, run.stderr
        finished = of(events, "step_finished", step="long")[0]
        assert finished["status"] == "failure" and finished["reason"], finished
        assert of(events, "run_finished")[0]["status"] == "failure"
        record = json.loads(glmtui("runs", "show", run_id, "--json").stdout)
        assert record["status"] == "failure"
        assert {s["step"]: s["status"] for s in record["steps"]} == {"long": "failure"}
        assert glmtui("logs", "--run", run_id, "--step", "long").stdout == "started\n"
        left = dockerd.docker("ps", "-aq", "--filter", f"label=glmtui.run={run_id}").stdout.split()
        assert not left, ("the throw-away environment is removed once the engine is back", of(events, "progress"))
    finally:
        run.proc.kill()


async def test_events_say_disconnected_then_reconnected(dockerd):
    from glmtui.docker.engine import Engine

    engine = await Engine.connect(dockerd.host)
    seen: list[str] = []

    async def follow() -> None:
        async for event in engine.events():
            if event.type == "engine":
                seen.append(event.action)
                if event.action == "reconnected":
                    return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.5)
    await engine.list_environments()  # a connection kept for the next request
    try:
        await asyncio.to_thread(dockerd.restart)
        await asyncio.wait_for(task, 30)
        assert seen == ["disconnected", "reconnected"]
        # the kept connection died with the old engine: the next request makes a new one
        assert isinstance(await engine.list_environments(), list)
    finally:
        task.cancel()
        await engine.close()
