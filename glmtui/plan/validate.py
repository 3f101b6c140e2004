"""Plan files to a Plan (`build_plan`), a Plan to a LoadedPlan (`bind_plan`), or
PlanInvalid naming every problem with its place.

Building: load the YAML (loader), check the version, check the JSON Schema, build
the model (expanding components) while checking what the schema cannot say (kinds,
ids, needs, cycles, expressions, host access). Binding: resolve the values from
outside the plan (the workflow to run, inputs, secrets, variables). Problems under
a node the schema already rejected are not reported a second time.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from glmtui.errors import BadInput, did_you_mean
from glmtui.plan import expressions, permissions, schema_cache
from glmtui.plan.graph import find_cycle
from glmtui.plan.loader import Document, Path_, load_documents
from glmtui.plan.model import (
    DEFAULT_WORKFLOW,
    DEFAULT_WORKDIR,
    HTTP_SCHEMES,
    KINDS,
    Build,
    Component,
    CopyIn,
    EnvConfig,
    InputSpec,
    LoadedPlan,
    Location,
    Mount,
    ParamSpec,
    Plan,
    PlanError,
    PlanInvalid,
    Resources,
    Retry,
    Step,
    Workflow,
)
from glmtui.plan.shell import interpreter_problem
from glmtui.plan.values import coerce, kind_of, read_dotenv, read_input_file
from glmtui.units import parse_cpus, parse_duration, parse_memory, parse_positive_int

SUPPORTED_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("schema.json")  # shipped in the package (package-data)
STEP_RESULT_FIELDS = frozenset({"status", "exit_code", "stdout", "stderr", "outputs", "duration", "usage", "turns", "reason"})
RESPONSE_FIELDS = frozenset({"status", "headers", "json", "text"})
PLAN_FIELDS = frozenset({"name", "dir", "run_id"})
COMMON_KEYS = ("name", "timeout", "retry", "continue_on_error", "environment", "workdir", "outputs", "shell",
               "keep_running")
RUN_ONLY_KEYS = ("shell", "keep_running")
COMPONENT_KINDS = ("run", "write", "copy", "http", "llm", "agent")
MERGED_KEYS = ("environment", "outputs")  # a step using a component merges these per key
MAX_DURATION = 7 * 86400.0  # seconds: the longest timeout or retry delay a plan may set, a week

_ANYWHERE = frozenset({"inputs", "secrets", "steps", "env", "plan"})
_PLACES = {
    "steps": "in steps",
    "step": "inside a step's outputs",
    "with": "inside a component",
    "response": "in the outputs of an http step",
}


def schema_text() -> str:
    """The JSON Schema of the plan format, as shipped (`glmtui plan schema`)."""
    return SCHEMA_FILE.read_text(encoding="utf-8")


def build_plan(paths: Sequence[Path], *, docker_host: str | None = None) -> Plan:
    """Plan files read, merged and checked into the model the runner uses (components
    expanded), or PlanInvalid naming every problem in them. `docker_host` (the config's)
    names the engine whose socket a mount must not reach undeclared. The plan keeps its
    document, so `bind_plan` reads no file again."""
    document = load_documents(list(paths))
    _check_version(document)
    report, plan = check_document(document, docker_host=docker_host)
    report.raise_if_any()
    return plan


def bind_plan(
    plan: Plan,
    *,
    workflow: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    input_file: Path | None = None,
    env_files: Sequence[Path] = (),
    extra_env: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    check_secrets: bool = True,
) -> LoadedPlan:
    """A built plan bound to what a run takes from outside it: the workflow to run, the inputs
    (text as `--input K=V` gives it, parsed to each input's type, or typed values), the
    secrets and the variables of ${env.X}; PlanInvalid names every problem with them.

    A secret's (and ${env.X}'s) value comes from, first found: `extra_env` (-e K=V),
    `environ`, the `env_files` (a later file wins), the `.env` beside the first plan file.
    """
    document = plan.document
    assert document is not None, "a plan from build_plan or check_document"
    report = _Report(document)
    env = env_view(plan, env_files, extra_env or {}, os.environ if environ is None else environ, report)
    secrets = _secrets(document, plan, env, check_secrets, report)
    chosen = _choose_workflow(document, plan, workflow, report)
    values = _input_values(document, plan, chosen, inputs or {}, input_file, report)
    report.raise_if_any()
    assert chosen is not None
    return LoadedPlan(plan, chosen, values, secrets, env)


def load_plan(paths: Sequence[Path], *, docker_host: str | None = None, **binding: Any) -> LoadedPlan:
    """`build_plan` then `bind_plan`, for a caller that has the files and the values at hand."""
    return bind_plan(build_plan(paths, docker_host=docker_host), **binding)


# --- reporting -----------------------------------------------------------------------------


class _Report:
    def __init__(self, document: Document) -> None:
        self.document = document
        self.errors: list[PlanError] = []
        self.seen: set[PlanError] = set()
        self.rejected: set[Path_] = set()  # nodes the schema refused

    def covered(self, path: Path_) -> bool:
        return any(path[:end] in self.rejected for end in range(len(path) + 1))

    def add(self, path: Path_, message: str, *, key: bool = False, reject: bool = False) -> None:
        if self.covered(path):
            return
        if reject:
            self.rejected.add(path)
        self.at(self.document.locate(path, key=key), message)

    def at(self, location: Location, message: str) -> None:
        error = PlanError.at(location, message)
        if error not in self.seen:
            self.seen.add(error)
            self.errors.append(error)

    def extend(self, errors: Sequence[PlanError]) -> None:
        for error in errors:
            if error not in self.seen:
                self.seen.add(error)
                self.errors.append(error)

    def raise_if_any(self) -> None:
        if self.errors:
            rank = {str(file): index for index, file in enumerate(self.document.files)}
            ordered = sorted(self.errors, key=lambda e: (rank.get(str(e.file), len(rank)), str(e.file), e.line, e.col))
            raise PlanInvalid(ordered)


def _check_version(document: Document) -> None:
    version = document.data.get("version", SUPPORTED_VERSION)
    if version == SUPPORTED_VERSION and not isinstance(version, bool):
        return
    where = document.locate(("version",))
    if isinstance(version, int) and not isinstance(version, bool):
        message = f"unsupported plan version {version} (this glmtui reads version {SUPPORTED_VERSION})"
    else:
        message = f"version must be the number {SUPPORTED_VERSION}, not {version!r}"
    raise PlanInvalid([PlanError.at(where, message)])


def check_document(document: Document, *, docker_host: str | None = None) -> tuple[_Report, Plan]:
    """A plan document (from files, or made by a saved agent) checked and built: the schema, the
    model (kinds, ids, needs, expressions, components, workflows) and its host access. Problems
    are in the report (`raise_if_any()`), with the plan built from what is valid."""
    report = _Report(document)
    _check_schema(document, report)
    plan = _with_permissions(document, _Builder(document, report).plan(), docker_host, report)
    return report, plan


def _with_permissions(document: Document, plan: Plan, docker_host: str | None, report: _Report) -> Plan:
    """The plan's declared permissions, and an error at each host access it does not declare."""
    declared = permissions.declared(document.data.get("permissions"), plan.dir, report.add)
    permissions.check_uses(document.data, plan.dir, declared, docker_host, report.add)
    return dataclasses.replace(plan, permissions=declared)


# --- the schema ----------------------------------------------------------------------------


@functools.cache
def _validator() -> Any:
    """The schema compiled once, for checking: $refs inlined, and without the
    oneOf/dependent* rules that _Builder checks with clearer messages."""
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text())
    definitions = schema.pop("$defs")
    schema.pop("oneOf")
    for name in ("step", "component"):
        for keyword in ("oneOf", "dependentRequired", "dependentSchemas"):
            definitions[name].pop(keyword, None)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                return {**inline(definitions[name]), "x-def": name}
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return Draft202012Validator(inline(schema))


