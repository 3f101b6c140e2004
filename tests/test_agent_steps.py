"""llm and agent steps in real runs: the real engine, a scripted model server (real HTTP and SSE),
the real openai SDK, and the `glmtui` command line.

The provider is configured per test in a project folder's `.glmtui/config.yaml` (provider
`test`, its key in TEST_MODEL_KEY); runs start from that folder, so the config is found.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

import helpers
from model_server import ModelServer, drip, error, text, tool_calls
from plan_helpers import (
    LiveRun,
    containers,
    json_lines,
    lines_of,
    make_store,
    of,
    run_plan,
    unique_name,
    write_plan,
)

pytestmark = pytest.mark.docker

KEY_ENV = "TEST_MODEL_KEY"


def new_key() -> str:
    return f"sk-live-{uuid.uuid4().hex[:20]}"


def project(folder: Path, server: ModelServer, **settings: Any) -> Path:
    """A project folder whose config makes `test` (the scripted server) the default provider."""
    config = {
        "default_provider": "test",
        "providers": {"test": {"base_url": server.base_url, "api_key_env": KEY_ENV, "model": "test-model",
                               "anthropic_base_url": "http://anthropic.invalid/api"}},
        **settings,
    }
    (folder / ".glmtui").mkdir(parents=True, exist_ok=True)
    (folder / ".glmtui" / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def data_dir() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "glmtui"


def between(events: list[Any], step: str) -> list[Any]:
    """The events from step_started to step_finished of `step` (in-process events)."""
    kinds = [(e.kind, getattr(e, "step", None)) for e in events]
    start = kinds.index(("step_started", step))
    end = kinds.index(("step_finished", step))
    return events[start:end + 1]


def assert_no_key(key: str, *texts: str) -> None:
    for text_ in texts:
        assert key not in text_


def assert_key_not_on_disk(key: str, run_id: str) -> None:
    files = [p for p in (data_dir() / "runs" / run_id).rglob("*") if p.is_file()]
    assert files, "the run has step logs"
    for path in files:
        assert key.encode() not in path.read_bytes(), path
    database = sorted(data_dir().glob("glmtui.sqlite3*"))
    assert database
    for path in database:
        data = path.read_bytes()
        assert key.encode() not in data, path.name
        assert key.encode("utf-16-le") not in data, path.name


# --------------------------------------------------------------------------- llm


LLM_PLAN = """
    version: 1
    name: llm-text
    inputs:
      who: {default: Ada}
    env: {image: glmtui/busybox:latest}
    steps:
      - id: ask
        llm:
          prompt: "Say hello to ${inputs.who}."
          system: Be brief.
          temperature: 0.2
      - id: show
        run: |
          echo "model said: ${steps.ask.outputs.text}"
          echo "tokens: ${steps.ask.usage.input_tokens}/${steps.ask.usage.output_tokens}"
"""


async def test_llm_text_reaches_a_later_step_with_usage_and_a_log(engine, busybox_image, model_server, tmp_path):
    key = new_key()
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, LLM_PLAN)
    model_server.script(text("Hello, Ada!\nNice to meet you.", reasoning="A greeting.", usage=(21, 7), pieces=5))
    store = make_store(tmp_path / "data")
    outcome = await run_plan(engine, plan, store=store, extra_env={KEY_ENV: key})
    assert outcome.error is None and outcome.status == "success", outcome.summary()
    assert outcome.lines("show") == ["model said: Hello, Ada!", "Nice to meet you.", "tokens: 21/7"]

    request = model_server.requests[0]
    assert request.headers["Authorization"] == f"Bearer {key}"
    assert request.body["model"] == "test-model" and request.body["temperature"] == 0.2
    assert request.body["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Say hello to Ada."}]
    assert "response_format" not in request.body

    # tokens (thinking apart), then usage, inside the step's own events
    step_events = between(outcome.events, "ask")
    kinds = [e.kind for e in step_events]
    assert kinds[0] == "step_started" and kinds[-1] == "step_finished"
    tokens = [e for e in step_events if e.kind == "token"]
    assert "".join(t.text for t in tokens if t.channel == "text") == "Hello, Ada!\nNice to meet you."
    assert "".join(t.text for t in tokens if t.channel == "reasoning") == "A greeting."
    assert kinds.index("usage") > max(i for i, k in enumerate(kinds) if k == "token")
    usage = next(e for e in step_events if e.kind == "usage")
    assert (usage.input_tokens, usage.output_tokens, usage.total_input_tokens) == (21, 7, 21)
    assert not [e for e in step_events if e.kind == "output"], "the reply is shown by its tokens, not twice"
    finished = outcome.finished("ask")
    assert finished.outputs == {"text": "Hello, Ada!\nNice to meet you."}

    record = store.run(outcome.run_id)
    ask = next(s for s in record.steps if s.step == "ask")
    assert ask.usage == {"input_tokens": 21, "output_tokens": 7}
    log = store.log_file(outcome.run_id, "ask").read_text()
    assert "> Say hello to Ada." in log and "Hello, Ada!\nNice to meet you.\n" in log
    assert "~ A greeting." in log and "tokens: 21 in / 7 out" in log


SCHEMA_PLAN = """
    version: 1
    name: llm-json
    env: {image: glmtui/busybox:latest}
    steps:
      - id: good
        llm:
          prompt: Describe the release.
          json_schema:
            type: object
            required: [name, count]
            properties:
              name: {type: string}
              count: {type: integer}
      - id: not_json
        needs: [good]
        continue_on_error: true
        llm:
          prompt: Again.
          json_schema: {type: object}
      - id: wrong_shape
        needs: [not_json]
        continue_on_error: true
        llm:
          prompt: Once more.
          json_schema: {type: object, required: [count], properties: {count: {type: integer}}}
      - id: refused
        needs: [wrong_shape]
        continue_on_error: true
        llm: {prompt: And again.}
      - id: use
        needs: [refused]
        run: echo "${steps.good.outputs.json.name} has ${steps.good.outputs.json.count}; shape ${steps.wrong_shape.outputs.json.count}"
