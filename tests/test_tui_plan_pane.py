"""The TUI's plan pane, driven by Pilot: preview, inputs form, pickers, live runs against the
real Docker engine, cancel, resume, past runs.

Each test runs a small app that holds only the pane and records the messages it posts
upwards; assertions read what the user sees: the steps table's cells, the screen's text.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

import helpers
from plan_helpers import make_store, remove_run_leftovers, run_containers, run_volume_exists, write_plan

from glmtui.config import Config
from glmtui.service.backend import LocalBackend
from glmtui.service.service import Service
from glmtui.tui.messages import RunStateChanged, StepOutput, StepSelected
from glmtui.tui.screens.permissions import AllowHostAccess
from glmtui.tui.screens.plan_inputs import PlanInputsScreen
from glmtui.tui.screens.plan_picker import PastRunsScreen, PlanPickerScreen, recent_file, recent_plans
from glmtui.tui.widgets.plan_view import PlanPane, StepTable

HELLO = helpers.PROJECT_ROOT / "plans" / "hello.yaml"
BAD = helpers.PROJECT_ROOT / "tests" / "plans" / "bad" / "needs-missing.yaml"
PLAN_TCSS = helpers.PROJECT_ROOT / "glmtui" / "tui" / "screens" / "plan.tcss"
SIZE = (120, 40)


class PaneApp(App):
    """Only a PlanPane, its runs owned by a service over `engine` (as GlmtuiApp's are); every
    message the pane posts upwards is recorded."""

    CSS_PATH = str(PLAN_TCSS)

    def __init__(self, tmp: Path, plan: Path | None = None, engine: Any = None) -> None:
        super().__init__()
        self.store = make_store(tmp / "data")
        self.config = Config.load(cwd=tmp)
        self.plan = plan
        self.backend = LocalBackend(Service(engine, self.store, self.config)) if engine is not None else None
        self.messages: list[Any] = []

    def compose(self) -> ComposeResult:
        yield PlanPane(plan_path=self.plan, config=self.config, store=self.store, id="plan")

    def on_mount(self) -> None:
        self.pane.backend = self.backend

    async def on_unmount(self) -> None:
        if self.backend is not None:
            await self.backend.close()

    @property
    def pane(self) -> PlanPane:
        return self.query_one(PlanPane)

    def on_step_selected(self, message: StepSelected) -> None:
        self.messages.append(message)

    def on_step_output(self, message: StepOutput) -> None:
        self.messages.append(message)

    def on_run_state_changed(self, message: RunStateChanged) -> None:
        self.messages.append(message)

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]


# --- what the user sees ---------------------------------------------------------------------------


def screen_text(app: App) -> str:
    """The terminal's text, line by line, as the user reads it."""
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


def rows(app: PaneApp) -> dict[str, list[str]]:
    """The steps table: step id -> its cells' text (mark, step, layer, kind, needs, if, status, command)."""
    table = app.query_one(StepTable)
    out = {}
    for index in range(table.row_count):
        key = table.coordinate_to_cell_key((index, 0)).row_key.value
        out[key] = [str(cell) for cell in table.get_row(key)]
    return out


def status_line(app: PaneApp) -> str:
    """The pane's status line (it may wrap over a few screen lines)."""
    return str(app.query_one("#plan-status").content)


def texts(selected: StepSelected) -> list[tuple[str, str]]:
    """A StepSelected's lines as (stream, line), without the time each was written."""
    return [(stream, line) for stream, line, _ in selected.lines]


def marks(app: PaneApp) -> dict[str, str]:
    return {step: cells[0] for step, cells in rows(app).items()}


async def wait_until(pilot: Pilot, predicate: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    return await helpers.until(predicate, timeout, what=what, pause=pilot.pause, shown=lambda: screen_text(pilot.app))


async def run_finished(pilot: Pilot, app: PaneApp, count: int = 1, timeout: float = 60) -> RunStateChanged:
    ended = lambda: [m for m in app.of(RunStateChanged) if not m.running]  # noqa: E731
    await wait_until(pilot, lambda: len(ended()) >= count, timeout, "the run to end")
    await pilot.pause(0.2)  # one more redraw of the table
    return ended()[count - 1]


async def set_inputs(pilot: Pilot, app: PaneApp, texts: dict[str, str] | None = None,
                     switches: tuple[str, ...] = ()) -> PlanInputsScreen:
    """Open the inputs form with `i`, type into fields / flip switches like a user, apply with ctrl+s."""
    await pilot.press("i")
    screen = await wait_until(pilot, lambda: isinstance(app.screen, PlanInputsScreen) and app.screen)
    for name, text in (texts or {}).items():
        field = screen.widget_for(name)
        field.focus()
        await pilot.pause()
        await pilot.press("ctrl+a", "ctrl+k", *text)  # select to the start, kill to the end, type
    for name in switches:
        screen.widget_for(name).focus()
        await pilot.pause()
        await pilot.press("space")
    await pilot.press("ctrl+s")
    await pilot.pause(0.1)
    return screen


def run_ids(app: PaneApp) -> list[str]:
    return [m.run_id for m in app.of(RunStateChanged) if m.running]


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When each plan pane's redraw tick ran."""
    times: list[float] = []
    tick = PlanPane._tick

    def counted(self: PlanPane) -> None:
        times.append(time.monotonic())
        tick(self)

    monkeypatch.setattr(PlanPane, "_tick", counted)
    return times


async def quiet_for(pilot: Pilot, ticks: list[float], seconds: float = 0.6) -> int:
    """The pane's ticks while nothing happens for `seconds`, after a moment to settle."""
    await pilot.pause(0.3)
    before = len(ticks)
    await pilot.pause(seconds)
    return len(ticks) - before


# --- preview ------------------------------------------------------------------------------------


async def test_preview_shows_environment_inputs_layers_and_commands(tmp_path: Path) -> None:
    app = PaneApp(tmp_path, HELLO)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        table = rows(app)
        assert list(table) == ["greet", "count", "shout", "report", "show"]
        #                  step     layer kind    needs             if
        assert table["greet"][1:6] == ["greet", "1", "run", "", ""]
        assert table["count"][1:6] == ["count", "1", "run", "", ""]
        assert table["shout"][1:6] == ["shout", "2", "run", "greet", "${inputs.shout}"]
        assert table["report"][1:6] == ["report", "2", "write", "greet, count", ""]
        assert table["show"][1:6] == ["show", "3", "run", "report", ""]
        # commands with the inputs filled in; other steps' results stay as written
        assert table["greet"][7] == 'echo "hello, world" …'
        assert table["report"][7].startswith("write /workspace/report.txt")
        assert table["shout"][7] == 'echo "${steps.greet.outputs.greeting}" | tr a-z A-Z'
        text = screen_text(app)
        assert "hello  " in text and "workflow main" in text
        assert "throw-away · glmtui/busybox:latest · workdir /workspace · network bridge" in text
        assert "who = world (string)" in text and "shout = false (boolean)" in text
        # the highlighted step's whole command
        assert 'echo "greeting=hello, world" >> "$GLMTUI_OUTPUT"' in text
        await pilot.press("down")
        await pilot.pause()
        assert "count (count the commands of the image)" in screen_text(app)
        pane = app.pane
        assert pane.check_action("run", ()) is True
        assert pane.check_action("cancel", ()) is False
        assert pane.check_action("resume", ()) is False
        # every binding has an id and a description
        assert all(binding.id and binding.description for binding in PlanPane.BINDINGS)


async def test_an_idle_pane_does_not_tick(tmp_path: Path, ticks: list[float]) -> None:
    """A preview changes only when the user does something: its ~8 fps redraw sleeps meanwhile."""
    app = PaneApp(tmp_path, HELLO)
    async with app.run_test(size=SIZE) as pilot:
        assert await quiet_for(pilot, ticks) == 0
        await pilot.press("down")
        await pilot.pause()
        assert "count (count the commands of the image)" in screen_text(app)


async def test_invalid_plan_shows_its_error_lines(tmp_path: Path) -> None:
    app = PaneApp(tmp_path, BAD)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "the plan is invalid" in text
        error = next(line.strip() for line in text.splitlines() if "needs-missing.yaml:" in line)
        assert re.fullmatch(rf"{re.escape(str(BAD))}:7:13: .*'instal'.*", error), error  # FILE:LINE:COL: message
        assert rows(app) == {}
        assert app.pane.check_action("run", ()) is False
        await pilot.press("enter")  # nothing runs, nothing breaks
        await pilot.pause()
        assert app.of(RunStateChanged) == []
        # fixing the file and loading it again shows the plan
        fixed = write_plan(tmp_path, BAD.read_text().replace("[instal]", "[install]"), "fixed.yaml")
        app.pane.load(fixed)
        await pilot.pause(0.2)
        assert list(rows(app)) == ["install", "test"]
        assert "the plan is invalid" not in screen_text(app)


async def test_inputs_form_validates_and_changes_the_preview(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: typed
        inputs:
          who: {type: string, default: world, description: Whom to greet}
          times: {type: integer, default: 2}
          loud: {type: boolean, default: false}
        secrets: [TYPED_TEST_TOKEN]
        steps:
          - id: say
            run: echo "${inputs.who} x${inputs.times} loud=${inputs.loud} token=${secrets.TYPED_TEST_TOKEN}"
        """)
    app = PaneApp(tmp_path, plan)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert rows(app)["say"][7] == 'echo "world x2 loud=false token=${secrets.TYPED_TEST_TOKEN}"'
        assert "TYPED_TEST_TOKEN NOT SET" in screen_text(app)
        # a bad value: the form stays, with load_plan's message
        screen = await set_inputs(pilot, app, {"times": "many"})
        assert app.screen is screen
        text = screen_text(app)
        assert "input 'times' must be an integer, not 'many'" in text
        assert "Whom to greet" in text and "integer · default 2" in text
        assert "TYPED_TEST_TOKEN: not set" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PlanInputsScreen)
        # good values: the preview shows them
        await set_inputs(pilot, app, {"who": "tester", "times": "3"}, switches=("loud",))
        assert not isinstance(app.screen, PlanInputsScreen)
        assert rows(app)["say"][7] == 'echo "tester x3 loud=true token=${secrets.TYPED_TEST_TOKEN}"'
        text = screen_text(app)
        assert "who = tester (string)" in text and "times = 3 (integer)" in text and "loud = true" in text
        # the form opens again with what was given
        await pilot.press("i")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, PlanInputsScreen) and app.screen)
        assert screen.widget_for("who").value == "tester"
        assert screen.widget_for("loud").value is True


async def test_a_required_input_is_asked_for_in_the_form(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: asks
        inputs:
          target: {type: string, description: Where to deploy}
        steps:
          - id: deploy
            run: echo "deploying to ${inputs.target}"
        """)
    app = PaneApp(tmp_path, plan)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "input 'target' is required" in text and "i sets the inputs" in text
        assert app.pane.check_action("run", ()) is False
        screen = await set_inputs(pilot, app)  # left empty: still required
        assert app.screen is screen
        assert "target  string · required" in screen_text(app)
        assert "input 'target' is required" in str(screen.query_one("#inputs-errors").content)
        await pilot.press("escape")
        await set_inputs(pilot, app, {"target": "staging"})
        assert rows(app)["deploy"][7] == 'echo "deploying to staging"'
        assert "the plan is invalid" not in screen_text(app)
        assert app.pane.check_action("run", ()) is True


async def test_the_inputs_form_binds_the_plan_the_pane_has_without_reading_its_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: read-once
        inputs:
          times: {type: integer, default: 2}
        steps:
          - id: say
            run: echo "x${inputs.times}"
        """)
    from glmtui.plan import loader

    reads: list[Any] = []
    load_documents = loader.load_documents
    monkeypatch.setattr(loader, "load_documents", lambda paths: reads.append(paths) or load_documents(paths))
    app = PaneApp(tmp_path, plan)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        previewed = len(reads)
        screen = await set_inputs(pilot, app, {"times": "many"})
        assert "input 'times' must be an integer, not 'many'" in str(screen.query_one("#inputs-errors").content)
        await pilot.press("ctrl+s")  # applied again: bound again, still from the plan the pane has
        await pilot.pause(0.1)
        assert app.screen is screen
        assert len(reads) == previewed, "the form read the plan file again"


async def test_a_workflows_required_input_is_in_the_form_when_the_plan_does_not_bind(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: flows
        inputs:
          region: {type: string, default: eu}
        workflows:
          deploy:
            default: true
            inputs:
              target: {type: string, description: Where to deploy}
            steps:
              - id: go
                run: echo "${inputs.region} ${inputs.target}"
        """)
    app = PaneApp(tmp_path, plan)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert "input 'target' is required" in screen_text(app)
        screen = await set_inputs(pilot, app, {"target": "staging"})
        assert not isinstance(app.screen, PlanInputsScreen), str(screen.query_one("#inputs-errors").content)
        assert rows(app)["go"][7] == 'echo "eu staging"'


async def test_secret_values_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANE_TEST_SECRET", "hunter2-very-secret")
    plan = write_plan(tmp_path, """
        version: 1
        name: secretive
        secrets: [PANE_TEST_SECRET]
        steps:
          - id: use
            run: echo "token ${secrets.PANE_TEST_SECRET}"
        """)
    app = PaneApp(tmp_path, plan)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert rows(app)["use"][7] == 'echo "token ***"'
        assert "PANE_TEST_SECRET set" in screen_text(app)
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanInputsScreen))
        text = screen_text(app)
        assert "PANE_TEST_SECRET: set" in text and "hunter2" not in text


