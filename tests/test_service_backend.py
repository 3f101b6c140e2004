"""The service layer as user interfaces use it: the backend (start, list, attach, follow, cancel),
events that read back from their JSON, the headless run's output unchanged by going through the
service, and the layer free of textual."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import helpers
from plan_helpers import make_store, remove_run_leftovers, run_containers, run_plan, write_plan

from glmtui.config import Config
from glmtui.errors import BadInput
from glmtui.events import (
    KINDS,
    ApprovalAnswered,
    ApprovalAsked,
    ExecutionFinished,
    ModelRetry,
    Output,
    Progress,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    Token,
    ToolCall,
    ToolResult,
    TurnFinished,
    TurnStarted,
    Usage,
    from_json,
)
from glmtui.headless import JsonRenderer
from glmtui.service.backend import LocalBackend, RunRequest
from glmtui.service.service import Service

SERVICE = helpers.PROJECT_ROOT / "glmtui" / "service"


# --- the layer's boundaries -------------------------------------------------------------------


def test_nothing_under_the_service_imports_textual() -> None:
    """Not at the top of a module, nor inside a function (a lazy import is still an import)."""
    found = []
    for path in sorted(SERVICE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}:{node.lineno} {name}" for name in names
                      if name == "textual" or name.startswith(("textual.", "glmtui.tui"))]
    assert found == []
    modules = sorted(f"glmtui.service.{path.stem}" for path in SERVICE.glob("*.py") if path.stem != "__init__")
    assert "glmtui.service.backend" in modules and "glmtui.service.chat" in modules
    code = f"import sys; import {', '.join(modules)}; print(sorted(m for m in sys.modules if m.startswith('textual')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_imports_none_of_the_service() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "glmtui", "--help"], capture_output=True,
                            text=True, timeout=60, env=helpers.child_env())
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "glmtui.cli" in imported
    assert sorted(name for name in imported if name.startswith(("glmtui.service", "glmtui.plan", "glmtui.events"))) == []


# --- events: the JSON of --json, read back ------------------------------------------------------


def samples() -> list[Any]:
    """One event of every kind, with values of every sort its fields take."""
    return [
        RunStarted("20250102-030405-5a9f0e", "hello", "main", "run-x", True, ts=1.5),
        Progress("creating throw-away environment", ts=2.0),
        StepStarted("build", 2),
        Output("build", "stderr", 'one\n"two"\n\\three\n'),
        StepFinished("build", "failure", 3, 1.25, {"n": 1, "list": [1, "a"]}, "exit code 3", 2, True),
        RunFinished("20250102-030405-5a9f0e", "failure", 2.5, "run-x"),
        Token("fix", "the **answer**", "reasoning"),
        ToolCall("fix", "call_1", "bash", {"command": "pytest -q"}),
        ToolResult("fix", "call_1", "bash", "ok", "1 passed\nexit code 0", 0, 0.2),
        ModelRetry("fix", "rate limited: retrying in 2.0 s", 2.0, 2, 5),
        Usage("chat", 10, 5, 100, 50),
        ApprovalAsked("a1b2c3d4", "fix", "bash", "rm -rf build", "rm *", {"command": "rm -rf build"}),
        ApprovalAnswered("a1b2c3d4", "always"),
        TurnStarted("c-1", "fix-tests", "zai", "glm-4.6", 1200, 34),
        TurnFinished(False, "stopped after 30 turns (max_turns)"),
        ExecutionFinished("20250102-030405-5a9f0f", "nightly", "schedule", "success", None, "done", 10, 5, 1),
    ]


def test_every_event_kind_reads_back_from_its_json() -> None:
    events = samples()
    assert {event.kind for event in events} == set(KINDS), "a kind without a sample here"
    for event in events:
        line = event.json_line() if isinstance(event, Output) else json.dumps(event.to_json())
        assert from_json(json.loads(line)) == event, event.kind
    with pytest.raises(BadInput, match="unknown event 'teleported'"):
        from_json({"event": "teleported", "ts": 1.0})
    with pytest.raises(BadInput, match="event 'step_started' is not whole"):
        from_json({"event": "step_started", "ts": 1.0})


# --- the headless run: through the service, the same output --------------------------------------

CHAIN = """
    version: 1
    name: same-events
    env: {image: @IMAGE@}
    steps:
      - id: one
        run: |
          echo "first line"
          echo "value=42" >> "$GLMTUI_OUTPUT"
      - id: two
        needs: [one]
        run: echo "complaint about ${steps.one.outputs.value}" >&2
      - id: three
        needs: [two]
        write: {path: /workspace/x.txt, content: "x\\n"}
      - id: four
        needs: [three]
        run: cat /workspace/x.txt; exit 3
        continue_on_error: true
    """


def normalized(json_output: str) -> str:
    """--json output with what differs from run to run (times, durations, run ids) made fixed."""
    text = re.sub(r'"(ts|duration)": [0-9.e+-]+', r'"\1": 0', json_output)
    return re.sub(r"\d{8}-\d{6}-[0-9a-f]{6}", "RUN", text)


@pytest.mark.docker
async def test_the_headless_json_is_the_runners_own_events_byte_for_byte(
    tmp_path: Path, engine: Any, busybox_image: str, glmtui: Any,
) -> None:
    """What `glmtui --run --json` printed when it gave the runner's events to the renderer itself
    is what it prints now that the run is the service's."""
    plan = write_plan(tmp_path, CHAIN, IMAGE=busybox_image)
    out = io.StringIO()
    renderer = JsonRenderer(out)
    direct = await run_plan(engine, plan, sink=renderer)
    renderer.close()
    remove_run_leftovers(direct.run_id)
    result = glmtui("--run", str(plan), "--json")
    assert result.returncode == 0, result.stderr
    assert normalized(result.stdout) == normalized(out.getvalue())
    kinds = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert kinds.count("step_finished") == 4 and kinds[-1] == "run_finished"


