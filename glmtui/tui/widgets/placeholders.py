"""The agents and chat panes: present and focusable; the agents work fills them."""

from __future__ import annotations

from textual.widgets import Static

NO_PROVIDER = (
    "no model provider configured.\n"
    "set one: glmtui config set providers.zai.api_key_env ZAI_API_KEY && glmtui config set default_provider zai"
)


class AgentsPane(Static, can_focus=True):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("no saved agents yet", id=id)
        self.border_title = "Agents"


class ChatPane(Static, can_focus=True):
    def __init__(self, provider: str | None, *, id: str | None = None) -> None:
        super().__init__(NO_PROVIDER if provider is None else f"provider {provider}: chat arrives with the agents work", id=id)
        self.border_title = "Chat"
        self.border_subtitle = provider or "no provider"
