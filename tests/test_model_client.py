"""ModelClient (one streamed model turn) over real HTTP against the scripted model server, and
the providers it is made for."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from glmtui.agent import providers
from glmtui.agent.client import RETRIES, ModelClient, ModelError, Reply, RetryNotice, Usage
from glmtui.agent.providers import Provider
from glmtui.config import Config
from glmtui.errors import BadInput
import helpers
from model_server import ModelServer, cut_off, drip, error, hang_up, raw, text, tool_calls

KEY = "sk-test-SECRET123"
KEY_ENV = "GLMTUI_TEST_KEY"
MESSAGES = [{"role": "user", "content": "hi"}]
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


class FakeSleep:
    """Stands in for the pause between retries: records the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def provider_for(base_url: str, **fields: Any) -> Provider:
    return Provider(name="test", base_url=base_url, model="glm-test", api_key_env=KEY_ENV, **fields)


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def client(model_server: ModelServer, sleeps: FakeSleep) -> AsyncIterator[ModelClient]:
    made = ModelClient(provider_for(model_server.base_url), api_key=KEY)
    made.sleep = sleeps
    yield made
    await made.close()


async def stream_collecting(client: ModelClient, **options: Any) -> tuple[Reply, list[str], list[str]]:
    """One turn; the reply, the text pieces and the reasoning pieces as the callbacks got them."""
    texts: list[str] = []
    thoughts: list[str] = []
    reply = await client.stream(MESSAGES, on_text=texts.append, on_reasoning=thoughts.append, **options)
    return reply, texts, thoughts


async def failure_of(client: ModelClient) -> ModelError:
    with pytest.raises(ModelError) as caught:
        await client.stream(MESSAGES)
    return caught.value


def assert_one_clean_line(err: ModelError) -> None:
    assert "\n" not in str(err) and "\r" not in str(err), repr(str(err))
    assert KEY not in str(err) and KEY not in repr(err)


# --------------------------------------------------------------------------- streaming


async def test_streamed_text_reaches_on_text_in_order(model_server: ModelServer, client: ModelClient) -> None:
    model_server.script(text("Hello from the model", pieces=4))

    reply, texts, thoughts = await stream_collecting(client)

    assert texts == ["Hello", " from", " the ", "model"]
    assert reply.content == "Hello from the model"
    assert reply.finish_reason == "stop"
    assert (reply.reasoning, thoughts, reply.tool_calls) == ("", [], [])


async def test_reasoning_goes_to_on_reasoning_not_to_the_text(model_server: ModelServer, client: ModelClient) -> None:
    model_server.script(text("The answer is 4.", reasoning="Two plus two makes four"))

    reply, texts, thoughts = await stream_collecting(client)

    assert "".join(thoughts) == reply.reasoning == "Two plus two makes four"
    assert len(thoughts) > 1  # streamed as it came
    assert "".join(texts) == reply.content == "The answer is 4."


@pytest.mark.parametrize("usage_at", ["final", "separate"])
async def test_usage_is_read_wherever_the_stream_puts_it(model_server: ModelServer, client: ModelClient,
                                                         usage_at: str) -> None:
    model_server.script(text("ok", usage=(12, 3), usage_at=usage_at))

    reply, _, _ = await stream_collecting(client)

    assert reply.usage == Usage(input_tokens=12, output_tokens=3)
    assert reply.content == "ok"


async def test_usage_absent_is_none(model_server: ModelServer, client: ModelClient) -> None:
    model_server.script(text("ok", usage=None))

    reply, _, _ = await stream_collecting(client)

    assert reply.usage is None
    assert reply.content == "ok"


async def test_tool_call_arguments_split_mid_string_reassemble_exactly(model_server: ModelServer,
                                                                       client: ModelClient) -> None:
    arguments = json.dumps({"path": "/workspace/app.py", "content": 'print("héllo, world")\n# done\n'})
    model_server.script(tool_calls([("call_abc", "write_file", arguments)]))

    reply, texts, _ = await stream_collecting(client, tools=[READ_FILE])

    [call] = reply.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_abc", "write_file", arguments)
    assert json.loads(call.arguments)["content"] == 'print("héllo, world")\n# done\n'
    assert reply.finish_reason == "tool_calls"
    assert texts == []