# --- picking a plan -------------------------------------------------------------------------------


async def test_picker_lists_plans_filters_and_remembers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    step = "steps:\n  - id: a\n    run: echo {name}\n"
    write_plan(project / "plans", "version: 1\nname: build-all\n" + step.format(name="build"), "build-all.yaml")
    write_plan(project / "plans" / "nested", "version: 1\nname: deploy\n" + step.format(name="deploy"), "deploy.yml")
    write_plan(project, "version: 1\nname: local\n" + step.format(name="local"), "local.yaml")
    write_plan(project, "services: {}\n", "compose.yaml")  # not a plan: not listed
    monkeypatch.chdir(project)
    recent_file().unlink(missing_ok=True)  # other tests loaded plans too
    app = PaneApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert "no plan: r picks one" in screen_text(app)
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanPickerScreen))
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "plans/build-all.yaml  plans" in text
        assert "plans/nested/deploy.yml  plans" in text
        assert "local.yaml  here" in text
        assert "compose.yaml" not in text
        await pilot.press(*"dply")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "deploy.yml" in text and "build-all" not in text and "local.yaml" not in text
        await pilot.press("enter")
        await wait_until(pilot, lambda: "deploy" in rows(app).get("a", [""] * 8)[7])
        assert "Plan  deploy.yml" == app.pane.border_title
        assert recent_plans() == [(project / "plans" / "nested" / "deploy.yml").resolve()]
        assert json.loads(recent_file().read_text()) == [str((project / "plans/nested/deploy.yml").resolve())]
        # the recent plan comes first next time
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanPickerScreen))
        await pilot.pause(0.1)
        lines = [line for line in screen_text(app).splitlines() if re.search(r"\.ya?ml  (recent|plans|here)\b", line)]
        assert "plans/nested/deploy.yml  recent" in lines[0]
        assert len(lines) == 3
        await pilot.press("escape")