def _check_schema(document: Document, report: _Report) -> None:
    data = document.data
    digest = schema_cache.key(schema_text(), data)
    if not schema_cache.known_valid(digest):
        rejected: set[Path_] = set()
        for error in _validator().iter_errors(data):
            _schema_error(error, data, report, rejected)
        report.rejected |= rejected  # only later checks are silenced, not each other
        if not rejected and not report.errors:
            schema_cache.remember_valid(digest)
    if "steps" in data and "workflows" in data:
        report.add(("workflows",), "a plan has steps or workflows, not both", key=True, reject=True)
    elif "steps" not in data and "workflows" not in data:
        report.add((), "the plan has no steps: add steps (or workflows)")


_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_MAP_NOUNS = {
    "inputs": "input name",
    "components": "component name",
    "workflows": "workflow name",
    "environment": "variable name",
    "outputs": "output name",
    "with": "parameter name",
}
_PATTERN_MESSAGES = {
    "duration": "{what}: {value!r} is not a duration (use e.g. 30s, 10m or 1h)",
    "timeout": "{what}: {value!r} is not a duration (use e.g. 30s, 10m or 1h)",
    "memory": "{what}: {value!r} is not a size (use e.g. 512m or 2g)",
    "mount": "{what}: {value!r} is not host:container or host:container:ro",
    "bind": "{what}: {value!r} is not host:container",
}
_REPLACED_KEYS = {
    ("env", "allow_docker_socket"): "allow_docker_socket is replaced by permissions: remove it and declare, at the "
    "plan's top level, permissions: {docker_socket: true} (then run the plan with --allow)",
}


def closest_error(error: Any) -> Any:
    """Of a oneOf/anyOf error, the error of the branch the value was meant for: the one that got
    deepest into it, else the one whose type it has (`network: brige` meant the names, not the
    mapping)."""
    return max(error.context, key=lambda sub: (
        len(sub.absolute_path), sub.validator != "type", isinstance(sub.instance, str) == (sub.validator == "enum"),
    ))


def _schema_error(error: Any, data: Any, report: _Report, rejected: set[Path_]) -> None:
    if error.validator in ("oneOf", "anyOf") and error.context:
        _schema_error(closest_error(error), data, report, rejected)
        return
    path: Path_ = tuple(error.absolute_path)
    validator, instance, schema = error.validator, error.instance, error.schema
    what = _label(path)
    if validator == "additionalProperties":
        allowed = schema.get("properties", {})
        for key in instance:
            if key not in allowed:
                message = _REPLACED_KEYS.get((*path, key)) or f"unknown key {key!r}{did_you_mean(key, allowed)}"
                report.add((*path, key), message, key=True)
                rejected.add((*path, key))
        return
    if "propertyNames" in error.relative_schema_path:
        noun = _MAP_NOUNS.get(str(path[-1]) if path else "", "name")
        message = f"{instance!r} is not a valid {noun}: use {schema.get('description', 'another name')}"
        report.add((*path, instance), message, key=True)
        rejected.add((*path, instance))
        return
    if validator == "required":
        for key in error.validator_value:
            if key not in instance:
                report.add(path, f"{_describe(path, data)} is missing the key {key!r}")
        return
    if validator == "type":
        types = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        message = f"{what} must be {' or '.join(_TYPE_WORDS[t] for t in types)}, not {kind_of(instance)}"
    elif validator == "enum":
        choices = ", ".join(str(choice) for choice in error.validator_value)
        close = did_you_mean(instance, error.validator_value) if isinstance(instance, str) else ""
        message = f"{what} must be one of {choices}, not {instance!r}{close}"
    elif validator == "pattern":
        template = _PATTERN_MESSAGES.get(schema.get("x-def", ""))
        if template:
            message = template.format(what=what, value=instance)
        elif schema.get("x-def") in ("name", "id", "identifier", "variable"):
            message = f"{what} {instance!r} is not valid: use {schema['description']}"
        else:
            message = f"{what} {instance!r} is not valid{': ' + schema['description'] if 'description' in schema else ''}"
    elif validator in ("minimum", "exclusiveMinimum", "maximum"):
        bound = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most"}[validator]
        message = f"{what} must be {bound} {error.validator_value}, not {instance!r}"
    elif validator in ("minItems", "minProperties", "minLength"):
        message = f"{what} is empty"
    elif validator == "uniqueItems":
        seen: list[Any] = []
        twice = next((item for item in instance if item in seen or seen.append(item)), None)
        message = f"{what} lists {twice!r} twice"
    elif validator == "not" and path == ("env",):
        message = "env has both image and build: use one"
    elif validator == "const":
        message = f"{what} must be {error.validator_value!r}"
    else:
        message = f"{what}: {error.message}"
    report.add(path, message)
    if validator != "not":
        rejected.add(path)