async def test_parallel_tool_calls_come_back_in_index_order(model_server: ModelServer, client: ModelClient) -> None:
    model_server.script(tool_calls([
        ("call_1", "read_file", {"path": "a.txt"}),
        ("call_2", "bash", {"command": "ls -la"}),
    ], content="Let me look."))

    reply, texts, _ = await stream_collecting(client)

    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("call_1", "read_file", {"path": "a.txt"}),
        ("call_2", "bash", {"command": "ls -la"}),
    ]
    assert "".join(texts) == reply.content == "Let me look."


async def test_a_whole_glm_style_tool_call(model_server: ModelServer, client: ModelClient) -> None:
    model_server.script(tool_calls([("call_glm_0", "list_files", {"path": "/workspace"})], split=False))

    reply, _, _ = await stream_collecting(client)

    [call] = reply.tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == ("call_glm_0", "list_files", {"path": "/workspace"})
    assert reply.as_message()["tool_calls"] == [
        {"id": "call_glm_0", "type": "function",
         "function": {"name": "list_files", "arguments": json.dumps({"path": "/workspace"})}},
    ]


async def test_odd_chunks_and_unknown_finish_reason_do_not_break_anything(model_server: ModelServer,
                                                                          client: ModelClient) -> None:
    model_server.script(raw([
        {"choices": None},
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Part"}, "finish_reason": None}]},
        {"choices": []},
        {"choices": [{"index": 0, "delta": {"content": "ly blocked"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "sensitive"}], "usage": None},
    ]))

    reply, texts, _ = await stream_collecting(client)

    assert texts == ["Part", "ly blocked"]
    assert reply.content == "Partly blocked"
    assert reply.finish_reason == "sensitive"
    assert reply.usage is None


# --------------------------------------------------------------------------- errors and retries


async def test_rate_limit_is_retried_after_the_delay_the_server_asks(model_server: ModelServer, client: ModelClient,
                                                                     sleeps: FakeSleep) -> None:
    model_server.script(error(429, code="1302", message="too many requests", retry_after=2), text("back again"))
    retries: list[RetryNotice] = []

    reply, _, _ = await stream_collecting(client, on_retry=retries.append)

    assert reply.content == "back again"
    assert sleeps.delays == [2.0]
    assert [(r.error.kind, r.delay, r.attempt, r.attempts) for r in retries] == [("rate_limit", 2.0, 2, RETRIES + 1)]
    assert str(retries[0]) == "test: rate limited (HTTP 429, code 1302): too many requests: retrying in 2.0 s (attempt 2 of 5)"
    assert await model_server.outcomes() == ["error", "complete"]


async def test_rate_limit_without_retry_after_backs_off(model_server: ModelServer, client: ModelClient,
                                                        sleeps: FakeSleep) -> None:
    model_server.script(error(429, code="1302"), error(429, code="1302"), text("finally"))

    reply, _, _ = await stream_collecting(client)

    assert reply.content == "finally"
    assert len(sleeps.delays) == 2
    first, second = sleeps.delays
    assert 0.5 <= first < second <= 30  # growing pauses, none of them zero
    assert len(model_server.requests) == 3


@pytest.mark.parametrize("code", ["1113", "1308"])
async def test_exhausted_quota_is_not_retried(model_server: ModelServer, client: ModelClient, sleeps: FakeSleep,
                                              code: str) -> None:
    model_server.script(error(429, code=code, message="insufficient balance"), text("never sent"))

    err = await failure_of(client)

    assert err.kind == "quota"
    assert len(model_server.requests) == 1 and model_server.pending == 1
    assert sleeps.delays == []
    assert code in str(err)
    assert_one_clean_line(err)


@pytest.mark.parametrize("reply", [error(401, message="Unauthorized"), error(401, code="1000", message="bad token")],
                         ids=["401", "code-1000"])
async def test_a_refused_key_is_auth_and_names_the_variable(model_server: ModelServer, client: ModelClient,
                                                            sleeps: FakeSleep, reply: Any) -> None:
    model_server.script(reply, text("never sent"))

    err = await failure_of(client)

    assert err.kind == "auth"
    assert KEY_ENV in (err.hint or "")
    assert len(model_server.requests) == 1 and sleeps.delays == []
    assert_one_clean_line(err)


@pytest.mark.parametrize(("reply", "kind"), [
    (error(400, code="1211", message="model glm-test does not exist"), "model"),
    (error(400, code="1301", message="unsafe content"), "refused"),
    (error(400, message="messages: required"), "bad_request"),
], ids=["1211", "1301", "400"])
async def test_request_errors_are_classified_and_not_retried(model_server: ModelServer, client: ModelClient,
                                                             sleeps: FakeSleep, reply: Any, kind: str) -> None:
    model_server.script(reply, text("never sent"))

    err = await failure_of(client)

    assert err.kind == kind
    assert len(model_server.requests) == 1 and sleeps.delays == []
    assert_one_clean_line(err)


async def test_server_error_is_retried(model_server: ModelServer, client: ModelClient, sleeps: FakeSleep) -> None:
    model_server.script(error(500, message="internal error"), text("recovered"))

    reply, _, _ = await stream_collecting(client)

    assert reply.content == "recovered"
    assert len(sleeps.delays) == 1
    assert len(model_server.requests) == 2


async def test_server_errors_give_up_after_the_retries(model_server: ModelServer, client: ModelClient,
                                                       sleeps: FakeSleep) -> None:
    model_server.script(*[error(503, message="overloaded")] * (RETRIES + 1))

    err = await failure_of(client)

    assert err.kind == "server"
    assert len(model_server.requests) == RETRIES + 1
    assert len(sleeps.delays) == RETRIES
    assert_one_clean_line(err)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def failure_at(base_url: str, sleeps: FakeSleep) -> ModelError:
    unreachable = ModelClient(provider_for(base_url), api_key=KEY)
    unreachable.sleep = sleeps
    try:
        return await failure_of(unreachable)
    finally:
        await unreachable.close()


def assert_in_our_words(err: ModelError) -> None:
    """One line of ours: none of the transport's wording."""
    assert_one_clean_line(err)
    for theirs in ("Cannot connect to host", "Connect call failed", "ssl:default", "Errno", "ConnectionKey", "timed out."):
        assert theirs not in str(err), str(err)
    assert "`glmtui models check test` tries it" in (err.hint or "")


async def test_a_refused_connection_fails_at_once_in_one_line(sleeps: FakeSleep) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"

    err = await failure_at(base_url, sleeps)

    assert err.kind == "unreachable"
    assert sleeps.delays == []  # not retried: it fails at once
    assert str(err) == (f"test: cannot connect to {base_url}: connection refused "
                        "(check that the server runs and its base_url; `glmtui models check test` tries it)")
    assert_in_our_words(err)


async def test_an_unknown_host_fails_at_once_in_one_line(sleeps: FakeSleep) -> None:
    base_url = "http://glmtui-test.invalid/v1"  # .invalid never resolves (RFC 6761)

    err = await failure_at(base_url, sleeps)

    assert err.kind == "unreachable" and sleeps.delays == []
    assert err.message == f"test: cannot connect to {base_url}: unknown host glmtui-test.invalid"
    assert_in_our_words(err)


async def test_a_tls_failure_fails_at_once_in_one_line(model_server: ModelServer, sleeps: FakeSleep) -> None:
    base_url = model_server.base_url.replace("http://", "https://")  # the server speaks plain HTTP

    err = await failure_at(base_url, sleeps)

    assert err.kind == "unreachable" and sleeps.delays == []
    assert err.message == f"test: cannot connect to {base_url}: TLS failed (wrong version number)"
    assert "https://" in (err.hint or "")
    assert_in_our_words(err)
    assert model_server.requests == []


async def test_a_connection_closed_before_the_answer_is_retried_and_announced(
    model_server: ModelServer, client: ModelClient, sleeps: FakeSleep,
) -> None:
    model_server.script(hang_up(), hang_up(), text("here at last"))
    retries: list[RetryNotice] = []

    reply, _, _ = await stream_collecting(client, on_retry=retries.append)

    assert reply.content == "here at last"
    assert [(r.error.kind, r.attempt) for r in retries] == [("dropped", 2), ("dropped", 3)]
    assert [r.delay for r in retries] == sleeps.delays
    assert str(retries[1]).startswith(f"test: {model_server.base_url} closed the connection before answering: "
                                      "retrying in ")
    assert str(retries[1]).endswith(" s (attempt 3 of 5)")
    assert await model_server.outcomes() == ["cut", "cut", "complete"]


async def test_a_connection_closed_every_time_gives_up_after_the_retries(
    model_server: ModelServer, client: ModelClient, sleeps: FakeSleep,
) -> None:
    model_server.script(*[hang_up()] * (RETRIES + 1))

    err = await failure_of(client)

    assert err.kind == "dropped"
    assert len(model_server.requests) == RETRIES + 1 and len(sleeps.delays) == RETRIES
    assert_in_our_words(err)


async def test_a_cut_off_stream_is_a_stream_error_and_not_retried(model_server: ModelServer, client: ModelClient,
                                                                  sleeps: FakeSleep) -> None:
    model_server.script(cut_off(text("This reply was cut", pieces=["This", " reply", " was", " cut"]), after=2), text("never sent"))
    texts: list[str] = []

    with pytest.raises(ModelError) as caught:
        await client.stream(MESSAGES, on_text=texts.append)

    assert caught.value.kind == "stream"
    assert texts == ["This", " reply"]  # shown once, never again by a retry
    assert len(model_server.requests) == 1 and model_server.pending == 1
    assert sleeps.delays == []
    assert_one_clean_line(caught.value)


ECHOING_THE_KEY = [
    error(401, message=f"invalid api key {KEY}"),
    error(401, code="1000", message=f"token {KEY} expired"),
    error(429, code="1113", message=f"account of {KEY} has no balance"),
    error(400, code="1211", message=f"no model for {KEY}"),
    error(400, code="1301", message=f"refused for {KEY}"),
    error(422, message=f"bad request from {KEY}"),
    raw([{"error": {"code": "1234", "message": f"in-stream failure for {KEY}"}}]),
]


@pytest.mark.parametrize("reply", ECHOING_THE_KEY, ids=["401", "1000", "1113", "1211", "1301", "422", "in-stream"])
async def test_error_messages_never_show_the_key(model_server: ModelServer, client: ModelClient, reply: Any) -> None:
    model_server.script(reply)

    err = await failure_of(client)

    assert KEY not in str(err) and KEY not in repr(err) and KEY not in (err.hint or "")
    assert "***" in str(err)


async def test_server_errors_echoing_the_key_are_scrubbed_after_the_retries(model_server: ModelServer,
                                                                            client: ModelClient) -> None:
    model_server.script(*[error(500, message=f"crashed while serving {KEY}")] * (RETRIES + 1))

    err = await failure_of(client)

    assert err.kind == "server"
    assert_one_clean_line(err)


@pytest.mark.parametrize("reply", [
    error(400, code="1214", message="the request is invalid:\nmessages[1].content is empty"),
    raw([{"error": {"code": "1301", "message": "the content was flagged\nby the safety system"}}]),
], ids=["http", "in-stream"])
async def test_error_messages_are_one_line_even_when_the_server_says_more(model_server: ModelServer,
                                                                         client: ModelClient, reply: Any) -> None:
    model_server.script(reply)

    err = await failure_of(client)

    assert_one_clean_line(err)


# --------------------------------------------------------------------------- the request


async def test_the_request_carries_what_the_provider_and_caller_said(model_server: ModelServer,
                                                                     sleeps: FakeSleep) -> None:
    provider = provider_for(model_server.base_url, extra_body={"thinking": {"type": "enabled"}},
                            headers={"X-Title": "glmtui-tests"})
    client = ModelClient(provider, api_key=KEY)
    model_server.script(text("ok"))
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    try:
        await client.stream(messages, tools=[READ_FILE])
    finally:
        await client.close()

    [request] = model_server.requests
    assert request.body["model"] == "glm-test"
    assert request.body["messages"] == messages
    assert request.body["tools"] == [READ_FILE]
    assert request.body["stream"] is True
    assert request.body["thinking"] == {"type": "enabled"}
    assert request.headers["X-Title"] == "glmtui-tests"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


# --------------------------------------------------------------------------- cancellation


async def test_cancelling_mid_stream_ends_promptly_and_hangs_up(model_server: ModelServer,
                                                                client: ModelClient) -> None:
    model_server.script(drip("one two three four five six seven eight", interval=0.3))
    first_token = asyncio.Event()
    texts: list[str] = []

    def on_text(piece: str) -> None:
        texts.append(piece)
        first_token.set()

    task = asyncio.create_task(client.stream(MESSAGES, on_text=on_text))
    await asyncio.wait_for(first_token.wait(), 5)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - started < 1.0
    assert texts == ["one"]
    await wait_for_outcome(model_server, "disconnected")


async def wait_for_outcome(server: ModelServer, outcome: str, seconds: float = 2.0) -> None:
    await helpers.until(lambda: server.requests[0].outcome == outcome, seconds, interval=0.01,
                        what=f"the request to end {outcome}", shown=lambda: f"it ended {server.requests[0].outcome}")


# --------------------------------------------------------------------------- providers


def config_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str = "") -> Config:
    """The config a user with this project file (and no user file, no GLMTUI_* variables) has."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    project = tmp_path / "project"
    (project / ".glmtui").mkdir(parents=True)
    (project / ".glmtui" / "config.yaml").write_text(yaml_text)
    return Config.load(cwd=project, environ={})


@pytest.mark.parametrize(("name", "base_url", "key_env"), [
    ("zai", "https://api.z.ai/api/paas/v4", "ZAI_API_KEY"),
    ("zai-coding", "https://api.z.ai/api/coding/paas/v4", "ZAI_API_KEY"),
    ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    ("ollama", "http://localhost:11434/v1", None),
])
def test_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, base_url: str,
                 key_env: str | None) -> None:
    provider = providers.resolve(config_from(tmp_path, monkeypatch), name)

    assert (provider.name, provider.base_url, provider.api_key_env) == (name, base_url, key_env)
    assert provider.model


def test_vllm_preset_needs_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from(tmp_path, monkeypatch)

    assert providers.resolve(config, "vllm", "qwen3-coder").base_url == "http://localhost:8000/v1"
    with pytest.raises(BadInput, match="vllm: no model"):
        providers.resolve(config, "vllm")


def test_config_overrides_a_preset_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from(tmp_path, monkeypatch, """\
default_provider: zai
providers:
  zai:
    base_url: http://proxy.internal:8080/v4/
    model: glm-4.5-air
    extra_body: {thinking: {type: enabled}}
    headers: {X-Team: core}
