"""HTTP/1.1 to the Docker engine on asyncio streams, h11 speaking the protocol.

The requests a plan step makes in a running environment (find it, exec and stream, read and
write files) go this way. Importing it costs about 7 ms; aiodocker with aiohttp costs about
80 ms, a third of a short `glmtui --run`, and is imported only when something else is asked
of the engine (see `Engine._docker`). Connections are kept and reused, one per request in
flight, at most MAX_IDLE kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import h11

READ_SIZE = 256 * 1024
CONNECT_SECONDS = 10
MAX_IDLE = 8  # connections kept for reuse; more in flight at once are closed when done


class EngineHTTPError(Exception):
    """The engine answered with an error status; `message` is its own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.ended = False  # the engine closed it (a body that ends with the connection: exec output)

    def close(self) -> None:
        self.writer.close()


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


class Wire:
    """Requests to one engine address (unix://PATH, tcp://HOST:PORT, http(s)://HOST:PORT).
    Paths are relative to the API version set by `connect`."""

    def __init__(self, address: str) -> None:
        parts = urlsplit(address)
        if parts.scheme == "unix":
            self._socket_path: str | None = parts.path
            self._tls: ssl.SSLContext | None = None
        elif parts.scheme in ("tcp", "http", "https"):
            self._socket_path = None
            self._host, self._port = parts.hostname or "localhost", parts.port or 2375
            tls = parts.scheme == "https" or os.environ.get("DOCKER_TLS_VERIFY", "0") == "1"
            self._tls = _tls_context() if tls else None
        else:
            raise ValueError(f"unsupported engine address {address!r} (unix://, tcp:// or https://)")
        self._idle: list[_Connection] = []
        self.prefix = ""

    async def connect(self) -> dict[str, Any]:
        """The engine's /version; later paths use its API version."""
        async with asyncio.timeout(CONNECT_SECONDS):
            version = await self.json("GET", "/version")
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
                      body: bytes | None = None, content_type: str = "application/json",
                      ) -> AsyncIterator[Response]:
        """The response of one request, its body not yet read. An error status raises
        EngineHTTPError with the engine's message."""
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = [("Host", "docker"), ("User-Agent", "glmtui"), ("Content-Length", str(len(body or b"")))]
        if body is not None:
            headers.append(("Content-Type", content_type))
        request = [h11.Request(method=method, target=target, headers=headers)]
        request += [h11.Data(data=body)] if body else []
        request.append(h11.EndOfMessage())
        connection, kept = await self._connection()
        reusable = False
        try:
            try:
                head = await _send(connection, request)
            except ConnectionError:
                if not kept:
                    raise
                connection.close()  # the engine closed a kept connection (it restarted): a new one
                connection, kept = await self._connection()
                head = await _send(connection, request)
            response = Response(connection, head)
            if response.status >= 400:
                message = _message(await response.read())
                reusable = response.complete  # an answer like any other: the connection stays good
                raise EngineHTTPError(response.status, message)
            yield response
            reusable = response.complete
        finally:
            self._release(connection, reusable)

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _connection(self) -> tuple[_Connection, bool]:
        """A connection, and whether it is a kept one."""
        if self._idle:
            return self._idle.pop(), True
        async with asyncio.timeout(CONNECT_SECONDS):
            if self._socket_path is not None:
                reader, writer = await asyncio.open_unix_connection(self._socket_path, limit=READ_SIZE)
            else:
                reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls, limit=READ_SIZE)
        return _Connection(reader, writer), False

    def _release(self, connection: _Connection, reusable: bool) -> None:
        protocol = connection.h11
        if (reusable and not connection.ended and len(self._idle) < MAX_IDLE
                and protocol.our_state is h11.DONE and protocol.their_state is h11.DONE):
            protocol.start_next_cycle()
            self._idle.append(connection)
        else:
            connection.close()


async def _send(connection: _Connection, request: list[Any]) -> h11.Response:
    """Send a request, and read the head of its response."""
    for event in request:
        connection.writer.write(connection.h11.send(event))
    while not isinstance(event := await _next_event(connection), h11.Response):
        pass
    return event


async def _next_event(connection: _Connection) -> Any:
    protocol = connection.h11
    try:
        while (event := protocol.next_event()) is h11.NEED_DATA:
            data = await connection.reader.read(READ_SIZE)
            connection.ended = not data
            protocol.receive_data(data)
    except h11.RemoteProtocolError as err:
        raise ConnectionResetError(f"the engine closed the connection ({err})") from None
    return event


def _message(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("message", ""))
    except (ValueError, AttributeError):
        return payload.decode(errors="replace").strip()


def _tls_context() -> ssl.SSLContext:
    """The engine's certificates from DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem), as the
    docker CLI uses them."""
    folder = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise ValueError(f"DOCKER_TLS_VERIFY is set but {os.path.join(folder, name)} is missing (DOCKER_CERT_PATH)")
    context = ssl.create_default_context(cafile=os.path.join(folder, "ca.pem"))
    context.load_cert_chain(os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem"))
    return context