def _label(path: Path_) -> str:
    if not path:
        return "the plan"
    if isinstance(path[-1], int):
        parent = path[-2] if len(path) > 1 else "list"
        return f"{parent}[{path[-1]}]"
    return str(path[-1])


def _describe(path: Path_, data: Any) -> str:
    """The node at path in words: 'the plan', "step 'test'", "component 'pytest'"."""
    if not path:
        return "the plan"
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    if isinstance(path[-1], int) and len(path) >= 2 and path[-2] == "steps":
        step_id = node.get("id") if isinstance(node, dict) else None
        return f"step {step_id!r}" if isinstance(step_id, str) else f"step #{path[-1] + 1}"
    if len(path) == 2 and path[0] in ("components", "workflows"):
        return f"{path[0][:-1]} {path[1]!r}"
    return _label(path)


# --- building the model --------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """What the expressions of one string may refer to. None: names not checked here."""

    roots: frozenset[str]
    inputs: Collection[str] | None = None
    secrets: Collection[str] | None = None
    steps: Collection[str] | None = None
    params: Collection[str] | None = None
    component: str | None = None
    self_id: str | None = None
    suffix: str = ""
    places: bool = True  # whether to check that each root may be used here


@functools.lru_cache(maxsize=4096)
def _parse(text: str, condition: bool) -> expressions.Template:
    return expressions.parse_condition(text) if condition else expressions.parse(text)


def _strings(value: Any, path: Path_) -> Iterator[tuple[str, Path_]]:
    if isinstance(value, str):
        yield value, path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _ref_text(path: tuple[str | int, ...]) -> str:
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return "${" + text + "}"


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _literal_head(text: str) -> tuple[str, bool] | None:
    """The text before its first ${...} (as it will read) and whether it has no ${...} at all;
    None when an expression does not parse (check_strings reports that)."""
    try:
        parts = _parse(text, False).parts
    except expressions.ExpressionError:
        return None
    head = parts[0] if parts and isinstance(parts[0], str) else ""
    return head, all(isinstance(part, str) for part in parts)


def _duration(value: Any, *, what: str) -> float:
    """A duration a plan sets, in seconds: a finite number of at most MAX_DURATION."""
    seconds = parse_duration(value, what=what)
    if not math.isfinite(seconds):
        raise BadInput(f"{what}: {value!r} is not a duration", hint="use e.g. 30s, 10m or 1h")
    if seconds > MAX_DURATION:
        raise BadInput(f"{what}: {value!r} is longer than a plan may set", hint="at most 7d, a week")
    return seconds


