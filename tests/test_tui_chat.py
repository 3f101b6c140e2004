"""The chat pane, driven by Pilot: the whole app against the real Docker engine and a real local
OpenAI-compatible server (tests/model_server.py) through the real SDK, nothing patched.

What the user sees is read from the screen (the compositor's rows, the screenshot SVG); what the
agent did, from the container (docker exec) and from the requests the server received.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from model_server import ModelServer, drip, error, text, tool_calls
from plan_helpers import make_store
from test_tui_app import SessionEngine, notifications, screen_text, select_env, wait_until
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Button, Input, OptionList

import helpers
from glmtui.config import KEYS, Config
from glmtui.conversations import Conversations
from glmtui.docker.engine import Engine
from glmtui.tui.app import GlmtuiApp
from glmtui.tui.screens.chat import ConversationPicker, EnvironmentPicker, ExportScreen, ModelPicker
from glmtui.tui.screens.dialogs import ConfirmRemove
from glmtui.tui.screens.help import HelpScreen
from glmtui.tui.widgets.answer import AnswerText
from glmtui.render import tokens_text
from glmtui.tui.widgets.chat import ApprovalPrompt, ChatPane, ThinkingBlock, ToolCard
from glmtui.tui.widgets.environments import EnvironmentsPane
from glmtui.tui.widgets.plan_view import StepTable

pytestmark = pytest.mark.docker

SIZE = (160, 45)
KEY_VAR = "GLMTUI_TEST_CHAT_KEY"
KEY = "sk-test-SECRET-4242-abcdef"


def chat_config(server: ModelServer, **values: Any) -> Config:
    """glmtui's defaults with the provider `test` at the model server, its key in KEY_VAR."""
    settings = {key: spec.default for key, spec in KEYS.items()}
    settings.update({
        "default_provider": "test",
        "providers.test.base_url": server.base_url,
        "providers.test.api_key_env": KEY_VAR,
        "providers.test.model": "glm-test",
    })
    settings.update(values)
    return Config(settings, {key: "test" for key in settings})


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VAR, KEY)
    return KEY


@asynccontextmanager
async def chat_tui(
    tmp_path: Path, config: Config, environment: str | None,
) -> AsyncIterator[tuple[GlmtuiApp, Pilot, ChatPane]]:
    """The app on the real engine (this session's environments only), the chat in `environment`
    (c on its row) and its conversation shown (None: no environment picked). The store is
    tmp_path/data, the same for every app of a test."""
    engines: list[SessionEngine] = []

    async def connect() -> SessionEngine:
        engines.append(SessionEngine(await Engine.connect()))
        return engines[-1]

    app = GlmtuiApp(config=config, store=make_store(tmp_path / "data"), engine_factory=connect)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.connected and app.engine.listings, what="connected and listed")
            pane = app.query_one(ChatPane)
            if environment is not None:
                await chat_in(pilot, app, environment)
            yield app, pilot, pane
    finally:
        for engine in engines:
            await engine._engine.close()


async def chat_in(pilot: Pilot, app: GlmtuiApp, environment: str) -> None:
    """`c` on the environment's row: the chat works there."""
    await select_env(pilot, app, environment)
    await pilot.press("c")
    pane = app.query_one(ChatPane)
    await wait_until(pilot, lambda: pane.environment == environment and pane.input.has_focus,
                     what="the chat in the environment")


async def send(pilot: Pilot, app: GlmtuiApp, message: str) -> None:
    """`c` (to the chat, from the plan pane), type the message, enter."""
    pane = app.query_one(ChatPane)
    if not pane.input.has_focus:
        app.query_one(StepTable).focus()
        await pilot.press("c")
        await wait_until(pilot, lambda: pane.input.has_focus, what="the message line focused")
    before = len(pane.transcript.children)
    if len(message) > 12:
        pane.input.insert_text_at_cursor(message)
    else:
        await pilot.press(*message)
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(pane.transcript.children) > before, what="the message shown")


def pane_text(app: GlmtuiApp) -> str:
    """The chat pane's rows as the user reads them (title and subtitle included)."""
    pane = app.query_one(ChatPane)
    region = pane.region
    strips = app.screen._compositor.render_strips()
    return "\n".join(strips[y].text[region.x:region.right] for y in range(region.y, region.bottom))


