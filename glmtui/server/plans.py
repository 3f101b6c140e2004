"""The plans the server runs: the plan files of its configured folders (`serve.plans`), by name.

A client names a plan by its `name:`, never by a path: the server looks it up among the
`.yaml`/`.yml` files under its folders (sub-folders too, but not hidden ones) that look like
plans (a mapping with `version` and `steps` or `workflows`). Files are read again when they
change. A plan file that is not valid, and two files that give the same name, are listed as
problems and not served. Values a client sends (workflow, inputs) are checked here, with
messages that name the field, before the plan is bound to them as `glmtui --run` binds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtui.errors import NotFound, did_you_mean
from glmtui.plan.model import Location, LoadedPlan, Plan, PlanInvalid, Workflow
from glmtui.plan.permissions import Permissions
from glmtui.server.http import ApiError

SUFFIXES = (".yaml", ".yml")
SKIPPED_FOLDERS = ("node_modules", "__pycache__")
MAX_FILES = 2000  # plan files looked at in all folders


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
    def __init__(self, folders: list[Path], docker_host: str | None = None) -> None:
        self.folders = folders
        self.docker_host = docker_host
        self._cache: dict[Path, tuple[tuple[int, int, int], PlanEntry | str | None]] = {}

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
        return dict(sorted(plans.items())), problems

    def get(self, name: str) -> PlanEntry:
        plans, problems = self.scan()
        if name in plans:
            return plans[name]
        mention = next((p for p in problems if f"plan name {name!r}" in p["error"]), None)
        if mention:
            raise ApiError(409, mention["error"])
        raise NotFound(f"no plan {name!r} in the served folders{did_you_mean(name, plans)}",
                       hint="GET /api/v1/plans lists them")

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for folder in self.folders:
            for root, dirs, names in os.walk(folder):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
                files += [Path(root) / name for name in sorted(names) if name.endswith(SUFFIXES) and not name.startswith(".")]
                if len(files) >= MAX_FILES:
                    return files[:MAX_FILES]
        return files


def _read(path: Path, docker_host: str | None) -> PlanEntry | str | None:
    """The plan of a file, the one line of what is wrong with it, or None: not a plan."""
    from glmtui.plan import validate
    from glmtui.plan.loader import parse_yaml, read_text

    try:
        document = parse_yaml(read_text(path), path)
    except PlanInvalid as err:
        return "; ".join(str(error) for error in err.errors) if _plan_like_text(path) else None
    data = document.data
    if not isinstance(data, dict) or "version" not in data or not ("steps" in data or "workflows" in data):
        return None
    try:
        validate._check_version(document)
        report, plan = validate.check_document(document, docker_host=docker_host)
        report.raise_if_any()
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
        raise ApiError(400, f"body field 'workflow': plan {plan.name} has no workflow {name!r}"
                            f"{did_you_mean(name, plan.workflows)}; its workflows are {', '.join(plan.workflows)}")
    if plan.default_workflow is None:
        raise ApiError(400, f"plan {plan.name} has several workflows ({', '.join(plan.workflows)}) and none is the "
                            "default: name one in body field 'workflow'")
    return plan.workflows[plan.default_workflow]


def check_inputs(plan: Plan, workflow: Workflow, given: dict[str, Any], field: str = "inputs") -> dict[str, Any]:
    """The inputs the client gave, each as its declared type; 400 naming the input otherwise."""
    from glmtui.plan.values import coerce

    specs = {**plan.inputs, **workflow.inputs}
    values = {}
    for name, value in given.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(specs) or "none"
            raise ApiError(400, f"{field} field {name!r}: plan {plan.name} has no input {name!r}"
                                f"{did_you_mean(name, specs)} (its inputs: {known})")
        try:
            values[name] = coerce(value, spec.type, where=spec.location or Location(plan.file, 1, 1))
        except ValueError as err:
            raise ApiError(400, f"{field} field {name!r} {err}") from None
    for name, spec in specs.items():
        if spec.required and name not in values:
            raise ApiError(400, f"{field} field {name!r} is required (plan {plan.name}: {spec.type} input"
                                f"{', ' + spec.description if spec.description else ''})")
    return values


def bind(entry: PlanEntry, workflow: str | None, inputs: dict[str, Any], docker_host: str | None) -> LoadedPlan:
    """The plan loaded for a run, as `glmtui --run` loads it: secrets from the server's
    environment and the .env beside the plan. PlanInvalid (422) when something is missing."""
    from glmtui.plan.validate import load_plan

    chosen = choose_workflow(entry.plan, workflow)
    values = check_inputs(entry.plan, chosen, inputs)
    return load_plan([entry.file], workflow=workflow, inputs=values, docker_host=docker_host)
