"""Before a plan that declares host access runs: what it asks for, and the person's answer."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class AllowHostAccess(ModalScreen[bool]):
    """The plan's permissions, listed; True when the person allows them and the run may start."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel", id="permissions.cancel")]

    def __init__(self, plan_name: str, asks: list[str]) -> None:
        super().__init__()
        self.plan_name, self.asks = plan_name, asks

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="allow-host-access"):
            yield Label(f"Plan [b]{escape(self.plan_name)}[/b] asks for access to the host:")
            yield Static("\n".join(f"• {escape(ask)}" for ask in self.asks), classes="asks")
            yield Label("Allow it only for a plan you trust: its steps get this access as they run.")
            with Horizontal(classes="buttons"):
                yield Button("Allow and run", variant="error", id="allow")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # enter alone must not agree

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "allow")
