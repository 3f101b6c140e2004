"""What the benchmarks share: the size of `seq` output, the machine's CPU, PASS/MISS, the table."""

from __future__ import annotations

import platform
from pathlib import Path


def seq_bytes(n: int) -> int:
    """The exact size of `seq n`'s output: every number's digits plus a newline each."""
    total, digits, low = n, 1, 1
    while low <= n:
        high = min(n, low * 10 - 1)
        total += (high - low + 1) * digits
        digits, low = digits + 1, low * 10
    return total


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def verdict(passed: bool | None) -> str:
    return "" if passed is None else ("PASS" if passed else "MISS")



def aligned(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Table lines: the figure's name and the goal left-aligned, the numbers between right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:5], widths[1:5])]
        cells += [r[5].ljust(widths[5]), r[6]]
        lines.append("  ".join(cells).rstrip())
    return lines
