"""`glmtui models list|check` and `glmtui chats` through the real CLI (a subprocess), against the
scripted model server (its own thread: the subprocess reaches it over real HTTP)."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
from helpers import one_error_line, run_glmtui

from glmtui.conversations import Conversations
from glmtui.errors import NotFound
from glmtui.store import Store
from model_server import ModelServer, error, text

KEY_ENV = "MODELS_CLI_TEST_KEY"
KEY = "sk-models-cli-SECRET-4711"
# The presets' variables are unset in every run, whatever the machine has.
NO_PRESET_KEYS = {"ZAI_API_KEY": None, "OPENAI_API_KEY": None}
OK_LINE = re.compile(r"^local: ok — glm-4\.6 answered in \d+\.\d\d s \(5 tokens in, 1 out\)$")


def project(folder: Path, base_url: str, *, default: str | None = "local", extra: str = "") -> Path:
    """A project folder whose .glmtui/config.yaml configures the provider `local` at base_url."""
    config = folder / ".glmtui"
    config.mkdir(parents=True, exist_ok=True)
    lines = [
        *([f"default_provider: {default}"] if default else []),
        "providers:",
        "  local:",
        f"    base_url: {base_url}",
        f"    api_key_env: {KEY_ENV}",
        "    model: glm-4.6",
        extra,
    ]
    (config / "config.yaml").write_text("\n".join(lines) + "\n")
    return folder


def glmtui_in(folder: Path, *args: str, key: str | None = KEY, **env: str | None):
    return run_glmtui(*args, cwd=folder, env={**NO_PRESET_KEYS, KEY_ENV: key, **env})


def assert_no_key(*outputs: str) -> None:
    for output in outputs:
        assert KEY not in output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- models check --------------------------------------------------------------------------------


def test_check_ok_is_one_line_and_a_tiny_call(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.script(text("pong", usage=(5, 1)))
    folder = project(tmp_path, model_server.base_url)

    result = glmtui_in(folder, "models", "check")

    assert result.returncode == 0, result.stderr
    assert OK_LINE.match(result.stdout.rstrip("\n")), result.stdout
    assert result.stdout.count("\n") == 1 and result.stderr == ""
    [request] = model_server.requests
    assert request.body["model"] == "glm-4.6"
    assert 1 <= request.body["max_tokens"] <= 16
    assert request.body["stream"] is True
    [message] = request.body["messages"]
    assert message["role"] == "user" and len(message["content"].split()) == 1
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert_no_key(result.stdout, result.stderr)


def test_check_a_named_provider_and_model_as_json(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.script(text("pong", usage=(5, 1)))
    folder = project(tmp_path, model_server.base_url, default=None)

    result = glmtui_in(folder, "models", "check", "local", "--model", "glm-4.5-air", "--json")

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ok"] is True and answer["provider"] == "local" and answer["model"] == "glm-4.5-air"
    assert (answer["input_tokens"], answer["output_tokens"]) == (5, 1)
    assert answer["first_token_seconds"] <= answer["seconds"] and answer["reply"] == "pong"
    assert model_server.requests[0].body["model"] == "glm-4.5-air"
    assert_no_key(result.stdout, result.stderr)


def test_check_without_usage_says_so(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.script(text("pong", usage=None))
    result = glmtui_in(project(tmp_path, model_server.base_url), "models", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("(no token usage reported)")


def test_refused_key_is_one_line_naming_the_variable(model_server: ModelServer, tmp_path: Path) -> None:
    # An endpoint that echoes the key back: it must not reach the terminal.
    model_server.script(error(401, code="1000", message=f"invalid api key {KEY}"))

    result = glmtui_in(project(tmp_path, model_server.base_url), "models", "check")

    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "API key was refused" in line and "HTTP 401" in line and KEY_ENV in line
    assert result.stdout == ""
    assert_no_key(result.stdout, result.stderr)
    assert len(model_server.requests) == 1


def test_exhausted_quota_is_one_line_and_not_retried(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.script(error(429, code="1113", message="Insufficient balance"), text("never sent"))

    result = glmtui_in(project(tmp_path, model_server.base_url), "models", "check")

    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "quota or balance exhausted" in line and "code 1113" in line and "Insufficient balance" in line
    assert len(model_server.requests) == 1 and model_server.pending == 1


def test_a_rate_limit_is_reported_at_once_not_retried(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.script(error(429, code="1302", retry_after=20), text("never sent"))

    started = time.monotonic()
    result = glmtui_in(project(tmp_path, model_server.base_url), "models", "check")

    assert result.returncode == 1
    assert "rate limited" in one_error_line(result.stderr)
    assert len(model_server.requests) == 1 and time.monotonic() - started < 15


def test_a_refused_connection_is_one_line(tmp_path: Path) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"

    result = glmtui_in(project(tmp_path, base_url), "models", "check")

    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"glmtui: error: local: cannot connect to {base_url}: connection refused (check that the "
                           "server runs and its base_url")
    assert "Connect call failed" not in line


def test_missing_key_variable_is_bad_input(model_server: ModelServer, tmp_path: Path) -> None:
    result = glmtui_in(project(tmp_path, model_server.base_url), "models", "check", key=None)

    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert f"the variable {KEY_ENV} is not set" in line
    assert model_server.requests == []


def test_unknown_provider_is_bad_input(tmp_path: Path) -> None:
    result = glmtui_in(tmp_path, "models", "check", "zia")
    assert result.returncode == 2
    assert "unknown provider 'zia'" in one_error_line(result.stderr)


def test_check_all_checks_the_providers_with_a_key(model_server: ModelServer, tmp_path: Path) -> None:
    # ollama (no key needed) pointed at the server too, so nothing depends on the machine.
    folder = project(tmp_path, model_server.base_url,
                     extra=f"  ollama:\n    base_url: {model_server.base_url}\n    model: qwen-test")
    model_server.script(text("pong", usage=(5, 1)), text("pong", usage=(5, 1)))

    result = glmtui_in(folder, "models", "check", "--all")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert OK_LINE.match(lines[0]), lines
    assert lines[1].startswith("ollama: ok — qwen-test answered in ")
    assert lines[2].startswith("not checked: ")
    for skipped in ("openai (OPENAI_API_KEY is not set)", "zai (ZAI_API_KEY is not set)",
                    "vllm (provider vllm: no model"):
        assert skipped in lines[2]
    assert sorted(r.body["model"] for r in model_server.requests) == ["glm-4.6", "qwen-test"]
    assert_no_key(result.stdout, result.stderr)


def test_check_all_fails_when_one_fails(model_server: ModelServer, tmp_path: Path) -> None:
    folder = project(tmp_path, model_server.base_url,
                     extra=f"  ollama:\n    base_url: http://127.0.0.1:{closed_port()}/v1\n    model: qwen-test")
    model_server.script(text("pong", usage=(5, 1)))

    result = glmtui_in(folder, "models", "check", "--all", "--json")

    assert result.returncode == 1
    answers = {a["provider"]: a for a in json.loads(result.stdout)}
    assert answers["local"]["ok"] is True
    assert answers["ollama"]["ok"] is False and answers["ollama"]["error"]["kind"] == "unreachable"
    assert answers["zai"] == {"provider": "zai", "ok": None, "skipped": "ZAI_API_KEY is not set"}


# -- models list ---------------------------------------------------------------------------------


def test_list_shows_presets_and_whether_keys_are_set(tmp_path: Path) -> None:
    folder = project(tmp_path, "http://127.0.0.1:9/v1")

    result = glmtui_in(folder, "models", "list", ZAI_API_KEY="zai-SECRET-value-99")

    assert result.returncode == 0, result.stderr
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in result.stdout.splitlines()}
    for name in ("zai", "zai-coding", "openai", "ollama", "vllm", "local"):
        assert name in rows, result.stdout
    assert "https://api.z.ai/api/paas/v4" in rows["zai"] and "ZAI_API_KEY (set)" in rows["zai"]
    assert "https://api.z.ai/api/coding/paas/v4" in rows["zai-coding"]
    assert "OPENAI_API_KEY (not set)" in rows["openai"]
    assert f"{KEY_ENV} (set)" in rows["local"] and rows["local"].startswith("*")
    assert "(none needed)" in rows["ollama"]
    assert "zai-SECRET-value-99" not in result.stdout + result.stderr
    assert_no_key(result.stdout, result.stderr)

    as_json = glmtui_in(folder, "models", "list", "--json", key=None)
    providers = {p["name"]: p for p in json.loads(as_json.stdout)}
    assert providers["local"] == {
        "name": "local", "base_url": "http://127.0.0.1:9/v1", "model": "glm-4.6", "api_key_env": KEY_ENV,
        "key_set": False, "default": True, "source": "config", "problem": None,
    }
    assert providers["zai"]["key_set"] is False and providers["zai"]["default"] is False
    assert providers["vllm"]["problem"].startswith("provider vllm: no model")


# -- chats ---------------------------------------------------------------------------------------


@pytest.fixture
def conversation():
    """A saved conversation made the way the chat makes it, in the session's data folder."""
    store = Store()
    history = Conversations(store)
    environment = f"chats-{time.monotonic_ns()}"
    made = history.start(environment, "zai", "glm-4.6")
    history.append(made.id, {"role": "system", "content": "You are a coding agent."})
    history.append(made.id, {"role": "user", "content": "Fix the failing test\nplease"})
    history.append(made.id, {"role": "assistant", "content": "Looking.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "pytest -q"}'}}]})
    history.append(made.id, {"role": "tool", "tool_call_id": "c1", "content": "1 failed"})
    history.append(made.id, {"role": "assistant", "content": "Fixed it."})
    history.add_usage(made.id, 1234, 56)
    markdown = history.markdown(made.id)
    store.close()
    return made, environment, markdown


def test_chats_list_show_export_remove(conversation, tmp_path: Path) -> None:
    made, environment, markdown = conversation

    listed = run_glmtui("chats", "--env", environment)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "ENVIRONMENT", "TITLE", "MODEL", "TOKENS", "UPDATED"]
    assert row.startswith(f"{made.id}  {environment}  Fix the failing test")
    assert "zai/glm-4.6" in row and "1.2k in, 56 out" in row and row.endswith("s ago")

    as_json = json.loads(run_glmtui("chats", "--json", "--env", environment).stdout)
    assert [(c["id"], c["title"], c["input_tokens"], c["output_tokens"]) for c in as_json] == [
        (made.id, "Fix the failing test", 1234, 56)]
    assert made.id in run_glmtui("chats").stdout

    shown = run_glmtui("chats", "show", made.id[:6])
    assert shown.returncode == 0 and shown.stdout == markdown
    assert shown.stdout.startswith("# Fix the failing test\n") and "**bash**" in shown.stdout
    assert "You are a coding agent" not in shown.stdout

    exported = run_glmtui("chats", "export", made.id, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith(f"wrote {made.id}.md")
    assert (tmp_path / f"{made.id}.md").read_text() == markdown
    chosen = tmp_path / "out" / "chat.md"
    chosen.parent.mkdir()
    assert run_glmtui("chats", "export", made.id, "-o", str(chosen)).returncode == 0
    assert chosen.read_text() == markdown

    removed = run_glmtui("chats", "remove", made.id)
    assert removed.returncode == 0
    assert removed.stdout.strip() == f"removed conversation {made.id} (Fix the failing test)"
    assert run_glmtui("chats", "--env", environment).stdout.startswith("no conversations in environment")
    gone = run_glmtui("chats", "show", made.id)
    assert gone.returncode == 2
    assert f"no conversation '{made.id}'" in one_error_line(gone.stderr)


def test_chats_export_to_a_folder_that_is_not_there(conversation, tmp_path: Path) -> None:
    made, _, _ = conversation
    result = run_glmtui("chats", "export", made.id, "-o", str(tmp_path / "missing" / "x.md"))
    assert result.returncode == 2
    assert "cannot write" in one_error_line(result.stderr)


def test_a_conversation_id_prefix_is_taken_literally(tmp_path):
    store = Store(database=tmp_path / "db.sqlite3", logs=tmp_path / "runs")
    history = Conversations(store)
    first = history.start("env-a", "test", "m")
    history.start("env-b", "test", "m")
    assert history.get(first.id[:6]).id == first.id
    for wildcard in ("%", "_", first.id[:3] + "%"):
        with pytest.raises(NotFound):
            history.get(wildcard)
    history.append(first.id, {"role": "tool", "tool_call_id": "c1", "content": "```\nnot the end\n```"})
    markdown = history.markdown(first.id)
    assert "````\n```\nnot the end\n```\n````" in markdown  # a longer fence around the tool output
    store.close()
