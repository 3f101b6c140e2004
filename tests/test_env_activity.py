"""`glmtui logs ENV`: what ran in an environment, from the records (plan steps, the chat agent's
tool calls, `glmtui env exec` commands), by time and labelled; `-f` follows what runs now."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
from helpers import child_env, glmtui_argv, run_glmtui
from model_server import ModelServer, text, tool_calls
from plan_helpers import json_lines, write_plan

pytestmark = pytest.mark.docker

PRESET_KEY_VAR = "ZAI_API_KEY"  # the variable of a preset provider: what it holds is masked in exec logs
KEY = "sk-activity-SECRET-7a7a7a"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def activity(env: str, *options: str) -> list[str]:
    shown = run_glmtui("logs", *options, env, env={PRESET_KEY_VAR: None})
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    return shown.stdout.splitlines()


class Lines:
    """The lines a process prints, as they come, each waited for at most `timeout` seconds."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self._queue.put(line) for line in process.stdout], daemon=True).start()

    def next(self, timeout: float = 15) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout}s") from None


async def chat_in(engine: Any, env: str, server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """One chat turn in `env` in which the agent runs `echo from-the-agent`: the conversation's id."""
    from glmtui.agent.session import ChatSession
    from glmtui.config import KEYS, Config
    from glmtui.store import Store

    monkeypatch.setenv("GLMTUI_TEST_KEY", "sk-chat-key")
    settings = {key: spec.default for key, spec in KEYS.items()}
    settings.update({"default_provider": "local", "approval": "auto", "providers.local.base_url": server.base_url,
                     "providers.local.model": "glm-test", "providers.local.api_key_env": "GLMTUI_TEST_KEY"})
    server.script(tool_calls([("call_1", "bash", {"command": "echo from-the-agent"})]), text("Done."))
    store = Store()
    chat = await ChatSession.open(engine=engine, store=store, config=Config(settings, {}), environment=env,
                                  sink=lambda event: None, approver=None)
    try:
        await chat.send("Say something from the environment")
    finally:
        await chat.close()
        store.close()
    return chat.conversation.id


async def test_logs_show_what_ran_in_the_environment(engine, make_env, model_server, tmp_path, monkeypatch):
    env = (await make_env()).name
    ran = run_glmtui("env", "exec", env, "sh", "-c", f'echo from-exec; sleep 0.3; echo "key {KEY}" >&2; exit 3',
                     env={PRESET_KEY_VAR: KEY})
    assert (ran.returncode, ran.stdout) == (3, "from-exec\n"), ran.stderr
    time.sleep(1.5)  # a gap, for --since
    boundary = time.time()
    time.sleep(1.5)
    plan = write_plan(tmp_path, f"""
        version: 1
        name: activity
        env: {{name: {env}}}
        steps:
          - id: one
            run: echo from-step-one; sleep 1; echo later-in-one
          - id: two
            needs: [one]
            run: echo from-step-two
        """)
    done = run_glmtui("--run", str(plan), "--json")
    assert done.returncode == 0, done.stderr
    run_id = json_lines(done.stdout)[0]["run_id"]
    conversation = (await chat_in(engine, env, model_server, monkeypatch))[:6]

    shown = activity(env)
    assert shown and shown[0].startswith("exec "), shown
    exec_id = shown[0].split()[1]

    everything = [
        f"exec {exec_id} | $ sh -c 'echo from-exec; sleep 0.3; echo \"key ***\" >&2; exit 3'",
        f"exec {exec_id} | from-exec",
        f"exec {exec_id} | key ***",
        f"exec {exec_id} | exited with 3",
        f"{run_id}/one | from-step-one",
        f"{run_id}/one | later-in-one",
        f"{run_id}/two | from-step-two",
        f"chat {conversation} bash | $ echo from-the-agent",
        f"chat {conversation} bash | from-the-agent",
        f"chat {conversation} bash | exit code 0",
    ]
    assert shown == everything
    assert activity(env, "--tail", "2") == everything[-2:]
    assert activity(env, "--since", f"{time.time() - boundary:.3f}s") == everything[4:]

    stamped = activity(env, "--timestamps")
    assert [line.split(" ", 1)[1] for line in stamped] == everything
    assert all(re.match(STAMP + " ", line) for line in stamped), stamped
    times = [line.split(" ", 1)[0] for line in stamped]
    assert times == sorted(times)
    one, later = times[4], times[5]
    assert later > one, "each line has the time it was written (a second apart here), not its step's"


def test_logs_follow_what_runs_now(busybox_image, env_name, glmtui):
    assert glmtui("env", "create", env_name, "--image", "glmtui/busybox:latest").returncode == 0
    follower = subprocess.Popen(glmtui_argv("logs", "-f", env_name), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=child_env())
    try:
        time.sleep(1)
        exec_ = subprocess.Popen(glmtui_argv("env", "exec", env_name, "sh", "-c", "echo one; sleep 2; echo two"),
                                 stdout=subprocess.PIPE, text=True, env=child_env())
        assert exec_.stdout.readline() == "one\n"
        lines = Lines(follower)
        header = lines.next()
        exec_id = header.split()[1]
        assert header == f"exec {exec_id} | $ sh -c 'echo one; sleep 2; echo two'\n"
        assert lines.next() == f"exec {exec_id} | one\n"
        assert exec_.poll() is None, "the line came while the command still ran"
        assert lines.next() == f"exec {exec_id} | two\n"
        assert lines.next() == f"exec {exec_id} | exited with 0\n"
        assert exec_.wait(30) == 0
        follower.send_signal(signal.SIGINT)
        assert follower.wait(15) == 130
        assert follower.stderr.read().split() == ["glmtui:", "interrupted"]
    finally:
        follower.kill()
