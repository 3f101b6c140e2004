"""The web dashboard: a real `glmtui serve` on a random loopback port, driven by a real headless
Chromium (Debian's, through Playwright) that logs in through the form and uses the TUI.

What the tab's terminal shows is read the way the browser gets it: the WebSocket's output
frames, fed to a terminal emulator (pyte). A screenshot of the tab after the plan run is kept
as tests/artifacts/dashboard/hello-run.png (the path is printed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyte
import pytest
import websockets.sync.client as ws_client
from playwright.sync_api import Page, sync_playwright
from websockets.exceptions import InvalidStatus

import helpers
from plan_helpers import remove_run_leftovers
from serve_helpers import Serve

pytestmark = pytest.mark.docker

ARTIFACTS = helpers.PROJECT_ROOT / "tests" / "artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium")
COLUMNS, ROWS = 400, 120  # at least the terminal the page fits in its window

SLOW = """
version: 1
name: slow
description: Counts slowly, for a run that outlives its tab.
env: {image: glmtui/busybox:latest}
steps:
  - id: count
    run: |
      for i in $(seq 1 240); do echo "tick $i"; sleep 0.5; done
"""


class Terminal:
    """What a tab's terminal shows: its WebSocket's output, through a terminal emulator."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.sockets: list[Any] = []
        page.on("websocket", self._opened)

    def _opened(self, socket: Any) -> None:
        self.sockets.append(socket)
        socket.on("framereceived", self._frame)

    def _frame(self, payload: bytes | str) -> None:
        if isinstance(payload, bytes):  # the app's output; text frames are textual-serve's own messages
            self.stream.feed(payload)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, predicate: Callable[[str], Any], timeout: float = 30, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.text())
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; the tab shows:\n{self.text()}")
            self.page.wait_for_timeout(100)  # Playwright delivers the frames while it waits

    def press_until(self, key: str, predicate: Callable[[str], Any], what: str, tries: int = 3) -> Any:
        """Press `key` until the tab shows what it should (a key that comes while a dialog is
        still being set up does nothing; on a loaded machine that happens)."""
        for attempt in range(tries):
            self.keys(key)
            try:
                return self.wait_for(predicate, timeout=10 if attempt < tries - 1 else 30, what=what)
            except AssertionError:
                if attempt == tries - 1:
                    raise
        return None

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)
            self.page.wait_for_timeout(150)


@pytest.fixture
def server(tmp_path: Path, busybox_image: str) -> Iterator[Serve]:
    serve = Serve(tmp_path / "serve")
    serve.plan("hello", (helpers.PROJECT_ROOT / "plans" / "hello.yaml").read_text())
    serve.plan("slow", SLOW)
    try:
        yield serve
        assert "internal error" not in serve.output(), serve.output()
    finally:
        serve.kill()


@pytest.fixture
def last_env(busybox_image: str) -> Iterator[str]:
    """A running environment whose name sorts after everyone's (the pane lists by name): `ctrl+end`
    in the environments pane shows it, whatever other environments this Docker engine has."""
    name = f"zzzz-web-{uuid.uuid4().hex[:6]}"
    try:
        helpers.run_glmtui("env", "create", name, "--image", busybox_image, "--network", "none", timeout=60)
        yield name
    finally:
        helpers.remove_quietly(name)


@pytest.fixture
def browser() -> Iterator[Any]:
    assert CHROMIUM, "this test needs Debian's chromium (scripts/setup installs it)"
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root has no user namespace sandbox
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Page, url: str, token: str) -> Terminal:
    terminal = Terminal(page)
    page.goto(url + "/")
    assert page.url == url + "/login"  # no session: the login form
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    terminal.wait_for(lambda s: "Environments" in s and "Plan" in s, what="the TUI")
    page.focus(".xterm-helper-textarea")  # the keys go to the terminal (a click would focus a pane)
    return terminal


def pick_plan(terminal: Terminal, name: str) -> None:
    """r: the plan picker; its filter; enter: the plan in the plan pane, whose enter runs it."""
    terminal.keys("r")
    terminal.wait_for(lambda s: "enter picks" in s, what="the plan picker")
    terminal.page.keyboard.type(name)
    terminal.page.wait_for_timeout(500)
    terminal.press_until("Enter", lambda s: f"{name}.yaml" in s and "enter runs" in s, what=f"the plan pane with {name}")