# --- running against the real engine ------------------------------------------------------------


@pytest.mark.docker
async def test_run_hello_live_then_select_steps_and_open_the_past_run(
    tmp_path: Path, engine: Any, busybox_image: str, ticks: list[float]
) -> None:
    app = PaneApp(tmp_path, HELLO, engine=engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            await set_inputs(pilot, app, switches=("shout",))  # so that every step runs
            assert rows(app)["shout"][5] == "${inputs.shout}"
            assert "shout = true" in screen_text(app)
            app.query_one(StepTable).focus()
            await pilot.press("enter")
            started = await wait_until(pilot, lambda: app.of(RunStateChanged))
            assert started[0].running and started[0].run_id
            assert app.pane.check_action("run", ()) is False
            assert app.pane.check_action("cancel", ()) is True
            during = len(ticks)
            ended = await run_finished(pilot, app)
            assert len(ticks) > during, "the pane redraws while the run goes"
            run_id = started[0].run_id
            assert (ended.running, ended.status, ended.run_id) == (False, "success", run_id)
            assert marks(app) == {step: "✔" for step in ["greet", "count", "shout", "report", "show"]}
            assert await quiet_for(pilot, ticks) == 0, "and not once the run is over"
            assert all(cells[6].endswith("s") for cells in rows(app).values())  # durations
            text = screen_text(app)
            assert f"✔ run {run_id} success in" in text
            assert app.pane.check_action("resume", ()) is False
            # greet was highlighted when the run started: the log pane got its lines live, and only its
            assert [(m.title, m.lines) for m in app.of(StepSelected)] == [("greet", [])]
            live = [(m.stream, line) for m in app.of(StepOutput) for line in m.lines]
            assert live == [("stdout", "hello, world")]
            # selecting a step shows its output: count, then greet again
            app.messages.clear()
            await pilot.press("down")
            await wait_until(pilot, lambda: app.of(StepSelected))
            count = app.of(StepSelected)[-1]
            assert count.title == "count"
            assert any(stream == "stdout" and line.startswith("the image has ") for stream, line in texts(count))
            await pilot.press("up")
            await wait_until(pilot, lambda: len(app.of(StepSelected)) == 2)
            greet = app.of(StepSelected)[-1]
            assert texts(greet) == [("stdout", "hello, world")]
            assert greet.log_file == app.store.log_file(run_id, "greet")
            assert greet.log_file.read_text() == "hello, world\n"
            shout = app.pane.step_selected("shout")
            assert texts(shout) == [("stdout", "HELLO, WORLD")]
            # the past run opens the same way, from its record
            await pilot.press("p")
            await wait_until(pilot, lambda: isinstance(app.screen, PastRunsScreen))
            await pilot.pause(0.1)
            assert f"✔ {run_id}  hello  success" in screen_text(app)
            app.pane.load(HELLO)  # a fresh preview first, so the record is what fills the table
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.pane.from_record)
            await pilot.pause(0.2)
            assert marks(app) == {step: "✔" for step in ["greet", "count", "shout", "report", "show"]}
            assert f"✔ run {run_id} success in" in screen_text(app)
            app.messages.clear()
            app.query_one(StepTable).move_cursor(row=4)
            await wait_until(pilot, lambda: app.of(StepSelected))
            show = app.of(StepSelected)[-1]
            assert show.title == f"show · run {run_id}"
            assert show.log_file == app.store.log_file(run_id, "show")
            assert len(show.lines) == 1 and re.fullmatch(r"hello, world; \d+ commands", show.lines[0][1])
    finally:
        for run_id in run_ids(app):
            remove_run_leftovers(run_id)


