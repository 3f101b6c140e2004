"""Helpers for the plan-engine tests: write plans, run them (in process or by the CLI),
read the events, and look at what Docker holds afterwards.

Everything here checks the way a user would: through the Runner's event stream,
the `glmtui` command line and its JSON lines, and the `docker` command.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers
from helpers import BUSYBOX, WORKSPACE, unique_name  # noqa: F401 - re-exported for the tests

RUNPLANS = Path(__file__).parent / "runplans"


# --- plans -----------------------------------------------------------------------------------


def write_plan(folder: Path, text: str, name: str = "plan.yaml", **subs: str) -> Path:
    """A plan file from YAML text (dedented) in `folder`; `@KEY@` is replaced by subs[KEY]."""
    folder.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(text).lstrip("\n")
    for key, value in subs.items():
        text = text.replace(f"@{key}@", value)
    assert "@ENV@" not in text, "the plan names @ENV@ but no env was given"
    path = folder / name
    path.write_text(text)
    return path


# --- running in process ----------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run produced: its events (in order), its result or error, and its store."""

    events: list[Any]
    store: Any
    result: Any = None
    error: BaseException | None = None

    @property
    def run_id(self) -> str:
        return self.of("run_started")[0].run_id

    @property
    def status(self) -> str:
        return self.of("run_finished")[-1].status

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return getattr(self.error, "exit_code", 1)
        return self.result.exit_code

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.kind == kind]

    def started(self, step: str) -> list[Any]:
        return [e for e in self.of("step_started") if e.step == step]

    def finished(self, step: str) -> Any:
        found = [e for e in self.of("step_finished") if e.step == step]
        assert found, f"no step_finished for {step!r}; events: {self.summary()}"
        assert len(found) == 1, f"{len(found)} step_finished events for {step!r}"
        return found[0]

    def lines(self, step: str, stream: str = "stdout") -> list[str]:
        return [line for e in self.of("output") if e.step == step and e.stream == stream for line in e.lines]

    def text(self, step: str, stream: str = "stdout") -> str:
        return "\n".join(self.lines(step, stream))

    def statuses(self) -> dict[str, str]:
        return {e.step: e.status for e in self.of("step_finished")}

    def summary(self) -> str:
        parts = []
        for e in self.events:
            if e.kind == "output":
                parts.append(f"  {e.step}/{e.stream}: {[line[:200] for line in e.lines]}")
            else:
                parts.append(f"  {e.to_json()}")
        return "\n".join(parts)


def make_store(folder: Path):
    from glmtui.store import Store

    return Store(folder / "glmtui.sqlite3", folder / "runs")


async def run_plan(
    engine: Any,
    plan: Path | Sequence[Path],
    *,
    store: Any = None,
    inputs: Mapping[str, str] | None = None,
    workflow: str | None = None,
    environ: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    jobs: int | None = None,
    keep: bool = False,
    resume: str | None = None,
    run_id: str | None = None,
    sink: Any = None,
    allow: bool = False,
    grant: Any = None,
) -> Outcome:
    """Load and run a plan with the Runner, collecting every event in a list (and giving
    each to `sink` too, when given). `allow` grants what the plan declares (as --allow does);
    `grant` grants exactly that (a server's policy)."""
    from glmtui.config import Config
    from glmtui.errors import GlmtuiError
    from glmtui.plan.runner import Runner
    from glmtui.plan.validate import load_plan

    paths = [plan] if isinstance(plan, Path) else list(plan)
    if store is None:
        store = make_store(paths[0].parent / ".glmtui-test-data")
    loaded = load_plan(
        paths, workflow=workflow, inputs=dict(inputs or {}), extra_env=dict(extra_env or {}),
        environ=dict(environ) if environ is not None else {},
    )
    events: list[Any] = []

    def collect(event: Any) -> None:
        events.append(event)
        if sink is not None:
            sink(event)

    runner = Runner(
        engine, loaded, sink=collect, store=store, config=Config.load(cwd=paths[0].parent),
        jobs=jobs, keep=keep, resume=resume, run_id=run_id, grant=loaded.plan.permissions if allow else grant,
    )
    outcome = Outcome(events, store)
    try:
        outcome.result = await runner.run()
    except GlmtuiError as err:
        outcome.error = err
    return outcome


def plan_runner(engine: Any, env: str, folder: Path):
    """`await run(PLAN_TEXT, KEY=sub..., **run_plan_options)`: the plan, its `env: @ENV@` the
    given environment (and @KEY@ each substitution), written to `folder` and run (run_plan)."""

    async def run(text: str, **given: Any) -> Outcome:
        subs = {key: value for key, value in given.items() if key.isupper()}
        options = {key: value for key, value in given.items() if not key.isupper()}
        return await run_plan(engine, write_plan(folder, text, ENV=env, **subs), **options)

    return run


# --- running the command line ----------------------------------------------------------------


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects of a `--json` run, one per line; any other line fails the test."""
    events = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line in --json output: {line[:300]!r}") from None
    return events


def of(events: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]


def lines_of(events: list[dict[str, Any]], step: str, stream: str | None = None) -> list[str]:
    """Every output line of a step, in order (a step's output may come in several events)."""
    match = {"step": step} if stream is None else {"step": step, "stream": stream}
    return [line for event in of(events, "output", **match) for line in event["lines"]]


class LiveRun:
    """A `glmtui ARGS` process (a `--run PLAN --json` one) read event by event, for signals mid-run."""

    def __init__(self, *args: str | Path, env: Mapping[str, str | None] | None = None, cwd: Path | None = None):
        self.proc = subprocess.Popen(
            helpers.glmtui_argv(*map(str, args)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            encoding="utf-8", errors="replace", env=helpers.child_env(env),
            cwd=str(cwd or helpers.NEUTRAL_CWD or helpers.PROJECT_ROOT),
        )
        self.events: list[dict[str, Any]] = []
        self.stderr = ""

    def wait_for(self, kind: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        """Read events until one of `kind` (matching `match`) arrives."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
        self.kill()
        raise AssertionError(f"no {kind} event; got {self.events}; stderr: {self.stderr}")

    @property
    def run_id(self) -> str:
        return self.events[0]["run_id"]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 60) -> int:
        out, err = self.proc.communicate(timeout=timeout)
        self.stderr = err
        self.events += json_lines(out)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        try:
            _, self.stderr = self.proc.communicate(timeout=10)
        except (ValueError, subprocess.TimeoutExpired):
            pass


# --- Docker, as the docker command shows it --------------------------------------------------


def docker_out(*args: str) -> str:
    return helpers.docker(*args).stdout.strip()


def containers(*filters: str) -> list[str]:
    """Ids of every container (running or not) matching all the `docker ps` filters."""
    args = ["ps", "-aq", "--no-trunc"]
    for f in filters:
        args += ["--filter", f]
    return docker_out(*args).split()


def run_containers(run_id: str) -> list[str]:
    return containers(f"label=glmtui.run={run_id}")


def run_volume_exists(run_id: str) -> bool:
    return helpers.volume_exists(f"run-{run_id}")


def remove_run_leftovers(run_id: str) -> None:
    for cid in run_containers(run_id):
        helpers.docker("rm", "-f", cid, check=False)
    helpers.remove_quietly(f"run-{run_id}")


def env_sh(env: str, script: str) -> subprocess.CompletedProcess[str]:
    """`sh -c SCRIPT` in an environment, by the docker CLI."""
    return subprocess.run(
        ["docker", "exec", helpers.container_of(env), "sh", "-c", script], capture_output=True, text=True, timeout=30
    )


@dataclass
class Timer:
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