class _Builder:
    def __init__(self, document: Document, report: _Report) -> None:
        self.document = document
        self.data = document.data
        self.report = report
        self.secrets = [name for name in _list(self.data.get("secrets")) if isinstance(name, str)]
        self.inputs = self.input_specs(self.data.get("inputs"), ("inputs",))
        self.components: dict[str, Component] = {}
        self.raw_workflows = self.workflow_sources()

    def add(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.report.add(path, message, key=key)

    # plan, env, components, workflows

    def plan(self) -> Plan:
        data = self.data
        file = self.document.files[0]
        env = self.env(_dict(data.get("env")), ("env",))
        for name, raw in _dict(data.get("components")).items():
            component = self.component(name, raw, ("components", name))
            if component is not None:
                self.components[name] = component
        workflows = {}
        for name, (raw, path) in self.raw_workflows.items():
            workflows[name] = self.workflow(name, raw, path)
        self.check_workflow_calls(workflows)
        return Plan(
            name=_str(data.get("name")) or file.stem,
            file=file,
            dir=file.parent.resolve(),
            workflows=workflows,
            default_workflow=self.default_workflow(),
            version=SUPPORTED_VERSION,
            description=_str(data.get("description")),
            files=self.document.files,
            document=self.document,
            inputs=self.inputs,
            secrets=self.secrets,
            env=env,
            components=self.components,
        )

    def workflow_sources(self) -> dict[str, tuple[dict, Path_]]:
        if "workflows" in self.data:
            return {
                name: (raw, ("workflows", name))
                for name, raw in _dict(self.data.get("workflows")).items()
                if isinstance(raw, dict)
            }
        return {DEFAULT_WORKFLOW: ({"steps": self.data.get("steps")}, ())}

    def default_workflow(self) -> str | None:
        names = list(self.raw_workflows)
        marked = [name for name, (raw, _) in self.raw_workflows.items() if raw.get("default") is True]
        if len(marked) > 1:
            self.add(("workflows", marked[1], "default"), f"several workflows are marked default: true ({', '.join(marked)}); mark one")
        if marked:
            return marked[0]
        return names[0] if len(names) == 1 else None

    def env(self, raw: dict, path: Path_) -> EnvConfig:
        scope = _Scope(frozenset({"inputs", "secrets", "env", "plan"}), inputs=self.inputs, secrets=self.secrets)
        self.check_strings(raw, path, scope)
        self.check_workdir(raw.get("workdir"), (*path, "workdir"))
        self.check_user(raw.get("user"), (*path, "user"))
        mounts = []
        for index, text in enumerate(_list(raw.get("mounts"))):
            mount = self.mount(text, (*path, "mounts", index))
            if mount is not None:
                mounts.append(mount)
        copies = []
        for text in _list(raw.get("copy")):
            if isinstance(text, str) and text.count(":") == 1:
                host, container = text.split(":")
                copies.append(CopyIn(host, container))
        build = raw.get("build")
        if isinstance(build, str):
            build = Build(build)
        elif isinstance(build, dict):
            build = Build(
                str(build.get("context", ".")), _str(build.get("dockerfile")), _dict(build.get("args")), _str(build.get("network"))
            )
        else:
            build = None
        user = raw.get("user")
        network = raw.get("network")
        allow = self.allowlist(network, (*path, "network", "allow"))
        if raw.get("shared") is True and raw.get("name") is None:
            self.add((*path, "shared"), "shared is for a named environment (env.name); a throw-away one is its run's own",
                     key=True)
        return EnvConfig(
            name=_str(raw.get("name")),
            engine=_str(raw.get("engine")),
            image=_str(raw.get("image")),
            build=build,
            workdir=_str(raw.get("workdir")) or DEFAULT_WORKDIR,
            user=str(user) if isinstance(user, (str, int)) and not isinstance(user, bool) else None,
            mounts=tuple(mounts),
            copy=tuple(copies),
            environment=_dict(raw.get("environment")),
            resources=self.resources(_dict(raw.get("resources")), (*path, "resources")),
            network=network if network in ("bridge", "none", "host") else "bridge",
            allow=allow,
            shared=raw.get("shared") is True,
        )

    def allowlist(self, network: Any, path: Path_) -> tuple[str, ...]:
        """network: {allow: [...]}, each entry checked; () for a network named by a string."""
        if not isinstance(network, dict) or not isinstance(network.get("allow"), list):
            return ()
        from glmtui.docker.egress import check_allowlist

        entries = [entry for entry in network["allow"] if isinstance(entry, str)]
        for index, entry in enumerate(entries):
            try:
                check_allowlist([entry])
            except BadInput as err:
                self.add((*path, index), err.message)
        try:
            return check_allowlist(entries)
        except BadInput:
            return ()

    def mount(self, text: Any, path: Path_) -> Mount | None:
        if not isinstance(text, str):
            return None
        parts = text.split(":")
        if len(parts) not in (2, 3):
            return None
        host, container = parts[0], parts[1]
        read_only = len(parts) == 3 and parts[2] == "ro"
        if not container.startswith(("/", "${")):
            self.add(path, f"mount {text!r}: the container path must be absolute")
        return Mount(host, container, read_only)

    def resources(self, raw: dict, path: Path_) -> Resources:
        memory = self.parsed(raw, "memory", path, lambda v: parse_memory(v, what="memory"))
        cpus = self.parsed(raw, "cpus", path, lambda v: parse_cpus(v, what="cpus"))
        pids = self.parsed(raw, "pids", path, lambda v: parse_positive_int(v, what="pids"))
        return Resources(memory, cpus, pids)

    def parsed(self, raw: dict, key: str, path: Path_, parse: Any) -> Any:
        if raw.get(key) is None or self.report.covered((*path, key)):
            return None
        try:
            return parse(raw[key])
        except BadInput as exc:
            self.add((*path, key), str(exc))
            return None

    def input_specs(self, raw: Any, path: Path_) -> dict[str, InputSpec]:
        specs = {}
        for name, spec in _dict(raw).items():
            spec = _dict(spec)
            type_ = spec.get("type", "string")
            has_default = "default" in spec
            default = spec.get("default")
            if has_default and default is not None and isinstance(type_, str):
                try:
                    default = coerce(default, type_, where=self.document.locate((*path, name, "default")))
                except ValueError as exc:
                    self.add((*path, name, "default"), f"the default of input {name!r} {exc}")
            specs[name] = InputSpec(
                name=name,
                type=type_ if isinstance(type_, str) else "string",
                default=default,
                description=_str(spec.get("description")),
                required=not has_default and spec.get("required") is not False,
                location=self.document.locate((*path, name), key=True),
            )
        return specs

    def component(self, name: str, raw: Any, path: Path_) -> Component | None:
        if not isinstance(raw, dict) or self.report.covered(path):
            return None
        kinds = [kind for kind in COMPONENT_KINDS if kind in raw]
        if len(kinds) != 1:
            self.report.add(path, _kinds_message(f"component {name!r}", kinds, COMPONENT_KINDS), reject=True)
            return None
        for key in RUN_ONLY_KEYS:
            if key in raw and kinds != ["run"]:
                self.add((*path, key), f"{key} is only for run steps", key=True)
        if isinstance(raw.get("http"), dict):
            self.check_http_spec(raw["http"], (*path, "http"))
        self.check_workdir(raw.get("workdir"), (*path, "workdir"))
        params = {}
        for param, spec in _dict(raw.get("with")).items():
            spec = _dict(spec)
            has_default = "default" in spec
            required = not has_default and spec.get("required") is not False
            params[param] = ParamSpec(param, spec.get("default"), _str(spec.get("description")), required)
        kind = kinds[0]
        component = Component(
            name=name,
            kind=kind,
            spec=raw[kind],
            params=params,
            keys={key: raw[key] for key in COMMON_KEYS if key in raw},
            description=_str(raw.get("description")),
            location=self.document.locate(path, key=True),
        )
        # once for the component itself: its parameters, secrets and expressions;
        # each use checks its inputs and steps
        self.check_template(component, path, _Scope(frozenset(), secrets=self.secrets, params=params, component=name), ())
        return component

    def check_template(self, component: Component, path: Path_, scope: _Scope, overridden: Collection[str]) -> list[str]:
        found: list[str] = []
        for key in (component.kind, *component.keys):
            if key in overridden:
                continue
            value = component.spec if key == component.kind else component.keys[key]
            roots = _ANYWHERE | {"with"} | _output_roots(key, component.kind)
            found += self.check_strings(value, (*path, key), _replace_roots(scope, roots))
        return found

    def workflow(self, name: str, raw: dict, path: Path_) -> Workflow:
        inputs = self.input_specs(raw.get("inputs"), (*path, "inputs")) if path else {}
        for input_name in inputs:
            if input_name in self.inputs:
                message = f"input {input_name!r} of workflow {name!r} is also an input of the plan"
                self.add((*path, "inputs", input_name), message, key=True)
        steps_path = (*path, "steps")
        raws = _list(raw.get("steps"))
        ids: dict[str, int] = {}
        for index, step in enumerate(raws):
            step_id = _str(_dict(step).get("id"))
            if step_id is None:
                continue
            if step_id in ids:
                first = self.document.locate((*steps_path, ids[step_id], "id"))
                self.add((*steps_path, index, "id"), f"duplicate step id {step_id!r} (first at line {first.line})")
            else:
                ids[step_id] = index
        context = _WorkflowContext(name, {**self.inputs, **inputs}, ids, "this plan" if not path else f"workflow {name!r}")
        steps = []
        for index, step in enumerate(raws):
            built = self.step(step, (*steps_path, index), context)
            if built is not None:
                steps.append(built)
        cycle = find_cycle(steps)
        if cycle:
            self.add((*steps_path, ids[cycle[0]]), "steps wait for each other in a cycle: " + " -> ".join(cycle))
        return Workflow(
            name=name,
            steps=steps,
            description=_str(raw.get("description")),
            inputs=inputs,
            default=raw.get("default") is True,
            location=self.document.locate(path, key=True) if path else self.document.locate(("steps",), key=True),
        )

    def check_workflow_calls(self, workflows: dict[str, Workflow]) -> None:
        calls = [
            _Calls(name, tuple(step.spec for step in workflow.steps if step.kind == "workflow"))
            for name, workflow in workflows.items()
        ]
        cycle = find_cycle(calls)
        if cycle:
            first = workflows[cycle[0]]
            step = next(s for s in first.steps if s.kind == "workflow" and s.spec == cycle[1])
            self.report.at(step.location, "workflows call each other in a cycle: " + " -> ".join(cycle))

    # steps

    def step(self, raw: Any, path: Path_, context: _WorkflowContext) -> Step | None:
        if not isinstance(raw, dict) or self.report.covered(path):
            return None
        step_id = _str(raw.get("id"))
        if step_id is None:
            return None
        kinds = [kind for kind in KINDS if kind in raw]
        if len(kinds) != 1:
            where = (*path, kinds[1]) if len(kinds) > 1 else path
            self.report.add(where, _kinds_message(f"step {step_id!r}", kinds, KINDS), key=len(kinds) > 1, reject=True)
            return None
        kind = kinds[0]
        if self.report.covered((*path, kind)):
            return None  # the schema refused the kind's value (e.g. `workflow: [a]`): reported there
        for key in RUN_ONLY_KEYS:
            if key in raw and kind not in ("run", "use"):
                self.add((*path, key), f"{key} is only for run steps", key=True)
        if "with" in raw and kind not in ("use", "workflow"):
            self.add((*path, "with"), "with is only for use and workflow steps", key=True)

        scope = _Scope(_ANYWHERE, context.inputs, self.secrets, context.ids, self_id=step_id)
        keys: dict[str, Any] = {key: raw[key] for key in COMMON_KEYS if key in raw}
        sources: dict[str, Path_] = {key: (*path, key) for key in keys}
        spec, with_, component = raw[kind], _dict(raw.get("with")), None
        found: list[str] = []
        if kind == "use":
            component = self.components.get(raw["use"]) if isinstance(raw["use"], str) else None
            if component is None:
                if isinstance(raw["use"], str) and not self.report.covered(("components", raw["use"])):
                    self.add((*path, "use"), f"unknown component {raw['use']!r}{did_you_mean(raw['use'], self.components)}")
                return None
            for key in RUN_ONLY_KEYS:
                if key in raw and component.kind != "run":
                    self.add((*path, key), f"{key} is only for run steps", key=True)
            with_ = self.component_values(component, with_, path, step_id)
            comp_path = ("components", component.name)
            suffix = f" (in step {step_id!r}, which uses component {component.name!r})"
            use_scope = _Scope(frozenset(), context.inputs, None, context.ids, self_id=step_id, suffix=suffix, places=False)
            found += self.check_template(component, comp_path, use_scope, overridden=[k for k in keys if k not in MERGED_KEYS])
            for key, value in component.keys.items():
                if key in MERGED_KEYS and key in keys:
                    keys[key] = {**_dict(value), **_dict(keys[key])}
                elif key not in keys:
                    keys[key], sources[key] = value, (*comp_path, key)
            kind, spec = component.kind, copy.deepcopy(component.spec)
        elif kind == "workflow":
            self.check_workflow_step(raw, path, with_)
        else:
            found += self.check_strings(spec, (*path, kind), _replace_roots(scope, _ANYWHERE))
        if kind in ("llm", "agent") and isinstance(spec, dict):
            self.check_model_spec(kind, spec, ("components", component.name, kind) if component else (*path, kind))
        if kind == "http" and isinstance(spec, dict):
            self.check_http_spec(spec, ("components", component.name, kind) if component else (*path, kind))
        self.check_workdir(raw.get("workdir"), (*path, "workdir"))
        for key in ("name", "environment", "workdir", "outputs", "shell", "with"):
            if key in raw:
                found += self.check_strings(raw[key], (*path, key), _replace_roots(scope, _ANYWHERE | _output_roots(key, kind)))
        condition = raw.get("if")
        if isinstance(condition, bool):
            condition = "true" if condition else "false"
        if isinstance(condition, str):
            found += self.check_string(condition, (*path, "if"), scope, condition=True)

        if kind == "run" and "shell" in keys:
            chosen = (*path, "shell") if "shell" in raw else sources["shell"]  # the step's or its component's
            self.check_interpreter(keys["shell"], spec, chosen)
        needs = self.explicit_needs(raw.get("needs"), (*path, "needs"), step_id, context)
        return Step(
            id=step_id,
            kind=kind,
            spec=spec,
            location=self.document.locate(path),
            name=_str(keys.get("name")),
            needs=tuple(dict.fromkeys([*needs, *found])),
            condition=condition if isinstance(condition, str) else None,
            timeout=self.timeout(keys.get("timeout"), sources.get("timeout", path)),
            retry=self.retry(keys.get("retry"), sources.get("retry", path)),
            continue_on_error=keys.get("continue_on_error") is True,
            environment=_dict(keys.get("environment")),
            workdir=_str(keys.get("workdir")),
            outputs=_dict(keys.get("outputs")),
            with_=with_,
            shell=_shell(keys.get("shell")),
            keep_running=keys.get("keep_running") is True,
            component=component.name if component else None,
        )

    def check_interpreter(self, shell: Any, script: Any, path: Path_) -> None:
        """A run script with expressions for a program that is not a shell (python3 -c ...) is refused:
        its values would not reach it."""
        problem = interpreter_problem(_shell(shell), script)
        if problem:
            self.add(path, problem)

    def check_model_spec(self, kind: str, spec: dict, path: Path_) -> None:
        """What the schema cannot say about llm and agent steps."""
        if kind == "llm":
            schema = spec.get("json_schema")
            if isinstance(schema, dict) and "${" not in json.dumps(schema):
                from jsonschema import validators

                try:
                    validators.validator_for(schema).check_schema(schema)
                except Exception as err:  # noqa: BLE001 - jsonschema.SchemaError
                    message = str(getattr(err, "message", err)).splitlines()[0]
                    self.add((*path, "json_schema"), f"json_schema is not a valid JSON Schema: {message}")
            return
        driver = spec.get("driver")
        if isinstance(driver, str) and "${" in driver:
            return
        builtin = driver in (None, "", "builtin")
        command = spec.get("command")
        if builtin:
            if "command" in spec:
                self.add((*path, "command"), "command starts an agent program (driver: NAME); the builtin driver takes none", key=True)
            return
        if command is None:
            self.add((*path, "driver"), f"driver {driver!r} needs command: the agent program to start, e.g. command: [claude, -p]")
        elif not (command.strip() if isinstance(command, str) else command):
            self.add((*path, "command"), "command is empty: give the agent program to start")
        for key in ("tools", "max_turns", "approval"):
            if key in spec:
                self.add((*path, key), f"{key} is for the builtin driver; driver {driver!r} runs its own agent program", key=True)

    def check_http_spec(self, spec: dict, path: Path_) -> None:
        """An http step sends only http:// and https:// requests (a file:// URL would read the host)."""
        url = spec.get("url")
        written = _literal_head(url) if isinstance(url, str) and not self.report.covered((*path, "url")) else None
        if written:
            head, literal = written
            scheme, colon, _ = head.partition(":")
            if colon and scheme.lower() not in HTTP_SCHEMES:
                self.add((*path, "url"), f"url {url!r}: an http step sends only http:// and https:// requests, not {scheme}:")
            elif literal and not (colon and urlsplit(head).hostname):
                self.add((*path, "url"), f"url {url!r} is not an http:// or https:// URL with a host")
        if spec.get("timeout") is not None and not self.report.covered((*path, "timeout")):
            try:
                _duration(spec["timeout"], what="timeout")
            except BadInput as exc:
                self.add((*path, "timeout"), str(exc))

    def check_workdir(self, value: Any, path: Path_) -> None:
        """A working directory is absolute: refused here when the text before any ${...} says it is not."""
        written = _literal_head(value) if isinstance(value, str) and not self.report.covered(path) else None
        if written is None:
            return
        head, literal = written
        if head.startswith("/") or not (head or literal):
            return  # absolute, or it starts with an expression: checked when that is evaluated
        self.add(path, f"workdir {value!r} is not an absolute path: start it with /")

    def check_user(self, value: Any, path: Path_) -> None:
        written = _literal_head(value) if isinstance(value, str) else None
        if written and not written[1]:
            message = f"user {value!r}: write the user itself, not an expression (whether the environment runs as root must be known before anything runs)"
            self.add(path, message)

    def explicit_needs(self, raw: Any, path: Path_, step_id: str, context: _WorkflowContext) -> list[str]:
        items = [(raw, path)] if isinstance(raw, str) else [(need, (*path, i)) for i, need in enumerate(_list(raw))]
        needs = []
        for need, need_path in items:
            if not isinstance(need, str):
                continue
            if need in context.ids:
                needs.append(need)
            else:
                close = did_you_mean(need, context.ids)
                self.add(need_path, f"step {step_id!r} needs {need!r}, which is not a step of {context.title}{close}")
        return needs

    def component_values(self, component: Component, given: dict, path: Path_, step_id: str) -> dict[str, Any]:
        values = {}
        for name, value in given.items():
            if name in component.params:
                values[name] = value
            else:
                close = did_you_mean(name, component.params)
                self.add((*path, "with", name), f"component {component.name!r} has no parameter {name!r}{close}", key=True)
        for name, param in component.params.items():
            if name in values:
                continue
            if param.required:
                message = f"step {step_id!r} does not give parameter {name!r}, which component {component.name!r} requires"
                self.add((*path, "use"), message)
            else:
                values[name] = param.default
        return values

    def check_workflow_step(self, raw: dict, path: Path_, given: dict) -> None:
        target = raw["workflow"]
        if not isinstance(target, str):
            return
        if target not in self.raw_workflows or "workflows" not in self.data:
            self.add((*path, "workflow"), f"unknown workflow {target!r}{did_you_mean(target, self.raw_workflows)}")
            return
        target_raw, _ = self.raw_workflows[target]
        target_inputs = _dict(target_raw.get("inputs"))
        for name in given:
            if name not in target_inputs:
                self.add((*path, "with", name), f"workflow {target!r} has no input {name!r}{did_you_mean(name, target_inputs)}", key=True)
        for name, spec in target_inputs.items():
            spec = _dict(spec)
            if name not in given and "default" not in spec and spec.get("required") is not False:
                self.add((*path, "workflow"), f"workflow {target!r} needs input {name!r}: give it under with:")

    def timeout(self, value: Any, path: Path_) -> float | None:
        if value is None:
            return None
        try:
            seconds = _duration(value, what="timeout")
        except BadInput as exc:
            self.add(path, str(exc))
            return None
        if seconds <= 0:
            self.add(path, f"timeout: {value!r} must be above 0")
            return None
        return seconds

    def retry(self, value: Any, path: Path_) -> Retry:
        if isinstance(value, int) and not isinstance(value, bool):
            return Retry(attempts=max(value, 0))
        if not isinstance(value, dict):
            return Retry()
        attempts = value.get("attempts")
        delay = Retry().delay
        if value.get("delay") is not None:
            try:
                delay = _duration(value["delay"], what="delay")
            except BadInput as exc:
                self.add((*path, "delay"), str(exc))
        backoff = value.get("backoff")
        return Retry(
            attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 0 else 0,
            delay=delay,
            backoff=backoff if backoff in ("fixed", "exponential") else "fixed",
        )

    # expressions

    def check_strings(self, value: Any, path: Path_, scope: _Scope) -> list[str]:
        found: list[str] = []
        for text, text_path in _strings(value, path):
            if "${" in text:
                found += self.check_string(text, text_path, scope)
        return found

    def check_string(self, text: str, path: Path_, scope: _Scope, *, condition: bool = False) -> list[str]:
        """Report bad references in `text`; return the steps it refers to."""
        if "${" not in text and not condition:
            return []
        try:
            template = _parse(text, condition)
        except expressions.ExpressionError as exc:
            self.add(path, str(exc))
            return []
        found = []
        for ref in template.references():
            message = self.reference_problem(ref.path, scope)
            if message:
                self.add(path, message + scope.suffix)
            elif ref.path[0] == "steps" and len(ref.path) > 1 and scope.steps is not None:
                found.append(str(ref.path[1]))
        return found

    def reference_problem(self, path: tuple[str | int, ...], scope: _Scope) -> str | None:
        root, text = path[0], _ref_text(path)
        if scope.places and root not in scope.roots:
            return f"{text} is only available {_PLACES.get(str(root), 'elsewhere')}"
        if len(path) < 2:
            return None
        name = path[1]
        field = path[2] if len(path) > 2 else None
        if root == "inputs" and scope.inputs is not None and name not in scope.inputs:
            return f"unknown input {name!r} in {text}{did_you_mean(str(name), scope.inputs)}"
        if root == "secrets" and scope.secrets is not None and name not in scope.secrets:
            return f"unknown secret {name!r} in {text}: declare it under secrets{did_you_mean(str(name), scope.secrets)}"
        if root == "steps" and scope.steps is not None:
            if name == scope.self_id:
                return f"step {name!r} refers to its own result in {text}; inside outputs use ${{step...}}"
            if name not in scope.steps:
                return f"unknown step {name!r} in {text}{did_you_mean(str(name), scope.steps)}"
            if field is not None and field not in STEP_RESULT_FIELDS:
                return f"a step has no {field!r} in {text}{did_you_mean(str(field), STEP_RESULT_FIELDS)}"
        if root == "step" and name not in STEP_RESULT_FIELDS:
            return f"a step has no {name!r} in {text}{did_you_mean(str(name), STEP_RESULT_FIELDS)}"
        if root == "with" and scope.params is not None and name not in scope.params:
            return f"unknown parameter {name!r} of component {scope.component!r} in {text}{did_you_mean(str(name), scope.params)}"
        if root == "response" and name not in RESPONSE_FIELDS:
            return f"a response has no {name!r} in {text}{did_you_mean(str(name), RESPONSE_FIELDS)}"
        if root == "plan" and name not in PLAN_FIELDS:
            return f"the plan has no {name!r} in {text}{did_you_mean(str(name), PLAN_FIELDS)}"
        return None


@dataclass(frozen=True)
class _Calls:
    """A workflow and the workflows its steps run, for find_cycle."""

    id: str
    needs: tuple[str, ...]


@dataclass(frozen=True)
class _WorkflowContext:
    """What checking the steps of one workflow needs to know about it."""

    name: str
    inputs: dict[str, InputSpec]
    ids: dict[str, int]
    title: str  # "this plan" or "workflow 'x'", for messages


def _output_roots(key: str, kind: str) -> frozenset[str]:
    if key != "outputs":
        return frozenset()
    return frozenset({"step", "response"}) if kind == "http" else frozenset({"step"})


def _replace_roots(scope: _Scope, roots: frozenset[str]) -> _Scope:
    return dataclasses.replace(scope, roots=roots)


_NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}