@pytest.mark.docker
@pytest.mark.parametrize("how", ["key C, then yes", "the service's shutdown"])
async def test_cancel_stops_the_run_and_removes_its_environment(
    tmp_path: Path, engine: Any, busybox_image: str, how: str
) -> None:
    """`C` (once the person says yes), or the service's shutdown (the app's `await backend.close()` before it exits): the same
    clean-up as Ctrl-C headless."""
    plan = write_plan(tmp_path, """
        version: 1
        name: sleepy
        env: {image: @IMAGE@}
        steps:
          - id: nap
            run: |
              echo going to sleep
              sleep 30
          - id: after
            needs: [nap]
            run: echo never
        """, IMAGE=busybox_image)
    app = PaneApp(tmp_path, plan, engine=engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            await pilot.press("enter")
            await wait_until(pilot, lambda: rows(app)["nap"][6].startswith("running"), what="nap running")
            assert rows(app)["after"][6] == "waits for nap"
            run_id = run_ids(app)[0]
            assert run_containers(run_id), "the run's environment should exist while it runs"
            started = time.monotonic()
            await wait_until(pilot, lambda: app.of(StepOutput), what="nap's output, live")
            assert [(m.stream, m.lines) for m in app.of(StepOutput)] == [("stdout", ["going to sleep"])]
            if how == "key C, then yes":
                await pilot.press("C")
                await wait_until(pilot, lambda: app.screen.query("#yes"), what="the question")
                await pilot.press("y")
            else:
                await app.backend.close()
                assert app.store.run(run_id).status == "cancelled"
            ended = await run_finished(pilot, app, timeout=30)
            assert time.monotonic() - started < 15
            assert (ended.status, ended.run_id) == ("cancelled", run_id)
            table = rows(app)
            assert table["nap"][0] == "■" and table["nap"][6].startswith("cancelled")
            assert table["after"][0] == "■" and table["after"][6].startswith("cancelled")
            assert f"■ run {run_id} cancelled" in screen_text(app)
            assert helpers.docker("ps", "-a", "-q", "--filter", f"label=glmtui.run={run_id}").stdout.strip() == ""
            assert not run_volume_exists(run_id)
            assert app.store.run(run_id).status == "cancelled"
            assert app.pane.check_action("resume", ()) is True
    finally:
        for run_id in run_ids(app):
            remove_run_leftovers(run_id)


@pytest.mark.docker
async def test_resume_after_a_failed_run_reuses_what_succeeded(
    tmp_path: Path, engine: Any, busybox_image: str
) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: flaky
        inputs:
          fail: {type: boolean, default: true}
        env: {image: @IMAGE@}
        steps:
          - id: first
            run: echo first ran
          - id: second
            needs: [first]
            run: |
              if [ "${inputs.fail}" = "true" ]; then echo broken >&2; exit 3; fi
              echo second ran
          - id: third
            needs: [second]
            run: echo third ran
        """, IMAGE=busybox_image)
    app = PaneApp(tmp_path, plan, engine=engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            assert app.pane.check_action("resume", ()) is False
            await pilot.press("enter")
            ended = await run_finished(pilot, app)
            failed_run = ended.run_id
            assert ended.status == "failure"
            table = rows(app)
            assert [table[s][0] for s in ("first", "second", "third")] == ["✔", "✘", "↷"]
            assert table["second"][6].startswith("exit 3")
            assert table["third"][6] == "skipped · second did not succeed"
            assert "R resumes" in screen_text(app)
            assert app.pane.check_action("resume", ()) is True
            # fix the cause (an input), then resume: `first` is reused, the rest run
            await set_inputs(pilot, app, switches=("fail",))
            assert app.pane.check_action("resume", ()) is True
            app.query_one(StepTable).focus()
            await pilot.press("R")
            ended = await run_finished(pilot, app, count=2)
            assert ended.status == "success" and ended.run_id != failed_run
            table = rows(app)
            assert [table[s][0] for s in ("first", "second", "third")] == ["✔", "✔", "✔"]
            assert table["first"][6] == f"reused from run {failed_run}"
            reused = app.pane.step_selected("first")
            assert texts(reused) == [("stdout", "first ran")]
            assert reused.log_file == app.store.log_file(failed_run, "first")
            assert reused.title == f"first · reused from run {failed_run}"
            assert texts(app.pane.step_selected("second")) == [("stdout", "second ran")]
            assert app.pane.check_action("resume", ()) is False
    finally:
        for run_id in run_ids(app):
            remove_run_leftovers(run_id)


@pytest.mark.docker
async def test_fast_output_is_batched_and_preparation_shows_progress(
    tmp_path: Path, engine: Any, busybox_image: str
) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: chatty
        env: {image: @IMAGE@}
        steps:
          - id: loud
            run: seq 200000
          - id: quiet
            run: echo hush
        """, IMAGE=busybox_image)
    app = PaneApp(tmp_path, plan, engine=engine)
    status_lines: set[str] = set()  # the pane's status line, as it changed

    def ended() -> list[RunStateChanged]:
        status_lines.add(status_line(app))
        return [m for m in app.of(RunStateChanged) if not m.running]

    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            await pilot.press("enter")  # `loud` is highlighted: its lines go to the log pane live
            await wait_until(pilot, ended, timeout=60)
            assert ended()[0].status == "success"
            assert any("creating throw-away environment" in line for line in status_lines), status_lines
            outputs = app.of(StepOutput)
            live = [line for m in outputs for line in m.lines]
            assert live == [str(n) for n in range(1, 200001)]  # every line, in order, of `loud` only
            assert len(outputs) < 100, f"{len(outputs)} StepOutput messages: not batched"
            selected = app.pane.step_selected("loud")
            assert len(selected.lines) == 5000 and texts(selected)[-1] == ("stdout", "200000")
            assert marks(app) == {"loud": "✔", "quiet": "✔"}
    finally:
        for run_id in run_ids(app):
            remove_run_leftovers(run_id)