# --- the in-process backend ---------------------------------------------------------------------

SLOW = """
    version: 1
    name: slow
    env: {image: @IMAGE@}
    steps:
      - id: tick
        run: for i in 1 2 3 4 5 6 7 8 9 10; do echo "tick $i"; sleep 0.3; done
      - id: after
        needs: [tick]
        run: echo after
    """


@pytest.mark.docker
async def test_a_run_started_through_the_backend_is_listed_attached_to_and_cancelled(
    tmp_path: Path, engine: Any, busybox_image: str,
) -> None:
    """Plain data in (the request), events out: a second follower that attaches late gets the
    same events from the first, and a cancel through any handle ends the run as Ctrl-C does."""
    plan = write_plan(tmp_path, SLOW, IMAGE=busybox_image)
    store = make_store(tmp_path / "data")
    backend = LocalBackend(Service(engine, store, Config.load(cwd=tmp_path)))
    handle = await backend.start_run(RunRequest([str(plan)]))
    try:
        first: list[tuple[int, Any]] = []

        async def follow() -> None:
            async for item in handle.events():
                first.append(item)

        follower = asyncio.create_task(follow())
        while not any(isinstance(e, Output) and "tick 2" in e.text for _, e in first):
            await asyncio.sleep(0.05)
        [info] = await backend.list_work()
        assert (info.id, info.kind, info.status, info.title, info.plan_file) == (
            handle.id, "run", "running", "slow", str(plan))
        late = await backend.attach(handle.id)
        await late.cancel()
        second = [item async for item in late.events()]
        await follower
        assert second == first, "the same (seq, event) pairs, from the first"
        assert [e.kind for _, e in first][0] == "run_started"
        finished = [e for _, e in first if isinstance(e, RunFinished)]
        assert [e.status for e in finished] == ["cancelled"]
        assert handle.status == late.status == "cancelled" and handle.error is None
        assert run_containers(handle.id) == [] and store.run(handle.id).status == "cancelled"
        [info] = await backend.list_work()
        assert (info.status, info.running) == ("cancelled", False)
        with pytest.raises(BadInput, match="no work 'nope'"):
            await backend.attach("nope")
    finally:
        await backend.close()
        remove_run_leftovers(handle.id)
