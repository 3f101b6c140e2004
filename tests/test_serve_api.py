"""The HTTP API of `glmtui serve`, driven by a plain HTTP client against real serve processes
on random loopback ports and the real engine: plans, runs (start, wait, list, show, step logs,
cancel, resume), a run followed over SSE with a reconnect in the middle, the replay of a run from
its records, environments and exec, the server's policy (serve.allow), approvals, agents and
their executions, and SIGTERM with a run going."""

from __future__ import annotations

import json
import signal

import httpx2 as httpx
import pytest

import helpers
from agent_helpers import KEY_ENV, new_key, write_agent
from model_server import text, tool_calls
from serve_helpers import Serve, database_counts, events

pytestmark = pytest.mark.docker

LINES = """
version: 1
name: lines
description: Prints numbered lines, a few a second.
inputs:
  count: {type: integer, default: 40}
  pause: {type: string, default: "0.05"}
env: {image: glmtui/busybox:latest}
steps:
  - id: print
    run: |
      for i in $(seq 1 ${inputs.count}); do echo "line $i"; sleep ${inputs.pause}; done
"""


@pytest.fixture
def serve(tmp_path, busybox_image):
    started: list[Serve] = []

    def start(*args: str, folder=None, **options) -> Serve:
        server = Serve(folder or tmp_path / f"serve{len(started)}", *args, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def test_plans_and_runs(serve):
    server = serve()
    server.plan("hello", (helpers.PROJECT_ROOT / "plans" / "hello.yaml").read_text())
    server.plan("lines", LINES)
    (server.plans / "notes.yaml").write_text("just: some yaml\n")
    server.plan("broken", "version: 1\nname: broken\nsteps:\n  - id: a\n    runn: echo\n")
    (server.plans / "nested").mkdir()
    server.plan("nested/again", "version: 1\nname: hello\nsteps: [{id: a, run: echo}]\n")
    with server.client() as client:
        listed = client.get("/plans").json()
        assert [p["name"] for p in listed["plans"]] == ["lines"]
        problems = {p["file"].rsplit("/", 1)[1]: p["error"] for p in listed["problems"]}
        assert set(problems) == {"broken.yaml", "hello.yaml", "again.yaml"}
        assert "plan name 'hello' is given by 2 files" in problems["hello.yaml"]
        assert "broken.yaml:5:5" in problems["broken.yaml"]
        (server.plans / "nested" / "again.yaml").unlink()
        (server.plans / "broken.yaml").unlink()
        listed = client.get("/plans").json()
        assert [p["name"] for p in listed["plans"]] == ["hello", "lines"] and listed["problems"] == []
        hello = listed["plans"][0]
        assert hello["inputs"]["who"] == {"type": "string", "default": "world", "description": "Whom to greet",
                                          "required": False}
        assert hello["workflows"] == [{"name": "main", "description": None, "default": True, "inputs": {}}]
        assert hello["runnable"] is True and hello["refused"] is None
        assert client.get("/plans/hello").json() == hello
        assert client.get("/plans/helo").json() == {
            "error": "no plan 'helo' in the served folders (did you mean 'hello'?) (GET /api/v1/plans lists them)"}

        done = client.post("/runs", json={"plan": "hello", "inputs": {"who": "api", "shout": True}, "wait": True})
        assert done.status_code == 200
        run = done.json()
        assert run["status"] == "success" and run["inputs"] == {"who": "api", "shout": True}
        assert {s["step"]: s["status"] for s in run["steps"]} == {
            "greet": "success", "count": "success", "shout": "success", "report": "success", "show": "success"}
        assert run["held"] is True and run["error"] is None
        assert client.get(f"/runs/{run['id']}/steps/shout/log").text == "HELLO, API\n"
        assert client.get(f"/runs/{run['id']}/steps/greet/log", params={"tail": 1}).text == "hello, api\n"
        assert client.get(f"/runs/{run['id']}/steps/nope/log").json()["error"].startswith(
            f"run {run['id']} has no step 'nope'")
        assert client.get("/runs/20000101-000000-abcdef").status_code == 404

        started = client.post("/runs", json={"plan": "lines", "inputs": {"count": 3}})
        assert started.status_code == 202
        body = started.json()
        assert started.headers["location"] == f"/api/v1/runs/{body['id']}"
        assert body["events"] == f"/api/v1/runs/{body['id']}/events"
        recorded = client.get(f"/runs/{body['id']}").json()  # recorded before the answer
        assert recorded["plan"] == "lines" and recorded["status"] in ("running", "success")
        helpers.wait_for(lambda: client.get(f"/runs/{body['id']}").json()["status"] == "success", timeout=60)
        assert [r["id"] for r in client.get("/runs", params={"limit": 2}).json()["runs"]] == [body["id"], run["id"]]
        cli = json.loads(server.glmtui("runs", "--json").stdout)
        assert [r["id"] for r in cli[:2]] == [body["id"], run["id"]]

        assert client.post("/runs", json={"plan": "lines", "inputs": {"count": "x"}}).json() == {
            "error": "inputs field 'count' must be an integer, not 'x'"}
        assert client.post("/runs", json={"plan": "lines", "workflow": "other"}).json()["error"] == \
            "body field 'workflow': plan lines has no workflow 'other'; its workflows are main"


def test_a_run_followed_over_sse_with_a_reconnect_misses_nothing_and_gets_nothing_twice(serve):
    server = serve()
    server.plan("lines", LINES)
    with server.client() as client:
        run_id = client.post("/runs", json={"plan": "lines", "inputs": {"count": 60}}).json()["id"]
        seen: list[tuple[int, dict]] = []
        with client.stream("GET", f"/runs/{run_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for seq, event in events(response):
                seen.append((seq, event))
                if sum(len(e.get("lines", [])) for _, e in seen) >= 10:
                    break  # the client goes away in the middle of the step
        assert seen[-1][1]["event"] != "run_finished"
        with client.stream("GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": str(seen[-1][0])}) as response:
            seen += list(events(response))
        numbers = [seq for seq, _ in seen]
        assert numbers == list(range(1, len(numbers) + 1)), "every event once, in order"
        kinds = [event["event"] for _, event in seen]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and seen[-1][1]["status"] == "success"
        lines = [line for _, event in seen if event["event"] == "output" for line in event["lines"]]
        assert lines == [f"line {n}" for n in range(1, 61)]
        assert all(event["step"] == "print" and event["stream"] == "stdout"
                   for _, event in seen if event["event"] == "output")

        again = client.get(f"/runs/{run_id}/events", params={"after": numbers[-3]})
        assert [seq for seq, _ in events(again)] == numbers[-2:]
        assert client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": str(numbers[-1])}).status_code == 204
        assert client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "x"}).status_code == 400
    assert server.stop() == 130

    later = serve(folder=server.folder)  # a new process: the run is told from its records
    with later.client() as client:
        replayed = list(events(client.get(f"/runs/{run_id}/events")))
        assert [seq for seq, _ in replayed] == list(range(1, len(replayed) + 1))
        assert [e["event"] for _, e in replayed] == ["run_started", "step_started", "output", "step_finished",
                                                      "run_finished"]
        assert replayed[2][1]["lines"] == [f"line {n}" for n in range(1, 61)] and replayed[2][1]["stream"] == "log"
        assert replayed[-1][1]["status"] == "success"
        tail = list(events(client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "3"})))
        assert [seq for seq, _ in tail] == [4, 5]
        assert client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "5"}).status_code == 204
        assert client.get(f"/runs/{run_id}").json()["held"] is False


