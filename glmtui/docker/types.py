"""What the engine layer hands back: environments, command results, events, usage samples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from glmtui.docker.spec import LABEL_ENV, LABEL_RUN, LABEL_WORKDIR


@dataclass(frozen=True)
class Environment:
    name: str
    id: str
    status: str  # created, running, paused, restarting, exited, dead
    image: str
    created: datetime
    workdir: str
    run_id: str | None = None
    ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    engine: str = "default"  # the name of the engine it is on

    @property
    def running(self) -> bool:
        return self.status == "running"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id[:12],
            "status": self.status,
            "image": self.image,
            "created": self.created.isoformat(),
            "workdir": self.workdir,
            "run_id": self.run_id,
            "ports": list(self.ports),
            "engine": self.engine,
        }

    @classmethod
    def from_list_entry(cls, entry: Mapping[str, Any], engine: str = "default") -> Environment:
        labels = entry.get("Labels") or {}
        ports = tuple(
            f"{p.get('IP', '')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}".lstrip(":")
            if p.get("PublicPort")
            else f"{p['PrivatePort']}/{p['Type']}"
            for p in entry.get("Ports") or []
        )
        return cls(
            name=labels.get(LABEL_ENV, entry["Names"][0].lstrip("/")),
            id=entry["Id"],
            status=entry["State"],
            image=entry["Image"],
            created=datetime.fromtimestamp(entry["Created"], tz=timezone.utc),
            workdir=labels.get(LABEL_WORKDIR, "/"),
            run_id=labels.get(LABEL_RUN),
            ports=ports,
            labels=labels,
            engine=engine,
        )


@dataclass
class ExecResult:
    exit_code: int
    duration: float
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    reason: str | None = None  # why it ended other than by exiting: timeout, killed, not found

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class EngineEvent:
    type: str  # container, image, volume, engine
    action: str  # start, die, stop, destroy, create, ... or disconnected / reconnected
    name: str | None = None  # the environment
    id: str | None = None
    time: float = 0.0
    attributes: Mapping[str, str] = field(default_factory=dict)
    engine: str = ""  # the name of the engine it happened on


@dataclass(frozen=True)
class Stats:
    """One sample of a container's use, computed as `docker stats` does."""

    cpu_percent: float
    memory: int  # bytes, page cache excluded
    memory_limit: int

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory / self.memory_limit if self.memory_limit else 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stats:
        cpu, pre = data.get("cpu_stats") or {}, data.get("precpu_stats") or {}
        cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
        system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
        percent = cpu_delta / system_delta * online * 100.0 if cpu_delta > 0 and system_delta > 0 else 0.0
        memory = data.get("memory_stats") or {}
        details = memory.get("stats") or {}
        cache = details.get("total_inactive_file", details.get("inactive_file", details.get("cache", 0)))
        return cls(percent, max(memory.get("usage", 0) - cache, 0), memory.get("limit", 0))


@dataclass
class CleanReport:
    """What `clean` removed (or would remove), and the stopped named environments it kept."""

    run_environments: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    # what environments gone (by clean, or by `docker rm`) left: their checkpoint helpers, and
    # the internal networks (and allowlists) of those with an egress allowlist
    checkpoint_helpers: list[str] = field(default_factory=list)
    egress_networks: list[str] = field(default_factory=list)
