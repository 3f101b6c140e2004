"""A deterministic stand-in for the Docker engine, for TUI snapshots only.

Everything else is tested against the real engine; snapshots need fixed data
(names, ages, sizes) that a real engine cannot give.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from glmtui.docker.engine import EngineEvent, Environment, Stats

NOW = datetime.now(timezone.utc)


def environment(name: str, status: str, image: str, minutes: int) -> Environment:
    return environment_aged(name, status, image, timedelta(minutes=minutes), NOW)


def environment_aged(name: str, status: str, image: str, age: timedelta, now: datetime | None = None) -> Environment:
    """An environment created `age` before `now` (default: this moment), so its age shows the same
    whenever the app is built."""
    return Environment(
        name=name, id=f"{name:0<12}"[:12] + "0" * 52, status=status, image=image,
        created=(now or datetime.now(timezone.utc)) - age, workdir="/workspace",
    )


class FakeEngine:
    host = "unix:///fake/docker.sock"

    def __init__(self, environments: list[Environment] | None = None) -> None:
        self.environments = environments if environments is not None else [
            environment("fix-tests", "running", "glmtui/workspace:latest", 95),
            environment("scratch", "exited", "glmtui/busybox:latest", 60 * 26),
            environment("docs", "running", "glmtui/workspace:latest", 7),
        ]
        self.stats_samples = {
            "fix-tests": Stats(12.5, 180 * 1024**2, 1024**3),
            "docs": Stats(0.4, 24 * 1024**2, 1024**3),
        }

    async def close(self) -> None:
        pass

    async def list_environments(self, *, include_runs: bool = True) -> list[Environment]:
        return list(self.environments)

    async def get_environment(self, name: str) -> Environment:
        return next(env for env in self.environments if env.name == name)

    async def list_images(self) -> list[dict]:
        return [{"RepoTags": ["glmtui/workspace:latest"]}, {"RepoTags": ["glmtui/busybox:latest"]}]

    async def stats(self, name: str):
        yield self.stats_samples.get(name, Stats(0.0, 0, 1024**3))
        await asyncio.Event().wait()

    async def events(self, *, reconnect: bool = True):
        await asyncio.Event().wait()
        yield EngineEvent("engine", "never")

    async def start_environment(self, name: str) -> None:
        self.environments = [replace(e, status="running") if e.name == name else e for e in self.environments]

    async def stop_environment(self, name: str, *, timeout: float = 10) -> None:
        self.environments = [replace(e, status="exited") if e.name == name else e for e in self.environments]

    async def inspect_environment(self, name: str) -> dict:
        return {
            "Id": "0" * 64,
            "State": {"Status": "running"},
            "Config": {"Image": "glmtui/workspace:latest", "WorkingDir": "/workspace", "User": "dev",
                       "Labels": {"glmtui.managed": "true", "glmtui.env": name}},
            "HostConfig": {"Memory": 1024**3, "NanoCpus": 2 * 10**9, "PidsLimit": 1024, "NetworkMode": "bridge",
                           "Init": True, "SecurityOpt": ["no-new-privileges"], "CapDrop": ["ALL"], "CapAdd": ["CHOWN"]},
            "Mounts": [{"Name": f"glmtui-{name}-workspace", "Destination": "/workspace", "RW": True}],
            "NetworkSettings": {"Ports": {}},
        }


class UnreachableEngine:
    """What the app sees while no engine answers."""

    @staticmethod
    async def connect():
        from glmtui.errors import EngineUnreachable

        raise EngineUnreachable("cannot reach the Docker engine at unix:///fake/docker.sock (no such file)")
