"""The log pane's core: a line-API view over a bounded window of a live log.

Lines go into a `collections.deque` of at most `max_lines` (older lines leave memory;
the whole log stays in the run's log file on disk). `write_lines` only appends and
marks the view dirty; a timer at about 20 frames a second brings the indexes, the
virtual size and the scroll position up to date and repaints, once per frame however
many lines came in (and sleeps while nothing changes). Drawing is bounded too: a row
is cut from its line before any processing (a 1 MB line costs what its visible part
costs), carriage returns keep the last frame a terminal would show, and control
characters become visible glyphs (U+2400 "control pictures") so nothing the process
prints reaches the terminal raw.

Rows and lines: without wrap or filter row r is line `first + r`; with the filter,
row r is the r-th matching line; with wrap, a line takes up to `WRAP_MAX_ROWS` rows
(cumulative row offsets are kept for the window, appended as lines arrive).

A flood (more than two screenfuls between two frames) is redrawn at 8 frames a second
instead of 20: each frame repaints the whole view, and nobody reads a flood. Keys act at once
(their action brings the view up to date and repaints); the frame rate only paces new lines.

Selection (Textual's mouse text selection): every segment of a row carries the style meta
`{"offset": (x, seq)}` (what `Strip.apply_offsets` sets), where `seq` is the line's number
since `clear()` and x a character index into the line *as displayed* (timestamp prefix
included, control characters replaced, tabs expanded). Textual's screen turns mouse drags
into a `Selection` of those offsets; `get_selection` maps it back to text, for `y` and for
Textual's own ctrl+c.

Call it from the app's thread (`app.call_from_thread` from others): it is not locked.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events, work
from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Offset, Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip
from textual.timer import Timer

from glmtui.units import counted

FRAME_INTERVAL = 1 / 20
"""Seconds between two batched updates of the view. The frame timer sleeps once a frame finds
nothing to do, and new lines, a sync or a resize wake it: an idle log costs no wake-ups."""
FLOOD_INTERVAL = 1 / 8
"""Seconds between two updates while lines flood in (more than two screenfuls a frame)."""
WRAP_MAX_ROWS = 200
"""At most this many rows for one wrapped line; the last row then says how much was cut."""
TAB_SIZE = 8
TIMESTAMP_WIDTH = len("00:00:00.000 ")

_SPECIAL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Characters that need processing before a line reaches the terminal (tab included)."""
_PICTURE = re.compile("[\u2400-\u2421\ufffd]")
_CONTROL_PICTURES = {code: 0x2400 + code for code in range(0x20) if code != 0x09}
_CONTROL_PICTURES[0x7F] = 0x2421  # ␡
_CONTROL_PICTURES.update({code: 0xFFFD for code in range(0x80, 0xA0)})  # C1 controls: �
_UNSAFE_TITLE = re.compile(r"[^A-Za-z0-9._-]+")


def last_frame(line: str) -> str:
    """What a terminal keeps of a line redrawn with `\\r`: its last non-empty frame.

    A line ending (`\\n`, `\\r\\n`) left on a line is dropped here too.
    """
    if line.endswith("\n"):
        line = line.rstrip("\r\n")
    if "\r" not in line:
        return line
    line = line.rstrip("\r")
    return line[line.rfind("\r") + 1 :]


def visible_text(line: str, limit: int | None = None) -> str:
    """The line as the view draws it: last frame, control characters as glyphs, tabs expanded.

    With `limit`, only (at least) the first `limit` characters of the result are built,
    from a slice of the line: expanding tabs only lengthens text and each control
    character becomes exactly one glyph, so a prefix of the line gives a prefix of the result.
    """
    text = last_frame(line)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    if _SPECIAL.search(text) is not None:
        text = text.translate(_CONTROL_PICTURES)
        if "\t" in text:
            text = text.expandtabs(TAB_SIZE)
    return text


@lru_cache(maxsize=4096)
def _clock(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp)
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d} "


def _cut(prefix: str, content: str, start: int, end: int) -> str:
    """(prefix + content)[start:end] without copying content."""
    if start >= len(prefix):
        return content[start - len(prefix) : end - len(prefix)]
    return (prefix + content[: max(0, end - len(prefix))])[start:end]


def _find_all(haystack: str, needle: str, start: int, end: int) -> Iterator[int]:
    """Start offsets of `needle` in haystack[start:end] (case-insensitive; `needle` is lower-case)."""
    original = haystack[start:end]
    window = original.lower()
    if len(window) != len(original):
        return  # lower() changed the length (rare scripts): no highlight rather than a wrong one
    at = window.find(needle)
    while at != -1:
        yield start + at
        at = window.find(needle, at + len(needle))


