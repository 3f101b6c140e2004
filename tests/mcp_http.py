"""The MCP face over streamable HTTP in a real process, until `glmtui serve` mounts it at /mcp.

    python tests/mcp_http.py TOKEN

serves McpFace.asgi at http://127.0.0.1:PORT/mcp (a random free port, printed as the first
line of stdout) with a service of its own (engine, store, config as `glmtui mcp` has them),
behind a bearer-token check as `glmtui serve`'s, until SIGTERM or SIGINT. Its log goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from glmtui.config import Config  # noqa: E402
from glmtui.docker.engine import Engine  # noqa: E402
from glmtui.server.mcp import McpFace, _stderr_line  # noqa: E402
from glmtui.service.service import Service  # noqa: E402
from glmtui.store import Store  # noqa: E402


class BearerToken:
    """401 for a request without `Authorization: Bearer TOKEN`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await JSONResponse({"error": "missing or wrong token"}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def main(token: str) -> None:
    config = Config.load()
    engine = await Engine.connect(config.get("docker_host"))
    store = Store()
    service = Service(engine, store, config, announce=_stderr_line)
    face = McpFace(service, config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any):
        async with face.running():
            yield
        await service.shutdown()

    app = BearerToken(Starlette(routes=[Route("/mcp", endpoint=face.asgi)], lifespan=lifespan), token)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    try:
        await server.serve(sockets=[listener])
    finally:
        await engine.close()
        store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
