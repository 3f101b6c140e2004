"""Plan files to data with locations: YAML limits, safety and merging of several files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from glmtui.plan import loader
from glmtui.plan.loader import MAX_FILE_BYTES, MAX_NODES, load_documents, parse_yaml
from glmtui.plan.model import Location, PlanInvalid

PLANS = Path(__file__).parent / "plans"


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_error(paths: list[Path]) -> str:
    with pytest.raises(PlanInvalid) as caught:
        load_documents(paths)
    assert len(caught.value.errors) == 1, str(caught.value)
    return str(caught.value)


def test_every_node_has_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nsteps:\n  - id: a\n    run: echo hi\n    needs: [b, c]\n")
    document = load_documents([path])
    assert document.data == {"version": 1, "steps": [{"id": "a", "run": "echo hi", "needs": ["b", "c"]}]}
    assert document.locate(("version",)) == Location(path, 1, 10)
    assert document.locate(("steps", 0)) == Location(path, 3, 5)
    assert document.locate(("steps", 0, "run")) == Location(path, 4, 10)
    assert document.locate(("steps", 0, "run"), key=True) == Location(path, 4, 5)
    assert document.locate(("steps", 0, "needs", 1)) == Location(path, 5, 16)
    # a path that is not there falls back to its nearest ancestor
    assert document.locate(("steps", 0, "nothing", "deeper")) == Location(path, 3, 5)


def test_keys_stay_text_and_yaml_scalars_get_their_types(tmp_path: Path) -> None:
    path = write(tmp_path, "on: yes\n1: 0x10\nf: 1.5\nn: ~\nd: 2024-01-02\ns: '007'\n")
    assert load_documents([path]).data == {"on": True, "1": 16, "f": 1.5, "n": None, "d": "2024-01-02", "s": "007"}


def test_merge_keys_and_anchors_work(tmp_path: Path) -> None:
    path = write(tmp_path, "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\nlist: [*b]\n")
    data = load_documents([path]).data
    assert data["m"] == {"x": 1, "y": 3}
    assert data["list"] == [{"x": 1, "y": 2}]
    assert data["list"][0] is not data["base"]


def test_not_yaml_names_the_line_and_column(tmp_path: Path) -> None:
    message = one_error([PLANS / "bad" / "not-yaml.yaml"])
    assert message.startswith(f"{PLANS / 'bad' / 'not-yaml.yaml'}:7:1: not valid YAML: ")
    assert "quoted scalar at line 5" in message


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = PLANS / "bad" / "not-mapping.yaml"
    assert one_error([path]) == f"{path}:1:1: a plan is a YAML mapping (key: value lines), but this file is a list"
    empty = write(tmp_path, "# nothing here\n")
    assert one_error([empty]).endswith("but this file is empty")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\nsteps: []\nname: b\n")
    assert one_error([path]) == f"{path}:3:1: duplicate key 'name' (first at line 1)"


@pytest.mark.parametrize("text", ["a: !!python/object/apply:os.system [echo hi]\n", "a: !custom 1\n", "a: !!set {x}\n"])
def test_only_safe_yaml(tmp_path: Path, text: str) -> None:
    assert "unsupported YAML tag" in one_error([write(tmp_path, text)])


def test_one_document_per_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\n---\nb: 2\n")
    assert one_error([path]) == f"{path}:2:1: a plan file holds one YAML document, this one has several"


def test_missing_and_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    assert one_error([missing]) == f"{missing}:1:1: no such file"
    assert one_error([tmp_path]) == f"{tmp_path}:1:1: is a folder, not a plan file"
    locked = write(tmp_path, "a: 1\n", "locked.yaml")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: refuse the read another way

        def refuse(path: str, flags: int) -> int:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(loader, "_open_nonblocking", refuse)
    assert one_error([locked]) == f"{locked}:1:1: cannot read the file: Permission denied"


def test_a_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as stream:
        stream.write("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert one_error([path]) == f"{path}:1:1: the file is over the size limit of plan files (10 MiB)"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    assert one_error([path]) == f"{path}:2:17: the file is not UTF-8 text"


def test_a_yaml_bomb_is_refused_quickly_naming_the_limit() -> None:
    path = PLANS / "bad" / "bomb.yaml"
    started = time.perf_counter()
    message = one_error([path])
    assert time.perf_counter() - started < 1
    assert message.startswith(f"{path}:")
    assert f"more than {MAX_NODES} nodes" in message


def test_recursive_aliases_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    assert "recursive aliases" in one_error([write(tmp_path, "a: &a [*a]\n")])
    deep = write(tmp_path, "a: " + "[" * 500 + "]" * 500 + "\n", "deep.yaml")  # libyaml itself stops at 1000
    assert "nested deeper than 100 levels" in one_error([deep])
    deeper = write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n", "deeper.yaml")
    assert "nest" in one_error([deeper])  # libyaml's own limit, still one located line


def test_parse_yaml_of_a_scalar(tmp_path: Path) -> None:
    assert parse_yaml("42", tmp_path / "x").data == 42


def test_several_files_merge_steps_by_id() -> None:
    base, override = PLANS / "merge-base.yaml", PLANS / "merge-override.yaml"
    document = load_documents([base, override])
    data = document.data
    assert data["env"] == {"image": "base:1", "environment": {"A": "1", "B": "override", "C": "3"}}
    assert [step["id"] for step in data["steps"]] == ["build", "test", "deploy"]
    # the override sets another kind: the base's run goes, its needs stay
    assert data["steps"][1] == {"id": "test", "needs": ["build"], "agent": {"prompt": "run the tests and fix them"}}
    assert document.files == (base, override)
    # locations follow the node that won
    assert document.locate(("steps", 0, "timeout")) == Location(base, 9, 14)
    assert document.locate(("steps", 1, "agent")) == Location(override, 5, 12)
    assert document.locate(("steps", 1, "needs")) == Location(base, 11, 12)
    assert document.locate(("steps", 2, "run")) == Location(override, 8, 10)
    assert document.locate(("env", "environment", "B")) == Location(override, 2, 20)
    assert document.locate(("env", "environment", "A")) == Location(base, 5, 20)


def test_a_later_step_of_the_same_kind_merges_into_the_earlier(tmp_path: Path) -> None:
    base = write(tmp_path, "steps:\n  - id: a\n    agent: {prompt: p, max_turns: 3}\n", "a.yaml")
    over = write(tmp_path, "steps:\n  - id: a\n    agent: {max_turns: 9}\n    timeout: 5s\n", "b.yaml")
    assert load_documents([base, over]).data["steps"] == [
        {"id": "a", "agent": {"prompt": "p", "max_turns": 9}, "timeout": "5s"}
    ]


def test_workflow_steps_merge_by_id_and_other_lists_are_replaced(tmp_path: Path) -> None:
    base = write(tmp_path, "secrets: [A, B]\nworkflows:\n  w:\n    steps:\n      - {id: a, run: x}\n", "a.yaml")
    over = write(tmp_path, "secrets: [C]\nworkflows:\n  w:\n    steps:\n      - {id: b, run: y}\n", "b.yaml")
    data = load_documents([base, over]).data
    assert data["secrets"] == ["C"]
    assert data["workflows"]["w"]["steps"] == [{"id": "a", "run": "x"}, {"id": "b", "run": "y"}]
