"""Configuration: defaults < user file < project file < GLMTUI_* variables.

Keys are dotted (`resources.memory`); in the environment the dots become double
underscores (`GLMTUI_RESOURCES__MEMORY`). Files are YAML, written 0600.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from glmtui import paths
from glmtui.errors import BadInput, did_you_mean
from glmtui.units import parse_cpus, parse_duration, parse_memory, parse_positive_int, parse_size

ENV_PREFIX = "GLMTUI_"
NETWORKS = ("bridge", "none", "host")
MIN_STEP_LOG = 1024
MAX_JOBS = 256


def _network(value: Any) -> str:
    if value not in NETWORKS:
        raise BadInput(f"network: {value!r} is not one of {', '.join(NETWORKS)}")
    return str(value)


def _memory(value: Any) -> str:
    parse_memory(value)
    return str(value)


def _step_log_max(value: Any) -> str:
    if parse_size(value, what="step_log_max") < MIN_STEP_LOG:
        raise BadInput(f"step_log_max: {value!r} is too small", hint="use at least 1k")
    return str(value)


def _text(value: Any) -> str:
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _files(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise BadInput(f"ca_certificates: {value!r} is not a list of files")
    return list(value)


def _jobs(value: Any) -> int:
    jobs = parse_positive_int(value, what="jobs")
    if jobs > MAX_JOBS:
        raise BadInput(f"jobs: {jobs} is more than {MAX_JOBS}")
    return jobs


def _approval(value: Any) -> str:
    from glmtui.agent.approval import check_mode

    return check_mode(value, "approval")


def _approval_rules(value: Any) -> list[dict[str, Any]]:
    from glmtui.agent.approval import parse_rule

    if isinstance(value, str):  # from GLMTUI_APPROVAL_RULES or `config set`: YAML text
        try:
            value = yaml.safe_load(value) or []
        except yaml.YAMLError as err:
            raise BadInput(f"approval_rules: not YAML ({' '.join(str(err).split())[:120]})") from None
    if not isinstance(value, list):
        raise BadInput("approval_rules: a list of rules like {tool: bash, pattern: 'pytest *', mode: auto}")
    for rule in value:
        parse_rule(rule)
    return value


@dataclass(frozen=True)
class Key:
    default: Any
    parse: Callable[[Any], Any]
    help: str


KEYS: dict[str, Key] = {
    "docker_host": Key(None, _optional_text, "Docker engine address; else DOCKER_HOST, else the default socket"),
    "default_image": Key("glmtui/workspace:latest", _text, "image of new environments and of plans without env.image"),
    "resources.memory": Key("1g", _memory, "memory limit of new environments"),
    "resources.cpus": Key(2.0, lambda v: parse_cpus(v, what="resources.cpus"), "CPU limit of new environments"),
    "resources.pids": Key(1024, lambda v: parse_positive_int(v, what="resources.pids"), "process limit"),
    "network": Key("bridge", _network, "network of new environments: bridge, none or host"),
    "stop_timeout": Key(10.0, lambda v: parse_duration(v, what="stop_timeout"), "seconds before a stop kills"),
    "keep_runs_days": Key(30, lambda v: parse_positive_int(v, what="keep_runs_days"), "`clean` forgets older records"),
    "step_log_max": Key("100m", _step_log_max, "cap of a step's or an exec's log on disk: head and tail kept"),
    "theme": Key("textual-dark", _text, "the TUI's theme"),
    "default_provider": Key(None, _optional_text, "model provider used when none is named"),
    "approval": Key("ask", _approval, "agent tool calls that change things: auto, ask or deny"),
    "approval_rules": Key([], _approval_rules, "rules like {tool: bash, pattern: 'pytest *', mode: auto}"),
    "max_turns": Key(30, lambda v: parse_positive_int(v, what="max_turns"), "model turns of one agent task"),
    "jobs": Key(16, _jobs, "steps of a plan run at once (--jobs): they wait on containers, not on this machine"),
    "proxy.http": Key(None, _optional_text, "proxy of environments and image builds for http (default: $HTTP_PROXY)"),
    "proxy.https": Key(None, _optional_text, "the same for https (default: $HTTPS_PROXY)"),
    "proxy.no_proxy": Key(None, _optional_text, "hosts reached without the proxy (default: $NO_PROXY)"),
    "ca_certificates": Key([], _files, "PEM files of CAs that environments and image builds trust (a company proxy's)"),
    "serve.max_executions": Key(2, lambda v: parse_positive_int(v, what="serve.max_executions"),
                                "agent executions `glmtui serve` runs at once; the others wait in order"),
}
# Subtrees of named entries: providers (validated by the code that reads them) and engines
# (checked here: glmtui.docker.endpoints).
OPEN_PREFIXES = ("providers.", "engines.")


def _check_key(key: str, *, allow_group: bool = False) -> None:
    if key in KEYS or any(key.startswith(p) and len(key) > len(p) for p in OPEN_PREFIXES):
        return
    if allow_group and any(k.startswith(key + ".") for k in (*KEYS, *OPEN_PREFIXES)):
        return
    raise BadInput(f"unknown config key {key!r}{did_you_mean(key, KEYS)}", hint="glmtui config get lists them")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and not key.startswith(OPEN_PREFIXES) and key not in KEYS:
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def _read_file(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise BadInput(f"cannot read config {path}: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise BadInput(f"config {path} is not a mapping of keys to values")
    return data


def _write_file(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(dict(data), out, sort_keys=True)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _set_in(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise BadInput(f"config key {key!r} crosses a value that is not a mapping")
    tree[last] = value


def _unset_in(tree: dict[str, Any], key: str) -> bool:
    *parents, last = key.split(".")
    chain = [tree]
    for part in parents:
        nxt = chain[-1].get(part)
        if not isinstance(nxt, dict):
            return False
        chain.append(nxt)
    if last not in chain[-1]:
        return False
    del chain[-1][last]
    for parent, part in zip(reversed(chain[:-1]), reversed(parents)):  # drop emptied mappings
        if not parent[part]:
            del parent[part]
    return True


class Config:
    """The merged configuration, with where each value came from."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str]) -> None:
        self._values = values
        self.sources = sources

    @classmethod
    def load(cls, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
        environ = os.environ if environ is None else environ
        values = {key: spec.default for key, spec in KEYS.items()}
        sources = {key: "default" for key in KEYS}
        layers = [("user", paths.user_config_file()), ("project", paths.project_config_file(cwd))]
        for source, path in layers:
            for key, value in _flatten(_read_file(path)).items():
                values[key] = _parse_value(key, value, where=str(path))
                sources[key] = source
        for name, value in environ.items():
            if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):].lower().replace("__", ".") in KEYS:
                key = name[len(ENV_PREFIX):].lower().replace("__", ".")
                values[key] = _parse_value(key, value, where=name)
                sources[key] = "env"
        return cls(values, sources)

    def get(self, key: str) -> Any:
        _check_key(key, allow_group=True)
        if key in self._values:
            return self._values[key]
        prefix = key + "."
        subtree: dict[str, Any] = {}
        for name, value in self._values.items():
            if name.startswith(prefix):
                _set_in(subtree, name[len(prefix):], value)
        return subtree or None

    def items(self) -> dict[str, Any]:
        return dict(self._values)

    def engines(self) -> dict[str, Any]:
        """The `engines.NAME` entries, checked when the config was read."""
        return {key[len("engines."):]: copy.deepcopy(value) for key, value in self._values.items()
                if key.startswith("engines.")}

    def providers(self) -> dict[str, dict[str, Any]]:
        tree: dict[str, Any] = {}
        for key, value in self._values.items():
            if key.startswith("providers."):
                _set_in(tree, key[len("providers."):], copy.deepcopy(value))
        return tree


