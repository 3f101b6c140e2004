"""`?`: every binding of the focused pane and of the app."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss(None)", "Close", id="help.close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        lines = ["[b]glmtui keys[/b]   (esc closes; ctrl+p finds any action by name)", ""]
        for title, bindings in self.sections:
            lines.append(f"[b]{title}[/b]")
            lines += [f"  [reverse] {key} [/reverse]  {description}" for key, description in bindings]
            lines.append("")
        with VerticalScroll(classes="dialog help"):
            yield Static("\n".join(lines))


def binding_rows(bindings: list[Binding], details: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(key, description) of each binding with a description, once each; `details` (action ->
    text) adds a longer explanation after the description."""
    rows, seen = [], set()
    for binding in bindings:
        if binding.description and binding.description not in seen:
            seen.add(binding.description)
            detail = (details or {}).get(binding.action)
            description = f"{binding.description} — {detail}" if detail else binding.description
            rows.append((key_text(binding.key), description))
    return rows


def key_text(key: str) -> str:
    """A binding's key as a user reads it: `?` and `/`, not question_mark and slash."""
    return key.replace("question_mark", "?").replace("slash", "/")
