"""An llm or agent step's events as lines of text: for the headless console, the TUI's log
pane and the step's log file, so all three read the same."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from glmtui.events import Event, ModelRetry, StepFinished, Token, ToolCall, ToolResult, Usage
from glmtui.units import counted

SUMMARY_LIMIT = 200  # characters of a tool call's arguments in its line
SHOWN_RESULT_LINES = 3  # lines of a tool's output under its result, on screen
LOG_RESULT_LINES = 20  # the same in the step's log file
AGENT_EVENTS = (Token, ToolCall, ToolResult, Usage, ModelRetry)


def summarize_call(tool: str, arguments: Mapping[str, Any]) -> str:
    """One line for a tool call: the command, the path (and pattern), or the arguments."""
    if not isinstance(arguments, Mapping):
        text = str(arguments)
    elif tool == "bash" and isinstance(arguments.get("command"), str):
        text = arguments["command"]
    elif tool == "grep" and "pattern" in arguments:
        text = f"{arguments['pattern']} in {arguments.get('path', '.')}"
    elif isinstance(arguments.get("path"), str):
        text = arguments["path"]
        if tool == "read_file" and arguments.get("start_line"):
            text += f" (from line {arguments['start_line']})"
    elif "raw" in arguments:
        text = str(arguments["raw"])
    else:
        text = json.dumps(dict(arguments), ensure_ascii=False)
    text = " ⏎ ".join(part for part in text.strip().splitlines() if part.strip()) or text
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def result_lines(event: ToolResult, limit: int) -> list[tuple[str, str]]:
    """(kind, text): `← ok exit 0 (1.2s)` and the first `limit` lines of the output."""
    head = f"← {event.status}"
    if event.exit_code is not None:
        head += f" exit {event.exit_code}"
    head += f" ({event.duration:.1f}s)"
    body = [line for line in event.output.splitlines() if line.strip()]
    if event.exit_code is not None and body and body[-1].startswith("exit code "):
        body.pop()  # the bash tool's last line: the head says it
    if event.status == "denied" and body:
        return [("result", f"{head}: {body[0]}")]
    shown = [("output", f"  {line}") for line in body[:limit]]
    if len(body) > limit:
        shown.append(("output", f"  … {counted(len(body) - limit, 'more line')}"))
    return [("result", head), *shown]


def retry_line(event: ModelRetry) -> str:
    return f"↻ {event.message}"


class AgentLines:
    """An llm or agent step's events as whole lines: the model's text as its lines complete, its
    thinking apart, one line per tool call and per result (with the first lines of its output),
    one per retry of a model call, and the step's tokens at its end. Each line is (step, kind,
    text), kind one of text, reasoning, call, result, output, retry, usage."""

    def __init__(self) -> None:
        self._partial: dict[tuple[str, str], str] = {}  # (step, channel) -> text after the last newline
        self._usage: dict[str, tuple[int, int]] = {}

    def feed(self, event: Event) -> list[tuple[str, str, str]]:
        lines: list[tuple[str, str, str]] = []
        if isinstance(event, Token):
            other = "text" if event.channel == "reasoning" else "reasoning"
            lines += self._rest(event.step, other)
            key = (event.step, event.channel)
            parts = (self._partial.pop(key, "") + event.text).split("\n")
            if parts[-1]:
                self._partial[key] = parts[-1]
            kind = "reasoning" if event.channel == "reasoning" else "text"
            lines += [(event.step, kind, part) for part in parts[:-1]]
        elif isinstance(event, ToolCall):
            lines += self.flush(event.step)
            lines.append((event.step, "call", f"→ {event.tool}: {summarize_call(event.tool, event.arguments)}"))
        elif isinstance(event, ToolResult):
            lines += self.flush(event.step)
            lines += [(event.step, kind, text) for kind, text in result_lines(event, SHOWN_RESULT_LINES)]
        elif isinstance(event, ModelRetry):
            lines += self.flush(event.step)
            lines.append((event.step, "retry", retry_line(event)))
        elif isinstance(event, Usage):
            lines += self.flush(event.step)
            self._usage[event.step] = (event.total_input_tokens, event.total_output_tokens)
        elif isinstance(event, StepFinished):
            lines += self.flush(event.step)
            used = self._usage.pop(event.step, None)
            if used is not None:
                lines.append((event.step, "usage", f"tokens: {used[0]:,} in / {used[1]:,} out"))
        return lines

    def flush(self, step: str) -> list[tuple[str, str, str]]:
        return self._rest(step, "reasoning") + self._rest(step, "text")

    def _rest(self, step: str, channel: str) -> list[tuple[str, str, str]]:
        rest = self._partial.pop((step, channel), None)
        return [(step, "reasoning" if channel == "reasoning" else "text", rest)] if rest else []