"""


async def test_llm_json_schema_parsed_checked_and_used(engine, busybox_image, model_server, tmp_path):
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, SCHEMA_PLAN)
    model_server.script(
        text('```json\n{"name": "v1.2", "count": 3}\n```', usage=(30, 9)),
        text("Sure! Here it is: {name: v1}", usage=(10, 4)),
        text('{"count": "three"}', usage=(10, 4)),
        error(404, code="1211", message="Unknown Model"),
    )
    outcome = await run_plan(engine, plan, extra_env={KEY_ENV: new_key()})
    assert outcome.error is None, outcome.summary()
    assert outcome.statuses() == {"good": "success", "not_json": "failure", "wrong_shape": "failure",
                                  "refused": "failure", "use": "success"}
    assert outcome.lines("use") == ["v1.2 has 3; shape three"]
    good = outcome.finished("good")
    assert good.outputs["json"] == {"name": "v1.2", "count": 3}

    body = model_server.requests[0].body
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]
    assert system["role"] == "system" and '"required": [' in system["content"] and "JSON" in system["content"]

    not_json = outcome.finished("not_json")
    assert not_json.reason.startswith("the answer is not JSON") and "\n" not in not_json.reason
    assert not_json.outputs["text"] == "Sure! Here it is: {name: v1}"
    wrong = outcome.finished("wrong_shape")
    assert wrong.reason == "the answer does not follow json_schema: at $.count: 'three' is not of type 'integer'"
    refused = outcome.finished("refused")
    assert "unknown model or endpoint" in refused.reason and "Unknown Model" in refused.reason
    assert "\n" not in refused.reason and "internal error" not in refused.reason


def test_llm_events_in_json_output_in_order_and_promptly(glmtui, busybox_image, model_server, tmp_path):
    key = new_key()
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, LLM_PLAN)
    model_server.script(drip("one two three four five", interval=0.4, usage=(8, 5)))
    live = LiveRun("--run", str(plan), "--json", "-e", f"{KEY_ENV}={key}", cwd=tmp_path)
    first = live.wait_for("token", step="ask")
    assert first["text"] and not of(live.events, "step_finished", step="ask"), "a token shows while the step runs"
    assert live.finish() == 0, live.stderr
    events = live.events
    names = [(e["event"], e.get("step")) for e in events]
    start, end = names.index(("step_started", "ask")), names.index(("step_finished", "ask"))
    inside = [e["event"] for e in events[start + 1:end]]
    assert set(inside) == {"token", "usage"} and inside[-1] == "usage"
    assert "".join(e["text"] for e in events[start + 1:end] if e["event"] == "token") == "one two three four five"
    assert of(events, "usage", step="ask")[0]["input_tokens"] == 8
    assert lines_of(events, "show") == ["model said: one two three four five", "tokens: 8/5"]
    run_id = events[0]["run_id"]
    shown = json.loads(glmtui("runs", "show", run_id, "--json").stdout)
    ask = next(s for s in shown["steps"] if s["step"] == "ask")
    assert ask["usage"] == {"input_tokens": 8, "output_tokens": 5}
    logged = glmtui("logs", "--run", run_id, "--step", "ask")
    assert "one two three four five" in logged.stdout
    assert_no_key(key, live.stderr, json.dumps(events))


# --------------------------------------------------------------------------- the builtin agent


BUGGY_CALC = "def add(a, b):\n    return a - b\n\n\ndef double(a):\n    return add(a, a)\n"
CALC_TEST = """\
import unittest

from calc import add, double


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_double(self):
        self.assertEqual(double(4), 8)


if __name__ == "__main__":
    unittest.main()