def transcript_text(app: GlmtuiApp) -> str:
    """Everything in the conversation, also what is scrolled out of view: each widget's own text."""
    pane = app.query_one(ChatPane)
    parts = []
    for widget in pane.transcript.query("*"):
        if isinstance(widget, AnswerText):
            parts.append(widget.text)
            continue
        try:
            content = widget.render()
        except Exception:  # noqa: BLE001 - containers render nothing of their own
            continue
        parts.append(str(getattr(content, "plain", content)))
    return "\n".join(parts)


async def idle(pilot: Pilot, pane: ChatPane, timeout: float = 20) -> None:
    """The reply ended and its last text is drawn (a frame went by after it)."""
    await wait_until(pilot, lambda: not pane.busy, timeout=timeout, what="the reply to end")
    await pilot.pause(0.2)


def exec_in(environment: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", helpers.container_of(environment), *argv],
                          capture_output=True, text=True, timeout=30)


# --- (1) a streamed reply, its thinking apart, the usage in the title ---------------------------


async def test_a_streamed_reply_shows_as_markdown_with_its_thinking_apart_and_the_usage(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    answer = "Here is **the fix**:\n\n```python\nprint('fixed')\n```\n\nAll done."
    model_server.script(text(answer, reasoning="the user wants a fix; print it", usage=(1200, 34), pieces=8))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        assert f"Chat · {env.name} · test · glm-test" in pane_text(app)
        await send(pilot, app, "fix it")
        await idle(pilot, pane)
        shown = pane_text(app)
        assert "fix it" in shown and "the fix" in shown and "print('fixed')" in shown and "All done." in shown
        assert "**" not in shown and "```" not in shown  # drawn as Markdown, not as its source
        # the thinking: in a collapsed section of its own, not in the answer
        thinking = pane.query_one(ThinkingBlock)
        assert thinking.collapsed and "thinking · 7 words" in shown
        assert "the user wants a fix" not in shown
        assert thinking.text == "the user wants a fix; print it"
        # in order: the message, the thinking, the answer (the answer's widget, made ready when the
        # message was sent, stays after what the reply mounts before it)
        kinds = [type(widget).__name__ for widget in pane.transcript.children]
        assert kinds[-3:] == ["UserMessage", "ThinkingBlock", "AnswerText"], kinds
        # the usage of the message and of the conversation
        assert "last 1.2k · total 1.2k tokens" in shown
        # what the model was sent: the model from the config, the message, the tools
        body = model_server.requests[0].body
        assert body["model"] == "glm-test" and body["messages"][-1] == {"role": "user", "content": "fix it"}
        assert {tool["function"]["name"] for tool in body["tools"]} >= {"bash", "read_file"}
        assert model_server.requests[0].headers["Authorization"] == f"Bearer {key}"
        assert pane.input.has_focus  # ready for the next message
        # a second message adds to the conversation's total
        model_server.script(text("Sure.", usage=(1300, 2)))
        await send(pilot, app, "thanks")
        await idle(pilot, pane)
        assert "last 1.3k · total 2.5k tokens" in pane_text(app)


async def test_a_fast_stream_is_drawn_in_batches_and_whole_at_the_end(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = await make_env()
    words = " ".join(f"word{i}" for i in range(600))
    model_server.script(text(words, pieces=None, usage=(10, 600)))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        shown = []  # the answer's text each time it is drawn
        original = AnswerText.show

        def counting(self: AnswerText, text: str, **more: bool) -> None:
            shown.append(text)
            original(self, text, **more)

        monkeypatch.setattr(AnswerText, "show", counting)  # counts the redraws, changes nothing
        await send(pilot, app, "talk")
        await idle(pilot, pane)
        assert shown[-1] == words  # all of it, once
        assert len(shown) < 60, f"{len(shown)} redraws for 600 tokens"
        assert pane.transcript.query_one(AnswerText).text == words
        assert "word599" in pane_text(app)


# --- (2) approvals: y runs the command in the container, n refuses it ---------------------------


async def test_y_approves_a_command_that_runs_in_the_container(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    command = "echo approved > /tmp/approved.txt && cat /tmp/approved.txt"
    model_server.script(
        tool_calls([("call_1", "bash", {"command": command})], usage=(50, 10)),
        text("The file is there.", usage=(80, 5)),
    )
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "make a file")
        prompt = await wait_until(pilot, lambda: isinstance(app.focused, ApprovalPrompt) and app.focused,
                                  what="the approval prompt, focused")
        shown = pane_text(app)
        assert "Allow this bash call?" in shown and f"$ {command}" in shown and f"always for bash {command}" in shown
        assert "waiting for your approval" in shown
        assert exec_in(env.name, "cat", "/tmp/approved.txt").returncode != 0  # nothing ran yet
        # gone from the prompt (to the message line), enter brings the focus back to it
        pane.input.focus()
        await pilot.press("enter")
        assert app.focused is prompt
        await pilot.press("y")
        await idle(pilot, pane)
        assert exec_in(env.name, "cat", "/tmp/approved.txt").stdout == "approved\n"
        card = pane.query_one(ToolCard)
        assert (card.status, card.exit_code) == ("ok", 0)
        shown = pane_text(app)
        assert re.search(r"✔ bash\s+ok · exit 0 · (\d+ms|\d+\.\ds) · you said yes", shown), shown
        assert f"$ {command}" in shown and "approved" in shown and "exit code 0" in shown
        assert "The file is there." in shown
        assert [type(widget).__name__ for widget in pane.transcript.children][-3:] == [
            "UserMessage", "ToolCard", "AnswerText"]
        assert not prompt.is_attached and pane.input.has_focus  # the prompt went; the focus is back
        tool_message = model_server.requests[1].body["messages"][-1]
        assert tool_message["role"] == "tool" and tool_message["content"] == "approved\nexit code 0"


async def test_n_refuses_the_command_and_the_container_is_unchanged(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "touch /tmp/refused.txt"})], usage=(50, 10)),
        text("Understood, I will not.", usage=(80, 5)),
    )
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "touch a file")
        prompt = await wait_until(pilot, lambda: isinstance(app.focused, ApprovalPrompt) and app.focused,
                                  what="the approval prompt, focused")
        # away to another pane and back to the chat (c, or tab to the pane): the prompt has the focus again
        await pilot.press("tab")
        assert app.focused is app.query_one("#environments")
        await pilot.press("c")
        assert app.focused is prompt
        await pilot.press("tab", "shift+tab")
        assert app.focused is prompt
        await pilot.press("n")
        await idle(pilot, pane)
        card = pane.query_one(ToolCard)
        assert card.status == "denied"
        assert "⊘ bash" in pane_text(app) and "denied" in pane_text(app) and "you said no" in pane_text(app)
        assert "Understood, I will not." in pane_text(app)
        assert exec_in(env.name, "ls", "/tmp/refused.txt").returncode != 0
        assert model_server.requests[1].body["messages"][-1]["content"].startswith("refused:")
        assert pane.input.has_focus


