"""The ASGI application of `glmtui serve`: the API and every other face, behind one gate.

`build_app(api, settings, faces)` mounts the API at /api/v1 and each Face (MCP at /mcp, later
the dashboard at /) beside it: a face's path that ends in `/` is a tree (everything under it),
any other is one path (`/mcp`, with no redirect to `/mcp/`). Every request, to any face, passes
the same layers, outermost first:

1. errors: whatever a face raises is logged with its traceback to the serve log and answered
   500 `{"error": ...}` naming that log; nothing of it reaches the client;
2. the Host header (auth.HostNames), 400 when it is not one the server answers to;
3. CORS, only when `serve.cors_origins` names origins;
4. the bearer token (auth.TokenFile), 401 without it; health and webhooks are public; below a
   face with a session cookie (the dashboard: a browser sends no bearer header when it opens a
   page or a WebSocket) that cookie does too, and a browser without it is sent to the face's
   login form;
5. the body limit (`serve.max_body`), 413.

A face is an ASGI app with a path to mount it at and a line for the start line; a face that
needs start-up and shut-down (the MCP session manager) gives a `lifespan`, an async context
manager that the server (glmtui.server.listen) enters before it accepts connections and leaves
as soon as it stops, while open requests get their grace (so a face ends its long-lived streams).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route, Router, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glmtui.server.auth import HostNames, RefusalLog, TokenFile, bearer, cookie, shown
from glmtui.server.http import BodyTooLarge, error_response


@dataclass(frozen=True)
class Face:
    """Something served beside the API, behind the same gate."""

    path: str  # where it is mounted, e.g. "/mcp"
    app: ASGIApp
    what: str  # for the start line and the OpenAPI document, e.g. "MCP (streamable HTTP)"
    lifespan: Callable[[], AbstractAsyncContextManager[Any]] | None = None
    public: tuple[str, ...] = ()  # paths below `path` that need no token (a login form)
    cookie: str | None = None  # a cookie that stands for the token below `path` (auth.TokenFile.session)
    login: str | None = None  # where a browser that opens a page below `path` without it is sent


@dataclass
class Settings:
    """What `glmtui serve` was started with, resolved."""

    token: TokenFile
    hosts: HostNames
    plans: Any  # glmtui.server.plans.PlanCatalog: the plans and the policy (serve.allow), MCP's too
    max_body: int
    log: Callable[[str], None]  # one line to the serve log
    log_path: Path
    cors_origins: Sequence[str] = ()
    hooks: dict[str, Any] = field(default_factory=dict)  # name -> glmtui.server.hooks.Hook
    hook_secrets: dict[str, bytes] = field(default_factory=dict)
    hook_window: float = 300.0
    face_paths: list[tuple[str, str]] = field(default_factory=list)  # (path, what) of the faces beside the API


def build_app(api: Any, settings: Settings, faces: Sequence[Face] = ()) -> ASGIApp:
    """The application: the API (glmtui.server.api.Api) and the faces, behind the gate."""
    from glmtui.server.api import public_paths

    settings.face_paths = [(face.path, face.what) for face in faces]
    refused = RefusalLog(settings.log)

    async def http_error(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(404, f"no such endpoint: {request.method} {shown(request.url.path)} "
                                       "(GET /api/v1/openapi.json lists them)")
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not a method of {shown(request.url.path)}",
                                  headers=exc.headers)
        return error_response(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Any:
        return error_response(500, f"internal error: the serve log has the traceback ({settings.log_path})")

    middleware = [Middleware(HostCheck, hosts=settings.hosts, refused=refused)]
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST", "DELETE"],
                                     allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                                     expose_headers=["Location"]))
    middleware += [
        Middleware(TokenCheck, token=settings.token, refused=refused,
                   public=public_paths() + [face.path.rstrip("/") + path for face in faces for path in face.public],
                   faces=faces),
        Middleware(BodyLimit, limit=settings.max_body),
    ]
    routes = [*api.routes(), *(route for face in faces for route in _routes_of(face))]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    return Logged(app, settings.log)


def _routes_of(face: Face) -> list[BaseRoute]:
    """A face's routes: mounted at its path (a path without a trailing / is that one route); a
    face at / (a Router) gives its own routes, since a Mount at / would take every path, and
    the API's 404 and 405 answers with them."""
    if face.path.rstrip("/") == "" and isinstance(face.app, Router):
        return list(face.app.routes)
    if not face.path.endswith("/"):  # one path (/mcp): not redirected to /mcp/
        return [Route(face.path, endpoint=face.app)]
    return [Mount(face.path, app=face.app)]


