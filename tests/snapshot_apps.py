"""The snapshot-app module: GlmtuiApp instances with fixed, deterministic data for the snapshot tests.

Everything a screenshot shows is fixed here: the configuration (defaults, theme
"textual-dark"), the environments and their stats (the fake engine), the plan (plans/hello.yaml,
shown relative to the project folder), the run id, the run's events and the clock the plan
pane measures elapsed time with. Only tests/test_tui_snapshots.py uses it; every other TUI test
runs against the real Docker engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

import helpers
from fake_engine import FakeEngine, UnreachableEngine, environment_aged
from glmtui.config import KEYS, Config
from glmtui.docker.engine import Environment
from glmtui.events import Event, Output, RunFinished, RunStarted, StepFinished, StepStarted
from glmtui.store import Store
from glmtui.tui.app import GlmtuiApp

SIZE = (160, 45)
SMALL = (80, 24)
LARGE = (220, 60)
HELLO = helpers.PROJECT_ROOT / "plans" / "hello.yaml"
MANY_INPUTS = helpers.PROJECT_ROOT / "tests" / "plans" / "many-inputs.yaml"
RUN_ID = "20250102-030405-5a9f0e"
EPOCH = 1_735_786_800.0  # the scripted events' times are seconds after this
CLOCK_START = EPOCH + 1  # what the plan pane's clock says when the scripted steps start (their ts)
CLOCK_NOW = CLOCK_START + 12.3  # ... and when the screenshot is taken: a running step shows 12.3s


def fixed_config() -> Config:
    """The defaults, whatever the user or project files say; theme textual-dark."""
    values = {key: spec.default for key, spec in KEYS.items()}
    values["theme"] = "textual-dark"
    return Config(values, {key: "default" for key in values})


def fake_environments(now: datetime | None = None) -> list[Environment]:
    """Three environments whose ages (from `created`) stay the same for minutes: 1h, 1d, 7m.

    Each age is half a unit past its shown value, so a test that takes a few seconds (or a
    slow machine) still shows the same text.
    """
    now = now or datetime.now(timezone.utc)
    return [
        environment_aged("fix-tests", "running", "glmtui/workspace:latest", timedelta(minutes=95), now),
        environment_aged("scratch", "exited", "glmtui/busybox:latest", timedelta(hours=26, minutes=30), now),
        environment_aged("docs", "running", "glmtui/workspace:latest", timedelta(minutes=7, seconds=30), now),
    ]


def build(folder: Path, *, plan: Path | None = None, reachable: bool = True) -> GlmtuiApp:
    """A GlmtuiApp over the fake engine (or, not `reachable`, one that never answers), its store in
    `folder`. The fake engine is `app.fake`. (A function, not a subclass: Textual reads CSS_PATH
    relative to the file of the app's class.)"""
    fake = FakeEngine(fake_environments())

    async def factory() -> Any:
        if not reachable:
            return await UnreachableEngine.connect()
        return fake

    folder.mkdir(parents=True, exist_ok=True)
    app = GlmtuiApp(
        config=fixed_config(),
        store=Store(folder / "glmtui.sqlite3", folder / "runs"),
        plan=plan,
        engine_factory=factory,
    )
    app.fake = fake  # type: ignore[attr-defined]
    return app


# --- building each app --------------------------------------------------------------------------


def main_screen(folder: Path) -> GlmtuiApp:
    """Three environments (two running, with stats), no plan."""
    return build(folder)


def with_plan(folder: Path) -> GlmtuiApp:
    """The same, with plans/hello.yaml in the plan pane."""
    return build(folder, plan=HELLO)


def disconnected(folder: Path) -> GlmtuiApp:
    """No engine answers: the banner says so."""
    return build(folder, reachable=False)


# --- a scripted run: synthetic events, through the service's run to the plan pane ---------------


class FakeClock:
    """Stands in for glmtui.tui.widgets.plan_view.clock, which measures elapsed times."""

    def __init__(self, now: float = CLOCK_START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedRunner:
    """Stands in for glmtui.plan.runner.Runner (in the service's PlanRun): gives its events to the
    run's sink, one list per clock reading, then returns `result` (or, with None, stays running)."""

    script: list[tuple[float, list[Event]]] = []
    result: str | None = None
    clock: FakeClock | None = None

    def __init__(self, engine: Any, loaded: Any, *, sink: Callable[[Event], None], run_id: str, **_: Any) -> None:
        self.sink, self.run_id = sink, run_id

    async def run(self) -> Any:
        from glmtui.plan.runner import RunResult

        for at, events in self.script:
            if self.clock is not None:
                self.clock.now = at
            for event in events:
                self.sink(event)
        if self.result is None:
            await asyncio.Event().wait()
        return RunResult(self.run_id, self.result)


def _ts(seconds: float) -> dict[str, float]:
    return {"ts": EPOCH + seconds}


def in_progress_script() -> list[tuple[float, list[Event]]]:
    """greet succeeded, count runs for 12.3 s with some output, shout was skipped, the rest wait."""
    return [
        (CLOCK_START, [
            RunStarted(RUN_ID, "hello", "main", None, True, **_ts(0)),
            StepStarted("greet", **_ts(1)),
            StepStarted("count", **_ts(1)),
            Output("greet", "stdout", "hello, world", **_ts(1.1)),
            StepFinished("greet", "success", 0, 0.4, {"greeting": "hello, world"}, **_ts(1.4)),
            StepFinished("shout", "skipped", reason="condition is false: ${inputs.shout}", **_ts(1.4)),
            Output("count", "stdout", "counting the commands of the image\nfound /bin\nlooking at /bin/*",
                   **_ts(1.5)),
        ]),
        (CLOCK_NOW, []),
    ]


def failed_script() -> list[tuple[float, list[Event]]]:
    """greet succeeded, count failed with exit 3 and an error on stderr, the rest could not run."""
    return [
        (CLOCK_START, [
            RunStarted(RUN_ID, "hello", "main", None, True, **_ts(0)),
            StepStarted("greet", **_ts(1)),
            StepStarted("count", **_ts(1)),
            Output("greet", "stdout", "hello, world", **_ts(1.1)),
            StepFinished("greet", "success", 0, 0.4, {"greeting": "hello, world"}, **_ts(1.4)),
            StepFinished("shout", "skipped", reason="condition is false: ${inputs.shout}", **_ts(1.4)),
            Output("count", "stdout", "counting the commands of the image", **_ts(1.5)),
            Output("count", "stderr", "ls: /bin: Permission denied", **_ts(1.6)),
            StepFinished("count", "failure", 3, 1.2, reason="exit code 3", **_ts(2.2)),
            StepFinished("report", "skipped", reason="count did not succeed", **_ts(2.2)),
            StepFinished("show", "skipped", reason="report did not succeed", **_ts(2.2)),
            RunFinished(RUN_ID, "failure", 2.3, **_ts(2.3)),
        ]),
    ]


def script_run(monkeypatch: Any, script: list[tuple[float, list[Event]]], result: str | None) -> FakeClock:
    """Make the next run of the plan pane a scripted one, with run id RUN_ID and a fake clock."""
    from glmtui.plan import runner
    from glmtui.tui.widgets import plan_view

    clock = FakeClock()
    scripted = type("Scripted", (ScriptedRunner,), {"script": script, "result": result, "clock": clock})
    monkeypatch.setattr(runner, "Runner", scripted)
    monkeypatch.setattr(runner, "new_run_id", lambda: RUN_ID)
    monkeypatch.setattr(plan_view, "clock", clock)
    return clock


# --- run_before helpers -------------------------------------------------------------------------


async def settle(pilot: Pilot, until: Callable[[], Any] | None = None, timeout: float = 5.0) -> None:
    """Wait for `until` (and the app's own timers) so the screen is complete, then pause once more."""
    deadline = time.monotonic() + timeout
    while until is not None and not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"the snapshot app did not settle: {until}")
        await pilot.pause(0.05)
    while not agents_settled(pilot.app):
        if time.monotonic() > deadline + 2.0:  # its first look is a second after the start
            raise AssertionError("the agents pane did not read the store")
        await pilot.pause(0.05)
    await pilot.pause(0.3)  # the plan pane's 1/8 s and the log pane's 1/20 s redraws
    no_blink(pilot)


def agents_settled(app: GlmtuiApp) -> bool:
    """The agents pane has read the store, after the app started its service (when it can)."""
    from glmtui.tui.widgets.agents import AgentsPane

    return app.query_one(AgentsPane).up_to_date and (app.service is not None or app.engine is None)


def no_blink(pilot: Pilot) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False


def screen_lines(app: GlmtuiApp) -> list[str]:
    """The terminal's text, line by line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def on_screen(app: GlmtuiApp, widget: Any) -> bool:
    """The widget is drawn whole: inside the terminal and inside each container it is in (not
    scrolled or pushed out of a dialog)."""
    from textual.widget import Widget

    region = widget.region
    containers = [node for node in widget.ancestors if isinstance(node, Widget)]
    return bool(region.width and region.height) and all(
        node.scrollable_content_region.contains_region(region) for node in containers if node.region)


def stats_shown(app: GlmtuiApp) -> Callable[[], bool]:
    """True once the environments pane shows the stats of every running environment."""
    from glmtui.tui.widgets.environments import EnvironmentsPane

    def check() -> bool:
        pane = app.query_one(EnvironmentsPane)
        running = {env.name for env in app.fake.environments if env.running}
        return pane.row_count == len(app.fake.environments) and running <= set(pane.stats)

    return check




# --- the chat pane: a saved conversation, then a scripted reply --------------------------------

CHAT_ENV = "fix-tests"
CHAT_SIZE = (160, 64)  # taller: the whole conversation on screen


def chat_config() -> Config:
    """The fixed config with the zai preset as the default provider, taking no key (nothing on
    this machine's environment shows), and the default approval policy (ask)."""
    values = {key: spec.default for key, spec in KEYS.items()}
    values.update({"theme": "textual-dark", "default_provider": "zai", "providers.zai.api_key_env": ""})
    return Config(values, {key: "default" for key in values})


def saved_conversation(store: Store) -> str:
    """fix-tests' conversation so far: a question, a Markdown answer with a code block, a tool call."""
    from glmtui.conversations import Conversations

    history = Conversations(store)
    conversation = history.start(CHAT_ENV, "zai", "glm-4.6")
    messages = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Why does test_parse fail?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "pytest -q"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "1 failed, 41 passed in 0.8s\nexit code 1"},
        {"role": "assistant", "content": (
            "`parse()` drops the **last line** when the file has no final newline:\n\n"
            "```python\nlines = text.split(\"\\n\")[:-1]\n```\n\n"
            "Use `text.splitlines()` instead."
        )},
    ]
    for message in messages:
        history.append(conversation.id, message)
    history.add_usage(conversation.id, 2400, 180)
    return conversation.id


