"""Saved agent files: one agent per YAML file, checked with every problem as FILE:LINE:COL.

An agent runs as a plan of one `agent` step built in memory from its file (`execution_plan`):
the file's `env:` is the plan's env block (a string names an existing environment), its
prompt, provider, model, tools, max_turns, approval and driver are the step's, `timeout` is the
step's timeout. So the file's env block and expressions are checked by the plan's own
validation (the same messages, at the agent file's lines), and an execution is the plan
runner's run of that plan: environment, masking, the step log (the transcript), cancel and
clean-up are the runner's. `approval_rules` and `budget` go to the step after validation (plan
files do not have them).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtui.errors import BadInput, did_you_mean
from glmtui.plan.loader import Document, Path_, parse_yaml
from glmtui.plan.model import Location, LoadedPlan, PlanError, PlanInvalid
from glmtui.plan.values import kind_of

SCHEMA_FILE = Path(__file__).with_name("agent.schema.json")  # shipped in the package (package-data)
VERSION = 1
STEP_ID = "agent"  # the one step of an execution's plan: its log is the execution's transcript
MAX_FILE_BYTES = 1024 * 1024
STEP_KEYS = ("prompt", "system", "provider", "model", "tools", "max_turns", "approval")  # as in plan agent steps


def schema_text() -> str:
    """The JSON Schema of agent files, as shipped (`glmtui agents schema`)."""
    return SCHEMA_FILE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class AgentDefinition:
    """A checked agent file: its keys as written, where it came from, and its text."""

    data: dict[str, Any]
    file: Path
    source: str

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def description(self) -> str:
        return self.data.get("description") or ""

    @property
    def schedule_text(self) -> str | None:
        return self.data.get("schedule")

    @property
    def timezone(self) -> str | None:
        return self.data.get("timezone")

    @property
    def catch_up(self) -> str:
        return self.data.get("catch_up", "once")

    @property
    def budget(self) -> int | None:
        return (self.data.get("budget") or {}).get("tokens")

    @property
    def environment(self) -> str | None:
        """The existing environment it names, if `env:` is a name."""
        env = self.data.get("env")
        return env if isinstance(env, str) else None

    @property
    def command(self) -> list[str] | None:
        """The agent program of a `driver: {command: ...}`; None for the builtin driver."""
        driver = self.data.get("driver")
        if not isinstance(driver, dict):
            return None
        command = driver["command"]
        return shlex.split(command) if isinstance(command, str) else list(command)

    def schedule(self) -> Any:
        """The parsed schedule (glmtui.service.schedule.Schedule), or None."""
        from glmtui.service.schedule import parse_schedule

        return parse_schedule(self.schedule_text, self.timezone) if self.schedule_text else None

    def digest(self) -> str:
        """What `apply` compares: the keys (not the comments or layout) and the file's place."""
        canonical = json.dumps({"file": str(self.file), "data": self.data}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


# --- loading ---------------------------------------------------------------------------------


def load_agent_file(path: Path, config: Any) -> AgentDefinition:
    """Read and check an agent file; PlanInvalid lists every problem with its place."""
    path = Path(path)
    start = Location(path, 1, 1)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PlanInvalid([PlanError.at(start, "no such file")]) from None
    except IsADirectoryError:
        raise PlanInvalid([PlanError.at(start, "is a folder, not an agent file")]) from None
    except OSError as err:
        raise PlanInvalid([PlanError.at(start, f"cannot read the file: {err.strerror or err}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise PlanInvalid([PlanError.at(start, f"the file is over the size limit of agent files ({MAX_FILE_BYTES // 1024} KiB)")])
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlanInvalid([PlanError.at(start, "the file is not UTF-8 text")]) from None
    return check_agent(source, path.resolve(), config)


def check_agent(source: str, file: Path, config: Any) -> AgentDefinition:
    """An agent from its text (a file's, or the one saved by apply): checked, or PlanInvalid."""
    document = parse_yaml(source, file)
    if not isinstance(document.data, dict):
        what = "empty" if document.data is None else kind_of(document.data)
        raise PlanInvalid([PlanError.at(document.locate(()), f"an agent file is a YAML mapping (key: value lines), but this one is {what}")])
    checker = _Checker(document, config)
    checker.check()
    if checker.errors:
        raise PlanInvalid(sorted(set(checker.errors), key=lambda e: (e.line, e.col, e.message)))
    return AgentDefinition(document.data, file, source)


# --- the plan an execution runs ------------------------------------------------------------


def execution_plan(definition: AgentDefinition, config: Any, environ: Mapping[str, str] | None = None) -> LoadedPlan:
    """The one-step plan of an execution, from the agent's saved text (checked again: the config
    may have changed since it was applied). `${env.X}` sees `environ` and the .env beside the file."""
    document = parse_yaml(definition.source, definition.file)
    report, plan = _plan_check(_plan_document(document), config)
    from glmtui.plan import validate

    env = validate.env_view(plan, (), {}, os.environ if environ is None else environ, report)
    report.raise_if_any()
    workflow = plan.workflows[plan.default_workflow]
    step = workflow.steps[0]
    extra = {"approval_rules": definition.data.get("approval_rules") or []}
    if definition.budget is not None:
        extra["budget"] = definition.budget
    step = dataclasses.replace(step, spec={**step.spec, **extra})
    workflow = dataclasses.replace(workflow, steps=[step])
    plan = dataclasses.replace(plan, workflows={workflow.name: workflow})
    return LoadedPlan(plan, workflow, {}, {}, env)


def _plan_document(agent: Document, skip: Collection[str] = ()) -> Document:
    """The agent file as a plan document: `env`, one agent step, with the agent file's places
    (the keys in `skip` left out)."""
    data = {key: value for key, value in agent.data.items() if key not in skip}
    spec: dict[str, Any] = {key: data[key] for key in STEP_KEYS if key in data}
    driver = data.get("driver")
    if isinstance(driver, dict) and "command" in driver:
        command = driver["command"]
        words = command.split() if isinstance(command, str) else command
        program = os.path.basename(str(words[0])) if words else "command"
        spec["driver"] = program if program != "builtin" else "command"
        spec["command"] = command
    step: dict[str, Any] = {"id": STEP_ID, "agent": spec}
    if "timeout" in data:
        step["timeout"] = data["timeout"]
    plan: dict[str, Any] = {"version": VERSION, "name": data.get("name", "agent"), "steps": [step]}
    env = data.get("env")
    if isinstance(env, dict):
        plan["env"] = env
    elif isinstance(env, str):
        plan["env"] = {"name": env}
    moves: list[tuple[Path_, Path_]] = [
        (("env",), ("env",)),
        (("timeout",), ("steps", 0, "timeout")),
        (("driver", "command"), ("steps", 0, "agent", "command")),
        (("driver",), ("steps", 0, "agent", "driver")),
        *(((key,), ("steps", 0, "agent", key)) for key in STEP_KEYS),
    ]
    if isinstance(env, str):
        moves.insert(0, (("env",), ("env", "name")))
    document = Document(plan, agent.files)
    here = agent.locate(("prompt",), key=True)
    for path in (("steps",), ("steps", 0), ("steps", 0, "agent")):
        document.locations[path] = document.key_locations[path] = here
    for source, target in (("locations", document.locations), ("key_locations", document.key_locations)):
        for path, location in getattr(agent, source).items():
            for prefix, moved in moves:
                if path[: len(prefix)] == prefix:
                    target.setdefault((*moved, *path[len(prefix):]), location)
                    break
    document.locations[()] = agent.locate(())
    return document


def _plan_check(document: Document, config: Any) -> tuple[Any, Any]:
    """The plan's own checks (schema, env block, expressions, host access) of an agent's plan
    document: an agent reaches the host no further than a plan that declares nothing."""
    from glmtui.plan import validate

    return validate.check_document(document, docker_host=config.get("docker_host") if config is not None else None)


# --- checking --------------------------------------------------------------------------------


@functools.cache
def _validator() -> Any:
    """The shipped schema, for checking: `env` and `driver` only by type here (the env block is
    checked by the plan's validation, the driver below, each with clearer messages)."""
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text())
    schema["properties"]["env"] = {"type": ["string", "object"]}
    schema["properties"]["driver"] = {"type": ["string", "object"]}
    return Draft202012Validator(schema)


_TYPE_WORDS = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "object": "a mapping", "array": "a list", "null": "null"}
_NAME_RULE = "lowercase letters, digits, '.', '_' and '-', starting with a letter or a digit, at most 63 characters"


def _label(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the agent"


class _Checker:
    def __init__(self, document: Document, config: Any) -> None:
        self.document = document
        self.data: dict[str, Any] = document.data
        self.config = config
        self.errors: list[PlanError] = []
        self.rejected: set[Path_] = set()

    def add(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.errors.append(PlanError.at(self.document.locate(path, key=key), message))

    def ok(self, key: str) -> bool:
        """The key is there and the schema took it."""
        return key in self.data and not any(path[:1] == (key,) for path in self.rejected)

    def check(self) -> None:
        self.schema()
        self.env_name()
        self.driver()
        self.schedule()
        self.provider()
        if "driver" not in self.data or self.ok("driver"):  # else its own error says what is wrong
            self.builtin_only()
        self.plan_checks()

    def schema(self) -> None:
        for error in _validator().iter_errors(self.data):
            path: Path_ = tuple(error.absolute_path)
            if any(path[: len(done)] == done for done in self.rejected):
                continue
            self.schema_error(error, path)

    def schema_error(self, error: Any, path: Path_) -> None:
        if error.validator in ("oneOf", "anyOf") and error.context:
            from glmtui.plan.validate import closest_error

            closest = closest_error(error)
            self.schema_error(closest, tuple(closest.absolute_path))
            return
        validator, instance, what = error.validator, error.instance, _label(path)
        if validator == "additionalProperties":
            allowed = error.schema.get("properties", {})
            for key in instance:
                if key not in allowed:
                    self.add((*path, key), f"unknown key {key!r}{did_you_mean(key, allowed)}", key=True)
                    self.rejected.add((*path, key))
            return
        if validator == "required":
            for key in error.validator_value:
                if key not in instance:
                    self.add(path, f"{what} is missing the key {key!r}")
            return
        if validator == "type":
            types = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
            message = f"{what} must be {' or '.join(_TYPE_WORDS[t] for t in types)}, not {kind_of(instance)}"
        elif validator == "const" and path == ("version",):
            message = (f"unsupported agent file version {instance} (this glmtui reads version {VERSION})"
                       if isinstance(instance, int) and not isinstance(instance, bool) else f"version must be the number {VERSION}, not {instance!r}")
        elif validator == "enum":
            choices = ", ".join(str(choice) for choice in error.validator_value)
            close = did_you_mean(instance, [str(c) for c in error.validator_value]) if isinstance(instance, str) else ""
            message = f"{what} must be one of {choices}, not {instance!r}{close}"
        elif validator == "pattern" and path == ("name",):
            message = f"name {instance!r} is not valid: use {_NAME_RULE}"
        elif validator == "pattern":
            message = f"{what}: {instance!r} is not a duration (use e.g. 30s, 10m or 1h)" if path == ("timeout",) else f"{what} {instance!r} is not valid"
        elif validator in ("minimum", "exclusiveMinimum"):
            bound = "at least" if validator == "minimum" else "above"
            message = f"{what} must be {bound} {error.validator_value}, not {instance!r}"
        elif validator in ("minLength", "minItems"):
            message = f"{what} is empty"
        elif validator == "uniqueItems":
            message = f"{what} lists an item twice"
        else:
            message = f"{what}: {error.message}"
        self.add(path, message)
        self.rejected.add(path)

    def env_name(self) -> None:
        env = self.data.get("env")
        if isinstance(env, str) and ("env",) not in self.rejected:
            from glmtui.docker.spec import NAME_PATTERN

            if not NAME_PATTERN.match(env):
                self.add(("env",), f"env {env!r} is not an environment name ({_NAME_RULE}); "
                                   "or give an env block such as {image: glmtui/workspace:latest}")
                self.rejected.add(("env",))

    def driver(self) -> None:
        if not self.ok("driver"):
            return
        driver = self.data["driver"]
        if isinstance(driver, str):
            if driver != "builtin":
                self.add(("driver",), f"driver must be builtin or {{command: [PROGRAM, ARGS...]}}, not {driver!r}"
                                      f"{did_you_mean(driver, ['builtin'])}")
                self.rejected.add(("driver",))
            return
        unknown = [key for key in driver if key != "command"]
        for key in unknown:
            self.add(("driver", key), f"unknown key {key!r}{did_you_mean(key, ['command'])}; a driver has only command", key=True)
        command = driver.get("command")
        problem = None
        if command is None:
            problem, where = "driver needs command: the agent program to start, e.g. {command: [claude, -p]}", ("driver",)
        elif isinstance(command, str):
            where = ("driver", "command")
            try:
                problem = None if shlex.split(command) else "command is empty: give the agent program to start"
            except ValueError as err:
                problem = f"command {command!r} does not split into words: {err}"
        elif not isinstance(command, list) or not command or not all(isinstance(word, str) and word for word in command):
            problem, where = "command must be the program and its arguments: a list of words, or one string", ("driver", "command")
        if problem or unknown:
            if problem:
                self.add(where, problem)
            self.rejected.add(("driver",))

    def builtin_only(self) -> None:
        if self.data.get("driver", "builtin") == "builtin":
            self.asking()
            return
        for key in ("approval_rules", "budget"):
            if key in self.data:
                self.add((key,), f"{key} is for the builtin driver; a driver command runs its own agent program", key=True)

    def schedule(self) -> None:
        from glmtui.service.schedule import parse_schedule, zone_of

        zone = None
        if self.ok("timezone"):
            try:
                zone_of(self.data["timezone"])
                zone = self.data["timezone"]
            except BadInput as err:
                self.add(("timezone",), str(err))
                self.rejected.add(("timezone",))
        if self.ok("schedule"):
            try:
                parse_schedule(self.data["schedule"], zone)
            except BadInput as err:
                self.add(("schedule",), str(err))
                self.rejected.add(("schedule",))

    def provider(self) -> None:
        if any(path[:1] in (("provider",), ("model",)) for path in self.rejected):
            return
        from glmtui.agent import providers

        try:
            providers.resolve(self.config, self.data.get("provider"), self.data.get("model"))
        except BadInput as err:
            self.add(("provider",) if "provider" in self.data else (), str(err))

    def asking(self) -> None:
        """An agent with a schedule runs with nobody to ask: its approval must never ask."""
        if "schedule" not in self.data or any(path[:1] in (("approval",), ("approval_rules",)) for path in self.rejected):
            return
        from glmtui.plan.steps.agent import policy_for

        try:
            policy = policy_for(self.data, self.config)
        except BadInput as err:
            self.add(("approval_rules",) if "approval_rules" in self.data else (), str(err))
            return
        name = self.data.get("name") if isinstance(self.data.get("name"), str) else "NAME"
        schedule = f"so agent {name} cannot have a schedule (nobody is there to answer)"
        remedy = f"or remove schedule and run it by hand (glmtui agents run {name} --yes)"
        if policy.default == "ask":
            if "approval" in self.data:
                self.add(("approval",), f"approval: ask asks a person before each tool call that changes things, "
                                        f"{schedule}: set approval to auto or deny, {remedy}")
            else:
                self.add(("schedule",), f"the file sets no approval and the config's approval is ask, {schedule}: "
                                        f"set approval: auto or deny, {remedy}")
            return
        own = self.data.get("approval_rules") or []
        configured = len(policy.rules) - len(own)
        for index, rule in enumerate(policy.rules):
            if rule.mode != "ask":
                continue
            shown = f"{{tool: {rule.tool or '*'}{', pattern: ' + repr(rule.pattern) if rule.pattern else ''}, mode: ask}}"
            if index >= configured:
                self.add(("approval_rules", index - configured),
                         f"the approval rule {shown} asks a person, {schedule}: make it auto or deny, {remedy}")
            else:
                self.add(("schedule",), f"the config's approval rule {shown} asks a person, {schedule}: "
                                        f"change that rule (glmtui config get approval_rules), {remedy}")
            return

    def plan_checks(self) -> None:
        """The plan's checks of what the plan document holds: the keys the schema refused here
        are left out of it, so a problem is reported once."""
        skip = {path[0] for path in self.rejected if path}
        if "prompt" in skip or "prompt" not in self.data:
            return
        report, _ = _plan_check(_plan_document(self.document, skip), self.config)
        self.errors += report.errors
