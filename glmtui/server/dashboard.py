"""The web dashboard of `glmtui serve`: the glmtui TUI in a browser, at /.

textual-serve does the terminal in the browser: its page and script (xterm.js speaking Textual's
web protocol) and its AppService, which runs a Textual app in a subprocess under Textual's web
driver and relays the app's output to the browser's WebSocket and the browser's keys and sizes
to the app. Here they are mounted in serve's Starlette app, behind its gate (glmtui.server.app):
the page, its static files and the WebSocket need the token, which a browser carries as the
session cookie that the login form sets (HttpOnly, SameSite=Strict, Secure under TLS; the token
is posted in the form's body, never put in a URL). A WebSocket whose Origin is not this server
is refused (a page of another site cannot drive the TUI).

Each WebSocket (each browser tab) is its own TUI process (`python -m glmtui.tui.web`), which
starts and follows work through serve's own API (glmtui.service.remote.RemoteBackend): the runs
a tab starts belong to serve and go on when the tab closes, and the next tab lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect
import textual_serve
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from glmtui.server.app import Face
from glmtui.server.auth import RefusalLog, TokenFile, shown

COOKIE = "glmtui_session"
LOGIN = "/login"
STOP_GRACE = 10.0  # seconds a tab's TUI gets to quit when its WebSocket closes, before it is killed
TUI_ARGV = [sys.executable, "-m", "glmtui.tui.web"]
URL_VARIABLE = "GLMTUI_SERVE_URL"  # where the TUI of a tab finds serve's API
CA_VARIABLE = "GLMTUI_SERVE_CERT"  # serve's certificate, under TLS: the TUI trusts that one
TEXTUAL_SERVE = Path(textual_serve.__file__).parent  # its templates/ and static/


def dashboard_face(log: Any, tls_cert: Path | None) -> Face:
    dashboard = Dashboard(TokenFile(), log, tls_cert)
    return Face("/", dashboard.router, "web dashboard (the TUI in a browser)", lifespan=dashboard.lifespan,
                public=(LOGIN,), cookie=COOKIE, login=LOGIN)


class TuiSession(AppService):
    """textual-serve's AppService, starting the TUI as an argv (no shell) with serve's address,
    and stopping it for sure: a TUI that does not quit in STOP_GRACE seconds is killed."""

    def __init__(self, environment: dict[str, str], **options: Any) -> None:
        super().__init__(" ".join(TUI_ARGV), **options)
        self.extra_environment = environment

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        environment = {**self._build_environment(width=width, height=height), **self.extra_environment}
        self._process = process = await asyncio.create_subprocess_exec(
            *TUI_ARGV, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=environment, start_new_session=True,
        )
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(super().stop(), STOP_GRACE)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            if self._process is not None and self._process.returncode is None:
                self._process.kill()
                await self._process.wait()


class Dashboard:
    def __init__(self, token: TokenFile, log: Any, tls_cert: Path | None) -> None:
        import jinja2

        self.token = token
        self.refused = RefusalLog(log)  # a flood of wrong logins: a few lines, then a count
        self.tls_cert = tls_cert
        self.downloads = DownloadManager()
        self.sessions: set[TuiSession] = set()
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(TEXTUAL_SERVE / "templates"),
                                            autoescape=True)
        self.router = Router(routes=[
            Route("/", self.page, methods=["GET"]),
            Route(LOGIN, self.login_form, methods=["GET"]),
            Route(LOGIN, self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            WebSocketRoute("/ws", self.terminal),
            Mount("/static", app=StaticFiles(directory=TEXTUAL_SERVE / "static"), name="static"),
        ])

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        try:
            yield
        finally:  # serve stops: every tab's TUI quits (or is killed)
            await asyncio.gather(*(session.stop() for session in list(self.sessions)), return_exceptions=True)

    # -- pages --------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """The TUI's page (textual-serve's template); its script opens the WebSocket at /ws."""
        secure = request.url.scheme == "https"
        text = self.templates.get_template("app_index.html").render(
            font_size=_number(request.query_params.get("fontsize"), 16, 6, 64),
            app_websocket_url=f"{'wss' if secure else 'ws'}://{request.headers['host']}/ws",
            config={"static": {"url": "/static/"}},
            application={"name": "glmtui"},
        )
        return HTMLResponse(OUTSIDE_FONT.sub(LOCAL_FONT, text), headers=PAGE_HEADERS)

    async def login_form(self, request: Request) -> Response:
        return HTMLResponse(login_page(), headers=PAGE_HEADERS)

    async def login(self, request: Request) -> Response:
        """The token from the form's body: right, the session cookie and the TUI; wrong, 401 and the form."""
        if not same_origin(request.headers):
            return HTMLResponse(login_page("This form was sent from another site: refused."), 403, headers=PAGE_HEADERS)
        given = parse_qs((await request.body()).decode("utf-8", "replace")).get("token", [""])[0].strip()
        if not given or not self.token.matches(given):
            client = request.client
            self.refused(f"dashboard: refused a login from {client.host if client else '?'}: "
                     f"{'no token' if not given else 'a wrong token'}")
            return HTMLResponse(login_page("Wrong token. `glmtui serve token` prints the right one."), 401,
                                headers=PAGE_HEADERS)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self.token.session(), httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse(LOGIN, status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- the terminal ---------------------------------------------------------------------------

    async def terminal(self, websocket: WebSocket) -> None:
        """One tab: its own TUI process, its output to the browser, the browser's keys and sizes to it."""
        if not same_origin(websocket.headers):
            self.refused(f"dashboard: refused a WebSocket from origin {shown(websocket.headers.get('origin', ''), 80)}")
            await websocket.close(code=1008)
            return
        width = _number(websocket.query_params.get("width"), 80, 10, 1000)
        height = _number(websocket.query_params.get("height"), 24, 5, 500)
        await websocket.accept()
        session = TuiSession(self.tui_environment(websocket), write_bytes=_unless_gone(websocket.send_bytes),
                             write_str=_unless_gone(websocket.send_text), close=_unless_gone(websocket.close),
                             download_manager=self.downloads)
        self.sessions.add(session)
        try:
            await session.start(width, height)
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text"):
                    await self.relay(websocket, session, message["text"])
        except (WebSocketDisconnect, RuntimeError):  # the tab went away, or the TUI quit and closed it
            pass
        finally:
            self.sessions.discard(session)
            await session.stop()

    async def relay(self, websocket: WebSocket, session: TuiSession, text: str) -> None:
        """A message of textual-serve's page: ["stdin", TEXT], ["resize", {width, height}], ["ping", X],
        ["focus"], ["blur"]."""
        try:
            envelope = json.loads(text)
            kind = envelope[0]
        except (ValueError, TypeError, IndexError, KeyError):
            return
        if kind == "stdin" and isinstance(envelope[1], str):
            await session.send_bytes(envelope[1].encode("utf-8"))
        elif kind == "resize" and isinstance(envelope[1], dict):
            await session.set_terminal_size(_number(envelope[1].get("width"), 80, 10, 1000),
                                            _number(envelope[1].get("height"), 24, 5, 500))
        elif kind == "ping":
            await websocket.send_text(json.dumps(["pong", envelope[1] if len(envelope) > 1 else None]))
        elif kind == "focus":
            await session.focus()
        elif kind == "blur":
            await session.blur()

    def tui_environment(self, websocket: WebSocket) -> dict[str, str]:
        """Where the tab's TUI finds serve's API: the address this connection came in on."""
        host, port = websocket.scope["server"]
        shown_host = f"[{host}]" if ":" in host else host
        environment = {URL_VARIABLE: f"{'https' if self.tls_cert else 'http'}://{shown_host}:{port}"}
        if self.tls_cert is not None:
            environment[CA_VARIABLE] = str(self.tls_cert)
        return environment


# The page's font, from textual-serve's own static files rather than Google's: the page asks
# nothing of another site (which would learn who opens a dashboard, and is unreachable offline).
OUTSIDE_FONT = re.compile(r'<link\s+rel="stylesheet"\s+href="https://fonts\.googleapis\.com/[^"]*"\s*/>')
LOCAL_FONT = ('<style>@font-face { font-family: "Roboto Mono"; '
              'src: url("/static/fonts/RobotoMono-VariableFont_wght.ttf"); }</style>')
PAGE_HEADERS = {"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


def same_origin(headers: Any) -> bool:
    """Whether a browser's request comes from a page of this server (no Origin: not a browser's
    cross-site request)."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def _unless_gone(send: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A send to the tab's WebSocket that does nothing once the tab has gone (the TUI's last
    frames, or its exit, may come after)."""
    async def sending(*args: Any) -> None:
        try:
            await send(*args)
        except (WebSocketDisconnect, RuntimeError):
            pass
    return sending


def _number(text: Any, default: int, low: int, high: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        return default
    return min(max(value, low), high)


def login_page(problem: str | None = None) -> str:
    note = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>glmtui: log in</title>
<style>
  body {{ background: #0c181f; color: #e8eef2; font-family: menlo, "DejaVu Sans Mono", monospace;
         display: flex; align-items: center; justify-content: center; height: 100vh; margin: 0; }}
  form {{ background: #12232d; padding: 32px; width: 420px; }}
  h1 {{ font-size: 20px; margin: 0 0 16px; }}
  label {{ display: block; margin-bottom: 8px; }}
  input {{ width: 100%; box-sizing: border-box; padding: 8px; font: inherit; margin-bottom: 16px; }}
  button {{ padding: 8px 24px; font: inherit; background: #5e0ba7; color: #fff; border: none; }}
  .problem {{ color: #ff8a80; }}
  .hint {{ color: #9fb3c0; font-size: 13px; }}
</style>
</head>
<body>
<form method="post" action="{LOGIN}">
  <h1>glmtui</h1>
  {note}
  <label for="token">Token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <button type="submit">Log in</button>
  <p class="hint">On the machine that serves: <code>glmtui serve token</code></p>
</form>
</body>
</html>
"""
