"""Schedules of saved agents: cron (five fields), nicknames, intervals; next fire times in a
time zone across daylight saving changes; the problems a person can write."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from glmtui.errors import BadInput
from glmtui.service.schedule import local_zone, parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")


def at(*fields: int) -> float:
    return datetime(*fields, tzinfo=BERLIN).timestamp()


def shown(schedule, instants: list[float]) -> list[str]:
    return [schedule.local(t).isoformat() for t in instants]


def test_cron_nicknames_and_intervals_with_their_next_three_fire_times():
    weekly = parse_schedule("0 8 * * mon", "Europe/Berlin")
    assert shown(weekly, weekly.upcoming(at(2024, 1, 3, 9, 0))) == [
        "2024-01-08T08:00:00+01:00", "2024-01-15T08:00:00+01:00", "2024-01-22T08:00:00+01:00"]
    assert weekly.describe() == "At 08:00 on Monday (Europe/Berlin)"
    daily = parse_schedule("@daily", "Europe/Berlin")
    assert shown(daily, daily.upcoming(at(2024, 1, 3, 9, 0), 2)) == ["2024-01-04T00:00:00+01:00", "2024-01-05T00:00:00+01:00"]
    hourly = parse_schedule("@hourly", "UTC")
    assert hourly.next_after(3600 * 5) == 3600 * 6 and hourly.describe() == "At the start of every hour (UTC)"
    for nickname in ("@midnight", "@weekly", "@monthly", "@yearly", "@annually"):
        assert parse_schedule(nickname, "UTC").cron
    every = parse_schedule("every 30m")
    assert every.upcoming(1000) == [1800, 3600, 5400], "intervals count from the epoch"
    assert every.next_after(1800) == 3600 and every.last_at_or_before(1800) == 1800
    assert [parse_schedule(text).describe() for text in ("every 10s", "every 2h", "every 90m", "every 1d")] == [
        "every 10 seconds", "every 2 hours", "every 90 minutes", "every day"]


def test_fire_times_across_daylight_saving_changes():
    nightly = parse_schedule("30 2 * * *", "Europe/Berlin")
    # spring: 02:00-03:00 does not exist on 31 March 2024; the job runs right after the change
    assert shown(nightly, nightly.upcoming(at(2024, 3, 30, 12, 0))) == [
        "2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00", "2024-04-02T02:30:00+02:00"]
    # autumn: 02:00-03:00 happens twice on 27 October 2024; the job runs once
    assert shown(nightly, nightly.upcoming(at(2024, 10, 26, 12, 0))) == [
        "2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00", "2024-10-29T02:30:00+01:00"]
    hourly = parse_schedule("0 * * * *", "Europe/Berlin")
    times = hourly.upcoming(at(2024, 10, 27, 0, 30), 4)
    assert shown(hourly, times) == ["2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00",
                                    "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"]
    assert [b - a for a, b in zip(times, times[1:])] == [3600, 3600, 3600], "an hour apart on the real clock"
    assert nightly.last_at_or_before(at(2024, 4, 1, 2, 30)) == at(2024, 4, 1, 2, 30)
    assert nightly.last_at_or_before(at(2024, 4, 1, 2, 29)) == at(2024, 3, 31, 3, 0)


@pytest.mark.parametrize("text, message", [
    ("0 8 * * * *", "schedule '0 8 * * * *' is not five cron fields like '0 8 * * mon', @hourly, @daily, @weekly, "
                    "@monthly, or 'every 30m'"),
    ("61 * * * *", "schedule '61 * * * *': bad minute (cron fields: minute hour day month weekday)"),
    ("0 0 30 2 *", "schedule '0 0 30 2 *': bad day-of-month (cron fields: minute hour day month weekday)"),
    ("@reboot", "schedule '@reboot' is not one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually"),
    ("daily", "schedule 'daily' is not five cron fields like '0 8 * * mon', @hourly, @daily, @weekly, @monthly, or "
              "'every 30m' (did you mean '@daily'?)"),
    ("every 0s", "schedule 'every 0s': the interval must be above 0"),
    ("every 5 fortnights", "schedule 'every 5 fortnights' is not an interval: use e.g. 'every 10s', 'every 30m' or "
                           "'every 2h'"),
])
def test_problems_say_what_would_do(text, message):
    with pytest.raises(BadInput) as raised:
        parse_schedule(text, "UTC")
    assert str(raised.value) == message


def test_the_machines_zone_is_the_default(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    assert local_zone()[1] == "America/New_York"
    schedule = parse_schedule("0 9 * * *")
    assert schedule.local(schedule.next_after(datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("UTC")).timestamp())).isoformat() \
        == "2024-07-01T09:00:00-04:00"
    with pytest.raises(BadInput, match=r"unknown time zone 'Mars/Olympus'"):
        parse_schedule("@daily", "Mars/Olympus")