def _kinds_message(what: str, found: list[str], kinds: Sequence[str]) -> str:
    if not found:
        return f"{what} has no kind: give it one of {', '.join(kinds)}"
    count = _NUMBER_WORDS.get(len(found), str(len(found)))
    return f"{what} has {count} kinds, {', '.join(found[:-1])} and {found[-1]}; a step has exactly one of {', '.join(kinds)}"


def _shell(value: Any) -> str | tuple[str, ...] | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


# --- values from outside the plan ----------------------------------------------------------


def env_view(
    plan: Plan, env_files: Sequence[Path], extra: Mapping[str, str], environ: Mapping[str, str], report: _Report
) -> dict[str, str]:
    view: dict[str, str] = {}
    beside = plan.dir / ".env"
    for path in [beside] if beside.exists() and not beside.is_dir() else []:  # a folder: a virtualenv
        view.update(_read_env_file(path, report))
    for path in env_files:
        view.update(_read_env_file(Path(path), report))
    view.update(environ)
    view.update(extra)
    return view


def _read_env_file(path: Path, report: _Report) -> dict[str, str]:
    try:
        return read_dotenv(path)
    except PlanInvalid as exc:
        report.extend(exc.errors)
        return {}


def _secrets(document: Document, plan: Plan, env: Mapping[str, str], check: bool, report: _Report) -> dict[str, str]:
    values = {}
    for index, name in enumerate(_list(document.data.get("secrets"))):
        if not isinstance(name, str):
            continue
        if env.get(name):
            values[name] = env[name]
        elif check:
            report.add(("secrets", index), f"secret {name} is not set (set it in the environment or in .env beside the plan)")
    return values


