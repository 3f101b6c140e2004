#!/usr/bin/env python
"""Benchmarks of saved agents and `glmtui serve` on a real engine, in one run.

    .venv/bin/python bench/agents.py [--quick] [--runs N] [--json] [--only overhead,idle,lateness] [--strict]

What is measured (the `glmtui` command of this venv, a data folder of its own in a temporary
folder, the model server of tests/model_server.py in a child process, a busybox environment
made for the run):

  overhead  one execution of a saved agent, `glmtui agents run bench --wait > /dev/null`, against
            the same agent step in a headless plan run, `glmtui --run plan.yaml > /dev/null`: the
            same named environment, the same provider and prompt, the same scripted model turns
            (a `bash true` tool call, then "done"). Whole wall time of each command, back to back
            in every round, taking turns to go first; the ratio is the median of the per-round
            ratios (goal <= 1.1). A first round warms up and is not counted.
  idle      `glmtui serve` with 100 active agents (each `@yearly`, so none fires), its CPU time
            (utime + stime from /proc) over 30 s (--quick 10 s) after 3 s of settling, as a share
            of one CPU (goal < 0.5 %); the same with no agent, for reference.
  lateness  `glmtui serve` with 20 agents on `every 2s` for 30 s (--quick 12 s): how late each
            execution started after its fire time (the execution record's `started - scheduled`),
            p50 / p99 / max (goal: p99 < 200 ms). Their environment is absent, so each execution
            fails at once and the figure is the scheduler's, not Docker's; serve.max_executions is
            20 so that no execution waits for a slot. Then 2 agents with real executions (the
            scripted model, the named environment, a tool call) for the same time, for reference.

Figures are medians of N rounds (default 5, --quick 2) where there are rounds. Everything made
here (the environment, the serve processes, the temporary folder) is removed at the end, also on
an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from common import aligned, cpu_model, verdict  # noqa: E402

BUSYBOX = "glmtui/busybox:latest"
GLMTUI_BIN = Path(sys.executable).parent / "glmtui"
KEY_VAR = "GLMTUI_BENCH_KEY"
PROMPT = "Run true in the environment, then say done."

# The model server in a child process, scripted by lines on stdin: {"turns": N} scripts N agent
# turns (a `bash true` call, then "done"), answered with "ok".
_SERVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from model_server import ModelServer, text, tool_calls
call = tool_calls([("call_1", "bash", {"command": "true"})], usage=(400, 12))
done = text("done", usage=(430, 2))
with ModelServer() as server:
    print(json.dumps({"base_url": server.base_url}), flush=True)
    for line in sys.stdin:
        for _ in range(json.loads(line)["turns"]):
            server.script(call, done)
        print("ok", flush=True)
"""


@dataclass
class Figure:
    key: str
    title: str
    unit: str
    glmtui: float
    baseline: float | None
    ratio: float | None
    goal: str
    passed: bool | None
    runs: int
    samples: list[float] = field(default_factory=list)
    samples_baseline: list[float] = field(default_factory=list)
    note: str = ""


