"""The agents pane, driven by Pilot: the whole app against the real Docker engine and the local
model server (tests/model_server.py), and the `glmtui` command line on the same data folder.

What the user sees is read from the screen (the pane's rows, the log pane, notifications,
dialogs); what happened, from the records `glmtui agents` shows and from Docker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import KEY_ENV, Cli, new_key, project, write_agent
from model_server import ModelServer, text, tool_calls
from test_agents_serve import Serve
from test_tui_app import SessionEngine, notifications, region_text, screen_text, wait_for_exit, wait_until
from textual.pilot import Pilot
from textual.widgets import Select, TextArea

import helpers
from glmtui.config import KEYS, Config
from glmtui.docker.engine import Engine
from glmtui.errors import BadInput, EngineUnreachable
from glmtui.service.schedule import parse_schedule
from glmtui.store import Store
from glmtui.tui.app import GlmtuiApp
from glmtui.tui.screens.dialogs import ApproveCall, Confirm
from glmtui.tui.screens.help import HelpScreen
from glmtui.tui.screens.new_agent import NEW_ENVIRONMENT, NewAgent
from glmtui.tui.widgets.agents import AgentsPane, ExecutionTable
from glmtui.tui.widgets.chat import ChatPane
from glmtui.tui.widgets.log_view import LogView

pytestmark = pytest.mark.docker

SIZE = (160, 45)


# --- the app on the data folder of a `glmtui` command line ---------------------------------------


def tui_config(server: ModelServer) -> Config:
    """glmtui's defaults with the provider `test` at the model server (as agent_helpers.project
    configures the command line), approval ask as by default."""
    settings = {key: spec.default for key, spec in KEYS.items()}
    settings.update({
        "default_provider": "test",
        "providers.test.base_url": server.base_url,
        "providers.test.api_key_env": KEY_ENV,
        "providers.test.model": "test-model",
    })
    return Config(settings, {key: "test" for key in settings})


@pytest.fixture
def cli(tmp_path: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`glmtui` in a project folder with its own data folder; the app under test uses the same
    data folder and provider (its key in this process's environment too)."""
    made = Cli(project(tmp_path, model_server), new_key())
    monkeypatch.setenv(KEY_ENV, made.key)
    return made


@asynccontextmanager
async def agents_tui(cli: Cli, server: ModelServer, *, engine_factory: Any = None) -> AsyncIterator[tuple[GlmtuiApp, Pilot, AgentsPane]]:
    """The app on the real engine (this session's environments only) over the Cli's data folder,
    the agents pane focused once it has read the agents."""
    engines: list[SessionEngine] = []

    async def connect() -> SessionEngine:
        engines.append(SessionEngine(await Engine.connect()))
        return engines[-1]

    data = cli.data / "glmtui"
    store = Store(data / "glmtui.sqlite3", data / "runs")
    app = GlmtuiApp(config=tui_config(server), store=store, engine_factory=engine_factory or connect)
    try:
        async with app.run_test(size=SIZE) as pilot:
            pane = app.query_one(AgentsPane)
            if engine_factory is None:
                await wait_until(pilot, lambda: app.connected and pane.service is not None, what="the service")
            await wait_until(pilot, lambda: pane.up_to_date, what="the agents read")
            pane.agent_list.focus()
            await pilot.pause()
            yield app, pilot, pane
    finally:
        for engine in engines:
            await engine._engine.close()


def pane_lines(app: GlmtuiApp) -> list[str]:
    return [line.strip() for line in region_text(app, app.query_one(AgentsPane))]


def agent_lines(app: GlmtuiApp, name: str) -> tuple[str, str]:
    """The two lines of the agent's entry, as the user reads them."""
    pane = app.query_one(AgentsPane)
    for option_index in range(pane.agent_list.option_count):
        option = pane.agent_list.get_option_at_index(option_index)
        if option.id == name:
            first, second = str(option.prompt).split("\n")
            return " ".join(first.split()), " ".join(second.split())
    raise AssertionError(f"{name} is not listed:\n{screen_text(app)}")


def schedules_line(app: GlmtuiApp) -> str:
    return str(app.query_one("#agents-schedules").content)


