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
from typing import Any

from rich.text import Text

from glmtui import paths
from glmtui.render import COLORS, SYMBOLS, age
from glmtui.tui.screens.filter_screen import FilterScreen

RECENT_FILE = "recent-plans.json"
RECENT_MAX = 10
PLAN_SUFFIXES = (".yaml", ".yml")
MAX_CANDIDATES = 500
_PLAN_KEYS = re.compile(r"^(steps|workflows)\s*:", re.MULTILINE)

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


class PlanPickerScreen(FilterScreen[Path]):
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


class PastRunsScreen(FilterScreen[str]):
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
