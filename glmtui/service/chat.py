"""Chat turns: one message to the agent of a conversation, as work of the service.

A `ChatTurn` sends one message and follows the agent until it answers; its events are the
agent's (Token, ToolCall, ToolResult, Usage, ModelRetry, and ApprovalAsked when the approval
policy asks), after a TurnStarted (the conversation, its provider and model: from then on the
message is the conversation's) and before a TurnFinished. `cancel()` stops the reply and keeps
what was said (glmtui.agent.loop).

The conversation's ChatSession (glmtui.agent.session: the model client and the agent, with its
messages and the "always" answers of its approvals) is opened by its first turn and kept by
`Chats` for the next ones, the SESSIONS most recently used; one turn at a time per conversation.
"""

from __future__ import annotations

import collections
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from glmtui.errors import BadInput, Conflict
from glmtui.events import Event, TurnFinished, TurnStarted
from glmtui.service.work import Work

SESSIONS = 8  # conversations whose session (and model client) stays open between turns


@dataclass
class _Open:
    """An open session, and the turn its agent reports to now."""

    key: tuple[Any, ...]  # what it was opened for: engine, environment, provider and model asked
    session: Any  # glmtui.agent.session.ChatSession
    turn: ChatTurn


class ChatTurn(Work):
    kind: ClassVar[str] = "chat"

    def __init__(self, chats: Chats, *, environment: str, text: str, conversation_id: str | None = None,
                 provider: str | None = None, model: str | None = None, engine: str | None = None) -> None:
        """`conversation_id` None: a new conversation. `provider`, `model`: None for the
        conversation's own (or the config's default, for a new one). `engine`: the one the
        environment is on (None: the service's own)."""
        super().__init__(f"chat-{uuid.uuid4().hex[:12]}")
        self.chats = chats
        self.environment, self.text = environment, text
        self.conversation_id, self.provider, self.model = conversation_id, provider, model
        self.engine = engine
        self.result: Any = None  # glmtui.agent.loop.AgentResult

    @property
    def title(self) -> str:
        return f"chat in {self.environment}"

    async def _work(self) -> Any:
        session = await self.chats.session_for(self)
        conversation, provider = session.conversation, session.client.provider
        self.conversation_id = conversation.id
        self.status = "running"
        self.emit(TurnStarted(conversation.id, self.environment, provider.name, provider.model,
                              conversation.input_tokens, conversation.output_tokens))
        self.result = await session.send(self.text)
        self.emit(TurnFinished(self.result.finished, self.result.reason))
        self.status = "success"
        return self.result


class Chats:
    """The open chat sessions of a service, by conversation."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self._open: collections.OrderedDict[str, _Open] = collections.OrderedDict()  # least recently used first
        self._closing: list[Any] = []  # sessions to close, at the next turn or at the end

    async def session_for(self, turn: ChatTurn) -> Any:
        """The turn's conversation's session, opened if it is not (or was for another model),
        its agent reporting to `turn` from now on."""
        await self._close_dropped()
        engine = await self.service.engine_for(turn.engine)
        env = await engine.get_environment(turn.environment)
        if not env.running:
            raise BadInput(f"{turn.environment} is {env.status}: start it first",
                           hint=f"glmtui env start {turn.environment}")
        key = (engine.name, turn.environment, turn.provider, turn.model)
        opened = self._open.get(turn.conversation_id or "")
        if opened is not None and opened.key == key:
            self._open.move_to_end(turn.conversation_id)  # type: ignore[arg-type]
            opened.turn = turn
            return opened.session
        if opened is not None:
            self._drop(turn.conversation_id)  # type: ignore[arg-type]
        from glmtui.agent.session import ChatSession  # the model SDK: only once a message is sent

        holder: list[_Open] = []

        def sink(event: Event) -> None:
            holder[0].turn.emit(event)

        async def approver(request: Any) -> str:
            return await holder[0].turn.ask(request)

        session = await ChatSession.open(
            engine=engine, store=self.service.store, config=self.service.config, environment=turn.environment,
            sink=sink, approver=approver, provider=turn.provider, model=turn.model,
            conversation_id=turn.conversation_id, new=turn.conversation_id is None,
        )
        holder.append(_Open(key, session, turn))
        self._open[session.conversation.id] = holder[0]
        while len(self._open) > SESSIONS:
            oldest = next(iter(self._open))
            if not self._open[oldest].turn.finished:
                break
            self._drop(oldest)
        return session

    async def undo(self, conversation_id: str) -> Any:
        """The workspace of the conversation back to before its last turn that changed files (a
        glmtui.checkpoints Rollback); None when no turn since its session opened changed any."""
        opened = self._open.get(conversation_id)
        if opened is None:
            return None
        if not opened.turn.finished:
            raise Conflict(f"conversation {conversation_id} is still replying to a message",
                           hint="stop that reply first (esc)")
        return await opened.session.undo()

    def _drop(self, conversation_id: str) -> None:
        self._closing.append(self._open.pop(conversation_id).session)

    async def _close_dropped(self) -> None:
        closing, self._closing = self._closing, []
        for session in closing:
            try:
                await session.close()
            except Exception:  # noqa: BLE001 - a client that will not close cleanly is gone anyway
                pass

    async def close(self) -> None:
        """Close every session (their turns have ended: the service cancelled them first)."""
        for conversation_id in list(self._open):
            self._drop(conversation_id)
        await self._close_dropped()