def test_cancel_and_resume(serve, env_name):
    server = serve()
    server.plan("sleeper", """
        version: 1
        name: sleeper
        env: {image: glmtui/busybox:latest}
        steps:
          - id: wait
            run: sleep 120
    """)
    server.plan("resumable", f"""
        version: 1
        name: resumable
        env: {{name: {env_name}, image: glmtui/busybox:latest}}
        steps:
          - id: first
            run: echo first >> /workspace/first.txt
          - id: second
            needs: [first]
            run: test -f /workspace/ready
    """)
    with server.client() as client:
        run_id = client.post("/runs", json={"plan": "sleeper"}).json()["id"]
        container = f"run-{run_id}"
        def sleeping() -> bool:
            ps = helpers.docker("exec", helpers.container_of(container), "ps", "-o", "args", check=False)
            return ps.returncode == 0 and "sleep 120" in ps.stdout  # (not before the container runs)

        helpers.wait_for(sleeping, timeout=60, what="the step's command")
        cancelled = client.post(f"/runs/{run_id}/cancel", json={"wait": True})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert not helpers.container_exists(container)
        assert client.post(f"/runs/{run_id}/cancel").json() == {"error": f"run {run_id} has ended already (cancelled)"}

        failed = client.post("/runs", json={"plan": "resumable", "wait": True}).json()
        assert failed["status"] == "failure"
        assert client.post(f"/runs/{failed['id']}/resume", json={"jobs": 2}).status_code == 400
        made = client.post(f"/envs/{env_name}/exec", json={"command": ["touch", "/workspace/ready"]}).json()
        assert made["exit_code"] == 0
        resumed = client.post(f"/runs/{failed['id']}/resume", json={"wait": True}).json()
        assert resumed["status"] == "success" and resumed["id"] != failed["id"]
        steps = {s["step"]: s for s in resumed["steps"]}
        assert steps["first"]["reason"] == f"reused from run {failed['id']}"
        cat = client.post(f"/envs/{env_name}/exec", json={"command": ["cat", "/workspace/first.txt"]}).json()
        assert cat["stdout"] == "first\n", "the step that succeeded did not run again"
        (server.plans / "resumable.yaml").unlink()
        assert client.post(f"/runs/{failed['id']}/resume").json() == {
            "error": f"run {failed['id']} is of plan 'resumable', which is not in the served folders"}


