"""The Docker engine restarting under glmtui: a run fails cleanly with its records intact, and
the event stream says disconnected, then reconnected. These tests restart the local dockerd."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from plan_helpers import LiveRun, of, remove_run_leftovers, run_containers, write_plan

pytestmark = pytest.mark.docker


def restart_dockerd() -> None:
    """Stop the local dockerd and start it again, as `scripts/setup` starts it."""
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    assert found, "these tests restart the local dockerd, and none runs here"
    pid = int(found[0])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    subprocess.run(["sh", "-c", "setsid nohup dockerd >>/var/log/glmtui-dockerd.log 2>&1 </dev/null &"], check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError("dockerd did not come back within 60 s")


def test_a_run_fails_cleanly_when_the_engine_restarts(glmtui, tmp_path, busybox_image):
    plan = write_plan(tmp_path, """
        version: 1
        name: restart
        env: {image: glmtui/busybox:latest}
        steps:
          - id: long
            run: echo started; sleep 300
        """)
    run = LiveRun("--run", plan, "--json")
    run.wait_for("output", step="long")
    run_id = run.run_id
    try:
        restart_dockerd()
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
        assert not run_containers(run_id), ("the throw-away environment is removed once the engine is back", of(events, "progress"))
    finally:
        remove_run_leftovers(run_id)


async def test_events_say_disconnected_then_reconnected(engine):
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
    await asyncio.to_thread(restart_dockerd)
    await asyncio.wait_for(task, 30)
    assert seen == ["disconnected", "reconnected"]
    # the kept connection died with the old engine: the next request makes a new one
    assert isinstance(await engine.list_environments(), list)
