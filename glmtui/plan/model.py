"""The plan as the runner sees it: validated, with components expanded.

Strings that hold `${...}` expressions are kept as written; the runner renders
them (glmtui.plan.expressions) when the step runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from glmtui.errors import BadInput
from glmtui.plan.permissions import Permissions

if TYPE_CHECKING:
    from glmtui.plan.loader import Document

KINDS = ("run", "write", "copy", "http", "use", "workflow", "llm", "agent")
DEFAULT_WORKFLOW = "main"  # the name of a plan's single workflow (`steps:`)
DEFAULT_WORKDIR = "/workspace"
DEFAULT_RETRY_DELAY = 1.0
HTTP_SCHEMES = ("http", "https")  # what an http step may send: never file:// or another scheme


class Location(NamedTuple):  # a tuple: one is made for every node of a plan, quickly
    file: Path
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class PlanError:
    """One problem of a plan, at its place: FILE:LINE:COL: message."""

    file: Path
    line: int
    col: int
    message: str

    @classmethod
    def at(cls, location: Location, message: str) -> PlanError:
        return cls(location.file, location.line, location.col, message)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PlanInvalid(BadInput):
    """The plan (or its inputs) is invalid; `errors` holds every problem found."""

    def __init__(self, errors: Sequence[PlanError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True)
class InputSpec:
    """An input the plan (or a workflow) declares: its type, default and whether it must be given."""

    name: str
    type: str = "string"
    default: Any = None
    description: str | None = None
    required: bool = True  # no default and not `required: false`
    location: Location | None = None


@dataclass(frozen=True)
class ParamSpec:
    """A parameter of a component, given with `with:` by the steps that use it."""

    name: str
    default: Any = None
    description: str | None = None
    required: bool = True


@dataclass(frozen=True)
class Retry:
    """How a failed step is tried again."""

    attempts: int = 0  # attempts after the first
    delay: float = DEFAULT_RETRY_DELAY  # seconds before the first retry
    backoff: Literal["fixed", "exponential"] = "fixed"

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        return self.delay * 2 ** (retry - 1) if self.backoff == "exponential" else self.delay


@dataclass(frozen=True)
class Step:
    """One step of a workflow, as the runner runs it."""

    id: str
    kind: str  # run, write, copy, http, workflow, llm or agent (a `use` step takes its component's)
    spec: Any  # the kind's value as written; for `workflow` the workflow's name
    location: Location
    name: str | None = None
    needs: tuple[str, ...] = ()  # explicit, then implicit from ${steps.X...}
    condition: str | None = None
    timeout: float | None = None
    retry: Retry = Retry()
    continue_on_error: bool = False
    environment: dict[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    with_: dict[str, Any] = field(default_factory=dict)  # component parameters or workflow inputs
    shell: str | tuple[str, ...] | None = None
    keep_running: bool = False  # run steps: what it leaves in the background lives until the run ends
    component: str | None = None  # the component it was made from

    @property
    def title(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class Workflow:
    """A named graph of steps (a plan's `steps:` is the workflow `main`)."""

    name: str
    steps: list[Step]
    description: str | None = None
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    default: bool = False
    location: Location | None = None

    def step(self, step_id: str) -> Step:
        return next(step for step in self.steps if step.id == step_id)


@dataclass(frozen=True)
class Component:
    """A reusable step template (`components:`), expanded into the steps that `use` it."""

    name: str
    kind: str
    spec: Any
    params: dict[str, ParamSpec]
    keys: dict[str, Any]  # the common step keys the template sets (timeout, environment, ...)
    description: str | None = None
    location: Location | None = None


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path into the environment."""

    host: str  # as written: relative to the plan's folder, may hold ${...}
    container: str
    read_only: bool = False


@dataclass(frozen=True)
class CopyIn:
    """A host path copied into the environment when it is made."""

    host: str  # as written: relative to the plan's folder
    container: str


@dataclass(frozen=True)
class Build:
    """An image built from a folder for the plan's environment."""

    context: str  # as written: relative to the plan's folder
    dockerfile: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    network: str | None = None


@dataclass(frozen=True)
class Resources:
    """Limits the plan sets; None means the configured default."""

    memory: int | None = None  # bytes
    cpus: float | None = None
    pids: int | None = None


@dataclass(frozen=True)
class EnvConfig:
    """The environment a plan runs in: named or throw-away, its image, limits and files."""

    name: str | None = None  # None: a throw-away environment
    engine: str | None = None  # the engine it is on (None: the one used when none is named)
    image: str | None = None  # None (and no build): the configured default image
    build: Build | None = None
    workdir: str = DEFAULT_WORKDIR
    user: str | None = None
    mounts: tuple[Mount, ...] = ()
    copy: tuple[CopyIn, ...] = ()
    environment: dict[str, Any] = field(default_factory=dict)
    resources: Resources = Resources()
    network: Literal["bridge", "none", "host"] = "bridge"
    allow: tuple[str, ...] = ()  # network: {allow: [...]}: only these hosts, through the egress proxy
    shared: bool = False  # runs of this plan may use the named environment at the same time


@dataclass(frozen=True)
class Plan:
    """A plan built from its files (validate.build_plan): every workflow, its inputs, secrets and environment."""

    name: str
    file: Path  # the first plan file
    dir: Path  # its folder: relative host paths start here
    workflows: dict[str, Workflow]
    default_workflow: str | None  # None when several workflows and none is the default
    version: int = 1
    description: str | None = None
    files: tuple[Path, ...] = ()  # every file merged into the plan, in order
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    env: EnvConfig = EnvConfig()
    components: dict[str, Component] = field(default_factory=dict)
    permissions: Permissions = Permissions()  # the host access it declares (`permissions:`)
    # the merged files with the place of every node: binding the plan points its errors there
    document: Document | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LoadedPlan:
    """A valid plan with everything a run needs from outside it."""

    plan: Plan
    workflow: Workflow  # the one to run
    inputs: dict[str, Any]  # typed values of the plan's and that workflow's inputs
    secrets: dict[str, str]
    env: dict[str, str]  # the host environment seen by ${env.X}