async def test_a_always_allows_the_pattern_for_the_rest_of_the_conversation(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "echo one"})]),
        tool_calls([("call_2", "bash", {"command": "echo two"})]),
        text("Both ran."),
    )
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "echo twice")
        await wait_until(pilot, lambda: isinstance(app.focused, ApprovalPrompt), what="the approval prompt")
        assert "always for bash echo *" in pane_text(app)
        await pilot.press("a")
        await idle(pilot, pane)
        cards = list(pane.query(ToolCard))
        assert [card.status for card in cards] == ["ok", "ok"]  # the second one was not asked about
        assert "always: echo *" in pane_text(app)


# --- (3) esc stops the reply; what was said stays; the next message works -----------------------


async def test_the_answer_waits_on_a_dim_ellipsis_that_its_first_words_replace(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    """Until the model answers, the answer's line holds "…" (so the first words are a repaint of
    that line, not a layout); the words take its place, the status says so a tick later, and no
    "…" is left once the reply ended."""
    env = await make_env()
    model_server.script(dataclasses.replace(drip("alpha bravo charlie delta echo", interval=0.15), delay=0.6))

    def rows() -> list[str]:
        return [row.strip("│ ") for row in pane_text(app).splitlines()]

    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "spell")
        await wait_until(pilot, lambda: "…" in rows(), what="the answer's line waiting")
        assert "alpha" not in pane_text(app)
        assert "waiting for test…" in rows()
        answer = pane.transcript.children[-1]
        assert isinstance(answer, AnswerText) and answer.text == ""
        await wait_until(pilot, lambda: "alpha" in pane_text(app), what="the first words")
        assert "…" not in rows()
        assert pane.transcript.children[-1] is answer and answer.text.startswith("alpha")
        await wait_until(pilot, lambda: "replying…  esc stops" in rows(), what="the status while replying")
        await idle(pilot, pane)
        assert "…" not in rows() and "alpha bravo charlie delta echo" in pane_text(app)
        assert not any("replying" in row for row in rows())