def test_environments_and_exec(serve, env_name, busybox_image):
    server = serve()
    with server.client() as client:
        created = client.post("/envs", json={"name": env_name, "image": busybox_image, "memory": "256m",
                                             "environment": {"GREETING": "hi"}})
        assert created.status_code == 201, created.text
        assert created.json()["name"] == env_name and created.json()["status"] == "running"
        assert created.headers["location"] == f"/api/v1/envs/{env_name}"
        assert helpers.docker_inspect(env_name)["HostConfig"]["Memory"] == 256 * 1024 * 1024
        assert client.post("/envs", json={"name": env_name, "image": busybox_image}).status_code == 409
        assert env_name in [e["name"] for e in client.get("/envs").json()["environments"]]
        assert client.get(f"/envs/{env_name}").json()["status"] == "running"
        assert client.post("/envs", json={"name": "Bad Name"}).status_code == 400
        refused = client.post("/envs", json={"name": helpers.unique_name(), "network": "host"})
        assert refused.status_code == 422 and "serve.allow" in refused.json()["error"]

        result = client.post(f"/envs/{env_name}/exec", json={
            "command": ["sh", "-c", "echo $GREETING $0; echo oops >&2; exit 3", "there"]}).json()
        assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "hi there\n", "oops\n")
        assert not result["stdout_truncated"] and result["reason"] is None
        big = client.post(f"/envs/{env_name}/exec", json={"command": ["sh", "-c", "seq 1 400000"]}).json()
        assert big["exit_code"] == 0 and big["stdout_truncated"] is True
        assert big["stdout"].startswith("1\n2\n") and big["stdout"].endswith("399999\n400000\n")
        assert f"left out here; all of it is in the log of command {big['exec_id']} (glmtui logs {env_name})" \
            in big["stdout"]
        assert len(big["stdout"]) < 1_100_000
        timed = client.post(f"/envs/{env_name}/exec", json={"command": ["sleep", "30"], "timeout": 0.5}).json()
        assert timed["reason"] == "timed out after 0.5s; its processes were killed"
        missing = client.post(f"/envs/{env_name}/exec", json={"command": ["no-such-program"]}).json()
        assert missing["exit_code"] == 127
        assert client.post(f"/envs/{env_name}/exec", json={"command": []}).json() == {
            "error": "body field 'command' must have at least 1 item"}
        assert client.post(f"/envs/{env_name}/exec", json={"command": "ls"}).status_code == 400
        assert client.post("/envs/nothing-here/exec", json={"command": ["true"]}).status_code == 404
        logged = server.glmtui("logs", env_name)
        assert "hi there" in logged.stdout and "400000" in logged.stdout

        stopped = client.post(f"/envs/{env_name}/stop", json={"timeout": 1})
        assert stopped.json()["status"] == "exited"
        assert client.post(f"/envs/{env_name}/exec", json={"command": ["true"]}).status_code in (409, 422)
        assert client.post(f"/envs/{env_name}/start").json()["status"] == "running"
        removed = client.delete(f"/envs/{env_name}", params={"volumes": "true"})
        assert removed.json() == {"name": env_name, "removed": True, "volume_removed": True}
        assert not helpers.container_exists(env_name) and not helpers.volume_exists(env_name)
        assert client.delete(f"/envs/{env_name}").status_code == 404


