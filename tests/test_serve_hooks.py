"""Webhooks of `glmtui serve` (a real serve, a plain HTTP client): a good, a bad and a replayed
signature, in GitHub's form and with a signed timestamp; no token needed; the body reaching the
plan as its input `payload` and an agent as ${env.GLMTUI_HOOK_PAYLOAD}; a hook whose secret is
not set stops serve at start."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import httpx2 as httpx
import pytest

import helpers
from agent_helpers import KEY_ENV, new_key, write_agent
from model_server import text
from serve_helpers import Serve, database_counts

pytestmark = pytest.mark.docker

SECRET = "s3cret-of-the-hook-" + uuid.uuid4().hex


def github(body: bytes, secret: str = SECRET, delivery: str | None = None) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={signature}", "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json"}


def stamped(body: bytes, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    signature = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Glmtui-Signature": f"t={stamp},v1={signature}", "Content-Type": "application/json"}


@pytest.fixture
def server(tmp_path, busybox_image, model_server):
    server = Serve(tmp_path / "serve", config={
        "serve": {"hooks": {
            "push": {"plan": "on-push", "secret_env": "HOOK_SECRET", "inputs": {"label": "ci"}},
            "triage": {"agent": "triager", "secret_env": "HOOK_SECRET"},
            "nopayload": {"plan": "no-payload", "secret_env": "HOOK_SECRET"},
        }},
        "default_provider": "test",
        "providers": {"test": {"base_url": model_server.base_url, "api_key_env": KEY_ENV, "model": "test-model"}},
    }, env={"HOOK_SECRET": SECRET, KEY_ENV: new_key()})
    server.plan("on-push", """
        version: 1
        name: on-push
        inputs:
          payload: {type: object}
          label: {type: string}
        env: {image: glmtui/busybox:latest}
        steps:
          - id: show
            run: echo "${inputs.label} ${inputs.payload.ref} by ${inputs.payload.pusher.name}"
    """)
    server.plan("no-payload", "version: 1\nname: no-payload\nenv: {image: glmtui/busybox:latest}\nsteps: [{id: a, run: echo}]\n")
    yield server
    server.kill()


def test_signed_deliveries_start_the_plan_and_bad_or_replayed_ones_do_nothing(server):
    assert "webhooks nopayload (plan no-payload), push (plan on-push), triage (agent triager)" in server.output()
    body = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "ada"}}).encode()
    anonymous = httpx.Client(base_url=server.url + "/api/v1", timeout=60)
    with server.client() as client:
        delivery = str(uuid.uuid4())
        accepted = anonymous.post("/hooks/push", content=body, headers=github(body, delivery=delivery))
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["id"]
        assert accepted.json() == {"id": run_id, "hook": "push", "plan": "on-push",
                                   "events": f"/api/v1/runs/{run_id}/events"}
        helpers.wait_for(lambda: client.get(f"/runs/{run_id}").json()["status"] == "success", timeout=60)
        assert client.get(f"/runs/{run_id}/steps/show/log").text == "ci refs/heads/main by ada\n"
        assert client.get(f"/runs/{run_id}").json()["inputs"]["payload"] == json.loads(body)

        before = database_counts(server)
        replayed = anonymous.post("/hooks/push", content=body, headers=github(body, delivery=delivery))
        assert replayed.status_code == 409
        assert replayed.json() == {"error": "hook push: this delivery was accepted before (a replay): refused"}
        new_id_same_body = anonymous.post("/hooks/push", content=body, headers=github(body))
        assert new_id_same_body.status_code == 409, "the same signed body again is a replay, whatever its id"
        bad = anonymous.post("/hooks/push", content=body, headers=github(body, secret="wrong"))
        assert bad.status_code == 401
        assert bad.json()["error"] == "the signature does not match the body (HMAC-SHA256 with the hook's secret)"
        tampered = anonymous.post("/hooks/push", content=body.replace(b"ada", b"eve"), headers=github(body))
        assert tampered.status_code == 401
        unsigned = anonymous.post("/hooks/push", content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401 and "the delivery is not signed" in unsigned.json()["error"]
        assert anonymous.post("/hooks/nope", content=body, headers=github(body)).status_code == 404
        old = stamped(body, at=time.time() - 3600)
        stale = anonymous.post("/hooks/push", content=body, headers=old)
        assert stale.status_code == 401 and "more than serve.hook_window (300s)" in stale.json()["error"]
        assert database_counts(server) == before, "nothing ran, nothing was recorded"

        second = json.dumps({"ref": "refs/tags/v1", "pusher": {"name": "bob"}}).encode()
        now = time.time()
        fresh = anonymous.post("/hooks/push", content=second, headers=stamped(second, at=now))
        assert fresh.status_code == 202
        again = anonymous.post("/hooks/push", content=second, headers=stamped(second, at=now))
        assert again.status_code == 409, "the same signed timestamp and body: a replay"
        later = anonymous.post("/hooks/push", content=second, headers=stamped(second, at=now + 1))
        assert later.status_code == 202, "a new delivery of the same body is signed anew"
        for started in (fresh.json()["id"], later.json()["id"]):
            helpers.wait_for(lambda: client.get(f"/runs/{started}").json()["status"] == "success", timeout=60,
                             what=f"run {started} to succeed")
        form = b"payload=%7B%7D"
        not_json = anonymous.post("/hooks/push", content=form,
                                  headers={**github(form), "Content-Type": "application/x-www-form-urlencoded"})
        assert not_json.status_code == 400 and "must be JSON" in not_json.json()["error"]
        other = json.dumps({"x": 1}).encode()
        missing = anonymous.post("/hooks/nopayload", content=other, headers=github(other))
        assert missing.status_code == 422 and "has no input 'payload'" in missing.json()["error"]
        retried = anonymous.post("/hooks/nopayload", content=other, headers=github(other))
        assert retried.status_code == 422, "a delivery that started nothing may come again"
    log = server.log.read_text()
    assert f"hook push: delivery accepted: plan on-push, run {run_id}" in log
    assert SECRET not in log + server.output() + server.errors()


def test_an_agent_hook_gives_the_agent_the_body(server, model_server, tmp_path):
    agent = write_agent(tmp_path, """
        version: 1
        name: triager
        prompt: "Triage this: ${env.GLMTUI_HOOK_PAYLOAD}"
        env: {image: glmtui/busybox:latest}
        approval: auto
    """)
    assert server.glmtui("agents", "apply", str(agent)).returncode == 0
    model_server.script(text("Triaged."))
    body = json.dumps({"issue": {"title": "It breaks"}}).encode()
    accepted = httpx.post(server.url + "/api/v1/hooks/triage", content=body, headers=github(body), timeout=60)
    assert accepted.status_code == 202
    execution_id = accepted.json()["id"]
    with server.client() as client:
        done = helpers.wait_for(lambda: (e := client.get(f"/executions/{execution_id}").json())["status"] == "success"
                                and e, timeout=60)
    assert done["trigger"] == "hook" and done["result"] == "Triaged."
    prompt = model_server.requests[-1].body["messages"][-1]["content"]
    assert prompt == 'Triage this: {"issue": {"title": "It breaks"}}'


def test_a_hook_whose_secret_is_not_set_stops_serve_at_start(tmp_path, busybox_image):
    refused = Serve(tmp_path / "serve", config={"serve": {"hooks": {"push": {"plan": "x", "secret_env": "NOT_SET_HERE"}}}},
                    wait=False)
    assert refused.wait_exit() == 2
    assert helpers.one_error_line(refused.errors()) == (
        "glmtui: error: serve.hooks.push: the variable NOT_SET_HERE (its secret_env) is not set in serve's "
        "environment (set it, or remove the hook)")
    refused.kill()
    wrong = helpers.run_glmtui("config", "set", "serve.hooks", "{push: {plan: x}}",
                               env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert wrong.returncode == 2
    assert "serve.hooks.push.secret_env: the name of the variable" in helpers.one_error_line(wrong.stderr)