def secret_warnings(secrets: Mapping[str, str]) -> list[str]:
    """A line for each secret too short to hide inside other text, which is then masked only as a
    whole word (glmtui.masking); for a multi-line secret, its short lines."""
    from glmtui.masking import MIN_LENGTH, parts, short_parts
    from glmtui.units import counted

    warnings = []
    for name, value in secrets.items():
        short = short_parts(value)
        if not short:
            continue
        if len(parts(value)) == 1:
            warnings.append(f"secret {name} is {counted(len(short[0]), 'character')}: too short to hide safely "
                            "inside other text; it is masked only as a whole word")
        else:
            warnings.append(f"secret {name} has {counted(len(short), 'line')} shorter than {MIN_LENGTH} characters: "
                            "too short to hide safely inside other text; masked only as whole words")
    return warnings


def _choose_workflow(document: Document, plan: Plan, name: str | None, report: _Report) -> Workflow | None:
    workflows = plan.workflows
    if name is not None:
        if name in workflows:
            return workflows[name]
        if "workflows" not in document.data:
            report.add(("steps",), f"--workflow {name}: this plan has no workflows, only steps (workflow {DEFAULT_WORKFLOW!r})", key=True)
        else:
            close = did_you_mean(name, workflows)
            message = f"--workflow {name}: unknown workflow{close}; the workflows are {', '.join(workflows)}"
            report.add(("workflows",), message, key=True)
        return None
    if plan.default_workflow is not None:
        return workflows.get(plan.default_workflow)
    if workflows:
        message = f"this plan has several workflows ({', '.join(workflows)}): choose one with --workflow NAME, or mark one default: true"
        report.add(("workflows",), message, key=True)
    return None


