"""Helpers for the saved-agent tests: a project folder whose config points at the scripted model
server, agent files, the CLI with its own data folder, and the records as `agents executions`
shows them."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import yaml

import helpers

KEY_ENV = "TEST_MODEL_KEY"


def new_key() -> str:
    return f"sk-live-{uuid.uuid4().hex[:20]}"


def project(folder: Path, server: Any, **settings: Any) -> Path:
    """A project folder whose config makes `test` (the scripted server) the default provider."""
    config = {
        "default_provider": "test",
        "providers": {"test": {"base_url": server.base_url, "api_key_env": KEY_ENV, "model": "test-model"}},
        **settings,
    }
    (folder / ".glmtui").mkdir(parents=True, exist_ok=True)
    (folder / ".glmtui" / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def write_agent(folder: Path, text: str, name: str = "agent.yaml", **subs: str) -> Path:
    """An agent file from YAML text (dedented); `@KEY@` is replaced by subs[KEY]."""
    folder.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(text).lstrip("\n")
    for key, value in subs.items():
        text = text.replace(f"@{key}@", value)
    path = folder / name
    path.write_text(text)
    return path


class Cli:
    """`glmtui` in a project folder, with a data folder of its own (records, logs, the lock)."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.key = key
        self.data = folder / "data"
        self.env = {"XDG_DATA_HOME": str(self.data), KEY_ENV: key}

    def __call__(self, *args: str, timeout: float = 120) -> Any:
        return helpers.run_glmtui(*args, env=self.env, cwd=self.folder, timeout=timeout)

    def executions(self, agent: str | None = None) -> list[dict[str, Any]]:
        result = self("agents", "executions", *([agent] if agent else []), "--json", "--limit", "100")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def execution(self, execution_id: str) -> dict[str, Any]:
        result = self("agents", "executions", "show", execution_id, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def database(self) -> Path:
        return self.data / "glmtui" / "glmtui.sqlite3"

    def assert_key_nowhere(self) -> None:
        """The API key is in no record, log or file of the data folder."""
        files = [p for p in self.data.rglob("*") if p.is_file()]
        assert files
        for path in files:
            data = path.read_bytes()
            assert self.key.encode() not in data, path
            assert self.key.encode("utf-16-le") not in data, path
