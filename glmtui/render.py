"""Small helpers for human-readable output, on the command line and in the TUI: tables, ages,
token counts, and the symbol and colour of each status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

SYMBOLS = {"success": "✔", "failure": "✘", "skipped": "↷", "cancelled": "■", "running": "▶", "waiting": "·"}
COLORS = {"success": "green", "failure": "red", "skipped": "yellow", "cancelled": "magenta", "running": "cyan"}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned table, like `docker ps`: easy to read and to grep."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def age(when: datetime, now: datetime | None = None) -> str:
    seconds = int(((now or datetime.now(timezone.utc)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def tokens_text(count: int) -> str:
    """1234 -> 1.2k, 12400 -> 12.4k, 1234567 -> 1.2M."""
    if count < 1000:
        return str(count)
    if count < 100_000:
        return f"{count / 1000:.1f}k"
    if count < 1_000_000:
        return f"{count // 1000}k"
    return f"{count / 1_000_000:.1f}M"
