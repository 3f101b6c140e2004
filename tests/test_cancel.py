"""Interrupting a headless run: SIGINT, SIGTERM, a double Ctrl-C, and the process killed outright."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

import helpers
from plan_helpers import RUNPLANS, LiveRun, Timer, of, remove_run_leftovers, run_containers, run_volume_exists

pytestmark = pytest.mark.docker

SLEEPY = RUNPLANS / "sleepy.yaml"


def record_of(glmtui, run_id: str) -> dict:
    done = glmtui("runs", "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_cancels_the_run_and_removes_its_environment(glmtui, busybox_image, sig):
    run = LiveRun("--run", SLEEPY, "--json")
    try:
        run.wait_for("output", step="long")
        run_id = run.run_id
        assert len(run_containers(run_id)) == 1
        timer = Timer()
        run.signal(sig)
        assert run.finish(timeout=60) == 130, run.stderr
        assert timer.elapsed < 15
        finished = of(run.events, "run_finished")
        assert len(finished) == 1 and finished[0]["status"] == "cancelled"
        assert run.events[-1]["event"] == "run_finished"
        assert of(run.events, "step_finished", step="long")[0]["status"] == "cancelled"
        assert "Traceback" not in run.stderr
        assert run_containers(run_id) == [] and not run_volume_exists(run_id)
        record = record_of(glmtui, run_id)
        assert record["status"] == "cancelled"
        assert {s["step"]: s["status"] for s in record["steps"]}["long"] == "cancelled"
    finally:
        run.kill()
        if run.events:
            remove_run_leftovers(run.run_id)


@pytest.mark.parametrize("as_json", [False, True], ids=["plain", "json"])
def test_a_reader_that_goes_away_stops_the_run_like_ctrl_c(glmtui, busybox_image, tmp_path, as_json):
    """`glmtui --run plan | head -1`: the run stops, its throw-away environment goes, the record
    says cancelled with the output so far in the step's log; one line says so; exit 130."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nname: flood\nenv: {image: glmtui/busybox:latest}\nsteps:\n"
                    "  - id: flood\n    run: 'for i in $(seq 100000); do echo line $i; sleep 0.01; done'\n")
    reader = subprocess.Popen(["head", "-n", "3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    timer = Timer()
    run = subprocess.Popen(helpers.glmtui_argv("--run", str(plan), *(["--json"] if as_json else [])),
                           stdout=reader.stdin, stderr=subprocess.PIPE, text=True, env=helpers.child_env())
    reader.stdin.close()
    try:
        shown = reader.stdout.read().decode().splitlines()
        assert len(shown) == 3
        code, stderr = run.wait(timeout=60), run.stderr.read()
        assert code == 130 and timer.elapsed < 30
        assert stderr.strip().splitlines() == [
            "glmtui: the output was closed before the run ended: the run was stopped and recorded as cancelled (glmtui runs)"]
        run_id = json.loads(shown[0])["run_id"] if as_json else shown[0].split()[1].rstrip(":")
        assert run_containers(run_id) == [] and not run_volume_exists(run_id)
        record = record_of(glmtui, run_id)
        assert record["status"] == "cancelled"
        assert {s["step"]: s["status"] for s in record["steps"]} == {"flood": "cancelled"}
        assert glmtui("logs", "--run", run_id, "--step", "flood").stdout.startswith("line 1\n")
    finally:
        run.kill()
        reader.kill()


def test_a_double_sigint_still_cleans_up(glmtui, busybox_image):
    run = LiveRun("--run", SLEEPY, "--json")
    try:
        run.wait_for("output", step="long")
        run_id = run.run_id
        run.signal(signal.SIGINT)
        time.sleep(0.05)
        run.signal(signal.SIGINT)
        assert run.finish(timeout=60) == 130, run.stderr
        helpers.wait_for(lambda: run_containers(run_id) == [], timeout=5, what="the run's container to go")
        assert not run_volume_exists(run_id), "the second Ctrl-C left the environment's workspace volume"
        # the second Ctrl-C must not cut the end of the run short: the record and the last event
        assert record_of(glmtui, run_id)["status"] == "cancelled"
        assert [e["status"] for e in of(run.events, "run_finished")] == ["cancelled"]
    finally:
        run.kill()
        if run.events:
            remove_run_leftovers(run.run_id)


def test_a_sigint_while_the_environment_is_made_leaves_nothing(glmtui, busybox_image):
    run = LiveRun("--run", SLEEPY, "--json")
    try:
        run.wait_for("run_started")
        run_id = run.run_id
        run.signal(signal.SIGINT)
        assert run.finish(timeout=60) == 130, run.stderr
        assert of(run.events, "run_finished")[0]["status"] == "cancelled"
        time.sleep(0.5)  # a create the engine finished after the cancel would show by now
        assert run_containers(run_id) == [] and not run_volume_exists(run_id)
        assert helpers.docker("ps", "-aq", "--filter", f"name=glmtui-run-{run_id}").stdout.strip() == ""
    finally:
        run.kill()
        if run.events:
            remove_run_leftovers(run.run_id)


def kill_mid_step() -> LiveRun:
    run = LiveRun("--run", SLEEPY, "--json")
    try:
        run.wait_for("output", step="long")
        time.sleep(0.3)
    finally:
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(10)
    return run


def test_a_killed_glmtui_shows_as_interrupted_with_its_log_kept(glmtui, busybox_image):
    run = kill_mid_step()
    run_id = run.run_id
    try:
        listing = json.loads(glmtui("runs", "--json").stdout)
        assert next(r for r in listing if r["id"] == run_id)["status"] == "interrupted"
        record = record_of(glmtui, run_id)
        assert record["status"] == "interrupted"
        assert {s["step"]: s["status"] for s in record["steps"]}["long"] == "interrupted"
        logs = glmtui("logs", "--run", run_id, "--step", "long")
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout == "started\n", "the output a step printed before glmtui died is in its log"
    finally:
        remove_run_leftovers(run_id)