""")

    provider = providers.resolve(config)

    assert provider.name == "zai"
    assert provider.base_url == "http://proxy.internal:8080/v4"
    assert provider.model == "glm-4.5-air"
    assert provider.api_key_env == "ZAI_API_KEY"
    assert dict(provider.extra_body) == {"thinking": {"type": "enabled"}}
    assert dict(provider.headers) == {"X-Team": "core"}
    assert providers.resolve(config, model="glm-4.6").model == "glm-4.6"


def test_a_provider_defined_only_in_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from(tmp_path, monkeypatch, """\
providers:
  lab:
    base_url: http://10.0.0.5:9000/v1
    model: coder-7b
    api_key_env: LAB_KEY
""")

    provider = providers.resolve(config, "lab")

    assert (provider.base_url, provider.model, provider.api_key_env) == ("http://10.0.0.5:9000/v1", "coder-7b",
                                                                          "LAB_KEY")


def test_unknown_provider_suggests_the_close_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput) as caught:
        providers.resolve(config_from(tmp_path, monkeypatch), "zia")

    assert "unknown provider 'zia'" in str(caught.value)
    assert "did you mean 'zai'?" in str(caught.value)


def test_no_provider_chosen_says_how_to_choose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput, match="no model provider chosen") as caught:
        providers.resolve(config_from(tmp_path, monkeypatch))

    assert "default_provider" in (caught.value.hint or "")


def test_a_missing_key_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZAI_API_KEY", raising=False)
    provider = providers.resolve(config_from(tmp_path, monkeypatch), "zai")

    with pytest.raises(BadInput) as caught:
        ModelClient(provider)

    assert "ZAI_API_KEY" in str(caught.value)
    assert "ZAI_API_KEY" in (caught.value.hint or "")


async def test_the_key_is_read_from_the_named_variable(model_server: ModelServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    config = config_from(tmp_path, monkeypatch, f"""\
providers:
  local:
    base_url: {model_server.base_url}
    model: glm-test
    api_key_env: {KEY_ENV}
""")
    client = ModelClient(providers.resolve(config, "local"))
    model_server.script(text("ok"))
    try:
        await client.stream(MESSAGES)
    finally:
        await client.close()

    assert model_server.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(providers.resolve(config, "local"))
