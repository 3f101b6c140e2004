"""A value of the wrong type under any key of a plan is a located error, never a crash.

Two plans that between them set every key of the schema are the base; hypothesis puts
wrong values (lists, mappings, numbers, NaN, null, text, expressions) in their place, or
adds them beside, and the loader must answer with a valid plan or PlanInvalid.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from glmtui.plan.model import LoadedPlan, PlanInvalid
from glmtui.plan.validate import load_plan, schema_text

STEP_KEYS = {
    "name": "all",
    "timeout": "5m",
    "retry": {"attempts": 2, "delay": "1s", "backoff": "exponential"},
    "continue_on_error": False,
    "environment": {"MODE": "${inputs.mode}"},
    "workdir": "/workspace",
    "outputs": {"out": "${step.stdout}"},
}
SINGLE = {
    "version": 1,
    "name": "every-key",
    "description": "sets every key",
    "inputs": {"mode": {"type": "string", "default": "fast", "description": "how", "required": False}},
    "secrets": ["TOKEN"],
    "env": {
        "name": "every-key",
        "image": "glmtui/busybox:latest",
        "workdir": "/workspace",
        "user": "1000:1000",
        "mounts": ["./src:/src:ro"],
        "copy": ["./project:/workspace/project"],
        "environment": {"A": "${inputs.mode}"},
        "resources": {"memory": "512m", "cpus": 1, "pids": 100},
        "network": {"allow": ["pypi.org", "*.github.com:443", "10.1.2.3/32"]},
        "shared": False,
        "engine": "default",
    },
    "permissions": {"host_paths": [{"path": "../data", "write": True}], "network_host": False,
                    "docker_socket": False, "root": False},
    "components": {
        "check": {
            "description": "a check",
            "with": {"path": {"default": ".", "description": "where", "required": False}},
            **STEP_KEYS,
            "shell": "bash",
            "run": "ls ${with.path}",
        },
    },
    "steps": [
        {"id": "a", **STEP_KEYS, "shell": ["sh", "-c"], "keep_running": False, "run": "echo ${inputs.mode}"},
        {"id": "b", "needs": ["a"], "if": "${steps.a.exit_code == 0}", "use": "check", "with": {"path": "/"}},
        {"id": "c", "needs": "a", "write": {"path": "/tmp/x", "content": "${steps.a.stdout}", "mode": "0644"}},
        {"id": "d", "copy": {"from": "env:/tmp/x", "to": "out/x"}},
        {
            "id": "e",
            "http": {
                "method": "POST", "url": "http://localhost:8000/", "headers": {"X": "1"}, "query": {"q": "a"},
                "body": {"k": [1]}, "timeout": "10s",
            },
            "outputs": {"code": "${response.status}"},
        },
        {
            "id": "f",
            "llm": {
                "prompt": "hi", "system": "be brief", "provider": "openai", "model": "m",
                "json_schema": {"type": "object"}, "temperature": 0.5,
            },
        },
        {
            "id": "g",
            "agent": {"prompt": "fix", "system": "s", "provider": "openai", "model": "m", "tools": ["bash"],
                      "max_turns": 3, "approval": "auto", "driver": "builtin"},
        },
        {"id": "h", "agent": {"prompt": "fix", "driver": "claude", "command": ["claude", "-p"]}},
    ],
}
WORKFLOWS = {
    "version": 1,
    "name": "workflows",
    "env": {"build": {"context": ".", "dockerfile": "Dockerfile", "args": {"V": "1"}, "network": "none"}},
    "workflows": {
        "build": {
            "description": "builds",
            "default": True,
            "inputs": {"jobs": {"type": "integer", "default": 2}},
            "steps": [{"id": "compile", "run": "make -j ${inputs.jobs}"}],
        },
        "release": {"steps": [{"id": "build", "workflow": "build", "with": {"jobs": 4}}]},
    },
}
BASES = (SINGLE, WORKFLOWS)

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.5, 1e300]),
    st.sampled_from(["", " ", "a", "${", "${inputs.nope}", "${steps.a.stdout}", "/x/${inputs.mode}", "rel/dir",
                     "file:///etc/passwd", "99999999999999999999d", "a:b:c:d", "-1"]),
    st.lists(st.sampled_from(["a", "b", 1]), max_size=2),
    st.sampled_from([[[]], [{}], {}, {"a": []}, {"a": {}}, {"": None}, [None]]),
)


def node_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from node_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from node_paths(item, (*path, index))


def schema_keys() -> set[str]:
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(schema_text()))
    return keys


def plan_keys(value: Any) -> set[str]:
    found: set[str] = set()
    for path in (path for base in BASES for path in node_paths(base)):
        found.update(part for part in path if isinstance(part, str))
    return found


def load(tmp_path: Path, data: Any) -> LoadedPlan:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return load_plan([path], environ={"TOKEN": "t"})


def put(data: Any, path: tuple, value: Any) -> None:
    if not path:
        return
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@pytest.mark.parametrize("base", BASES, ids=["steps", "workflows"])
def test_the_bases_are_valid_plans(tmp_path: Path, base: dict) -> None:
    load(tmp_path, base)


def test_the_bases_set_every_key_of_the_schema() -> None:
    assert schema_keys() - plan_keys(BASES) == set(), "add the keys to SINGLE or WORKFLOWS"


@st.composite
def wrong_plans(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path in node_paths(data) if path]
        path = draw(st.sampled_from(paths))
        if draw(st.booleans()):
            put(data, path, copy.deepcopy(draw(WRONG)))
        else:  # a key that is absent here, with a wrong value, beside the node
            parent = path[:-1]
            node = data
            for part in parent:
                node = node[part]
            if isinstance(node, dict):
                node[draw(st.sampled_from(sorted(schema_keys())))] = copy.deepcopy(draw(WRONG))
    return data


def mutated(base: dict, path: tuple, value: Any) -> dict:
    data = copy.deepcopy(base)
    put(data, path, value)
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=wrong_plans())
@example(data=mutated(WORKFLOWS, ("workflows", "release", "steps", 0, "workflow"), ["a"]))  # found: a TypeError
@example(data=mutated(WORKFLOWS, ("workflows", "release", "steps", 0, "workflow"), {}))
@example(data=mutated(SINGLE, ("env", "resources", "pids"), math.inf))  # found: an OverflowError
@example(data=mutated(SINGLE, ("permissions", "host_paths"), True))  # found: a TypeError
@example(data=mutated(SINGLE, ("env", "mounts"), 1))  # found: a TypeError
def test_a_wrong_value_under_any_key_is_a_plan_or_plan_invalid(tmp_path: Path, data: Any) -> None:
    try:
        result = load(tmp_path, data)
    except PlanInvalid as exc:
        assert exc.errors
        assert all(str(error).startswith(f"{tmp_path / 'plan.yaml'}:") for error in exc.errors)
    else:
        assert isinstance(result, LoadedPlan)
