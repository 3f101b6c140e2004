"""What the benchmarks share: the size of `seq` output, the machine's CPU, PASS/MISS."""

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

