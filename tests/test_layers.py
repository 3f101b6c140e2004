"""The layer rules of docs/architecture.md, by a static walk of every import in glmtui/ (lazy
ones inside functions too): nothing is imported to check them."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

PACKAGE = Path(__file__).resolve().parent.parent / "glmtui"
SHARED = {"errors", "units", "paths", "masking", "events", "steplog", "store", "conversations", "activity", "config",
          "render", "transcript"}
FRONTS = {"cli", "commands", "__main__"}
# layer -> the layers it must not import (docs/architecture.md, "The layers")
FORBIDDEN = {
    "shared": {"plan", "service", "server", "tui", "headless", "terminal", *FRONTS},
    "docker": {"agent", "plan", "service", "server", "tui", "headless", "terminal", *FRONTS},
    "agent": {"plan", "service", "server", "tui", "headless", "terminal", *FRONTS},
    "plan": {"service", "server", "tui", "headless", "terminal", *FRONTS},
    "service": {"server", "tui", "headless", "terminal", *FRONTS},
    "server": {"tui", *FRONTS},
    "headless": {"agent", "plan", "service", "server", "tui", *FRONTS},
    "terminal": {"agent", "plan", "service", "server", "tui", *FRONTS},
    "tui": {"server", "headless", *FRONTS},  # status marks and token counts are render.py's
}


class Import(NamedTuple):
    file: Path
    line: int
    module: str  # absolute, e.g. glmtui.plan.model or textual.widgets
    lazy: bool  # inside a function (or under `if TYPE_CHECKING`): not run when the module loads

    def __str__(self) -> str:
        return f"{self.file.relative_to(PACKAGE.parent)}:{self.line}: imports {self.module}"


def imports_of(path: Path) -> Iterator[Import]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if path.name == "__init__.py":
        module = package

    def walk(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import):
                yield from (Import(path, child.lineno, alias.name, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    name = ".".join([*base, child.module] if child.module else base)
                else:
                    name = child.module or ""
                yield Import(path, child.lineno, name, lazy)
                if child.module is None or child.level:  # `from . import x`, `from glmtui.plan import steps`
                    yield from (Import(path, child.lineno, f"{name}.{alias.name}", lazy) for alias in child.names)
            yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text(), str(path)), False)


def layer_of(module: str) -> str | None:
    """The layer of a glmtui module (docs/architecture.md), None for one outside glmtui."""
    parts = module.split(".")
    if parts[0] != "glmtui":
        return None
    if len(parts) == 1:
        return "shared"
    name = parts[1]
    return "shared" if name in SHARED else name


@functools.cache
def every_import() -> list[Import]:
    return [found for path in sorted(PACKAGE.rglob("*.py")) for found in imports_of(path)]


def test_the_walk_sees_imports_at_the_top_inside_functions_and_relative(tmp_path: Path) -> None:
    found = {(i.module, i.lazy) for i in imports_of(PACKAGE / "cli.py")}
    assert ("click", False) in found and ("glmtui.commands.common", False) in found
    assert ("glmtui.tui.app", True) in found, "the TUI is imported inside the tui command"
    assert ("glmtui.plan.loader", True) in {(i.module, i.lazy) for i in imports_of(PACKAGE / "plan" / "model.py")}, (
        "under `if TYPE_CHECKING`")
    modules = {i.module for i in every_import()}
    assert {"glmtui.plan.steps.run", "textual.app", "glmtui.docker.wire"} <= modules


def test_nothing_outside_tui_imports_textual() -> None:
    offending = [str(i) for i in every_import()
                 if i.module.split(".")[0] == "textual" and layer_of(_module_of(i.file)) != "tui"]
    assert offending == []


def test_each_layer_imports_only_the_layers_it_may() -> None:
    offending = []
    for found in every_import():
        source, target = layer_of(_module_of(found.file)), layer_of(found.module)
        if target is None or source == target:
            continue
        if target in FORBIDDEN.get(source, set()):
            offending.append(f"{found} ({source} must not import {target})")
    assert offending == []


def test_the_shared_ground_uses_agent_and_docker_only_lazily() -> None:
    eager = [str(i) for i in every_import()
             if layer_of(_module_of(i.file)) == "shared" and layer_of(i.module) in ("agent", "docker") and not i.lazy]
    assert eager == []


def test_the_rules_name_every_layer_there_is() -> None:
    layers = {layer_of(_module_of(path)) for path in PACKAGE.rglob("*.py")}
    assert layers - set(FORBIDDEN) - FRONTS == set(), "a new layer: give it its rules here and in docs/architecture.md"


def test_no_two_modules_of_the_tui_import_each_other() -> None:
    """A screen and a widget that import each other (screens/chat and widgets/chat did, for a token
    count) are one thing in two files: what both need goes to a module of its own (render.py)."""
    edges = {(_module_of(i.file), i.module) for i in every_import()
             if layer_of(_module_of(i.file)) == "tui" and i.module.startswith("glmtui.tui.")}
    both_ways = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert both_ways == []


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
