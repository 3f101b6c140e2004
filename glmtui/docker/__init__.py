"""The async engine layer: everything that touches containers goes through `Engine`."""

from glmtui.docker.engine import (
    STDERR,
    STDOUT,
    CleanReport,
    Engine,
    EngineEvent,
    Environment,
    ExecResult,
    InteractiveExec,
)
from glmtui.docker.spec import EnvSpec, Mount, Resources

__all__ = [
    "STDERR",
    "STDOUT",
    "CleanReport",
    "Engine",
    "EngineEvent",
    "EnvSpec",
    "Environment",
    "ExecResult",
    "InteractiveExec",
    "Mount",
    "Resources",
]
