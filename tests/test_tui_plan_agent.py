"""A plan with an agent step run from the TUI: the approval dialog, and the agent's work in the
log pane, against the real engine and the scripted model server through the real SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_server import ModelServer, text, tool_calls
from plan_helpers import make_store, remove_run_leftovers, write_plan
from test_tui_app import SIZE, SessionEngine, screen_text, start_run, step_rows, wait_until

from glmtui.config import KEYS, Config
from glmtui.docker.engine import Engine
from glmtui.tui.app import GlmtuiApp
from glmtui.tui.screens.dialogs import ApproveCall
from glmtui.tui.widgets.plan_view import PlanPane

pytestmark = pytest.mark.docker

KEY_VAR = "GLMTUI_TEST_PLAN_AGENT_KEY"
PLAN = """
    version: 1
    name: agentic
    env: {image: @IMAGE@}
    steps:
      - id: fix
        agent:
          prompt: make the note
          provider: test
          approval: ask
      - id: check
        needs: [fix]
        run: cat /workspace/note.txt
    """


def config_for(server: ModelServer) -> Config:
    settings = {key: spec.default for key, spec in KEYS.items()}
    settings.update({"providers.test.base_url": server.base_url, "providers.test.api_key_env": KEY_VAR,
                     "providers.test.model": "glm-test"})
    return Config(settings, {key: "test" for key in settings})


@pytest.mark.parametrize("answer", ["y", "n"])
async def test_an_agent_step_asks_in_a_dialog_and_its_work_shows_in_the_log(
    tmp_path: Path, busybox_image: str, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch, answer: str,
) -> None:
    monkeypatch.setenv(KEY_VAR, "sk-plan-agent-key-123456")
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "echo agent-was-here > /workspace/note.txt"})], usage=(10, 5)),
        text("I wrote the note.", usage=(20, 4)),
    )
    plan = write_plan(tmp_path, PLAN, IMAGE=busybox_image)

    async def connect() -> SessionEngine:
        return SessionEngine(await Engine.connect())

    app = GlmtuiApp(config=config_for(model_server), store=make_store(tmp_path / "data"), plan=plan,
                    engine_factory=connect)
    run_id = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.connected, what="the engine")
            run_id = await start_run(pilot, app)
            await wait_until(pilot, lambda: isinstance(app.screen, ApproveCall), timeout=30, what="the approval dialog")
            dialog_text = " ".join(str(label.render()) for label in app.screen.query("Label, Static"))
            assert "fix" in dialog_text and "echo agent-was-here > /workspace/note.txt" in dialog_text
            await pilot.press(answer)
            pane = app.query_one(PlanPane)
            await wait_until(pilot, lambda: pane.run_status is not None and not pane.running, timeout=60,
                             what="the run to end")
            await pilot.pause(0.3)
            rows = step_rows(app)
            # the fix step's log, as the user selects it
            await pilot.press("home")
            await pilot.pause(0.3)
            shown = screen_text(app)
            assert "→ bash: echo agent-was-here > /workspace/note.txt" in shown
            assert "I wrote the note." in shown
            if answer == "y":
                assert rows["fix"][0] == "✔" and rows["check"][0] == "✔"
                assert "← ok exit 0" in shown
            else:
                assert "← denied" in shown
                assert rows["check"][0] == "✘"  # the note was never written
            assert "sk-plan-agent-key-123456" not in shown
    finally:
        if run_id:
            remove_run_leftovers(run_id)