def tui_processes(serve: Serve) -> list[str]:
    """The TUIs of serve's tabs (`python -m glmtui.tui.web`, children of serve)."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(serve.proc.pid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "glmtui.tui.web" in line]


def test_dashboard_logs_in_lists_environments_and_runs_hello(server: Serve, browser: Any, last_env: str) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    run_id = None
    try:
        terminal = log_in(page, server.url, server.token)
        assert asked and all(url.startswith((server.url + "/", server.url.replace("http", "ws", 1) + "/"))
                             for url in asked), asked  # nothing asked of another site (fonts included)
        cookie = next(c for c in context.cookies() if c["name"] == "glmtui_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
        assert server.token not in cookie["value"]
        # the environments pane lists the environment the test made (the last by name)
        terminal.keys("Control+End")
        terminal.wait_for(lambda s: re.search(rf"{last_env}\s+running", s), what=f"{last_env} running in the list")
        # r: the plan picker; hello; enter runs it; every step ends ✔ (shout is skipped: ↷)
        pick_plan(terminal, "hello")
        terminal.keys("Enter")
        match = terminal.wait_for(lambda s: re.search(r"✔ run (\S+) success in", s), timeout=90, what="the run")
        run_id = match.group(1)
        screen = terminal.text()
        for step in ("greet", "count", "report", "show"):
            assert re.search(rf"✔\s+{step}\s", screen), (step, screen)
        assert re.search(r"↷\s+shout\s", screen), screen
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "hello-run.png"
        page.screenshot(path=str(shot))
        print(f"screenshot of the dashboard after the run: {shot}")
        # the run is serve's: its record says so, and the API shows it
        with server.client() as client:
            record = client.get(f"/runs/{run_id}").json()
        assert record["status"] == "success" and record["plan"] == "hello" and record["held"] is True
        assert {s["step"]: s["status"] for s in record["steps"]} == {
            "greet": "success", "count": "success", "shout": "skipped", "report": "success", "show": "success"}
    finally:
        context.close()
        if run_id:
            remove_run_leftovers(run_id)


def test_a_run_outlives_its_tab_and_the_next_tab_follows_it(server: Serve, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    run_id = None
    try:
        terminal = log_in(page, server.url, server.token)
        assert len(tui_processes(server)) == 1
        pick_plan(terminal, "slow")
        terminal.keys("Enter")
        terminal.wait_for(lambda s: "tick 2" in s, timeout=60, what="the run's output")
        with server.client() as client:
            runs = client.get("/runs").json()["runs"]
            run_id = runs[0]["id"]
            assert runs[0]["plan"] == "slow" and runs[0]["status"] == "running"
            # the tab closes: its TUI quits, the run goes on
            page.close()
            helpers.wait_for(lambda: not tui_processes(server), timeout=20, what="the tab's TUI to quit")
            time.sleep(1.5)
            record = client.get(f"/runs/{run_id}").json()
            assert record["status"] == "running", record
            last = record["last_event"]
            # a new tab: p in the plan pane lists the run still going; enter follows it
            page = context.new_page()
            terminal = Terminal(page)
            page.goto(server.url + "/")
            assert page.url == server.url + "/"  # the session cookie: no login this time
            terminal.wait_for(lambda s: "Environments" in s and "Plan" in s, what="the TUI")
            page.focus(".xterm-helper-textarea")
            terminal.keys("Tab", "Tab", "p")
            terminal.wait_for(lambda s: run_id in s, what="the run in the list of runs")
            terminal.press_until("Enter", lambda s: "filter by run id" not in s and re.search(r"tick (\d+)", s),
                                 what="the run followed")
            later = terminal.wait_for(lambda s: [int(n) for n in re.findall(r"tick (\d+)", s) if int(n) > 20],
                                      timeout=60, what="ticks after the tab closed")
            assert later and client.get(f"/runs/{run_id}").json()["last_event"] > last
            assert client.post(f"/runs/{run_id}/cancel", json={"wait": True}).json()["status"] == "cancelled"
            terminal.wait_for(lambda s: "cancelled" in s, what="the cancel seen by the tab")
    finally:
        context.close()
        if run_id:
            remove_run_leftovers(run_id)
    helpers.wait_for(lambda: not tui_processes(server), timeout=20, what="the tabs' TUIs to quit")


def test_the_dashboard_needs_the_token(server: Serve, browser: Any) -> None:
    url, host = server.url, server.url.split("//", 1)[1]
    context = browser.new_context()
    page = context.new_page()
    try:
        # no cookie: the page is the login form, and so is every page of the dashboard
        page.goto(url + "/")
        assert page.url == url + "/login" and page.is_visible("#token")
        # a wrong token: refused, no cookie, the form again
        page.fill("#token", "glmtui_wrong")
        with page.expect_response(url + "/login") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 401
        assert "Wrong token" in page.inner_text("body") and context.cookies() == []
        page.goto(url + "/")
        assert page.url == url + "/login"
    finally:
        context.close()
    assert "dashboard: refused a login" in server.log.read_text() and "glmtui_wrong" not in server.log.read_text()
    # the WebSocket: refused without the cookie, with a cookie of no token, and from another site's page
    for headers, status in (({}, 401), ({"Cookie": "glmtui_session=0123"}, 401)):
        with pytest.raises(InvalidStatus) as refused:
            ws_client.connect(f"ws://{host}/ws", additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == status
    import httpx2 as httpx

    with httpx.Client(base_url=url) as client:
        login = client.post("/login", data={"token": server.token})
        assert login.status_code == 303 and login.headers["location"] == "/"
        session = login.cookies["glmtui_session"]
        client.cookies.clear()  # each request below says which cookie it sends
        assert "token=" not in (server.output() + server.log.read_text())  # the token is never logged
        with pytest.raises(InvalidStatus) as refused:
            ws_client.connect(f"ws://{host}/ws", additional_headers={"Cookie": f"glmtui_session={session}",
                                                                      "Origin": "http://evil.example"}, open_timeout=10)
        assert refused.value.response.status_code == 403
        # nor is a login form posted from another site's page; the pages may not be framed
        assert client.post("/login", data={"token": server.token},
                           headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.get("/login").headers["x-frame-options"] == "DENY"
        # the cookie is no bearer token, and opens nothing of the API
        assert client.get("/api/v1/runs", headers={"Cookie": f"glmtui_session={session}"}).status_code == 401
        # the Host check, as for the API
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
        # with the cookie, the page and its WebSocket: each a TUI of its own, which quits with it
        assert client.get("/", headers={"Cookie": f"glmtui_session={session}"}).status_code == 200
        address = f"ws://{host}/ws?width=100&height=30"
        with ws_client.connect(address, additional_headers={"Cookie": f"glmtui_session={session}"},
                               open_timeout=10) as socket:
            assert isinstance(socket.recv(timeout=30), bytes)
            with ws_client.connect(address, additional_headers={"Cookie": f"glmtui_session={session}"},
                                   open_timeout=10) as other:
                assert isinstance(other.recv(timeout=30), bytes)
                assert len(tui_processes(server)) == 2
            helpers.wait_for(lambda: len(tui_processes(server)) == 1, timeout=20, what="the other TUI to quit")
        helpers.wait_for(lambda: not tui_processes(server), timeout=20, what="the TUI to quit")
        # logging out clears the cookie
        logout = client.post("/logout", headers={"Cookie": f"glmtui_session={session}"})
        assert logout.status_code == 303 and 'glmtui_session=""' in logout.headers["set-cookie"]
        # the token rotated: the old session is over
        assert server.glmtui("serve", "token", "--rotate").returncode == 0
        assert client.get("/", headers={"Cookie": f"glmtui_session={session}"}).status_code == 303
        # serve stops with a tab open: its TUI quits with it
        with ws_client.connect(f"ws://{host}/ws", additional_headers={"Authorization": f"Bearer {server.token}"},
                               open_timeout=10) as socket:
            socket.recv(timeout=30)
            pids = [int(line.split()[0]) for line in tui_processes(server)]
            assert len(pids) == 1
            assert server.stop() == 130
        assert not Path(f"/proc/{pids[0]}").exists()


def test_the_dashboard_under_tls(tmp_path: Path, busybox_image: str, browser: Any) -> None:
    """Under TLS the cookie is Secure, and the tab's TUI reaches serve's API over TLS, trusting
    serve's own certificate (made here for another address than the loopback it connects to)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    helpers.certificates(certs, "10.9.9.9")
    server = Serve(tmp_path / "serve", "--tls-cert", str(certs / "server.pem"), "--tls-key",
                   str(certs / "server-key.pem"))
    server.plan("hello", (helpers.PROJECT_ROOT / "plans" / "hello.yaml").read_text())
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, ignore_https_errors=True)
    page = context.new_page()
    run_id = None
    try:
        assert server.url.startswith("https://127.0.0.1:")
        terminal = log_in(page, server.url, server.token)
        cookie = next(c for c in context.cookies() if c["name"] == "glmtui_session")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        pick_plan(terminal, "hello")
        terminal.keys("Enter")
        run_id = terminal.wait_for(lambda s: re.search(r"✔ run (\S+) success in", s), timeout=90,
                                   what="the run").group(1)
        assert "internal error" not in server.output(), server.output()
        # serve killed with the tab open: its TUI, with nobody to talk to, quits
        pids = [int(line.split()[0]) for line in tui_processes(server)]
        assert len(pids) == 1
        server.proc.kill()
        helpers.wait_for(lambda: not Path(f"/proc/{pids[0]}").exists(), timeout=20, what="the orphaned TUI to quit")
    finally:
        context.close()
        server.kill()
        if run_id:
            remove_run_leftovers(run_id)
