"""The plans a server runs, and the host access it runs them with: one catalog for the HTTP API,
its webhooks and MCP (`PlanCatalog.of(config, log)`).

Which plans: the `.yaml`/`.yml` files under the folders of config `serve.plans` (default
`./plans`, relative to the folder the server starts in; sub-folders too, not hidden ones) that
look like plans (a mapping with `version` and `steps` or `workflows`); never a path or a body a
client sends. Each is checked as `glmtui plan validate` checks it, once per version of the file:
a changed file is read again at the next look. A plan is named by its `name:`.

Problems: a plan file that is not valid, and two files that give the same name, are not served
(so a name always means one file). The API lists them (`GET /plans`, under `problems`), and the
log says each once, when it appears.

The policy (config `serve.allow`, glmtui.server.policy) is the host access of every run started
through the server, whatever the plan asks for: a plan that declares more is refused before
anything runs (`refusal`, `bind`).

Binding: the workflow and the inputs a client sends are checked here, each message naming the
field (`ValueRefused`), and the plan is then loaded as `glmtui --run` loads it.

The API and MCP each had a catalog of their own until they were joined; where they differed, this
keeps the API's walk (sub-folders; files that are no plan, e.g. an inputs file, passed over in
silence; invalid files and clashing names listed as problems, and a clashing name served by no
file rather than by whichever file came first) and MCP's log (each problem, and a folder that is
not there, said once). MCP's tool names (`plan_NAME`, `plan_NAME__WORKFLOW`) are its own view of
these plans (glmtui.server.mcp).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtui.errors import BadInput, Conflict, NotFound, did_you_mean
from glmtui.plan.model import LoadedPlan, Location, Plan, PlanInvalid, Workflow
from glmtui.plan.permissions import Permissions
from glmtui.server.policy import policy_of

SUFFIXES = (".yaml", ".yml")
SKIPPED_FOLDERS = ("node_modules", "__pycache__")
MAX_FILES = 2000  # plan files looked at in all folders


class ValueRefused(BadInput):
    """A value a client sent for a plan (its workflow, an input) does not fit it; nothing ran."""


@dataclass(frozen=True)
class PlanEntry:
    name: str
    file: Path
    plan: Plan

    def as_json(self, policy: Permissions) -> dict[str, Any]:
        plan = self.plan
        refused = refusal(plan, policy)
        return {
            "name": self.name,
            "description": plan.description,
            "file": str(self.file),
            "inputs": _inputs(plan.inputs),
            "workflows": [
                {"name": w.name, "description": w.description, "default": w.name == plan.default_workflow,
                 "inputs": _inputs(w.inputs)}
                for w in plan.workflows.values()
            ],
            "default_workflow": plan.default_workflow,
            "secrets": list(plan.secrets),
            "environment": plan.env.name,
            "permissions": plan.permissions.as_json(),
            "runnable": refused is None,
            "refused": refused,
        }


def _inputs(specs: dict[str, Any]) -> dict[str, Any]:
    return {name: {"type": spec.type, "default": spec.default, "description": spec.description,
                   "required": spec.required} for name, spec in specs.items()}


def refusal(plan: Plan, policy: Permissions) -> str | None:
    """Why the server's policy refuses the plan (it asks for more host access), or None."""
    missing = policy.missing(plan.permissions)
    if not missing:
        return None
    return (f"plan {plan.name} asks for host access that the server's policy (serve.allow) does not grant: "
            f"{', '.join(missing.phrases())}")