async def test_a_long_reply_ends_right_above_the_message_line(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    """While it streams, an answer keeps a spare line below its text; once the reply ended, the
    transcript (scrolled to its end) shows the last line right above the message line again."""
    env = await make_env()
    body = "\n\n".join(f"paragraph {i}" for i in range(40))
    # drawn on the way, then a last word on the last line: the text needs no new line at the end
    model_server.script(drip(body + " end", pieces=[body, " end"], interval=0.3))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "talk")
        await idle(pilot, pane)
        rows = [row.strip("│ ") for row in pane_text(app).splitlines()]
        last = next(i for i, row in enumerate(rows) if row == "paragraph 39 end")
        assert rows[last + 1].startswith("›"), rows[last - 2:]


async def test_esc_stops_the_reply_and_keeps_what_was_said(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november"
    model_server.script(drip(words, interval=0.2), text("Second answer.", usage=(20, 3)))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "spell")
        await wait_until(pilot, lambda: "charlie" in pane_text(app), what="a part of the reply")
        await pilot.press("escape")
        await idle(pilot, pane)
        shown = pane_text(app)
        assert "charlie" in shown and "november" not in shown
        assert "stopped: what was said so far is kept" in shown
        await wait_until(pilot, lambda: model_server.requests[0].outcome == "disconnected", what="the stream closed")
        assert pane.input.has_focus
        await send(pilot, app, "again")
        await idle(pilot, pane)
        assert "Second answer." in pane_text(app)
        sent = model_server.requests[1].body["messages"]
        assert sent[-2]["role"] == "assistant" and "charlie" in sent[-2]["content"]
        assert "[stopped by the user]" in sent[-2]["content"] and sent[-1]["content"] == "again"


async def test_the_reply_is_a_turn_of_the_service_and_esc_stops_it_there(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    """The pane does not own the agent: the reply is a chat turn of the app's service, which a
    second follower can attach to, and esc cancels the turn through it."""
    env = await make_env()
    model_server.script(drip("alpha bravo charlie delta echo foxtrot golf hotel india juliet", interval=0.2))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "spell")
        await wait_until(pilot, lambda: "bravo" in pane_text(app), what="a part of the reply")
        [info] = await app.backend.list_work()
        assert (info.kind, info.status, info.title) == ("chat", "running", f"chat in {env.name}")
        turn = await app.backend.attach(info.id)
        await pilot.press("escape")
        await idle(pilot, pane)
        assert "stopped: what was said so far is kept" in pane_text(app)
        assert turn.status == "cancelled" and turn.error is None
        events = [event async for _, event in turn.events()]
        assert events[0].kind == "turn_started" and events[0].conversation_id == pane.conversation_id
        said = "".join(event.text for event in events if event.kind == "token")
        assert said.startswith("alpha bravo") and "juliet" not in said
        assert "turn_finished" not in {event.kind for event in events}
        [info] = await app.backend.list_work()
        assert (info.status, info.running) == ("cancelled", False)
        saved = Conversations(app.store).messages(pane.conversation_id)
        assert saved[-1]["role"] == "assistant" and saved[-1]["content"].startswith(said)
        assert saved[-1]["content"].endswith("[stopped by the user]")


async def test_esc_while_the_prompt_waits_stops_the_reply(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(tool_calls([("call_1", "bash", {"command": "touch /tmp/never.txt"})]))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "touch")
        await wait_until(pilot, lambda: isinstance(app.focused, ApprovalPrompt), what="the approval prompt")
        await pilot.press("escape")
        await idle(pilot, pane)
        assert not pane.query(ApprovalPrompt)
        assert pane.query_one(ToolCard).status == "cancelled"
        assert exec_in(env.name, "ls", "/tmp/never.txt").returncode != 0
        assert pane.input.has_focus