def when(instant: float) -> str:
    """A time as the pane shows it: HH:MM:SS today, else the weekday and HH:MM."""
    moment = datetime.fromtimestamp(instant)
    return f"{moment:%H:%M:%S}" if moment.date() == datetime.now().date() else f"{moment:%a %H:%M}"


async def select_agent(pilot: Pilot, pane: AgentsPane, name: str) -> None:
    await wait_until(pilot, lambda: name in [row.agent.name for row in pane.rows], what=f"{name} listed")
    pane.agent_list.focus()
    names = [row.agent.name for row in pane.rows]
    while pane.agent_list.highlighted != names.index(name):
        await pilot.press("down" if pane.agent_list.highlighted < names.index(name) else "up")
    await pilot.pause()


def apply(cli: Cli, folder: Path, text_: str, name: str, **subs: str) -> None:
    result = cli("agents", "apply", str(write_agent(folder, text_, f"{name}.yaml", NAME=name, **subs)))
    assert result.returncode == 0, result.stderr


BY_HAND = """
    version: 1
    name: @NAME@
    prompt: Say hello.
    env: @ENV@
    approval: auto
"""


# --- the list -------------------------------------------------------------------------------


async def test_the_pane_lists_applied_agents_with_next_run_and_last_status(cli, model_server, make_env, tmp_path):
    env = (await make_env()).name
    apply(cli, tmp_path, BY_HAND, "greeter", ENV=env)
    apply(cli, tmp_path, BY_HAND, "broken", ENV="missing-" + env)
    apply(cli, tmp_path, BY_HAND + '    schedule: "every 2h"\n    timezone: UTC\n', "twohourly", ENV=env)
    model_server.script(text("Hello there.", usage=(1200, 34)))
    assert cli("agents", "run", "greeter", "--wait").returncode == 0
    assert cli("agents", "run", "broken", "--wait").returncode == 1
    [greeted] = cli.executions("greeter")
    nexts = json.loads(cli("agents", "show", "twohourly", "--json").stdout)["next_runs"]
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        assert [row.agent.name for row in pane.rows] == ["broken", "greeter", "twohourly"]
        first, second = agent_lines(app, "greeter")
        assert first == f"○ greeter by hand ✔ success {when(greeted['started'])} 1.2k"
        assert second == "by hand"
        first, second = agent_lines(app, "broken")
        assert first.startswith("○ broken by hand ✘ failure ")
        assert second == f"by hand · environment missing-{env} does not exist (glmtui env create missing-{env}, or " \
                         "give the agent an env block with an image)"
        first, second = agent_lines(app, "twohourly")
        assert first == f"● twohourly {when(nexts[0])} never run 0"
        assert second == "every 2 hours"
        shown = "\n".join(pane_lines(app))
        assert "agent" in shown and "next run" in shown and "last execution" in shown and "7 days" in shown
        assert f"○ greeter by hand ✔ success {when(greeted['started'])}" in " ".join(shown.split())
        assert schedules_line(app) == "schedules run by this TUI while it is open"
        assert pane.border_subtitle == "3"

        # an execution started elsewhere (a background `agents run`) shows as it starts and ends
        model_server.script(text("Second hello.", usage=(100, 5), delay=1.5))
        started = cli("agents", "run", "greeter")
        assert started.returncode == 0, started.stderr
        await wait_until(pilot, lambda: "▶ running" in agent_lines(app, "greeter")[0], timeout=30,
                         what="the running execution")
        await wait_until(pilot, lambda: agent_lines(app, "greeter")[0].endswith(" 1.3k")
                         and "✔ success" in agent_lines(app, "greeter")[0], timeout=60, what="its end and its tokens")


async def test_without_an_engine_the_pane_says_schedules_are_not_run_and_how_to_start_serve(cli, model_server):
    async def unreachable() -> Any:
        raise EngineUnreachable("cannot reach the Docker engine at unix:///nowhere.sock (no such file)")

    async with agents_tui(cli, model_server, engine_factory=unreachable) as (app, pilot, pane):
        await wait_until(pilot, lambda: "not being run" in schedules_line(app), what="the schedules line")
        assert schedules_line(app) == ("schedules are not being run: start `glmtui serve` (or `glmtui serve "
                                       "--install-user-unit`); this TUI runs them once the Docker engine answers")
        assert "no saved agents: n makes one (or glmtui agents apply FILE)" in "\n".join(pane_lines(app))
        await pilot.press("x")
        await wait_until(pilot, lambda: "no agent selected: n makes one (or glmtui agents apply FILE)"
                         in notifications(app, "warning"))