"""

AGENT_PLAN = """
    version: 1
    name: agent-fix
    env:
      image: glmtui/workspace:latest
      copy: [./project:/workspace]
    steps:
      - id: test
        run: python3 -m unittest -q test_calc 2>&1
        continue_on_error: true
      - id: fix
        if: ${steps.test.exit_code != 0}
        agent:
          prompt: |
            The tests fail:
            ${steps.test.stdout | tail(20)}
            Fix the code.
          system: Keep changes small.
          approval: auto
          max_turns: 10
      - id: check
        needs: [fix]
        run: |
          python3 -m unittest -q test_calc
          echo "result=${steps.fix.outputs.result}"
          echo "turns=${steps.fix.turns}"
          cat NOTES.md
      - id: out
        needs: [check]
        copy: {from: "env:/workspace/calc.py", to: ./fixed/calc.py}
"""


def agent_script() -> list[Any]:
    return [
        tool_calls([("c1", "write_file", {"path": "NOTES.md", "content": "add() subtracted\n"})], usage=(100, 20)),
        tool_calls([("c2", "bash", {"command": "python3 -m unittest -q test_calc 2>&1 | tail -n 3"})],
                   content="Let me run the tests.", usage=(150, 25)),
        tool_calls([("c3", "edit_file", {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"})],
                   split=False, usage=(200, 30)),
        text("Fixed add(): it subtracted instead of adding.", usage=(250, 12)),
    ]


def copy_project(folder: Path) -> None:
    (folder / "project").mkdir(parents=True)
    (folder / "project" / "calc.py").write_text(BUGGY_CALC)
    (folder / "project" / "test_calc.py").write_text(CALC_TEST)


def test_agent_fixes_a_project_headless(glmtui, workspace_image, model_server, tmp_path):
    key = new_key()
    project(tmp_path, model_server)
    copy_project(tmp_path)
    plan = write_plan(tmp_path, AGENT_PLAN)
    model_server.script(*agent_script())
    done = glmtui("--run", str(plan), "--json", "-e", f"{KEY_ENV}={key}", cwd=tmp_path, timeout=120)
    events = json_lines(done.stdout)
    assert done.returncode == 0, (done.stderr, [e for e in events if e["event"] != "output"])
    statuses = {e["step"]: e["status"] for e in of(events, "step_finished")}
    assert statuses == {"test": "failure", "fix": "success", "check": "success", "out": "success"}

    calls = of(events, "tool_call", step="fix")
    assert [(c["tool"], c["call_id"]) for c in calls] == [("write_file", "c1"), ("bash", "c2"), ("edit_file", "c3")]
    results = of(events, "tool_result", step="fix")
    assert [(r["tool"], r["status"]) for r in results] == [("write_file", "ok"), ("bash", "ok"), ("edit_file", "ok")]
    assert "FAILED" in results[1]["output"]
    usages = of(events, "usage", step="fix")
    assert [u["total_input_tokens"] for u in usages] == [100, 250, 450, 700]
    fix = of(events, "step_finished", step="fix")[0]
    assert fix["outputs"] == {"result": "Fixed add(): it subtracted instead of adding."}

    check = lines_of(events, "check")
    assert "result=Fixed add(): it subtracted instead of adding." in check
    assert "turns=4" in check and "add() subtracted" in check
    assert (tmp_path / "fixed" / "calc.py").read_text() == BUGGY_CALC.replace("a - b", "a + b")

    # what the model was told: the system prompt with the step's, the prompt, the tool results
    first = model_server.requests[0].body
    assert first["messages"][0]["role"] == "system" and first["messages"][0]["content"].endswith("Keep changes small.")
    assert "The tests fail:" in first["messages"][1]["content"] and "FAILED" in first["messages"][1]["content"]
    assert {t["function"]["name"] for t in first["tools"]} == {"bash", "read_file", "write_file", "edit_file",
                                                               "list_files", "grep"}
    last = model_server.requests[3].body["messages"]
    assert last[-1]["role"] == "tool" and "edited /workspace/calc.py" in last[-1]["content"]

    run_id = events[0]["run_id"]
    shown = json.loads(glmtui("runs", "show", run_id, "--json").stdout)
    assert next(s for s in shown["steps"] if s["step"] == "fix")["usage"] == {"input_tokens": 700, "output_tokens": 87}
    log = glmtui("logs", "--run", run_id, "--step", "fix").stdout
    assert "> The tests fail:" in log
    assert "→ write_file: NOTES.md" in log and "→ bash: python3 -m unittest -q test_calc 2>&1 | tail -n 3" in log
    assert "← ok exit 0" in log and "→ edit_file: calc.py" in log
    assert "Fixed add(): it subtracted instead of adding." in log and "tokens: 700 in / 87 out" in log
    assert_no_key(key, done.stdout, done.stderr, log)


def test_plain_output_of_an_agent_step(glmtui, busybox_image, model_server, tmp_path):
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, """
        version: 1
        name: agent-plain
        env: {image: glmtui/busybox:latest}
        steps:
          - id: fix
            agent: {prompt: make a file, approval: auto}
    """)
    model_server.script(
        tool_calls([("c1", "bash", {"command": "echo made > /tmp/made && ls /tmp/made && exit 0"})],
                   content="I will make it.", usage=(1200, 34)),
        text("Done: the file\nis made.", reasoning="Checking.", usage=(1300, 10)),
    )
    done = glmtui("--run", str(plan), "-e", f"{KEY_ENV}=k-123456", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "fix      | I will make it.\n" in out
    assert "fix      | → bash: echo made > /tmp/made && ls /tmp/made && exit 0\n" in out
    assert "fix      | ← ok exit 0 (" in out and "fix      |   /tmp/made\n" in out
    assert "fix      ~ Checking.\n" in out
    assert "fix      | Done: the file\nfix      | is made.\n" in out
    assert "fix      | tokens: 2,500 in / 44 out\n✔ fix success" in out


RETRY_PLAN = """
    version: 1
    name: model-retries
    env: {image: glmtui/busybox:latest}
    steps:
      - id: fix
        agent: {prompt: look around, approval: auto}
      - id: ask
        needs: [fix]
        llm: {prompt: say hi}
