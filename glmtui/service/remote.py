"""`RemoteBackend`: the Backend (glmtui.service.backend) over `glmtui serve`'s HTTP API.

The web dashboard's TUI (one process per browser tab) starts and follows work through it, so
the work is serve's: it goes on when the tab closes, and the next tab lists it. Runs start by
the plan's name in the served folders (POST /runs: the server's policy is their host access,
whatever the plan pane was granted), their events come as Server-Sent Events (GET
/runs/{id}/events), read back with glmtui.events.from_json; a dropped stream is opened again
with Last-Event-ID, so nothing is missed or seen twice. Errors of the API come back as the
glmtui errors of their status (404 NotFound, 409 Conflict, 400 and 422 BadInput).

The token is asked of `token()` at each request (the token file: a rotation takes effect).
Under TLS the server's own certificate is the one trusted (`cert`), whatever name it has.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from glmtui.errors import BadInput, Conflict, GlmtuiError, NotFound
from glmtui.events import Event, RunFinished, RunStarted, TurnFinished, TurnStarted, from_json
from glmtui.service.backend import FINAL, ChatRequest, RunRequest, WorkInfo

PREFIX = "/api/v1"
RECONNECTS = 30  # tries, a second apart, to open a run's events again before giving up
RECENT = 50  # finished runs that list_work lists


class RemoteBackend:
    """The Backend over the HTTP API of a `glmtui serve` at `url`."""

    in_process = False

    def __init__(self, url: str, token: Callable[[], str], *, cert: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.ssl: ssl.SSLContext | None = _trusting(cert) if cert is not None else None
        self._session: Any = None  # aiohttp.ClientSession, made in the running loop at first use

    def session(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    def headers(self, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", **more}

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer of an API endpoint; the glmtui error of its status when it refuses."""
        import aiohttp

        try:
            async with self.session().request(method, self.url + PREFIX + path, json=body, headers=self.headers(),
                                              ssl=self.ssl if self.ssl is not None else True) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise GlmtuiError(f"glmtui serve at {self.url} does not answer: {err or type(err).__name__}") from None
        data = json.loads(text) if text.strip() else {}
        if status >= 400:
            raise error_of(status, data.get("error") if isinstance(data, dict) else None, self.url)
        return data

    # -- the Backend --------------------------------------------------------------------------

    async def start_run(self, request: RunRequest) -> RemoteHandle:
        if len(request.files) != 1:
            raise BadInput("glmtui serve runs plans by name: one plan file, not several merged")
        if request.resume is not None:
            started = await self.call("POST", f"/runs/{request.resume}/resume", {"approvals": True})
        else:
            name = await self.plan_name(Path(request.files[0]))
            body: dict[str, Any] = {"plan": name, "inputs": dict(request.inputs), "approvals": True}
            if request.workflow is not None:
                body["workflow"] = request.workflow
            started = await self.call("POST", "/runs", body)
        return RemoteHandle(self, started["id"], "run", started.get("status") or "running")

    async def plan_name(self, file: Path) -> str:
        """The name under which the server serves the plan in `file` (BadInput if it does not)."""
        listed = await self.call("GET", "/plans")
        wanted = file.expanduser().resolve()
        for plan in listed["plans"]:
            if Path(plan["file"]).resolve() == wanted:
                return plan["name"]
        problem = next((p["error"] for p in listed.get("problems", ()) if Path(p["file"]).resolve() == wanted), None)
        if problem is not None:
            raise BadInput(f"glmtui serve does not run {file}: {problem}")
        folders = ", ".join(listed.get("folders", ())) or "none"
        raise BadInput(f"glmtui serve runs only the plans of its folders ({folders}), and {file} is not one of them",
                       hint="put it there, or add its folder to config serve.plans")

    async def send_chat(self, request: ChatRequest) -> RemoteHandle:
        body: dict[str, Any] = {"environment": request.environment, "text": request.text}
        for key in ("conversation_id", "provider", "model", "engine"):
            if getattr(request, key) is not None:
                body[key] = getattr(request, key)
        started = await self.call("POST", "/chats", body)
        return RemoteHandle(self, started["id"], "chat", started.get("status") or "running")

    async def undo_chat(self, conversation_id: str) -> dict[str, str] | None:
        done = await self.call("POST", f"/conversations/{quote(conversation_id, safe='')}/undo", {})
        return done if done.get("checkpoint") else None

    async def list_work(self) -> list[WorkInfo]:
        """The runs the server holds that still run (oldest first), then the recent (newest first)."""
        runs = (await self.call("GET", f"/runs?limit={RECENT}"))["runs"]
        infos = [WorkInfo(run["id"], "run", run["status"], run["plan"], run["started"], run.get("plan_file"),
                          run.get("inputs") or {}) for run in runs if run.get("held") or run["status"] in FINAL]
        going = sorted((info for info in infos if info.running), key=lambda info: info.created)
        return going + [info for info in infos if not info.running]

    async def attach(self, work_id: str) -> RemoteHandle:
        run = await self.call("GET", f"/runs/{work_id}")
        return RemoteHandle(self, run["id"], "run", run["status"], run.get("error"))

    async def close(self) -> None:
        """The work goes on in the server; only the connection closes."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class RemoteHandle:
    """Work the server holds, followed over its events."""

    def __init__(self, backend: RemoteBackend, work_id: str, kind: str, status: str, error: str | None = None) -> None:
        self.backend = backend
        self._id, self._kind, self._status, self._error = work_id, kind, status, error

    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def status(self) -> str:
        return self._status

    @property
    def error(self) -> str | None:
        return self._error

    async def events(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """(seq, event) after `after`, from the server's stream; opened again after a drop with
        Last-Event-ID, until the server says there is no more (204). Then the work's end as its
        record has it."""
        import aiohttp

        backend, last, failures = self.backend, after, 0
        url = f"{backend.url}{PREFIX}/runs/{self._id}/events"
        while True:
            try:
                async with backend.session().get(url, headers=backend.headers(**{"Last-Event-ID": str(last)}),
                                                 ssl=backend.ssl if backend.ssl is not None else True) as response:
                    if response.status == 204:
                        break
                    if response.status >= 400:
                        text = await response.text()
                        raise error_of(response.status, _error_text(text), backend.url)
                    failures = 0
                    async for seq, data in messages(response.content):
                        if seq is None or seq <= last or data.get("event") == "gap":
                            continue  # a gap: the server dropped what a slow reader missed; the logs have it
                        last = seq
                        event = from_json(data)
                        self._note(event)
                        yield seq, event
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                failures += 1
                if failures > RECONNECTS:
                    raise GlmtuiError(f"lost the events of {self._id} from glmtui serve at {backend.url}: {err}") from None
                await asyncio.sleep(1.0)
        try:
            ended = await backend.call("GET", f"/{'chats' if self._kind == 'chat' else 'runs'}/{self._id}")
        except NotFound:  # the server no longer holds the turn: its events said how it ended
            return
        self._status, self._error = ended["status"], ended.get("error")

    def _note(self, event: Event) -> None:
        if isinstance(event, (RunStarted, TurnStarted)) and self._status == "queued":
            self._status = "running"
        elif isinstance(event, RunFinished):
            self._status = event.status
        elif isinstance(event, TurnFinished):
            self._status = "success"

    async def cancel(self) -> None:
        try:
            await self.backend.call("POST", f"/runs/{self._id}/cancel", {})
        except Conflict:  # it has ended meanwhile
            pass

    async def answer(self, approval_id: str, answer: str) -> None:
        try:
            await self.backend.call("POST", f"/runs/{self._id}/approvals/{approval_id}", {"answer": answer})
        except NotFound as err:
            raise BadInput(str(err)) from None


async def messages(content: Any) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
    """(id, data) of each Server-Sent Event of a response body (an aiohttp StreamReader), as
    they come; comments (the server's pings) skipped. Lines of any length."""
    buffer = b""
    seq: int | None = None
    data: list[str] = []
    async for chunk in content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if line == "":
                if data:
                    yield seq, json.loads("\n".join(data))
                seq, data = None, []
            elif line.startswith(":"):
                continue
            elif line.startswith("id:"):
                text = line[3:].strip()
                seq = int(text) if text.isdigit() else None
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))


def error_of(status: int, message: str | None, url: str) -> GlmtuiError:
    text = message or f"glmtui serve at {url} answered {status}"
    if status == 401:
        return BadInput(f"glmtui serve refused the token: {text}", hint="it was rotated: reload the page and log in again")
    if status == 404:
        return NotFound(text)
    if status == 409:
        return Conflict(text)
    if status in (400, 413, 422):
        return BadInput(text)
    return GlmtuiError(text)


def _error_text(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data.get("error") if isinstance(data, dict) else None


def _trusting(cert: Path) -> ssl.SSLContext:
    """A TLS context that trusts exactly the server's certificate (this host's own serve: its
    name need not be the loopback address the TUI connects to)."""
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    context.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    return context
