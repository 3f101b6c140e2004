"""What ran in an environment, from the records: the output of plan steps, of the chat agent's
tool calls and of `glmtui env exec` commands, each line with the time it was written and a
label saying what wrote it.

`Activity.collect()` gives the sources with lines recorded since its last call; `merged` reads
them as one log in time order. Called again and again, `collect` follows what runs now.
Everything shown was masked when it was recorded.
"""

from __future__ import annotations

import heapq
import itertools
import json
import shlex
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from glmtui.conversations import Conversations
from glmtui.steplog import LogReader
from glmtui.store import ExecRecord, Store

SETTLE = 10.0  # seconds: a record that ended this long before the last look was read whole by it


@dataclass(frozen=True)
class Line:
    time: float
    label: str
    text: bytes


@dataclass
class Source:
    """Lines in time order, none before `start`."""

    start: float
    lines: Iterator[Line]


def merged(sources: Iterable[Source]) -> Iterator[Line]:
    """The lines of every source in time order. A source is opened only when the merge reaches
    its start, so a long history does not hold every log file open at once."""
    waiting = sorted(sources, key=lambda source: source.start)
    heap: list[tuple[float, int, Line, Iterator[Line]]] = []
    order = itertools.count()
    index = 0
    while heap or index < len(waiting):
        if index < len(waiting) and (not heap or waiting[index].start <= heap[0][0]):
            lines = waiting[index].lines
            index += 1
        else:
            _, _, line, lines = heapq.heappop(heap)
            yield line
        following = next(lines, None)
        if following is not None:
            heapq.heappush(heap, (following.time, next(order), following, lines))


@dataclass
class _Exec:
    reader: LogReader
    opened: bool = False  # its first line is out


@dataclass
class _Chat:
    label: str
    seen: int = 0  # the number of the last message read
    calls: dict[str, str] = field(default_factory=dict)  # tool call id -> tool name


class Activity:
    def __init__(self, store: Store, environment: str) -> None:
        self.store = store
        self.environment = environment
        self._conversations = Conversations(store)
        self._looked = 0.0  # when collect last began
        self._runs_done: set[str] = set()
        self._steps: dict[tuple[str, str], LogReader] = {}
        self._steps_done: set[tuple[str, str]] = set()
        self._execs: dict[str, _Exec] = {}
        self._execs_done: set[str] = set()
        self._chats: dict[str, _Chat] = {}

    def recorded(self) -> bool:
        """Has anything run in this environment, as far as the records know?"""
        return bool(
            self.store.run_ids_in(self.environment) or self.store.execs(self.environment)
            or self._conversations.list(self.environment, limit=1)
        )

    def collect(self) -> list[Source]:
        """The sources with lines recorded since the last call (each line comes once)."""
        since, self._looked = self._looked - SETTLE, time.time()
        sources: list[Source] = []
        for run_id in self.store.run_ids_in(self.environment, ended_since=since):
            if run_id not in self._runs_done:
                sources += self._run(run_id)
        for record in self.store.execs(self.environment, ended_since=since):
            if record.id not in self._execs_done:
                sources.append(Source(record.started, self._exec(record)))
        for conversation in self._conversations.list(self.environment):
            if conversation.updated >= since:
                chat = self._chats.setdefault(conversation.id, _Chat(f"chat {conversation.id[:6]}"))
                sources.append(Source(conversation.created, self._chat(conversation.id, chat)))
        return sources

    def _run(self, run_id: str) -> list[Source]:
        run = self.store.run(run_id)
        ended = run.status != "running"
        sources = []
        for step in run.steps:
            key = (run.id, step.step)
            if key in self._steps_done:
                continue
            started = step.started or run.started
            reader = self._steps.setdefault(key, LogReader(self.store.log_file(run.id, step.step), started))
            final = ended or step.status != "running"
            sources.append(Source(reader.next_time(), _lines(f"{run.id}/{step.step}", reader, final)))
            if final:
                self._steps_done.add(key)
        if ended:
            self._runs_done.add(run.id)
        return sources

    def _exec(self, record: ExecRecord) -> Iterator[Line]:
        known = self._execs.setdefault(record.id, _Exec(LogReader(self.store.exec_log(record.id), record.started)))
        label = f"exec {record.id[:6]}"
        if not known.opened:
            known.opened = True
            opening = "shell opened" if record.shell else "$ " + shlex.join(record.command)
            yield Line(record.started, label, opening.encode())
        if record.finished is None:
            yield from _lines(label, known.reader, final=False)
            return
        self._execs_done.add(record.id)
        yield from _lines(label, known.reader, final=True)
        ending = "shell closed" if record.shell else "ended"
        if record.exit_code is not None:
            ending = f"{ending if record.shell else 'exited'} with {record.exit_code}"
        yield Line(record.finished, label, (ending + (f": {record.reason}" if record.reason else "")).encode())

    def _chat(self, conversation_id: str, chat: _Chat) -> Iterator[Line]:
        for seq, said, message in self._conversations.timed_messages(conversation_id, chat.seen):
            chat.seen = seq
            if message.get("role") == "assistant":
                for call in message.get("tool_calls") or []:
                    name = (call.get("function") or {}).get("name", "?")
                    chat.calls[call.get("id", "")] = name
                    yield Line(said, f"{chat.label} {name}", _call_text(name, call).encode())
            elif message.get("role") == "tool":
                name = chat.calls.get(message.get("tool_call_id", ""), "tool")
                for text in str(message.get("content") or "").split("\n"):
                    yield Line(said, f"{chat.label} {name}", text.encode())


def _lines(label: str, reader: LogReader, final: bool) -> Iterator[Line]:
    for stamp, text in reader.lines(final=final):
        yield Line(stamp, label, text)


def _call_text(name: str, call: dict[str, Any]) -> str:
    """A tool call as one line: `$ command` for bash, else the tool and its arguments."""
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        arguments = json.loads(raw)
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        return f"{name} {raw}"
    if name == "bash" and isinstance(arguments.get("command"), str):
        return "$ " + " ⏎ ".join(arguments["command"].splitlines())
    shown = {key: value for key, value in arguments.items() if key != "content"}  # a whole file is no line
    return " ".join([name, *(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in shown.items())])
