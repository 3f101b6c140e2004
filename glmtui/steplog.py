"""A log file on disk (a step's, an `env exec` command's): written as the output comes, capped,
and timed.

The log is written unbuffered, so `glmtui logs` shows it while it grows and it survives the
process being killed. Its cap (config `step_log_max`) keeps the head and the tail: once the log
reaches half the cap a line says so, and what follows goes to a tail file beside the log, in two
segments of half the cap each, so the last half of the cap is always on disk and never in
memory. When the log is closed the kept tail is added, after a line saying how much was dropped
from the middle: the log is the head, that line and the tail.

Beside the log, `NAME.log.times` says when its parts were written: lines of `OFFSET TIME` (a
byte offset in the log, a Unix time), at most one every INDEX_INTERVAL seconds of output, each
written before the bytes it times. A line of the log was written at the time of the last entry
at or before its first byte.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glmtui.units import counted, format_bytes, parse_size

TIMES_SUFFIX = ".times"
INDEX_INTERVAL = 0.1  # seconds: at most one index entry this often
_CHUNK = 1 << 20


def configured_cap(config: Any) -> int:
    """The cap of a log in bytes, from config `step_log_max`."""
    return parse_size(config.get("step_log_max"), what="step_log_max")


def times_file(log: Path) -> Path:
    return Path(f"{log}{TIMES_SUFFIX}")


class StepLog:
    """A log being written: `write` bytes as they come, `close` at the end (which adds the tail)."""

    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self._file = path.open("ab", buffering=0)
        self._times = times_file(path).open("ab", buffering=0)
        self._size = self._file.seek(0, os.SEEK_END)  # a retried step's log goes on after the first attempt's
        self._head_room = cap // 2
        self._last_mark = 0.0
        self._line_ended = True  # (what an earlier attempt wrote counts as ended)
        self._tail: _Tail | None = None

    @classmethod
    @contextmanager
    def open(cls, path: Path, cap: int) -> Iterator[StepLog]:
        log = cls(path, cap)
        try:
            yield log
        finally:
            log.close()

    def write(self, data: bytes) -> None:
        if not data:
            return
        now = time.time()
        if self._tail is None:
            room = self._head_room - self._size
            if len(data) <= room:
                self._append(data, now)
                return
            cut = data.rfind(b"\n", 0, max(room, 0)) + 1  # the head ends with a whole line where it can
            if cut:
                self._append(data[:cut], now)
            self._start_tail(now)
            data = data[cut:]
        assert self._tail is not None
        self._tail.write(data, now if self._due(now) else None)

    def close(self) -> None:
        try:
            if self._tail is not None:
                self._add_tail()
        finally:
            self._file.close()
            self._times.close()

    def _append(self, data: bytes, now: float) -> None:
        if self._due(now):
            self._times.write(f"{self._size} {now:.3f}\n".encode())
        self._file.write(data)
        self._size += len(data)
        self._line_ended = data.endswith(b"\n")

    def _due(self, now: float) -> bool:
        if now - self._last_mark < INDEX_INTERVAL:
            return False
        self._last_mark = now
        return True

    def _start_tail(self, now: float) -> None:
        notice = (
            f"{'' if self._line_ended else chr(10)}… this log reached half its cap of {format_bytes(self.cap)} (config "
            "step_log_max): the rest is added when it ends, with its middle dropped if it goes over the cap\n"
        )
        self._last_mark = 0.0
        self._append(notice.encode(), now)
        self._last_mark = 0.0  # the tail's first bytes get their own time
        self._tail = _Tail(self.path, self.cap - self._head_room)

    def _add_tail(self) -> None:
        """The kept tail, after a line saying what was dropped before it, with its times."""
        tail = self._tail
        assert tail is not None
        tail.file.close()
        start = max(tail.total - tail.limit, 0)  # where the kept part begins, counted past the head
        if start and tail.read_byte(start - 1) != b"\n":
            first = next(tail.read(start, min(start + _CHUNK, tail.total)), b"")
            newline = first.find(b"\n")
            if newline >= 0:  # the tail starts with a whole line
                start += newline + 1
        entries = [(max(position - start, 0), stamp) for position, stamp in tail.times]
        entries = [entry for entry, after in zip(entries, [*entries[1:], None]) if after is None or after[0] > 0]
        header = b""
        if start:
            kept_lines = sum(chunk.count(b"\n") for chunk in tail.read(start, tail.total))
            header = (
                f"… {format_bytes(start)} ({counted(tail.lines - kept_lines, 'line')}) dropped from the middle "
                f"of this log; the cap is {format_bytes(self.cap)} (config step_log_max)\n"
            ).encode()
        base = self._size + len(header)
        marks = ([(self._size, entries[0][1])] if header and entries else []) + [
            (base + offset, stamp) for offset, stamp in entries
        ]
        self._times.write("".join(f"{offset} {stamp:.3f}\n" for offset, stamp in marks).encode())
        self._file.write(header)
        for chunk in tail.read(start, tail.total):
            self._file.write(chunk)
        self._size = base + tail.total - start
        tail.remove()


class _Tail:
    """What comes past the head: its last `limit` bytes (at least) kept on disk, in two segments."""

    def __init__(self, log: Path, limit: int) -> None:
        self.limit = limit
        self.paths = (Path(f"{log}.tail"), Path(f"{log}.tail.old"))
        self.file = self.paths[0].open("wb", buffering=0)
        self.size = 0  # bytes in the current segment
        self.old_size = 0  # bytes in the older segment
        self.total = 0  # bytes past the head, dropped ones included
        self.lines = 0
        self.times: list[tuple[int, float]] = []  # (position past the head, time) of the kept part

    def write(self, data: bytes, stamp: float | None) -> None:
        if stamp is not None:
            self.times.append((self.total, stamp))
        self.file.write(data)
        self.size += len(data)
        self.total += len(data)
        self.lines += data.count(b"\n")
        if self.size >= self.limit:
            self.file.close()
            os.replace(self.paths[0], self.paths[1])
            self.old_size, self.size = self.size, 0
            self.file = self.paths[0].open("wb", buffering=0)
            first_kept = bisect.bisect_right(self.times, (self.total - self.old_size, float("inf"))) - 1
            del self.times[: max(first_kept, 0)]

    def read(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes from position `start` to `end` (past the head), from the segments that hold them."""
        current = self.total - self.size  # where the current segment begins
        segments = ((self.paths[1], current - self.old_size, current), (self.paths[0], current, self.total))
        for path, begins, ends in segments:
            low, high = max(start, begins), min(end, ends)
            if low >= high:
                continue
            with path.open("rb") as segment:
                segment.seek(low - begins)
                left = high - low
                while left > 0 and (chunk := segment.read(min(_CHUNK, left))):
                    left -= len(chunk)
                    yield chunk

    def read_byte(self, position: int) -> bytes:
        return b"".join(self.read(position, position + 1))

    def remove(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


def tail(path: Path, count: int) -> list[tuple[float, str]]:
    """The last `count` lines of a log, read from its end (logs can be huge), each with the time it
    was written (by the log's index; the file's time where it has none)."""
    try:
        with path.open("rb") as stream:
            position = stream.seek(0, os.SEEK_END)
            fallback = os.fstat(stream.fileno()).st_mtime
            data = b""
            while position > 0 and data.count(b"\n") <= count:
                size = min(65536, position)
                position -= size
                stream.seek(position)
                data = stream.read(size) + data
    except OSError:
        return []
    offsets, stamps = _read_index(times_file(path))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    offset = position
    timed = []
    for number, line in enumerate(lines):
        if number or position == 0:  # the first may start mid-line
            entry = bisect.bisect_right(offsets, offset)
            timed.append((stamps[entry - 1] if entry else fallback, line.decode("utf-8", "replace")))
        offset += len(line) + 1
    return timed[-count:]


def _read_index(path: Path) -> tuple[list[int], list[float]]:
    """A whole `.times` index: its offsets and their times."""
    offsets: list[int] = []
    stamps: list[float] = []
    try:
        data = path.read_bytes()
    except OSError:
        return offsets, stamps
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        offset, _, stamp = line.partition(b" ")
        offsets.append(int(offset))
        stamps.append(float(stamp))
    return offsets, stamps


class LogReader:
    """A log's lines with the time each was written, read on from where the last read stopped."""

    def __init__(self, path: Path, fallback: float) -> None:
        self.path = path
        self.position = 0  # in the log: where the next line begins
        self._times_position = 0
        self._offsets: list[int] = []
        self._stamps: list[float] = []
        self._fallback = fallback  # the time of lines the index does not cover (logs written without one)

    def lines(self, final: bool = False) -> Iterator[tuple[float, bytes]]:
        """The whole lines written since the last read, with their times; `final`: the log is
        complete, so its last line counts even without a newline."""
        try:
            log = self.path.open("rb")
        except FileNotFoundError:
            return
        with log:
            end = os.fstat(log.fileno()).st_size
            self._read_times()  # after the size: every byte up to it has its entry by now
            log.seek(self.position)
            entry = bisect.bisect_right(self._offsets, self.position)
            stamp = self._stamps[entry - 1] if entry else self._fallback
            pending = b""
            offset = self.position
            while self.position + len(pending) < end:
                chunk = log.read(min(_CHUNK, end - self.position - len(pending)))
                if not chunk:
                    break
                *whole, pending = (pending + chunk).split(b"\n")
                for line in whole:
                    while entry < len(self._offsets) and self._offsets[entry] <= offset:
                        stamp = self._stamps[entry]
                        entry += 1
                    yield stamp, line
                    offset += len(line) + 1
                self.position = offset
            if final and pending:
                while entry < len(self._offsets) and self._offsets[entry] <= offset:
                    stamp = self._stamps[entry]
                    entry += 1
                yield stamp, pending
                self.position = offset + len(pending)

    def next_time(self) -> float:
        """The time of the next line to read (no later line is older)."""
        self._read_times()
        entry = bisect.bisect_right(self._offsets, self.position)
        return self._stamps[entry - 1] if entry else self._fallback

    def _read_times(self) -> None:
        try:
            with times_file(self.path).open("rb") as index:
                index.seek(self._times_position)
                data = index.read()
        except FileNotFoundError:
            return
        whole = data[: data.rfind(b"\n") + 1]
        self._times_position += len(whole)
        for line in whole.splitlines():
            offset, _, stamp = line.partition(b" ")
            self._offsets.append(int(offset))
            self._stamps.append(float(stamp))
