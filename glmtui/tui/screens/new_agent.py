"""`n` in the agents pane (and ctrl+a in the chat): a form for a new saved agent.

The form writes an agent file's text (glmtui.service.definition) and checks it as `glmtui agents
apply` checks a file, with the same messages; the screen closes with the checked agent only
when it has none, and the agents pane saves the file and applies it. The schedule's next three
fire times (or why it does not parse) show as it is typed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from glmtui.errors import BadInput, GlmtuiError

NEW_ENVIRONMENT = "+new"  # the environment choice "a new environment from an image" (no name starts with +)
HEADER = "# made in the glmtui TUI (n in the agents pane); after a change: glmtui agents apply {file}\n"


@dataclass(frozen=True)
class AgentDraft:
    """What the form starts with: empty for `n`, the conversation's for ctrl+a in the chat."""

    prompt: str = ""
    environment: str | None = None
    provider: str | None = None
    model: str | None = None


class NewAgent(ModalScreen[Any]):
    """Returns the checked agent (glmtui.service.definition.AgentDefinition), or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="new_agent.cancel")]

    def __init__(self, *, config: Any, environments: list[str], images: list[str], folder: Path,
                 exists: Callable[[str], bool], draft: AgentDraft | None = None) -> None:
        super().__init__()
        self.config = config
        self.environments = environments
        default = config.get("default_image")
        self.images = [default, *(image for image in images if image != default)]
        self.folder = folder  # where the agent's file goes: FOLDER/NAME.yaml
        self.exists = exists
        self.draft = draft or AgentDraft()

    def compose(self) -> ComposeResult:
        from glmtui.agent import providers

        draft, config = self.draft, self.config
        choices = [(name, name) for name in self.environments] + [("a new environment from an image…", NEW_ENVIRONMENT)]
        environment = draft.environment if draft.environment in self.environments else (
            self.environments[0] if self.environments else NEW_ENVIRONMENT)
        default_provider = config.get("default_provider")
        provider_choices = [(f"the default ({default_provider or 'none set'})", "")]
        provider_choices += [(name, name) for name in providers.known(config.providers())]
        provider = draft.provider if draft.provider in providers.known(config.providers()) else ""
        with VerticalScroll(classes="dialog form agent-form"):
            yield Label("[b]New agent[/b]  a task for a model, run by hand (x) or on a schedule")
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("name")
                    yield Input(placeholder="e.g. nightly-tests", id="name")
                with Vertical():
                    yield Label("environment")
                    yield Select(choices, value=environment, allow_blank=False, id="environment")
            with Horizontal(classes="row", id="new-environment"):
                with Vertical():
                    yield Label("image")
                    yield Select([(image, image) for image in self.images], value=self.images[0], allow_blank=False,
                                 id="image")
                with Vertical():
                    yield Label("its name (empty: a throw-away one per execution)")
                    yield Input(placeholder="made on first use, then reused", id="env-name")
            yield Label("prompt: the task, the first message of every execution")
            yield TextArea(draft.prompt, id="prompt", soft_wrap=True, show_line_numbers=False)
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("provider")
                    yield Select(provider_choices, value=provider, allow_blank=False, id="provider")
                with Vertical():
                    yield Label("model")
                    yield Input(draft.model or "", id="model")
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("schedule (empty: by hand only)")
                    yield Input(placeholder="0 8 * * mon · @daily · every 30m", id="schedule")
                with Vertical():
                    yield Label("time zone")
                    yield Input(placeholder="the machine's", id="timezone")
            yield Static("", id="next-runs")
            with Horizontal(classes="row"):
                with Vertical(classes="narrow"):
                    yield Label("approval")
                    yield Select([(mode, mode) for mode in ("auto", "ask", "deny")], value=config.get("approval"),
                                 allow_blank=False, id="approval")
                with Vertical():
                    yield Label("approval rules")
                    yield Input(placeholder='[{tool: bash, pattern: "rm *", mode: deny}]', id="rules")
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._show_environment_fields()
        self._show_model_placeholder()
        self._show_next_runs()
        self.query_one("#name", Input).focus()

    # -- as the form is filled -----------------------------------------------------------------

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "environment":
            self._show_environment_fields()
        elif event.select.id == "provider":
            self._show_model_placeholder()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("schedule", "timezone"):
            self._show_next_runs()

    def _show_environment_fields(self) -> None:
        self.query_one("#new-environment").display = self._value("environment") == NEW_ENVIRONMENT

    def _show_model_placeholder(self) -> None:
        from glmtui.agent import providers

        try:
            model = providers.resolve(self.config, self._value("provider") or None).model
        except GlmtuiError:
            model = None
        self.query_one("#model", Input).placeholder = f"the provider's ({model})" if model else "the provider's"

    def _show_next_runs(self) -> None:
        """The schedule in words and its next three fire times, or why it does not parse."""
        from glmtui.service.schedule import parse_schedule

        shown = self.query_one("#next-runs", Static)
        text = self._value("schedule")
        if not text:
            shown.update(Text("no schedule: it runs when you start it (x in the agents pane)", style="dim"))
            shown.set_class(False, "-error")
            return
        try:
            schedule = parse_schedule(text, self._value("timezone") or None)
            times = schedule.upcoming(time.time(), 3)
        except BadInput as err:
            shown.update(Text(str(err)))
            shown.set_class(True, "-error")
            return
        shown.set_class(False, "-error")
        when = "  ·  ".join(f"{schedule.local(t):%a %Y-%m-%d %H:%M:%S}" for t in times)
        shown.update(Text.assemble((schedule.describe(), "bold"), "\nnext  ", when))

    # -- saving --------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self) -> None:
        from glmtui.plan.model import PlanInvalid

        try:
            definition = self.definition()
        except PlanInvalid as err:
            self._error("\n".join(error.message for error in err.errors))
            return
        except BadInput as err:
            self._error(str(err))
            return
        self.dismiss(definition)

    def _error(self, text: str) -> None:
        self.query_one("#error", Static).update(Text(text))
        self.query_one("#error").scroll_visible()

    def definition(self) -> Any:
        """The agent the form describes, checked as `agents apply` checks its file (PlanInvalid
        with every problem), with the text its file will have."""
        from glmtui.service.definition import check_agent

        name = self._value("name")
        file = (self.folder / f"{name or 'agent'}.yaml").resolve()
        source = HEADER.format(file=file) + agent_yaml(self.data())
        definition = check_agent(source, file, self.config)
        if self.exists(definition.name):
            raise BadInput(f"agent {definition.name} exists already: pick another name")
        return definition

    def data(self) -> dict[str, Any]:
        """The agent file's keys from the fields (empty ones left out, so defaults apply)."""
        data: dict[str, Any] = {"version": 1, "name": self._value("name"), "prompt": self.query_one(TextArea).text}
        if self._value("environment") == NEW_ENVIRONMENT:
            env = {"image": self._value("image")}
            if self._value("env-name"):
                env = {"name": self._value("env-name"), **env}
            data["env"] = env
        else:
            data["env"] = self._value("environment")
        for key in ("provider", "model"):
            if self._value(key):
                data[key] = self._value(key)
        data["approval"] = self._value("approval")
        rules = self._value("rules")
        if rules:
            try:
                data["approval_rules"] = yaml.safe_load(rules)
            except yaml.YAMLError as err:
                raise BadInput(f"approval rules: not YAML ({' '.join(str(err).split())[:120]})",
                               hint="a list of rules like [{tool: bash, pattern: 'rm *', mode: deny}]") from None
        for key in ("schedule", "timezone"):
            if self._value(key):
                data[key] = self._value(key)
        return data

    def _value(self, widget_id: str) -> str:
        return str(self.query_one(f"#{widget_id}").value or "").strip()


class _Dumper(yaml.SafeDumper):
    """Multi-line text (the prompt) as a literal block, as a person writes it."""


_Dumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def agent_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=None, width=1000)
