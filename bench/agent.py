#!/usr/bin/env python
"""Benchmarks of the agent backend: model streaming against a bare HTTP client, and the tool
round trip against the `docker` CLI, in one run.

    .venv/bin/python bench/agent.py [--quick] [--runs N] [--json] [--only stream,screen,tool] [--strict]

What is measured:

  stream  one scripted streamed reply of 200 content pieces (`text(..., pieces=200)` of
          tests/model_server.py, 20 ms before the first byte, usage on the finishing chunk),
          read by `glmtui.agent.client.ModelClient.stream` (the openai SDK's AsyncOpenAI, made
          once and kept, as the app does; the text goes to an `on_text` callback) and by a bare
          client: one asyncio TCP connection kept open, an HTTP/1.1 POST of the same JSON body,
          chunked transfer decoding, SSE `data:` lines split and json.loads'ed, the delta's
          content handed to the same callback. Both read the same server, one after the other
          in each round. Time to the first content piece, and to the end of the reply (the
          reply returned / the last chunk read); the overhead is the median of the per-round
          differences (goal: < 10 ms for both). Also the CPU time of this process per reply
          (the server runs in a child process, so that is the client's). The same again with
          the 200 pieces paced 2 ms apart (a model that streams, rather than a burst).
  tool    a busybox environment made for the run. The agent loop (`glmtui.agent.loop.Agent`,
          policy `auto`, the same ModelClient and Toolbox kept over the rounds, a new
          conversation each round) sends one message; the scripted model asks for `bash`
          `{"command": "true"}`, gets the result, then answers "done". The tool part is from the
          ToolCall event to the ToolResult event, against `docker exec glmtui-ENV true` by the
          docker CLI (goal: ratio <= 1.2). For reference: `Toolbox.call("bash", {"command":
          "true"})` alone, `Engine.exec(ENV, ["true"])`, `docker exec glmtui-ENV sh -c true`
          (the bash tool runs its command with `sh -c`), and the whole turn (`Agent.send`: two
          model calls and the tool).
  screen  the same two replies (burst and paced) shown by the TUI's chat pane: a headless
          Textual app (App.run_test) holding a ChatPane, which sends a message through its real
          path (its worker, its sink, its ChatEvents handler, AnswerStream, the answer's Markdown
          widget AnswerText, the flush ticker).
          The session is a stand-in (no engine, no tools): its `send` makes one real
          `ModelClient.stream` call and gives each piece to the pane's sink as a Token event, then
          a Usage event, as the agent loop does. Measured from that call to the first frame
          composed with text of the reply in it (the answer's widget drew its lines for that frame,
          from its text drawn as Markdown), and to the first one with the whole reply in it; against
          the bare client's first token and whole reply in the same round, in the same event loop. The
          headless driver writes nothing: turning the frame into escape codes and the
          terminal's own drawing are not included. Goal: overhead < 10 ms for both.

Figures are medians of N rounds (default 30, --quick 5) after warm-up rounds; each round runs
every side back to back. The model server (tests/model_server.py's ModelServer) runs in a child
process, so it does not compete with the clients for this process's GIL (a remote endpoint
would not either). The environment `benchagent-<pid>-<random>` (label glmtui.bench=<that
name>) and the server process are removed at the end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
TESTS = ROOT / "tests"

from common import aligned, cpu_model, verdict  # noqa: E402

BUSYBOX = "glmtui/busybox:latest"
BENCH_LABEL = "glmtui.bench"
PIECES = 200
FIRST_BYTE_DELAY = 0.02
PACED_INTERVAL = 0.002
CONTENT = "".join(f"word{i} " for i in range(PIECES))
MESSAGES = [{"role": "user", "content": "Say 200 words."}]
MODEL = "glm-4.6"
API_KEY = "sk-bench-not-a-secret"
KEY_VAR = "GLMTUI_BENCH_KEY"  # the chat pane's provider key (its masker masks it), set in this process only
SCREEN_SIZE = (160, 45)

# The child process that serves: tests/model_server.py's ModelServer, scripted by lines on stdin
# ({"kind": "text" | "paced" | "turn", "count": N}), each answered with "ok".
_SERVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from model_server import ModelServer, text, tool_calls
pieces, delay, interval, content = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
burst = text(content, pieces=pieces, usage=(12, pieces), delay=delay)
paced = text(content, pieces=pieces, usage=(12, pieces), delay=delay)
import dataclasses
paced = dataclasses.replace(paced, interval=interval)
call = tool_calls([("call_1", "bash", {"command": "true"})], usage=(400, 12))
done = text("done", usage=(430, 2))
with ModelServer() as server:
    print(json.dumps({"base_url": server.base_url}), flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        replies = {"text": [burst], "paced": [paced], "turn": [call, done]}[order["kind"]]
        for _ in range(order["count"]):
            server.script(*replies)
        print("ok", flush=True)
"""


