"""A real `glmtui serve` for the API tests: its own config, data and project folders, a random
loopback port, and a real HTTP client (httpx2) with its token."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

import helpers
from helpers import wait_for

START = re.compile(r"API at (https?://\S+?)/api/v1 ")


class Serve:
    """`glmtui serve --port 0 ARGS` in `folder` (its project: plans/ and .glmtui/config.yaml)."""

    def __init__(self, folder: Path, *args: str, config: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.folder = folder
        self.plans = folder / "plans"
        self.plans.mkdir(parents=True, exist_ok=True)
        self.env = {"XDG_CONFIG_HOME": str(folder / "config"), "XDG_DATA_HOME": str(folder / "data"), **(env or {})}
        if config:
            (folder / ".glmtui").mkdir(exist_ok=True)
            (folder / ".glmtui" / "config.yaml").write_text(yaml.safe_dump(config))
        self.out_path = folder / "serve.out"
        self.err_path = folder / "serve.err"
        self.out = self.out_path.open("w")
        self.err = self.err_path.open("w")
        self.proc = subprocess.Popen(
            helpers.glmtui_argv("serve", "--port", "0", *args), stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=self.err, env=helpers.child_env(self.env), cwd=str(folder),
        )
        self.url = ""
        if wait:
            match = wait_for(lambda: START.search(self.output()) or self.proc.poll() is not None, timeout=60,
                             what="the start line")
            assert match is not True and self.proc.poll() is None, self.output() + self.errors()
            self.url = match.group(1)

    @property
    def log(self) -> Path:
        return self.folder / "data" / "glmtui" / "agents.log"

    def output(self) -> str:
        self.out.flush()
        return self.out_path.read_text()

    def errors(self) -> str:
        return self.err_path.read_text()

    def glmtui(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return helpers.run_glmtui(*args, env=self.env, cwd=self.folder, timeout=timeout)

    @property
    def token(self) -> str:
        return (self.folder / "config" / "glmtui" / "serve-token").read_text().strip()

    def client(self, *, token: str | None = None, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"} if token != "" else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=120, **options)

    def plan(self, name: str, text: str) -> Path:
        path = self.plans / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def wait_exit(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """The end of a test: SIGTERM first, so what it still runs is cancelled and cleaned up as a
        user's Ctrl-C would have it (no throw-away environment left behind); SIGKILL when it does
        not exit within 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()
        self.err.close()


def events(response: Any) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """(id, data) of each Server-Sent Event of a streaming response, as they come."""
    seq: int | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield seq, json.loads("\n".join(data))
            seq, data = None, []
        elif line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def database_counts(serve: Serve) -> dict[str, int]:
    """Rows of the records a request could have made (runs, commands, executions)."""
    import sqlite3

    path = serve.folder / "data" / "glmtui" / "glmtui.sqlite3"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("runs", "steps", "execs", "agent_executions", "hook_deliveries") if table in tables}
