"""A real local OpenAI-compatible chat-completions server, scripted per test.

It speaks real HTTP and real Server-Sent Events on 127.0.0.1, from its own thread and
event loop, so the same server serves in-process async clients (the `openai` SDK on
the test's loop) and subprocesses (the CLI) alike::

    with ModelServer() as server:
        server.script(text("Hello!", usage=(12, 3)), error(429, code="1302", retry_after=2))
        client = AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        ...
        assert server.requests[0].body["model"] == "glm-4.6"

Each request to `POST /v1/chat/completions` takes the next scripted `Reply` (FIFO). A reply
is a list of chunk bodies; a `"stream": true` request gets them as SSE `data:` lines (each
flushed as written, then `data: [DONE]`), any other request gets them folded into one
`chat.completion` object, so every builder serves both modes.

Builders: `text`, `tool_calls`, `raw`, `error`, `hang_up`, and the modifiers `cut_off`, `pause`,
`drip` (a slow `text`). Modifiers return new replies, so they compose:
`cut_off(pause(1.0, text("slow and broken")), after=2)`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pytest
from aiohttp import web
from multidict import CIMultiDict

__all__ = [
    "ModelServer", "RecordedRequest", "Reply",
    "text", "tool_calls", "raw", "error", "hang_up", "cut_off", "pause", "drip",
    "model_server",
]

UsageAt = Literal["final", "separate"] | None
Pieces = int | Sequence[str] | None


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """One scripted answer to one request. Build it with the functions below.

    `chunks` are chunk bodies without the `id`/`object`/`created`/`model` envelope, which
    the server adds per request (given keys win). `status != 200` makes it an HTTP error
    answered with `error_body`.
    """

    chunks: tuple[dict[str, Any], ...] = ()
    status: int = 200
    error_body: dict[str, Any] | str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    done: bool = True  # send the final `data: [DONE]`
    envelope: bool = True  # add the id/object/created/model keys to each chunk
    cut_after: int | None = None  # close the connection after this many chunks
    delay: float = 0.0  # seconds before the first byte
    interval: float = 0.0  # seconds between chunks: chunk N is sent N * interval after the first
    hang_up: bool = False  # close the connection without any answer


def text(
    content: str,
    *,
    reasoning: str | None = None,
    usage: tuple[int, int] | None = None,
    usage_at: UsageAt = "final",
    pieces: Pieces = 3,
    finish_reason: str = "stop",
    delay: float = 0.0,
) -> Reply:
    """An assistant message: `reasoning_content` deltas (GLM/Z.ai style) if `reasoning` is
    given, then `content` deltas, then a chunk with an empty delta and `finish_reason`.

    `pieces` is how many deltas each text is split into (an int, cuts landing mid-word),
    `None` for one word per delta, or the exact content pieces (a list that must join to
    `content`; reasoning then goes by words). The first delta, reasoning or content,
    carries `"role": "assistant"`.
    `usage=(prompt_tokens, completion_tokens)`; `usage_at="final"` puts it on the finishing
    chunk (Z.ai), `"separate"` in one more chunk with `"choices": []` (OpenAI with
    `stream_options.include_usage`), `None` nowhere.
    """
    deltas: list[dict[str, Any]] = []
    if reasoning is not None:
        reasoning_pieces = pieces if pieces is None or isinstance(pieces, int) else None
        deltas += [{"reasoning_content": piece} for piece in _split(reasoning, reasoning_pieces)]
    deltas += [{"content": piece} for piece in _split(content, pieces)]
    return Reply(chunks=_message_chunks(deltas, finish_reason, usage, usage_at), delay=delay)


def tool_calls(
    calls: Sequence[tuple[str, str, dict[str, Any] | str]],
    *,
    content: str | None = None,
    split: bool = True,
    usage: tuple[int, int] | None = None,
    usage_at: UsageAt = "final",
    finish_reason: str = "tool_calls",
    delay: float = 0.0,
) -> Reply:
    """Tool calls `(call_id, name, arguments)`, arguments a dict or a JSON string; several
    calls are parallel calls with `index` 0, 1, ... Optional `content` deltas come first.

    `split=True` (OpenAI style): a call opens with a delta carrying `index`, `id`,
    `type: "function"`, `function.name` and empty arguments, then its arguments arrive in
    three fragments cut mid-string, each with only `index` and `function.arguments`.
    `split=False` (GLM style): each call arrives whole in one delta.
    """
    deltas: list[dict[str, Any]] = []
    if content is not None:
        deltas += [{"content": piece} for piece in _split(content, 3)]
    for index, (call_id, name, arguments) in enumerate(calls):
        arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
        opening = {"index": index, "id": call_id, "type": "function",
                   "function": {"name": name, "arguments": "" if split else arguments}}
        deltas.append({"tool_calls": [opening]})
        if split:
            deltas += [{"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                       for fragment in _split(arguments, 3)]
    return Reply(chunks=_message_chunks(deltas, finish_reason, usage, usage_at), delay=delay)


def raw(chunks: Sequence[dict[str, Any]], *, done: bool = True, envelope: bool = True) -> Reply:
    """Arbitrary chunk dicts streamed as given, for odd shapes: `"choices": None`,
    `"choices": []`, `finish_reason="sensitive"`, an in-stream `{"error": {...}}`...

    With `envelope=True` the usual id/object/created/model keys are added where missing;
    `envelope=False` sends the dicts exactly. `done=False` omits `data: [DONE]` (the
    connection still ends cleanly).
    """
    return Reply(chunks=tuple(chunks), done=done, envelope=envelope)


def error(
    status: int,
    *,
    code: str | None = None,
    message: str = "scripted error",
    retry_after: float | str | None = None,
    type: str | None = None,  # noqa: A002 - the JSON field's name
    body: dict[str, Any] | str | None = None,
) -> Reply:
    """An HTTP error answered before any streaming: JSON
    `{"error": {"code": ..., "message": ..., "type": ...}}` (Z.ai sends string business
    codes such as "1302" rate limit, "1113" no balance, "1211" unknown model, "1301"
    unsafe content, "1000" auth failure) and a `Retry-After` header when given.
    `body` replaces the whole body (a dict as JSON, a str as plain text, e.g. a proxy's HTML).
    """
    if body is None:
        body = {"error": {"code": code, "message": message, "type": type}}
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return Reply(status=status, error_body=body, headers=headers)


def hang_up() -> Reply:
    """No answer at all: the connection is closed once the request is read (a server restarting,
    a proxy dropping an idle connection)."""
    return Reply(hang_up=True)


def cut_off(reply: Reply, *, after: int) -> Reply:
    """`reply`, but the connection is closed abruptly after `after` chunks: no finishing
    chunk, no `[DONE]`, an unterminated chunked body. A non-streamed request gets its
    connection closed without any response."""
    return replace(reply, cut_after=after)


def pause(seconds: float, reply: Reply) -> Reply:
    """`reply`, after waiting `seconds` more before the first byte (timeouts, time to first token)."""
    return replace(reply, delay=reply.delay + seconds)


def drip(
    content: str,
    *,
    interval: float = 0.2,
    pieces: Pieces = None,
    reasoning: str | None = None,
    usage: tuple[int, int] | None = None,
) -> Reply:
    """A slow `text` stream: one chunk every `interval` seconds, by default one word per chunk.

    For cancelling mid-reply: the server stops writing as soon as the client disconnects
    (the request's `outcome` becomes "disconnected").
    """
    return replace(text(content, reasoning=reasoning, usage=usage, pieces=pieces), interval=interval)


def _split(value: str, pieces: Pieces) -> list[str]:
    """`value` in `pieces` near-equal parts (a cut lands wherever it lands: mid-word, mid-key),
    word by word for `None`, or the given parts."""
    if pieces is None:
        return _words(value)
    if not isinstance(pieces, int):
        if "".join(pieces) != value:
            raise ValueError(f"pieces {list(pieces)!r} do not join to {value!r}")
        return list(pieces)
    count = max(1, min(pieces, len(value)))
    return [value[len(value) * i // count:len(value) * (i + 1) // count] for i in range(count)]


def _words(value: str) -> list[str]:
    """Each word with the whitespace before it; joins back to `value`."""
    return [word for word in re.split(r"(?<=\S)(?=\s)", value) if word] or [value]


def _message_chunks(
    deltas: list[dict[str, Any]], finish_reason: str, usage: tuple[int, int] | None, usage_at: UsageAt,
) -> tuple[dict[str, Any], ...]:
    if deltas:
        deltas[0] = {"role": "assistant", **deltas[0]}
    chunks = [_choice_chunk(delta) for delta in deltas]
    finishing = _choice_chunk({}, finish_reason)
    chunks.append(finishing)
    if usage is not None and usage_at == "final":
        finishing["usage"] = _usage(usage)
    elif usage is not None and usage_at == "separate":
        chunks.append({"choices": [], "usage": _usage(usage)})
    return tuple(chunks)


def _choice_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(chunks: Sequence[dict[str, Any]], envelope: dict[str, Any]) -> dict[str, Any]:
    """The chunks folded into one non-streamed `chat.completion`, the way a client would."""
    content: str | None = None
    reasoning: str | None = None
    calls: dict[int, dict[str, Any]] = {}
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content") is not None:
                content = (content or "") + delta["content"]
            if delta.get("reasoning_content") is not None:
                reasoning = (reasoning or "") + delta["reasoning_content"]
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": None, "type": "function",
                                                        "function": {"name": "", "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] = function.get("name") or slot["function"]["name"]
                slot["function"]["arguments"] += function.get("arguments") or ""
            finish_reason = choice.get("finish_reason") or finish_reason
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    completion = {**envelope, "object": "chat.completion",
                  "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}
    if usage is not None:
        completion["usage"] = usage
    return completion


# --------------------------------------------------------------------------- server


@dataclass
class RecordedRequest:
    """A request as the server saw it. `body` is the parsed JSON (None if it was not JSON).

    `outcome` is set by the server when it is done answering: "complete", "error" (a
    scripted HTTP error), "unscripted", "cut", "disconnected" (the client went away
    mid-stream) or "not found". `chunks_sent` counts the chunks written so far.
    """

    path: str
    headers: CIMultiDict[str]
    body: Any
    outcome: str | None = None
    chunks_sent: int = 0


@dataclass
class _Running:
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event


class ModelServer:
    """The server. `start()`/`close()`, or use it as a context manager."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: collections.deque[Reply] = collections.deque()
        self._changed = threading.Condition()
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._running: _Running | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # ---- lifecycle

    def start(self) -> ModelServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._thread_main, args=(sock,), name="model-server", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._startup_error is not None or self._running is None:
            self._thread.join(timeout=5)
            raise RuntimeError("model server did not start") from self._startup_error
        return self

    def close(self) -> None:
        """Stop serving (in-flight handlers get a moment, then are cancelled) and join the thread."""
        if self._running is not None:
            self._running.loop.call_soon_threadsafe(self._running.stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError("model server thread did not stop")
        self._running = None
        self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("model server not started")
        return f"http://127.0.0.1:{self._port}/v1"

    # ---- scripting and inspection

    def script(self, *replies: Reply) -> None:
        """Append replies to the queue; each request takes the next one."""
        with self._changed:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet taken."""
        with self._changed:
            return len(self._replies)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until `n` requests have arrived; returns them all. In an async test, prefer
        `wait_for_requests_async` so the test's own loop keeps running."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"expected {n} requests within {timeout}s, got {len(self.requests)}")
            return list(self.requests)

    async def wait_for_requests_async(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        return await asyncio.to_thread(self.wait_for_requests, n, timeout)

    async def outcomes(self, timeout: float = 5.0) -> list[str | None]:
        """Every request's outcome, once the server has noted each: it does so just after writing
        the last byte, which the client may have read (and returned) a moment before."""
        deadline = time.monotonic() + timeout
        while any(r.outcome is None for r in self.requests) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return [r.outcome for r in self.requests]

    # ---- serving (on the server's own thread and loop)

    def _thread_main(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            self._startup_error = exc
        finally:
            sock.close()
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a client hanging up cancels its handler at once (drip stops).
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.05)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            self._running = _Running(asyncio.get_running_loop(), asyncio.Event())
            self._ready.set()
            await self._running.stop.wait()
        finally:
            await runner.cleanup()

    def _record(self, request: web.Request, body: Any) -> tuple[int, RecordedRequest]:
        record = RecordedRequest(path=request.path, headers=CIMultiDict(request.headers), body=body)
        with self._changed:
            self.requests.append(record)
            self._changed.notify_all()
            return len(self.requests), record

    def _next_reply(self) -> Reply | None:
        with self._changed:
            return self._replies.popleft() if self._replies else None

    async def _not_found(self, request: web.Request) -> web.Response:
        _, record = self._record(request, await _json_or_none(request))
        record.outcome = "not found"
        return web.json_response({"error": {"code": "404", "message": f"no route {request.method} {request.path}",
                                            "type": "model_server"}}, status=404)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await _json_or_none(request)
        number, record = self._record(request, body)
        reply = self._next_reply()
        if reply is None:
            record.outcome = "unscripted"
            return web.json_response({"error": {
                "code": "no_scripted_reply", "type": "model_server",
                "message": f"no scripted reply for request #{number}: call server.script(...) with more replies",
            }}, status=500)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hang_up:
            return _cut(request, record)
        if reply.status != 200:
            record.outcome = "error"
            return _error_response(reply)
        request_body = body if isinstance(body, dict) else {}
        envelope = {"id": f"chatcmpl-{number}", "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": request_body.get("model", "")}
        if request_body.get("stream"):
            return await self._stream(request, reply, envelope, record)
        if reply.cut_after is not None:
            return _cut(request, record)
        record.outcome = "complete"
        return web.json_response(_completion(reply.chunks, envelope))

    async def _stream(
        self, request: web.Request, reply: Reply, envelope: dict[str, Any], record: RecordedRequest,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        start = loop.time()  # the first chunk's time
        try:
            for number, chunk in enumerate(reply.chunks):
                if reply.cut_after is not None and record.chunks_sent >= reply.cut_after:
                    return _cut(request, record, response)
                if reply.interval and number:
                    # A fixed timeline: chunk N is due `N * interval` after the first, however long
                    # the writes took (a remote model is not slowed down by a busy client either).
                    await asyncio.sleep(max(0.0, start + number * reply.interval - loop.time()))
                payload = {**envelope, **chunk} if reply.envelope else chunk
                await response.write(f"data: {json.dumps(payload)}\n\n".encode())
                record.chunks_sent += 1
            if reply.cut_after is not None:
                return _cut(request, record, response)
            if reply.done:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            record.outcome = "disconnected"
            raise
        record.outcome = "complete"
        return response


async def _json_or_none(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _error_response(reply: Reply) -> web.Response:
    if isinstance(reply.error_body, str):
        return web.Response(status=reply.status, text=reply.error_body, headers=dict(reply.headers))
    return web.json_response(reply.error_body, status=reply.status, headers=dict(reply.headers))


def _cut(request: web.Request, record: RecordedRequest, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the connection mid-answer. close(), not abort(): chunks already written still go out.
    aiohttp then fails to finish the response, and ignores that."""
    record.outcome = "cut"
    if request.transport is not None:
        request.transport.close()
    return response if response is not None else web.StreamResponse()


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A started `ModelServer`, closed after the test."""
    with ModelServer() as server:
        yield server