@pytest.mark.docker
async def test_a_run_that_cannot_start_says_why(tmp_path: Path, engine: Any) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: imageless
        env: {image: "glmtui/does-not-exist:never"}
        steps:
          - id: only
            run: echo never
        """)
    app = PaneApp(tmp_path, plan, engine=engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            await pilot.press("enter")
            ended = await run_finished(pilot, app)
            assert ended.status == "failure"
            assert rows(app)["only"][0] == "·" and rows(app)["only"][6] == "not run"
            errors = [n for n in app._notifications if n.severity == "error"]
            assert len(errors) == 1 and "could not be pulled" in errors[0].message
            assert "is not here and could not be pulled" in status_line(app)
            assert app.pane.check_action("run", ()) is True  # it can be tried again
            assert run_containers(ended.run_id) == []
    finally:
        for run_id in run_ids(app):
            remove_run_leftovers(run_id)


@pytest.mark.docker
async def test_a_plan_that_asks_for_host_access_runs_only_once_the_dialog_allows_it(
    tmp_path: Path, engine: Any, busybox_image: str
) -> None:
    outside = tmp_path / "outside"
    plan = write_plan(tmp_path / "plan", """
        version: 1
        name: asks-first
        permissions:
          host_paths: [{path: ../outside, write: true}]
        env: {image: glmtui/busybox:latest}
        steps:
          - {id: make, run: echo allowed > /tmp/f}
          - {id: save, needs: [make], copy: {from: "env:/tmp/f", to: ../outside/f}}
        """)
    app = PaneApp(tmp_path, plan, engine=engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            assert f"permissions  write {outside}  (asked before it runs)" in screen_text(app)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, AllowHostAccess), what="the dialog")
            text = screen_text(app)
            assert "Plan asks-first asks for access to the host:" in text and f"• write {outside}" in text
            assert app.screen.focused is not None and app.screen.focused.id == "cancel"
            await pilot.press("enter")  # on Cancel: nothing runs
            await wait_until(pilot, lambda: not isinstance(app.screen, AllowHostAccess), what="the dialog to close")
            await pilot.pause(0.1)
            assert app.of(RunStateChanged) == [] and app.store.runs(10) == []
            assert [n.message for n in app._notifications] == ["not run: its host access was not allowed"]

            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, AllowHostAccess), what="the dialog again")
            await pilot.click("#allow")
            ended = await run_finished(pilot, app)
            assert ended.status == "success", status_line(app)
            assert (outside / "f").read_text() == "allowed\n"
    finally:
        for run_id in run_ids(app):
            remove_run_leftovers(run_id)


@pytest.mark.docker
async def test_a_run_with_a_short_secret_warns_that_it_is_masked_only_as_a_word(
    tmp_path: Path, engine: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PANE_SHORT_SECRET", "x")
    plan = write_plan(tmp_path, """
        version: 1
        name: short-secret
        secrets: [PANE_SHORT_SECRET]
        env: {image: "glmtui/does-not-exist:never"}
        steps:
          - id: only
            run: echo never
        """)
    app = PaneApp(tmp_path, plan, engine=engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            await pilot.press("enter")
            await run_finished(pilot, app)
            warnings = [n.message for n in app._notifications if n.severity == "warning"]
            assert warnings == ["secret PANE_SHORT_SECRET is 1 character: too short to hide safely inside other "
                                "text; it is masked only as a whole word"]
    finally:
        for run_id in run_ids(app):
            remove_run_leftovers(run_id)


async def test_run_without_an_engine_says_so(tmp_path: Path) -> None:
    app = PaneApp(tmp_path, HELLO, engine=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert [n.message for n in app._notifications] == ["no Docker engine: start Docker, then run the plan again"]
        assert app.of(RunStateChanged) == []
