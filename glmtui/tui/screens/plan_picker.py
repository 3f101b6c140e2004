"""Pickers of the plan pane: a plan file (`r`) and a past run (`p`), each with a fuzzy filter.

Plans come from the recent list (`recent-plans.json` in the user data folder, the
last ten loaded), `./plans` and the current folder.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.fuzzy import FuzzySearch
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from glmtui import paths
from glmtui.headless import COLORS, SYMBOLS
from glmtui.render import age

RECENT_FILE = "recent-plans.json"
RECENT_MAX = 10
PLAN_SUFFIXES = (".yaml", ".yml")
MAX_CANDIDATES = 500
_PLAN_KEYS = re.compile(r"^(steps|workflows)\s*:", re.MULTILINE)

T = TypeVar("T")


# --- recent plans -------------------------------------------------------------------------------


def recent_file() -> Path:
    return paths.data_dir() / RECENT_FILE


def recent_plans() -> list[Path]:
    """The plans loaded last, newest first (those still there)."""
    try:
        names = json.loads(recent_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    return [Path(name) for name in names if isinstance(name, str) and Path(name).is_file()][:RECENT_MAX]


def remember_plan(path: Path) -> None:
    """Put `path` first in the recent list (at most RECENT_MAX); a failure to write is not an error."""
    resolved = str(Path(path).resolve())
    names = [str(p) for p in recent_plans() if str(p) != resolved]
    names = [resolved, *names][:RECENT_MAX]
    target = recent_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(names, indent=1), encoding="utf-8")
        partial.replace(target)
    except OSError:
        pass


# --- candidates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    path: Path
    source: str  # recent | plans | here


def plan_candidates(cwd: Path) -> list[Candidate]:
    """Recent plans, then every plan file under ./plans, then plan files in the current folder."""
    found: list[Candidate] = []
    seen: set[Path] = set()

    def add(path: Path, source: str) -> None:
        resolved = path.resolve()
        if resolved not in seen and len(found) < MAX_CANDIDATES:
            seen.add(resolved)
            found.append(Candidate(path, source))

    for path in recent_plans():
        add(path, "recent")
    plans_dir = cwd / "plans"
    if plans_dir.is_dir():
        for path in sorted(_yaml_files(plans_dir)):
            add(path, "plans")
    for path in sorted(cwd.iterdir() if cwd.is_dir() else []):
        if path.suffix in PLAN_SUFFIXES and not path.name.startswith(".") and path.is_file() and _looks_like_plan(path):
            add(path, "here")
    return found


def _yaml_files(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
        out += [Path(root) / f for f in files if f.endswith(PLAN_SUFFIXES) and not f.startswith(".")]
        if len(out) > MAX_CANDIDATES:
            break
    return out


def _looks_like_plan(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as stream:
            return bool(_PLAN_KEYS.search(stream.read(65536)))
    except OSError:
        return False


def display_path(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        home = Path.home()
        try:
            return "~/" + str(path.resolve().relative_to(home))
        except ValueError:
            return str(path)


# --- a filtered list, shared by both pickers ------------------------------------------------------


def _highlight(text: str, query: str, search: FuzzySearch) -> tuple[float, Text]:
    if not query:
        return 1.0, Text(text)
    score, offsets = search.match(query, text)
    rendered = Text(text)
    for offset in offsets:
        rendered.stylize("bold reverse", offset, offset + 1)
    return score, rendered


class _FilterScreen(ModalScreen[T], Generic[T]):
    """A title, a filter Input and an OptionList; enter picks the highlighted option."""

    CSS_PATH = "plan.tcss"
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", id="plan_picker.close"),
        Binding("down", "move(1)", "Next", show=False, id="plan_picker.down"),
        Binding("up", "move(-1)", "Previous", show=False, id="plan_picker.up"),
    ]
    TITLE_TEXT = ""
    EMPTY_TEXT = "nothing here"
    PLACEHOLDER = "filter"

    def __init__(self) -> None:
        super().__init__(classes="plan-modal")
        self._search = FuzzySearch()
        self._values: dict[str, T] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="plan-dialog"):
            yield Label(self.TITLE_TEXT, classes="plan-dialog-title")
            yield Input(placeholder=self.PLACEHOLDER, id="picker-filter")
            yield OptionList(id="picker-options")
            yield Label("", id="picker-empty", classes="plan-dialog-help")
            yield Label("enter picks · esc closes", classes="plan-dialog-help")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#picker-filter", Input).focus()

    def entries(self) -> list[tuple[str, T, str]]:
        """(text to match, value, extra text shown after it)."""
        raise NotImplementedError

    def _fill(self, query: str) -> None:
        options = self.query_one("#picker-options", OptionList)
        scored = []
        for index, (text, value, extra) in enumerate(self.entries()):
            score, rendered = _highlight(text, query.strip(), self._search)
            if score <= 0:
                continue
            self.decorate(rendered, value)
            if extra:
                rendered.append("  " + extra, style="dim")
            scored.append((-score, index, rendered, value))
        scored.sort(key=lambda item: (item[0], item[1]))
        self._values = {}
        built = []
        for _, index, rendered, value in scored:
            key = f"o{index}"
            self._values[key] = value
            built.append(Option(rendered, id=key))
        options.set_options(built)
        if built:
            options.highlighted = 0
        empty = self.query_one("#picker-empty", Label)
        empty.update("" if built else (self.EMPTY_TEXT if not query else f"nothing matches {query!r}"))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one("#picker-options", OptionList)
        option = options.highlighted_option
        if option is not None and option.id in self._values:
            self.dismiss(self._values[option.id])
        else:
            self.submit_text(event.value)

    def decorate(self, rendered: Text, value: T) -> None:
        """Style an entry's text before it is shown."""

    def submit_text(self, text: str) -> None:
        """Enter with nothing highlighted."""

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id in self._values:
            self.dismiss(self._values[event.option.id])

    def action_move(self, delta: int) -> None:
        options = self.query_one("#picker-options", OptionList)
        if delta > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class PlanPickerScreen(_FilterScreen[Path]):
    """Pick a plan file: recent ones, ./plans, the current folder (or type a path)."""

    TITLE_TEXT = "Pick a plan"
    EMPTY_TEXT = "no plans here: put .yaml plans in ./plans, or type a path"
    PLACEHOLDER = "filter, or a path to a plan file"

    def __init__(self, candidates: list[Candidate], *, cwd: Path) -> None:
        super().__init__()
        self.candidates = candidates
        self.cwd = cwd

    def entries(self) -> list[tuple[str, Path, str]]:
        return [(display_path(c.path, self.cwd), c.path, c.source) for c in self.candidates]

    def submit_text(self, text: str) -> None:
        path = Path(text.strip()).expanduser()
        if text.strip() and not path.is_absolute():
            path = self.cwd / path
        if text.strip() and path.is_file():
            self.dismiss(path)
        else:
            self.notify(f"no plan file {text.strip()!r}" if text.strip() else "nothing to pick", severity="warning")