def _input_values(
    document: Document,
    plan: Plan,
    workflow: Workflow | None,
    given: Mapping[str, Any],
    input_file: Path | None,
    report: _Report,
) -> dict[str, Any]:
    specs = {**plan.inputs, **(workflow.inputs if workflow else {})}
    values: dict[str, Any] = {}
    given_names: set[str] = set()  # given, even if with a bad value
    if input_file is not None:
        try:
            file_document = read_input_file(Path(input_file))
        except PlanInvalid as exc:
            report.extend(exc.errors)
        else:
            for name, value in file_document.data.items():
                where = file_document.locate((name,))
                if name not in specs:
                    report.at(file_document.locate((name,), key=True), f"the plan has no input {name!r}{did_you_mean(name, specs)}")
                    continue
                given_names.add(name)
                try:
                    values[name] = coerce(value, specs[name].type, where=where)
                except ValueError as exc:
                    report.at(where, f"input {name!r} {exc}")
    inputs_key = document.locate(("inputs",), key=True) if "inputs" in document.data else document.locate(())
    for name, text in given.items():
        if name not in specs:
            report.at(inputs_key, f"--input {name}: the plan has no input {name!r}{did_you_mean(name, specs)}")
            continue
        spec = specs[name]
        given_names.add(name)
        try:
            values[name] = coerce(text, spec.type, where=spec.location or inputs_key)
        except ValueError as exc:
            report.at(spec.location or inputs_key, f"--input {name}: input {name!r} {exc}")
    for name, spec in specs.items():
        if name in given_names:
            continue
        if spec.required:
            report.at(spec.location or inputs_key, f"input {name!r} is required: give it with --input {name}=VALUE")
        else:
            values[name] = spec.default
    return values
