"""`llm`: one model call from the host; what the llm and agent kinds share.

The call goes from glmtui on the host to the provider's endpoint: the API key is read from the
host (the plan's -e values, the environment, --env-file, .env, in that order, then glmtui's own
environment) and never enters the environment. It is hidden like a secret in every sink.
"""

from __future__ import annotations

import json
import os
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from glmtui.errors import BadInput
from glmtui.events import Event, ModelRetry, Token, ToolCall, ToolResult
from glmtui.events import Usage as UsageEvent
from glmtui.masking import Masker
from glmtui.plan.expressions import to_text
from glmtui.plan.steps.base import StepContext, StepOutcome, add_secret, render
from glmtui.transcript import LOG_RESULT_LINES, result_lines, retry_line, summarize_call



# --- providers and keys ----------------------------------------------------------------------


def host_environ(loaded: Any) -> Mapping[str, str]:
    """Where API keys come from: the plan's view of the host (-e, environment, --env-file, .env),
    then glmtui's own environment."""
    return ChainMap(dict(getattr(loaded, "env", None) or {}), os.environ)


def provider_of(config: Any, name: str | None, model: str | None) -> Any:
    from glmtui.agent import providers

    return providers.resolve(config, name or None, model or None)


def api_key(provider: Any, loaded: Any) -> str:
    return provider.api_key(host_environ(loaded))


def model_for(ctx: StepContext, spec: Mapping[str, Any]) -> tuple[Any, str]:
    """The step's provider and its API key (now hidden in every sink of the run)."""
    name = to_text(spec["provider"]) if spec.get("provider") is not None else None
    model = to_text(spec["model"]) if spec.get("model") is not None else None
    provider = provider_of(ctx.config, name, model)
    key = api_key(provider, ctx.loaded)
    if provider.api_key_env:
        add_secret(ctx.masker, key)
    return provider, key


def masker_of(ctx: StepContext) -> Masker:
    return ctx.masker if ctx.masker is not None else Masker(ctx.loaded.secrets.values())


# --- the transcript: events to the run's sink, the conversation to the step's log ---------------


class Transcript:
    """A sink for an llm or agent step's events: passes them on to the run's sink, masked (a
    secret split across two tokens too), and writes the conversation to the step's log file."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.step = ctx.output.step
        self.masker = masker_of(ctx)
        self._streams: dict[str, Any] = {}  # channel -> StreamMasker of the tokens
        self._channel: str | None = None  # the channel the log is in the middle of
        self._at_line_start = True

    def prompt(self, text: str, system: str | None = None) -> None:
        if system:
            self._line_block("system: ", system)
        self._line_block("> ", text)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Token):
            self.token(event.text, event.channel)
            return
        self.end_text()
        if isinstance(event, ToolCall):
            self._log(f"→ {event.tool}: {summarize_call(event.tool, event.arguments)}\n")
        elif isinstance(event, ToolResult):
            self._log("".join(f"{text}\n" for _, text in result_lines(event, LOG_RESULT_LINES)))
        elif isinstance(event, ModelRetry):
            self._log(retry_line(event) + "\n")
        elif isinstance(event, UsageEvent):
            pass  # the step's total goes to the log at its end (usage_line)
        self.ctx.sink(event)

    def token(self, text: str, channel: str = "text") -> None:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = self.masker.stream()
        if self._channel not in (None, channel):
            self.end_text()
        safe = stream.feed(text)
        self._channel = channel
        if safe:
            self._emit(safe, channel)

    def end_text(self) -> None:
        """A turn's text is over: what a stream masker held back goes out, the log line ends."""
        for channel, stream in self._streams.items():
            rest = stream.flush()
            if rest:
                self._emit(rest, channel)
        if self._channel is not None and not self._at_line_start:
            self._log("\n")
        self._channel = None

    def note(self, line: str) -> None:
        """A line of glmtui's own in the log (a checkpoint taken)."""
        self.end_text()
        self._log(f"{line}\n")

    def usage_line(self, usage: Mapping[str, int] | None) -> None:
        self.end_text()
        if usage:
            self._log(f"tokens: {usage['input_tokens']:,} in / {usage['output_tokens']:,} out\n")

    def _emit(self, text: str, channel: str) -> None:
        if channel == "reasoning":
            self._prefixed("~ ", text)
        else:
            self._log(text)
        self.ctx.sink(Token(self.step, text, channel))

    def _prefixed(self, prefix: str, text: str) -> None:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(prefix)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        self.ctx.output.record("".join(out))

    def _line_block(self, prefix: str, text: str) -> None:
        self._log("".join(f"{prefix}{line}".rstrip() + "\n" for line in text.rstrip("\n").split("\n")))

    def _log(self, text: str) -> None:
        if text:
            self.ctx.output.record(text)
            self._at_line_start = text.endswith("\n")


