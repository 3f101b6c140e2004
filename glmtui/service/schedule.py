"""When a saved agent runs: five-field cron, a nickname such as @daily, or `every 30m`, in a time zone.

Fire times are always computed from the schedule and a wall-clock instant (`next_after`,
`last_at_or_before`), never by adding up sleeps, so a scheduler that slept or saw the clock
jump only has to ask again. Cron is evaluated by cronsim, which follows Debian's cron across
daylight saving changes: a fixed-time job whose hour is skipped in spring runs right after the
change, and one whose hour repeats in autumn runs once; jobs with a wildcard hour run on the
wall clock as it is. Intervals count from the Unix epoch (`every 30m` fires at :00 and :30 UTC),
so they do not depend on when the scheduler started.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from glmtui.errors import BadInput, did_you_mean
from glmtui.units import counted

NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_EVERY = re.compile(r"^every\s+(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
FORMS = "five cron fields like '0 8 * * mon', @hourly, @daily, @weekly, @monthly, or 'every 30m'"


@dataclass(frozen=True)
class Schedule:
    text: str  # as written
    zone: tzinfo
    zone_name: str
    cron: str | None = None  # the five fields (a nickname's too)
    interval: int | None = None  # seconds, for `every N`

    def next_after(self, instant: float) -> float:
        """The first fire time strictly after `instant` (seconds since the epoch)."""
        if self.interval:
            return (math.floor(instant / self.interval) + 1) * self.interval
        return next(self._cron(datetime.fromtimestamp(instant, self.zone))).timestamp()

    def last_at_or_before(self, instant: float) -> float:
        """The latest fire time at or before `instant`."""
        if self.interval:
            return math.floor(instant / self.interval) * self.interval
        start = datetime.fromtimestamp(instant, self.zone)
        if not start.second and not start.microsecond:
            start += timedelta(microseconds=1)  # cronsim's reverse walk starts strictly before a whole minute
        return next(self._cron(start, reverse=True)).timestamp()

    def upcoming(self, after: float, count: int = 3) -> list[float]:
        times: list[float] = []
        for _ in range(count):
            after = self.next_after(after)
            times.append(after)
        return times

    def describe(self) -> str:
        """In words, e.g. "At 08:00 on Monday (Europe/Berlin)" or "every 30 minutes"."""
        if self.interval:
            unit = max(size for size in _UNIT_NAMES if self.interval % size == 0)
            amount = self.interval // unit
            return f"every {_UNIT_NAMES[unit]}" if amount == 1 else f"every {counted(amount, _UNIT_NAMES[unit])}"
        from cronsim import CronSim

        words = CronSim(self.cron, datetime.now(self.zone)).explain()
        return f"{words} ({self.zone_name})"

    def local(self, instant: float) -> datetime:
        return datetime.fromtimestamp(instant, self.zone)

    def _cron(self, start: datetime, reverse: bool = False):
        from cronsim import CronSim

        return CronSim(self.cron, start, reverse=reverse)


def parse_schedule(text: str, zone_name: str | None = None) -> Schedule:
    """A schedule as written in an agent file; BadInput says what is wrong and what would do."""
    zone, shown = zone_of(zone_name)
    written = " ".join(str(text).split())
    every = _EVERY.match(written)
    if every:
        seconds = int(every.group(1)) * _UNITS[every.group(2)[0].lower()]
        if seconds <= 0:
            raise BadInput(f"schedule {text!r}: the interval must be above 0")
        return Schedule(written, zone, shown, interval=seconds)
    if written.startswith("every"):
        raise BadInput(f"schedule {text!r} is not an interval: use e.g. 'every 10s', 'every 30m' or 'every 2h'")
    if written.startswith("@"):
        if written.lower() not in NICKNAMES:
            raise BadInput(f"schedule {text!r} is not one of {', '.join(NICKNAMES)}{did_you_mean(written.lower(), NICKNAMES)}")
        return _cron(written, NICKNAMES[written.lower()], zone, shown)
    fields = written.split(" ")
    if len(fields) != 5:
        close = did_you_mean("@" + written.lower(), NICKNAMES) if len(fields) == 1 else ""
        raise BadInput(f"schedule {text!r} is not {FORMS}{close}")
    return _cron(written, written, zone, shown)


def _cron(written: str, fields: str, zone: tzinfo, zone_name: str) -> Schedule:
    from cronsim import CronSim, CronSimError

    try:
        next(CronSim(fields, datetime.now(zone)))
    except CronSimError as err:
        raise BadInput(f"schedule {written!r}: {str(err).lower()} (cron fields: minute hour day month weekday)") from None
    except StopIteration:
        raise BadInput(f"schedule {written!r} never fires") from None
    return Schedule(written, zone, zone_name, cron=fields)


def zone_of(name: str | None) -> tuple[tzinfo, str]:
    """A time zone by its IANA name (Europe/Berlin), or the machine's when None."""
    if name is None:
        return local_zone()
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError):
        from zoneinfo import available_timezones

        raise BadInput(f"unknown time zone {name!r}{did_you_mean(name, available_timezones())}",
                       hint="an IANA name such as Europe/Berlin or UTC") from None


def local_zone() -> tuple[tzinfo, str]:
    """The machine's time zone, with its daylight saving rules: $TZ, else /etc/localtime."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    try:
        target = str(localtime.resolve())
        if "/zoneinfo/" in target:
            key = target.split("/zoneinfo/", 1)[1]
            return ZoneInfo(key), key
        with localtime.open("rb") as data:
            return ZoneInfo.from_file(data, key="localtime"), "local time"
    except (OSError, ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC"), "UTC"