def _parse_value(key: str, value: Any, *, where: str) -> Any:
    _check_key(key)
    spec = KEYS.get(key)
    if spec is None:
        if key.startswith("engines.") and key.count(".") == 1:
            _check_engine(key[len("engines."):], value, where)
        return value
    try:
        return spec.parse(value)
    except BadInput as err:
        raise BadInput(f"{where}: {err}") from None


def _check_engine(name: str, entry: Any, where: str | None) -> None:
    """An `engines.NAME` entry, checked as glmtui.docker.endpoints reads it; `where` (a file) starts the error."""
    from glmtui.docker.endpoints import configured_endpoint

    try:
        configured_endpoint(name, entry)
    except BadInput as err:
        if where is None:
            raise
        raise BadInput(f"{where}: {err.message}", hint=err.hint) from None


def scope_file(scope: str, cwd: Path | None = None) -> Path:
    if scope == "user":
        return paths.user_config_file()
    project = paths.project_config_file(cwd)
    if project is None:
        raise BadInput("no project config here", hint="run `glmtui init` first, or use --user")
    return project


def set_value(key: str, raw: str, scope: str = "user", cwd: Path | None = None) -> Path:
    _check_key(key)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: the text itself, for the key's own check to judge
    _parse_value(key, value, where=key)
    path = scope_file(scope, cwd)
    data = _read_file(path)
    _set_in(data, key, value)
    if key.startswith("engines."):  # the whole entry, as it will be read
        name = key.split(".")[1]
        _check_engine(name, data["engines"][name], None)
    _write_file(path, data)
    return path


def unset_value(key: str, scope: str = "user", cwd: Path | None = None) -> bool:
    _check_key(key)
    path = scope_file(scope, cwd)
    data = _read_file(path)
    removed = _unset_in(data, key)
    if removed:
        _write_file(path, data)
    return removed


def init_project(folder: Path, image: str | None) -> Path:
    path = folder / paths.PROJECT_DIR / paths.CONFIG_FILE
    if path.exists():
        raise BadInput(f"{path} exists already", hint="edit it, or use `glmtui config set --project`")
    data: dict[str, Any] = {}
    if image:
        data["default_image"] = image
    _write_file(path, data)
    return path
