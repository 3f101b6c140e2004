"""RemoteBackend (glmtui.service.remote): the Backend of the web dashboard's TUI, over a real
`glmtui serve` on a random loopback port and the real engine: runs started by their plan file,
followed from their first event, listed, attached to, cancelled; a plan outside the served
folders refused; a chat turn through POST /chats with an approval answered, then undone."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

import helpers
from agent_helpers import KEY_ENV, new_key
from model_server import text, tool_calls
from plan_helpers import remove_run_leftovers
from serve_helpers import Serve

from glmtui.errors import BadInput, NotFound
from glmtui.events import (
    ApprovalAsked, Output, RunFinished, RunStarted, StepFinished, ToolResult, TurnFinished, TurnStarted,
)
from glmtui.service.backend import ChatRequest, RunRequest
from glmtui.service.remote import RemoteBackend

pytestmark = pytest.mark.docker

LINES = """
version: 1
name: lines
inputs:
  count: {type: integer, default: 200}
env: {image: glmtui/busybox:latest}
steps:
  - id: print
    run: |
      for i in $(seq 1 ${inputs.count}); do echo "line $i"; sleep 0.05; done
"""


class CuttingProxy:
    """A TCP proxy in front of serve that cuts the first stream of run events after `after`
    seconds, as a network that drops a connection does."""

    def __init__(self, port: int, after: float) -> None:
        self.port, self.after = port, after
        self.event_streams = 0
        self.resumed_after: list[int] = []  # the Last-Event-ID of each request for events
        self.server: Any = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        cut = asyncio.get_running_loop().create_future()

        async def requests() -> None:  # requests of a kept-alive connection: look at each
            while data := await reader.read(65536):
                streams = data.count(b"/events HTTP/1.1")
                if streams and self.event_streams == 0 and not cut.done():
                    asyncio.get_running_loop().call_later(self.after, lambda: cut.done() or cut.set_result(None))
                self.event_streams += streams
                self.resumed_after += [int(n) for n in re.findall(rb"(?i)last-event-id: (\d+)", data) if streams]
                upstream_writer.write(data)
                await upstream_writer.drain()

        async def answers() -> None:
            while data := await upstream_reader.read(65536):
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.ensure_future(requests()), asyncio.ensure_future(answers())]
        await asyncio.wait([cut, *pumps], return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        writer.transport.abort()
        upstream_writer.transport.abort()

    async def close(self) -> None:
        self.server.close()


@pytest.fixture
def server(tmp_path: Path, busybox_image: str, model_server: Any) -> Any:
    serve = Serve(tmp_path / "serve", env={KEY_ENV: new_key()}, config={
        "default_provider": "test",
        "providers": {"test": {"base_url": model_server.base_url, "api_key_env": KEY_ENV, "model": "test-model"}},
    })
    serve.plan("hello", (helpers.PROJECT_ROOT / "plans" / "hello.yaml").read_text())
    serve.plan("lines", LINES)
    try:
        yield serve
    finally:
        serve.kill()


def backend_of(serve: Serve) -> RemoteBackend:
    return RemoteBackend(serve.url, lambda: serve.token)


async def test_a_run_started_by_its_file_and_followed(server: Serve) -> None:
    backend = backend_of(server)
    handle = None
    try:
        handle = await backend.start_run(RunRequest([str(server.plans / "hello.yaml")], "main", {"who": "remote"}))
        seen = [(seq, event) async for seq, event in handle.events()]
        assert [seq for seq, _ in seen] == list(range(1, len(seen) + 1))  # each once, in order
        events = [event for _, event in seen]
        assert isinstance(events[0], RunStarted) and events[0].run_id == handle.id and events[0].plan == "hello"
        assert isinstance(events[-1], RunFinished) and events[-1].status == "success"
        assert any(isinstance(e, Output) and "hello, remote" in e.text for e in events)
        assert {e.step: e.status for e in events if isinstance(e, StepFinished)} == {
            "greet": "success", "count": "success", "shout": "skipped", "report": "success", "show": "success"}
        assert handle.status == "success" and handle.error is None
        # from an event on: the rest, and nothing twice
        rest = [seq async for seq, _ in (await backend.attach(handle.id)).events(after=3)]
        assert rest == list(range(4, len(seen) + 1))
        # a plan the server does not serve: refused, nothing started
        outside = server.folder / "elsewhere.yaml"
        outside.write_text((helpers.PROJECT_ROOT / "plans" / "hello.yaml").read_text())
        with pytest.raises(BadInput, match="runs only the plans of its folders"):
            await backend.start_run(RunRequest([str(outside)]))
        with pytest.raises(NotFound):
            await backend.attach("20990101-000000-000000")
    finally:
        await backend.close()
        if handle is not None:
            remove_run_leftovers(handle.id)


async def test_a_run_listed_attached_and_cancelled_from_another_backend(server: Serve) -> None:
    first, second = backend_of(server), backend_of(server)
    handle = None
    try:
        handle = await first.start_run(RunRequest([str(server.plans / "lines.yaml")]))
        await first.close()  # the tab that started it is gone; the run is serve's
        going = [info for info in await second.list_work() if info.running]
        assert [(info.id, info.kind, info.title) for info in going] == [(handle.id, "run", "lines")]
        assert going[0].plan_file == str(server.plans / "lines.yaml")
        attached = await second.attach(handle.id)
        assert attached.status == "running"
        async for _, event in attached.events():
            if isinstance(event, Output) and "line 3" in event.text:
                await attached.cancel()
        assert attached.status == "cancelled"
        assert all(not info.running for info in await second.list_work())
    finally:
        await second.close()
        if handle is not None:
            remove_run_leftovers(handle.id)


async def test_a_dropped_event_stream_is_opened_again_and_nothing_is_lost_or_seen_twice(server: Serve) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, after=1.0)
    backend = RemoteBackend(await proxy.start(), lambda: server.token)
    handle = None
    try:
        handle = await backend.start_run(RunRequest([str(server.plans / "lines.yaml")], inputs={"count": "60"}))
        seen = [(seq, event) async for seq, event in handle.events()]
        assert proxy.event_streams >= 2  # cut once, opened again with Last-Event-ID
        assert proxy.resumed_after[0] == 0 and proxy.resumed_after[1] > 5, proxy.resumed_after
        assert [seq for seq, _ in seen] == list(range(1, len(seen) + 1))
        printed = [line for _, e in seen if isinstance(e, Output) for line in e.text.split("\n") if line]
        assert printed == [f"line {i}" for i in range(1, 61)]
        assert isinstance(seen[-1][1], RunFinished) and handle.status == "success"
    finally:
        await backend.close()
        await proxy.close()
        if handle is not None:
            remove_run_leftovers(handle.id)


async def test_a_chat_turn_through_the_api_with_an_approval(server: Serve, model_server: Any, make_env: Any) -> None:
    env = await make_env()
    backend = backend_of(server)
    try:
        model_server.script(tool_calls([("c1", "bash", {"command": "echo from-chat > /workspace/said"})]),
                            text("Wrote it."))
        turn = await backend.send_chat(ChatRequest(env.name, "write it"))
        assert turn.kind == "chat"
        events = []
        async for _, event in turn.events():
            events.append(event)
            if isinstance(event, ApprovalAsked):
                await turn.answer(event.approval_id, "yes")
        assert isinstance(events[0], TurnStarted) and events[0].environment == env.name
        assert any(isinstance(e, ToolResult) for e in events)
        assert isinstance(events[-1], TurnFinished) and events[-1].finished
        assert turn.status == "success" and turn.error is None
        said = helpers.docker("exec", helpers.container_of(env.name), "cat", "/workspace/said").stdout
        assert said == "from-chat\n"
        # /undo through the API: the file the turn wrote is gone, and a second undo has nothing to do
        done = await backend.undo_chat(events[0].conversation_id)
        assert done is not None and done["checkpoint"] != done["rescue"]
        listed = helpers.docker("exec", helpers.container_of(env.name), "ls", "/workspace").stdout
        assert "said" not in listed.split()
        assert await backend.undo_chat(events[0].conversation_id) is None
    finally:
        await backend.close()
