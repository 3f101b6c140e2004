"""What an environment is made of, validated, and turned into Docker's container config."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmtui.docker.address import engine_sockets, reached_socket, resolve_host
from glmtui.errors import BadInput
from glmtui.units import parse_cpus, parse_memory, parse_positive_int

LABEL_MANAGED = "glmtui.managed"
LABEL_ENV = "glmtui.env"
LABEL_RUN = "glmtui.run"
LABEL_WORKDIR = "glmtui.workdir"
LABEL_EGRESS = "glmtui.egress"  # on an environment with an allowlist: "allowlist"
MANAGED_FILTER = {"label": [f"{LABEL_MANAGED}=true"]}

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
NETWORKS = ("bridge", "none", "host")
# The capabilities a package install needs (apt, pip, chown of the workspace); all others are dropped.
KEPT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "KILL")
KEEP_ALIVE = ["tail", "-f", "/dev/null"]


def container_name(env_name: str) -> str:
    return f"glmtui-{env_name}"


def volume_name(env_name: str) -> str:
    return f"glmtui-{env_name}-workspace"


def checkpoints_name(env_name: str) -> str:
    """The name of an environment's checkpoint helper container and volume (no environment's
    container can be named so)."""
    return f"glmtui.checkpoints-{env_name}"


def egress_network(env_name: str) -> str:
    """The internal network of an environment with an allowlist (see egress.py)."""
    return f"glmtui.egress-{env_name}"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise BadInput(
            f"invalid environment name {name!r}",
            hint="use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class Mount:
    source: str  # absolute host path
    target: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str, *, base: Path | None = None, on_engine: bool = False) -> Mount:
        """HOST:CONTAINER[:ro] with the host path made absolute (relative to `base`), symlinks resolved.
        Whether the mount may reach that host path is for the caller to decide.

        `on_engine`: the host is the engine's machine, not this one (a remote engine): the path
        is taken as written, and must be absolute there."""
        parts = text.split(":")
        read_only = False
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            read_only = parts[2] == "ro"
            parts = parts[:2]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise BadInput(f"mount {text!r} is not HOST:CONTAINER[:ro]")
        if not parts[1].startswith("/"):
            raise BadInput(f"mount {text!r}: the container path must be absolute")
        if on_engine:
            if not parts[0].startswith("/"):
                raise BadInput(f"mount {text!r}: the host path must be absolute on the engine's machine")
            return cls(posixpath.normpath(parts[0]), parts[1], read_only)
        host = Path(os.path.expanduser(parts[0]))
        if not host.is_absolute():
            host = (base or Path.cwd()) / host
        host = host.resolve()
        if not host.exists():
            raise BadInput(f"mount {text!r}: host path {host} does not exist")
        return cls(str(host), parts[1], read_only)


def refuse_docker_socket(mounts: tuple[Mount, ...], address: str | None, *, hint: str) -> None:
    """BadInput when a mount gives the environment the engine's socket (or a folder holding it);
    `address` is the engine's (None: the one used when none is named)."""
    sockets = engine_sockets(address or resolve_host())
    for mount in mounts:
        socket = reached_socket(Path(mount.source), sockets)
        if socket is not None:
            shown = "" if str(socket) == mount.source else f" ({socket} is in {mount.source})"
            raise BadInput(f"mount {mount.source}:{mount.target} gives the environment the Docker socket{shown}, "
                           "which controls the host", hint=hint)


@dataclass(frozen=True)
class Resources:
    memory: int = 1024**3  # bytes
    cpus: float = 2.0
    pids: int = 1024

    @classmethod
    def parse(cls, memory: Any, cpus: Any, pids: Any) -> Resources:
        return cls(
            parse_memory(memory),
            parse_cpus(cpus),
            parse_positive_int(pids, what="pids"),
        )


@dataclass(frozen=True)
class EnvSpec:
    """An environment to create. `run_id` marks a throw-away one."""

    name: str
    image: str
    workdir: str = "/workspace"
    mounts: tuple[Mount, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    resources: Resources = Resources()
    network: str = "bridge"
    allow: tuple[str, ...] = ()  # an egress allowlist: only these hosts, through glmtui's proxy
    upstream_proxy: dict[str, str] = field(default_factory=dict)  # the user's proxy: {http, https, no_proxy}
    ca_certificates: bytes = b""  # PEM: CAs the environment trusts besides its system's
    run_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Overrides of the safe defaults, for those who know why.
    cap_add: tuple[str, ...] = ()
    init: bool = True

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.network not in NETWORKS:
            raise BadInput(f"network {self.network!r} is not one of {', '.join(NETWORKS)}")
        if not self.workdir.startswith("/"):
            raise BadInput(f"workdir {self.workdir!r} must be an absolute path")
        if self.allow:
            from glmtui.docker.egress import check_allowlist

            if self.network != "bridge":
                raise BadInput(f"an allowlist and network {self.network!r} do not go together",
                               hint="an environment with an allowlist reaches only those hosts, through glmtui's proxy")
            object.__setattr__(self, "allow", check_allowlist(self.allow))

    @property
    def container(self) -> str:
        return container_name(self.name)

    @property
    def volume(self) -> str:
        return volume_name(self.name)

    def all_labels(self) -> dict[str, str]:
        labels = {**self.labels, LABEL_MANAGED: "true", LABEL_ENV: self.name, LABEL_WORKDIR: self.workdir}
        if self.run_id:
            labels[LABEL_RUN] = self.run_id
        if self.allow:
            labels[LABEL_EGRESS] = "allowlist"
        return labels

    def container_config(self) -> dict[str, Any]:
        """With an allowlist: on its internal network only, the egress proxy's variables set; else
        the user's proxy's, if any. With CA certificates, the variables that name their bundle."""
        from glmtui.docker import passthrough

        environment = self.environment
        if self.allow:
            from glmtui.docker.egress import proxy_variables

            environment = {**proxy_variables(), **environment}
        elif self.upstream_proxy:
            environment = {**passthrough.proxy_variables(self.upstream_proxy), **environment}
        if self.ca_certificates:
            environment = {**passthrough.ca_variables(), **environment}
        binds = [f"{self.volume}:{self.workdir}"]
        binds += [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in self.mounts]
        config: dict[str, Any] = {
            "Image": self.image,
            "Entrypoint": KEEP_ALIVE[:1],
            "Cmd": KEEP_ALIVE[1:],
            "WorkingDir": self.workdir,
            "Env": [f"{k}={v}" for k, v in environment.items()],
            "Labels": self.all_labels(),
            "Hostname": self.name[:63].replace("_", "-").replace(".", "-"),
            "HostConfig": {
                "Binds": binds,
                "Memory": self.resources.memory,
                "MemorySwap": self.resources.memory,
                "NanoCpus": int(self.resources.cpus * 1e9),
                "PidsLimit": self.resources.pids,
                "Init": self.init,
                "SecurityOpt": ["no-new-privileges"],
                "CapDrop": ["ALL"],
                "CapAdd": sorted({*KEPT_CAPABILITIES, *self.cap_add}),
                "NetworkMode": egress_network(self.name) if self.allow else self.network,
            },
        }
        if self.user:
            config["User"] = self.user
        return config
