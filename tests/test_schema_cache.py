"""The schema check is remembered for unchanged plans, never for plans with errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from glmtui.paths import cache_dir
from glmtui.plan import schema_cache, validate
from glmtui.plan.model import PlanInvalid
from glmtui.plan.validate import load_plan

GOOD = """\
version: 1
name: cached
steps:
  - id: a
    run: echo hi
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return cache_dir() / "schema-valid.txt"


def test_a_valid_plan_is_checked_once_then_remembered(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    plan = tmp_path / "plan.yaml"
    plan.write_text(GOOD)
    load_plan([plan], environ={})
    assert len(cache.read_text().split()) == 1

    def no_schema_check():
        raise AssertionError("the schema was checked again for an unchanged plan")

    monkeypatch.setattr(validate, "_validator", no_schema_check)
    assert load_plan([plan], environ={}).plan.name == "cached"


def test_a_changed_plan_is_checked_again_and_its_errors_reported(tmp_path: Path, cache: Path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(GOOD)
    load_plan([plan], environ={})
    plan.write_text(GOOD.replace("run: echo hi", "run: echo hi\n    neeeds: []"))
    with pytest.raises(PlanInvalid) as caught:
        load_plan([plan], environ={})
    assert "unknown key 'neeeds'" in str(caught.value) and "did you mean 'needs'" in str(caught.value)
    assert len(cache.read_text().split()) == 1  # only the valid version is remembered
    with pytest.raises(PlanInvalid):  # and the invalid one is refused every time
        load_plan([plan], environ={})


def test_the_cache_keeps_the_newest_documents_only(cache: Path):
    for number in range(schema_cache.KEEP + 10):
        schema_cache.remember_valid(schema_cache.key("schema", {"n": number}))
    kept = cache.read_text().split()
    assert len(kept) == schema_cache.KEEP
    assert kept[-1] == schema_cache.key("schema", {"n": schema_cache.KEEP + 9})
    assert not schema_cache.known_valid(schema_cache.key("schema", {"n": 0}))


def test_an_unwritable_cache_costs_only_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    plan = tmp_path / "plan.yaml"
    plan.write_text(GOOD)
    assert load_plan([plan], environ={}).plan.name == "cached"
    assert load_plan([plan], environ={}).plan.name == "cached"
