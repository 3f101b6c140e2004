"""Saved agent conversations (chat), per environment, in the same SQLite file as the runs.

A conversation is its messages in the model's own format (OpenAI chat messages), appended as
they are said, so a conversation reopens where it was, also after glmtui was killed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from glmtui.errors import NotFound
from glmtui.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS conversations_environment ON conversations(environment, updated);
"""


@dataclass
class Conversation:
    id: str
    environment: str
    provider: str
    model: str
    title: str
    created: float
    updated: float
    input_tokens: int = 0
    output_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Conversations:
    def __init__(self, store: Store) -> None:
        self._db = store.connection
        self._db.executescript(_SCHEMA)

    def start(self, environment: str, provider: str, model: str) -> Conversation:
        now = time.time()
        conversation = Conversation(uuid.uuid4().hex[:12], environment, provider, model, "", now, now)
        self._db.execute(
            "INSERT INTO conversations (id, environment, provider, model, title, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conversation.id, environment, provider, model, "", now, now),
        )
        return conversation

    def append(self, conversation_id: str, message: dict[str, Any]) -> None:
        now = time.time()
        (seq,) = self._db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()
        self._db.execute(
            "INSERT INTO messages (conversation_id, seq, message, created) VALUES (?, ?, ?, ?)",
            (conversation_id, seq, json.dumps(message, ensure_ascii=False), now),
        )
        self._db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
        if message.get("role") == "user" and isinstance(message.get("content"), str):  # the first one names it
            self._db.execute("UPDATE conversations SET title = ? WHERE id = ? AND title = ''",
                             (_title(message["content"]), conversation_id))

    def set_model(self, conversation: Conversation, provider: str, model: str) -> None:
        """The conversation goes on with another provider or model (and reopens with it)."""
        conversation.provider, conversation.model = provider, model
        self._db.execute("UPDATE conversations SET provider = ?, model = ? WHERE id = ?",
                         (provider, model, conversation.id))

    def add_usage(self, conversation_id: str, input_tokens: int, output_tokens: int) -> None:
        self._db.execute(
            "UPDATE conversations SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ? WHERE id = ?",
            (input_tokens, output_tokens, conversation_id),
        )

    def list(self, environment: str | None = None, limit: int = 100) -> list[Conversation]:
        where, params = ("WHERE environment = ?", (environment,)) if environment else ("", ())
        rows = self._db.execute(
            f"SELECT id, environment, provider, model, title, created, updated, input_tokens, output_tokens"
            f" FROM conversations {where} ORDER BY updated DESC LIMIT ?", (*params, limit),
        ).fetchall()
        return [Conversation(*row) for row in rows]

    def latest(self, environment: str) -> Conversation | None:
        found = self.list(environment, limit=1)
        return found[0] if found else None

    def get(self, conversation_id: str) -> Conversation:
        rows = self._db.execute(
            "SELECT id, environment, provider, model, title, created, updated, input_tokens, output_tokens"
            " FROM conversations WHERE id = ? OR substr(id, 1, length(?)) = ?",  # a prefix, taken literally
            (conversation_id, conversation_id, conversation_id),
        ).fetchall()
        if len(rows) != 1:
            raise NotFound(f"no conversation {conversation_id!r}" if not rows else
                           f"{conversation_id!r} names {len(rows)} conversations", hint="glmtui chats")
        return Conversation(*rows[0])

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT message FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def timed_messages(self, conversation_id: str, after: int = 0) -> list[tuple[int, float, dict[str, Any]]]:
        """(number, time said, message) of the messages after number `after`, in order."""
        rows = self._db.execute(
            "SELECT seq, created, message FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq",
            (conversation_id, after),
        ).fetchall()
        return [(seq, created, json.loads(message)) for seq, created, message in rows]

    def remove(self, conversation_id: str) -> None:
        self._db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
        self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def markdown(self, conversation_id: str) -> str:
        """The conversation as a Markdown document (the system prompt left out)."""
        conversation = self.get(conversation_id)
        lines = [
            f"# {conversation.title or 'Conversation'}",
            "",
            f"Environment `{conversation.environment}` · {conversation.provider} · {conversation.model} · "
            f"{conversation.input_tokens:,} tokens in, {conversation.output_tokens:,} out",
        ]
        for message in self.messages(conversation.id):
            part = _markdown_of(message)
            if part:
                lines += ["", *part]
        return "\n".join(lines) + "\n"


def _title(content: str) -> str:
    first = content.strip().splitlines()[0] if content.strip() else ""
    return first[:80]


def _markdown_of(message: dict[str, Any]) -> list[str]:
    role = message.get("role")
    content = message.get("content") or ""
    if role == "system":
        return []
    if role == "user":
        return ["## You", "", content]
    if role == "tool":
        fence = _fence(content)
        return ["<details><summary>tool result</summary>", "", fence, content, fence, "", "</details>"]
    lines = ["## Agent", "", content] if content else ["## Agent"]
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        arguments = function.get("arguments", "")
        fence = _fence(arguments)
        lines += ["", f"**{function.get('name', '?')}**", "", f"{fence}json", arguments, fence]
    return lines


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in the text, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
