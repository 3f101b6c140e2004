"""Units as the user types and reads them."""

from __future__ import annotations

import pytest

from glmtui.errors import BadInput
from glmtui.tui.widgets.chat import subject_of
from glmtui.units import counted, format_bytes, parse_duration, parse_memory


def test_counts_read_as_english() -> None:
    assert counted(1, "line") == "1 line"
    assert [counted(n, "more line") for n in (0, 2)] == ["0 more lines", "2 more lines"]
    assert counted(12_000, "step") == "12,000 steps"
    # as the chat shows a write_file call waiting for approval
    assert subject_of("write_file", {"path": "/w/a.md", "content": "# notes\n"}) == "/w/a.md  (1 line)"
    assert subject_of("write_file", {"path": "/w/a.md", "content": "a\nb\n"}) == "/w/a.md  (2 lines)"


def test_sizes_and_durations() -> None:
    assert parse_memory("1g") == 1024**3 and parse_memory("512m") == 512 * 1024**2
    assert format_bytes(828 * 1024) == "828.0KiB" and format_bytes(12) == "12B"
    assert parse_duration("90s") == 90 and parse_duration("2m") == 120
    with pytest.raises(BadInput, match="not a duration"):
        parse_duration("soon")