def chat_script() -> list[Any]:
    """The reply to "clean the build folder": thinking, a look (ok), a refused command, then a
    command that waits for the user's approval."""
    from glmtui.events import Token, ToolCall, ToolResult, Usage

    at = _ts(10)
    return [
        Token("chat", "The user wants build/ gone. Look at what is in it first.", "reasoning", **at),
        Token("chat", "Let me look at what is ", **at),
        Token("chat", "in `build/` first.", **at),
        Usage("chat", 2600, 30, 5000, 210, **at),
        ToolCall("chat", "call_2", "bash", {"command": "ls build"}, **at),
        ToolResult("chat", "call_2", "bash", "ok", "lib\nscripts-3.11\nexit code 0", 0, 0.042, **at),
        ToolCall("chat", "call_3", "bash", {"command": "rm -rf /"}, **at),
        ToolResult("chat", "call_3", "bash", "denied",
                   "refused: the approval policy does not allow this call", None, 0.0, **at),
        Usage("chat", 2700, 40, 7700, 250, **at),
        ToolCall("chat", "call_4", "bash", {"command": "rm -rf build"}, **at),
        ("approve", "bash", {"command": "rm -rf build"}),
    ]


class ScriptedChatSession:
    """Stands in for glmtui.agent.session.ChatSession: `send` gives the script's events to the pane's
    sink and asks its approver (the answer is never given: the snapshot shows the prompt)."""

    script: list[Any] = []

    def __init__(self, conversation: Any, provider: Any, sink: Callable[[Any], None], approver: Any) -> None:
        self.conversation, self.sink, self.approver = conversation, sink, approver
        self.client = type("Client", (), {"provider": provider})()
        self.messages: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, *, store: Any, config: Any, environment: str, sink: Any, approver: Any,
                   conversation_id: str | None = None, **_: Any) -> ScriptedChatSession:
        from glmtui.agent import providers
        from glmtui.conversations import Conversations

        history = Conversations(store)
        conversation = history.get(conversation_id) if conversation_id else history.latest(environment)
        return cls(conversation, providers.resolve(config, "zai"), sink, approver)

    async def send(self, text: str) -> Any:
        from glmtui.agent.approval import Policy

        for item in self.script:
            if isinstance(item, tuple):
                _, tool, arguments = item
                await self.approver(Policy().request(tool, arguments))
            else:
                self.sink(item)
                await asyncio.sleep(0)

    async def close(self) -> None:
        pass