# --- (4) errors: one line, the pane stays usable -----------------------------------------------


async def test_a_refused_key_shows_one_line_naming_the_variable(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(error(401, code="1000", message="Authentication failed"), text("Now it works."))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "hello")
        await idle(pilot, pane)
        lines = [line for line in pane_text(app).splitlines() if "✘" in line]
        assert len(lines) == 1, pane_text(app)
        assert "test: the API key was refused (HTTP 401, code 1000): Authentication failed" in lines[0]
        assert f"check {KEY_VAR}" in lines[0]
        assert "Traceback" not in screen_text(app)
        await send(pilot, app, "hello again")
        await idle(pilot, pane)
        assert "Now it works." in pane_text(app)


async def test_a_rate_limit_shows_that_the_reply_is_retried_when_and_which_attempt(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(error(429, code="1302", message="slow down", retry_after=2), text("Here now."))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "hello")
        retrying = "↻ test: rate limited (HTTP 429, code 1302): slow down: retrying in 2.0 s (attempt 2 of 5)"
        await wait_until(pilot, lambda: retrying in pane_text(app), timeout=5, what="the retry in the status line")
        await idle(pilot, pane)
        assert "Here now." in pane_text(app) and retrying not in pane_text(app)
        assert len(model_server.requests) == 2


async def test_a_refused_connection_is_said_at_once_in_one_line(
    tmp_path: Path, make_env: Any, key: str,
) -> None:
    env = await make_env()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nothing listens there
    config = chat_config(type("Closed", (), {"base_url": base_url})())
    async with chat_tui(tmp_path, config, env.name) as (app, pilot, pane):
        started = time.monotonic()
        await send(pilot, app, "hello")
        await idle(pilot, pane)
        assert time.monotonic() - started < 5  # not 1 + 2 + 4 + 8 s of retries behind "waiting for…"
        lines = [line for line in pane_text(app).splitlines() if "✘" in line]
        assert len(lines) == 1 and f"✘ test: cannot connect to {base_url}: connection refused" in lines[0]


