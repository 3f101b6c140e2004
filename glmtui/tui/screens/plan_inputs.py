"""The plan's inputs as a form: one field per input, validated the way `--input K=V` is.

The form takes the plan the pane has built and hands back the inputs as texts (what
`--input` would give); it binds that plan to them to validate (no file is read again),
so the form and the command line agree on every rule. Secrets are only listed as set or
not set, never shown.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, Switch

from glmtui.tui.widgets.form_switch import FormSwitch
from glmtui.errors import GlmtuiError
from glmtui.plan.model import InputSpec, Plan, PlanInvalid, Workflow

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")
_INPUT_NAMED = re.compile(r"input '([^']+)'")


def value_text(value: Any) -> str:
    """A value as the text `--input` takes for it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


class PlanInputsScreen(ModalScreen[dict[str, str] | None]):
    """Edit a plan's inputs; dismissed with the inputs as texts (None when cancelled)."""

    CSS_PATH = "plan.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="plan_inputs.cancel"),
        Binding("ctrl+s", "apply", "Apply", id="plan_inputs.apply"),
    ]

    def __init__(
        self,
        *,
        plan: Plan,
        workflow: Workflow | None,
        given: dict[str, str],
        secrets: list[tuple[str, bool]],
        title: str = "",
    ) -> None:
        """The inputs of `plan` and of `workflow` (None: the plan's own only, when it has several
        workflows and none is the default)."""
        super().__init__(classes="plan-modal")
        self.plan = plan
        self.workflow = workflow
        self.fields: list[InputSpec] = list({**plan.inputs, **(workflow.inputs if workflow else {})}.values())
        self.given = dict(given)
        self.secrets = secrets
        self.title_text = title
        self._ids = {field.name: f"input-{_NOT_ID.sub('_', field.name)}" for field in self.fields}

    def compose(self) -> ComposeResult:
        with Vertical(classes="plan-dialog", id="inputs-dialog"):
            yield Label(f"Inputs of {self.title_text}" if self.title_text else "Inputs", classes="plan-dialog-title")
            with VerticalScroll(id="inputs-fields"):
                if not self.fields:
                    yield Static(Text("this plan takes no inputs", style="dim"))
                for field in self.fields:
                    yield Label(self._label(field), classes="input-label")
                    if field.description:
                        yield Static(Text(field.description.strip()), classes="input-help")
                    text = self.given.get(field.name, value_text(field.default))
                    if field.type == "boolean":
                        value = text.strip().lower() in ("true", "yes", "1")
                        yield FormSwitch(value, id=self._ids[field.name], classes="input-field")
                    else:
                        yield Input(value=text, placeholder=_placeholder(field), id=self._ids[field.name],
                                    classes="input-field")
                if self.secrets:
                    yield Label(Text("secrets", style="bold"), classes="input-label")
                    for name, is_set in self.secrets:
                        line = Text(f"{name}: ")
                        line.append("set" if is_set else "not set", style="green" if is_set else "bold red")
                        yield Static(line, classes="input-help")
            yield Static("", id="inputs-errors")
            with Horizontal(id="inputs-buttons"):
                yield Button("Apply", variant="primary", id="inputs-apply")
                yield Button("Cancel", id="inputs-cancel")
            yield Label("enter or ctrl+s applies · space switches · esc cancels", classes="plan-dialog-help")

    def on_mount(self) -> None:
        fields = self.query(".input-field")
        if fields:
            fields.first().focus()

    @staticmethod
    def _label(field: InputSpec) -> Text:
        text = Text(field.name, style="bold")
        text.append(f"  {field.type}", style="cyan")
        if field.default is not None:
            text.append(f" · default {value_text(field.default)}", style="dim")
        elif field.required:
            text.append(" · required", style="yellow")
        return text

    def widget_for(self, name: str) -> Input | Switch:
        """The field of input `name`."""
        return self.query_one(f"#{self._ids[name]}")  # type: ignore[return-value]

    def values(self) -> dict[str, str]:
        """The inputs to give: those set before, required ones, and any that differ from the default."""
        out = {}
        for field in self.fields:
            widget = self.widget_for(field.name)
            if isinstance(widget, Switch):
                text = "true" if widget.value else "false"
            else:
                text = widget.value
            if field.required and field.default is None and not text and field.type != "boolean":
                continue  # left empty: bind_plan says it is required
            if field.name in self.given or field.required or text != value_text(field.default):
                out[field.name] = text
        return out

    def action_apply(self) -> None:
        from glmtui.plan.validate import bind_plan

        texts = self.values()
        errors: list[str] = []
        workflow = self.workflow.name if self.workflow and len(self.plan.workflows) > 1 else None
        try:
            bind_plan(self.plan, workflow=workflow, inputs=texts, check_secrets=False)
        except PlanInvalid as err:
            errors = [str(e) for e in err.errors if "input" in e.message]
        except GlmtuiError as err:
            errors = [str(err)]
        if errors:
            shown = Text("\n".join(errors), style="red")
            self.query_one("#inputs-errors", Static).update(shown)
            self._point_at(errors)
            return
        self.dismiss(texts)

    def _point_at(self, errors: list[str]) -> None:
        """The first field an error names gets the focus, its cursor after its text (typing adds to
        the value rather than landing before it)."""
        for error in errors:
            named = _INPUT_NAMED.search(error)
            if named is not None and named.group(1) in self._ids:
                field = self.widget_for(named.group(1))
                field.focus()
                if isinstance(field, Input):
                    field.cursor_position = len(field.value)
                return

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "inputs-apply":
            self.action_apply()
        else:
            self.action_cancel()


def _placeholder(field: InputSpec) -> str:
    return {
        "integer": "a whole number",
        "number": "a number",
        "list": "a list: [a, b] (JSON or YAML)",
        "object": "an object: {a: 1} (JSON or YAML)",
    }.get(field.type, "text")
