"""Parsing of the human units used in config, plans and the command line."""

from __future__ import annotations

import re

from glmtui.errors import BadInput

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_MEMORY_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_FACTORS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_MEMORY = 6 * 1024**2  # Docker refuses less than 6 MiB


def parse_memory(value: str | int, *, what: str = "memory") -> int:
    """'512m', '1g', '1.5G', 1048576 -> bytes, at least what Docker takes."""
    number = parse_size(value, what=what)
    if number < MIN_MEMORY:
        raise BadInput(f"{what}: {value!r} is too small", hint="Docker needs at least 6m")
    return number


def parse_size(value: str | int, *, what: str) -> int:
    """'100m', '64k', '1.5G', 1048576 -> bytes."""
    if isinstance(value, bool):
        raise BadInput(f"{what}: {value!r} is not a size", hint="use e.g. 512m or 2g")
    if isinstance(value, int):
        return value
    match = _MEMORY.match(str(value))
    if not match:
        raise BadInput(f"{what}: {value!r} is not a size", hint="use e.g. 512m or 2g")
    return int(float(match.group(1)) * _MEMORY_FACTORS[match.group(2).lower()])


def parse_cpus(value: str | float, *, what: str = "cpus") -> float:
    """'2', 1.5 -> a positive float."""
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{what}: {value!r} is not a number", hint="use e.g. 2 or 0.5") from None
    if not 0 < cpus <= 1024:
        raise BadInput(f"{what}: {value!r} is out of range", hint="use a number above 0")
    return cpus


def parse_positive_int(value: str | int, *, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadInput(f"{what}: {value!r} is not a whole number") from None
    if number <= 0:
        raise BadInput(f"{what}: {value!r} must be above 0")
    return number


def parse_duration(value: str | int | float, *, what: str = "duration") -> float:
    """'30s', '10m', '1h', '250ms', 45 -> seconds."""
    if isinstance(value, bool):
        raise BadInput(f"{what}: {value!r} is not a duration", hint="use e.g. 30s, 10m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise BadInput(f"{what}: {value!r} is not a duration", hint="use e.g. 30s, 10m or 1h")
        seconds = float(match.group(1)) * _DURATION_FACTORS[(match.group(2) or "s").lower()]
    if seconds < 0:
        raise BadInput(f"{what}: {value!r} is negative")
    return seconds


def counted(number: int, noun: str) -> str:
    """`number` and `noun`, plural unless one: "1 line", "2 lines", "12,000 lines"."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def format_bytes(number: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(number) < 1024:
            return f"{number:.0f}{unit}" if unit == "B" else f"{number:.1f}{unit}"
        number /= 1024
    return f"{number:.1f}TiB"