# --- n: the new-agent form -----------------------------------------------------------------


async def open_form(pilot: Pilot, app: GlmtuiApp) -> NewAgent:
    await pilot.press("n")
    form = await wait_until(pilot, lambda: isinstance(app.screen, NewAgent) and app.screen, what="the form")
    await pilot.pause(0.1)
    return form


async def type_text(pilot: Pilot, form: NewAgent, field: str, value: str) -> None:
    """Into an input of the form as a user types: focus it, clear it, type."""
    widget = form.query_one(f"#{field}")
    widget.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(widget.value), *value)


async def test_n_creates_an_agent_showing_the_next_three_fire_times_as_the_schedule_is_typed(
    cli, model_server, make_env, tmp_path
):
    env = (await make_env()).name
    with pytest.raises(BadInput) as parsed:
        parse_schedule("every 5x", "UTC")
    bad_schedule = str(parsed.value)
    validated = cli("agents", "validate", str(write_agent(tmp_path, BY_HAND + '    schedule: "every 5x"\n',
                                                          "bad.yaml", NAME="bad", ENV=env)))
    assert validated.returncode == 2 and bad_schedule in validated.stderr, "the message agents validate gives"
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        form = await open_form(pilot, app)
        for label in ("New agent", "name", "environment", "prompt", "provider", "model", "schedule", "time zone",
                      "approval", "approval rules"):
            assert label in screen_text(app), label
        assert "no schedule: it runs when you start it" in screen_text(app)
        await type_text(pilot, form, "name", "nightly")
        form.query_one(TextArea).insert("Run the tests.\nFix what broke.")
        form.query_one("#environment", Select).value = env
        await type_text(pilot, form, "timezone", "UTC")
        await type_text(pilot, form, "schedule", "every 5x")
        shown = form.query_one("#next-runs")
        await wait_until(pilot, lambda: str(shown.content) == bad_schedule,
                         what=f"the schedule's error {bad_schedule!r}, got {str(shown.content)!r}")
        assert bad_schedule in screen_text(app)
        await type_text(pilot, form, "schedule", "0 8 * * mon")
        schedule = parse_schedule("0 8 * * mon", "UTC")
        times = [f"{schedule.local(t):%a %Y-%m-%d %H:%M:%S}" for t in schedule.upcoming(time.time(), 3)]
        await wait_until(pilot, lambda: "  ·  ".join(times) in str(shown.content), what="the next three fire times")
        assert "At 08:00 on Monday (UTC)" in screen_text(app) and times[2] in screen_text(app)

        # approval ask with a schedule: the message `agents apply` gives, and nothing saved
        form.query_one("#approval", Select).value = "ask"
        await pilot.click("#save")
        error = form.query_one("#error")
        await wait_until(pilot, lambda: "approval: ask asks a person" in str(error.content), what="the ask error")
        assert str(error.content) == ("approval: ask asks a person before each tool call that changes things, so "
                                      "agent nightly cannot have a schedule (nobody is there to answer): set approval "
                                      "to auto or deny, or remove schedule and run it by hand (glmtui agents run "
                                      "nightly --yes)")
        assert app.screen is form and cli("agents", "list").stdout.startswith("no saved agents yet")
        form.query_one("#approval", Select).value = "auto"
        await type_text(pilot, form, "rules", '[{tool: bash, pattern: "rm *", mode: deny}]')
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewAgent), what="the form to close")
        saved = await wait_until(pilot, lambda: [n for n in notifications(app) if n.startswith("nightly: created")],
                                 what="the created line")
        file = cli.data / "glmtui" / "agents" / "nightly.yaml"
        assert saved[0].startswith("nightly: created (At 08:00 on Monday (UTC), next ") and f"file {file}" in saved[0]
        assert file.is_file()
        assert agent_lines(app, "nightly")[1] == "At 08:00 on Monday (UTC)"

    shown = json.loads(cli("agents", "show", "nightly", "--json").stdout)
    assert shown["definition"] == {"version": 1, "name": "nightly", "prompt": "Run the tests.\nFix what broke.",
                                   "env": env, "approval": "auto",
                                   "approval_rules": [{"tool": "bash", "pattern": "rm *", "mode": "deny"}],
                                   "schedule": "0 8 * * mon", "timezone": "UTC"}
    assert shown["file"] == str(file)
    again = cli("agents", "apply", str(file))
    assert (again.returncode, again.stdout.split(" (")[0]) == (0, "nightly: unchanged"), "applied as apply applies it"


