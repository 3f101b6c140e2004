"""The environments pane: every glmtui environment of every engine, kept current by their events.

With more than one engine (`by_engine`, set by the app) the pane has an engine column and its rows
are keyed `ENGINE/NAME` (names are unique per engine only); with one, by name."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import DataTable

from glmtui.render import age
from glmtui.tui.messages import EnvironmentAction
from glmtui.units import format_bytes

COLUMNS = (("", "mark"), ("name", "name"), ("engine", "engine"), ("status", "status"), ("cpu", "cpu"), ("mem", "mem"),
           ("age", "age"), ("image", "image"))
COMPACT = ("mark", "name", "engine", "status")  # the columns kept when the pane is narrow
FULL_WIDTH = 56  # the pane's content width under which it shows COMPACT only
NAME_WIDTH = 16  # longer names end in … (whole in the details, enter), so the image column stays whole
STATUS_MARKS = {"running": ("●", "green"), "exited": ("○", "red"), "created": ("○", "yellow"), "paused": ("◌", "yellow")}


class EnvironmentsPane(DataTable):
    """One row per environment: status, image, age, CPU and memory (for running ones on screen);
    only its name and status when the pane is narrow (a small terminal)."""

    BINDINGS = [
        Binding("n", "env('new')", "New", id="env.new"),
        Binding("s", "env('start_stop')", "Start/stop", id="env.start_stop"),
        Binding("e", "env('shell')", "Shell", id="env.shell"),
        Binding("d", "env('remove')", "Remove", id="env.remove"),
        Binding("l", "env('logs')", "Logs", id="env.logs"),
        Binding("c", "env('chat')", "Chat here", id="env.chat"),
        Binding("enter", "env('details')", "Details", id="env.details"),
        Binding("j", "cursor_down", "Down", show=False, id="env.down"),
        Binding("k", "cursor_up", "Up", show=False, id="env.up"),
    ]

    environments: reactive[list[Any]] = reactive(list, always_update=True)
    stats: reactive[dict[str, Any]] = reactive(dict, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=True)
        self.border_title = "Environments"
        self._shown: list[Any] | None = None  # None: nothing listed yet
        self.compact = False
        self.by_engine = False

    def on_mount(self) -> None:
        self._add_columns()

    def on_resize(self) -> None:
        self.lay_out(compact=self.content_size.width < FULL_WIDTH, by_engine=self.by_engine)

    def lay_out(self, *, compact: bool, by_engine: bool) -> None:
        """The columns for the pane's width (`compact`) and the number of engines (`by_engine`)."""
        if (compact, by_engine) == (self.compact, self.by_engine):
            return
        self.compact, self.by_engine = compact, by_engine
        self.clear(columns=True)
        self._add_columns()
        shown, self._shown = self._shown, None
        if shown is not None:
            self.watch_environments(shown)

    def _add_columns(self) -> None:
        for label, key in COLUMNS:
            if (key in COMPACT or not self.compact) and (key != "engine" or self.by_engine):
                self.add_column(label, key=key, width=1 if key == "mark" else None)

    def key_of(self, env: Any) -> str:
        return f"{env.engine}/{env.name}" if self.by_engine else env.name

    @property
    def selected_key(self) -> str | None:
        """The highlighted row's key (ENGINE/NAME, or NAME with one engine); None: no environment."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value or None  # "": the hint

    @property
    def selected(self) -> str | None:
        """The highlighted environment's name."""
        key = self.selected_key
        return key.rpartition("/")[2] if key is not None else None

    def visible_names(self) -> list[str]:
        """The keys of the environments whose rows are on screen now (stats are fetched only for those)."""
        first = int(self.scroll_y)
        rows = [self.coordinate_to_cell_key((row, 0)).row_key.value or "" for row in range(self.row_count)]
        return rows[first : first + max(self.size.height, 1)]

    def watch_environments(self, environments: list[Any]) -> None:
        if not self.columns or environments == self._shown:
            return
        self._shown = list(environments)
        keep = self.selected_key
        self.clear()
        for column in self.columns.values():  # sized by the rows to come, not by those gone (the hint)
            if column.auto_width:
                column.content_width = column.label.cell_len
        for env in environments:
            mark, color = STATUS_MARKS.get(env.status, ("?", "white"))
            name = env.name if len(env.name) <= NAME_WIDTH else env.name[: NAME_WIDTH - 1] + "…"  # room for the image
            key = self.key_of(env)
            usage = self._usage(key) if env.running else ("", "")  # a stopped one has none
            image = env.image.removesuffix(":latest")
            cells = (Text(mark, style=color), name, env.engine, env.status, *usage, _age(env.created), image)
            self.add_row(*(cell for cell, (_, column) in zip(cells, COLUMNS) if column in self.columns), key=key)
        if not environments:  # a row that says what to do, in place of an empty table
            hint = (Text(""), Text("none yet: n creates one", style="dim"), *[Text("")] * (len(self.columns) - 2))
            self.add_row(*hint[: len(self.columns)], key="")
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep))
        self.border_subtitle = f"{len(environments)}" if environments else "none · n to create"

    def watch_stats(self, stats: dict[str, Any]) -> None:
        """Only cells whose text changed: each update redraws the table."""
        if self.compact:
            return
        running = {self.key_of(env) for env in self._shown or () if env.running}
        for row_key in self.rows:
            key = row_key.value
            if not key:  # the hint row
                continue
            # a stopped environment's (or one whose samples ended) last sample is not its usage now
            usage = self._usage(key) if key in running else ("", "")
            for column, text in zip(("cpu", "mem"), usage):
                if self.get_cell(key, column) != text:
                    self.update_cell(key, column, text, update_width=len(text) > self.columns[column].width)

    def _usage(self, key: str) -> tuple[str, str]:
        sample = self.stats.get(key)
        if sample is None:
            return "", ""
        return f"{sample.cpu_percent:.0f}%", f"{format_bytes(sample.memory)} {sample.memory_percent:.0f}%"

    def action_env(self, action: str) -> None:
        key = self.selected_key
        if action != "new" and key is None:
            self.notify("no environment selected: n creates one", severity="warning")
            return
        engine, _, name = (key or "").rpartition("/")
        self.post_message(EnvironmentAction(action, name or None, engine or None))


def _age(created: datetime) -> str:
    return age(created, datetime.now(timezone.utc)).removesuffix(" ago")
