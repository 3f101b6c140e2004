"""The agents pane: present and focusable; saved scheduled agents fill it in a later issue.

ChatPane lives in glmtui.tui.widgets.chat; it is named here too for code that looks for it here.
"""

from __future__ import annotations

from textual.widgets import Static

from glmtui.tui.widgets.chat import ChatPane

__all__ = ["AgentsPane", "ChatPane"]


class AgentsPane(Static, can_focus=True):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("no saved agents yet", id=id)
        self.border_title = "Agents"