async def test_the_form_makes_a_new_environment_from_an_image_and_refuses_a_name_taken(
    cli, model_server, make_env, tmp_path
):
    env = (await make_env()).name
    apply(cli, tmp_path, BY_HAND, "taken", ENV=env)
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        form = await open_form(pilot, app)
        assert not form.query_one("#new-environment").display or not pane.environments
        await type_text(pilot, form, "name", "taken")
        form.query_one(TextArea).insert("Count the files.")
        form.query_one("#environment", Select).value = NEW_ENVIRONMENT
        await wait_until(pilot, lambda: form.query_one("#new-environment").display, what="the image fields")
        form.query_one("#image", Select).value = helpers.BUSYBOX
        await pilot.click("#save")
        error = form.query_one("#error")
        await wait_until(pilot, lambda: str(error.content) == "agent taken exists already: pick another name")
        await type_text(pilot, form, "name", "fresh")
        await pilot.click("#save")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewAgent), what="the form to close")
    shown = json.loads(cli("agents", "show", "fresh", "--json").stdout)
    assert shown["definition"]["env"] == {"image": helpers.BUSYBOX}


# --- x, enter: executions, transcripts, approvals ----------------------------------------------


async def test_x_runs_it_and_enter_shows_its_executions_and_the_live_transcript(cli, model_server, make_env, tmp_path):
    env = (await make_env()).name
    apply(cli, tmp_path, BY_HAND, "greeter", ENV=env)
    model_server.script(
        tool_calls([("call_1", "bash", {"command": "echo first; sleep 5; echo second"})], usage=(120, 14)),
        text("All done here.", usage=(180, 9)),
    )
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        await select_agent(pilot, pane, "greeter")
        await pilot.press("x")
        started = await wait_until(pilot, lambda: [n for n in notifications(app) if n.startswith("greeter: execution ")],
                                   what="the started line")
        execution_id = started[0].split()[2]
        await wait_until(pilot, lambda: "▶ running" in agent_lines(app, "greeter")[0], what="it runs")
        await pilot.press("x")
        await wait_until(pilot, lambda: f"agent greeter was not started again: execution {execution_id} of it still "
                         f"runs (glmtui agents executions show {execution_id})" in notifications(app, "warning"),
                         what="x again says why not")
        await pilot.press("enter")
        table = pane.query_one(ExecutionTable)
        await wait_until(pilot, lambda: table.display and table.has_focus and table.row_count == 1, what="executions")
        assert pane.border_title == "Agents · greeter · executions"
        await wait_until(pilot, lambda: table.get_row_at(0)[3].plain == "running", what="its status")
        log = app.query_one(LogView)
        await wait_until(pilot, lambda: (cli.data / "glmtui" / "runs" / execution_id / "agent.log").is_file()
                         and "echo first" in (cli.data / "glmtui" / "runs" / execution_id / "agent.log").read_text(),
                         what="the tool call in the transcript")
        await pilot.press("enter")  # while it runs: what it said so far, then the rest as it comes
        await wait_until(pilot, lambda: log.border_title == f"greeter · execution {execution_id}", what="the log title")
        await wait_until(pilot, lambda: any("> Say hello." in line for line in region_text(app, log)),
                         what="the prompt in the log pane")
        assert not any("All done here." in line for line in region_text(app, log))
        await wait_until(pilot, lambda: any("All done here." in line for line in region_text(app, log)), timeout=60,
                         what="the answer, followed live")
        await wait_until(pilot, lambda: table.get_row_at(0)[3].plain == "success", timeout=30, what="success")
        cells = [cell.plain for cell in table.get_row_at(0)]
        assert cells[0] == "✔" and cells[2] == "manual" and cells[4] == "2" and cells[5] == "300/23"
        assert f"greeter: execution {execution_id} success in " in " ".join(notifications(app))
        assert "All done here." in screen_text(app)  # the result under the executions
        await pilot.press("escape")
        await wait_until(pilot, lambda: pane.agent_list.display and pane.agent_list.has_focus, what="back")
        assert agent_lines(app, "greeter")[0].startswith("○ greeter by hand ✔ success ")
    [record] = cli.executions("greeter")
    assert (record["id"], record["status"], record["trigger"]) == (execution_id, "success", "manual")
    assert record["tool_calls"][0]["exit_code"] == 0


