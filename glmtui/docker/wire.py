"""HTTP/1.1 to a Docker engine, h11 speaking the protocol on the connections of a `transport`.

Every request glmtui makes of an engine goes this way: environments, exec and its streams,
files, images (pulls, builds, imports), logs, stats, events and interactive shells (a 101
upgrade to a raw stream). Importing it costs about 7 ms; see docs/performance.md for why this
and not aiodocker. Connections are kept and reused, one per request in flight, at most MAX_IDLE
kept; over SSH without a forward, where a new connection costs tens to hundreds of milliseconds (a
session on the far side: its shell and `docker system dial-stdio` start), connections are dialled ahead: when a
request holds one to its end (exec output, a shell), and when the caller says it will need more
(`reserve`), so the next request finds one ready.

Errors are the engine layer's family (glmtui.docker.errors): EngineHTTPError for an error
answer, EngineConnectionError for an engine not reached or lost.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import h11

from glmtui.docker.errors import EngineConnectionError, EngineHTTPError
from glmtui.docker.transport import READ_SIZE, Channel, Dialer, tls_failure

CONNECT_SECONDS = 15  # the first answer of an engine; ssh gives up on its own after 10
MAX_IDLE = 8  # connections kept for reuse; more in flight at once are closed when done
BODY_CHUNK = 256 * 1024  # a file sent as a request body goes in pieces of this size

__all__ = ["EngineConnectionError", "EngineHTTPError", "Response", "Upgraded", "Wire"]


class _Connection:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.reader = channel.reader
        self.writer = channel.writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.ended = False  # the engine closed it (a body that ends with the connection: exec output)
        self.answered = False  # an answer came on it: it reached the engine

    def close(self) -> None:
        self.channel.close()


class Response:
    """A response whose body is read as it comes."""

    def __init__(self, connection: _Connection, head: h11.Response) -> None:
        self.status = head.status_code
        self._connection = connection
        self.complete = False

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in."""
        while (data := await self._next()) is not None:
            yield data

    async def iter_lines(self) -> AsyncIterator[bytes]:
        """The body line by line (JSON lines: progress of pulls and builds, stats, events)."""
        pending = b""
        async for data in self.iter_any():
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                yield line
        if pending:
            yield pending

    async def read(self) -> bytes:
        return b"".join([data async for data in self.iter_any()])

    async def _next(self) -> bytes | None:
        while not self.complete:
            event = await _next_event(self._connection)
            if isinstance(event, h11.Data):
                return bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                self.complete = True
        return None


class Upgraded:
    """A connection the engine switched to a raw stream both ways (an interactive exec)."""

    def __init__(self, connection: _Connection, leftover: bytes) -> None:
        self._connection = connection
        self._leftover = leftover

    async def read(self) -> bytes:
        """What came next; b'' once the engine closed the stream."""
        if self._leftover:
            data, self._leftover = self._leftover, b""
            return data
        try:
            return await self._connection.reader.read(READ_SIZE)
        except (OSError, ssl.SSLError) as err:
            raise _lost(err) from None

    async def write(self, data: bytes) -> None:
        try:
            self._connection.writer.write(data)
            await self._connection.writer.drain()
        except (OSError, ssl.SSLError) as err:
            raise _lost(err) from None

    def close(self) -> None:
        self._connection.close()


