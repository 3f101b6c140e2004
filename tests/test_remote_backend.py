"""RemoteBackend (glmtui.service.remote): the Backend of the web dashboard's TUI, over a real
`glmtui serve` on a random loopback port and the real engine: runs started by their plan file,
followed from their first event, listed, attached to, cancelled; a plan outside the served
folders refused; a chat turn through POST /chats with an approval answered."""

from __future__ import annotations

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
env: {image: glmtui/busybox:latest}
steps:
  - id: print
    run: |
      for i in $(seq 1 200); do echo "line $i"; sleep 0.1; done
"""


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
    finally:
        await backend.close()