class Logged:
    """The outermost layer: an exception that got through (Starlette has answered 500 already)
    goes to the serve log with its traceback, and no further."""

    def __init__(self, app: ASGIApp, log: Callable[[str], None]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as err:  # noqa: BLE001 - the one place that logs what no face handled
            where = f"{scope.get('method', '')} {shown(scope.get('path', ''))}".strip()
            self.log(f"api: internal error in {where}: {type(err).__name__}: {err}\n"
                     + "".join(traceback.format_exception(err)).rstrip())


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class HostCheck:
    def __init__(self, app: ASGIApp, hosts: HostNames, refused: RefusalLog) -> None:
        self.app = app
        self.hosts = hosts
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if self.hosts.allows(host):
            await self.app(scope, receive, send)
            return
        self.refused(f"api: refused {scope.get('method', '')} {shown(scope['path'])} from {_peer(scope)}: "
                     f"Host {shown(host or '(none)')} is not a name of this server")
        await error_response(400, f"the Host header {shown(host or '(none)', 80)!r} is not a name this server answers "
                                  f"to ({self.hosts.describe()}; more in config serve.hosts)")(scope, receive, send)


class TokenCheck:
    def __init__(self, app: ASGIApp, token: TokenFile, public: list[str], refused: RefusalLog,
                 faces: Sequence[Face] = ()) -> None:
        self.app = app
        self.token = token
        self.public = [compile_path(path)[0] for path in public]
        self.refused = refused
        self.faces = sorted(faces, key=lambda face: len(face.path), reverse=True)  # the deepest path first

    def face_of(self, path: str) -> Face | None:
        """The face that serves `path` (the API's own paths are no face's)."""
        from glmtui.server.api import PREFIX

        if path == PREFIX or path.startswith(PREFIX + "/"):
            return None
        for face in self.faces:
            base = face.path.rstrip("/")
            if path == base or path.startswith(base + "/"):
                return face
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or any(p.match(scope["path"]) for p in self.public):
            await self.app(scope, receive, send)
            return
        given = bearer(_header(scope, b"authorization"))
        if given is not None and self.token.matches(given):
            await self.app(scope, receive, send)
            return
        face = self.face_of(scope["path"])
        session = cookie(_header(scope, b"cookie"), face.cookie) if face is not None and face.cookie else None
        if given is None and session is not None and self.token.session_matches(session):
            await self.app(scope, receive, send)
            return
        if given is None and face is not None and face.login is not None \
                and scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            await RedirectResponse(face.login, status_code=303)(scope, receive, send)  # a browser: log in
            return
        why = "no bearer token" if given is None and session is None else \
            "a wrong token" if given is not None else "a session of another token (log in again)"
        self.refused(f"api: refused {scope.get('method', '')} {shown(scope['path'])} from {_peer(scope)}: {why}")
        await error_response(401, f"{why}: send Authorization: Bearer TOKEN (`glmtui serve token` prints it)",
                             headers={"WWW-Authenticate": 'Bearer realm="glmtui"'})(scope, receive, send)


class BodyLimit:
    """Request bodies of at most `limit` bytes: a larger Content-Length is refused before anything
    is read; a body that grows past it (chunked) stops the read with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.limit):
            status, message = (413, BodyTooLarge(self.limit).message) if length.strip().isdigit() else \
                (400, f"Content-Length {shown(length, 40)!r} is not a number")
            await error_response(status, message)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except BodyTooLarge as err:  # a face that read the body itself
            if started:
                raise
            await error_response(err.status, err.message)(scope, receive, send)

