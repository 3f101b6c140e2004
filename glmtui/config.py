"""Configuration: defaults < user file < project file < GLMTUI_* variables.

Keys are dotted (`resources.memory`); in the environment the dots become double
underscores (`GLMTUI_RESOURCES__MEMORY`). Files are YAML, written 0600.
"""

from __future__ import annotations

import copy
import os
import re
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


def _yaml_text(value: Any, key: str) -> Any:
    """A value given as text (GLMTUI_* variables, `config set`) read as YAML."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise BadInput(f"{key}: not YAML ({' '.join(str(err).split())[:120]})") from None


def _text_list(key: str) -> Callable[[Any], list[str]]:
    """A list of texts; one text alone is a list of one."""

    def parse(value: Any) -> list[str]:
        value = _yaml_text(value, key)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
            raise BadInput(f"{key}: a list of texts, e.g. [one, two]")
        return items
    return parse


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise BadInput(f"serve.port: {value!r} is not a port number") from None
    if not 0 <= port <= 65535 or isinstance(value, bool):
        raise BadInput(f"serve.port: {value!r} is not a port number (0 to 65535; 0: any free port)")
    return port


def _max_body(value: Any) -> str:
    if parse_size(value, what="serve.max_body") < 1024:
        raise BadInput(f"serve.max_body: {value!r} is too small", hint="use at least 1k")
    return str(value)


def _serve_plans(value: Any) -> list[str]:
    value = _yaml_text(value, "serve.plans")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
        raise BadInput("serve.plans: a folder, or a list of folders, e.g. [./plans, ~/more-plans]")
    return items


def _serve_allow(value: Any) -> dict[str, Any]:
    return check_allow(_yaml_text(value, "serve.allow") or {})


def _serve_hooks(value: Any) -> dict[str, Any]:
    return check_hooks(_yaml_text(value, "serve.hooks") or {})


# serve.allow has the keys of a plan's permissions (glmtui.server.policy makes them a grant)
ALLOW_FLAGS = ("network_host", "docker_socket", "root")
ALLOW_KEYS = ("host_paths", *ALLOW_FLAGS)
# serve.hooks (glmtui.server.hooks serves them)
HOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
HOOK_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOOK_KEYS = ("plan", "agent", "workflow", "secret_env", "inputs")
HOOK_PAYLOAD = "payload"  # the input that gets the body
HOOK_AGENT_PAYLOAD = "GLMTUI_HOOK_PAYLOAD"  # an agent sees the body as ${env.GLMTUI_HOOK_PAYLOAD} (JSON text)


def check_allow(value: Any) -> dict[str, Any]:
    """`serve.allow` as written, checked: BadInput naming the first wrong key."""
    if not isinstance(value, dict):
        raise BadInput("serve.allow: a mapping like "
                       "{host_paths: [{path: /srv/data, write: false}], network_host: false, docker_socket: false, root: false}")
    for key, item in value.items():
        if key not in ALLOW_KEYS:
            raise BadInput(f"serve.allow: unknown key {key!r}{did_you_mean(str(key), ALLOW_KEYS)}",
                           hint=f"the keys are {', '.join(ALLOW_KEYS)}")
        if key in ALLOW_FLAGS and not isinstance(item, bool):
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


def check_hooks(value: Any) -> dict[str, Any]:
    """`serve.hooks` as written, checked: BadInput naming the first wrong key."""
    if not isinstance(value, dict):
        raise BadInput("serve.hooks: a mapping of hook name to {plan or agent, secret_env, inputs, workflow}")
    for name, hook in value.items():
        where = f"serve.hooks.{name}"
        if not isinstance(name, str) or not HOOK_NAME.match(name):
            raise BadInput(f"{where}: a hook name is lower-case letters, digits, '.', '_' and '-'")
        if not isinstance(hook, dict):
            raise BadInput(f"{where}: a mapping {{plan or agent, secret_env, inputs, workflow}}")
        unknown = sorted(set(hook) - set(HOOK_KEYS))
        if unknown:
            raise BadInput(f"{where}: unknown key {unknown[0]!r} (the keys are {', '.join(HOOK_KEYS)})")
        if ("plan" in hook) == ("agent" in hook):
            raise BadInput(f"{where}: name a plan or an agent (one of them)")
        for key in ("plan", "agent", "workflow"):
            if key in hook and not (isinstance(hook[key], str) and HOOK_NAME.match(hook[key])):
                raise BadInput(f"{where}.{key}: a name, not {hook[key]!r}")
        if "agent" in hook and ("workflow" in hook or "inputs" in hook):
            raise BadInput(f"{where}: an agent takes no workflow or inputs (it sees the body as ${{env.{HOOK_AGENT_PAYLOAD}}})")
        if not (isinstance(hook.get("secret_env"), str) and HOOK_VARIABLE.match(hook["secret_env"])):
            raise BadInput(f"{where}.secret_env: the name of the variable of serve's environment that holds the "
                           "hook's secret (e.g. GITHUB_HOOK_SECRET)")
        inputs = hook.get("inputs", {})
        if not isinstance(inputs, dict) or HOOK_PAYLOAD in inputs:
            raise BadInput(f"{where}.inputs: a mapping of fixed inputs (not {HOOK_PAYLOAD!r}: the body is that one)")
    return value


@dataclass(frozen=True)
class Key:
    """A config key: its default, the parser that checks a value, and its help."""

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
    "ca_certificates": Key([], _files, "PEM files of CAs that environments trust (a company proxy's)"),
    "serve.max_executions": Key(2, lambda v: parse_positive_int(v, what="serve.max_executions"),
                                "agent executions `glmtui serve` runs at once; the others wait in order"),
    "serve.host": Key("127.0.0.1", _text, "the address `glmtui serve` listens on (--host); beyond loopback it needs TLS"),
    "serve.port": Key(8765, _port, "the port `glmtui serve` listens on (--port)"),
    "serve.tls_cert": Key(None, _optional_text, "certificate file (PEM) of `glmtui serve` (--tls-cert)"),
    "serve.tls_key": Key(None, _optional_text, "private key file (PEM) of `glmtui serve` (--tls-key)"),
    "serve.plans": Key(["./plans"], _serve_plans,
                       "folders of the plans the server runs, relative to where it starts"),
    "serve.allow": Key({}, _serve_allow, "host access of runs the server starts: the keys of a plan's permissions"),
    "serve.hosts": Key([], _text_list("serve.hosts"), "more names the server answers to in the Host header"),
    "serve.cors_origins": Key([], _text_list("serve.cors_origins"), "web origins that may call the API (CORS)"),
    "serve.max_body": Key("1m", _max_body, "the largest request body the server reads"),
    "serve.hooks": Key({}, _serve_hooks, "webhooks by name: {plan or agent, secret_env, inputs, workflow}"),
    "serve.hook_window": Key(300.0, lambda v: parse_duration(v, what="serve.hook_window"),
                             "how far a webhook's signed timestamp may be from now"),
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

    def __init__(self, values: dict[str, Any], sources: dict[str, str],
                 files: Mapping[str, Path | None] | None = None) -> None:
        self._values = values
        self.sources = sources
        self.files = dict(files or {})  # "user" and "project": the files read (None: no project here)

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
        return cls(values, sources, dict(layers))

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

    def origin(self, key: str) -> str:
        """Where KEY's value comes from, in words: "the project file PATH", "the variable
        GLMTUI_X", "the user file PATH" or "the default"."""
        source = self.sources.get(key, "default")
        if source == "env":
            return f"the variable {variable_of(key)}"
        if source in ("user", "project"):
            return f"the {source} file {self.files.get(source)}"
        return "the default"

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


def variable_of(key: str) -> str:
    """The environment variable that sets KEY: GLMTUI_RESOURCES__MEMORY for resources.memory."""
    return ENV_PREFIX + key.upper().replace(".", "__")


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
        said = err.message
        if said.startswith(key):  # the key's own check named it already: "serve.port: ..."
            said = said[len(key):]
            raise BadInput(f"{where}{said}", hint=err.hint) from None
        raise BadInput(f"{where}: {said}", hint=err.hint) from None


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