# --- the llm kind -------------------------------------------------------------------------------


def _schema_instruction(schema: Any) -> str:
    return (
        "Answer with one JSON value only (no prose, no code fences) that follows this JSON Schema:\n"
        + json.dumps(schema, ensure_ascii=False, indent=2)
    )


def _unfenced(text: str) -> str:
    """The answer without the ```json fences some models put around JSON anyway."""
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and body.count("\n") >= 1:
        body = body[3:-3]
        first, _, rest = body.partition("\n")
        body = rest if first.strip().isalpha() or not first.strip() else body
    return body.strip()


def check_answer(text: str, schema: Any) -> tuple[Any, str | None]:
    """The parsed answer and, when it is not JSON or does not follow the schema, why (one line)."""
    try:
        value = json.loads(_unfenced(text))
    except ValueError as err:
        shown = text.strip().splitlines()[0][:80] if text.strip() else "(empty)"
        return None, f"the answer is not JSON ({err}): {shown!r}"
    from jsonschema import validators

    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except Exception as err:  # noqa: BLE001 - jsonschema.SchemaError, one line of it
        return value, f"json_schema is not a valid JSON Schema: {str(getattr(err, 'message', err)).splitlines()[0]}"
    errors = sorted(cls(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        return value, f"the answer does not follow json_schema: at ${where}: {first.message}{more}"
    return value, None


async def llm_step(ctx: StepContext) -> StepOutcome:
    from glmtui.agent.client import ModelClient, ModelError, Usage

    spec = render(ctx.step.spec, ctx.values)
    provider, key = model_for(ctx, spec)
    prompt = to_text(spec["prompt"])
    system = to_text(spec["system"]) if spec.get("system") is not None else None
    schema = spec.get("json_schema")
    if schema is not None:
        system = f"{system}\n\n{_schema_instruction(schema)}" if system else _schema_instruction(schema)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    transcript = Transcript(ctx)
    transcript.prompt(prompt, system)
    client = ModelClient(provider, api_key=key)
    try:
        reply = await client.stream(
            messages,
            model=provider.model,
            temperature=spec.get("temperature"),
            response_format={"type": "json_object"} if schema is not None else None,
            on_text=lambda piece: transcript.token(piece, "text"),
            on_reasoning=lambda piece: transcript.token(piece, "reasoning"),
            on_retry=lambda notice: transcript(ModelRetry(ctx.output.step, transcript.masker.mask(str(notice)),
                                                          notice.delay, notice.attempt, notice.attempts)),
        )
    except ModelError as err:
        transcript.end_text()
        return StepOutcome("failure", None, str(err).splitlines()[0])
    finally:
        await _close(client)
    usage = (reply.usage or Usage()).as_dict()
    transcript.end_text()
    transcript(UsageEvent(ctx.output.step, usage["input_tokens"], usage["output_tokens"],
                          usage["input_tokens"], usage["output_tokens"]))
    transcript.usage_line(usage)
    masker = masker_of(ctx)
    outputs: dict[str, Any] = {"text": masker.mask(reply.content)}
    if schema is None:
        return StepOutcome("success", None, None, outputs, usage=usage)
    value, problem = check_answer(reply.content, schema)
    if value is not None or not problem:
        outputs["json"] = masker.mask_value(value)
    if problem:
        return StepOutcome("failure", None, problem, outputs, usage=usage)
    return StepOutcome("success", None, None, outputs, usage=usage)


async def _close(client: Any) -> None:
    """Close the model client, also while the step is being cancelled."""
    import asyncio

    task = asyncio.ensure_future(client.close())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
    except Exception:  # noqa: BLE001 - a connection that will not close cleanly is not the step's failure
        pass


def model_step_problem(step: Any, config: Any, loaded: Any) -> tuple[str | None, str | None]:
    """Checked before a run starts: (problem, API key). The provider must be known and its key set,
    unless the step names its provider or model with an expression (then at the step)."""
    spec = step.spec if isinstance(step.spec, Mapping) else {}
    name, model = spec.get("provider"), spec.get("model")
    if any(isinstance(v, str) and "${" in v for v in (name, model)):
        return None, None
    try:
        provider = provider_of(config, name, model)
        key = api_key(provider, loaded)
    except BadInput as err:
        return str(err), None
    return None, key if provider.api_key_env else None
