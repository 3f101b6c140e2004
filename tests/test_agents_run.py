"""Saved agents at work: applied from YAML, run by hand (`agents run --wait` and in the
background), the token budget, the records `agents executions` shows. Real engine, the scripted
model server (usage on the finishing chunk, split tool calls), the `glmtui` command line."""

from __future__ import annotations

import json

import pytest

import helpers
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



def test_apply_again_changes_nothing_and_a_changed_file_keeps_the_executions(busybox_image, model_server, tmp_path):
    cli = Cli(project(tmp_path, model_server), new_key())
    agent = write_agent(tmp_path, AGENT, NAME="counter")
    assert cli("agents", "apply", str(agent)).stdout.strip() == "counter: created (by hand)"
    model_server.script(text("Done.", usage=(10, 2)))
    assert cli("agents", "run", "counter", "--wait").returncode == 0
    again = cli("agents", "apply", str(agent))
    assert (again.returncode, again.stdout.strip()) == (0, "counter: unchanged (by hand)")
    agent.write_text(agent.read_text().replace("How many files are in /etc?", "How many files are in /bin?")
                     + 'schedule: "every 2h"\n')
    changed = cli("agents", "apply", str(agent))
    assert changed.returncode == 0 and changed.stdout.startswith("counter: updated (every 2 hours, next ")
    shown = json.loads(cli("agents", "show", "counter", "--json").stdout)
    assert shown["definition"]["prompt"] == "How many files are in /bin?" and shown["schedule"] == "every 2h"
    assert len(shown["next_runs"]) == 3 and shown["next_runs"][1] - shown["next_runs"][0] == 7200
    assert [e["status"] for e in cli.executions("counter")] == ["success"], "the execution is kept"
    assert shown["totals"]["all time"] == {"executions": 1, "input_tokens": 10, "output_tokens": 2}


def test_several_files_are_checked_before_any_is_saved(tmp_path, model_server):
    cli = Cli(project(tmp_path, model_server), new_key())
    good = write_agent(tmp_path, AGENT, "good.yaml", NAME="good")
    bad = write_agent(tmp_path, AGENT.replace("max_turns: 5", "max_turn: 5"), "bad.yaml", NAME="bad")
    result = cli("agents", "apply", str(good), str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert f"{bad}:7:1: unknown key 'max_turn' (did you mean 'max_turns'?)" in result.stderr
    assert cli("agents", "list").stdout.startswith("no saved agents yet")
    both = cli("agents", "apply", str(good), str(write_agent(tmp_path, AGENT, "bad.yaml", NAME="other")))
    assert both.stdout.splitlines() == ["good: created (by hand)", "other: created (by hand)"]


def test_the_budget_stops_an_execution_after_the_turn_that_spent_it(busybox_image, model_server, tmp_path):
    cli = Cli(project(tmp_path, model_server), new_key())
    agent = write_agent(tmp_path, AGENT + "    budget: {tokens: 250}\n", NAME="thrifty")
    assert cli("agents", "apply", str(agent)).returncode == 0
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "echo checked"})], content="Let me look.", usage=(200, 60)),
        text("never asked for", usage=(10, 1)),
    )
    result = cli("agents", "run", "thrifty", "--wait", "--json")
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = events[-1]
    assert finished["event"] == "execution_finished" and finished["status"] == "budget_spent"
    assert finished["reason"] == "token budget spent: 260 of 250 tokens after turn 1, so no further turn was started"
    assert (finished["input_tokens"], finished["output_tokens"], finished["turns"]) == (200, 60, 1)
    assert finished["result"] == "Let me look."
    assert len(model_server.requests) == 1, "no turn after the one that reached the budget"
    [execution] = cli.executions("thrifty")
    assert execution["status"] == "budget_spent" and execution["tool_calls"][0]["exit_code"] == 0
    assert execution["reason"] == finished["reason"]


