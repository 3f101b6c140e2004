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
    def __init__(self, agent: Agent, client: ModelClient, conversation: Conversation, history: Conversations,
                 checkpoints: Any) -> None:
        self.agent = agent
        self.client = client
        self.conversation = conversation
        self._history = history
        # Before each turn that changes files, a checkpoint of the workspace (ids, oldest first):
        # what /undo goes back to.
        self.checkpoints = checkpoints
        self.turn_checkpoints: list[str] = []
        agent.before_change = self._checkpoint

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
        from glmtui.docker.checkpoints import Checkpoints

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
        return cls(agent, client, conversation, history, Checkpoints(engine, environment))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.agent.messages

    async def send(self, text: str) -> AgentResult:
        return await self.agent.send(text)

    async def _checkpoint(self, text: str) -> None:
        said = self.agent.masker.mask(text.strip().splitlines()[0] if text.strip() else "")
        taken = await self.checkpoints.take(f"chat {self.conversation.id}: before {said[:60]!r}", reuse=True)
        self.turn_checkpoints.append(taken.id)

    async def undo(self) -> Any:
        """The workspace back to before the last turn that changed files (a `Rollback`, whose
        rescue checkpoint undoes it); None when no turn of this session changed files."""
        if not self.turn_checkpoints:
            return None
        done = await self.checkpoints.rollback(self.turn_checkpoints[-1])
        self.turn_checkpoints.pop()
        self.agent.tell(f"[glmtui: the user undid the changes of a turn: the workspace's files are back as they "
                        f"were at checkpoint {done.checkpoint.id}, before that turn. Look again before relying "
                        "on what you changed.]")
        return done

    async def close(self) -> None:
        await self.client.close()
