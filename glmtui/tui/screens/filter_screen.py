"""A picker: a title, a filter field and a list the filter narrows by fuzzy match; enter picks.
The plan pane's pickers (plans, past runs) and the chat's (conversations, environments) are ones."""

from __future__ import annotations

from typing import Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.fuzzy import FuzzySearch
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

T = TypeVar("T")


def _highlight(text: str, query: str, search: FuzzySearch) -> tuple[float, Text]:
    if not query:
        return 1.0, Text(text)
    score, offsets = search.match(query, text)
    rendered = Text(text)
    for offset in offsets:
        rendered.stylize("bold reverse", offset, offset + 1)
    return score, rendered


class FilterScreen(ModalScreen[T], Generic[T]):
    """A title, a filter Input and an OptionList; enter picks the highlighted option."""

    CSS_PATH = "plan.tcss"
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", id="plan_picker.close"),
        Binding("down", "move(1)", "Next", show=False, id="plan_picker.down"),
        Binding("up", "move(-1)", "Previous", show=False, id="plan_picker.up"),
    ]
    TITLE_TEXT = ""
    EMPTY_TEXT = "nothing here"
    PLACEHOLDER = "filter"

    def __init__(self) -> None:
        super().__init__(classes="plan-modal")
        self._search = FuzzySearch()
        self._values: dict[str, T] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="plan-dialog"):
            yield Label(self.TITLE_TEXT, classes="plan-dialog-title")
            yield Input(placeholder=self.PLACEHOLDER, id="picker-filter")
            yield OptionList(id="picker-options")
            yield Label("", id="picker-empty", classes="plan-dialog-help")
            yield Label("enter picks · esc closes", classes="plan-dialog-help")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#picker-filter", Input).focus()

    def entries(self) -> list[tuple[str, T, str]]:
        """(text to match, value, extra text shown after it)."""
        raise NotImplementedError

    def _fill(self, query: str) -> None:
        options = self.query_one("#picker-options", OptionList)
        scored = []
        for index, (text, value, extra) in enumerate(self.entries()):
            score, rendered = _highlight(text, query.strip(), self._search)
            if score <= 0:
                continue
            self.decorate(rendered, value)
            if extra:
                rendered.append("  " + extra, style="dim")
            scored.append((-score, index, rendered, value))
        scored.sort(key=lambda item: (item[0], item[1]))
        self._values = {}
        built = []
        for _, index, rendered, value in scored:
            key = f"o{index}"
            self._values[key] = value
            built.append(Option(rendered, id=key))
        options.set_options(built)
        if built:
            options.highlighted = 0
        empty = self.query_one("#picker-empty", Label)
        empty.update("" if built else (self.EMPTY_TEXT if not query else f"nothing matches {query!r}"))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one("#picker-options", OptionList)
        option = options.highlighted_option
        if option is not None and option.id in self._values:
            self.dismiss(self._values[option.id])
        else:
            self.submit_text(event.value)

    def decorate(self, rendered: Text, value: T) -> None:
        """Style an entry's text before it is shown."""

    def submit_text(self, text: str) -> None:
        """Enter with nothing highlighted."""

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id in self._values:
            self.dismiss(self._values[event.option.id])

    def action_move(self, delta: int) -> None:
        options = self.query_one("#picker-options", OptionList)
        if delta > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