async def test_an_agent_run_by_hand_asks_in_the_approval_dialog(cli, model_server, make_env, tmp_path):
    env = (await make_env()).name
    apply(cli, tmp_path, BY_HAND.replace("approval: auto", "approval: ask"), "asker", ENV=env)
    model_server.script(
        tool_calls([("c1", "bash", {"command": "touch /tmp/made-by-asker"})], usage=(10, 2)),
        tool_calls([("c2", "bash", {"command": "rm -f /tmp/made-by-asker"})], usage=(12, 2)),
        text("Asked twice.", usage=(14, 2)),
    )
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        await select_agent(pilot, pane, "asker")
        await pilot.press("x")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, ApproveCall) and app.screen, timeout=30,
                                  what="the approval dialog")
        await wait_until(pilot, lambda: "bash: touch /tmp/made-by-asker" in screen_text(app), what="the question drawn")
        assert "Agent asker: the agent wants to run" in screen_text(app)
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, ApproveCall) and app.screen is not dialog, timeout=30,
                         what="the second question")
        await wait_until(pilot, lambda: "bash: rm -f /tmp/made-by-asker" in screen_text(app),
                         what="the second question drawn")
        await pilot.press("n")
        await wait_until(pilot, lambda: "✔ success" in agent_lines(app, "asker")[0], timeout=30, what="the end")
    calls = cli.executions("asker")[0]["tool_calls"]
    assert [(c["call"], c["status"]) for c in calls] == [("touch /tmp/made-by-asker", "ok"),
                                                         ("rm -f /tmp/made-by-asker", "denied")]
    assert "made-by-asker" in helpers.docker("exec", helpers.container_of(env), "ls", "/tmp").stdout


# --- space, d, and the keys that cannot act -------------------------------------------------


async def test_space_pauses_and_resumes_and_d_asks_then_removes(cli, model_server, make_env, tmp_path):
    env = (await make_env()).name
    apply(cli, tmp_path, BY_HAND + '    schedule: "every 2h"\n', "hourly", ENV=env)
    apply(cli, tmp_path, BY_HAND, "manual", ENV=env)
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        await select_agent(pilot, pane, "hourly")
        await pilot.press("space")
        await wait_until(pilot, lambda: agent_lines(app, "hourly")[0] == "◌ hourly paused never run 0",
                         what="paused in the list")
        assert "hourly: paused (x still runs it by hand)" in notifications(app)
        assert json.loads(cli("agents", "show", "hourly", "--json").stdout)["status"] == "paused"
        await pilot.press("space")
        await wait_until(pilot, lambda: agent_lines(app, "hourly")[0].startswith("● hourly "), what="active again")
        assert json.loads(cli("agents", "show", "hourly", "--json").stdout)["status"] == "active"
        assert any(n.startswith("hourly: resumed, next run ") for n in notifications(app))

        await select_agent(pilot, pane, "manual")
        await pilot.press("space")
        await wait_until(pilot, lambda: "manual has no schedule: nothing to pause (x runs it)"
                         in notifications(app, "warning"))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        assert "Remove agent manual and its execution records? Their runs and logs stay." in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, Confirm))
        assert "manual" in [row.agent.name for row in pane.rows]
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: [row.agent.name for row in pane.rows] == ["hourly"], what="removed")
        assert "manual: removed, with 0 execution records" in notifications(app)
    assert [a["name"] for a in json.loads(cli("agents", "list", "--json").stdout)] == ["hourly"]