class Wire:
    """Requests to one engine, through `dialer`. Paths are relative to the API version set by `connect`."""

    def __init__(self, dialer: Dialer) -> None:
        self._dialer = dialer
        self._idle: list[_Connection] = []
        self._spares: list[asyncio.Task[_Connection]] = []  # dialled ahead, oldest first
        self.prefix = ""

    async def connect(self) -> dict[str, Any]:
        """The engine's /version; later paths use its API version."""
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                version = await self.json("GET", "/version")
        except TimeoutError:
            raise EngineConnectionError(f"no answer within {CONNECT_SECONDS} s") from None
        self.prefix = f"/v{version['ApiVersion']}"
        return version

    async def json(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                   body: Any = None) -> Any:
        """A request with a JSON body (when given), its JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        async with self.request(method, path, params=params, body=data) as response:
            payload = await response.read()
        return json.loads(payload) if payload else None

    @asynccontextmanager
    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: bytes | Path | None = None, content_type: str = "application/json",
                      ) -> AsyncIterator[Response]:
        """The response of one request, its body not yet read; `body` may be a file, sent as
        it is read. An error status raises EngineHTTPError with the engine's message."""
        connection, head = await self._exchange(method, path, params, body, content_type)
        reusable = False
        try:
            response = Response(connection, head)
            if response.status >= 400:
                message = _message(await response.read())
                reusable = response.complete  # an answer like any other: the connection stays good
                raise EngineHTTPError(response.status, message)
            if _ends_with_connection(head):
                self.reserve(1)  # this connection ends with the body: the next request needs another
            yield response
            reusable = response.complete
        finally:
            self._release(connection, reusable)

    async def upgrade(self, method: str, path: str, body: Any) -> Upgraded:
        """A request answered by `101 Switching Protocols`: the connection becomes a raw stream."""
        data = json.dumps(body).encode()
        connection, head = await self._exchange(method, path, None, data, "application/json",
                                                upgrade=[("Connection", "Upgrade"), ("Upgrade", "tcp")])
        if not isinstance(head, h11.InformationalResponse) or head.status_code != 101:
            message = _message(await Response(connection, head).read())
            connection.close()
            raise EngineHTTPError(head.status_code, message)
        leftover, _ = connection.h11.trailing_data
        self.reserve(1)
        return Upgraded(connection, bytes(leftover))

    def reserve(self, count: int) -> None:
        """Have `count` connections ready or on their way, over a transport whose dial is slow
        (SSH): what is missing is dialled now, in the background."""
        if not self._dialer.slow:
            return
        while len(self._idle) + len(self._spares) < count:
            spare = asyncio.get_running_loop().create_task(self._dial())
            spare.add_done_callback(lambda task: task.cancelled() or task.exception())
            self._spares.append(spare)

    async def close(self) -> None:
        spares, self._spares = self._spares, []
        for spare in spares:
            spare.cancel()
            try:
                self._idle.append(await spare)
            except (asyncio.CancelledError, EngineConnectionError):
                pass
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        await self._dialer.close()

    # -- connections -------------------------------------------------------------------------

    async def _exchange(self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | Path | None,
                        content_type: str, upgrade: list[tuple[str, str]] | None = None,
                        ) -> tuple[_Connection, Any]:
        """Send a request on a connection, and read the head of its answer."""
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        size = body.stat().st_size if isinstance(body, Path) else len(body or b"")
        headers = [("Host", "docker"), ("User-Agent", "glmtui"), ("Content-Length", str(size)), *(upgrade or [])]
        if body is not None:
            headers.append(("Content-Type", content_type))
        request = h11.Request(method=method, target=target, headers=headers)
        connection, kept = await self._connection()
        try:
            head = await _send(connection, request, body)
        except EngineConnectionError:
            connection.close()
            if not (kept or connection.channel.second_chance):
                raise
            # The engine closed a kept connection (it restarted, or dropped it), or a forward
            # failed (see transport.Channel): a new connection.
            connection = await self._dial()
            try:
                head = await _send(connection, request, body)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        connection.answered = True
        return connection, head

    async def _connection(self) -> tuple[_Connection, bool]:
        """A connection, and whether it was made before this request (kept, or dialled ahead)."""
        if self._idle:
            return self._idle.pop(), True
        while self._spares:
            spare = next((task for task in self._spares if task.done()), self._spares[0])
            self._spares.remove(spare)
            try:
                return await spare, True
            except EngineConnectionError:
                pass  # dialled ahead and failed since: a dial of its own says why
        return await self._dial(), False

    async def _dial(self) -> _Connection:
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                return _Connection(await self._dialer.dial())
        except TimeoutError:
            raise EngineConnectionError(f"no connection within {CONNECT_SECONDS} s") from None

    def _release(self, connection: _Connection, reusable: bool) -> None:
        protocol = connection.h11
        if (reusable and not connection.ended and len(self._idle) < MAX_IDLE
                and protocol.our_state is h11.DONE and protocol.their_state is h11.DONE):
            protocol.start_next_cycle()
            self._idle.append(connection)
        else:
            connection.close()


async def _send(connection: _Connection, request: h11.Request, body: bytes | Path | None) -> Any:
    """Send a request, and read the head of its answer (a Response, or an InformationalResponse
    when the engine switches protocols)."""
    protocol, writer = connection.h11, connection.writer
    try:
        writer.write(protocol.send(request))
        if isinstance(body, Path):
            with body.open("rb") as source:
                while chunk := source.read(BODY_CHUNK):
                    writer.write(protocol.send(h11.Data(data=chunk)))
                    await writer.drain()
        elif body:
            writer.write(protocol.send(h11.Data(data=body)))
        writer.write(protocol.send(h11.EndOfMessage()))
        await writer.drain()
    except (OSError, ssl.SSLError) as err:
        raise await _why_lost(connection, err) from None
    while True:
        event = await _next_event(connection)
        if isinstance(event, (h11.Response, h11.InformationalResponse)) and (
                event.status_code != 100):
            return event
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            raise await _why_lost(connection, ConnectionResetError("the engine closed the connection"))


async def _next_event(connection: _Connection) -> Any:
    protocol = connection.h11
    try:
        while (event := protocol.next_event()) is h11.NEED_DATA:
            data = await connection.reader.read(READ_SIZE)
            connection.ended = not data
            protocol.receive_data(data)
    except (h11.RemoteProtocolError, OSError, ssl.SSLError) as err:
        raise await _why_lost(connection, err) from None
    return event


async def _why_lost(connection: _Connection, err: BaseException) -> EngineConnectionError:
    """The error for a connection that failed: on one that never reached the engine, what its
    carrier says (SSH); else what failed."""
    if not connection.answered:
        reason = await connection.channel.why_closed()
        if reason is not None:
            return reason
    return _lost(err)


def _lost(err: BaseException) -> EngineConnectionError:
    if isinstance(err, EngineConnectionError):
        return err
    if isinstance(err, ssl.SSLError):
        return tls_failure(err)
    if isinstance(err, h11.RemoteProtocolError):
        return EngineConnectionError(f"the engine closed the connection ({err})")
    return EngineConnectionError(str(err) or "the engine closed the connection")


def _ends_with_connection(head: h11.Response) -> bool:
    """A body of no stated length, not chunked: it ends when the engine closes the connection
    (exec output, which the engine sends on the hijacked connection)."""
    names = {name.lower() for name, _ in head.headers}
    return b"content-length" not in names and b"transfer-encoding" not in names


def _message(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("message", ""))
    except (ValueError, AttributeError):
        return payload.decode(errors="replace").strip()