def chat_screen(folder: Path, monkeypatch: Any) -> GlmtuiApp:
    """fix-tests' saved conversation (shown once c picks fix-tests, the first row); the next
    message gets the scripted reply."""
    from glmtui.agent import session

    monkeypatch.setattr(session, "ChatSession", type("Scripted", (ScriptedChatSession,), {"script": chat_script()}))
    app = build(folder)
    app.config = chat_config()
    saved_conversation(app.store)
    return app


def chat_shown(app: GlmtuiApp) -> Callable[[], bool]:
    """True once the chat pane shows fix-tests' conversation."""
    from glmtui.tui.widgets.chat import ChatPane

    def check() -> bool:
        pane = app.query_one(ChatPane)
        return pane.environment == CHAT_ENV and bool(pane.transcript.children)

    return check


# --- the agents pane: saved agents and their executions ------------------------------------------

AGENTS_NOW = 1_735_787_045.0  # 2025-01-02 03:04:05 UTC, a Thursday: what the pane and the scheduler take for now
_AGENTS = {
    "nightly-tests": ('0 8 * * mon', "env: {name: nightly, image: glmtui/workspace:latest}", "Run the tests and fix what broke"),
    "triage": ("every 30m", "env: triage-env", "Label the new issues"),
    "weekly-report": ("@weekly", "env: docs", "Write the weekly report"),
    "deps-update": ("every 1h", "env: {image: glmtui/workspace:latest}", "Update the dependencies, run the tests"),
    "fix-flaky": (None, "env: fix-tests", "Find the flaky test and fix it"),
}
# agent, trigger, status, started (UTC), took (None: running), tokens in/out, turns, reason
_EXECUTIONS = [
    ("nightly-tests", "schedule", "success", "2024-12-30 08:00:00", 161.2, 48_210, 3_120, 12, None),
    ("weekly-report", "schedule", "success", "2024-12-29 00:00:00", 95.5, 30_400, 2_200, 8, None),
    ("triage", "schedule", "success", "2025-01-02 02:00:00", 21.0, 9_800, 410, 3, None),
    ("triage", "schedule", "failure", "2025-01-02 02:30:00", 0.4, 0, 0, 0,
     "environment triage-env does not exist (glmtui env create triage-env, or give the agent an env block with an image)"),
    ("deps-update", "catch-up", "running", "2025-01-02 03:00:00", None, 5_300, 120, 2, None),
]


