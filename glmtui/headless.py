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
)
from glmtui.render import COLORS, SYMBOLS
from glmtui.transcript import AGENT_EVENTS, AgentLines

FLUSH_EVERY = 0.05  # seconds: --json output (tokens, lines) reaches a reader at least this often


def visible(line: str) -> str:
    """What a terminal shows of a line with carriage returns (progress bars): its last frame."""
    if "\r" in line:
        frames = [frame for frame in line.split("\r") if frame]
        return frames[-1] if frames else ""
    return line


class JsonRenderer:
    """One JSON object per event and line (docs/plan-format.md, `--json`)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self._flushed = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, event: Event) -> None:
        line = event.json_line() if isinstance(event, Output) else json.dumps(event.to_json(), ensure_ascii=False, default=str)
        self.out.write(line + "\n")
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


_AGENT_STYLES = {"reasoning": "dim italic", "call": "bold", "result": "bold", "output": "dim", "usage": "dim",
                 "retry": "yellow"}
_PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green"]


def renderer_for(as_json: bool):
    if as_json:
        return JsonRenderer()
    if sys.stdout.isatty():
        return LiveRenderer()
    return PlainRenderer()