"""


def test_a_retried_model_call_shows_on_the_console_in_the_log_and_as_an_event(
    glmtui, busybox_image, model_server, tmp_path,
):
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, RETRY_PLAN)
    retried = "test: rate limited (HTTP 429, code 1302): slow down: retrying in 1.0 s (attempt 2 of 5)"
    replies = [error(429, code="1302", message="slow down", retry_after=1), text("Nothing to do.", usage=(5, 1)),
               error(429, code="1302", message="slow down", retry_after=1), text("hi", usage=(3, 1))]

    model_server.script(*replies)
    done = glmtui("--run", str(plan), "-e", f"{KEY_ENV}=k-123456", cwd=tmp_path, timeout=60)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"fix      | ↻ {retried}\nfix      | Nothing to do.\n" in done.stdout
    assert f"ask      | ↻ {retried}\nask      | hi\n" in done.stdout
    run_id = done.stdout.split(":", 1)[0].removeprefix("run ")
    for step in ("fix", "ask"):
        log = (data_dir() / "runs" / run_id / f"{step}.log").read_text()
        assert f"↻ {retried}\n" in log, log

    model_server.script(*replies)
    as_json = glmtui("--run", str(plan), "--json", "-e", f"{KEY_ENV}=k-123456", cwd=tmp_path, timeout=60)

    events = json_lines(as_json.stdout)
    assert [{k: e[k] for k in ("step", "message", "delay", "attempt", "attempts")} for e in of(events, "model_retry")] == [
        {"step": step, "message": retried, "delay": 1.0, "attempt": 2, "attempts": 5} for step in ("fix", "ask")]


def test_resume_keeps_an_agent_steps_result_turns_and_usage(glmtui, busybox_image, model_server, tmp_path):
    """A run whose agent step succeeded and whose next step failed, resumed: the agent is not
    asked again, and its turns, usage and result still reach the step that uses them."""
    project(tmp_path, model_server)
    flag = tmp_path / "second-time"
    plan = write_plan(tmp_path, f"""
        version: 1
        name: agent-resume
        env: {{image: glmtui/busybox:latest}}
        steps:
          - id: fix
            agent: {{prompt: look around, approval: auto}}
          - id: report
            needs: [fix]
            copy: {{from: {flag}, to: "env:/tmp/flag"}}
          - id: show
            needs: [report]
            run: echo "turns=${{steps.fix.turns}} in=${{steps.fix.usage.input_tokens}} said=${{steps.fix.outputs.result}}"
    """)
    model_server.script(
        tool_calls([("c1", "bash", {"command": "true"})], usage=(1000, 10)),
        text("All good.", usage=(1100, 5)),
    )
    first = glmtui("--run", str(plan), "--json", "-e", f"{KEY_ENV}=k-123456", cwd=tmp_path, timeout=60)
    assert first.returncode == 1, first.stdout + first.stderr  # no flag file on the host yet
    run_id = json.loads(first.stdout.splitlines()[0])["run_id"]
    asked = len(model_server.requests)
    flag.write_text("now\n")
    again = glmtui("--run", str(plan), "--resume", run_id, "-e", f"{KEY_ENV}=k-123456", cwd=tmp_path, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(model_server.requests) == asked  # the agent was not asked again
    assert "show     | turns=2 in=2100 said=All good.\n" in again.stdout
    record = json.loads(glmtui("runs", "show", run_id, "--json").stdout)
    assert {s["step"]: s.get("turns") for s in record["steps"]}["fix"] == 2


async def test_max_turns_fails_the_step_with_the_last_message(engine, busybox_image, model_server, tmp_path):
    project(tmp_path, model_server, max_turns=2)
    plan = write_plan(tmp_path, """
        version: 1
        name: agent-turns
        env: {image: glmtui/busybox:latest}
        steps:
          - id: fix
            continue_on_error: true
            agent: {prompt: loop forever, approval: auto}
          - id: after
            needs: [fix]
            run: echo "${steps.fix.status} ${steps.fix.turns} ${steps.fix.outputs.result}"
    """)
    model_server.script(
        tool_calls([("c1", "bash", {"command": "true"})], content="Still working.", usage=(5, 1)),
        tool_calls([("c2", "bash", {"command": "true"})], content="Almost there.", usage=(5, 1)),
    )
    outcome = await run_plan(engine, plan, extra_env={KEY_ENV: new_key()})
    assert outcome.error is None, outcome.summary()
    fix = outcome.finished("fix")
    assert fix.status == "failure" and fix.reason == "stopped after 2 turns (max_turns)"
    assert fix.outputs == {"result": "Almost there."}
    assert outcome.lines("after") == ["failure 2 Almost there."]
    assert len(model_server.requests) == 2


async def test_a_model_error_fails_the_agent_step_with_one_line(engine, busybox_image, model_server, tmp_path):
    key = new_key()
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, """
        version: 1
        name: agent-error
        env: {image: glmtui/busybox:latest}
        steps:
          - id: fix
            continue_on_error: true
            agent: {prompt: work, approval: auto}
          - id: after
            needs: [fix]
            run: echo "${steps.fix.status} turns=${steps.fix.turns} [${steps.fix.outputs.result}]"
    """)
    model_server.script(
        tool_calls([("c1", "bash", {"command": "true"})], content="Starting.", usage=(5, 1)),
        error(401, code="1000", message=f"bad key {key}"),
    )
    outcome = await run_plan(engine, plan, extra_env={KEY_ENV: key})
    assert outcome.error is None, outcome.summary()
    fix = outcome.finished("fix")
    assert fix.status == "failure" and "the API key was refused (HTTP 401, code 1000)" in fix.reason
    assert "\n" not in fix.reason and key not in fix.reason and f"check {KEY_ENV}" in fix.reason
    assert outcome.lines("after") == ["failure turns=1 [Starting.]"]
    record = outcome.store.run(outcome.run_id)
    assert next(s for s in record.steps if s.step == "fix").usage == {"input_tokens": 5, "output_tokens": 1}


async def test_cancelling_an_agent_step_stops_the_model_call(engine, busybox_image, model_server, tmp_path):
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, """
        version: 1
        name: agent-cancel
        env: {image: glmtui/busybox:latest}
        steps:
          - id: fix
            agent: {prompt: talk slowly, approval: auto}
    """)
    model_server.script(drip("a b c d e f g h i j k l m n o p", interval=0.3))
    events: list[Any] = []
    task = asyncio.create_task(run_plan(engine, plan, extra_env={KEY_ENV: new_key()}, sink=events.append))
    for _ in range(200):
        if any(e.kind == "token" for e in events):
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e.status for e in events if e.kind == "step_finished"] == ["cancelled"]
    assert events[-1].kind == "run_finished" and events[-1].status == "cancelled"
    for _ in range(50):
        if model_server.requests[0].outcome == "disconnected":
            break
        await asyncio.sleep(0.1)
    assert model_server.requests[0].outcome == "disconnected"


# --------------------------------------------------------------------------- approval


APPROVAL_PLAN = """
    version: 1
    name: agent-ask
    env: {image: glmtui/busybox:latest}
    steps:
      - id: first
        run: echo first
      - id: fix
        needs: [first]
        agent:
          prompt: write a file