def test_the_servers_policy_decides_host_access_never_the_plan(serve, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("from the host\n")
    plan = f"""
        version: 1
        name: reads-host
        permissions: {{host_paths: [{{path: {shared}}}]}}
        env: {{image: glmtui/busybox:latest, user: "1000:1000", mounts: ["{shared}:/data:ro"]}}
        steps:
          - id: show
            run: cat /data/data.txt
    """
    strict = serve()
    strict.plan("reads-host", plan)
    line = f"plan reads-host asks for host access that the server's policy (serve.allow) does not grant: read {shared}"
    with strict.client() as client:
        listed = client.get("/plans/reads-host").json()
        assert listed["runnable"] is False and listed["refused"] == line
        before = database_counts(strict)
        refused = client.post("/runs", json={"plan": "reads-host", "wait": True})
        assert refused.status_code == 422 and refused.json() == {"error": line}
        assert database_counts(strict) == before, "nothing ran, nothing was recorded"

    granting = serve(config={"serve": {"allow": {"host_paths": [{"path": str(tmp_path)}]}}})
    assert f"plans from {granting.plans} with read {tmp_path} (serve.allow)" in granting.output()
    granting.plan("reads-host", plan)
    granting.plan("host-net", """
        version: 1
        name: host-net
        permissions: {network_host: true}
        env: {image: glmtui/busybox:latest, network: host}
        steps: [{id: a, run: echo}]
    """)
    with granting.client() as client:
        run = client.post("/runs", json={"plan": "reads-host", "wait": True}).json()
        assert run["status"] == "success"
        assert client.get(f"/runs/{run['id']}/steps/show/log").text == "from the host\n"
        assert client.post("/runs", json={"plan": "host-net"}).json() == {
            "error": "plan host-net asks for host access that the server's policy (serve.allow) does not grant: "
                     "the host's network"}


def _model_config(model_server) -> dict:
    return {"default_provider": "test", "approval": "ask",
            "providers": {"test": {"base_url": model_server.base_url, "api_key_env": KEY_ENV, "model": "test-model"}}}


def test_approvals_of_a_runs_agent_are_answered_through_the_api(serve, model_server):
    server = serve(config=_model_config(model_server), env={KEY_ENV: new_key()})
    server.plan("fixer", """
        version: 1
        name: fixer
        env: {image: glmtui/busybox:latest}
        steps:
          - id: fix
            agent:
              prompt: Make a file.
              approval: ask
    """)
    with server.client() as client:
        refused = client.post("/runs", json={"plan": "fixer"})
        assert refused.status_code == 422
        assert refused.json()["error"].startswith("plan fixer has agent steps that may ask a person before a tool call (")
        assert 'send "approvals": true and answer them (POST /api/v1/runs/ID/approvals/APPROVAL_ID)' in \
            refused.json()["error"]

        model_server.script(tool_calls([("c1", "bash", {"command": "echo made > /workspace/made"})]), text("Done."))
        run_id = client.post("/runs", json={"plan": "fixer", "approvals": True}).json()["id"]
        seen = []
        with client.stream("GET", f"/runs/{run_id}/events") as response:
            for _seq, event in events(response):
                seen.append(event)
                if event["event"] == "approval_asked":
                    assert event["tool"] == "bash" and event["subject"] == "echo made > /workspace/made"
                    shown = client.get(f"/runs/{run_id}").json()["approvals"]
                    assert shown == [{"approval_id": event["approval_id"], "step": "fix", "tool": "bash",
                                      "subject": event["subject"], "pattern": event["pattern"]}]
                    assert client.post(f"/runs/{run_id}/approvals/nope", json={"answer": "yes"}).status_code == 404
                    assert client.post(f"/runs/{run_id}/approvals/{event['approval_id']}",
                                       json={"answer": "maybe"}).status_code == 400
                    answered = client.post(f"/runs/{run_id}/approvals/{event['approval_id']}", json={"answer": "yes"})
                    assert answered.json() == {"id": run_id, "approval_id": event["approval_id"], "answer": "yes"}
        kinds = [e["event"] for e in seen]
        assert "approval_answered" in kinds and kinds[-1] == "run_finished" and seen[-1]["status"] == "success"
        result = next(e for e in seen if e["event"] == "tool_result")
        assert result["status"] == "ok" and result["exit_code"] == 0


def test_agents_and_executions(serve, model_server, tmp_path):
    server = serve(config=_model_config(model_server), env={KEY_ENV: new_key()})
    agent = write_agent(tmp_path, """
        version: 1
        name: helper
        prompt: Say hello.
        env: {image: glmtui/busybox:latest}
        approval: auto
        schedule: "0 3 * * *"
    """)
    asker = write_agent(tmp_path, """
        version: 1
        name: asker
        prompt: Ask first.
        env: {image: glmtui/busybox:latest}
        approval: ask
    """, name="asker.yaml")
    assert server.glmtui("agents", "apply", str(agent), str(asker)).returncode == 0
    with server.client() as client:
        agents = client.get("/agents").json()["agents"]
        assert [a["name"] for a in agents] == ["asker", "helper"]
        assert agents[1]["schedule"] == "0 3 * * *" and agents[1]["next_run"] is not None
        assert client.get("/agents/helpr").json()["error"].startswith("no agent 'helpr' (did you mean 'helper'?)")

        model_server.script(text("Hello there.", usage=(5, 2)))
        done = client.post("/agents/helper/run", json={"wait": True})
        assert done.status_code == 200
        execution = done.json()
        assert execution["status"] == "success" and execution["result"] == "Hello there."
        assert execution["trigger"] == "manual" and execution["input_tokens"] == 5
        shown = client.get(f"/executions/{execution['id']}").json()
        assert shown["id"] == execution["id"] and "Hello there." in shown["transcript"]
        assert [e["id"] for e in client.get("/agents/helper/executions").json()["executions"]] == [execution["id"]]
        assert [e["id"] for e in client.get("/executions", params={"limit": 1}).json()["executions"]] == [execution["id"]]
        detail = client.get("/agents/helper").json()
        assert len(detail["next_runs"]) == 3 and detail["executions"][0]["id"] == execution["id"]

        model_server.script(text("Later.", delay=0.5))
        queued = client.post("/agents/helper/run").json()
        assert queued["agent"] == "helper" and queued["events"] == f"/api/v1/runs/{queued['id']}/events"
        again = client.post("/agents/helper/run")
        assert again.status_code == 409 and "still runs" in again.json()["error"]
        kinds = [e["event"] for _, e in events(client.get(f"/runs/{queued['id']}/events"))]
        assert kinds[-1] == "execution_finished"

        refused = client.post("/agents/asker/run")
        assert refused.status_code == 422 and "may ask a person before a tool call" in refused.json()["error"]

        assert client.post("/agents/helper/pause").json() == {"name": "helper", "status": "paused", "changed": True}
        assert client.post("/agents/helper/pause").json()["changed"] is False
        assert client.get("/agents/helper").json()["status"] == "paused"
        assert client.post("/agents/helper/resume").json() == {"name": "helper", "status": "active", "changed": True}


def test_sigterm_cancels_the_runs_the_clients_follow_and_exits_130(serve):
    server = serve()
    server.plan("lines", LINES)
    with server.client() as client:
        run_id = client.post("/runs", json={"plan": "lines", "inputs": {"count": 2000, "pause": "0.1"}}).json()["id"]
        sent, last = False, None
        with client.stream("GET", f"/runs/{run_id}/events") as response:
            for _seq, event in events(response):
                if event["event"] == "output" and not sent:
                    server.proc.send_signal(signal.SIGTERM)
                    sent = True
                last = event
        assert last["event"] == "run_finished" and last["status"] == "cancelled"
    assert server.wait_exit() == 130
    assert not helpers.container_exists(f"run-{run_id}")
    record = json.loads(server.glmtui("runs", "show", run_id, "--json").stdout)
    assert record["status"] == "cancelled"
    assert "stopping: cancelling 1 running run" in server.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/api/v1/health", timeout=5)
