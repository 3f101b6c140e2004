"""The server's policy: the host access of the runs it starts (config `serve.allow`).

It has the keys of a plan's `permissions:` (host_paths, network_host, docker_socket, root) and
is the grant of every run started through the server, whatever the plan asks for: a plan that
declares more is refused before anything runs. Host paths are written out in full (or from ~),
since there is no plan folder to be relative to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmtui.plan.permissions import HostPath, Permissions, resolve

from glmtui.config import ALLOW_FLAGS as FLAGS


def policy_of(value: dict[str, Any]) -> Permissions:
    """The Permissions that `serve.allow` grants."""
    paths = tuple(HostPath(resolve(Path("/"), entry["path"]), entry.get("write") is True)
                  for entry in value.get("host_paths") or [])
    return Permissions(paths, *(value.get(flag) is True for flag in FLAGS))


def describe(policy: Permissions) -> str:
    """For the start line: what runs started through the server may reach on the host."""
    return ", ".join(policy.phrases()) if policy else "no host access"
