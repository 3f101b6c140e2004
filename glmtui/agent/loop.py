"""The agent: model turns and tool calls until the model answers without calling a tool.

Everything it does is reported to a sink as events (Token, ToolCall, ToolResult, Usage,
ModelRetry), so the chat pane, a plan step and the JSON output show the same thing. Cancelled
at any moment, it keeps what was said so far, and the conversation stays valid to continue:
every tool call the model made gets an answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from glmtui.agent.approval import READ_ONLY, Approver, Policy
from glmtui.agent.client import ModelClient, RetryNotice, ToolCallRequest, Usage
from glmtui.events import ModelRetry, Sink, Token, ToolCall, ToolResult
from glmtui.errors import GlmtuiError
from glmtui.events import Usage as UsageEvent
from glmtui.masking import Masker
from glmtui.units import counted

SYSTEM = """\
You are a coding agent working inside an isolated Docker container (an environment) that \
glmtui manages for the user. Environment: {environment}, image {image}, working directory \
{workdir}. You act only through your tools, and they act only inside this container: nothing \
you run touches the user's machine.
{tools}
Work in small steps: look before you change anything, make the change, then check it (run the \
tests or the program). When you are done, answer with a short summary of what you did and what \
is left, without calling a tool."""


class Tools(Protocol):
    """What the loop needs of glmtui.agent.tools.Toolbox."""

    names: tuple[str, ...]

    def schemas(self) -> list[dict[str, Any]]: ...

    async def call(self, name: str, arguments: dict[str, Any]) -> Any: ...

    def describe(self) -> str: ...


@dataclass
class AgentResult:
    text: str  # the final message
    turns: int
    usage: Usage
    finished: bool  # False: max_turns or the token budget was reached first
    reason: str | None = None


def system_prompt(toolbox: Tools, *, environment: str, image: str, workdir: str, extra: str | None = None) -> str:
    prompt = SYSTEM.format(environment=environment, image=image, workdir=workdir, tools=toolbox.describe())
    return f"{prompt}\n\n{extra}" if extra else prompt


class Agent:
    def __init__(
        self,
        client: ModelClient,
        toolbox: Tools,
        *,
        system: str,
        policy: Policy,
        sink: Sink,
        approver: Approver | None = None,
        step: str = "chat",
        model: str | None = None,
        max_turns: int = 30,
        budget: int | None = None,
        masker: Masker | None = None,
        messages: list[dict[str, Any]] | None = None,
        usage: Usage | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        before_change: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.toolbox = toolbox
        self.policy = policy
        self.sink = sink
        self.approver = approver
        self.step = step
        self.model = model
        self.max_turns = max_turns
        self.budget = budget  # tokens (in + out) one send() may spend; None: no limit
        self.masker = masker or Masker(())
        self.messages: list[dict[str, Any]] = messages if messages else [{"role": "system", "content": system}]
        self.usage = usage or Usage()
        self.turns = 0
        self.on_message = on_message
        # Awaited with the user's message before the first call of a send() that may change
        # files (a checkpoint); when it fails, that call is not run.
        self.before_change = before_change
        self._changing = asyncio.Lock()
        self._sent = ""
        self._checked_in = False  # before_change done for this send()
        self._asking = asyncio.Lock()  # parallel calls ask one at a time

    def _add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if self.on_message:
            self.on_message(message)

    async def send(self, text: str) -> AgentResult:
        """One user message, worked on until the model stops calling tools (or max_turns, or the
        token budget: the turn that reaches it ends with its tool calls, and no new turn starts).
        The same message again right after it got no answer (the model failed) is a retry: it
        is not said twice."""
        message = {"role": "user", "content": text}
        if self.messages[-1] != message:
            self._add(message)
        self._sent, self._checked_in = text, False
        before = self.usage
        last = ""
        for _ in range(self.max_turns):
            said: list[str] = []
            # A secret split across two deltas is still caught: one streaming masker per channel.
            text, thinking = self.masker.stream(), self.masker.stream()
            try:
                reply = await self.client.stream(
                    self.messages, tools=self.toolbox.schemas(), model=self.model,
                    on_text=lambda piece: self._token(text.feed(piece), "text", said),
                    on_reasoning=lambda piece: self._token(thinking.feed(piece), "reasoning", None),
                    on_retry=self._retry,
                )
            except asyncio.CancelledError:
                self._token(text.flush(), "text", said)
                if said:
                    self._add({"role": "assistant", "content": "".join(said) + "\n\n[stopped by the user]"})
                raise
            self._token(text.flush(), "text", said)
            self._token(thinking.flush(), "reasoning", None)
            self.turns += 1
            self._count(reply.usage)
            self._add(self.masker.mask_value(reply.as_message()))
            last = self.masker.mask(reply.content)
            if not reply.tool_calls:
                return AgentResult(last, self.turns, self.usage, finished=True)
            await self._run_calls(reply.tool_calls)
            spent = self.usage.input_tokens + self.usage.output_tokens - before.input_tokens - before.output_tokens
            if self.budget is not None and spent >= self.budget:
                return AgentResult(last, self.turns, self.usage, finished=False,
                                   reason=f"token budget spent: {spent:,} of {self.budget:,} tokens after turn "
                                          f"{self.turns}, so no further turn was started")
        return AgentResult(last, self.turns, self.usage, finished=False,
                           reason=f"stopped after {counted(self.max_turns, 'turn')} (max_turns)")

    def tell(self, text: str) -> None:
        """Something the model should know before the next message (a note of glmtui's, as the user's)."""
        self._add({"role": "user", "content": text})

    def _token(self, piece: str, channel: str, said: list[str] | None) -> None:
        """A masked piece of the reply (empty while the masker holds back a possible secret)."""
        if not piece:
            return
        if said is not None:
            said.append(piece)
        self.sink(Token(self.step, piece, channel))

    def _retry(self, notice: RetryNotice) -> None:
        self.sink(ModelRetry(self.step, self.masker.mask(str(notice)), notice.delay, notice.attempt, notice.attempts))

    def _count(self, usage: Usage | None) -> None:
        turn = usage or Usage()
        self.usage = self.usage + turn
        self.sink(UsageEvent(self.step, turn.input_tokens, turn.output_tokens,
                             self.usage.input_tokens, self.usage.output_tokens))

    async def _run_calls(self, calls: list[ToolCallRequest]) -> None:
        answers: dict[str, str] = {}
        try:
            await asyncio.gather(*(self._call(call, answers) for call in calls))
        finally:  # also when cancelled: every call gets an answer, in the model's order
            for call in calls:
                if call.id not in answers:
                    self._answer(call, answers, "cancelled", "cancelled by the user before it finished", time.monotonic())
                self._add({"role": "tool", "tool_call_id": call.id, "content": answers[call.id]})

    async def _call(self, call: ToolCallRequest, answers: dict[str, str]) -> None:
        started = time.monotonic()
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            self.sink(ToolCall(self.step, call.id, call.name, {"raw": self.masker.mask(call.arguments)}))
            self._answer(call, answers, "error", f"error: the arguments are not valid JSON ({err}); send a JSON object",
                         started)
            return
        self.sink(ToolCall(self.step, call.id, call.name, self.masker.mask_value(arguments)))
        if call.name not in self.toolbox.names:
            self._answer(call, answers, "error",
                         f"error: there is no tool {call.name!r}; the tools are {', '.join(self.toolbox.names)}", started)
            return
        refusal = await self._approve(call.name, arguments)
        if refusal:
            self._answer(call, answers, "denied", refusal, started)
            return
        started = time.monotonic()  # the tool's own time, not the person's thinking
        problem = await self._before_change(call.name)
        if problem:
            self._answer(call, answers, "error", problem, started)
            return
        result = await self.toolbox.call(call.name, arguments)
        self._answer(call, answers, "ok" if result.ok else "error", result.output, started, result.exit_code)

    async def _before_change(self, tool: str) -> str | None:
        """None when the call may go on; else why not (the checkpoint before it failed)."""
        if self.before_change is None or tool in READ_ONLY:
            return None
        async with self._changing:
            if not self._checked_in:
                try:
                    await self.before_change(self._sent)
                except GlmtuiError as err:
                    return f"error: not run: the checkpoint before this change failed: {err}"
                self._checked_in = True
        return None

    async def _approve(self, tool: str, arguments: Mapping[str, Any]) -> str | None:
        """None when the call may run; else what the model is told."""
        mode = self.policy.decide(tool, arguments)
        if mode == "auto":
            return None
        if mode == "deny":
            return "refused: the approval policy does not allow this call; do something else or ask the user"
        if self.approver is None:
            return "refused: this call needs the user's approval and nobody can give it here"
        async with self._asking:
            if self.policy.decide(tool, arguments) == "auto":  # an "always" while we waited
                return None
            request = self.policy.request(tool, arguments, self.step)
            # Whoever answers sees it masked, as the tool call; "always" remembers the real pattern.
            answer = await self.approver(dataclasses.replace(
                request, arguments=self.masker.mask_value(dict(request.arguments)),
                subject=self.masker.mask(request.subject), pattern=self.masker.mask(request.pattern),
            ))
            if answer == "always":
                self.policy.allow_always(request)
            if answer in ("yes", "always"):
                return None
        return "refused: the user said no to this call; do something else or ask the user"

    def _answer(self, call: ToolCallRequest, answers: dict[str, str], status: str, output: str, started: float,
                exit_code: int | None = None) -> None:
        masked = self.masker.mask(output)
        answers[call.id] = masked
        self.sink(ToolResult(self.step, call.id, call.name, status, masked, exit_code,
                             round(time.monotonic() - started, 3)))
