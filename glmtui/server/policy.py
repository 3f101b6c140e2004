"""The server's policy: the host access of the runs it starts (config `serve.allow`).

It has the keys of a plan's `permissions:` (host_paths, network_host, docker_socket, root) and
is the grant of every run started through the server, whatever the plan asks for: a plan that
declares more is refused before anything runs. Host paths are written out in full (or from ~),
since there is no plan folder to be relative to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmtui.errors import BadInput, did_you_mean
from glmtui.plan.permissions import HostPath, Permissions, resolve

FLAGS = ("network_host", "docker_socket", "root")
KEYS = ("host_paths", *FLAGS)


def check_allow(value: Any) -> dict[str, Any]:
    """`serve.allow` as written, checked: BadInput naming the first wrong key."""
    if not isinstance(value, dict):
        raise BadInput("serve.allow: a mapping like "
                       "{host_paths: [{path: /srv/data, write: false}], network_host: false, docker_socket: false, root: false}")
    for key, item in value.items():
        if key not in KEYS:
            raise BadInput(f"serve.allow: unknown key {key!r}{did_you_mean(str(key), KEYS)}",
                           hint=f"the keys are {', '.join(KEYS)}")
        if key in FLAGS and not isinstance(item, bool):
            raise BadInput(f"serve.allow.{key}: true or false, not {item!r}")
    if not isinstance(value.get("host_paths") or [], list):
        raise BadInput("serve.allow.host_paths: a list of {path, write}")
    for index, entry in enumerate(value.get("host_paths") or []):
        where = f"serve.allow.host_paths[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or set(entry) - {"path", "write"}:
            raise BadInput(f"{where}: {{path: /absolute/path, write: true|false}}")
        if not (entry["path"].startswith("/") or entry["path"].startswith("~")):
            raise BadInput(f"{where}: {entry['path']!r} is not an absolute path")
        if not isinstance(entry.get("write", False), bool):
            raise BadInput(f"{where}.write: true or false")
    return value


def policy_of(value: dict[str, Any]) -> Permissions:
    """The Permissions that `serve.allow` grants."""
    paths = tuple(HostPath(resolve(Path("/"), entry["path"]), entry.get("write") is True)
                  for entry in value.get("host_paths") or [])
    return Permissions(paths, *(value.get(flag) is True for flag in FLAGS))


def describe(policy: Permissions) -> str:
    """For the start line: what runs started through the server may reach on the host."""
    return ", ".join(policy.phrases()) if policy else "no host access"