@dataclass
class Figure:
    key: str
    title: str
    unit: str  # "s"
    glmtui: float
    baseline: float | None
    compared: float | None  # overhead in seconds ("diff") or a ratio ("ratio")
    how: str  # "diff" | "ratio" | ""
    goal: str
    passed: bool | None  # None: reported, no goal
    runs: int
    samples_glmtui: list[float] = field(default_factory=list)
    samples_baseline: list[float] = field(default_factory=list)
    note: str = ""


def median_diff(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(a - b for a, b in zip(ours, theirs))


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median of the per-round ratios: both sides ran back to back in each round."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


# -- the model server in a child process ---------------------------------------------------------


class ServerProcess:
    def __init__(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(TESTS), str(PIECES), str(FIRST_BYTE_DELAY), str(PACED_INTERVAL),
             CONTENT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        first = self.child.stdout.readline()
        if not first:
            raise RuntimeError("the model server process did not start")
        self.base_url = json.loads(first)["base_url"]
        rest = self.base_url.removeprefix("http://")
        host_port, _, path = rest.partition("/")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.path = f"/{path}/chat/completions"

    def script(self, kind: str, count: int) -> None:
        self.child.stdin.write(json.dumps({"kind": kind, "count": count}) + "\n")
        self.child.stdin.flush()
        if self.child.stdout.readline().strip() != "ok":
            raise RuntimeError("the model server process did not take the script")

    def close(self) -> None:
        if self.child.poll() is None:
            try:
                self.child.stdin.close()
                self.child.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.child.kill()
                self.child.wait()


# -- the bare client -------------------------------------------------------------------------------


class BareClient:
    """The least a client can do: one kept connection, HTTP/1.1 by hand, chunked decoding, SSE
    `data:` lines, json.loads of each chunk, the delta's content to the callback."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connections = 0

    async def stream(self, body: bytes, on_text: Callable[[str], None]) -> tuple[str, dict[str, Any] | None]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.connections += 1
        reader, writer = self.reader, self.writer
        writer.write(
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body
        )
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"bare client: {status.decode().strip()}")
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") != "chunked":
            raise RuntimeError(f"bare client: expected a chunked stream, got {headers}")
        pieces: list[str] = []
        usage = None
        buffer = b""
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readline()
                break
            buffer += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            pieces.append(content)
                            on_text(content)
        if headers.get("connection") == "close":
            writer.close()
            self.writer = None
        return "".join(pieces), usage

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


# -- the figures -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, server: ServerProcess, env: str, runs: int, warmup: int, log: bool) -> None:
        self.server = server
        self.env = env  # the environment of the tool figures
        self.runs = runs
        self.warmup = warmup
        self.log = log
        self.figures: list[Figure] = []
        self.notes: list[str] = []

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    async def stream(self, kind: str) -> None:
        from glmtui.agent.client import ModelClient
        from glmtui.agent.providers import Provider

        paced = kind == "paced"
        label = f", paced {PACED_INTERVAL * 1000:g} ms" if paced else ""
        provider = Provider(name="bench", base_url=self.server.base_url, model=MODEL, api_key_env=None)
        client = ModelClient(provider, api_key=API_KEY)
        bare = BareClient(self.server.host, self.server.port, self.server.path)
        body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True,
                           "stream_options": {"include_usage": True}}).encode()
        total = self.warmup + self.runs
        self.server.script(kind, 2 * total)
        self.say(f"stream{label}: {self.warmup} warm-up + {self.runs} rounds of ModelClient and the bare client")
        sides: dict[str, dict[str, list[float]]] = {s: {"first": [], "whole": [], "cpu": []} for s in ("sdk", "bare")}

        async def one(side: str) -> tuple[float, float, float]:
            first: list[float] = []

            def on_text(_piece: str) -> None:
                if not first:
                    first.append(time.perf_counter())

            cpu = time.process_time()
            started = time.perf_counter()
            if side == "sdk":
                reply = await client.stream(MESSAGES, on_text=on_text)
                text, tokens = reply.content, reply.usage.output_tokens if reply.usage else None
            else:
                text, usage = await bare.stream(body, on_text)
                tokens = usage.get("completion_tokens") if usage else None
            ended = time.perf_counter()
            cpu = time.process_time() - cpu
            if text != CONTENT or tokens != PIECES:
                raise RuntimeError(f"{side}: the reply came wrong ({len(text)} characters, usage {tokens})")
            return first[0] - started, ended - started, cpu

        try:
            for i in range(total):
                for side in ("sdk", "bare") if i % 2 == 0 else ("bare", "sdk"):  # alternate who goes first
                    sample = await one(side)
                    if i >= self.warmup:
                        for name, value in zip(("first", "whole", "cpu"), sample):
                            sides[side][name].append(value)
        finally:
            await client.close()
            await bare.close()
        sdk, raw = sides["sdk"], sides["bare"]
        for name, title in (("first", f"first token{label}"), ("whole", f"whole reply, {PIECES} pieces{label}")):
            overhead = median_diff(sdk[name], raw[name])
            self.figures.append(Figure(
                f"{kind}_{name}", title, "s", statistics.median(sdk[name]), statistics.median(raw[name]), overhead,
                "diff", "overhead < 10 ms", overhead < 0.010, self.runs, sdk[name], raw[name],
            ))
        self.figures.append(Figure(
            f"{kind}_cpu", f"CPU time per reply{label}", "s", statistics.median(sdk["cpu"]),
            statistics.median(raw["cpu"]), median_diff(sdk["cpu"], raw["cpu"]), "diff", "-", None, self.runs,
            sdk["cpu"], raw["cpu"],
            note="" if paced else "process_time() of this process around one reply (the server is another process)",
        ))
        if bare.connections != 1:
            self.notes.append(f"{kind}: the bare client opened {bare.connections} connections")

    async def screen(self, kind: str) -> None:
        """The first token and the whole reply on screen (the chat pane) against the bare client."""
        import tempfile
        from types import SimpleNamespace

        import glmtui.tui  # noqa: F401 - first, as in the app: it sets Textual's frame rate before textual is imported
        from textual import constants
        from textual.app import App

        from glmtui.agent import session as session_module
        from glmtui.agent.client import ModelClient
        from glmtui.agent.providers import Provider
        from glmtui.config import KEYS, Config
        from glmtui.conversations import Conversations
        from glmtui.events import Token, Usage
        from glmtui.store import Store
        from glmtui.tui.widgets import chat

        label = f", paced {PACED_INTERVAL * 1000:g} ms" if kind == "paced" else ""
        provider = Provider(name="bench", base_url=self.server.base_url, model=MODEL, api_key_env=None)
        client = ModelClient(provider, api_key=API_KEY)
        bare = BareClient(self.server.host, self.server.port, self.server.path)
        body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True,
                           "stream_options": {"include_usage": True}}).encode()
        # Per round: the request's start, the first piece at the client, each update of the reply's
        # widget (when: its text drawn into its lines; its length), the length of the text in the
        # lines the widget last gave the compositor, each frame (when; the length it shows).
        started: list[float] = []
        first_piece: list[float] = []
        returned: list[float] = []
        marks: list[tuple[float, int]] = []
        drawn = [0]
        frames: list[tuple[float, int]] = []
        whole = asyncio.Event()

        class TimedText(chat.AnswerText):
            """The reply's widget, noting each update (its text drawn into its lines as Markdown) and
            what it gives the compositor, which asks for its lines when it composes a frame with it."""

            drawn_length = 0

            def show(self, text: str, **more: bool) -> None:
                super().show(text, **more)
                if text:
                    marks.append((time.perf_counter(), len(text)))

            def _draw(self, width: int) -> None:
                super()._draw(width)
                self.drawn_length = len(self.text)

            def render_lines(self, crop: Any) -> Any:
                lines = super().render_lines(crop)
                drawn[0] = self.drawn_length
                return lines

        class ForwardingSession:
            """Stands in for ChatSession: one real ModelClient.stream call per message, its pieces
            to the pane's sink as Token events, then the Usage event (as the agent loop does)."""

            def __init__(self, conversation: Any, sink: Callable[[Any], None]) -> None:
                self.conversation, self.sink, self.client = conversation, sink, client

            @classmethod
            async def open(cls, *, store: Any, environment: str, sink: Any, **_: Any) -> ForwardingSession:
                return cls(Conversations(store).start(environment, "bench", MODEL), sink)

            async def send(self, text: str) -> Any:
                def on_text(piece: str) -> None:
                    if not first_piece:
                        first_piece.append(time.perf_counter())
                    self.sink(Token("chat", piece))

                started.append(time.perf_counter())
                reply = await client.stream(MESSAGES, on_text=on_text)
                returned.append(time.perf_counter())
                usage = reply.usage
                self.sink(Usage("chat", usage.input_tokens, usage.output_tokens, usage.input_tokens,
                                usage.output_tokens))
                return SimpleNamespace(finished=True, reason=None)

            async def close(self) -> None:
                pass  # the client is the figure's, closed at its end

        class Engine:
            async def get_environment(self, name: str) -> Any:
                return SimpleNamespace(name=name, running=True, status="running")

        values = {key: spec.default for key, spec in KEYS.items()}
        values.update({"theme": "textual-dark", "default_provider": "bench", "providers.bench.model": MODEL,
                       "providers.bench.base_url": self.server.base_url, "providers.bench.api_key_env": KEY_VAR})
        config = Config(values, {key: "bench" for key in values})

        class PaneApp(App):
            CSS_PATH = [ROOT / "glmtui" / "tui" / "app.tcss", ROOT / "glmtui" / "tui" / "screens" / "chat.tcss"]

            def __init__(self, store: Store) -> None:
                super().__init__()
                self.store = store

            def compose(self) -> Any:
                yield chat.ChatPane(config=config, store=self.store, id="chat")

            def on_mount(self) -> None:
                self.call_after_refresh(gc.freeze)  # as GlmtuiApp does: start-up objects out of the collections

            def _display(self, screen: Any, renderable: Any) -> None:
                """A frame: the screen's update, composed, handed to the (headless) driver (which
                writes nothing). Textual's own hook, private: the one place every frame passes."""
                super()._display(screen, renderable)
                if renderable is not None and not self._batch_count:
                    frames.append((time.perf_counter(), drawn[0]))
                    if drawn[0] == len(CONTENT):
                        whole.set()  # this frame shows the whole reply

        async def settle(pilot: Any, until: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + 10
            while not until():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"screen: {what} did not happen")
                await pilot.pause(0.005)

        total = self.warmup + self.runs
        self.server.script(kind, 2 * total)
        self.say(f"screen{label}: {self.warmup} warm-up + {self.runs} rounds of the chat pane and the bare client")
        sides: dict[str, dict[str, list[float]]] = {
            "pane": {k: [] for k in ("first", "whole", "client_first", "client_whole", "updated_first",
                                     "updated_whole")},
            "bare": {"first": [], "whole": []},
        }
        saved = (session_module.ChatSession, chat.AnswerText, os.environ.get(KEY_VAR))
        session_module.ChatSession = ForwardingSession  # the pane imports it when a message is sent
        chat.AnswerText = TimedText
        os.environ[KEY_VAR] = API_KEY
        try:
            with tempfile.TemporaryDirectory(prefix="glmtui-bench-") as folder:
                store = Store(Path(folder) / "glmtui.sqlite3", Path(folder) / "runs")
                app = PaneApp(store)
                async with app.run_test(size=SCREEN_SIZE) as pilot:
                    pane = app.query_one(chat.ChatPane)
                    pane.engine = Engine()
                    pane.environments_listed({"bench": "running"})  # what the app's listing tells it
                    pane.chat_in("bench")
                    await settle(pilot, lambda: pane.environment == "bench", "showing the environment")
                    pane.input.focus()

                    async def on_pane() -> dict[str, float]:
                        for kept in (started, first_piece, returned, marks, frames):
                            kept.clear()
                        drawn[0] = 0
                        whole.clear()
                        pane.input.value = MESSAGES[0]["content"]
                        await pilot.press("enter")
                        await asyncio.wait_for(whole.wait(), 10)
                        await settle(pilot, lambda: not pane.busy, "the end of the reply")
                        answer = pane.transcript.query_one(TimedText)
                        shown = " ".join(line.text for line in answer._lines)
                        if shown.split() != CONTENT.split() or not marks:
                            raise RuntimeError(f"screen: the reply was drawn wrong ({len(shown)} characters)")
                        pane.action_new()  # a new conversation: the next round starts on an empty pane
                        await pilot.pause()
                        start = started[0]
                        return {"first": next(at for at, length in frames if length) - start,
                                "whole": next(at for at, length in frames if length == len(CONTENT)) - start,
                                "client_first": first_piece[0] - start, "client_whole": returned[0] - start,
                                "updated_first": marks[0][0] - start,
                                "updated_whole": next(at for at, length in marks if length == len(CONTENT)) - start}

                    async def on_bare() -> dict[str, float]:
                        first: list[float] = []

                        def on_text(_piece: str) -> None:
                            if not first:
                                first.append(time.perf_counter())

                        start = time.perf_counter()
                        text, _ = await bare.stream(body, on_text)
                        ended = time.perf_counter()
                        if text != CONTENT:
                            raise RuntimeError("bare: the reply came wrong")
                        return {"first": first[0] - start, "whole": ended - start}

                    for i in range(total):
                        for side in ("pane", "bare") if i % 2 == 0 else ("bare", "pane"):
                            sample = await (on_pane() if side == "pane" else on_bare())
                            if i >= self.warmup:
                                for name, value in sample.items():
                                    sides[side][name].append(value)
        finally:
            session_module.ChatSession, chat.AnswerText, key = saved
            if key is None:
                os.environ.pop(KEY_VAR, None)
            else:
                os.environ[KEY_VAR] = key
            await client.close()
            await bare.close()
        pane, raw = sides["pane"], sides["bare"]

        def over(ours: list[float], theirs: list[float]) -> str:
            return f"{median_diff(ours, theirs) * 1000:+.2f} ms"

        notes = {
            "first": f"the first piece at ModelClient's callback {over(pane['client_first'], raw['first'])}, in the "
                     f"answer's widget (drawn as Markdown) {over(pane['updated_first'], raw['first'])}; this figure: the first frame "
                     f"that drew it",
            "whole": f"ModelClient's reply returned {over(pane['client_whole'], raw['whole'])}, the whole reply in the "
                     f"answer's widget {over(pane['updated_whole'], raw['whole'])}; this figure: the first frame "
                     f"that drew it",
        }
        for name, title in (("first", f"first token on screen{label}"),
                            ("whole", f"whole reply on screen, {PIECES} pieces{label}")):
            overhead = median_diff(pane[name], raw[name])
            self.figures.append(Figure(
                f"screen_{kind}_{name}", title, "s", statistics.median(pane[name]), statistics.median(raw[name]),
                overhead, "diff", "overhead < 10 ms", overhead < 0.010, self.runs, pane[name], raw[name],
                note=notes[name],
            ))
        if bare.connections != 1:
            self.notes.append(f"screen{label}: the bare client opened {bare.connections} connections")
        if kind == "text":
            self.notes.append(f"screen: Textual draws at most {constants.MAX_FPS} frames a second (TEXTUAL_FPS)")

    async def tool(self) -> None:
        from glmtui.agent.approval import Policy
        from glmtui.agent.client import ModelClient
        from glmtui.agent.loop import Agent, system_prompt
        from glmtui.agent.providers import Provider
        from glmtui.agent.tools import Toolbox
        from glmtui.docker.engine import Engine
        from glmtui.docker.spec import EnvSpec, container_name
        from glmtui.events import ToolCall, ToolResult

        env = self.env
        engine = await Engine.connect()
        client = None
        try:
            self.say(f"tool: creating environment {env} ({BUSYBOX})")
            made = await engine.create_environment(EnvSpec(name=env, image=BUSYBOX, labels={BENCH_LABEL: env}))
            toolbox = Toolbox(engine, env, workdir=made.workdir)
            provider = Provider(name="bench", base_url=self.server.base_url, model=MODEL, api_key_env=None)
            client = ModelClient(provider, api_key=API_KEY)
            system = system_prompt(toolbox, environment=env, image=made.image, workdir=made.workdir)
            cli_true = ["docker", "exec", container_name(env), "true"]
            cli_sh = ["docker", "exec", container_name(env), "sh", "-c", "true"]
            total = self.warmup + self.runs
            self.server.script("turn", total)
            samples: dict[str, list[float]] = {k: [] for k in ("loop", "turn", "toolbox", "engine", "cli", "cli_sh")}
            self.say(f"tool: {self.warmup} warm-up + {self.runs} rounds of the agent turn, Toolbox.call, "
                     "Engine.exec and docker exec (true, sh -c true)")
            for i in range(total):
                seen: list[tuple[float, Any]] = []
                agent = Agent(client, toolbox, system=system, policy=Policy("auto"),
                              sink=lambda event: seen.append((time.perf_counter(), event)), model=MODEL)
                started = time.perf_counter()
                result = await agent.send("Run true.")
                turn = time.perf_counter() - started
                calls = [t for t, e in seen if isinstance(e, ToolCall)]
                results = [(t, e) for t, e in seen if isinstance(e, ToolResult)]
                if not result.finished or result.text != "done" or len(calls) != 1 or len(results) != 1 \
                        or results[0][1].status != "ok":
                    raise RuntimeError(f"agent turn went wrong: {result}, events {[e for _, e in seen]}")
                loop = results[0][0] - calls[0]
                started = time.perf_counter()
                called = await toolbox.call("bash", {"command": "true"})
                box = time.perf_counter() - started
                if not called.ok:
                    raise RuntimeError(f"Toolbox.call bash true: {called.output}")
                started = time.perf_counter()
                executed = await engine.exec(env, ["true"])
                eng = time.perf_counter() - started
                if executed.exit_code != 0:
                    raise RuntimeError(f"Engine.exec true: exit {executed.exit_code}")
                cli = await asyncio.to_thread(timed_cli, cli_true)
                cli_sh_time = await asyncio.to_thread(timed_cli, cli_sh)
                if i >= self.warmup:
                    for key, value in (("loop", loop), ("turn", turn), ("toolbox", box), ("engine", eng),
                                       ("cli", cli), ("cli_sh", cli_sh_time)):
                        samples[key].append(value)
        finally:
            if client is not None:
                await client.close()
            try:
                await asyncio.shield(engine.remove_environment(env, volume=True))
            except Exception:  # noqa: BLE001 - the sweep after the loop gets it
                pass
            await engine.close()
        med = {k: statistics.median(v) for k, v in samples.items()}
        ratio = median_ratio(samples["loop"], samples["cli"])
        self.figures += [
            Figure("tool_loop", "tool part: ToolCall -> ToolResult (agent loop)", "s", med["loop"], med["cli"], ratio,
                   "ratio", "ratio <= 1.2", ratio <= 1.2, self.runs, samples["loop"], samples["cli"],
                   note="baseline: `docker exec glmtui-ENV true` by the docker CLI; the bash tool runs `sh -c true`"),
            Figure("tool_toolbox", "Toolbox.call('bash', true)", "s", med["toolbox"], med["cli"],
                   median_ratio(samples["toolbox"], samples["cli"]), "ratio", "-", None, self.runs,
                   samples["toolbox"], samples["cli"]),
            Figure("tool_sh", "tool part vs `docker exec ENV sh -c true`", "s", med["loop"], med["cli_sh"],
                   median_ratio(samples["loop"], samples["cli_sh"]), "ratio", "-", None, self.runs,
                   samples["loop"], samples["cli_sh"], note="the same work on both sides: sh -c true"),
            Figure("tool_engine", "Engine.exec(ENV, ['true'])", "s", med["engine"], med["cli"],
                   median_ratio(samples["engine"], samples["cli"]), "ratio", "-", None, self.runs,
                   samples["engine"], samples["cli"], note="the engine layer alone (bench/engine.py's exec figure)"),
            Figure("tool_turn", "whole turn: 2 model calls + the tool", "s", med["turn"], None, None, "", "-", None,
                   self.runs, samples["turn"],
                   note=f"Agent.send: the model asks for bash true, gets the result, answers; loop overhead outside "
                   f"the tool: {(med['turn'] - med['loop']) * 1000:.1f} ms for the two model calls"),
        ]


def timed_cli(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode().strip()}")
    return elapsed


# -- setup and clean-up ----------------------------------------------------------------------------


def sweep(env: str) -> list[str]:
    """Remove what this run made (containers by label, the workspace volume); without the event loop."""
    removed: list[str] = []
    found = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={env}"],
                           capture_output=True, text=True)
    ids = found.stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True)
        removed += ids
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name=glmtui-{env}"],
                             capture_output=True, text=True)
    names = [v for v in volumes.stdout.split() if v.startswith(f"glmtui-{env}")]
    if names:
        subprocess.run(["docker", "volume", "rm", "-f", *names], capture_output=True)
        removed += names
    return removed