class Bench:
    def __init__(self, workdir: Path, log: bool) -> None:
        self.workdir = workdir
        self.log = log
        self.env_name = f"benchagents-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.server = subprocess.Popen([sys.executable, "-c", _SERVER, str(TESTS)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, start_new_session=True)
        first = self.server.stdout.readline()
        if not first:
            raise RuntimeError("the model server process did not start")
        self.base_url = json.loads(first)["base_url"]
        self.serving: list[subprocess.Popen] = []

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    def project(self, name: str, **settings: Any) -> tuple[Path, dict[str, str]]:
        """A project folder (its config names the scripted server) and a data folder of its own."""
        folder = self.workdir / name
        (folder / ".glmtui").mkdir(parents=True, exist_ok=True)
        config = {"default_provider": "bench", "approval": "auto",
                  "providers": {"bench": {"base_url": self.base_url, "api_key_env": KEY_VAR, "model": "bench-model"}},
                  **settings}
        (folder / ".glmtui" / "config.yaml").write_text(json.dumps(config))
        env = {**os.environ, "XDG_DATA_HOME": str(folder / "data"), KEY_VAR: "sk-bench-not-a-secret",
               "PYTHONPYCACHEPREFIX": str(self.workdir / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled modules cached, as an installed glmtui has them
        return folder, env

    def glmtui(self, folder: Path, env: dict[str, str], *args: str) -> float:
        with (self.workdir / "out.txt").open("w+") as out:  # a file, as cheap as /dev/null, read on a failure
            started = time.perf_counter()
            result = subprocess.run([str(GLMTUI_BIN), *args], cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
            elapsed = time.perf_counter() - started
            if result.returncode != 0:
                out.seek(0)
                raise RuntimeError(f"glmtui {' '.join(args)} failed ({result.returncode}): {out.read()[-2000:]}")
        return elapsed

    def script(self, turns: int) -> None:
        self.server.stdin.write(json.dumps({"turns": turns}) + "\n")
        self.server.stdin.flush()
        if self.server.stdout.readline().strip() != "ok":
            raise RuntimeError("the model server process did not take the script")

    def apply(self, folder: Path, env: dict[str, str], agents: dict[str, str]) -> None:
        files = []
        for name, body in agents.items():
            path = folder / f"{name}.yaml"
            path.write_text(f"version: 1\nname: {name}\nprompt: {json.dumps(PROMPT)}\napproval: auto\n{body}")
            files.append(str(path))
        self.glmtui(folder, env, "agents", "apply", *files)

    def serve(self, folder: Path, env: dict[str, str]) -> subprocess.Popen:
        child = subprocess.Popen([str(GLMTUI_BIN), "serve"], cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.serving.append(child)
        line = child.stdout.readline()
        if "glmtui serve (pid" not in line:
            raise RuntimeError(f"glmtui serve did not start: {line}{child.stdout.read()}")
        return child

    def stop(self, child: subprocess.Popen) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(90)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if child in self.serving:
            self.serving.remove(child)

    def close(self) -> None:
        for child in list(self.serving):
            self.stop(child)
        subprocess.run(["docker", "rm", "-f", "-v", f"glmtui-{self.env_name}"], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"glmtui-{self.env_name}-workspace"], capture_output=True)
        if self.server.poll() is None:
            self.server.stdin.close()
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def executions(folder: Path) -> list[tuple[float, float, str, str | None]]:
    """(scheduled, started, status, reason) of every scheduled execution in the project's data folder."""
    db = sqlite3.connect(folder / "data" / "glmtui" / "glmtui.sqlite3")
    try:
        return db.execute("SELECT scheduled, started, status, reason FROM agent_executions WHERE trigger = 'schedule'"
                          " AND started IS NOT NULL").fetchall()
    finally:
        db.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# -- the figures --------------------------------------------------------------------------------


def bench_overhead(bench: Bench, runs: int) -> list[Figure]:
    folder, env = bench.project("overhead")
    bench.glmtui(folder, env, "env", "create", bench.env_name, "--image", BUSYBOX)
    bench.apply(folder, env, {"bench": f"env: {bench.env_name}\nmax_turns: 5\n"})
    plan = folder / "plan.yaml"
    plan.write_text(f"version: 1\nname: bench-plan\nenv: {{name: {bench.env_name}}}\nsteps:\n  - id: agent\n"
                    f"    agent: {{prompt: {json.dumps(PROMPT)}, approval: auto, max_turns: 5}}\n")
    ours, theirs = [], []
    for round_ in range(runs + 1):  # the first round warms up (compiled modules, the image's layers)
        bench.script(2)
        if round_ % 2:  # the two take turns to go first
            execution = bench.glmtui(folder, env, "agents", "run", "bench", "--wait")
            step = bench.glmtui(folder, env, "--run", str(plan))
        else:
            step = bench.glmtui(folder, env, "--run", str(plan))
            execution = bench.glmtui(folder, env, "agents", "run", "bench", "--wait")
        if round_:
            ours.append(execution)
            theirs.append(step)
            bench.say(f"overhead round {round_}: execution {execution * 1000:.0f} ms, plan step {step * 1000:.0f} ms")
    ratio = statistics.median(a / b for a, b in zip(ours, theirs))
    return [Figure("overhead", "agent execution vs the same agent step in `glmtui --run`", "s",
                   statistics.median(ours), statistics.median(theirs), ratio, "ratio <= 1.1", ratio <= 1.1, runs,
                   ours, theirs)]


def bench_idle(bench: Bench, seconds: float) -> list[Figure]:
    figures = []
    shares = {}
    for count in (0, 100):
        folder, env = bench.project(f"idle-{count}")
        if count:
            bench.apply(folder, env, {f"idle-{n:03d}": 'schedule: "@yearly"\nenv: absent\n' for n in range(count)})
        child = bench.serve(folder, env)
        time.sleep(3)
        before = cpu_seconds(child.pid)
        time.sleep(seconds)
        shares[count] = (cpu_seconds(child.pid) - before) / seconds * 100
        bench.stop(child)
        bench.say(f"idle with {count} agents: {shares[count]:.3f} % of a CPU")
    figures.append(Figure("idle", "`glmtui serve` idle with 100 active agents, % of a CPU", "%", shares[100], shares[0],
                          None, "< 0.5 %", shares[100] < 0.5, 1, note="baseline: serve with no agent"))
    return figures


def bench_lateness(bench: Bench, seconds: float) -> list[Figure]:
    figures = []
    folder, env = bench.project("lateness", serve={"max_executions": 20})
    bench.apply(folder, env, {f"late-{n:02d}": "schedule: every 2s\ncatch_up: skip\nenv: absent\n" for n in range(20)})
    child = bench.serve(folder, env)
    time.sleep(seconds)
    bench.stop(child)
    late = [(started - scheduled) * 1000 for scheduled, started, *_ in executions(folder)]
    if not late:
        raise RuntimeError("no scheduled execution started")
    p99 = percentile(late, 0.99)
    figures.append(Figure("lateness", f"start after the fire time, 20 agents every 2s ({len(late)} executions), p99",
                          "ms", p99, None, None, "p99 < 200 ms", p99 < 200, 1, late,
                          note=f"p50 {percentile(late, 0.5):.1f} ms, max {max(late):.1f} ms"))
    bench.say(figures[-1].note)
    folder, env = bench.project("lateness-real")
    bench.apply(folder, env, {f"real-{n}": f"schedule: every 2s\ncatch_up: skip\nenv: {bench.env_name}\n" for n in range(2)})
    bench.script(int(seconds) + 10)
    child = bench.serve(folder, env)
    time.sleep(seconds)
    bench.stop(child)
    done = executions(folder)
    real = [(started - scheduled) * 1000 for scheduled, started, *_ in done]
    statuses = {status for _, _, status, _ in done}
    if statuses != {"success"}:
        reasons = sorted({reason or "" for _, _, status, reason in done if status != "success"})
        raise RuntimeError(f"the real executions did not all succeed: {reasons[:3]}")
    p99 = percentile(real, 0.99)
    figures.append(Figure("lateness-real", f"the same, 2 agents with real executions ({len(real)}), p99", "ms", p99,
                          None, None, "", None, 1, real,
                          note=f"p50 {percentile(real, 0.5):.1f} ms, max {max(real):.1f} ms"))
    bench.say(figures[-1].note)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter waits")
    parser.add_argument("--runs", type=int, help="rounds of the overhead figure (default 5, --quick 2)")
    parser.add_argument("--json", action="store_true", help="machine-readable, with every sample")
    parser.add_argument("--only", help="a comma-separated subset of overhead,idle,lateness")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a MISS")
    args = parser.parse_args()
    wanted = set((args.only or "overhead,idle,lateness").split(","))
    runs = args.runs or (2 if args.quick else 5)
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    figures: list[Figure] = []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with tempfile.TemporaryDirectory(prefix="benchagents-") as temporary:
        bench = Bench(Path(temporary), log=not args.json)
        try:
            if "overhead" in wanted:
                figures += bench_overhead(bench, runs)
            elif "lateness" in wanted:  # its real executions work in the environment the overhead makes
                folder, env = bench.project("environment")
                bench.glmtui(folder, env, "env", "create", bench.env_name, "--image", BUSYBOX)
            if "idle" in wanted:
                figures += bench_idle(bench, 10 if args.quick else 30)
            if "lateness" in wanted:
                figures += bench_lateness(bench, 12 if args.quick else 30)
        finally:
            bench.close()
    if args.json:
        print(json.dumps({"started": started.isoformat(), "cpu": cpu_model(), "python": platform.python_version(),
                          "load": [load_before, os.getloadavg()], "figures": [asdict(f) for f in figures]}, indent=2))
    else:
        print(f"bench/agents.py · {started:%Y-%m-%d %H:%M} UTC · {cpu_model()} · load {load_before[0]:.2f} -> "
              f"{os.getloadavg()[0]:.2f}")
        rows = [(f.title, f"{f.glmtui:.3f}" if f.unit == "s" else f"{f.glmtui:.2f}",
                 "" if f.baseline is None else (f"{f.baseline:.3f}" if f.unit == "s" else f"{f.baseline:.2f}"),
                 "" if f.ratio is None else f"{f.ratio:.2f}", f.unit, f.goal, verdict(f.passed)) for f in figures]
        for line in aligned(("figure", "glmtui", "baseline", "ratio", "unit", "goal", ""), rows):
            print(line)
        for f in figures:
            if f.note:
                print(f"  {f.key}: {f.note}")
    return 1 if args.strict and any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
