"""The scheduler of saved agents with its clock injected, where hours must pass: a missed fire
time caught up once or skipped, a schedule across a daylight saving change and a clock set back,
an overlapping execution skipped, executions waiting in order for a slot. Real engine, real
executions (the scripted model server), in process."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agent_helpers import KEY_ENV, new_key, project, write_agent
from model_server import text
from plan_helpers import make_store

pytestmark = pytest.mark.docker

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


class FakeClock:
    """The wall clock as the test sets it; sleeping moves it on at once."""

    def __init__(self, now: float) -> None:
        self.time = now

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += seconds
        await asyncio.sleep(0)


@pytest.fixture
def service_for(engine, tmp_path, monkeypatch):
    """`service_for(server, **settings)`: a Service on the real engine, a store of its own and the
    project config that points at the scripted model server."""
    from glmtui.config import Config
    from glmtui.service.service import Service

    monkeypatch.setenv(KEY_ENV, new_key())
    made = []

    def make(server, max_executions=None, **settings):
        project(tmp_path, server, **settings)
        service = Service(engine, make_store(tmp_path / "data"), Config.load(cwd=tmp_path), max_executions=max_executions)
        made.append(service)
        return service

    yield make
    for service in made:
        service.store.close()


def apply(service, folder, text_, name, **subs):
    from glmtui.service.definition import load_agent_file

    definition = load_agent_file(write_agent(folder, text_, f"{name}.yaml", NAME=name, **subs), service.config)
    service.agents.apply(definition)
    return definition


async def settle(service) -> None:
    """Wait for every execution the scheduler started."""
    while service.running():
        await asyncio.wait([work.task for work in service.running()])


HOURLY = """
    version: 1
    name: @NAME@
    prompt: Say hello.
    env: @ENV@
    approval: auto
    schedule: "@hourly"
    timezone: UTC
    catch_up: @CATCH@
"""


async def test_a_missed_fire_time_is_caught_up_once_or_skipped(service_for, make_env, model_server, tmp_path):
    from glmtui.service.scheduler import Scheduler

    env = (await make_env()).name
    service = service_for(model_server)
    apply(service, tmp_path, HOURLY, "once", ENV=env, CATCH="once")
    apply(service, tmp_path, HOURLY, "skip", ENV=env, CATCH="skip")
    ten = datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()
    for name in ("once", "skip"):
        service.agents.set_handled(name, ten)  # the last scheduler stopped after the 10:00 fire time
    clock = FakeClock(ten + 5 * 3600 + 600)  # it starts at 15:10: five fire times were missed
    model_server.script(text("caught up", usage=(5, 1)))
    scheduler = Scheduler(service, clock)
    scheduler.tick()
    await settle(service)
    fifteen = ten + 5 * 3600
    [caught] = service.agents.executions("once")
    assert (caught.trigger, caught.status, caught.scheduled, caught.result) == ("catch-up", "success", fifteen, "caught up")
    [skipped] = service.agents.executions("skip")
    assert (skipped.trigger, skipped.status, skipped.scheduled) == ("catch-up", "skipped", fifteen)
    assert skipped.reason == "missed while no scheduler ran (catch_up: skip)"
    assert scheduler.next_fire == fifteen + 3600

    model_server.script(text("on time", usage=(5, 1)), text("on time", usage=(5, 1)))
    clock.time = fifteen + 3600 + 0.05
    scheduler.tick()
    await settle(service)
    for name in ("once", "skip"):
        latest = service.agents.executions(name)[0]
        assert (latest.trigger, latest.status, latest.scheduled) == ("schedule", "success", fifteen + 3600)
        assert service.agents.get(name).handled_until == fifteen + 3600
    assert len(model_server.requests) == 3


async def test_fire_times_follow_the_wall_clock_across_dst_and_a_clock_set_back(service_for, model_server, tmp_path):
    from glmtui.service.scheduler import Scheduler

    service = service_for(model_server)
    apply(service, tmp_path, """
        version: 1
        name: @NAME@
        prompt: Say hello.
        env: t-absent-environment
        approval: auto
        schedule: "30 2 * * *"
        timezone: Europe/Berlin
    """, "nightly")
    start = datetime(2024, 3, 30, 12, 0, tzinfo=BERLIN).timestamp()
    service.agents.set_handled("nightly", start)
    clock = FakeClock(start)
    scheduler = Scheduler(service, clock)
    scheduler.tick()
    fired = []
    for _ in range(3):
        clock.time = scheduler.next_fire
        scheduler.tick()
        await settle(service)
        fired.append(datetime.fromtimestamp(service.agents.executions("nightly")[0].scheduled, BERLIN).isoformat())
    assert fired == ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00", "2024-04-02T02:30:00+02:00"]
    latest = service.agents.executions("nightly")[0]
    assert latest.status == "failure" and latest.trigger == "schedule"
    assert latest.reason == ("environment t-absent-environment does not exist (glmtui env create t-absent-environment, "
                             "or give the agent an env block with an image)")
    clock.time -= 2 * 86400  # the clock is set back two days: the schedule goes on from there, no waiting
    scheduler.tick()
    assert datetime.fromtimestamp(scheduler.next_fire, BERLIN).isoformat() == "2024-03-31T03:00:00+02:00"


SLOW = """
    version: 1
    name: @NAME@
    prompt: Work on it.
    env: @ENV@
    approval: auto
    schedule: every 10s
