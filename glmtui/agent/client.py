"""One model call, streamed: the openai SDK's async client against any OpenAI-compatible endpoint.

It takes GLM's stream as well as OpenAI's: `reasoning_content` deltas, usage on the finishing
chunk, in a chunk of its own or not at all, tool calls whole in one delta or in fragments,
`choices` empty or null, finish reasons it does not know. Errors become one clear line each
(ModelError). Retries are made here rather than by the SDK: Z.ai answers 429 for an exhausted
quota too (codes 1113, 1308-1310), and that must not be retried. What is retried: a rate limit,
a server error (5xx), and a connection the endpoint closed before it answered; never a
connection that cannot be made (refused, unknown host, TLS), which fails at once, and never a
reply that has begun. Each retry is announced (`on_retry`) before its pause.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from glmtui.agent.providers import Provider
from glmtui.errors import WorkFailed

RETRIES = 4  # attempts after the first, for rate limits, server errors and dropped connections
MAX_DELAY = 30.0
AUTH_CODES = {"1000", "1001", "1002", "1003", "1004"}
RATE_CODES = {"1302", "1303"}
QUOTA_CODES = {"1113", "1308", "1309", "1310"}
RETRIED = {"rate_limit", "server", "dropped"}
DROPPED_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}  # the endpoint hung up on a request


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


@dataclass
class ToolCallRequest:
    id: str
    name: str
    arguments: str  # JSON text as the model wrote it; parsed (and refused) by the agent loop


@dataclass
class Reply:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    usage: Usage | None = None  # None: the endpoint did not say
    finish_reason: str | None = None

    def as_message(self) -> dict[str, Any]:
        """The assistant message to send back in the next turn (OpenAI format)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in self.tool_calls
            ]
        return message


