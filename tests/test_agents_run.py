"""Saved agents at work: applied from YAML, run by hand (`agents run --wait` and in the
background), the token budget, the records `agents executions` shows. Real engine, the scripted
model server (usage on the finishing chunk, split tool calls), the `glmtui` command line."""

from __future__ import annotations

import json

import pytest

from agent_helpers import Cli, new_key, project, write_agent
from helpers import container_exists, wait_for
from model_server import text, tool_calls

pytestmark = pytest.mark.docker

AGENT = """
    version: 1
    name: @NAME@
    description: Count the files and say how many
    prompt: How many files are in /etc?
    env: {image: glmtui/busybox:latest}
    approval: auto
    max_turns: 5
"""


def test_run_by_hand_streams_records_and_keeps_the_key_out(busybox_image, model_server, tmp_path):
    cli = Cli(project(tmp_path, model_server), new_key())
    agent = write_agent(tmp_path, AGENT, NAME="counter")
    applied = cli("agents", "apply", str(agent))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "counter: created (by hand)"
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "ls /etc | wc -l; exit 3"})], usage=(120, 14)),
        text("There are some files in /etc.", usage=(180, 9)),
    )
    result = cli("agents", "run", "counter", "--wait")
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "bash" in out and "There are some files in /etc." in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("execution ") and " of counter: success in " in last
    assert "2 turns · 300 tokens in / 23 out" in last

    [execution] = cli.executions("counter")
    assert execution["status"] == "success" and execution["trigger"] == "manual"
    assert execution["result"] == "There are some files in /etc."
    assert (execution["input_tokens"], execution["output_tokens"], execution["turns"]) == (300, 23, 2)
    assert execution["turn_usage"] == [[120, 14], [180, 9]]
    [call] = execution["tool_calls"]
    assert call["tool"] == "bash" and call["call"] == "ls /etc | wc -l; exit 3"
    assert call["status"] == "error" and call["exit_code"] == 3
    assert execution["started"] <= execution["finished"] and execution["run_id"] == execution["id"]
    shown = cli.execution(execution["id"])
    assert "> How many files are in /etc?" in shown["transcript"]
    assert "There are some files in /etc." in shown["transcript"]
    run = json.loads(cli("runs", "show", execution["run_id"], "--json").stdout)
    assert run["plan"] == "counter" and run["status"] == "success" and run["steps"][0]["step"] == "agent"
    assert not container_exists(f"run-{execution['run_id']}"), "the throw-away environment is gone"
    human = cli("agents", "executions", "show", execution["id"])
    assert "tokens     300 in / 23 out (per turn, in/out: 120/14, 180/9)" in human.stdout
    assert "✘ bash: ls /etc | wc -l; exit 3 · error · exit 3" in human.stdout
    request = model_server.requests[0]
    assert request.headers["Authorization"] == f"Bearer {cli.key}"
    cli.assert_key_nowhere()

