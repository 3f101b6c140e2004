"""Renders run events to a terminal: a live view on a TTY, plain lines otherwise, or JSON lines."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import IO

from glmtui.events import (
    Event,
    Output,
    Progress,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    Token,
    ToolCall,
    ToolResult,
    Usage,
)

FLUSH_EVERY = 0.05  # seconds: --json output (tokens, lines) reaches a reader at least this often
RESULT_PREVIEW = 3  # lines of a tool's output shown under its result
SYMBOLS = {"success": "✔", "failure": "✘", "skipped": "↷", "cancelled": "■", "running": "▶", "waiting": "·"}
COLORS = {"success": "green", "failure": "red", "skipped": "yellow", "cancelled": "magenta", "running": "cyan"}


def visible(line: str) -> str:
    """What a terminal shows of a line with carriage returns (progress bars): its last frame."""
    if "\r" in line:
        frames = [frame for frame in line.split("\r") if frame]
        return frames[-1] if frames else ""
    return line


class JsonRenderer:
    """One JSON object per event and line (PLAN-FORMAT.md, `--json`)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self._flushed = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, event: Event) -> None:
        self.out.write(json.dumps(event.to_json(), ensure_ascii=False, default=str) + "\n")
        if isinstance(event, (Output, Token)):
            self._soon()  # not a flush per line or token: at most one every FLUSH_EVERY
        else:
            self._flush()

    def _soon(self) -> None:
        if time.monotonic() - self._flushed >= FLUSH_EVERY:
            self._flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: the next event, or close(), flushes
                return
            self._timer = loop.call_later(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.out.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        self._flush()


class AgentLines:
    """An llm or agent step's events as whole lines: the model's text as its lines complete, its
    thinking apart, one line per tool call and per result (with the first lines of its output),
    and the step's tokens at its end. Each line is (step, kind, text), kind one of text,
    reasoning, call, result, output, usage."""

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
            from glmtui.plan.steps.llm import summarize_call

            lines += self.flush(event.step)
            lines.append((event.step, "call", f"→ {event.tool}: {summarize_call(event.tool, event.arguments)}"))
        elif isinstance(event, ToolResult):
            lines += self.flush(event.step)
            lines += _result_lines(event)
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


def _result_lines(event: ToolResult) -> list[tuple[str, str, str]]:
    head = f"← {event.status}"
    if event.exit_code is not None:
        head += f" exit {event.exit_code}"
    head += f" ({event.duration:.1f}s)"
    body = [line for line in event.output.splitlines() if line.strip()]
    if event.exit_code is not None and body and body[-1].startswith("exit code "):
        body.pop()  # the bash tool's last line: the header says it
    if event.status == "denied" and body:
        return [(event.step, "result", f"{head}: {body[0]}")]
    shown = [(event.step, "output", f"  {line}") for line in body[:RESULT_PREVIEW]]
    if len(body) > RESULT_PREVIEW:
        shown.append((event.step, "output", f"  … {len(body) - RESULT_PREVIEW} more lines"))
    return [(event.step, "result", head), *shown]


AGENT_EVENTS = (Token, ToolCall, ToolResult, Usage)


class PlainRenderer:
    """Lines prefixed by the step id, like docker compose; for logs, pipes and CI."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.width = 8
        self.agents = AgentLines()

    def _agent_lines(self, event: Event) -> None:
        for step, kind, text in self.agents.feed(event):
            mark = "~" if kind == "reasoning" else "|"
            self.out.write(f"{step:<{self.width}} {mark} {visible(text)}\n")

    def __call__(self, event: Event) -> None:
        write = self.out.write
        if isinstance(event, AGENT_EVENTS):
            self._agent_lines(event)
            if not isinstance(event, Token):
                self.out.flush()
            return
        if isinstance(event, Output):
            prefix = f"{event.step:<{self.width}} | "
            text = event.text
            if "\r" in text:
                text = "\n".join(visible(line) for line in event.lines)
            write(prefix + text.replace("\n", "\n" + prefix) + "\n")  # one pass in C, millions of lines
            return
        if isinstance(event, RunStarted):
            where = f"throw-away environment {event.environment}" if event.throwaway else f"environment {event.environment}"
            write(f"run {event.run_id}: plan {event.plan}, workflow {event.workflow}, {where}\n")
        elif isinstance(event, Progress):
            write(f"... {event.message}\n")
        elif isinstance(event, StepStarted):
            self.width = max(self.width, len(event.step))
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            write(f"{SYMBOLS['running']} {event.step} started{attempt}\n")
        elif isinstance(event, StepFinished):
            self._agent_lines(event)
            write(f"{SYMBOLS.get(event.status, '?')} {event.step} {describe(event)}\n")
        elif isinstance(event, RunFinished):
            write(f"run {event.run_id} {event.status} in {event.duration:.1f}s\n")
            if event.kept_environment:
                write(f"kept environment {event.kept_environment}: glmtui env exec {event.kept_environment}\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


def describe(event: StepFinished) -> str:
    parts = [event.status]
    if event.allowed_failure:
        parts.append("(allowed)")
    if event.status in ("success", "failure"):
        parts.append(f"in {event.duration:.1f}s")
    if event.reason:
        parts.append(f"- {event.reason}")
    return " ".join(parts)


class LiveRenderer:
    """On a terminal: a status line per step (spinner, time) below the streaming output."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(highlight=False)
        self.steps: dict[str, dict] = {}
        self.colors: dict[str, str] = {}
        self.width = 6
        self.agents = AgentLines()
        self.live = Live(console=self.console, refresh_per_second=8, transient=False, get_renderable=self._table)
        self.live.start()

    def _table(self):
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for step, info in self.steps.items():
            status = info["status"]
            if status == "running":
                mark = Spinner("dots", style="cyan")
                detail = f"{now - info['started']:.1f}s"
            else:
                mark = f"[{COLORS.get(status, 'white')}]{SYMBOLS.get(status, '?')}[/]"
                detail = info.get("detail", "")
            table.add_row(mark, f"[bold]{step}[/]", detail)
        return table

    def _agent_lines(self, event: Event) -> None:
        from rich.text import Text

        lines = self.agents.feed(event)
        if not lines:
            return
        text = Text()
        for step, kind, line in lines:
            color = self.colors.setdefault(step, _PALETTE[len(self.colors) % len(_PALETTE)])
            text.append(f"{step:<{self.width}} {'~' if kind == 'reasoning' else '|'} ", style=color)
            style = _AGENT_STYLES.get(kind, "")
            if kind == "result":
                style += " " + COLORS.get({"ok": "success", "denied": "skipped"}.get(line.split(" ")[1], "failure"), "")
            text.append(visible(line) + "\n", style=style)
        text.rstrip()
        self.console.print(text, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        from rich.text import Text

        if isinstance(event, AGENT_EVENTS):
            self._agent_lines(event)
        elif isinstance(event, Output):
            color = self.colors.setdefault(event.step, _PALETTE[len(self.colors) % len(_PALETTE)])
            prefix = f"{event.step:<{self.width}} | "
            text = Text()
            for line in event.lines:
                text.append(prefix, style=color)
                text.append(visible(line) + "\n")
            text.rstrip()
            self.console.print(text, soft_wrap=True)
        elif isinstance(event, RunStarted):
            where = "throw-away environment" if event.throwaway else "environment"
            self.console.print(f"[bold]{event.plan}[/] · run {event.run_id} · {where} {event.environment}")
        elif isinstance(event, Progress):
            self.console.print(f"[dim]… {event.message}[/]")
        elif isinstance(event, StepStarted):
            self.width = max(self.width, len(event.step))
            self.steps[event.step] = {"status": "running", "started": time.monotonic()}
        elif isinstance(event, StepFinished):
            self._agent_lines(event)
            self.steps[event.step] = {"status": event.status, "detail": describe(event).split(" ", 1)[-1]}
        elif isinstance(event, RunFinished):
            self.live.update(self._table(), refresh=True)
            self.live.stop()
            color = COLORS.get(event.status, "white")
            self.console.print(f"[{color}]run {event.status}[/] in {event.duration:.1f}s")
            if event.kept_environment:
                self.console.print(f"kept environment: [bold]glmtui env exec {event.kept_environment}[/]")

    def close(self) -> None:
        self.live.stop()


_AGENT_STYLES = {"reasoning": "dim italic", "call": "bold", "result": "bold", "output": "dim", "usage": "dim"}
_PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green"]


def renderer_for(as_json: bool):
    if as_json:
        return JsonRenderer()
    if sys.stdout.isatty():
        return LiveRenderer()
    return PlainRenderer()
