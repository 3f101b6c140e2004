"""The test tiers stay true: `pytest -m "not docker"` runs where no engine is, because a test
without the docker marker reaches none (tests/conftest.py, docker_only_when_marked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NO_ENGINE

TESTS = Path(__file__).resolve().parent


def test_a_test_without_the_docker_marker_reaches_no_engine(glmtui) -> None:
    done = glmtui("env", "list")
    assert done.returncode == 3, done.stdout
    assert NO_ENGINE in done.stderr


@pytest.mark.docker
def test_a_test_with_the_marker_reaches_the_engine(glmtui) -> None:
    done = glmtui("env", "list")
    assert done.returncode == 0, done.stderr


def test_a_test_that_asks_for_the_engine_without_the_marker_fails_saying_so(tmp_path: Path) -> None:
    (tmp_path / "test_unmarked.py").write_text("def test_it(env_name):\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "--rootdir", str(tmp_path),
         str(tmp_path / "test_unmarked.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])},
    )
    assert done.returncode == 1, done.stdout
    assert "test_unmarked.py::test_it uses the Docker engine (env_name) without @pytest.mark.docker" in done.stdout