class PlanCatalog:
    def __init__(self, folders: list[Path], policy: Permissions = Permissions(), docker_host: str | None = None,
                 *, log: Callable[[str], None] = lambda line: None) -> None:
        self.folders = folders
        self.policy = policy
        self.docker_host = docker_host
        self.log = log
        self._cache: dict[Path, tuple[tuple[int, int, int], PlanEntry | str | None]] = {}
        self._said: set[str] = set()  # the problems the log has said (those there still are)
        self._missing: set[Path] = set()  # folders the log has said are not there

    @classmethod
    def of(cls, config: Any, log: Callable[[str], None]) -> PlanCatalog:
        """The catalog of the config's folders (resolved now, from the current folder) and policy."""
        folders = [Path(folder).expanduser().resolve() for folder in config.get("serve.plans")]
        return cls(folders, policy_of(config.get("serve.allow")), config.get("docker_host"), log=log)

    def scan(self) -> tuple[dict[str, PlanEntry], list[dict[str, str]]]:
        """The plans by name, and the problems: files not valid, names given twice."""
        found: dict[str, list[PlanEntry]] = {}
        problems: list[dict[str, str]] = []
        cache: dict[Path, tuple[tuple[int, int, int], PlanEntry | str | None]] = {}
        for path in self._files():
            try:
                info = path.stat()
            except OSError:
                continue
            signature = (info.st_ino, info.st_mtime_ns, info.st_size)
            known = self._cache.get(path)
            outcome = known[1] if known and known[0] == signature else _read(path, self.docker_host)
            cache[path] = (signature, outcome)
            if isinstance(outcome, PlanEntry):
                found.setdefault(outcome.name, []).append(outcome)
            elif isinstance(outcome, str):
                problems.append({"file": str(path), "error": outcome})
        self._cache = cache
        plans: dict[str, PlanEntry] = {}
        for name, entries in found.items():
            if len(entries) == 1:
                plans[name] = entries[0]
                continue
            files = ", ".join(str(entry.file) for entry in entries)
            for entry in entries:
                problems.append({"file": str(entry.file),
                                 "error": f"plan name {name!r} is given by {len(entries)} files ({files}): rename all but one"})
        self._say(problems)
        return dict(sorted(plans.items())), problems

    def get(self, name: str) -> PlanEntry:
        plans, problems = self.scan()
        if name in plans:
            return plans[name]
        mention = next((p for p in problems if f"plan name {name!r}" in p["error"]), None)
        if mention:
            raise Conflict(mention["error"])
        raise NotFound(f"no plan {name!r} in the served folders{did_you_mean(name, plans)}",
                       hint="GET /api/v1/plans lists them")

    def bind(self, entry: PlanEntry, workflow: str | None, inputs: dict[str, Any]) -> LoadedPlan:
        """The plan loaded for a run with the client's workflow and inputs, as `glmtui --run` loads
        it (secrets from the server's environment and the .env beside the plan): BadInput when
        the policy refuses it, ValueRefused naming a bad value, PlanInvalid when something is
        missing."""
        from glmtui.plan.validate import load_plan

        refused = refusal(entry.plan, self.policy)
        if refused:
            raise BadInput(refused)
        chosen = choose_workflow(entry.plan, workflow)
        values = check_inputs(entry.plan, chosen, inputs)
        return load_plan([entry.file], workflow=chosen.name, inputs=values, docker_host=self.docker_host)

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for folder in self.folders:
            if not folder.is_dir():
                if folder not in self._missing:
                    self._missing.add(folder)
                    self.log(f"plans: {folder} (serve.plans) is not a folder (yet): no plans from it")
                continue
            self._missing.discard(folder)
            for root, dirs, names in os.walk(folder):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
                files += [Path(root) / name for name in sorted(names) if name.endswith(SUFFIXES) and not name.startswith(".")]
                if len(files) >= MAX_FILES:
                    return files[:MAX_FILES]
        return files

    def _say(self, problems: list[dict[str, str]]) -> None:
        """Log the problems that were not there at the last look."""
        lines = {_problem_line(problem) for problem in problems}
        for line in sorted(lines - self._said):
            self.log(line)
        self._said = lines


def _problem_line(problem: dict[str, str]) -> str:
    file, error = problem["file"], problem["error"]
    if error.startswith(file):  # the file's own errors, FILE:LINE:COL: ...
        return f"plans: {error} (left out until it is valid; glmtui plan validate {file})"
    return f"plans: {error}"  # a name given by several files: the same line for each of them


def _read(path: Path, docker_host: str | None) -> PlanEntry | str | None:
    """The plan of a file, the one line of what is wrong with it, or None: not a plan."""
    from glmtui.plan.loader import parse_yaml, read_text
    from glmtui.plan.validate import build_plan

    try:
        document = parse_yaml(read_text(path), path)
    except PlanInvalid as err:
        return "; ".join(str(error) for error in err.errors) if _plan_like_text(path) else None
    data = document.data
    if not isinstance(data, dict) or "version" not in data or not ("steps" in data or "workflows" in data):
        return None
    try:
        plan = build_plan([path], docker_host=docker_host)
    except PlanInvalid as err:
        return "; ".join(str(error) for error in err.errors)
    return PlanEntry(plan.name, path, plan)


def _plan_like_text(path: Path) -> bool:
    """A file YAML cannot read, that still says it is a plan (so its error is worth showing)."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    return "version:" in head and ("steps:" in head or "workflows:" in head)


# --- binding a plan to what the client sends ----------------------------------------------------


def choose_workflow(plan: Plan, name: str | None) -> Workflow:
    if name is not None:
        if name in plan.workflows:
            return plan.workflows[name]
        raise ValueRefused(f"body field 'workflow': plan {plan.name} has no workflow {name!r}"
                           f"{did_you_mean(name, plan.workflows)}; its workflows are {', '.join(plan.workflows)}")
    if plan.default_workflow is None:
        raise ValueRefused(f"plan {plan.name} has several workflows ({', '.join(plan.workflows)}) and none is the "
                           "default: name one in body field 'workflow'")
    return plan.workflows[plan.default_workflow]


def check_inputs(plan: Plan, workflow: Workflow, given: dict[str, Any]) -> dict[str, Any]:
    """The inputs the client gave, each as its declared type; ValueRefused naming the input otherwise."""
    from glmtui.plan.values import coerce

    specs = {**plan.inputs, **workflow.inputs}
    values = {}
    for name, value in given.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(specs) or "none"
            raise ValueRefused(f"inputs field {name!r}: plan {plan.name} has no input {name!r}"
                               f"{did_you_mean(name, specs)} (its inputs: {known})")
        try:
            values[name] = coerce(value, spec.type, where=spec.location or Location(plan.file, 1, 1))
        except ValueError as err:
            raise ValueRefused(f"inputs field {name!r} {err}") from None
    for name, spec in specs.items():
        if spec.required and name not in values:
            raise ValueRefused(f"inputs field {name!r} is required (plan {plan.name}: {spec.type} input"
                               f"{', ' + spec.description if spec.description else ''})")
    return values
