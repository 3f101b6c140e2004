"""A deterministic stand-in for the Docker engine, for TUI snapshots only.

Everything else is tested against the real engine; snapshots need fixed data
(names, ages, sizes) that a real engine cannot give. It satisfies the engine interface
(glmtui.docker.interface.ContainerEngine, checked by tests/test_engines_live.py): what a
snapshot never does (commands, files, images, clean) raises, saying so.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from glmtui.docker.engine import EngineEvent, Environment, Stats
from glmtui.errors import GlmtuiError, NotFound

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
    name = "default"
    host = "unix:///fake/docker.sock"
    version_info = {"Version": "27.0.0", "ApiVersion": "1.46"}
    remote = False

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
        found = next((env for env in self.environments if env.name == name), None)
        if found is None:
            raise NotFound(f"no environment named {name!r}")
        return found

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

    async def create_environment(self, spec, *, copy_in=(), on_progress=None) -> Environment:
        created = environment_aged(spec.name, "running", spec.image, timedelta(0))
        self.environments.append(created)
        return created

    async def remove_environment(self, name: str, *, volume: bool = False) -> None:
        self.environments = [e for e in self.environments if e.name != name]

    # What a snapshot never does.

    async def exec(self, name, argv, *, environment=None, workdir=None, user=None, timeout=None, on_output=None,
                   reap=False):
        raise _never("run commands")

    async def spawn(self, name, argv, *, user=None) -> None:
        raise _never("run commands")

    async def end_processes(self, name, variable, value, *, user=None) -> None:
        raise _never("run commands")

    async def open_interactive(self, name, argv=None, *, rows=24, columns=80, environment=None, workdir=None,
                               user=None):
        raise _never("open shells")

    async def logs(self, name, *, follow=False, tail=None, since=None, timestamps=False):
        raise _never("keep container logs")
        yield  # an async generator, as the engine's

    async def copy_in(self, name, source, destination) -> None:
        raise _never("hold files")

    async def copy_out(self, name, source, destination):
        raise _never("hold files")

    async def write_file(self, name, path, content, *, mode=0o644) -> None:
        raise _never("hold files")

    async def read_file(self, name, path) -> bytes:
        raise _never("hold files")

    async def user_ids(self, name) -> tuple[int, int]:
        return 1000, 1000

    async def image_exists(self, ref) -> bool:
        return any(ref in image["RepoTags"] for image in await self.list_images())

    async def ensure_image(self, ref, *, on_progress=None) -> None:
        if not await self.image_exists(ref):
            raise _never("pull images")

    async def build_image(self, context, tags, *, dockerfile="Dockerfile", args=None, network=None, on_progress=None):
        raise _never("build images")

    async def import_image(self, tar_path, repo, tag) -> None:
        raise _never("import images")

    async def tag_image(self, source, repo, tag) -> None:
        raise _never("tag images")

    async def clean(self, *, going_runs=(), interrupted_runs=(), names=(), every_stopped=False, volumes=False,
                    dry_run=False):
        raise _never("clean")


def _never(what: str) -> GlmtuiError:
    return GlmtuiError(f"the snapshot tests' fake engine does not {what}")


class UnreachableEngine:
    """What the app sees while no engine answers."""

    @staticmethod
    async def connect():
        from glmtui.errors import EngineUnreachable

        raise EngineUnreachable("cannot reach the Docker engine at unix:///fake/docker.sock (no such file)")