async def test_an_unset_key_is_said_before_sending_and_the_message_is_kept(
    tmp_path: Path, model_server: ModelServer, make_env: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = await make_env()
    monkeypatch.delenv(KEY_VAR, raising=False)
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await wait_until(pilot, lambda: f"the variable {KEY_VAR} is not set" in pane_text(app), what="the guidance")
        await send(pilot, app, "hello")
        await idle(pilot, pane)
        assert pane.input.value == "hello"  # back in the message line: nothing was sent
        assert f"✘ provider test: the variable {KEY_VAR} is not set" in pane_text(app)
        assert not model_server.requests


async def test_no_provider_configured_says_how_to_set_one(tmp_path: Path, make_env: Any) -> None:
    env = await make_env()
    config = Config({key: spec.default for key, spec in KEYS.items()}, {})
    async with chat_tui(tmp_path, config, env.name) as (app, pilot, pane):
        await wait_until(pilot, lambda: "no model provider" in pane_text(app), what="the guidance")
        assert "ctrl+t picks one" in pane_text(app)


async def test_a_stopped_environment_is_said_and_nothing_is_sent(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    helpers.docker("stop", "-t", "0", helpers.container_of(env.name))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "hello")
        await idle(pilot, pane)
        assert f"✘ {env.name} is exited: start it first" in pane_text(app)
        assert not model_server.requests and pane.input.value == "hello"
        assert f"{env.name} is exited: s in the environments pane starts it" in pane_text(app)


# --- the chat's environment: the user picks it, and it stays until the user picks another ------


async def test_the_chat_has_no_environment_until_one_is_picked_and_the_cursor_does_not_move_it(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    first, second = await make_env(), await make_env()
    async with chat_tui(tmp_path, chat_config(model_server), None) as (app, pilot, pane):
        rows = app.query_one(EnvironmentsPane).rows
        await wait_until(pilot, lambda: first.name in rows and second.name in rows, what="both listed")
        # at the start: no environment, and the pane says how to pick one
        assert pane.environment is None
        shown = pane_text(app)
        assert "Chat · no environment" in shown
        assert "no environment: c on one in the environments pane (or ctrl+l) chats in it" in shown
        await wait_until(pilot, lambda: re.search(r"c\s+Chat here", screen_text(app)), what="c in the footer")
        # a message goes nowhere
        pane.focus_input()
        await pilot.press(*"hello", "enter")
        await pilot.pause(0.2)
        assert notifications(app, "warning")[-1].startswith("no environment: c on one")
        assert pane.input.value == "hello" and not model_server.requests
        # c on a row: the chat works there; moving the cursor changes nothing
        await chat_in(pilot, app, first.name)
        await select_env(pilot, app, second.name)
        await pilot.pause(0.3)
        assert pane.environment == first.name and f"Chat · {first.name} · test" in pane_text(app)
        # ctrl+l in the chat: a list of the environments; enter on one chats there
        pane.focus_input()
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, EnvironmentPicker))
        listed = screen_text(app)
        assert f"● {first.name}  running" in listed and f"  {second.name}  running" in listed
        await pilot.press(*second.name, "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, EnvironmentPicker))
        assert pane.environment == second.name and f"Chat · {second.name} · test" in pane_text(app)
        assert pane.input.has_focus


async def test_removing_the_chats_environment_keeps_the_chat_with_it_and_nothing_is_sent(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    gone, other = await make_env(), await make_env()
    model_server.script(text("Hello.", usage=(10, 2)))
    async with chat_tui(tmp_path, chat_config(model_server), gone.name) as (app, pilot, pane):
        await send(pilot, app, "hi")
        await idle(pilot, pane)
        # d on its row, Remove: the environments pane's cursor moves on to the other one
        await select_env(pilot, app, gone.name)
        await pilot.press("d")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, ConfirmRemove) and app.screen)
        dialog.query_one("#remove", Button).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: gone.name not in app.query_one(EnvironmentsPane).rows, what="removed")
        await pilot.pause(0.3)
        assert app.query_one(EnvironmentsPane).selected == other.name
        # the chat stays with the removed environment, says so, and sends nothing
        assert pane.environment == gone.name and f"Chat · {gone.name} · test" in pane_text(app)
        assert f"{gone.name} was removed: this conversation stays with it" in pane_text(app)
        pane.focus_input()
        await pilot.press(*"again", "enter")
        await pilot.pause(0.2)
        assert notifications(app, "warning")[-1].startswith(f"{gone.name} was removed")
        assert pane.input.value == "again" and len(model_server.requests) == 1


async def test_a_reply_under_way_stops_when_its_environment_is_removed(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(drip("one two three four five six seven eight nine ten", interval=0.5))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "count slowly")
        await wait_until(pilot, lambda: "one" in transcript_text(app), what="the first words")
        helpers.docker("rm", "-f", helpers.container_of(env.name))
        await idle(pilot, pane, timeout=10)
        shown = pane_text(app)
        assert "■ stopped: what was said so far is kept" in shown and "ten" not in transcript_text(app)
        assert f"{env.name} was removed: this conversation stays with it" in shown
        assert pane.environment == env.name


# --- (5) saved conversations: reopened after a restart, listed, new, exported --------------------


async def test_the_conversation_reopens_after_a_restart_and_exports_to_markdown(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = await make_env()
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "echo from-the-tool"})], usage=(40, 8)),
        text("I ran it: it says **from-the-tool**.", usage=(60, 9)),
    )
    config = chat_config(model_server, approval="auto")
    async with chat_tui(tmp_path, config, env.name) as (app, pilot, pane):
        await send(pilot, app, "please remember me")
        await idle(pilot, pane)
        conversation_id = pane.conversation_id
    assert conversation_id
    monkeypatch.chdir(tmp_path)
    async with chat_tui(tmp_path, config, env.name) as (app, pilot, pane):
        # the answer draws in the frame it is mounted in, the card's parts a frame later
        await wait_until(pilot, lambda: "I ran it" in pane_text(app) and "exit code 0" in pane_text(app),
                         what="the saved conversation")
        assert pane.conversation_id == conversation_id
        shown = pane_text(app)
        assert "please remember me" in shown and "it says from-the-tool." in shown
        assert re.search(r"✔ bash\s+ok · exit 0", shown) and "$ echo from-the-tool" in shown
        assert "total 117 tokens" in shown
        # ctrl+s (in the chat): the export, to <id>.md here
        await pilot.press("c", "ctrl+s")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen) and app.screen)
        assert screen.query_one(Input).value == f"{conversation_id}.md"
        await pilot.press("enter")
        exported = tmp_path / f"{conversation_id}.md"
        await wait_until(pilot, lambda: exported.is_file(), what="the exported file")
        markdown = exported.read_text()
        assert "please remember me" in markdown and "I ran it: it says **from-the-tool**." in markdown
        assert "echo from-the-tool" in markdown
        await wait_until(pilot, lambda: any(str(exported) in n for n in notifications(app)), what="the path said")


