"""The scripted model server, driven by the real `openai` SDK over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

import helpers
from model_server import (
    ModelServer, cut_off, drip, error, pause, raw, text, tool_calls,
)

MESSAGES = [{"role": "user", "content": "hi"}]


@asynccontextmanager
async def client_for(server: ModelServer, **options: Any) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, **options) as client:
        yield client


async def stream_chunks(server: ModelServer, **request: Any) -> list[ChatCompletionChunk]:
    async with client_for(server) as client:
        stream = await client.chat.completions.create(model="glm-4.6", messages=MESSAGES, stream=True, **request)
        return [chunk async for chunk in stream]


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


async def test_streamed_text_arrives_in_pieces_and_reassembles(model_server: ModelServer) -> None:
    model_server.script(text("Hello from the model", pieces=4))

    chunks = await stream_chunks(model_server)

    assert content_of(chunks) == "Hello from the model"
    assert [chunk.choices[0].delta.content for chunk in chunks[:4]] == ["Hello", " from", " the ", "model"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {(chunk.id, chunk.model, chunk.object) for chunk in chunks} == {
        ("chatcmpl-1", "glm-4.6", "chat.completion.chunk")}


@pytest.mark.parametrize("usage_at", ["final", "separate", None])
async def test_usage_is_where_the_reply_puts_it(model_server: ModelServer, usage_at: str | None) -> None:
    model_server.script(text("ok", usage=(11, 4), usage_at=usage_at))

    chunks = await stream_chunks(model_server, stream_options={"include_usage": True})

    with_usage = [chunk for chunk in chunks if chunk.usage is not None]
    if usage_at is None:
        assert with_usage == []
        return
    [chunk] = with_usage
    assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, chunk.usage.total_tokens) == (11, 4, 15)
    if usage_at == "final":
        assert chunk is chunks[-1] and chunk.choices[0].finish_reason == "stop"
    else:
        assert chunk is chunks[-1] and chunk.choices == []
        assert chunks[-2].choices[0].finish_reason == "stop"


async def test_reasoning_streams_before_content(model_server: ModelServer) -> None:
    model_server.script(text("Answer.", reasoning="Let me think about it"))

    chunks = await stream_chunks(model_server)

    reasoning = [(chunk.choices[0].delta.model_extra or {}).get("reasoning_content") for chunk in chunks]
    assert "".join(piece for piece in reasoning if piece) == "Let me think about it"
    first_content = next(i for i, chunk in enumerate(chunks) if chunk.choices[0].delta.content)
    assert all(reasoning[:first_content]) and not any(reasoning[first_content:])
    assert getattr(chunks[0].choices[0].delta, "reasoning_content") == reasoning[0]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == "Answer."


async def test_split_parallel_tool_calls_reassemble(model_server: ModelServer) -> None:
    model_server.script(tool_calls([
        ("call_a", "read_file", {"path": "src/app.py", "limit": 40}),
        ("call_b", "shell", '{"command": "ls -la"}'),
    ]))

    chunks = await stream_chunks(model_server)

    fragments = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or []]
    assert [fragment.index for fragment in fragments] == [0, 0, 0, 0, 1, 1, 1, 1]
    openers = [fragment for fragment in fragments if fragment.id]
    assert [(f.index, f.id, f.type, f.function.name) for f in openers] == [
        (0, "call_a", "function", "read_file"), (1, "call_b", "function", "shell")]
    assert all(f.function.name is None and f.type is None for f in fragments if not f.id)
    arguments = ["".join(f.function.arguments or "" for f in fragments if f.index == i) for i in (0, 1)]
    assert json.loads(arguments[0]) == {"path": "src/app.py", "limit": 40}
    assert json.loads(arguments[1]) == {"command": "ls -la"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_whole_tool_calls_arrive_in_one_delta_each(model_server: ModelServer) -> None:
    model_server.script(tool_calls([("call_1", "shell", {"command": "pwd"}), ("call_2", "shell", {"command": "id"})],
                                   content="Running two commands.", split=False))

    chunks = await stream_chunks(model_server)

    calls = [chunk.choices[0].delta.tool_calls for chunk in chunks if chunk.choices[0].delta.tool_calls]
    assert [[(c.index, c.id, c.function.name, json.loads(c.function.arguments)) for c in call] for call in calls] == [
        [(0, "call_1", "shell", {"command": "pwd"})], [(1, "call_2", "shell", {"command": "id"})]]
    assert content_of(chunks) == "Running two commands."


async def test_rate_limit_error_carries_code_and_retry_after(model_server: ModelServer) -> None:
    model_server.script(error(429, code="1302", message="Rate limit reached", retry_after=2))

    with pytest.raises(openai.RateLimitError) as raised:
        await stream_chunks(model_server)

    assert raised.value.response.headers["retry-after"] == "2"
    assert raised.value.code == "1302"
    assert raised.value.body == {"code": "1302", "message": "Rate limit reached", "type": None}
    assert model_server.requests[0].outcome == "error"


async def test_auth_error(model_server: ModelServer) -> None:
    model_server.script(error(401, code="1000", message="Authentication failed"))

    with pytest.raises(openai.AuthenticationError) as raised:
        await stream_chunks(model_server)

    assert raised.value.code == "1000"


async def test_cut_off_stream_raises_rather_than_hangs(model_server: ModelServer) -> None:
    model_server.script(cut_off(text("abcdef", pieces=6), after=2))
    seen: list[str] = []

    async def consume() -> None:
        async with client_for(model_server) as client:
            stream = await client.chat.completions.create(model="glm-4.6", messages=MESSAGES, stream=True)
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError):
        await asyncio.wait_for(consume(), timeout=10)

    assert seen == ["a", "b"]
    assert model_server.requests[0].outcome == "cut"


async def test_non_streamed_request_gets_one_completion(model_server: ModelServer) -> None:
    model_server.script(text("Plain answer.", reasoning="hmm", usage=(7, 3)),
                        tool_calls([("call_1", "shell", {"command": "ls"})]))

    async with client_for(model_server) as client:
        completion = await client.chat.completions.create(model="glm-4.6", messages=MESSAGES)
        with_call = await client.chat.completions.create(model="glm-4.6", messages=MESSAGES)

    assert completion.object == "chat.completion" and completion.model == "glm-4.6"
    assert completion.choices[0].message.content == "Plain answer."
    assert completion.choices[0].message.model_extra == {"reasoning_content": "hmm"}
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 10
    [call] = with_call.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_1", "shell", {"command": "ls"})
    assert with_call.choices[0].finish_reason == "tool_calls"


async def test_requests_are_recorded(model_server: ModelServer) -> None:
    tools = [{"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}}]
    model_server.script(text("one"), text("two"))

    await stream_chunks(model_server, tools=tools)
    async with client_for(model_server) as client:
        await client.chat.completions.create(model="glm-4.5", messages=MESSAGES)

    first, second = await model_server.wait_for_requests_async(2)
    assert first.path == "/v1/chat/completions"
    assert (first.body["model"], first.body["messages"], first.body["tools"], first.body["stream"]) == (
        "glm-4.6", MESSAGES, tools, True)
    assert first.headers["authorization"] == "Bearer sk-test" == first.headers["Authorization"]
    assert second.body["model"] == "glm-4.5" and "stream" not in second.body
    assert model_server.pending == 0


async def test_unscripted_request_is_a_clear_500(model_server: ModelServer) -> None:
    with pytest.raises(openai.InternalServerError, match="no scripted reply"):
        await stream_chunks(model_server)


async def test_raw_chunks_are_streamed_as_given(model_server: ModelServer) -> None:
    model_server.script(raw([
        {"choices": []},
        {"choices": [{"index": 0, "delta": {"content": "blocked"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "sensitive"}]},
        {"choices": None, "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
    ]))

    chunks = await stream_chunks(model_server)

    assert [chunk.choices for chunk in chunks][0] == [] and chunks[3].choices is None
    assert chunks[1].choices[0].delta.content == "blocked"
    assert chunks[2].choices[0].finish_reason == "sensitive"


async def test_drip_streams_as_it_goes_and_stops_when_the_client_leaves(model_server: ModelServer) -> None:
    model_server.script(drip("one two three four five six", interval=0.1))

    async with client_for(model_server) as client:
        stream = await client.chat.completions.create(model="glm-4.6", messages=MESSAGES, stream=True)
        first = await stream.__anext__()
        assert first.choices[0].delta.content == "one"
        assert model_server.requests[0].chunks_sent < 7  # six words and the finishing chunk
        await stream.close()

    await helpers.until(lambda: model_server.requests[0].outcome is not None, 2, interval=0.01, what="the request to end")
    assert model_server.requests[0].outcome == "disconnected"
    assert model_server.requests[0].chunks_sent < 7


async def test_a_paced_stream_keeps_its_timeline_when_the_server_is_held_up(model_server: ModelServer) -> None:
    """Chunk N goes N * interval after the first, also after a hold-up: the chunks due meanwhile
    go at once, the reply is not late by the hold-up (nor by the time each write takes)."""
    model_server.script(drip(" ".join(f"w{i}" for i in range(10)), interval=0.05))  # 10 words, then the end

    async with client_for(model_server) as client:
        stream = await client.chat.completions.create(model="glm-4.6", messages=MESSAGES, stream=True)
        await stream.__anext__()
        first = time.monotonic()
        running = model_server._running
        assert running is not None
        running.loop.call_soon_threadsafe(time.sleep, 0.5)  # the server's loop held up for 0.5 s
        async for _ in stream:
            pass
        took = time.monotonic() - first

    assert 0.5 <= took < 0.85, took  # 10 intervals after the first chunk; 1 s or more with the hold-up added


async def test_pause_delays_the_first_byte(model_server: ModelServer) -> None:
    model_server.script(pause(0.5, text("late")))

    async with client_for(model_server, timeout=0.1) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="glm-4.6", messages=MESSAGES, stream=True)


def test_serves_another_process_and_closes_cleanly() -> None:
    """A subprocess (like the CLI) gets the stream too; close() frees the thread and the port."""
    client = (
        "import json, sys, urllib.request\n"
        "request = urllib.request.Request(sys.argv[1] + '/chat/completions', method='POST',\n"
        "    data=json.dumps({'model': 'm', 'stream': True, 'messages': []}).encode(),\n"
        "    headers={'Content-Type': 'application/json'})\n"
        "with urllib.request.urlopen(request) as response:\n"
        "    sys.stdout.write(response.headers['Content-Type'] + '\\n' + response.read().decode())\n"
    )
    with ModelServer() as server:
        server.script(text("hi", pieces=2))
        output = subprocess.run([sys.executable, "-c", client, server.base_url],
                                capture_output=True, text=True, timeout=30, check=True).stdout
        assert server.wait_for_requests(1)[0].body["model"] == "m"
        port = int(server.base_url.split(":")[2].split("/")[0])
        thread = server._thread

    content_type, *events = output.split("\n")
    assert content_type.startswith("text/event-stream")
    data = [line.removeprefix("data: ") for line in events if line]
    assert data[-1] == "[DONE]"
    assert "".join(json.loads(item)["choices"][0]["delta"].get("content", "") for item in data[:-1]) == "hi"
    assert thread is not None and not thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
