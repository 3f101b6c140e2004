"""`glmtui serve`: a real process runs an every-2s schedule, is the only one (a second exits 2
naming the first), and stops on SIGTERM mid-execution with nothing left behind; the systemd
user unit it writes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import helpers
from agent_helpers import Cli, new_key, project, write_agent
from helpers import container_exists, volume_exists, wait_for
from model_server import text, tool_calls

pytestmark = pytest.mark.docker


class Serve:
    """A `glmtui serve` process of the test's Cli (its data folder, its project)."""

    def __init__(self, cli: Cli) -> None:
        self.out = (cli.folder / "serve.out").open("w+")
        self.proc = subprocess.Popen(
            helpers.glmtui_argv("serve", "--port", "0"), stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
            text=True, env=helpers.child_env(cli.env), cwd=str(cli.folder),
        )

    def output(self) -> str:
        self.out.flush()
        return Path(self.out.name).read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.out.close()


@pytest.fixture
def serve_of():
    started: list[Serve] = []

    def start(cli: Cli) -> Serve:
        serve = Serve(cli)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.kill()


def test_serve_runs_an_every_2s_schedule_and_is_the_only_one(make_env, model_server, tmp_path, serve_of, engine):
    cli = Cli(project(tmp_path, model_server), new_key())
    env = helpers.unique_name()
    assert cli("env", "create", env, "--image", helpers.BUSYBOX).returncode == 0
    try:
        agent = write_agent(tmp_path, """
            version: 1
            name: ticker
            prompt: Tick.
            env: @ENV@
            approval: auto
            schedule: every 2s
            catch_up: skip
        """, ENV=env)
        assert cli("agents", "apply", str(agent)).returncode == 0
        model_server.script(*[text(f"tick {n}", usage=(4, 1)) for n in range(10)])
        serve = serve_of(cli)
        wait_for(lambda: "glmtui serve (pid" in serve.output(), timeout=30, what="the start line")
        start = serve.output().splitlines()[0]
        pid = serve.proc.pid
        assert f"glmtui serve (pid {pid}): runs the schedules of saved agents (1 active; at most 2 executions at once);" \
               in start
        assert f"log {cli.data / 'glmtui' / 'agents.log'}; Ctrl-C or `kill {pid}` stops it" in start

        second = cli("serve", "--port", "0")
        assert second.returncode == 2
        assert helpers.one_error_line(second.stderr).startswith(
            f"glmtui: error: glmtui serve (pid {pid}, since ")
        assert f"already runs the schedules of saved agents (one per user) (kill {pid} first)" in second.stderr
        assert f"schedules are run by glmtui serve (pid {pid}" in cli("agents", "list").stdout

        def two_done():
            done = [e for e in cli.executions("ticker") if e["trigger"] == "schedule" and e["status"] == "success"]
            return done if len(done) >= 2 else None

        done = wait_for(two_done, timeout=60, what="two scheduled executions")
        for execution in done:
            assert execution["result"].startswith("tick ")
            assert execution["scheduled"] % 2 == 0, "every 2s fires on even seconds"
            assert 0 <= execution["started"] - execution["scheduled"] < 1.0, "started on time"
        assert done[0]["scheduled"] - done[1]["scheduled"] >= 2
        assert serve.stop() == 130
        assert "glmtui serve stopped" in serve.output()
        assert "schedules are not being run: start `glmtui serve`" in cli("agents", "list").stdout
        log = (cli.data / "glmtui" / "agents.log").read_text()
        assert f"ticker: execution {done[0]['id']} started (schedule)" in log
    finally:
        cli("env", "remove", env, "--volumes")


def test_sigterm_mid_execution_cancels_it_and_leaves_nothing_behind(busybox_image, model_server, tmp_path, serve_of):
    cli = Cli(project(tmp_path, model_server), new_key())
    agent = write_agent(tmp_path, """
        version: 1
        name: sleeper
        prompt: Wait a while.
        env: {image: glmtui/busybox:latest}
        approval: auto
        schedule: every 2s
        catch_up: skip
    """)
    assert cli("agents", "apply", str(agent)).returncode == 0
    model_server.script(tool_calls([("c1", "bash", {"command": "sleep 120"})], usage=(7, 2)))
    serve = serve_of(cli)
    running = wait_for(lambda: next((e for e in cli.executions("sleeper") if e["status"] == "running"), None),
                       timeout=60, what="a running execution")
    container = f"run-{running['id']}"
    wait_for(lambda: container_exists(container) and "sleep 120" in helpers.processes(container), timeout=60,
             what="the tool's command in the throw-away environment")
    stopped_at = time.monotonic()
    assert serve.stop(signal.SIGTERM) == 130
    assert time.monotonic() - stopped_at < 30
    execution = cli.execution(running["id"])
    assert execution["status"] == "cancelled"
    assert execution["tool_calls"][0]["status"] == "cancelled"
    assert not container_exists(container) and not volume_exists(container)
    run = json.loads(cli("runs", "show", running["id"], "--json").stdout)
    assert run["status"] == "cancelled"
    output = serve.output()
    assert "stopping: cancelling 1 running execution" in output
    assert f"sleeper: execution {running['id']} cancelled" in output
    leftovers = subprocess.run(["pgrep", "-f", "sleep 120"], capture_output=True, text=True).stdout.split()
    assert leftovers == []
    cli.assert_key_nowhere()


def test_the_user_unit_it_writes(tmp_path):
    config_home = tmp_path / "config"
    result = helpers.run_glmtui("serve", "--install-user-unit", env={"XDG_CONFIG_HOME": str(config_home)})
    assert result.returncode == 0, result.stderr
    unit = config_home / "systemd" / "user" / "glmtui.service"
    assert result.stdout.splitlines()[0] == f"{unit}: created"
    assert "systemctl --user daemon-reload && systemctl --user enable --now glmtui" in result.stdout
    assert "loginctl enable-linger" in result.stdout
    text_ = unit.read_text()
    lines = text_.splitlines()
    assert f"ExecStart={sys.executable} -m glmtui serve" in lines
    assert f"EnvironmentFile=-{config_home / 'glmtui' / 'serve.env'}" in lines
    for line in ("[Service]", "Restart=on-failure", "KillSignal=SIGTERM", "SuccessExitStatus=130", "[Install]",
                 "WantedBy=default.target"):
        assert line in lines
    again = helpers.run_glmtui("serve", "--install-user-unit", env={"XDG_CONFIG_HOME": str(config_home)})
    assert again.stdout.splitlines()[0] == f"{unit}: unchanged"
