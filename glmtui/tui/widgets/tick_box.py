"""A checkbox that shows its state in text too: ✓ when ticked, empty when not (not only by colour)."""

from __future__ import annotations

from textual.widgets import Checkbox


class TickBox(Checkbox):
    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # Checkbox draws its state with this
        return "✓" if self.value else " "