def _strip(
    text: str, width: int, base: Style, spans: list[tuple[int, int, Style]], x: int, y: int
) -> Strip:
    """One row: `text` in `base` with each span's style on top (later spans win), cut or padded
    to `width` cells, each segment carrying the selection offset of its first character (x, y).

    One Strip per row (a Strip holds seven caches: building three per row costs more than the row).
    """
    cells = cell_len(text)
    if cells < width:
        text += " " * (width - cells)
    elif cells > width:
        text = set_cell_size(text, width)
    if not spans:
        return Strip([Segment(text, base + Style.from_meta({"offset": (x, y)}))], width)
    size = len(text)
    cuts = {0, size}
    for start, end, _ in spans:
        cuts.add(min(max(start, 0), size))
        cuts.add(min(max(end, 0), size))
    ordered = sorted(cuts)
    segments = []
    for start, end in zip(ordered, ordered[1:]):
        style = base
        for span_start, span_end, span_style in spans:
            if span_start <= start and end <= span_end:
                style = style + span_style
        segments.append(Segment(text[start:end], style + Style.from_meta({"offset": (x + start, y)})))
    return Strip(segments, width)


class LogView(ScrollView, can_focus=True):
    """A live tail of a log: bounded in memory, redrawn in batches, searchable."""

    ALLOW_SELECT = True
    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $foreground;
        border: solid $border-blurred;
        border-title-align: left;
        border-subtitle-align: right;
        scrollbar-size-vertical: 1;
        &:focus {
            border: solid $border;
        }
        & > .log-view--stderr {
            color: $text-error;
            text-style: dim;
        }
        & > .log-view--timestamp {
            color: $text-muted;
        }
        & > .log-view--glyph {
            color: $text-warning;
        }
        & > .log-view--match {
            background: $warning 40%;
        }
        & > .log-view--current-match {
            background: $accent;
            color: $text;
            text-style: bold;
        }
        & > .log-view--prompt {
            background: $boost;
            color: $foreground;
        }
        & > .log-view--prompt-hint {
            color: $text-muted;
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-view--stderr",
        "log-view--timestamp",
        "log-view--glyph",
        "log-view--match",
        "log-view--current-match",
        "log-view--prompt",
        "log-view--prompt-hint",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", id="log_view.search"),
        Binding("n", "next_match", "Next match", id="log_view.next_match"),
        Binding("N", "previous_match", "Previous match", id="log_view.previous_match"),
        Binding("escape", "clear_search", "Clear search", id="log_view.clear_search", show=False),
        Binding("F", "toggle_filter", "Filter to matches", id="log_view.filter"),
        Binding("f,end", "follow", "Follow", id="log_view.follow"),
        Binding("t", "toggle_timestamps", "Timestamps", id="log_view.timestamps"),
        Binding("w", "toggle_wrap", "Wrap", id="log_view.wrap"),
        Binding("ctrl+s", "save", "Save log", id="log_view.save"),
        Binding("home", "top", "Top", id="log_view.top", show=False),
        Binding("y", "copy", "Copy", id="log_view.copy"),
    ]

    following: reactive[bool] = reactive(True, init=False, repaint=False)
    """True while the view tails the log; scrolling up sets it False, `end` or `f` sets it True."""

    @dataclass
    class FollowChanged(Message):
        """The view started or stopped following the tail."""

        following: bool
        log_view: LogView = field(repr=False)

        @property
        def control(self) -> LogView:
            return self.log_view

    @dataclass
    class Saved(Message):
        """The log was saved to `path` (by `ctrl+s`)."""

        path: Path
        log_view: LogView = field(repr=False)

        @property
        def control(self) -> LogView:
            return self.log_view

    def __init__(
        self,
        *,
        max_lines: int = 50_000,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.max_lines = max_lines
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._batches: deque[tuple[int, float, bool]] = deque()  # (first seq, arrival time, stderr)
        self._total = 0  # lines received since clear(); the next line's seq
        self._widest = 0  # longest line received (characters), for the horizontal scroll range
        self._dirty = False
        self._frames: Timer | None = None
        self._title = ""
        self._log_file: Path | None = None
        self.save_folder: Path | None = None  # where ctrl+s offers to save (None: the current folder)
        # Options.
        self._timestamps = False
        self._wrap = False
        self._filtering = False
        # Search.
        self._query = ""
        self._needle = ""
        self._matches: deque[int] = deque()  # seqs of matching lines in the window, ascending
        self._matches_dropped = 0
        self._current: int | None = None  # seq of the current match
        self._prompting = False
        self._prompt_text = ""
        self._prompt_saved = ""
        # Indexes, brought up to date by _sync().
        self._indexed = 0  # seq up to which matches and wrap rows are indexed
        self._plain_base = 0  # first seq at the last sync: row r is line _plain_base + r
        self._plain_end = 0
        self._wrap_seqs: list[int] = []
        self._wrap_starts: list[int] = []  # absolute first row of each entry of _wrap_seqs
        self._wrap_end = 0
        self._wrap_lo = 0  # first live entry
        self._wrap_width = 0
        self._wrap_cache: LRUCache[tuple[int, int], str] = LRUCache(64)
        self._last_base = 0
        self._synced_at = 0.0
        self._ticked_total = 0
        self._reanchor: int | None = None
        self._internal_scroll = 0
        # Rendering.
        self._generation = 0
        self._strip_cache: LRUCache[tuple, Strip] = LRUCache(256)  # a few screens, for scrolling
        self._styles: dict[str, Style] = {}
        self._painting: tuple[int, Style, int, int, int, Selection | None] | None = None
        self._status = ""

    # ----------------------------------------------------------------- public API

    def write_lines(
        self, lines: Iterable[str], *, stream: str = "stdout", timestamp: float | None = None
    ) -> None:
        """Append lines. Cheap: the view catches up at the next frame, never per line.

        Each string is one line: a trailing newline is ignored, one inside shows as ␊.
        """
        if not isinstance(lines, list):
            lines = list(lines)
        if not lines:
            return
        first = self._total
        self._lines.extend(lines)
        self._total = first + len(lines)
        batches = self._batches
        batches.append((first, time.time() if timestamp is None else timestamp, stream == "stderr"))
        oldest = self._total - len(self._lines)
        while len(batches) > 1 and batches[1][0] <= oldest:
            batches.popleft()
        self._changed()

    def clear(self) -> None:
        """Forget every line (the log file, if any, is untouched)."""
        self._lines.clear()
        self._batches.clear()
        self._total = self._widest = 0
        self._matches.clear()
        self._matches_dropped = 0
        self._current = None
        self._indexed = self._plain_base = self._plain_end = self._ticked_total = 0
        self._wrap_seqs, self._wrap_starts = [], []
        self._wrap_end = self._wrap_lo = 0
        self._wrap_cache.clear()
        self._last_base = 0
        self._reanchor = None
        self._invalidate()
        if self.is_mounted:
            if self.text_selection is not None:
                self.screen.clear_selection()
            with self._internal():
                self._set_virtual_size(Size(0, 0))
                self.scroll_to(0, 0, animate=False)
            self.following = True
            self._changed()

    def show_source(self, title: str, log_file: Path | None) -> None:
        """Show another step or environment: clears; `ctrl+s` saves `log_file` when set."""
        self.clear()
        self._title = title
        self._log_file = log_file
        self.border_title = title
        self._update_status()

    @property
    def line_count(self) -> int:
        """Lines received since the last clear (not only those still in memory)."""
        return self._total

    # ----------------------------------------------------------------- lifecycle

    def on_mount(self) -> None:
        self._frames = self.set_interval(FRAME_INTERVAL, self._tick, name="log-view-frame")
        self._changed()
        self._update_status()

    def on_resize(self) -> None:
        self._wake()  # a new width re-wraps, a new height moves the tail

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._invalidate()

    def watch_following(self, following: bool) -> None:
        if following:
            self._sync()
        self._update_status()
        self.post_message(self.FollowChanged(following, self))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._internal_scroll:
            return
        # The user moved: up (and not merely clamped to a shorter end) stops following;
        # down to the very end follows again.
        if new_value < old_value and round(new_value) < self.max_scroll_y:
            self.following = False
        elif new_value > old_value and not self.following and round(new_value) >= self.max_scroll_y > 0:
            self.following = True

    def _changed(self) -> None:
        """Something for the next frame to catch up with."""
        self._dirty = True
        self._wake()

    def _wake(self) -> None:
        if self._frames is not None:
            self._frames.resume()

    def _tick(self) -> None:
        if self._wrap and self._content_width() != self._wrap_width:
            self._rebuild()
        elif not self._dirty and not (self.following and self.scroll_y != self.max_scroll_y):
            self._frames.pause()  # nothing to do: no frames until something changes
            return
        if self._dirty:
            # A flood (the whole view replaced twice since the last frame) is redrawn at a lower
            # rate: nobody reads it at 20 frames a second, and each frame costs the whole screen.
            # When the flood stops, the next frame shows the tail at once.
            arriving, self._ticked_total = self._total != self._ticked_total, self._total
            flooding = arriving and self._total - self._plain_end > 2 * self._view_height()
            if flooding and time.monotonic() - self._synced_at < FLOOD_INTERVAL:
                return
            self._sync()
        elif self.following and self.scroll_y != self.max_scroll_y:
            with self._internal():
                self.scroll_to(y=self.max_scroll_y, animate=False)

    # ----------------------------------------------------------------- indexes

    @property
    def _first_seq(self) -> int:
        return self._total - len(self._lines)

    @contextmanager
    def _internal(self) -> Iterator[None]:
        """Scroll changes made inside are the view's own, not the user's."""
        self._internal_scroll += 1
        try:
            yield
        finally:
            self._internal_scroll -= 1

    def _invalidate(self) -> None:
        self._generation += 1
        self._strip_cache.clear()

    def _content_width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def _view_height(self) -> int:
        return max(1, self.scrollable_content_region.height - (1 if self._prompting else 0))

    @property
    def _filter_active(self) -> bool:
        return self._filtering and bool(self._needle)

    def _prefix_width(self) -> int:
        return TIMESTAMP_WIDTH if self._timestamps else 0

    def _line(self, seq: int) -> str:
        return self._lines[seq - self._first_seq]

    def _batch(self, seq: int) -> tuple[int, float, bool]:
        batches = self._batches
        return batches[max(0, bisect_right(batches, seq, key=itemgetter(0)) - 1)]

    def _row_base(self) -> int:
        """Absolute number of the first row (rows that left the window count too)."""
        if self._wrap:
            lo = self._wrap_lo
            return self._wrap_starts[lo] if lo < len(self._wrap_seqs) else self._wrap_end
        if self._filter_active:
            return self._matches_dropped
        return self._plain_base

    def _row_count(self) -> int:
        if self._wrap:
            return self._wrap_end - self._row_base()
        if self._filter_active:
            return len(self._matches)
        return self._plain_end - self._plain_base

    def _wrap_rows(self, line: str) -> int:
        """Rows of a line in wrap mode (prefix included), at most WRAP_MAX_ROWS."""
        width = self._wrap_width
        cap = WRAP_MAX_ROWS * width + 1
        if len(line) <= cap and _SPECIAL.search(line) is None:
            length = len(line)
        else:
            length = len(visible_text(line, cap))
        return min(WRAP_MAX_ROWS, max(1, -(-(length + self._prefix_width()) // width)))

    def _index(self) -> None:
        """Index matches and wrapped rows of the lines that arrived since the last call."""
        first, total = self._first_seq, self._total
        start = max(self._indexed, first)
        if self._needle and start < total:
            needle, matches = self._needle, self._matches
            for seq, line in enumerate(islice(self._lines, start - first, None), start):
                # The whole line first (its last frame is part of it): one call for most lines.
                if needle in line.lower() and ("\r" not in line or needle in last_frame(line).lower()):
                    matches.append(seq)
        matches = self._matches
        while matches and matches[0] < first:
            matches.popleft()
            self._matches_dropped += 1
        if self._wrap:
            seqs, starts, rows_of = self._wrap_seqs, self._wrap_starts, self._wrap_rows
            end = self._wrap_end
            if self._filter_active:
                shown_seqs = islice(matches, bisect_left(matches, start), None)
                pairs: Iterable[tuple[int, str]] = ((seq, self._line(seq)) for seq in shown_seqs)
            else:
                pairs = enumerate(islice(self._lines, start - first, None), start)
            # Inline for the common line (short, nothing to replace): 50,000 lines in ~25 ms here.
            width, prefix, special = self._wrap_width, self._prefix_width(), _SPECIAL.search
            short = min(width - prefix, WRAP_MAX_ROWS * width)
            for seq, line in pairs:
                seqs.append(seq)
                starts.append(end)
                if len(line) <= short and special(line) is None:
                    end += 1
                else:
                    end += rows_of(line)
            self._wrap_end = end
            lo = self._wrap_lo
            while lo < len(seqs) and seqs[lo] < first:
                lo += 1
            if lo > 4096 and lo * 2 > len(seqs):
                del seqs[:lo], starts[:lo]
                lo = 0
            self._wrap_lo = lo
        self._indexed = total
        self._plain_base, self._plain_end = first, total

    def _rebuild(self, anchor: int | None = None) -> None:
        """Index the whole window again (the query, filter, wrap, width or prefix changed)."""
        if anchor is None and not self.following:
            anchor = self._top_seq()
        self._matches.clear()
        self._matches_dropped = 0
        self._wrap_seqs, self._wrap_starts = [], []
        self._wrap_end = self._wrap_lo = 0
        self._wrap_width = self._content_width()
        self._wrap_cache.clear()
        self._indexed = self._first_seq
        self._last_base = -1  # rows are renumbered: nothing "dropped" to compensate
        self._reanchor = anchor
        self._invalidate()
        self._sync()

    def _sync(self) -> None:
        """Catch up with new lines: indexes, virtual size, scroll position, one repaint."""
        self._dirty = False
        self._wake()  # the next frame scrolls to the tail if the new size came after this one
        self._synced_at = time.monotonic()
        self._index()
        base = self._row_base()
        dropped = base - self._last_base if self._last_base >= 0 else 0
        self._last_base = base
        width = 0 if self._wrap else self._widest + self._prefix_width()
        with self._internal():
            # While the search prompt covers the last row, one more row keeps the tail above it.
            self._set_virtual_size(Size(width, self._row_count() + self._prompting))
            if self.following:
                self.scroll_to(y=self.max_scroll_y, animate=False)
            elif self._reanchor is not None:
                row = self._row_of(self._reanchor)
                self.scroll_to(y=row if row is not None else self.max_scroll_y, animate=False)
            elif dropped > 0:
                self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False)
        self._reanchor = None
        self.refresh()
        self._update_status()

    def _set_virtual_size(self, size: Size) -> None:
        """Like `self.virtual_size = size` without the layout of the whole screen it asks for.

        The scrollbars are updated as ScrollView does on a resize; a scrollbar that appears or
        goes away still brings a layout (through its `display`).
        """
        if size != self.virtual_size:
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)

    def _locate(self, row: int) -> tuple[int, int] | None:
        """The line (seq) shown in a row, and which of its wrapped rows."""
        if row < 0:
            return None
        if self._wrap:
            absolute = self._row_base() + row
            if absolute >= self._wrap_end:
                return None
            at = bisect_right(self._wrap_starts, absolute, self._wrap_lo) - 1
            return self._wrap_seqs[at], absolute - self._wrap_starts[at]
        if self._filter_active:
            return (self._matches[row], 0) if row < len(self._matches) else None
        seq = self._plain_base + row
        if seq >= self._plain_end or seq < self._first_seq:
            return None
        return seq, 0

    def _row_of(self, seq: int) -> int | None:
        """The first row showing line `seq` (or the next shown line), None past the end."""
        if self._wrap:
            at = bisect_left(self._wrap_seqs, seq, self._wrap_lo)
            if at >= len(self._wrap_seqs):
                return None
            return self._wrap_starts[at] - self._row_base()
        if self._filter_active:
            at = bisect_left(self._matches, seq)
            return at if at < len(self._matches) else None
        if seq >= self._plain_end:
            return None
        return max(0, seq - self._plain_base)

    def _top_seq(self) -> int | None:
        located = self._locate(round(self.scroll_y))
        return located[0] if located else None

    # ----------------------------------------------------------------- rendering

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            if name == "selection":
                style = self.screen.get_component_rich_style("screen--selection")
            else:
                style = self.get_component_rich_style(name, partial=True)
            self._styles[name] = style
        return style

    def _paint_values(self) -> tuple[int, Style, int, int, int, Selection | None]:
        """What every row of one paint shares: width, base style, rows, scroll offsets, selection."""
        scroll_x, scroll_y = self.scroll_offset
        return self.size.width, self.rich_style, self._view_height(), scroll_x, scroll_y, self.text_selection

    def render_lines(self, crop: Region) -> list[Strip]:
        self._painting = self._paint_values()  # once per paint, not per row: these walk the DOM
        try:
            return super().render_lines(crop)
        finally:
            self._painting = None

    def render_line(self, y: int) -> Strip:
        width, base, height, scroll_x, scroll_y, selection = self._painting or self._paint_values()
        if self._prompting and y == height:
            return self._render_prompt(width, base)
        located = self._locate(scroll_y + y)
        if located is None or located[0] < self._first_seq:
            return Strip.blank(width, base)
        seq, sub = located
        if self.following:
            # Tailing, rows move on at every frame: a cache would only feed the garbage collector
            # (a Strip is some twenty objects that outlive a frame, so they reach generation 2).
            return self._render_row(seq, sub, scroll_x, width, base, selection)
        key = (seq, sub, scroll_x, width, self._generation, selection)
        strip = self._strip_cache.get(key)
        if strip is None:
            strip = self._render_row(seq, sub, scroll_x, width, base, selection)
            self._strip_cache[key] = strip
        return strip

    def _render_row(
        self, seq: int, sub: int, scroll_x: int, width: int, base: Style, selection: Selection | None
    ) -> Strip:
        line = self._line(seq)
        if len(line) > self._widest and len(last_frame(line)) > self._widest:
            self._widest = len(last_frame(line))  # the horizontal range: the widest line drawn so far
            self._changed()
        _, arrived, stderr = self._batch(seq)
        prefix = _clock(arrived) if self._timestamps else ""
        needle = self._needle
        marker = ""
        if self._wrap:
            wrap_width = self._wrap_width
            content = self._wrapped_content(seq, line)
            start = sub * wrap_width
            end = start + wrap_width
            shown = _cut(prefix, content, start, end)
            if sub == WRAP_MAX_ROWS - 1 and len(prefix) + len(content) > end:
                rest = len(last_frame(line)) - (end - len(prefix))
                marker = f" … +{rest:,} chars"[:wrap_width]
                shown = shown[: wrap_width - len(marker)] + marker
        else:
            start = scroll_x
            content = visible_text(line, max(0, scroll_x + width + len(needle) - len(prefix)))
            shown = _cut(prefix, content, start, start + width)
        line_style = base + self._style("log-view--stderr") if stderr else base
        spans: list[tuple[int, int, Style]] = []
        if prefix and start < len(prefix):
            spans.append((0, len(prefix) - start, self._style("log-view--timestamp")))
        if _PICTURE.search(shown):
            glyph = self._style("log-view--glyph")
            spans.extend((found.start(), found.end(), glyph) for found in _PICTURE.finditer(shown))
        if needle:
            style = self._style("log-view--current-match" if seq == self._current else "log-view--match")
            size = len(needle)
            low = max(0, start - len(prefix) - size)
            high = min(len(content), start - len(prefix) + len(shown) + size)
            offset = len(prefix) - start
            found = _find_all(content, needle, low, high)
            spans.extend((at + offset, at + offset + size, style) for at in found)
        if selection is not None and (span := selection.get_span(seq)) is not None:
            select_start, select_end = span
            select_end = len(shown) + start if select_end == -1 else select_end
            spans.append((select_start - start, select_end - start, self._style("selection")))
        if marker:
            spans.append((len(shown) - len(marker), len(shown), self._style("log-view--glyph")))
        return _strip(shown, width, line_style, spans, start, seq)

    def _wrapped_content(self, seq: int, line: str) -> str:
        key = (seq, self._generation)
        content = self._wrap_cache.get(key)
        if content is None:
            content = visible_text(line, WRAP_MAX_ROWS * self._wrap_width + 1)
            self._wrap_cache[key] = content
        return content

    def _render_prompt(self, width: int, base: Style) -> Strip:
        """The search prompt, over the last row: `/query▌` and a hint when there is room."""
        style = base + self._style("log-view--prompt")
        visible = min(width, self._content_width())  # the vertical scrollbar covers the rest
        hint = "enter find · esc cancel "
        text = f"/{self._prompt_text}"
        if len(text) + 1 > visible:
            text = "…" + text[-max(0, visible - 2) :]
        segments = [Segment(text, style), Segment(" ", style + Style(reverse=True))]
        room = visible - len(text) - 1
        if room >= len(hint) + 2:
            segments.append(Segment(" " * (room - len(hint)), style))
            segments.append(Segment(hint, style + self._style("log-view--prompt-hint")))
        return Strip(segments).crop_extend(0, width, style)

    def _display_line(self, seq: int) -> str:
        """The whole line as displayed (for copying): timestamp prefix, glyphs, expanded tabs."""
        line = self._line(seq)
        prefix = _clock(self._batch(seq)[1]) if self._timestamps else ""
        return prefix + visible_text(line)

    # ----------------------------------------------------------------- status

    def _update_status(self) -> None:
        parts = []
        if self._needle:
            count = len(self._matches)
            if not count:
                parts.append("no match")
            elif self._current is not None and self._current >= self._first_seq:
                index = bisect_left(self._matches, self._current)
                parts.append(f"match {index + 1:,}/{count:,}")
            else:
                parts.append(f"{count:,} match{'' if count == 1 else 'es'}")
            if self._filtering:
                parts.append("filter")
        parts.append("following" if self.following else "paused")
        if self._wrap:
            parts.append("wrap")
        if self._timestamps:
            parts.append("time")
        parts.append(counted(self._total, "line"))
        status = " · ".join(parts)
        if status != self._status:
            self._status = status
            self.border_subtitle = status

    # ----------------------------------------------------------------- search prompt

    async def _on_key(self, event: events.Key) -> None:
        if not self._prompting:
            return  # Textual calls Widget._on_key too (handlers run along the MRO); bindings follow
        key = event.key
        if key == "enter":
            self._close_prompt(submit=True)
        elif key == "escape":
            self._close_prompt(submit=False)
        elif key == "backspace":
            self._set_prompt(self._prompt_text[:-1])
        elif key == "ctrl+u":
            self._set_prompt("")
        elif key == "ctrl+w":
            self._set_prompt(self._prompt_text.rstrip().rpartition(" ")[0])
        elif event.is_printable and event.character:
            self._set_prompt(self._prompt_text + event.character)
        else:
            return  # scrolling keys and the like still work while typing
        event.stop()
        event.prevent_default()

    def _on_blur(self, event: events.Blur) -> None:
        if self._prompting:  # focus moved on (tab, a click): the query typed so far stays
            self._prompting = False
            self._sync()

    def _on_paste(self, event: events.Paste) -> None:
        if self._prompting:
            event.stop()
            pasted = event.text.splitlines()
            if pasted:
                self._set_prompt(self._prompt_text + pasted[0])

    def _set_prompt(self, text: str) -> None:
        self._prompt_text = text
        self._set_query(text)

    def _set_query(self, query: str) -> None:
        if query == self._query:
            self.refresh()
            return
        self._query = query
        self._needle = query.lower()
        self._current = None
        self._rebuild()

    def _close_prompt(self, *, submit: bool) -> None:
        self._prompting = False
        if not submit:
            self._set_query(self._prompt_saved)
            self._sync()
            return
        self._set_query(self._prompt_text)
        self._sync()
        if self._matches:  # the first match from the top of the view down, as a pager searches
            top = self._locate(round(self.scroll_y))
            at = bisect_left(self._matches, top[0] if top else self._first_seq)
            self._jump(self._matches[at if at < len(self._matches) else 0])
        elif self._needle:
            self.notify(f"Not found: {self._query}", severity="warning", timeout=2)
        self.refresh()

    def _jump(self, seq: int) -> None:
        """Make line `seq` the current match and bring it on screen; stops following."""
        self.following = False
        self._current = seq
        self._invalidate()
        self._sync()
        row = self._row_of(seq)
        if row is not None:
            top, height = round(self.scroll_y), self._view_height()
            if not top <= row < top + height:
                with self._internal():
                    self.scroll_to(y=max(0, row - height // 3), animate=False)
        self._update_status()
        self.refresh()

    # ----------------------------------------------------------------- actions

    def action_search(self) -> None:
        """Open the search prompt on the last row."""
        self._prompt_saved = self._query
        self._prompt_text = ""
        self._prompting = True
        self._sync()

    def _step_match(self, forward: bool) -> None:
        if not self._needle:
            self.notify("No search: press / first", timeout=2)
            return
        self._sync()
        matches = self._matches
        if not matches:
            self.notify(f"Not found: {self._query}", severity="warning", timeout=2)
            return
        current = self._current
        if current is None or current < self._first_seq:
            target = matches[0] if forward else matches[-1]
        elif forward:
            at = bisect_right(matches, current)
            target = matches[at] if at < len(matches) else matches[0]
        else:
            at = bisect_left(matches, current) - 1
            target = matches[at] if at >= 0 else matches[-1]
        self._jump(target)

    def action_next_match(self) -> None:
        """The next matching line (towards the tail), wrapping around."""
        self._step_match(forward=True)

    def action_previous_match(self) -> None:
        """The previous matching line (towards the top), wrapping around."""
        self._step_match(forward=False)

    def action_clear_search(self) -> None:
        """Forget the search and the filter (passes the key on when there is none)."""
        if not self._query and not self._filtering:
            raise SkipAction()
        self._filtering = False
        self._set_query("")
        self._update_status()

    def action_toggle_filter(self) -> None:
        """Show only the lines that match the search (asks for one when there is none)."""
        self._filtering = not self._filtering
        if self._filtering and not self._needle:
            self.action_search()
        anchor = self._current if self._current is not None and not self.following else None
        self._rebuild(anchor)

    def action_follow(self) -> None:
        """Follow the tail again."""
        if self.following:
            self._sync()
        self.following = True

    def action_top(self) -> None:
        """Go to the oldest line in memory; stops following."""
        self.following = False
        with self._internal():
            self.scroll_to(0, 0, animate=False)

    def action_toggle_timestamps(self) -> None:
        """Prefix each line with its arrival time."""
        self._timestamps = not self._timestamps
        if self._wrap:
            self._rebuild()
        else:
            self._invalidate()
            self._sync()

    def action_toggle_wrap(self) -> None:
        """Wrap long lines to the width of the view."""
        self._wrap = not self._wrap
        with self._internal():
            self.scroll_to(x=0, animate=False)
        self._rebuild()

    def action_copy(self) -> None:
        """Copy the selection, else the current match's line, else the last line on screen."""
        selection = self.text_selection
        if selection is not None:
            extracted = self.get_selection(selection)
            text = extracted[0] if extracted else ""
        else:
            seq = self._current
            if seq is None or seq < self._first_seq:
                located = self._locate(round(self.scroll_y) + self._view_height() - 1)
                if located is None:
                    located = self._locate(self._row_count() - 1)
                seq = located[0] if located else None
            if seq is None or seq < self._first_seq:
                self.notify("Nothing to copy", timeout=2)
                return
            text = self._display_line(seq)
            selection = Selection(Offset(0, seq), Offset(0, seq))
        self.app.copy_to_clipboard(text)
        first = selection.start.y if selection.start else self._first_seq
        last = selection.end.y if selection.end else self._total - 1
        if first == last:
            preview = text if len(text) <= 40 else text[:39] + "…"
            self.notify(f"Copied line {first + 1:,}: {preview}", timeout=3)
        else:
            self.notify(f"Copied lines {first + 1:,}–{last + 1:,} ({counted(last - first + 1, 'line')})", timeout=3)

    def action_save(self) -> None:
        """Save the whole log, to a path the person confirms (offered in `save_folder`): a copy of
        the log file when there is one, else the lines in memory; with the times when `t` shows them."""
        from glmtui.tui.screens.save_log import SaveLog

        title = _UNSAFE_TITLE.sub("-", self._title).strip("-.") or "log"
        offered = (self.save_folder or Path.cwd()) / f"glmtui-log-{title}-{datetime.now():%Y%m%d-%H%M%S}.log"
        log_file = self._log_file if self._log_file is not None and self._log_file.is_file() else None
        if log_file is not None:
            source: list[tuple[float | None, str]] | Path = log_file
        else:
            first = self._first_seq
            source = [(self._batch(first + n)[1], line) for n, line in enumerate(self._lines)]
        timestamps = self._timestamps

        def chosen(target: Path | None) -> None:
            if target is not None:
                self._save(target, source, timestamps)

        self.app.push_screen(SaveLog(offered, timestamps), chosen)

    @work(group="log-view-save", exit_on_error=False)
    async def _save(self, target: Path, source: list[tuple[float | None, str]] | Path, timestamps: bool) -> None:
        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as out:
                if isinstance(source, Path) and not timestamps:
                    with open(source, "rb") as log:
                        shutil.copyfileobj(log, out)
                    return
                if isinstance(source, Path):  # each line with the time its log recorded for it
                    from glmtui.steplog import LogReader

                    lines = LogReader(source, fallback=source.stat().st_mtime).lines(final=True)
                    for stamp, data in lines:
                        out.write(_clock(stamp).encode() + data + b"\n")
                    return
                for stamp, line in source:
                    try:  # undecodable bytes kept by the reader come back as they were
                        data = line.encode("utf-8", "surrogateescape")
                    except UnicodeEncodeError:
                        data = line.encode("utf-8", "replace")
                    out.write((_clock(stamp).encode() if timestamps and stamp is not None else b"") + data + b"\n")

        try:
            await asyncio.to_thread(write)
        except FileExistsError:
            self.notify(f"{target} exists: ctrl+s again and give another name", title="Log not saved",
                        severity="error")
            return
        except OSError as error:
            self.notify(f"Could not save the log to {target}: {error.strerror or error}", title="Log not saved",
                        severity="error")
            return
        self.post_message(self.Saved(target, self))
        self.notify(f"Saved to {target}" + (" with the times shown" if timestamps else ""), title="Log saved")

    # ----------------------------------------------------------------- selection

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        start, end = selection
        first, last = self._first_seq, self._total - 1
        low = first if start is None else max(first, start.y)
        high = last if end is None else min(last, end.y)
        if high < low:
            return None
        if self._filter_active:
            matches = self._matches
            seqs: Iterable[int] = islice(matches, bisect_left(matches, low), bisect_right(matches, high))
        else:
            seqs = range(low, high + 1)
        parts = []
        for seq in seqs:
            span = selection.get_span(seq)
            if span is None:
                continue
            text = self._display_line(seq)
            span_start, span_end = span
            parts.append(text[span_start:] if span_end == -1 else text[span_start:span_end])
        return "\n".join(parts), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self._strip_cache.clear()
        self.refresh()