def agents_screen(folder: Path) -> GlmtuiApp:
    """Five saved agents (scheduled, failed last time, paused, running now, by hand) with their
    executions, all at fixed times around AGENTS_NOW (the caller fixes the clocks and TZ=UTC)."""
    import os
    import socket

    from glmtui.service.definition import check_agent
    from glmtui.service.records import AgentStore

    app = build(folder)
    app.config = agents_config()
    records = AgentStore(app.store)
    db = app.store.connection
    for name, (schedule, env, prompt) in _AGENTS.items():
        text = (f"version: 1\nname: {name}\nprompt: {prompt}\n{env}\nprovider: zai\napproval: auto\n"
                + (f"schedule: '{schedule}'\ntimezone: UTC\n" if schedule else ""))
        records.apply(check_agent(text, folder / "agents" / f"{name}.yaml", app.config))
    records.set_status("weekly-report", "paused")
    db.execute("UPDATE agents SET created = ?, updated = ?, handled_until = ?", (AGENTS_NOW - 86400 * 30,) * 2
               + (AGENTS_NOW - 60,))
    for number, (agent, trigger, status, at, took, tokens_in, tokens_out, turns, reason) in enumerate(_EXECUTIONS):
        started = datetime.fromisoformat(at).replace(tzinfo=timezone.utc).timestamp()
        finished = None if took is None else started + took
        db.execute(
            "INSERT INTO agent_executions (id, agent, trigger, status, reason, scheduled, queued, started, finished,"
            " result, input_tokens, output_tokens, turns, run_id, pid, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?)",
            (f"{at[:10].replace('-', '')}-{at[11:].replace(':', '')}-00000{number}", agent, trigger, status, reason, started, started, started, finished,
             "Done." if status == "success" else None, tokens_in, tokens_out, turns, None, os.getpid(),
             socket.gethostname()),
        )
    return app


def agents_config() -> Config:
    """The fixed config with the zai preset (no key needed to draw it)."""
    values = {key: spec.default for key, spec in KEYS.items()}
    values.update({"theme": "textual-dark", "providers.zai.api_key_env": ""})
    return Config(values, {key: "default" for key in values})


def fix_agents_clock(monkeypatch: Any) -> None:
    """The agents pane and the scheduler take AGENTS_NOW for now; local time is UTC."""
    from glmtui.service import scheduler
    from glmtui.tui.widgets import agents

    monkeypatch.setattr(agents, "clock", lambda: AGENTS_NOW)
    monkeypatch.setattr(scheduler.SystemClock, "now", lambda self: AGENTS_NOW)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def agents_listed(app: GlmtuiApp) -> Callable[[], bool]:
    """True once the agents pane lists every agent and says who runs the schedules."""
    from glmtui.tui.widgets.agents import AgentsPane

    def check() -> bool:
        pane = app.query_one(AgentsPane)
        return len(pane.rows) == len(_AGENTS) and "this TUI" in str(pane.query_one("#agents-schedules").content)

    return check
