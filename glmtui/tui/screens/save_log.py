"""`ctrl+s` in the log pane: where to save the log, the data folder's logs/ offered first."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class SaveLog(ModalScreen[Path | None]):
    """The file to save the log to (an editable path); None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="save_log.cancel")]

    def __init__(self, offered: Path, timestamps: bool) -> None:
        super().__init__()
        self.offered, self.timestamps = offered, timestamps

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("[b]Save the log[/b] to" + (" (with the times shown)" if self.timestamps else ""))
            yield Input(str(self.offered), id="save-path")
            yield Label("enter saves · esc cancels", classes="help")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.focus()
        field.cursor_position = len(field.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        self.dismiss(Path(text).expanduser() if text else None)