async def run(args: argparse.Namespace, bench: Bench) -> None:
    if "stream" in args.only:
        await bench.stream("text")
        await bench.stream("paced")
    if "screen" in args.only:
        await bench.screen("text")
        await bench.screen("paced")
    if "tool" in args.only:
        await bench.tool()


# -- output ----------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def compared(f: Figure) -> str:
    if f.compared is None:
        return "-"
    if f.how == "diff":
        return f"{f.compared * 1000:+.2f} ms"
    return f"{f.compared:.2f}"


def table(figures: list[Figure], meta: dict[str, Any], notes: list[str]) -> str:
    lines = [
        f"glmtui agent bench  {meta['date']}",
        f"openai {meta['openai']}, {meta['httpx']}, pydantic {meta['pydantic']}; Docker {meta['engine']}; "
        f"docker CLI {meta['docker_cli']}",
        f"machine: {meta['nproc']} cores (nproc), {meta['cpu']}; Python {meta['python']}; runs={meta['runs']} "
        f"(+{meta['warmup']} warm-up); load average before/after: {meta['load_before']} / {meta.get('load_after')}",
        "",
    ]
    header = ("figure", "runs", "glmtui", "baseline", "vs baseline", "goal", "")
    rows = [(f.title, str(f.runs), fmt(f.glmtui), fmt(f.baseline), compared(f), f.goal, verdict(f.passed))
            for f in figures]
    lines += aligned(header, rows)
    all_notes = [f"  {f.key}: {f.note}" for f in figures if f.note] + [f"  {n}" for n in notes]
    if any(f.key.startswith(("text", "paced")) for f in figures):
        all_notes += [
            "  stream baseline: a bare asyncio HTTP/1.1 client on one kept connection (chunked decoding, SSE lines,"
            " json.loads per chunk); glmtui: ModelClient.stream (AsyncOpenAI made once, its connection kept)",
            "  vs baseline for stream figures: the median of the per-round differences (glmtui - baseline)",
        ]
    if any(f.key.startswith("screen") for f in figures):
        all_notes += [
            "  screen: a headless App (run_test) holding the ChatPane; a stand-in session forwards one real"
            " ModelClient.stream's pieces to the pane's sink as Token events; from the call to the first frame"
            " that drew text of the reply / the whole reply (the widgets' lines rendered for it); the headless"
            " driver writes nothing (no escape codes, no terminal drawing); baseline: the bare client's first token"
            " / whole reply in the same round and event loop",
        ]
    if any(f.key.startswith("tool") for f in figures):
        all_notes.append("  vs baseline for tool figures: the median of the per-round ratios (baseline: docker exec "
                         "glmtui-ENV true unless said)")
    lines += ["", "notes:", *all_notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    kinds = ("stream", "screen", "tool")
    parser = argparse.ArgumentParser(description="glmtui's model client and agent tools against bare baselines.")
    parser.add_argument("--runs", type=int, metavar="N", help="rounds of each figure (default 30, --quick 5)")
    parser.add_argument("--quick", action="store_true", help="5 rounds after 2 warm-up rounds")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout, with every sample")
    parser.add_argument("--only", default=",".join(kinds), metavar="LIST",
                        help=f"a comma-separated subset of {','.join(kinds)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 5 if args.quick else 30
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.warmup = 2 if args.quick else 5
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    if not args.only or args.only - set(kinds):
        parser.error(f"--only takes a subset of {','.join(kinds)}")
    return args


def describe(args: argparse.Namespace, env: str) -> dict[str, Any]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    server = subprocess.run(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                            capture_output=True, text=True)
    client = subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "openai": version("openai"),
        "httpx": next((f"{name} {version(name)}" for name in ("httpx", "httpx2") if version(name) != "?"), "?"),
        "pydantic": version("pydantic"),
        "engine": server.stdout.strip() or "?",
        "docker_cli": client.stdout.strip() or "?",
        "runs": args.runs,
        "warmup": args.warmup,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "environment": env,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "tool" in args.only and shutil.which("docker") is None:
        print("bench/agent.py: the docker CLI is not on PATH", file=sys.stderr)
        return 2
    env = f"benchagent-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop the run at once, even inside a `docker` subprocess; the sweep follows.
    saved = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    meta = describe(args, env)
    server: ServerProcess | None = None
    bench: Bench | None = None
    try:
        server = ServerProcess()
        bench = Bench(server, env, args.runs, args.warmup, log=not args.json and not args.quiet)
        asyncio.run(run(args, bench))
    except KeyboardInterrupt:
        print("\nbench/agent.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/agent.py: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        for sig in saved:  # a second Ctrl-C must not skip the clean-up
            signal.signal(sig, signal.SIG_IGN)
        if server is not None:
            server.close()
        if "tool" in args.only:
            leftovers = sweep(env)
            if leftovers:
                print(f"bench/agent.py: removed leftovers: {' '.join(leftovers)}", file=sys.stderr)
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.json:
        print(json.dumps({"meta": meta, "figures": [asdict(f) for f in bench.figures], "notes": bench.notes},
                         indent=2))
    else:
        print(table(bench.figures, meta, bench.notes))
    return 1 if args.strict and any(f.passed is False for f in bench.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