class ModelError(WorkFailed):
    """A model call failed; `kind` says how: auth, rate_limit, quota, model, refused, server,
    bad_request, stream (a reply cut off), unreachable (no connection could be made), dropped
    (the endpoint closed the connection before answering), timeout."""

    def __init__(self, kind: str, message: str, *, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryNotice:
    """A failed attempt that is retried: what failed, the pause before the next attempt, which
    attempt that is and how many there are at most."""

    error: ModelError
    delay: float
    attempt: int  # 2 for the first retry
    attempts: int

    def __str__(self) -> str:
        return f"{self.error.message}: retrying in {self.delay:.1f} s (attempt {self.attempt} of {self.attempts})"


TextCallback = Callable[[str], None]


class ModelClient:
    """A provider's endpoint. `stream()` is one model turn; `close()` when done."""

    def __init__(self, provider: Provider, *, api_key: str | None = None, timeout: float = 600.0,
                 retries: int = RETRIES) -> None:
        from openai import AsyncOpenAI, DefaultAioHttpClient  # about 0.4 s to import: only when a model is used

        self.retries = retries
        self.timeout = timeout
        self.provider = provider
        self._key = api_key if api_key is not None else provider.api_key()
        # The SDK's aiohttp transport: aiohttp's C parser reads the chunked stream, so a streamed
        # reply costs about half the CPU of the default transport (h11 in Python, chunk by chunk)
        # and its last words arrive ~4 ms sooner in a burst (bench/agent.py, "stream").
        self._client = AsyncOpenAI(
            base_url=provider.base_url, api_key=self._key, max_retries=0, timeout=timeout,
            default_headers=dict(provider.headers) or None, http_client=DefaultAioHttpClient(timeout=timeout),
        )
        self.sleep = asyncio.sleep  # the pause between retries (tests shorten it)

    async def close(self) -> None:
        await self._client.close()

    async def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        temperature: float | None = None,
        response_format: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        on_text: TextCallback | None = None,
        on_reasoning: TextCallback | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> Reply:
        """One streamed completion. Retried (with backoff, honouring Retry-After) only while
        nothing of the reply has arrived, so text is never shown twice; `on_retry` hears of
        each retry before its pause."""
        request: dict[str, Any] = {
            "model": model or self.provider.model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = list(tools)
        if temperature is not None:
            request["temperature"] = temperature
        if response_format is not None:
            request["response_format"] = dict(response_format)
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        request.update(self.provider.extra_body)  # e.g. GLM's "thinking", at the body's top level
        for attempt in range(self.retries + 1):
            reply = Reply()
            try:
                return await self._one(request, reply, on_text, on_reasoning)
            except ModelError as err:
                started = bool(reply.content or reply.reasoning or reply.tool_calls)
                if err.kind not in RETRIED or started or attempt == self.retries:
                    raise
                delay = err.retry_after if err.retry_after is not None else min(MAX_DELAY, 2**attempt + random.random())
                if on_retry:
                    on_retry(RetryNotice(err, delay, attempt + 2, self.retries + 1))
                await self.sleep(delay)
        raise AssertionError("unreachable")

    async def _one(self, request: dict[str, Any], reply: Reply, on_text: TextCallback | None,
                   on_reasoning: TextCallback | None) -> Reply:
        import openai

        calls: dict[int, ToolCallRequest] = {}
        try:
            # The SDK's own request and SSE stream, through `post` (its way to any endpoint): the
            # body goes as the JSON it is, where `chat.completions.create` first walks every
            # message to transform its types (12 ms a turn for 60 messages), and each chunk stays
            # as the JSON decoded it, where `create` builds a model of it (~0.1 ms a chunk).
            stream = await self._client.post("/chat/completions", body=request, cast_to=object, stream=True,
                                             stream_cls=openai.AsyncStream[object])
            async with stream:
                async for chunk in stream:
                    usage = chunk.get("usage")
                    if usage:
                        reply.usage = Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
                    for choice in chunk.get("choices") or ():
                        self._take(choice, reply, calls, on_text, on_reasoning)
        except openai.APIStatusError as err:
            raise self._status_error(err) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as err:
            started = reply.content or reply.reasoning or calls
            if started:
                raise ModelError("stream", f"{self.provider.name}: the reply was cut off ({_cause(err)})",
                                 hint="send the message again") from None
            raise self._connection_error(err) from None
        except openai.APIError as err:  # e.g. an error event inside the stream
            raise ModelError("stream", f"{self.provider.name}: {self._scrub(str(err))}") from None
        reply.tool_calls = [calls[index] for index in sorted(calls)]
        return reply

    @staticmethod
    def _take(choice: Mapping[str, Any], reply: Reply, calls: dict[int, ToolCallRequest],
              on_text: TextCallback | None, on_reasoning: TextCallback | None) -> None:
        delta = choice.get("delta") or {}
        thinking = delta.get("reasoning_content")
        if thinking:
            reply.reasoning += thinking
            if on_reasoning:
                on_reasoning(thinking)
        content = delta.get("content")
        if content:
            reply.content += content
            if on_text:
                on_text(content)
        for fragment in delta.get("tool_calls") or ():
            index = fragment.get("index")
            call = calls.setdefault(len(calls) if index is None else index, ToolCallRequest("", "", ""))
            call.id = call.id or (fragment.get("id") or "")
            function = fragment.get("function") or {}
            call.name = call.name or (function.get("name") or "")
            arguments = function.get("arguments")
            if isinstance(arguments, (dict, list)):  # a whole object instead of JSON text
                arguments = json.dumps(arguments)
            call.arguments += arguments or ""
        if choice.get("finish_reason"):
            reply.finish_reason = str(choice["finish_reason"])
        for index, call in calls.items():
            call.id = call.id or f"call_{index}"

    def _status_error(self, err: Any) -> ModelError:
        status = err.status_code
        body = err.body if isinstance(err.body, dict) else {}
        detail = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        code = str(detail.get("code") or body.get("code") or "")
        text = self._scrub(str(detail.get("message") or body.get("message") or err.message or ""))
        name = self.provider.name
        said = f"HTTP {status}{f', code {code}' if code else ''}"
        if code in QUOTA_CODES:
            return ModelError("quota", f"{name}: quota or balance exhausted ({said}): {text}",
                              hint="top up or wait for the quota to renew; not retried")
        if status in (401, 403) or code in AUTH_CODES:
            key = self.provider.api_key_env or "the API key"
            return ModelError("auth", f"{name}: the API key was refused ({said}): {text}", hint=f"check {key}")
        if status == 429 or code in RATE_CODES:
            return ModelError("rate_limit", f"{name}: rate limited ({said}): {text}",
                              retry_after=_retry_after(err.response.headers))
        if code == "1211" or status == 404:
            return ModelError("model", f"{name}: unknown model or endpoint ({said}): {text}",
                              hint=f"check the model name ({self.provider.model}) and base_url")
        if code == "1301":
            return ModelError("refused", f"{name}: the provider refused the content ({said}): {text}")
        if status >= 500:
            return ModelError("server", f"{name}: the provider failed ({said}): {text}")
        return ModelError("bad_request", f"{name}: the request was refused ({said}): {text}")

    def _connection_error(self, err: BaseException) -> ModelError:
        """What went wrong with the connection, in words of our own (the transport's read "Cannot
        connect to host … ssl:default [Connect call failed …]")."""
        import ssl

        from aiohttp import ClientConnectorError, ClientPayloadError, ConnectionTimeoutError, ServerDisconnectedError

        name, url = self.provider.name, self.provider.base_url
        check = f"`glmtui models check {name}` tries it"
        chain = _chain(err)

        def found(*types: type[BaseException]) -> bool:
            return any(isinstance(e, types) for e in chain)

        tls = next((e for e in reversed(chain) if isinstance(e, ssl.SSLError)), None)  # the ssl module's own
        if tls is not None:
            why = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or "handshake failed"
            why = str(why).replace("_", " ").lower()
            return ModelError("unreachable", f"{name}: cannot connect to {url}: TLS failed ({why})",
                              hint=f"check http:// or https:// in its base_url and the server's certificate; {check}")
        if found(socket.gaierror):
            host = urlsplit(url).hostname or url
            return ModelError("unreachable", f"{name}: cannot connect to {url}: unknown host {host}",
                              hint=f"check the host in its base_url and the network's name service; {check}")
        if found(ConnectionRefusedError):
            return ModelError("unreachable", f"{name}: cannot connect to {url}: connection refused",
                              hint=f"check that the server runs and its base_url; {check}")
        if found(ClientConnectorError, ConnectionTimeoutError):
            code = next((e.errno for e in reversed(chain) if isinstance(e, OSError) and e.errno), None)
            why = (os.strerror(code).lower() if code else "connection reset" if found(ConnectionResetError)
                   else "timed out" if found(TimeoutError) else "no connection")
            return ModelError("unreachable", f"{name}: cannot connect to {url}: {why}",
                              hint=f"check its base_url and the network; {check}")
        if found(TimeoutError):
            return ModelError("timeout", f"{name}: no answer from {url} within {self.timeout:g} s",
                              hint=f"try again; {check}")
        if found(ServerDisconnectedError, ClientPayloadError, ConnectionError) or any(
                isinstance(e, OSError) and e.errno in DROPPED_ERRNOS for e in chain):
            return ModelError("dropped", f"{name}: {url} closed the connection before answering",
                              hint=f"send the message again; {check}")
        return ModelError("unreachable", f"{name}: the connection to {url} failed ({_cause(err)})",
                          hint=f"check its base_url and the network; {check}")

    def _scrub(self, text: str) -> str:
        """One line, and never the key, whatever an endpoint echoes back."""
        if self._key and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return " ".join(text.split())


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return min(MAX_DELAY, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to backoff


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and what caused it, and what caused that..."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _cause(err: BaseException) -> str:
    cause = err.__cause__ or err.__context__
    text = str(cause) if cause else str(err)
    return text.splitlines()[0] if text else type(err).__name__