class PastRunsScreen(_FilterScreen[str]):
    """Pick a run: those still going first (`going`: glmtui.service.backend.WorkInfo), then the
    run records (newest first)."""

    TITLE_TEXT = "Past runs"
    EMPTY_TEXT = "no runs yet: enter runs the plan"
    PLACEHOLDER = "filter by run id, plan or status"

    def __init__(self, runs: list[Any], going: list[Any] | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.going = list(going or [])

    def entries(self) -> list[tuple[str, str, str]]:
        now = datetime.now(timezone.utc)
        out = []
        for info in self.going:
            when = age(datetime.fromtimestamp(info.created, timezone.utc), now)
            out.append((f"{SYMBOLS['running']} {info.id}  {info.title}  running", info.id, f"{when} · live"))
        for run in self.runs:
            glyph = SYMBOLS.get(run.status, "■" if run.status == "interrupted" else "·")
            took = "" if run.finished is None else f" · {run.finished - run.started:.1f}s"
            when = age(datetime.fromtimestamp(run.started, timezone.utc), now)
            out.append((f"{glyph} {run.id}  {run.plan}  {run.status}", run.id, f"{when}{took}"))
        return out

    def decorate(self, rendered: Text, value: str) -> None:
        if any(info.id == value for info in self.going):
            rendered.stylize(COLORS["running"], 0, 1)
            return
        run = next((r for r in self.runs if r.id == value), None)
        if run is not None:
            rendered.stylize(COLORS.get(run.status, "magenta"), 0, 1)