async def test_ctrl_n_starts_a_new_conversation_and_ctrl_o_reopens_the_old_one(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(text("First answer."), text("Second answer."))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        await send(pilot, app, "first question")
        await idle(pilot, pane)
        first = pane.conversation_id
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: "first question" not in pane_text(app), what="an empty conversation")
        assert "new conversation" in pane_text(app) and pane.conversation_id is None
        await send(pilot, app, "second question")
        await idle(pilot, pane)
        second = pane.conversation_id
        assert second and second != first
        assert [m["role"] for m in model_server.requests[1].body["messages"]] == ["system", "user"]
        await pilot.press("ctrl+o")
        picker = await wait_until(pilot, lambda: isinstance(app.screen, ConversationPicker) and app.screen)
        await pilot.pause(0.1)
        text_now = screen_text(app)
        assert "first question" in text_now and "second question" in text_now
        await pilot.press(*"first")
        await wait_until(pilot, lambda: picker.query_one(OptionList).option_count == 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.conversation_id == first and "First answer." in pane_text(app))
        assert "second question" not in pane_text(app)


async def test_ctrl_t_picks_another_provider_and_model(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    model_server.script(text("From the other model."))
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        pane.focus_input()
        await pilot.press("ctrl+t")
        picker = await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen)
        await pilot.pause(0.1)
        listed = screen_text(app)
        assert re.search(rf"test\s+glm-test\s+key in {KEY_VAR}", listed)
        assert re.search(r"zai\s+glm-4.6", listed) and re.search(r"ollama\s+\S+\s+no key needed", listed)
        model = picker.query_one("#model-name", Input)
        model.focus()
        await pilot.press("ctrl+a", "ctrl+k", *"glm-other", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, ModelPicker))
        assert "test · glm-other" in pane_text(app)
        await send(pilot, app, "who are you")
        await idle(pilot, pane)
        assert model_server.requests[0].body["model"] == "glm-other"
        assert "From the other model." in pane_text(app)


# --- (6) the key is never shown -----------------------------------------------------------------


async def test_the_api_key_never_shows_on_screen_nor_in_the_export(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = await make_env()
    half = len(key) // 2
    said = f"Your key is {key} as you asked."
    model_server.script(
        tool_calls([("call_1", "bash", {"command": f"echo {key}"})], usage=(10, 5)),
        # the key cut between two pieces of the stream
        text(said, pieces=[said[:12 + half], said[12 + half:]], reasoning=f"the key {key}", usage=(10, 5)),
    )
    monkeypatch.chdir(tmp_path)
    async with chat_tui(tmp_path, chat_config(model_server, approval="auto"), env.name) as (app, pilot, pane):
        await send(pilot, app, "show me the key")
        await idle(pilot, pane)
        for section in pane.query(ThinkingBlock):
            section.collapsed = False
        pane.query_one(ToolCard).query_one(".tool-output").display = True
        await pilot.pause(0.2)
        shown = screen_text(app) + transcript_text(app)
        assert "Your key is *** as you asked." in shown
        assert "SECRET" not in shown and key[:half] not in shown and key[half:] not in shown
        assert "SECRET" not in app.export_screenshot()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen))
        await pilot.press("enter")
        exported = tmp_path / f"{pane.conversation_id}.md"
        await wait_until(pilot, lambda: exported.is_file(), what="the exported file")
        assert "SECRET" not in exported.read_text() and "Your key is *** as you asked." in exported.read_text()


# --- keys, help, palette, focus ---------------------------------------------------------------------