"""


def plan_containers() -> set[str]:
    """The containers of this test's plan (the engine may be shared with other work)."""
    return set(containers("label=glmtui.plan=agent-ask"))


def test_approval_ask_needs_yes_before_anything_starts(glmtui, busybox_image, model_server, tmp_path):
    project(tmp_path, model_server)  # the config's approval is the default: ask
    plan = write_plan(tmp_path, APPROVAL_PLAN)
    before_runs = json.loads(glmtui("runs", "--json").stdout)
    before = plan_containers()
    refused = glmtui("--run", str(plan), "-e", f"{KEY_ENV}=k-abcdef", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert lines == [f"glmtui: error: {plan}:7:5: step fix: approval ask (the config's `approval`) needs a person: "
                     "run with --yes, or set approval: auto"]
    assert refused.stdout == ""
    assert plan_containers() == before
    assert json.loads(glmtui("runs", "--json").stdout) == before_runs
    assert model_server.requests == []

    model_server.script(
        tool_calls([("c1", "bash", {"command": "echo approved > /tmp/ok && cat /tmp/ok"})], usage=(3, 1)),
        text("Wrote it.", usage=(4, 1)),
    )
    approved = glmtui("--run", str(plan), "--json", "--yes", "-e", f"{KEY_ENV}=k-abcdef", cwd=tmp_path)
    events = json_lines(approved.stdout)
    assert approved.returncode == 0, approved.stderr
    result = of(events, "tool_result", step="fix")[0]
    assert result["status"] == "ok" and result["output"].startswith("approved")


def test_an_approval_rule_that_asks_needs_yes_too(glmtui, busybox_image, model_server, tmp_path):
    project(tmp_path, model_server, approval="auto",
            approval_rules=[{"tool": "bash", "pattern": "rm *", "mode": "ask"}])
    plan = write_plan(tmp_path, APPROVAL_PLAN)
    refused = glmtui("--run", str(plan), "-e", f"{KEY_ENV}=k-abcdef", cwd=tmp_path)
    assert refused.returncode == 2
    assert "step fix: the approval rule for bash 'rm *' asks a person: run with --yes" in refused.stderr
    project(tmp_path, model_server)  # approval ask by default, no rules: a step's `approval: deny` asks nobody
    deny = write_plan(tmp_path, APPROVAL_PLAN.replace("prompt: write a file", "prompt: look\n          approval: deny"),
                      name="deny.yaml")
    model_server.script(
        tool_calls([("c1", "bash", {"command": "touch /tmp/x"})], usage=(3, 1)),
        text("Could not.", usage=(4, 1)),
    )
    denied = glmtui("--run", str(deny), "--json", "-e", f"{KEY_ENV}=k-abcdef", cwd=tmp_path)
    assert denied.returncode == 0, denied.stderr
    result = of(json_lines(denied.stdout), "tool_result", step="fix")[0]
    assert result["status"] == "denied"


def test_model_steps_are_checked_before_the_run(glmtui, model_server, tmp_path):
    plan = write_plan(tmp_path, LLM_PLAN)
    no_provider = glmtui("--run", str(plan), "-e", f"{KEY_ENV}=k", cwd=tmp_path)
    assert no_provider.returncode == 2
    assert f"{plan}:7:5: step ask: no model provider chosen" in no_provider.stderr
    project(tmp_path, model_server)
    no_key = glmtui("--run", str(plan), cwd=tmp_path, env={KEY_ENV: None})
    assert no_key.returncode == 2
    assert f"{plan}:7:5: step ask: provider test: the variable {KEY_ENV} is not set" in no_key.stderr
    assert model_server.requests == []


# --------------------------------------------------------------------------- a coding CLI as the agent


FAKE_AGENT = r"""#!/bin/sh
for last; do :; done
echo "args: $# prompt: $last"
if [ -n "$OPENAI_API_KEY" ]; then echo "key is set"; fi
echo "key: $OPENAI_API_KEY and $ANTHROPIC_AUTH_TOKEN"
echo "to stderr: $OPENAI_API_KEY" >&2
echo "urls: $OPENAI_BASE_URL $ANTHROPIC_BASE_URL"
echo "model: $ANTHROPIC_MODEL $GLMTUI_MODEL"
echo "env prompt: $GLMTUI_PROMPT"
echo "note=from the agent" >> "$GLMTUI_OUTPUT"
(sleep 309 > /dev/null 2>&1 &)
exit "${FAKE_EXIT:-0}"
"""

COMMAND_PLAN = """
    version: 1
    name: agent-command
    inputs:
      thing: {default: the tests}
    env: {image: glmtui/busybox:latest}
    steps:
      - id: install
        write: {path: /workspace/fake-agent, mode: "0755", content: "${inputs.script}"}
      - id: code
        needs: [install]
        agent:
          driver: fake
          command: /workspace/fake-agent --print
          prompt: "fix ${inputs.thing}"
      - id: broken
        needs: [code]
        continue_on_error: true
        environment: {FAKE_EXIT: "3"}
        agent:
          driver: fake
          command: [/workspace/fake-agent]
          prompt: fail
      - id: after
        needs: [broken]
        run: |
          echo "status ${steps.broken.status} ${steps.broken.exit_code}"
          echo "note ${steps.code.outputs.note}"
          echo "left running: $(ps -o args | grep -c '^sleep 309')"
          echo "${steps.code.outputs.result}" | head -n 3
"""


def test_a_coding_cli_as_the_agent(glmtui, busybox_image, model_server, tmp_path):
    key = new_key()
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, COMMAND_PLAN.replace('"${inputs.script}"', json.dumps(FAKE_AGENT)))
    done = glmtui("--run", str(plan), "-e", f"{KEY_ENV}={key}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "code     | args: 2 prompt: fix the tests\n" in out
    assert "code     | key is set\n" in out
    assert "code     | key: *** and ***\n" in out and "code     | to stderr: ***\n" in out
    assert f"code     | urls: {model_server.base_url} http://anthropic.invalid/api\n" in out
    assert "code     | model: test-model test-model\n" in out
    assert "code     | env prompt: fix the tests\n" in out
    assert "✘ broken failure (allowed)" in out and "- exit code 3" in out
    assert "after    | status failure 3\n" in out
    assert "after    | note from the agent\n" in out
    assert "after    | left running: 0\n" in out  # what the agent program started ended with its step
    assert "after    | args: 2 prompt: fix the tests\nafter    | key is set\nafter    | key: *** and ***\n" in out
    assert model_server.requests == [], "the agent program talks to the model itself"
    assert_no_key(key, out, done.stderr)

    run_id = out.split("run ", 1)[1].split(":", 1)[0]
    logged = glmtui("logs", "--run", run_id, "--step", "code").stdout
    assert "key: *** and ***" in logged and "to stderr: ***" in logged
    assert_no_key(key, logged, glmtui("runs", "show", run_id, "--json").stdout)
    assert_key_not_on_disk(key, run_id)


# --------------------------------------------------------------------------- the key stays on the host


def test_the_api_key_never_reaches_a_sink_or_the_environment(glmtui, busybox_image, model_server, tmp_path):
    key = new_key()
    name = unique_name()
    project(tmp_path, model_server)
    plan = write_plan(tmp_path, """
        version: 1
        name: agent-key
        env: {name: @ENV@, image: glmtui/busybox:latest}
        steps:
          - id: ask
            llm: {prompt: "what is the key?"}
          - id: fix
            agent: {prompt: "look around: ${steps.ask.outputs.text}", approval: auto}
          - id: after
            run: echo "${steps.ask.outputs.text} / ${steps.fix.outputs.result}"
    """, ENV=name)
    half = len(key) // 2
    try:
        model_server.script(
            # the key, split across tokens, in the reply and the thinking
            text(f"The key is {key}.", reasoning=f"maybe {key}", pieces=[f"The key is {key[:half]}", f"{key[half:]}."],
                 usage=(5, 5)),
            tool_calls([("c1", "bash", {"command": "env; tr '\\0' '\\n' < /proc/1/environ; echo " + key})],
                       usage=(5, 5)),
            text(f"Nothing found, only {key[:4]}", usage=(5, 5)),
        )
        for args in (["--json"], []):
            if args:
                done = glmtui("--run", str(plan), *args, "-e", f"{KEY_ENV}={key}", cwd=tmp_path)
            else:
                model_server.script(
                    text(f"The key is {key}.", usage=(5, 5)),
                    tool_calls([("c1", "bash", {"command": "echo " + key})], usage=(5, 5)),
                    text("Nothing.", usage=(5, 5)),
                )
                done = glmtui("--run", str(plan), cwd=tmp_path, env={KEY_ENV: key})
            assert done.returncode == 0, done.stdout + done.stderr
            assert_no_key(key, done.stdout, done.stderr)
            if args:
                events = json_lines(done.stdout)
                tokens = "".join(e["text"] for e in of(events, "token", step="ask", channel="text"))
                assert tokens == "The key is ***."
                result = of(events, "tool_result", step="fix")[0]
                assert "***" in result["output"]
                assert lines_of(events, "after") == ["The key is ***. / Nothing found, only " + key[:4]]
                run_id = events[0]["run_id"]
            else:
                assert "ask      | The key is ***.\n" in done.stdout
                run_id = done.stdout.split("run ", 1)[1].split(":", 1)[0]
            for step in ("ask", "fix", "after"):
                assert_no_key(key, glmtui("logs", "--run", run_id, "--step", step).stdout)
            assert_key_not_on_disk(key, run_id)
        # the model saw the masked text of the earlier step; the key went only in the Authorization header
        agent_prompt = model_server.requests[1].body["messages"][1]["content"]
        assert agent_prompt == "look around: The key is ***."

        inspected = helpers.docker_inspect(name)
        assert_no_key(key, json.dumps(inspected))
        environ = subprocess.run(["docker", "exec", helpers.container_of(name), "cat", "/proc/1/environ"],
                                 capture_output=True, timeout=30)
        assert environ.returncode == 0 and key.encode() not in environ.stdout
        assert key.encode() not in subprocess.run(["docker", "exec", helpers.container_of(name), "env"],
                                                  capture_output=True, timeout=30).stdout
    finally:
        helpers.remove_quietly(name)


# --------------------------------------------------------------------------- validation and the renderers


@pytest.mark.parametrize("spec, message", [
    ("agent: {prompt: p, driver: claude}", "6:32: driver 'claude' needs command: the agent program to start"),
    ("agent: {prompt: p, command: [claude]}", "6:24: command starts an agent program (driver: NAME); the builtin"),
    ("agent: {prompt: p, driver: claude, command: claude, max_turns: 3}",
     "6:57: max_turns is for the builtin driver; driver 'claude' runs its own agent program"),
    ("agent: {prompt: p, tools: [bash, bsh]}", "6:38: tools[1] must be one of bash, read_file, write_file, edit_file,"
                                              " list_files, grep, not 'bsh' (did you mean 'bash'?)"),
    ("agent: {prompt: p, driver: claude, command: []}", "6:49: command is empty"),
    ("llm: {prompt: p, json_schema: {type: thing}}", "6:35: json_schema is not a valid JSON Schema"),
])
def test_llm_and_agent_specs_are_validated(tmp_path, spec, message):
    from glmtui.plan.model import PlanInvalid
    from glmtui.plan.validate import load_plan

    plan = write_plan(tmp_path, f"version: 1\nname: bad\nenv: {{image: x}}\nsteps:\n  - id: a\n    {spec}\n")
    with pytest.raises(PlanInvalid) as caught:
        load_plan([plan])
    assert any(str(e).split(":", 1)[1].startswith(message) for e in caught.value.errors), caught.value


def test_plain_renderer_shows_agent_events_as_lines():
    from glmtui.events import StepFinished, StepStarted, Token, ToolCall, ToolResult, Usage
    from glmtui.headless import PlainRenderer

    out = io.StringIO()
    render = PlainRenderer(out)
    for event in [
        StepStarted("fix"),
        Token("fix", "Let me ", "reasoning"), Token("fix", "think.\nMore", "reasoning"),
        Token("fix", "I will run "), Token("fix", "the tests.\nThen"),
        ToolCall("fix", "c1", "bash", {"command": "pytest -q\n--maxfail 1"}),
        ToolResult("fix", "c1", "bash", "ok", "1 passed\nline 2\nline 3\nline 4\nexit code 0", 0, 1.234),
        ToolCall("fix", "c2", "bash", {"command": "rm -rf /"}),
        ToolResult("fix", "c2", "bash", "denied", "refused: the user said no", None, 0.0),
        Usage("fix", 1000, 500, 1234, 567),
        Token("fix", "Done, no newline"),
        StepFinished("fix", "success", None, 2.0),
    ]:
        render(event)
    assert out.getvalue().splitlines() == [
        "▶ fix started",
        "fix      ~ Let me think.",
        "fix      ~ More",
        "fix      | I will run the tests.",
        "fix      | Then",
        "fix      | → bash: pytest -q ⏎ --maxfail 1",
        "fix      | ← ok exit 0 (1.2s)",
        "fix      |   1 passed",
        "fix      |   line 2",
        "fix      |   line 3",
        "fix      |   … 1 more line",
        "fix      | → bash: rm -rf /",
        "fix      | ← denied (0.0s): refused: the user said no",
        "fix      | Done, no newline",
        "fix      | tokens: 1,234 in / 567 out",
        "✔ fix success in 2.0s",
    ]


async def test_json_renderer_flushes_tokens_within_a_moment():
    from glmtui.events import Token
    from glmtui.headless import JsonRenderer

    class Counting(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            Counting.flushes += 1
            super().flush()

    out = Counting()
    render = JsonRenderer(out)
    for i in range(1000):
        render(Token("ask", f"t{i} "))
    assert Counting.flushes <= 3, "not one flush per token"
    flushed_before = Counting.flushes
    await asyncio.sleep(0.15)
    assert Counting.flushes > flushed_before, "the last tokens are flushed by a timer"
    assert len(out.getvalue().splitlines()) == 1000


# --------------------------------------------------------------------------- the example plan


def test_the_fix_tests_example_plan(glmtui, workspace_image, model_server, tmp_path):
    """plans/fix-tests.yaml as shipped, with the scripted model fixing plans/examples/buggy."""
    import shutil

    plans = helpers.PROJECT_ROOT / "plans"
    shutil.copy(plans / "fix-tests.yaml", tmp_path / "fix-tests.yaml")
    shutil.copytree(plans / "examples" / "buggy", tmp_path / "examples" / "buggy")
    project(tmp_path, model_server)
    model_server.script(
        tool_calls([("c1", "read_file", {"path": "prices/__init__.py"})], usage=(400, 20)),
        tool_calls([("c2", "edit_file", {"path": "prices/__init__.py",
                                         "old_text": "round(price * percent / 100, 2)",
                                         "new_text": "round(price * (100 - percent) / 100, 2)"})], usage=(500, 30)),
        tool_calls([("c3", "bash", {"command": "python3 -m unittest discover -s tests 2>&1 | tail -n 1"})],
                   usage=(600, 10)),
        text("apply_discount returned the discount instead of the discounted price; fixed.", usage=(700, 15)),
    )
    done = glmtui("--run", str(tmp_path / "fix-tests.yaml"), "--json", "-e", f"{KEY_ENV}=k-example",
                  cwd=tmp_path, timeout=120)
    events = json_lines(done.stdout)
    statuses = {e["step"]: e["status"] for e in of(events, "step_finished")}
    assert done.returncode == 0, (done.stderr, statuses)
    assert statuses == {"test": "failure", "fix": "success", "retest": "success", "report": "success",
                        "save": "success"}
    assert "FAILED (failures=3)" in "\n".join(lines_of(events, "test"))
    assert [r["status"] for r in of(events, "tool_result", step="fix")] == ["ok", "ok", "ok"]
    assert of(events, "tool_result", step="fix")[2]["output"].startswith("OK")
    report = (tmp_path / "out" / "fix-tests-report.md").read_text()
    assert "- tests before: failure" in report and "- tests after: success" in report
    assert "- agent: success, 4 turns, 2200 tokens in, 75 out" in report
    assert "apply_discount returned the discount instead of the discounted price; fixed." in report
    assert (tmp_path / "examples" / "buggy" / "prices" / "__init__.py").read_text() == (
        plans / "examples" / "buggy" / "prices" / "__init__.py").read_text(), "the host's copy is not touched"