"""


async def test_an_overlap_is_skipped_and_executions_wait_in_order(service_for, make_env, model_server, tmp_path):
    from glmtui.service.scheduler import Scheduler

    env = (await make_env()).name
    service = service_for(model_server, max_executions=1)
    apply(service, tmp_path, SLOW, "first", ENV=env)
    apply(service, tmp_path, SLOW, "second", ENV=env)
    model_server.script(text("first done", usage=(3, 1), delay=2.0), text("second done", usage=(3, 1)))
    clock = FakeClock(time.time())
    scheduler = Scheduler(service, clock)
    scheduler.tick()
    clock.time = scheduler.next_fire + 0.01
    scheduler.tick()
    await model_server.wait_for_requests_async(1)
    first, second = (service.agents.executions(name)[0] for name in ("first", "second"))
    assert (first.status, second.status) == ("running", "queued"), "one slot: the second waits"
    clock.time += 10
    scheduler.tick()  # both are still busy: neither is started again
    for name in ("first", "second"):
        skipped = service.agents.executions(name)[0]
        assert skipped.status == "skipped" and skipped.trigger == "schedule"
        assert skipped.reason.startswith("execution ") and skipped.reason.endswith(" of it still runs")
    await settle(service)
    first, second = (service.agents.executions(name)[1] for name in ("first", "second"))
    assert (first.status, second.status) == ("success", "success")
    assert second.started >= first.finished, "the second started when the first had ended"
    assert [r.body["messages"][1]["content"] for r in model_server.requests] == ["Work on it.", "Work on it."]


async def test_agents_applied_paused_and_removed_elsewhere_are_seen_at_the_next_pass(service_for, model_server, tmp_path):
    from glmtui.service.definition import load_agent_file
    from glmtui.service.records import AgentStore
    from glmtui.service.scheduler import Scheduler

    service = service_for(model_server)
    clock = FakeClock(time.time())
    scheduler = Scheduler(service, clock)
    scheduler.tick()
    assert scheduler.entries == {}
    other = make_store(tmp_path / "data")  # another process's connection: `glmtui agents ...`
    try:
        records = AgentStore(other)
        path = write_agent(tmp_path, "version: 1\nname: yearly\nprompt: x\napproval: auto\nschedule: '@yearly'\n")
        records.apply(load_agent_file(path, service.config))
        scheduler.tick()
        assert list(scheduler.entries) == ["yearly"]
        assert datetime.fromtimestamp(scheduler.next_fire).strftime("%m-%d %H:%M") == "01-01 00:00"
        records.set_status("yearly", "paused")
        scheduler.tick()
        assert scheduler.entries == {}
        records.set_status("yearly", "active")
        scheduler.tick()
        assert list(scheduler.entries) == ["yearly"]
        records.remove("yearly")
        scheduler.tick()
        assert scheduler.entries == {}
    finally:
        other.close()
