"""Host-access permissions: what a plan may reach on the host, decided before anything starts.

Running a plan you did not write must not be running code as root on your host. So a plan's
access to the host is computed from what it says (bind mounts, copies and a build context
outside its folder, `network: host`, the Docker socket, root with a writable bind mount);
the plan must declare it under `permissions:` (validation names what is missing, at its
line); and a run starts only when whoever runs it granted everything the plan declares
(`--allow`, the TUI's dialog, a server's own policy). At run time every host path is checked
again, once known (`${...}` values), against the plan's folder and what was granted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from glmtui.docker.address import engine_sockets, reached_socket, resolve_host
from glmtui.errors import BadInput, GlmtuiError

ENV_PREFIX = "env:"  # a copy step's side in the environment
_BARE = re.compile(r"[A-Za-z0-9_./~-]+")

Add = Callable[[tuple[str | int, ...], str], None]  # report a problem at a document path


@dataclass(frozen=True)
class HostPath:
    """A host path a plan may reach, read-only or also for writing."""

    path: Path  # absolute, symlinks resolved
    write: bool = False

    def covers(self, path: Path, *, write: bool) -> bool:
        return (self.write or not write) and inside(path, self.path)


@dataclass(frozen=True)
class Permissions:
    """Host access: what a plan declares, or what a person (or a server's policy) grants."""

    host_paths: tuple[HostPath, ...] = ()
    network_host: bool = False
    docker_socket: bool = False
    root: bool = False  # uid 0 in the environment together with a writable bind mount

    def __bool__(self) -> bool:
        return bool(self.host_paths) or self.network_host or self.docker_socket or self.root

    def allows(self, path: Path, *, write: bool) -> bool:
        return any(granted.covers(path, write=write) for granted in self.host_paths)

    def missing(self, wanted: Permissions) -> Permissions:
        """What of `wanted` these permissions do not cover (empty: all of it is covered)."""
        return Permissions(
            tuple(p for p in wanted.host_paths if not self.allows(p.path, write=p.write)),
            wanted.network_host and not self.network_host,
            wanted.docker_socket and not self.docker_socket,
            wanted.root and not self.root,
        )

    def phrases(self) -> list[str]:
        """One short phrase per permission, for the person who agrees to them."""
        phrases = [f"{'write' if p.write else 'read'} {p.path}" for p in self.host_paths]
        if self.network_host:
            phrases.append("the host's network")
        if self.docker_socket:
            phrases.append("the Docker socket (control of the host)")
        if self.root:
            phrases.append("root with a writable bind mount")
        return phrases

    def as_json(self) -> dict[str, Any]:
        return {
            "host_paths": [{"path": str(p.path), "write": p.write} for p in self.host_paths],
            "network_host": self.network_host,
            "docker_socket": self.docker_socket,
            "root": self.root,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Permissions:
        """The permissions of an `as_json()` object."""
        return cls(
            tuple(HostPath(Path(p["path"]), bool(p["write"])) for p in data.get("host_paths", ())),
            bool(data.get("network_host")), bool(data.get("docker_socket")), bool(data.get("root")),
        )


def inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def resolve(base: Path, text: str) -> Path:
    """A host path as a plan writes it (relative to its folder, `~` allowed), symlinks followed."""
    return (base / Path(text).expanduser()).resolve()


def grant_covers(granted: Permissions | None, declared: Permissions, plan_name: str) -> None:
    """BadInput (nothing has started) unless `granted` covers everything the plan declares."""
    missing = (granted or Permissions()).missing(declared)
    if missing:
        raise NotGranted(missing, plan_name)


class NotGranted(BadInput):
    """The plan declares host access that was not granted: the run does not start."""

    def __init__(self, missing: Permissions, plan_name: str) -> None:
        super().__init__(f"plan {plan_name} asks for host access that was not granted: {', '.join(missing.phrases())}")
        self.missing = missing


class HostAccessRefused(GlmtuiError):
    """At run time, a host path (known only then) is beyond what the run may reach."""


# --- at validation -------------------------------------------------------------------------


def declared(raw: Any, base: Path, add: Add) -> Permissions:
    """The plan's `permissions:` (the schema checked its shape)."""
    if not isinstance(raw, dict):
        return Permissions()
    paths = []
    host_paths = raw.get("host_paths")
    for index, item in enumerate(host_paths if isinstance(host_paths, list) else []):
        text = item.get("path") if isinstance(item, dict) else None
        if not isinstance(text, str):
            continue
        if "${" in text:
            add(("permissions", "host_paths", index, "path"),
                f"path {text!r}: a permission is agreed to before the run, so its path is written out, without ${{...}}")
            continue
        paths.append(HostPath(resolve(base, text), item.get("write") is True))
    return Permissions(tuple(paths), raw.get("network_host") is True, raw.get("docker_socket") is True,
                       raw.get("root") is True)


@dataclass(frozen=True)
class _Use:
    """Something the plan says that reaches the host: where, what it is, what it needs and why."""

    where: tuple[str | int, ...]
    what: str
    needs: Permissions = Permissions()
    reasons: Mapping[str, str] = field(default_factory=dict)  # "path:/x", "docker_socket"... -> why
    written: Mapping[Path, str] = field(default_factory=dict)  # each host path as the plan wrote it
    instead: str = ""  # another way out than declaring it

    def merge(self, other: _Use) -> _Use:
        """Both needs of one place (a mount that reaches the socket and writes as root)."""
        needs = Permissions(
            self.needs.host_paths + other.needs.host_paths,
            *(getattr(self.needs, key) or getattr(other.needs, key) for key in ("network_host", "docker_socket", "root")),
        )
        return _Use(self.where, self.what, needs, {**self.reasons, **other.reasons}, {**self.written, **other.written},
                    self.instead or other.instead)

    def reasons_for(self, missing: Permissions) -> list[str]:
        keys = [key for key in ("docker_socket", "network_host", "root") if getattr(missing, key)]
        return [self.reasons[key] for key in keys + [f"path:{p.path}" for p in missing.host_paths]]

    def yaml(self, missing: Permissions) -> str:
        """The permissions to add, as YAML to paste, paths as the plan writes them."""
        parts = []
        if missing.host_paths:
            items = []
            for p in missing.host_paths:
                text = self.written.get(p.path, str(p.path))
                text = text if _BARE.fullmatch(text) else _quoted(text)
                items.append(f"{{path: {text}{', write: true' if p.write else ''}}}")
            parts.append(f"host_paths: [{', '.join(items)}]")
        parts += [f"{key}: true" for key in ("network_host", "docker_socket", "root") if getattr(missing, key)]
        return "permissions: {" + ", ".join(parts) + "}"


def check_uses(data: dict, base: Path, declared_: Permissions, docker_host: str | None, add: Add) -> None:
    """Report, at its place, everything the plan says that needs a permission it does not declare;
    and copy steps whose sides are both on the host or both in the environment."""
    sockets = engine_sockets(resolve_host(docker_host))
    merged: dict[tuple[str | int, ...], _Use] = {}
    for use in _uses(data, base, sockets, add):
        merged[use.where] = merged[use.where].merge(use) if use.where in merged else use
    for use in merged.values():
        missing = declared_.missing(use.needs)
        if missing:
            instead = use.instead if missing == Permissions(root=True) else ""
            add(use.where, f"{use.what} {' and '.join(use.reasons_for(missing))}: {instead}declare it at the "
                           f"plan's top level with {use.yaml(missing)} (and run it with --allow)")


def _uses(data: dict, base: Path, sockets: tuple[Path, ...], add: Add) -> Iterator[_Use]:
    env = data.get("env") if isinstance(data.get("env"), dict) else {}
    writable: tuple[int, str] | None = None  # the first writable mount: its index and text
    for index, text in enumerate(_list(env.get("mounts"))):
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) not in (2, 3):
            continue
        write = not (len(parts) == 3 and parts[2] == "ro")
        writable = writable or ((index, text) if write else None)
        if "${" in parts[0]:
            continue  # known at run time, checked then
        where, what, path = ("env", "mounts", index), f"mount {text!r}", resolve(base, parts[0])
        socket = reached_socket(path, sockets)
        if socket == path:  # the socket itself: docker_socket says it all
            yield _Use(where, what, Permissions(docker_socket=True), {"docker_socket": _socket_reason(socket)})
            continue
        use = _host_use(where, what, base, parts[0], write)
        if socket is not None:
            use = replace(use, needs=replace(use.needs, docker_socket=True),
                          reasons={**use.reasons, "docker_socket": _socket_reason(socket)})
        yield use
    for index, text in enumerate(_list(env.get("copy"))):
        if isinstance(text, str) and text.count(":") == 1 and "${" not in text.split(":")[0]:
            yield _host_use(("env", "copy", index), f"env.copy {text!r}", base, text.split(":")[0], False)
    build = env.get("build")
    context = build if isinstance(build, str) else build.get("context", ".") if isinstance(build, dict) else None
    if isinstance(context, str) and "${" not in context:
        where = ("env", "build") if isinstance(build, str) else ("env", "build", "context")
        yield _host_use(where, f"build context {context!r}", base, context, False, verb="sends the engine the files of")
    if isinstance(build, dict) and build.get("network") == "host":
        yield _network(("env", "build", "network"), "build.network: host")
    if env.get("network") == "host":
        yield _network(("env", "network"), "network: host")
    if writable is not None:
        yield from _root(env.get("user"), *writable)
    for path, spec in _copy_specs(data):
        yield from _copy(path, spec, base, add)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _host_use(where: tuple[str | int, ...], what: str, base: Path, written: str, write: bool,
              verb: str | None = None) -> _Use:
    """What reaching the host path `written` needs: nothing inside the plan's folder."""
    path = resolve(base, written)
    if inside(path, base):
        return _Use(where, what)
    shown = written if str(path) == written else f"{written} ({path})"
    reason = f"{verb or ('writes' if write else 'reads')} {shown} outside the plan's folder"
    return _Use(where, what, Permissions((HostPath(path, write),)), {f"path:{path}": reason}, {path: written})


def _socket_reason(socket: Path) -> str:
    return f"reaches the Docker socket {socket} (control of the host)"


def _network(where: tuple[str | int, ...], what: str) -> _Use:
    return _Use(where, what, Permissions(network_host=True),
                {"network_host": "shares the host's network, services on its loopback too"})


def _root(user: Any, index: int, mount: str) -> Iterator[_Use]:
    """Root with a writable bind mount: `user` 0 or root, or none (the image's user, often root)."""
    harm = "which can leave files of root, setuid ones too, on the host"
    if user is None:
        yield _Use(("env", "mounts", index), f"mount {mount!r}", Permissions(root=True), {
            "root": f"is writable and env has no user: the image's user, often root, would write there, {harm}"},
            instead='set env.user to a user that is not root (e.g. user: "1000:1000"), or ')
    elif isinstance(user, (str, int)) and not isinstance(user, bool) and str(user).split(":")[0] in ("0", "root"):
        yield _Use(("env", "user"), f"user {str(user)!r}", Permissions(root=True),
                   {"root": f"runs as root with a writable bind mount ({mount!r}), {harm}"})


def _copy_specs(data: dict) -> Iterator[tuple[tuple[str | int, ...], dict]]:
    """Every copy step's value with its place: in `steps`, in each workflow, in components."""
    lists = [(("steps",), data.get("steps"))]
    workflows = data.get("workflows")
    if isinstance(workflows, dict):
        lists += [(("workflows", name, "steps"), w.get("steps")) for name, w in workflows.items() if isinstance(w, dict)]
    for path, steps in lists:
        for index, step in enumerate(steps if isinstance(steps, list) else []):
            if isinstance(step, dict) and isinstance(step.get("copy"), dict):
                yield (*path, index, "copy"), step["copy"]
    components = data.get("components")
    for name, component in (components.items() if isinstance(components, dict) else []):
        if isinstance(component, dict) and isinstance(component.get("copy"), dict):
            yield ("components", name, "copy"), component["copy"]


def _copy(path: tuple[str | int, ...], spec: dict, base: Path, add: Add) -> Iterator[_Use]:
    """A copy step: one side env:, the other on the host (whose access is computed)."""
    sides = {key: spec.get(key) for key in ("from", "to")}
    if not all(isinstance(text, str) for text in sides.values()):
        return
    # a side is known to be in the environment when it starts with env:, on the host when it has no ${...}
    kinds = {key: "env" if text.startswith(ENV_PREFIX) else None if "${" in text else "host" for key, text in sides.items()}
    if kinds["from"] == kinds["to"] == "host":
        add(path, "copy needs one side in the environment: write env:/path on that side "
                  "(from: env:/... copies out to the host, to: env:/... copies in)")
    elif kinds["from"] == kinds["to"] == "env":
        add(path, "copy is between the host and the environment, and both sides are env:; "
                  "to copy inside the environment, use run: cp ...")
    elif kinds["from"] == "host" and kinds["to"] == "env":
        yield _host_use((*path, "from"), f"copy from {sides['from']!r}", base, sides["from"], False)
    elif kinds["to"] == "host" and kinds["from"] == "env":
        yield _host_use((*path, "to"), f"copy to {sides['to']!r}", base, sides["to"], True)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- at run time ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostAccess:
    """What one run may reach on the host: its plan's folder and what it was granted."""

    plan_dir: Path
    granted: Permissions
    sockets: tuple[Path, ...]

    @classmethod
    def of(cls, plan_dir: Path, granted: Permissions, engine_address: str) -> HostAccess:
        return cls(plan_dir, granted, engine_sockets(engine_address))

    def path(self, text: str | Path, *, write: bool, what: str) -> Path:
        """The host path `text` (relative to the plan's folder), resolved, when the run may read
        (or write) it; HostAccessRefused, naming it and the permission it needs, otherwise."""
        path = resolve(self.plan_dir, str(text))
        if inside(path, self.plan_dir) or self.granted.allows(path, write=write):
            return path
        needed = "{path: " + _quoted(str(path)) + (", write: true}" if write else "}")
        raise HostAccessRefused(
            f"{what}: {path} is outside the plan's folder and {'write' if write else 'read'} access to it "
            f"was not granted (it needs permissions: {{host_paths: [{needed}]}})"
        )

    def mount(self, source: str, *, write: bool, what: str) -> None:
        """A bind mount of `source` (relative to the plan's folder): its path, and the Docker socket
        it may hold."""
        path = resolve(self.plan_dir, source)
        socket = reached_socket(path, self.sockets)
        if socket is not None and not self.granted.docker_socket:
            raise HostAccessRefused(f"{what} {_socket_reason(socket)}, which was not granted "
                                    "(it needs permissions: {docker_socket: true})")
        if socket != path:  # the socket itself needs docker_socket only
            self.path(path, write=write, what=what)

    def network(self, network: str | None, what: str) -> None:
        if network == "host" and not self.granted.network_host:
            raise HostAccessRefused(f"{what}: the host's network was not granted (it needs permissions: {{network_host: true}})")

    def root(self, uid: int, user: str, writable: list[str], what: str) -> None:
        """Refuse uid 0 with a writable bind mount unless root was granted."""
        if uid == 0 and writable and not self.granted.root:
            who = f"user {user!r}" if user else "the image's own user"
            raise HostAccessRefused(
                f"{what} runs as root ({who} is uid 0) with a writable bind mount ({writable[0]}), which was not "
                "granted: set env.user to another user, or declare permissions: {root: true}"
            )