async def test_help_lists_the_agents_pane_keys(cli, model_server):
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = screen_text(app)
        for key, description in [("n", "New agent"), ("enter", "Executions"), ("enter", "Transcript"),
                                 ("x", "Run now"), ("space", "Pause/resume"), ("d", "Remove"),
                                 ("C", "Cancel execution"), ("escape", "Back")]:
            assert re.search(rf"{re.escape(key)}\s+{re.escape(description)}\b", shown), (key, description)
        assert "Agents" in shown and "Everywhere" in shown
        await pilot.press("escape")
        await pilot.press("d")
        await wait_until(pilot, lambda: "no agent selected: n makes one (or glmtui agents apply FILE)"
                         in notifications(app, "warning"))
        await pilot.press("C")  # in the list: nothing to cancel there, and it says so
        await wait_until(pilot, lambda: "C cancels a running execution: enter lists the agent's executions first"
                         in notifications(app, "warning"))


# --- the schedules: run by the TUI, or by a serve it names --------------------------------------


EVERY_2S = """
    version: 1
    name: ticker
    prompt: Tick.
    env: @ENV@
    approval: auto
    schedule: every 2s
    catch_up: skip
"""


async def test_the_tui_runs_an_every_2s_schedule_while_no_serve_runs_and_says_so(cli, model_server, make_env, tmp_path):
    env = (await make_env()).name
    apply(cli, tmp_path, EVERY_2S, "ticker", ENV=env)
    model_server.script(*[text(f"tick {n}", usage=(4, 1)) for n in range(20)])
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        assert schedules_line(app) == "schedules run by this TUI while it is open"

        def two_done() -> list[dict[str, Any]] | None:
            done = [e for e in cli.executions("ticker") if e["trigger"] == "schedule" and e["status"] == "success"]
            return done if len(done) >= 2 else None

        done = await wait_until(pilot, two_done, timeout=60, what="two scheduled executions")
        for execution in done:
            assert execution["scheduled"] % 2 == 0 and 0 <= execution["started"] - execution["scheduled"] < 1.0
        await wait_until(pilot, lambda: "✔ success" in agent_lines(app, "ticker")[0], what="the pane shows them")
        refused = await asyncio.to_thread(cli, "serve")
        assert refused.returncode == 2
        assert helpers.one_error_line(refused.stderr).startswith(f"glmtui: error: the glmtui TUI (pid {os.getpid()}, since ")
        log = (cli.data / "glmtui" / "agents.log").read_text()
        assert f"ticker: execution {done[0]['id']} started (schedule)" in log


async def test_a_running_serve_runs_the_schedules_the_pane_names_it_and_the_tui_takes_over_after(
    cli, model_server, make_env, tmp_path
):
    env = (await make_env()).name
    apply(cli, tmp_path, BY_HAND + '    schedule: "every 2h"\n', "hourly", ENV=env)
    serve = Serve(cli)
    try:
        await asyncio.to_thread(helpers.wait_for, lambda: "glmtui serve (pid" in serve.output(), 30, 0.1,
                                "serve's start line")
        async with agents_tui(cli, model_server) as (app, pilot, pane):
            await wait_until(pilot, lambda: schedules_line(app).startswith(
                f"schedules are run by glmtui serve (pid {serve.proc.pid}, since "), what="serve named")
            assert f"schedules are run by glmtui serve (pid {serve.proc.pid}" in screen_text(app)
            assert await asyncio.to_thread(serve.stop) == 130
            await wait_until(pilot, lambda: schedules_line(app) == "schedules run by this TUI while it is open",
                             timeout=15, what="the TUI to take the schedules over")
    finally:
        serve.kill()


# --- quitting with executions running -------------------------------------------------------


