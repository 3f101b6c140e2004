"""The plans a server offers, and the host access it runs them with.

The plans are the plan files (`*.yaml`, `*.yml`) at the top of the folders of config
`serve.plans` (default `./plans`, relative to the folder the server starts in), never a path
or a body a client sends. Each is checked as `glmtui plan validate` checks it (secrets and
inputs are only known when it runs); one that is invalid is left out, with a line in the log
saying why. Every runnable workflow of a plan is one entry: the plan's default workflow under
the plan's name (`plan_NAME`), each other named workflow under `plan_NAME__WORKFLOW`. Names
keep to letters, digits, `_` and `-` (what model APIs take as tool names): a `.` becomes `_`;
a name taken twice goes to the first plan file in the order of the folders and their files.

A server runs every plan with its own policy (config `serve.allow`, default no host access),
never with what the plan asks for: a plan that declares more does not start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtui.errors import GlmtuiError
from glmtui.plan.model import InputSpec, LoadedPlan, Plan, Workflow
from glmtui.plan.permissions import Permissions, server_policy

PLAN_SUFFIXES = (".yaml", ".yml")
PREFIX = "plan_"
WORKFLOW_SEPARATOR = "__"
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class PlanEntry:
    """One runnable workflow of a plan in the folders."""

    name: str  # plan_PLAN or plan_PLAN__WORKFLOW
    plan: Plan
    workflow: Workflow
    named: bool  # the plan has `workflows:` (else only `steps:`)

    @property
    def inputs(self) -> dict[str, InputSpec]:
        return {**self.plan.inputs, **self.workflow.inputs}

    def describe(self) -> str:
        what = f"plan {self.plan.name}" + (f", workflow {self.workflow.name}" if self.named else "")
        about = " ".join((self.workflow.description or self.plan.description or "").split()).rstrip(".")
        return (f"Run the glmtui {what} ({self.plan.file.name}){': ' + about if about else ''}. It runs in the plan's "
                "Docker environment; the answer gives the run's status, each step's status and outputs, and the "
                "last lines of the steps that failed.")


class PlanCatalog:
    """The plans of the configured folders, read again when their files change."""

    def __init__(self, config: Any, *, log: Callable[[str], None]) -> None:
        self.config = config
        self.log = log
        self._checked: dict[Path, tuple[tuple[int, int], list[PlanEntry]]] = {}  # file -> (mtime, size), entries
        self._missing: set[Path] = set()  # folders already said to be missing
        self._clashes: set[tuple[Path, str]] = set()  # files whose tool name another file has, already said

    def folders(self) -> list[Path]:
        return [Path(folder).expanduser().resolve() for folder in self.config.get("serve.plans")]

    def entries(self) -> list[PlanEntry]:
        found: dict[str, PlanEntry] = {}
        for file in self._files():
            for entry in self._entries(file):
                taken = found.get(entry.name)
                if taken is None:
                    found[entry.name] = entry
                elif taken.plan.file != file and (file, entry.name) not in self._clashes:
                    self._clashes.add((file, entry.name))
                    self.log(f"mcp: {file}: its tool {entry.name} is {taken.plan.file}'s already; rename the plan")
        return list(found.values())

    def find(self, name: str) -> PlanEntry | None:
        return next((entry for entry in self.entries() if entry.name == name), None)

    def load(self, entry: PlanEntry, inputs: dict[str, Any]) -> LoadedPlan:
        """The plan ready to run with these inputs (typed values); PlanInvalid names what is wrong."""
        from glmtui.plan.validate import load_plan

        return load_plan([entry.plan.file], workflow=entry.workflow.name, inputs=inputs,
                         docker_host=self.config.get("docker_host"))

    def policy(self) -> Permissions:
        """The host access granted to every plan the server runs."""
        return server_policy(self.config.get("serve.allow"))

    def _files(self) -> list[Path]:
        files = []
        for folder in self.folders():
            if not folder.is_dir():
                if folder not in self._missing:
                    self._missing.add(folder)
                    self.log(f"mcp: serve.plans: {folder} is not a folder; no plans from it")
                continue
            self._missing.discard(folder)
            files += sorted(path for path in folder.iterdir() if path.suffix in PLAN_SUFFIXES and path.is_file())
        return files

    def _entries(self, file: Path) -> list[PlanEntry]:
        """The entries of the file's plan (none when it is invalid), checked once per version of the file."""
        try:
            stat = file.stat()
        except OSError:
            return []
        signature = (stat.st_mtime_ns, stat.st_size)
        known = self._checked.get(file)
        if known is not None and known[0] == signature:
            return known[1]
        from glmtui.plan.loader import load_documents
        from glmtui.plan.validate import check_document

        entries: list[PlanEntry] = []
        try:
            document = load_documents([file])
            report, plan = check_document(document, docker_host=self.config.get("docker_host"))
            report.raise_if_any()
            entries = _entries(plan, named="workflows" in document.data)
        except GlmtuiError as err:
            first = str(err).splitlines()[0]
            self.log(f"mcp: {first} (the plan is left out until it is valid; glmtui plan validate {file})")
        self._checked[file] = (signature, entries)
        return entries


def _entries(plan: Plan, *, named: bool) -> list[PlanEntry]:
    base = PREFIX + _NOT_IN_NAMES.sub("_", plan.name)
    entries = []
    for workflow in plan.workflows.values():
        if workflow.name == plan.default_workflow:
            entries.append(PlanEntry(base, plan, workflow, named))
        else:
            entries.append(PlanEntry(base + WORKFLOW_SEPARATOR + _NOT_IN_NAMES.sub("_", workflow.name), plan, workflow,
                                     named))
    return entries
