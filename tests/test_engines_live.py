"""Several engines in one process, as the TUI and `glmtui serve` hold them: an engine killed in
the middle of a run fails that run and no other; the events of every engine come on one stream,
each engine going away and coming back on its own. Each test kills or stops an engine of its own
(tests/private_dockerd.py), never the machine's. And the engine interface they all satisfy."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fake_engine import FakeEngine
from plan_helpers import write_plan
from private_dockerd import PrivateDockerd

from glmtui.config import KEYS, Config
from glmtui.docker.engine import Engine
from glmtui.docker.interface import ContainerEngine
from glmtui.events import Output
from glmtui.plan.validate import load_plan
from glmtui.store import Store

pytestmark = pytest.mark.docker


def config_with(**values: Any) -> Config:
    return Config({**{key: spec.default for key, spec in KEYS.items()}, **values}, {})


@pytest.fixture
def doomed(busybox_image: str) -> Iterator[PrivateDockerd]:
    engine = PrivateDockerd()
    engine.start()
    try:
        engine.load_image_from_machine(busybox_image)
        yield engine
    finally:
        if engine.process is None:  # killed: a start takes back what it left, then all goes
            engine.start()
        engine.close()


async def test_an_engine_killed_mid_run_fails_that_run_and_the_other_goes_on(engine, doomed, tmp_path):
    from glmtui.service.service import Service

    far_plan = write_plan(tmp_path / "far", """
        version: 1
        name: far
        env: {engine: doomed, image: glmtui/busybox:latest}
        steps:
          - id: long
            run: echo started; sleep 300
        """)
    near_plan = write_plan(tmp_path / "near", """
        version: 1
        name: near
        env: {image: glmtui/busybox:latest}
        steps:
          - id: wait
            run: sleep 4
          - id: after
            needs: wait
            run: echo still here
        """)
    store = Store(tmp_path / "db.sqlite3", tmp_path / "runs", tmp_path / "execs")
    service = Service(engine, store, config_with(**{"engines.doomed": {"host": doomed.host}}))
    try:
        far = service.start_run(load_plan([far_plan]))
        near = service.start_run(load_plan([near_plan]))
        started = asyncio.Event()
        far.subscribe(lambda _, event: isinstance(event, Output) and "started" in event.text and started.set())
        await asyncio.wait_for(started.wait(), 60)
        doomed.kill()
        await asyncio.wait_for(asyncio.gather(far.task, near.task, return_exceptions=True), 120)
        assert far.result is not None and far.result.status == "failure"
        assert near.result is not None and near.result.status == "success", near.error
        far_record, near_record = store.run(far.id), store.run(near.id)
        assert (far_record.status, far_record.engine, near_record.status, near_record.engine) == (
            "failure", "doomed", "success", "default")
        long = next(step for step in far_record.steps if step.step == "long")
        assert long.status == "failure" and "doomed" in (long.reason or ""), long.reason
        assert (store.log_file(near.id, "after")).read_text() == "still here\n"
    finally:
        await service.shutdown()
        store.close()


async def test_the_events_of_every_engine_on_one_stream_each_reconnecting_alone(engine, busybox_image):
    from glmtui.docker.endpoints import resolve
    from glmtui.docker.engines import Engines
    from glmtui.docker.spec import EnvSpec
    from helpers import unique_name

    away = PrivateDockerd()
    away.start()
    away.load_image_from_machine(busybox_image)
    pool = Engines(resolve(configured={"away": {"host": away.host}}), connected=[engine])
    seen: list[Any] = []
    arrived = asyncio.Event()
    names = [unique_name() for _ in range(3)]

    async def follow() -> None:
        async for event in pool.events():
            if event.type == "engine" or event.name in names:
                seen.append(event)
                arrived.set()

    async def until(check: Any, what: str) -> None:
        async with asyncio.timeout(60):
            while not check():
                arrived.clear()
                await arrived.wait()

    def happened(engine_name: str, action: str, name: str | None = None) -> bool:
        return any(e.engine == engine_name and e.action == action and (name is None or e.name == name) for e in seen)

    following = asyncio.ensure_future(follow())
    try:
        await asyncio.sleep(1)
        far = await pool.get("away")
        await far.create_environment(EnvSpec(name=names[0], image=busybox_image))
        await until(lambda: happened("away", "start", names[0]), "the start on away")
        away.stop()
        await until(lambda: happened("away", "disconnected"), "away's disconnection")
        await engine.create_environment(EnvSpec(name=names[1], image=busybox_image))  # the other engine goes on
        await until(lambda: happened("default", "start", names[1]), "the start on default")
        assert not happened("default", "disconnected")
        away.start()
        await until(lambda: happened("away", "reconnected"), "away's reconnection")
        await far.create_environment(EnvSpec(name=names[2], image=busybox_image))
        await until(lambda: happened("away", "start", names[2]), "the start on away after it came back")
    finally:
        following.cancel()
        await engine.remove_environment(names[1], volume=True)
        await pool.close()
        away.close()


def test_the_engine_and_the_snapshot_fake_satisfy_the_engine_interface():
    """Every member of the declared interface, with the same parameters, async where it is async:
    what the TUI's snapshot tests run against is what the TUI runs against."""
    members = {name: member for name, member in vars(ContainerEngine).items()
               if not name.startswith("_") and (callable(member) or isinstance(member, property))}
    assert {"exec", "open_interactive", "events", "remote", "copy_out", "clean"} <= set(members)
    assert isinstance(FakeEngine(), ContainerEngine)
    for implementation in (Engine, FakeEngine):
        for name, member in members.items():
            theirs = getattr(implementation, name, None)
            assert theirs is not None, f"{implementation.__name__} has no {name}"
            if isinstance(member, property):
                continue  # a property, or a plain attribute
            wanted, got = inspect.signature(member), inspect.signature(theirs)
            assert list(got.parameters) == list(wanted.parameters), f"{implementation.__name__}.{name}{got}"
            assert inspect.iscoroutinefunction(theirs) == inspect.iscoroutinefunction(member), name
            assert inspect.isasyncgenfunction(theirs) == (name in ("logs", "stats", "events")), name
    for attribute in ("name", "host", "version_info"):
        assert attribute in ContainerEngine.__annotations__
        assert hasattr(FakeEngine(), attribute)
