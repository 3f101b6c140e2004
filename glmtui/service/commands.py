"""Commands run in an environment on someone's behalf (`glmtui env exec`, the HTTP API, MCP's
`exec`): recorded like every command (`glmtui logs ENV` shows them), their output masked into a
log (`recorded_command`).

`run_command` is the whole of it for a caller that wants the result at the end: the exit
status and the output, each stream capped to its head and tail with a note saying what was
left out (the log has all of it, up to `step_log_max`).
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from glmtui.errors import BadInput, GlmtuiError

OUTPUT_KEPT = 1 << 20  # characters of each stream a caller of run_command gets: half head, half tail


@contextmanager
def recorded(store: Any, masker: Any, name: str, command: list[str], *, shell: bool = False,
             engine: str | None = None) -> Iterator[Any]:
    """A record of a command (or a shell) in environment `name`, masked; it ends with the reason
    when the command does not end by itself, and is forgotten when the command could not start
    (bad input: nothing ran)."""
    record = store.start_exec(name, masker.mask_value(command), shell=shell, engine=engine)
    try:
        yield record
    except BadInput:
        store.forget_exec(record.id)
        raise
    except (KeyboardInterrupt, asyncio.CancelledError):
        store.finish_exec(record.id, None, "interrupted")
        raise
    except GlmtuiError as err:
        store.finish_exec(record.id, None, masker.mask(str(err)))
        raise


class MaskedLog:
    """A command's stdout and stderr, decoded and masked, into its log; with `keep`, the head and
    tail of each stream's masked text are kept too (`text()`)."""

    def __init__(self, log: Any, masker: Any, keep: int = 0) -> None:
        self._log = log
        decoder = codecs.getincrementaldecoder("utf-8")
        self._streams = {fd: (decoder(errors="replace"), masker.stream()) for fd in (1, 2)}
        self._kept = {fd: _HeadTail(keep) for fd in (1, 2)} if keep else {}

    def feed(self, fd: int, data: bytes) -> None:
        fd = 2 if fd == 2 else 1
        decoder, masking = self._streams[fd]
        self._write(fd, masking.feed(decoder.decode(data)))

    def close(self) -> None:
        for fd, (decoder, masking) in self._streams.items():
            self._write(fd, masking.feed(decoder.decode(b"", final=True)) + masking.flush())

    def _write(self, fd: int, text: str) -> None:
        if text:
            self._log.write(text.encode("utf-8", "surrogateescape"))
            if self._kept:
                self._kept[fd].add(text)

    def text(self, fd: int, note: str) -> tuple[str, bool]:
        """What was kept of a stream, and whether some was left out (then `note` says where it is)."""
        return self._kept[fd].text(note)


class _HeadTail:
    def __init__(self, keep: int) -> None:
        self.half = keep // 2
        self.head: list[str] = []
        self.head_size = 0
        self.tail = ""
        self.dropped = 0

    def add(self, text: str) -> None:
        room = self.half - self.head_size
        if room > 0:
            self.head.append(text[:room])
            self.head_size += min(room, len(text))
            text = text[room:]
        if text:
            self.tail += text
            if len(self.tail) > self.half:
                self.dropped += len(self.tail) - self.half
                self.tail = self.tail[-self.half:]

    def text(self, note: str) -> tuple[str, bool]:
        head = "".join(self.head)
        if not self.dropped:
            return head + self.tail, False
        return f"{head}\n[… {self.dropped:,} characters left out here; {note} …]\n{self.tail}", True


@dataclass
class CommandResult:
    exec_id: str
    exit_code: int
    duration: float
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    reason: str | None  # why it ended other than by exiting: timeout, killed, not found

    def as_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["duration"] = round(self.duration, 3)
        return data


@dataclass
class RecordedCommand:
    """A command being recorded: its output goes to `output.feed`; `result` (with its exit_code
    and reason) is set once it has ended."""

    id: str
    masker: Any
    output: MaskedLog
    result: Any = None


@contextmanager
def recorded_command(store: Any, config: Any, name: str, argv: Sequence[str], *,
                     keep: int = 0, engine: str | None = None) -> Iterator[RecordedCommand]:
    """A command in environment `name` recorded (`recorded`), its output masked into its log
    (`MaskedLog`, keeping `keep` characters of each stream): how `glmtui env exec`, the API's
    exec and MCP's `exec` all record theirs."""
    from glmtui.agent.providers import api_keys
    from glmtui.masking import Masker
    from glmtui.steplog import StepLog, configured_cap

    masker = Masker(api_keys(config))
    with recorded(store, masker, name, list(argv), engine=engine) as record:
        with StepLog.open(store.exec_log(record.id), configured_cap(config)) as log:
            command = RecordedCommand(record.id, masker, MaskedLog(log, masker, keep))
            try:
                yield command
            finally:
                command.output.close()
        store.finish_exec(record.id, command.result.exit_code, command.result.reason)


async def run_command(
    service: Any,
    name: str,
    argv: Sequence[str],
    *,
    environment: Mapping[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    timeout: float | None = None,
    keep: int = OUTPUT_KEPT,
) -> CommandResult:
    """Run argv in environment `name` (never on the host), recorded; the result at the end."""
    engine = service.engine
    await engine.get_environment(name)  # a name that is no environment leaves no record
    with recorded_command(service.store, service.config, name, argv, keep=keep, engine=engine.name) as command:
        result = command.result = await engine.exec(name, argv, environment=environment, workdir=workdir, user=user,
                                                    timeout=timeout, on_output=command.output.feed)
    note = f"all of it is in the log of command {command.id} (glmtui logs {name})"
    stdout, stdout_cut = command.output.text(1, note)
    stderr, stderr_cut = command.output.text(2, note)
    reason = command.masker.mask(result.reason) if result.reason else None
    return CommandResult(command.id, result.exit_code, result.duration, stdout, stderr, stdout_cut, stderr_cut, reason)
