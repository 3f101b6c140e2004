"""Where `glmtui serve` listens, and the HTTP server (uvicorn) that serves the app there.

Binding beyond loopback needs TLS (`--tls-cert` and `--tls-key`: uvicorn speaks TLS itself) or
`--insecure-bind`, which the start line and the log warn about at every start. The socket is
bound before anything is served, so a port in use is one line and exit 2; port 0 takes any
free port (the start line says which). uvicorn runs inside serve's own event loop, with
serve's signal handling: Ctrl-C and SIGTERM stop the work first, then the server. The faces'
lifespans are left as soon as it stops, while uvicorn gives open requests their GRACE: a face
ends its own long-lived streams there (MCP's sessions), which would otherwise hold every stop
for the whole grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtui.errors import BadInput
from glmtui.server.auth import WILDCARDS, is_loopback

GRACE = 5  # seconds open connections get to finish when the server stops


@dataclass(frozen=True)
class Bind:
    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> None:
        """BadInput (nothing started) when the address needs TLS it does not have, or the TLS
        files are half given or cannot be read."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise BadInput("TLS needs both --tls-cert FILE and --tls-key FILE")
        if self.tls:
            assert self.tls_cert is not None and self.tls_key is not None
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as err:
                raise BadInput(f"cannot use {self.tls_cert} and {self.tls_key} for TLS: "
                               f"{getattr(err, 'strerror', None) or err}") from None
        elif not self.loopback and not self.insecure:
            where = "every address" if self.host in WILDCARDS else self.host
            raise BadInput(f"serving on {where} (beyond loopback) needs TLS: give --tls-cert FILE and --tls-key FILE",
                           hint="or --insecure-bind, and the token and everything else cross the network in clear text")

    def warning(self) -> str | None:
        if self.loopback or self.tls:
            return None
        return (f"warning: serving on {self.host} without TLS (--insecure-bind): the token and everything else "
                "cross the network in clear text")

    def url(self, port: int) -> str:
        host = self.host if self.host not in WILDCARDS else ("0.0.0.0" if ":" not in self.host else "::")
        shown = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{shown}:{port}"


def listen(bind: Bind) -> socket.socket:
    """A listening socket at the address, or BadInput saying why not."""
    try:
        infos = socket.getaddrinfo(bind.host or None, bind.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise BadInput(f"cannot listen on {bind.host}: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise BadInput(f"cannot listen on {bind.host}:{bind.port}: the address is in use",
                           hint="another program serves there: pick another port with --port") from None
        raise BadInput(f"cannot listen on {bind.host}:{bind.port}: {err.strerror}") from None
    sock.setblocking(False)
    return sock


class HttpServer:
    """uvicorn serving `app` on an already bound socket, in the running event loop."""

    def __init__(self, app: Any, bind: Bind, log: Callable[[str], None],
                 lifespans: Sequence[Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = ()) -> None:
        import uvicorn

        stopping = self.stopping = asyncio.Event()

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # serve's own handlers stop it
                yield

            async def main_loop(self) -> None:
                """uvicorn's loop wakes 10 times a second to see whether to stop; this one once a
                second, for the Date header (on_tick(0) renews it), and at once when stopped."""
                while not await self.on_tick(0):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), 1.0)

        self.socket = listen(bind)
        self.port = self.socket.getsockname()[1]
        self.lifespans = lifespans
        _log_to(log)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, server_header=False, proxy_headers=False, lifespan="off",
            timeout_graceful_shutdown=GRACE, ssl_certfile=bind.tls_cert, ssl_keyfile=bind.tls_key,
        )
        config.load()
        self.server = Server(config)

    async def run(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            for lifespan in self.lifespans:
                await stack.enter_async_context(lifespan())
            serving = asyncio.ensure_future(self.server.serve(sockets=[self.socket]))
            stopped = asyncio.ensure_future(self.stopping.wait())
            try:
                await asyncio.wait([serving, stopped], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)
                raise
            finally:
                stopped.cancel()
        await serving

    def stop(self) -> None:
        """Stop accepting; open connections get GRACE seconds to finish."""
        self.server.should_exit = True
        self.stopping.set()


class _LogLines(logging.Handler):
    def __init__(self, line: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.line = line

    def emit(self, record: logging.LogRecord) -> None:
        self.line(f"{'http' if record.name.startswith('uvicorn') else record.name}: {record.getMessage()}")


def _log_to(line: Callable[[str], None]) -> None:
    """uvicorn's and asyncio's warnings and errors (bad requests, TLS handshakes, writes to a
    client that went away) to the serve log, not to serve's terminal."""
    for name in ("uvicorn.error", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers = [_LogLines(line)]
        logger.propagate = False
