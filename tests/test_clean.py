"""`glmtui clean`: what it removes, what it keeps, and --dry-run, --all and NAME.

`clean` acts on every glmtui container of the engine it talks to, whoever made them, so these
tests start a Docker engine of their own (its own socket, data root, exec root, pid file and
network namespace) and never run it against the shared one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BUSYBOX, container_of, one_error_line, run_glmtui, volume_of
from plan_helpers import LiveRun, write_plan
from private_dockerd import PrivateDockerd

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def own_engine(busybox_image: str) -> Iterator[dict[str, str]]:
    """A dockerd for these tests alone (tests/private_dockerd.py); the variables that point
    glmtui and docker at it."""
    engine = PrivateDockerd()
    engine.start()
    try:
        engine.load_image_from_machine(busybox_image)
        yield {"DOCKER_HOST": engine.host}
    finally:
        engine.close()


def own_docker(variables: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **variables})
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


def names(variables: dict[str, str]) -> set[str]:
    return set(own_docker(variables, "ps", "-a", "--format", "{{.Names}}").stdout.split())


def volumes(variables: dict[str, str]) -> set[str]:
    return set(own_docker(variables, "volume", "ls", "-q").stdout.split())


def status(variables: dict[str, str], name: str) -> str:
    return own_docker(variables, "inspect", "-f", "{{.State.Status}}", container_of(name)).stdout.strip()


def dangling_image(variables: dict[str, str], folder: Path) -> str:
    """A glmtui image left without a tag (built again under the same tag): its short id."""
    for version in ("1", "2"):
        (folder / "Dockerfile").write_text(f"FROM {BUSYBOX}\nLABEL glmtui.test.version={version}\n")
        own_docker(variables, "build", "-q", "-t", "glmtui/clean-test:latest", str(folder))
    found = own_docker(variables, "images", "-q", "--filter", "dangling=true",
                       "--filter", "label=glmtui.managed=true").stdout.split()
    assert len(found) == 1, found
    return found[0]


def test_named_environments_go_only_when_named_or_with_all(own_engine, tmp_path):
    glmtui = lambda *args: run_glmtui(*args, env=own_engine)  # noqa: E731
    for name in ("kept-a", "kept-b", "busy"):
        assert glmtui("env", "create", name, "--image", BUSYBOX).returncode == 0
    for name in ("kept-a", "kept-b"):
        assert glmtui("env", "stop", "-t", "0", name).returncode == 0
    image = dangling_image(own_engine, tmp_path)
    every = names(own_engine)

    cleaned = glmtui("clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert names(own_engine) == every, "a stopped named environment survives a plain clean"
    assert cleaned.stdout.splitlines() == [
        f"removed 1 image: {image}",
        "kept 2 stopped environments: kept-a, kept-b (glmtui clean NAME, or --all, removes them)",
    ]
    assert image not in own_docker(own_engine, "images", "-aq").stdout.split()

    image = dangling_image(own_engine, tmp_path)
    dry = glmtui("clean", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"would remove 1 image: {image}",
        "kept 2 stopped environments: kept-a, kept-b (glmtui clean NAME, or --all, removes them)",
    ]
    assert names(own_engine) == every and image in own_docker(own_engine, "images", "-aq").stdout.split()

    refused = glmtui("clean", "busy", "kept-a")
    assert refused.returncode == 2 and "environment 'busy' is running" in one_error_line(refused.stderr)
    unknown = glmtui("clean", "no-such-env")
    assert unknown.returncode == 2 and "no environment named 'no-such-env'" in one_error_line(unknown.stderr)
    assert names(own_engine) == every, "nothing goes when a NAME cannot be cleaned"

    named = glmtui("clean", "kept-a")
    assert named.returncode == 0, named.stderr
    assert named.stdout.splitlines() == [
        "removed 1 environment: kept-a",
        f"removed 1 image: {image}",  # what a plain clean removes goes too
        "kept 1 stopped environment: kept-b (glmtui clean NAME, or --all, removes them)",
    ]
    assert container_of("kept-a") not in names(own_engine) and volume_of("kept-a") in volumes(own_engine)

    dry_all = glmtui("clean", "--all", "-n")
    assert dry_all.returncode == 0, dry_all.stderr
    assert dry_all.stdout.splitlines() == [
        "would remove 1 environment: kept-b",
        f"would remove 2 volumes: {volume_of('kept-a')}, {volume_of('kept-b')}",
    ]
    assert container_of("kept-b") in names(own_engine) and volume_of("kept-b") in volumes(own_engine)

    everything = glmtui("clean", "--all")
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.splitlines() == [
        "removed 1 environment: kept-b",
        f"removed 2 volumes: {volume_of('kept-a')}, {volume_of('kept-b')}",
    ]
    assert names(own_engine) == {container_of("busy")} and status(own_engine, "busy") == "running"
    assert volumes(own_engine) == {volume_of("busy")}
    assert glmtui("clean", "--all").stdout == "nothing to clean\n"


def test_throwaway_environments_go_when_their_run_has_ended(own_engine, tmp_path):
    glmtui = lambda *args: run_glmtui(*args, env=own_engine)  # noqa: E731
    plan = write_plan(tmp_path, f"""
        version: 1
        name: long
        env: {{image: {BUSYBOX}}}
        steps:
          - id: long
            run: echo started; sleep 300
        """)
    going = LiveRun("--run", plan, "--json", env=own_engine)
    killed = LiveRun("--run", plan, "--json", env=own_engine)
    try:
        for run in (going, killed):
            run.wait_for("output", step="long")
        killed.proc.send_signal(signal.SIGKILL)
        killed.proc.wait(10)
        # a throw-away environment of a run no record here knows (another user's), stopped
        own_docker(own_engine, "run", "--name", "glmtui-run-elsewhere", "--label", "glmtui.managed=true",
                   "--label", "glmtui.env=run-elsewhere", "--label", "glmtui.run=elsewhere", BUSYBOX, "true")
        going_env, killed_env = f"run-{going.run_id}", f"run-{killed.run_id}"
        assert {container_of(going_env), container_of(killed_env)} <= names(own_engine)

        dry = glmtui("clean", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.splitlines() == [f"would remove 2 throw-away environments: {killed_env}, run-elsewhere"]
        assert container_of(killed_env) in names(own_engine)

        cleaned = glmtui("clean")
        assert cleaned.returncode == 0, cleaned.stderr
        assert cleaned.stdout.splitlines() == [f"removed 2 throw-away environments: {killed_env}, run-elsewhere"]
        left = names(own_engine)
        assert container_of(killed_env) not in left and container_of("run-elsewhere") not in left
        assert volume_of(killed_env) not in volumes(own_engine)
        assert container_of(going_env) in left and status(own_engine, going_env) == "running", \
            "the environment of a run that still goes stays"
        going.signal(signal.SIGINT)
        assert going.finish() == 130
        assert json.loads(glmtui("runs", "show", going.run_id, "--json").stdout)["status"] == "cancelled"
    finally:
        going.kill()
        killed.kill()


def test_clean_forgets_old_records_only_past_keep_runs_days(own_engine, tmp_path):
    """Run and exec records older than keep_runs_days go with their logs; --dry-run only names them."""
    from glmtui.store import Store

    glmtui = lambda *args: run_glmtui(*args, env=own_engine)  # noqa: E731
    assert glmtui("env", "create", "records", "--image", BUSYBOX).returncode == 0
    assert glmtui("env", "exec", "records", "echo", "old").returncode == 0
    assert glmtui("env", "exec", "records", "echo", "new").returncode == 0
    store = Store()
    try:
        old, new = store.execs("records")
        store.connection.execute("UPDATE execs SET started = started - 40 * 86400, finished = finished - 40 * 86400"
                                 " WHERE id = ?", (old.id,))
        dry = glmtui("clean", "-n")
        assert dry.stdout.splitlines() == [f"would remove 1 exec record (with logs): {old.id}"]
        assert store.exec_log(old.id).exists()
        cleaned = glmtui("clean")
        assert cleaned.stdout.splitlines() == [f"removed 1 exec record (with logs): {old.id}"]
        assert [record.id for record in store.execs("records")] == [new.id]
        assert not store.exec_log(old.id).exists() and store.exec_log(new.id).exists()
    finally:
        store.close()
        own_docker(own_engine, "rm", "-f", "-v", container_of("records"), check=False)
        own_docker(own_engine, "volume", "rm", volume_of("records"), check=False)
