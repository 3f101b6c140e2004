"""A chat with an agent in one environment, saved as it goes: what the TUI's chat pane and
`glmtui chat` drive. The conversation reopens where it was (the latest of the environment)."""

from __future__ import annotations

from typing import Any

from glmtui.agent import providers
from glmtui.agent.approval import Approver, Policy
from glmtui.agent.client import ModelClient, Usage
from glmtui.agent.loop import Agent, AgentResult, system_prompt
from glmtui.conversations import Conversation, Conversations
from glmtui.events import Event, Sink
from glmtui.events import Usage as UsageEvent
from glmtui.masking import Masker


class ChatSession:
    def __init__(self, agent: Agent, client: ModelClient, conversation: Conversation, history: Conversations) -> None:
        self.agent = agent
        self.client = client
        self.conversation = conversation
        self._history = history

    @classmethod
    async def open(
        cls,
        *,
        engine: Any,
        store: Any,
        config: Any,
        environment: str,
        sink: Sink,
        approver: Approver | None,
        provider: str | None = None,
        model: str | None = None,
        conversation_id: str | None = None,
        new: bool = False,
    ) -> ChatSession:
        """The environment's latest conversation (or `conversation_id`, or a new one)."""
        from glmtui.agent.tools import Toolbox

        history = Conversations(store)
        env = await engine.get_environment(environment)
        chosen: Conversation | None = None
        if conversation_id:
            chosen = history.get(conversation_id)
        elif not new:
            chosen = history.latest(environment)
        chosen_provider = providers.resolve(config, provider or (chosen.provider if chosen else None),
                                            model or (chosen.model if chosen else None))
        api_key = chosen_provider.api_key()
        client = ModelClient(chosen_provider, api_key=api_key)
        if chosen is None:
            chosen = history.start(environment, chosen_provider.name, chosen_provider.model)
        elif (chosen.provider, chosen.model) != (chosen_provider.name, chosen_provider.model):
            history.set_model(chosen, chosen_provider.name, chosen_provider.model)
        toolbox = Toolbox(engine, environment, workdir=env.workdir)
        conversation = chosen

        def record(event: Event) -> None:
            if isinstance(event, UsageEvent):
                history.add_usage(conversation.id, event.input_tokens, event.output_tokens)
                conversation.input_tokens += event.input_tokens
                conversation.output_tokens += event.output_tokens
            sink(event)

        agent = Agent(
            client, toolbox,
            system=system_prompt(toolbox, environment=environment, image=env.image, workdir=env.workdir),
            policy=Policy.from_config(config.get("approval"), config.get("approval_rules") or []),
            sink=record, approver=approver, step="chat", model=chosen_provider.model,
            max_turns=config.get("max_turns"), masker=Masker([api_key]),
            messages=history.messages(conversation.id) or None,
            usage=Usage(conversation.input_tokens, conversation.output_tokens),
            on_message=lambda message: history.append(conversation.id, message),
        )
        if len(agent.messages) == 1:  # a new conversation: its system prompt is saved too
            history.append(conversation.id, agent.messages[0])
        return cls(agent, client, conversation, history)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.agent.messages

    async def send(self, text: str) -> AgentResult:
        return await self.agent.send(text)

    async def close(self) -> None:
        await self.client.close()
