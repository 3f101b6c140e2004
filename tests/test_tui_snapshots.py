"""Snapshot tests of the TUI's screens (pytest-textual-snapshot).

The apps come from tests/snapshot_apps.py: the fake engine (the only place it is used), a fixed
config, deterministic ages, run id and clock; 160x45 (and a small 80x24 and a large 220x60
terminal for the layout), cursor blink off. A change on purpose is
accepted with `pytest tests/test_tui_snapshots.py --snapshot-update` after looking at the SVGs
in tests/__snapshots__/test_tui_snapshots/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import snapshot_apps as apps
from textual.pilot import Pilot
from textual.widgets import Input

import helpers
from glmtui.tui.screens.help import HelpScreen
from glmtui.tui.screens.new_env import NewEnvironment
from glmtui.tui.screens.plan_inputs import PlanInputsScreen
from glmtui.tui.widgets.plan_view import PlanPane, StepTable


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan pane shows the plan's path relative to the current folder: plans/hello.yaml."""
    monkeypatch.chdir(helpers.PROJECT_ROOT)


def test_main_screen(snap_compare, tmp_path: Path) -> None:
    """Three environments (two running, with CPU and memory), no plan, the log pane empty."""
    app = apps.main_screen(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_new_environment_form(snap_compare, tmp_path: Path) -> None:
    """`n`: name, image (the configured default image chosen), memory, cpus, network, mounts, Create."""
    app = apps.main_screen(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("n")
        await apps.settle(pilot, lambda: isinstance(app.screen, NewEnvironment))

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_plan_preview(snap_compare, tmp_path: Path) -> None:
    """plans/hello.yaml: its environment, inputs, steps by layer, the highlighted step's command."""
    app = apps.with_plan(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("tab", "tab")  # environments -> agents -> the plan's steps
        await apps.settle(pilot, lambda: app.query_one(StepTable).has_focus)

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_run_in_progress(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """greet done in 0.4s, count running for 12.3s, shout skipped, the rest waiting; greet's output in the log."""
    apps.script_run(monkeypatch, apps.in_progress_script(), result=None)
    app = apps.with_plan(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("tab", "tab", "enter")
        pane = app.query_one(PlanPane)
        await apps.settle(pilot, lambda: pane.running and pane.states["count"].status == "running")

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_failed_run(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """count failed with exit 3: ✘, the steps after it skipped, `R resumes`, the failure notification."""
    apps.script_run(monkeypatch, apps.failed_script(), result="failure")
    app = apps.with_plan(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("tab", "tab", "enter")
        pane = app.query_one(PlanPane)
        await apps.settle(pilot, lambda: pane.run_status == "failure" and not pane.running)
        await pilot.press("down")  # count: its failure and its command in the detail, its output in the log
        await apps.settle(pilot)

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    """`?` on the environments pane: its keys, then the app's."""
    app = apps.with_plan(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("question_mark")
        await apps.settle(pilot, lambda: isinstance(app.screen, HelpScreen))

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_disconnected_banner(snap_compare, tmp_path: Path) -> None:
    """No engine: the red banner says which address and that it keeps trying."""
    app = apps.disconnected(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, lambda: "reconnecting" in str(app.query_one("#banner").content))

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_chat_pane(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat, enlarged (ctrl+g): fix-tests' saved conversation (a question, a tool card, a Markdown
    answer with a code block), then a scripted reply to a new message: its thinking collapsed, a
    command that ran (ok), one refused (denied), and one waiting for approval (the prompt focused)."""
    from glmtui.tui.widgets.chat import ApprovalPrompt

    app = apps.chat_screen(tmp_path, monkeypatch)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("c")  # on fix-tests' row: the chat works there
        await apps.settle(pilot, apps.chat_shown(app))
        await pilot.press(*"clean build/", "enter")
        await apps.settle(pilot, lambda: isinstance(app.focused, ApprovalPrompt))
        await pilot.press("ctrl+g")
        await apps.settle(pilot)
        footer = apps.screen_lines(app)[-1]
        assert re.search(r"q Quit\s+▏\^p Commands$", footer.rstrip()), footer  # whole at 160 columns

    assert snap_compare(app, terminal_size=apps.CHAT_SIZE, run_before=run_before)


@pytest.fixture
def agents_clock(monkeypatch: pytest.MonkeyPatch):
    """The agents pane and the scheduler at AGENTS_NOW, local time UTC (restored afterwards)."""
    import time

    apps.fix_agents_clock(monkeypatch)
    yield
    monkeypatch.undo()
    time.tzset()


def test_agents_pane(snap_compare, tmp_path: Path, agents_clock: None) -> None:
    """Five agents, two lines each: next run, last execution (deps-update running, triage failed with
    its reason on its second line), tokens in 7 days, schedule in words; weekly-report paused,
    fix-flaky by hand; the list scrolled to triage; who runs the schedules at the bottom."""
    app = apps.agents_screen(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await apps.settle(pilot, apps.agents_listed(app))
        await pilot.press("tab", "down", "down", "down")  # environments -> agents; to triage
        await apps.settle(pilot)

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


def test_agent_executions(snap_compare, tmp_path: Path, agents_clock: None) -> None:
    """enter on triage: its executions, newest first (the failed one with its reason below)."""
    app = apps.agents_screen(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await apps.settle(pilot, apps.agents_listed(app))
        await pilot.press("tab", "down", "down", "down", "enter")
        await apps.settle(pilot)

    assert snap_compare(app, terminal_size=apps.SIZE, run_before=run_before)


# --- the layout by the terminal's size ----------------------------------------------------------


def test_small_terminal(snap_compare, tmp_path: Path) -> None:
    """80x24: the environments pane narrows to name and status, the plan pane keeps room for its
    facts and steps, the chat keeps its title and prompt line."""
    from glmtui.tui.widgets.environments import EnvironmentsPane

    app = apps.with_plan(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        assert [column.label.plain for column in app.query_one(EnvironmentsPane).ordered_columns] == ["", "name", "status"]
        assert app.query_one(PlanPane).content_size.width >= 40

    assert snap_compare(app, terminal_size=apps.SMALL, run_before=run_before)


def test_large_terminal(snap_compare, tmp_path: Path) -> None:
    """220x60: every column of the environments pane, the plan's steps and the log with room to spare."""
    app = apps.with_plan(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("tab", "tab")
        await apps.settle(pilot, lambda: app.query_one(StepTable).has_focus)

    assert snap_compare(app, terminal_size=apps.LARGE, run_before=run_before)


def test_new_environment_form_in_a_small_terminal(snap_compare, tmp_path: Path) -> None:
    """80x24, Create with a bad memory size: the form scrolls, its error and its buttons on screen."""
    app = apps.main_screen(tmp_path)

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("n")
        await apps.settle(pilot, lambda: isinstance(app.screen, NewEnvironment))
        form = app.screen
        form.query_one("#memory", Input).value = "lots"
        await pilot.click("#create")
        await apps.settle(pilot, lambda: str(form.query_one("#error").content))
        assert apps.on_screen(app, form.query_one("#error")) and apps.on_screen(app, form.query_one("#create"))

    assert snap_compare(app, terminal_size=apps.SMALL, run_before=run_before)


def test_inputs_form_in_a_small_terminal(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """80x24, six inputs and a required one left empty: the fields scroll, the error (wrapped) and
    the buttons stay on screen. (The plan is named relative to the checkout, which the error
    names: the picture is the same wherever the checkout is.)"""
    monkeypatch.chdir(apps.MANY_INPUTS.parents[2])
    app = apps.build(tmp_path, plan=apps.MANY_INPUTS.relative_to(apps.MANY_INPUTS.parents[2]))

    async def run_before(pilot: Pilot) -> None:
        await apps.settle(pilot, apps.stats_shown(app))
        await pilot.press("tab", "tab", "i")
        await apps.settle(pilot, lambda: isinstance(app.screen, PlanInputsScreen))
        await pilot.press("ctrl+s")
        form = app.screen
        await apps.settle(pilot, lambda: str(form.query_one("#inputs-errors").content))
        assert apps.on_screen(app, form.query_one("#inputs-errors"))
        assert apps.on_screen(app, form.query_one("#inputs-apply"))

    assert snap_compare(app, terminal_size=apps.SMALL, run_before=run_before)