async def test_q_with_an_execution_running_asks_then_cancels_it_cleanly(cli, model_server, busybox_image, tmp_path):
    apply(cli, tmp_path, BY_HAND, "sleeper", ENV="{image: glmtui/busybox:latest}")
    model_server.script(tool_calls([("c1", "bash", {"command": "sleep 120"})], usage=(7, 2)))
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        await select_agent(pilot, pane, "sleeper")
        await pilot.press("x")
        started = await wait_until(pilot, lambda: [n for n in notifications(app) if n.startswith("sleeper: execution ")],
                                   what="the started line")
        execution_id = started[0].split()[2]
        container = f"run-{execution_id}"
        await asyncio.to_thread(helpers.wait_for, lambda: sleeping(container), 60, 0.2, "the tool's command")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        assert "1 agent execution is running. Cancel it and quit?" in screen_text(app)
        await pilot.press("y")
        await wait_for_exit(app, timeout=60)
    record = cli.execution(execution_id)
    assert record["status"] == "cancelled" and record["tool_calls"][0]["status"] == "cancelled"
    assert not helpers.container_exists(container) and not helpers.volume_exists(container)


async def test_c_in_the_executions_is_the_chat_and_shift_c_asks_before_it_cancels(
    cli, model_server, busybox_image, tmp_path
):
    apply(cli, tmp_path, BY_HAND, "sleeper", ENV="{image: glmtui/busybox:latest}")
    model_server.script(tool_calls([("c1", "bash", {"command": "sleep 120"})], usage=(7, 2)))
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        await select_agent(pilot, pane, "sleeper")
        await pilot.press("x")
        started = await wait_until(pilot, lambda: [n for n in notifications(app) if n.startswith("sleeper: execution ")],
                                   what="the started line")
        execution_id = started[0].split()[2]
        container = f"run-{execution_id}"
        await asyncio.to_thread(helpers.wait_for, lambda: sleeping(container), 60, 0.2, "the tool's command")
        await pilot.press("enter")  # the executions: the running one highlighted
        await wait_until(pilot, lambda: pane.execution_table.has_focus, what="the executions")
        await pilot.press("c")  # the chat, as everywhere: nothing is cancelled
        await wait_until(pilot, lambda: app.query_one(ChatPane).input.has_focus, what="the chat")
        await pilot.pause(0.5)
        work = app.service.get(execution_id)
        assert not work.finished
        pane.execution_table.focus()
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        assert f"Cancel execution {execution_id} of agent sleeper?" in screen_text(app)
        await pilot.press("escape")  # no: it goes on
        await pilot.pause(0.5)
        assert not work.finished
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question again")
        await pilot.press("y")
        await wait_until(pilot, lambda: work.finished, timeout=60, what="the execution cancelled")
        assert f"sleeper: cancelling execution {execution_id}" in notifications(app)
    assert cli.execution(execution_id)["status"] == "cancelled"
    assert not helpers.container_exists(container)


def sleeping(container: str) -> bool:
    """`sleep 120` runs in the environment (which may be made but not started yet)."""
    try:
        return helpers.container_exists(container) and "sleep 120" in helpers.processes(container)
    except AssertionError:  # docker exec: the container is not running yet
        return False


# --- ctrl+a in the chat ---------------------------------------------------------------------


async def test_ctrl_a_in_the_chat_prefills_the_new_agent_form(cli, model_server, make_env):
    from test_tui_app import select_env

    env = (await make_env()).name
    model_server.script(text("I will look at the tests.", usage=(20, 6)))
    async with agents_tui(cli, model_server) as (app, pilot, pane):
        chat = app.query_one(ChatPane)
        await select_env(pilot, app, env)
        await pilot.press("c")
        await wait_until(pilot, lambda: chat.environment == env and chat.input.has_focus, what="the chat")
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: "nothing to save yet: the conversation's first message becomes the agent's "
                         "prompt" in notifications(app, "warning"), what="nothing to save yet")
        chat.input.insert_text_at_cursor("Find why test_parse fails and fix it")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not chat.busy and chat.conversation_id, timeout=30, what="the reply")
        await pilot.press("ctrl+a")
        form = await wait_until(pilot, lambda: isinstance(app.screen, NewAgent) and app.screen, what="the form")
        await pilot.pause(0.1)
        assert form.query_one(TextArea).text == "Find why test_parse fails and fix it"
        assert form.query_one("#environment", Select).value == env
        assert form.query_one("#provider", Select).value == "test"
        assert form.query_one("#model").value == "test-model"
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewAgent))
