"""Screens of the chat pane: the provider and model (ctrl+t), a saved conversation (ctrl+o),
the environment the agent works in (ctrl+l), the file a conversation is exported to (ctrl+s)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from glmtui.errors import GlmtuiError
from glmtui.render import age, tokens_text
from glmtui.tui.screens.filter_screen import FilterScreen


class ConversationPicker(FilterScreen[str]):
    """The environment's saved conversations, newest first; enter reopens one."""

    TITLE_TEXT = "Conversations"
    PLACEHOLDER = "filter by title, id or model"

    def __init__(self, conversations: list[Any], environment: str, current: str | None) -> None:
        super().__init__()
        self.conversations = conversations
        self.current = current
        self.TITLE_TEXT = f"Conversations in {environment}"
        self.EMPTY_TEXT = f"no saved conversations in {environment} yet: send a message to start one"

    def entries(self) -> list[tuple[str, str, str]]:
        now = datetime.now(timezone.utc)
        out = []
        for conversation in self.conversations:
            when = age(datetime.fromtimestamp(conversation.updated, timezone.utc), now)
            tokens = tokens_text(conversation.input_tokens + conversation.output_tokens)
            mark = "● " if conversation.id == self.current else "  "
            out.append((f"{mark}{conversation.title or '(no message yet)'}", conversation.id,
                        f"{conversation.id} · {conversation.model} · {tokens} tokens · {when}"))
        return out

    def decorate(self, rendered: Text, value: str) -> None:
        if value == self.current:
            rendered.stylize("green", 0, 1)


class EnvironmentPicker(FilterScreen[str]):
    """The environments (as last listed), with their status; enter chats in the one picked."""

    TITLE_TEXT = "Chat in which environment?"
    PLACEHOLDER = "filter by name"
    EMPTY_TEXT = "no environments: n in the environments pane creates one"

    def __init__(self, statuses: dict[str, str], current: str | None) -> None:
        super().__init__()
        self.statuses = statuses
        self.current = current

    def entries(self) -> list[tuple[str, str, str]]:
        return [(f"{'● ' if name == self.current else '  '}{name}", name, status)
                for name, status in self.statuses.items()]

    def decorate(self, rendered: Text, value: str) -> None:
        if value == self.current:
            rendered.stylize("green", 0, 1)


class ModelPicker(ModalScreen[tuple[str, str] | None]):
    """The configured providers and the presets, each with its model and whether its key is set;
    enter picks the highlighted one with the model in the model field."""

    CSS_PATH = "plan.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="chat.model.close")]

    def __init__(self, config: Any, provider: str | None, model: str | None) -> None:
        super().__init__(classes="plan-modal")
        self.config = config
        self.current = provider
        self.current_model = model
        self.rows: list[tuple[str, str, str]] = []  # name, model, what to say of it

    def compose(self) -> ComposeResult:
        with Vertical(classes="plan-dialog"):
            yield Label("Provider and model", classes="plan-dialog-title")
            yield OptionList(id="model-providers")
            yield Label("model", classes="input-label")
            yield Input(id="model-name", placeholder="the model's name at this provider")
            yield Label("enter picks · tab to the model field · esc closes · the key comes from the variable named",
                        classes="plan-dialog-help")

    def on_mount(self) -> None:
        from glmtui.agent import providers

        for name in providers.known(self.config.providers()):
            try:
                provider = providers.resolve(self.config, name)
            except GlmtuiError as err:
                model, state = "", str(err)
            else:
                model = provider.model
                if provider.api_key_env is None:
                    state = "no key needed"
                elif os.environ.get(provider.api_key_env):
                    state = f"key in {provider.api_key_env}"
                else:
                    state = f"{provider.api_key_env} is not set"
            self.rows.append((name, model, state))
        name_width = max((len(row[0]) for row in self.rows), default=0)
        model_width = max((len(row[1] or "(no model)") for row in self.rows), default=0)
        options = [
            Option(Text.assemble((name.ljust(name_width), "bold"), "  ",
                                 (model or "(no model)").ljust(model_width), "  ", (state, "dim")), id=name)
            for name, model, state in self.rows
        ]
        option_list = self.query_one(OptionList)
        option_list.add_options(options)
        names = [row[0] for row in self.rows]
        option_list.highlighted = names.index(self.current) if self.current in names else 0
        if self.current in names and self.current_model:
            self.query_one(Input).value = self.current_model
        option_list.focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        model = next((row[1] for row in self.rows if row[0] == event.option.id), "")
        if event.option.id == self.current and self.current_model:
            model = self.current_model
        self.query_one(Input).value = model

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._pick()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._pick()

    def _pick(self) -> None:
        option = self.query_one(OptionList).highlighted_option
        model = self.query_one(Input).value.strip()
        if option is None:
            return
        if not model:
            self.notify(f"{option.id} has no model: type one in the model field", severity="warning")
            self.query_one(Input).focus()
            return
        self.dismiss((str(option.id), model))


class ExportScreen(ModalScreen[str | None]):
    """Where to write the conversation as Markdown: `<id>.md` in the current folder, or a path."""

    CSS_PATH = "plan.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="chat.export.close")]

    def __init__(self, default: str) -> None:
        super().__init__(classes="plan-modal")
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="plan-dialog"):
            yield Label("Export the conversation as Markdown", classes="plan-dialog-title")
            yield Input(self.default, id="export-path")
            yield Label(f"a file, or a folder (then {self.default} in it); relative to {os.getcwd()}",
                        classes="plan-dialog-help")
            yield Label("enter writes · esc closes", classes="plan-dialog-help")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if value:
            self.dismiss(value)
