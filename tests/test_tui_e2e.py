"""End to end: the real `glmtui` in a real terminal (tmux), keys in, the screen read with capture-pane.

This is the one test where the TUI suspends for a real shell (`e`); Pilot's headless driver
cannot suspend.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import helpers
from plan_helpers import remove_run_leftovers

pytestmark = pytest.mark.docker

WIDTH, HEIGHT = 160, 45


class Tmux:
    """One tmux server of our own (its own socket: no user's server or settings involved)."""

    def __init__(self) -> None:
        self.socket = f"glmtui-e2e-{uuid.uuid4().hex[:8]}"
        self.session = "glmtui"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                                capture_output=True, text=True, timeout=20)
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result

    def start(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        # COLUMNS and LINES would override the terminal's size (pytest's process may have them set)
        command = ["env", "-u", "COLUMNS", "-u", "LINES", *(f"{key}={value}" for key, value in env.items()), *argv]
        # Without a client, tmux would shrink the window to its default size (80x24) later on:
        # a manual window size keeps it at WIDTHxHEIGHT.
        self("new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-s", self.session, "-c", cwd, *command,
             ";", "set-option", "-g", "window-size", "manual",
             ";", "set-option", "-t", self.session, "remain-on-exit", "on")
        self("resize-window", "-t", self.session, "-x", str(WIDTH), "-y", str(HEIGHT))

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def type(self, text: str) -> None:
        self("send-keys", "-t", self.session, "-l", text)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session).stdout

    def history(self) -> str:
        """The scrollback and the screen (what the terminal shows after the TUI's alternate screen)."""
        return self("capture-pane", "-p", "-S", "-", "-t", self.session).stdout

    def pane(self, field: str) -> str:
        return self("display-message", "-p", "-t", self.session, f"#{{{field}}}").stdout.strip()

    def wait_for(self, predicate: Callable[[str], Any], timeout: float = 20, what: str = "") -> Any:
        return helpers.wait_for(lambda: predicate(self.screen()), timeout, what=what, shown=self.screen)

    def kill(self) -> None:
        self("kill-server", check=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def last_env(busybox_image: str) -> Iterator[str]:
    """A running environment whose name sorts after everyone's (the pane lists by name): `ctrl+end`
    selects it, whatever other environments this Docker engine has."""
    name = f"zzzz-e2e-{uuid.uuid4().hex[:6]}"
    try:
        helpers.run_glmtui("env", "create", name, "--image", busybox_image, "--network", "none", timeout=60)
        assert helpers.container_status(name) == "running"
        yield name
    finally:
        helpers.remove_quietly(name)


def test_glmtui_in_tmux_runs_a_plan_and_opens_a_shell(tmux: Tmux, last_env: str) -> None:
    env = {key: value for key, value in os.environ.items() if key.startswith("XDG_")}
    env["TERM"] = "xterm-256color"
    run_id = None
    try:
        # glmtui's exit status shows on the terminal after it quits (tmux does not always report it)
        glmtui = f"{shlex.quote(sys.executable)} -m glmtui plans/hello.yaml"
        tmux.start(["sh", "-c", f'{glmtui}; echo "glmtui exited with $?"'], env, str(helpers.PROJECT_ROOT))
        # the plan pane shows the plan, the environments pane our environment
        tmux.wait_for(lambda s: "Plan  hello.yaml" in s and "enter runs" in s, what="the plan pane")
        tmux.wait_for(lambda s: last_env in s or "Environments" in s, what="the environments pane")
        # tab to the plan's steps, enter runs it; every step ends ✔ (shout is skipped: ↷)
        tmux.keys("Tab", "Tab")
        time.sleep(0.3)
        tmux.keys("Enter")
        match = tmux.wait_for(lambda s: re.search(r"✔ run (\S+) success in", s), timeout=60, what="the run to succeed")
        run_id = match.group(1)
        screen = tmux.screen()
        for step in ("greet", "count", "report", "show"):
            assert re.search(rf"✔\s+{step}\s", screen), (step, screen)
        assert re.search(r"↷\s+shout\s", screen), screen
        assert "hello, world" in screen  # greet's output in the log pane
        # the environments pane: the last environment, then `e`: the TUI steps aside for its shell
        tmux.keys("BTab", "BTab")  # plan -> agents -> environments
        time.sleep(0.3)
        tmux.keys("C-End")
        time.sleep(0.3)
        tmux.keys("e")
        tmux.wait_for(lambda s: "Environments" not in s and re.search(r"[#$] ?$", s.rstrip("\n"), re.M),
                      what="the shell's prompt")
        tmux.type("echo e2e-$((40+2)) on $(hostname)")
        tmux.keys("Enter")
        tmux.wait_for(lambda s: f"e2e-42 on {last_env}" in s, what="the shell's output")
        tmux.type("exit")
        tmux.keys("Enter")
        # the TUI comes back, says how the shell ended
        tmux.wait_for(lambda s: "Environments" in s and "Plan  hello.yaml" in s, what="the TUI to come back")
        tmux.wait_for(lambda s: f"shell in {last_env} exited with 0" in s, what="the notification")
        assert f"✔ run {run_id} success in" in tmux.screen()
        # the shell is gone from the environment
        processes = helpers.processes(last_env)
        assert not re.search(r"^\s*\d+\s+(sh|bash)\b", processes, re.M), processes
        tmux.keys("q")
        # glmtui ends with status 0, and leaves nothing on the terminal (no warning, no traceback)
        tmux.wait_for(lambda s: "glmtui exited with" in s, what="glmtui to quit")
        after = tmux.history()
        assert "glmtui exited with 0" in after, after
        quit_output = after[after.index("/workspace # exit"):after.index("glmtui exited with")]
        assert quit_output.strip() == "/workspace # exit", f"glmtui printed this when it quit:\n{quit_output}"
    finally:
        if run_id:
            remove_run_leftovers(run_id)
