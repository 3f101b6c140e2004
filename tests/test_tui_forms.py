"""The TUI's forms as a user meets them: the inputs form, the new-environment form and the
remove dialog, driven by Pilot (no engine needed: nothing here reaches a container).

Enter in a form applies it, from a switch too; a switch says on or off and a checkbox shows ✓ in
text, not only by colour; after an error the field it names has the focus with its cursor after
its text, so typing goes on from the old value.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Input, Static

import helpers
from test_tui_plan_pane import PLAN_TCSS, PaneApp, rows, screen_text, wait_until

from glmtui.config import KEYS, Config
from glmtui.tui.screens.dialogs import ConfirmRemove
from glmtui.tui.screens.new_env import NewEnvironment
from glmtui.tui.screens.plan_inputs import PlanInputsScreen

HELLO = helpers.PROJECT_ROOT / "plans" / "hello.yaml"
MANY = helpers.PROJECT_ROOT / "tests" / "plans" / "many-inputs.yaml"


async def open_inputs(pilot, app: PaneApp) -> PlanInputsScreen:
    await pilot.press("i")
    return await wait_until(pilot, lambda: isinstance(app.screen, PlanInputsScreen) and app.screen, what="the form")


async def test_a_switch_says_on_or_off_space_flips_it_and_enter_applies_the_form(tmp_path: Path) -> None:
    app = PaneApp(tmp_path, HELLO)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        form = await open_inputs(pilot, app)
        form.widget_for("shout").focus()
        await pilot.pause()
        assert "off" in str(form.query_one("#input-shout-state").content)
        await pilot.press("space")
        await wait_until(pilot, lambda: str(form.query_one("#input-shout-state").content) == "on", what="on")
        assert form.widget_for("shout").value is True
        await pilot.press("enter")  # applies: the form closes with the switch as it is
        await wait_until(pilot, lambda: not isinstance(app.screen, PlanInputsScreen), what="the form applied")
        assert app.pane.input_texts == {"shout": "true"}
        assert "shout = true (boolean)" in screen_text(app)
        assert rows(app)["shout"][5] == "${inputs.shout}"


async def test_after_an_error_the_field_it_names_has_the_focus_and_typing_goes_on_at_its_end(
    tmp_path: Path,
) -> None:
    app = PaneApp(tmp_path, MANY)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        form = await open_inputs(pilot, app)
        form.widget_for("pages").value = "x1"
        form.widget_for("ratio").value = "0.5"
        await pilot.click("#inputs-apply")
        errors = form.query_one("#inputs-errors", Static)
        await wait_until(pilot, lambda: "input 'pages'" in str(errors.content), what="the error")
        pages = form.widget_for("pages")
        assert app.screen.focused is pages and pages.cursor_position == len("x1")
        await pilot.press("backspace", "backspace", "4", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, PlanInputsScreen), what="the form applied")
        assert app.pane.input_texts["pages"] == "4"


class FormApp(App):
    CSS_PATH = [str(PLAN_TCSS), str(helpers.PROJECT_ROOT / "glmtui" / "tui" / "app.tcss")]

    def __init__(self, screen) -> None:
        super().__init__()
        self.form = screen
        self.result = None

    def compose(self) -> ComposeResult:
        yield Static("")

    def on_mount(self) -> None:
        self.push_screen(self.form, callback=lambda result: setattr(self, "result", result))


def default_config() -> Config:
    values = {key: spec.default for key, spec in KEYS.items()}
    return Config(values, {key: "default" for key in values})


async def test_the_new_environment_form_puts_the_cursor_at_the_end_of_the_field_in_error() -> None:
    app = FormApp(NewEnvironment(["glmtui/busybox:latest"], default_config()))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause(0.2)
        form = app.form
        form.query_one("#name", Input).value = "demo"
        form.query_one("#cpus", Input).value = "two"
        await pilot.click("#create")
        await wait_until(pilot, lambda: "cpus: 'two' is not a number" in str(form.query_one("#error").content))
        cpus = form.query_one("#cpus", Input)
        assert form.focused is cpus and cpus.cursor_position == 3
        await pilot.press("backspace", "backspace", "backspace", "2", "enter")
        await wait_until(pilot, lambda: app.result is not None, what="the form done")
        assert (app.result.name, app.result.resources.cpus) == ("demo", 2)


async def test_the_remove_dialog_ticks_its_checkbox_in_text() -> None:
    app = FormApp(ConfirmRemove("demo"))
    async with app.run_test(size=(100, 20)) as pilot:
        await pilot.pause(0.2)
        box = app.form.query_one("#volume")
        assert "▐ ▌ also remove its workspace volume" in screen_text(app)
        box.focus()
        await pilot.press("space")
        await wait_until(pilot, lambda: "▐✓▌ also remove its workspace volume" in screen_text(app), what="✓")