async def test_typing_on_the_pane_starts_a_message_and_tab_leaves_it(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        pane.focus()
        await pilot.pause()
        await pilot.press(*"q?")  # not quit, not help: the start of a message
        assert pane.input.has_focus and pane.input.value == "q?" and app.is_running
        await pilot.press("tab")
        assert app.focused is app.query_one("#environments")
        await pilot.press("shift+tab")
        assert app.focused is pane  # one tab stop per pane
        await pilot.press("enter")
        assert app.focused is pane.input and pane.input.value == "q?"
        # a paste of several lines goes whole, shown as one token
        pane.input.value = ""
        from textual import events

        pane.input.post_message(events.Paste("line one\nline two\nline three"))
        await pilot.pause()
        assert pane.input.value == "[pasted text #1, 3 lines]"
        assert pane.input.message() == "line one\nline two\nline three"


async def test_help_and_palette_have_the_chat_keys(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        pane.focus_input()
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = screen_text(app)
        for key_name, description in [("escape", "Stop reply"), ("ctrl+n", "New chat"), ("ctrl+o", "Chats"),
                                      ("ctrl+s", "Export"), ("ctrl+t", "Model"), ("ctrl+l", "Environment"),
                                      ("ctrl+g", "Enlarge")]:
            assert re.search(rf"{re.escape(key_name)}\s+{re.escape(description)}", shown), (key_name, description)
        assert re.search(r"f1\s+Help", shown) and "Move cursor left" not in shown
        assert not re.search(r"\bc\s+Chat\b", shown)  # c types into the message here
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("ctrl+p")
        palette = await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen)
        await pilot.press(*"chat new")
        options = palette.query_one(OptionList)
        await wait_until(
            pilot, lambda: options.option_count and "Chat: New chat" in str(options.get_option_at_index(0).prompt),
            what="Chat: New chat in the palette")
        await pilot.press("escape")


async def test_ctrl_g_gives_the_chat_more_room_and_back(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    async with chat_tui(tmp_path, chat_config(model_server), env.name) as (app, pilot, pane):
        app.query_one(EnvironmentsPane).focus()
        await pilot.pause(0.1)
        unfocused = pane.region.height
        pane.focus_input()
        await pilot.pause(0.1)
        before = pane.region.height
        assert before > unfocused  # more room while the chat has the focus
        await pilot.press("ctrl+g")
        await pilot.pause(0.1)
        assert pane.region.height > before * 1.5
        assert app.query_one("#environments").region.height >= 3  # the other panes stay usable
        await pilot.press("ctrl+g")
        await pilot.pause(0.1)
        assert pane.region.height == before


# --- no start-up cost -----------------------------------------------------------------------------


def test_the_tui_does_not_import_the_model_sdk_nor_markdown_at_start() -> None:
    code = ("import sys, glmtui.tui.app; heavy = [m for m in ('openai', 'markdown_it', 'glmtui.agent.session',"
            " 'glmtui.agent.client') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tokens_text() -> None:
    assert [tokens_text(n) for n in (0, 999, 1234, 12_400, 123_456, 1_234_567)] == \
        ["0", "999", "1.2k", "12.4k", "123k", "1.2M"]


async def test_undo_puts_the_files_back_as_before_the_last_turn_and_marks_the_transcript(
    tmp_path: Path, model_server: ModelServer, make_env: Any, key: str,
) -> None:
    env = await make_env()
    exec_in(env.name, "sh", "-c", "printf 'v1\\n' > /workspace/app.txt")
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "printf 'v2\\n' > app.txt && touch extra.txt"})]),
        text("Changed it."),
    )
    async with chat_tui(tmp_path, chat_config(model_server, approval="auto"), env.name) as (app, pilot, pane):
        await send(pilot, app, "change app.txt")
        await idle(pilot, pane)
        assert exec_in(env.name, "cat", "/workspace/app.txt").stdout == "v2\n"
        await send(pilot, app, "/undo")
        await wait_until(pilot, lambda: "undone" in transcript_text(app), what="the undo noted")
        shown = transcript_text(app)
        assert "↶ undone: the files are back as they were before the last turn" in shown
        assert f"glmtui env rollback {env.name} " in shown
        assert exec_in(env.name, "ls", "/workspace").stdout == "app.txt\n"
        assert exec_in(env.name, "cat", "/workspace/app.txt").stdout == "v1\n"
        assert len(model_server.requests) == 2  # /undo is not sent to the model
        await send(pilot, app, "/undo")
        await wait_until(pilot, lambda: "nothing to undo" in transcript_text(app), what="nothing more to undo")
