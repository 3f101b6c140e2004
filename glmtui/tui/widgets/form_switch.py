"""A form's on/off field: a switch that says `on` or `off` beside it (not only by colour), where
`space` toggles and `enter` is the form's (it applies the form, as in a text field)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Label, Switch


class FormSwitch(Horizontal):
    DEFAULT_CSS = """
    FormSwitch {
        height: auto;
    }
    FormSwitch Label {
        padding: 1 1;
    }
    """

    class Toggle(Switch):
        BINDINGS = [Binding("space", "toggle_switch", "Toggle", show=False),
                    Binding("enter", "screen.apply", "Apply", show=False)]

    def __init__(self, value: bool, *, id: str, classes: str | None = None) -> None:
        super().__init__(id=f"{id}-row")
        self._switch = self.Toggle(value=value, id=id, classes=classes)

    def compose(self) -> ComposeResult:
        yield self._switch
        yield Label(self._word(self._switch.value), id=f"{self._switch.id}-state")

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one(Label).update(self._word(event.value))

    @staticmethod
    def _word(value: bool) -> str:
        return "on" if value else "off"