def test_run_without_wait_runs_to_its_end_in_the_background(busybox_image, model_server, tmp_path):
    cli = Cli(project(tmp_path, model_server), new_key())
    assert cli("agents", "apply", str(write_agent(tmp_path, AGENT, NAME="counter"))).returncode == 0
    model_server.script(text("Background work done.", usage=(30, 4), delay=1.0))
    started = cli("agents", "run", "counter")
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.split()[1]
    assert started.stdout.startswith(f"execution {execution_id} of counter runs in the background (pid ")
    refused = cli("agents", "run", "counter")
    assert refused.returncode == 2
    assert f"agent counter was not started again: execution {execution_id} of it still runs" in refused.stderr
    done = wait_for(lambda: cli.execution(execution_id)["status"] not in ("queued", "running") and cli.execution(execution_id),
                    timeout=60, what="the background execution to end")
    assert done["status"] == "success" and done["result"] == "Background work done."
    log = (cli.data / "glmtui" / "agents.log").read_text()
    assert f"counter: execution {execution_id} started (manual)" in log
    assert f"counter: execution {execution_id} success in " in log
    cli.assert_key_nowhere()


def test_an_agent_that_asks_needs_yes_by_hand(busybox_image, model_server, tmp_path):
    cli = Cli(project(tmp_path, model_server), new_key())
    agent = write_agent(tmp_path, AGENT.replace("approval: auto", "approval: ask"), NAME="asker")
    assert cli("agents", "apply", str(agent)).returncode == 0
    refused = cli("agents", "run", "asker", "--wait")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (
        "glmtui: error: agent asker may ask a person before a tool call (approval: ask) and nobody is there to "
        "answer: run it with --yes, or set approval: auto or deny")
    assert cli.executions() == [], "nothing was recorded"
    model_server.script(tool_calls([("c1", "bash", {"command": "true"})], usage=(5, 1)), text("ok", usage=(6, 1)))
    approved = cli("agents", "run", "asker", "--wait", "--yes")
    assert approved.returncode == 0, approved.stderr
    assert cli.executions()[0]["tool_calls"][0]["status"] == "ok"


def test_ctrl_c_cancels_a_waited_execution_and_cleans_up(busybox_image, model_server, tmp_path):
    import signal

    from plan_helpers import LiveRun

    cli = Cli(project(tmp_path, model_server), new_key())
    assert cli("agents", "apply", str(write_agent(tmp_path, AGENT, NAME="slow"))).returncode == 0
    model_server.script(tool_calls([("c1", "bash", {"command": "sleep 120"})], usage=(5, 1)))
    live = LiveRun("agents", "run", "slow", "--wait", "--json", env=cli.env, cwd=tmp_path)
    call = live.wait_for("tool_call", step="agent")
    assert call["arguments"] == {"command": "sleep 120"}
    container = f"run-{live.run_id}"
    wait_for(lambda: "sleep 120" in helpers.processes(container), timeout=30, what="the tool's command")
    live.signal(signal.SIGINT)
    assert live.finish() == 130
    finished = live.events[-1]
    assert finished["event"] == "execution_finished" and finished["status"] == "cancelled"
    assert cli.executions("slow")[0]["status"] == "cancelled"
    assert not container_exists(container)


def test_the_agents_own_approval_rules_hold_in_its_executions(busybox_image, model_server, tmp_path):
    cli = Cli(project(tmp_path, model_server), new_key())
    agent = write_agent(tmp_path, AGENT + '    approval_rules: [{tool: bash, pattern: "rm *", mode: deny}]\n', NAME="careful")
    assert cli("agents", "apply", str(agent)).returncode == 0
    model_server.script(
        tool_calls([("c1", "bash", {"command": "rm -rf /etc/hosts"}), ("c2", "bash", {"command": "cat /etc/hostname"})],
                   usage=(50, 9)),
        text("I was not allowed to remove it.", usage=(80, 7)),
    )
    assert cli("agents", "run", "careful", "--wait").returncode == 0
    calls = cli.executions("careful")[0]["tool_calls"]
    assert [(c["call"], c["status"]) for c in calls] == [("rm -rf /etc/hosts", "denied"), ("cat /etc/hostname", "ok")]
    told = model_server.requests[1].body["messages"]
    assert any(m["role"] == "tool" and m["content"].startswith("refused: the approval policy") for m in told)
