#!/usr/bin/env python
"""Benchmarks of plan runs (`glmtui --run`, `glmtui plan validate`) on a real engine, in one run.

    .venv/bin/python bench/plans.py [--quick] [--runs N] [--json] [--only overhead,parallel,output,validate]

What is measured (glmtui side = the `.venv/bin/glmtui` command, headless, stdout not a TTY):

  overhead  a plan of 50 sequential `true` steps (each `needs` the one before) in one named
            environment (created first with `glmtui env create` on glmtui/busybox, the plan says
            `env: {name: ...}`), `glmtui --run plan.yaml > /dev/null`, whole wall time
            vs `sh -c 'for i in $(seq 50); do docker exec glmtui-ENV true; done'`
            (limit: ratio <= 1.0, aim: ratio <= 0.7). Also a 1-step plan's wall time (the fixed
            cost), so the cost of a step is (T50 - T1) / 49 against docker's time per exec.
  parallel  8 independent `sleep 1` steps, throw-away busybox environment, `--jobs 8 --json`:
            first step_started to last step_finished from the events (goal < 1.5 s), against
            8 `docker exec glmtui-ENV sleep 1` started at once; the whole wall time (with creating
            and removing the throw-away environment) for reference.
  output    one step `seq 2000000` in the named environment, `glmtui --run` with the plain
            renderer (stdout /dev/null; the step's log file is written and checked byte for
            byte) vs `docker exec glmtui-ENV seq 2000000 > /dev/null` (goal: ratio <= 1.5);
            peak RSS of the glmtui process (GNU time's max RSS; goal < 150 MB). The same with
            --json, and plain again with a plan that declares a secret (every chunk of output is
            masked: searched for it). With overhead measured too, also the wall time less the
            1-step plan's.
  validate  a generated 2,000-step plan, a chain (each step uses the previous step's stdout):
            `load_plan` in a fresh process after its imports, first call (goal < 0.5 s) and the
            median of warm calls; `glmtui plan validate` wall time for reference.

Figures are medians of N rounds (default 5, --quick 1; validate takes 2N+1), each round running
every side back to back after a warm-up; a ratio is the median of the per-round ratios. Every glmtui command gets its own data folder (XDG_DATA_HOME in a temporary
folder), so run records and the 2,000,000-line logs never land in the user's history; compiled
modules are cached there too (PYTHONPYCACHEPREFIX, PYTHONDONTWRITEBYTECODE dropped) as an installed
glmtui has them (--no-pyc: leave the environment as it is). The named environment
`benchplans-<pid>-<random>` and any throw-away environment of a run started here are removed at
the end, also on an error, Ctrl-C or SIGTERM (the running command gets SIGINT and may clean up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from glmtui.docker.spec import container_name, volume_name  # noqa: E402
from common import aligned, cpu_model, seq_bytes, verdict  # noqa: E402

BUSYBOX = "glmtui/busybox:latest"
GLMTUI_BIN = Path(sys.executable).parent / "glmtui"
PYTHON = Path(sys.executable)
CHAIN_STEPS = 50
PARALLEL_STEPS = 8
OUTPUT_LINES = 2_000_000
BENCH_SECRET = "bench-4f9c2a7e1d-secret"  # an API key's length; every chunk of output is searched for it
VALIDATE_STEPS = 2_000
MB = 1024 * 1024


@dataclass
class Figure:
    key: str
    title: str
    unit: str  # "s" or "MB", lower is better
    statistic: str  # median / max / first ...
    glmtui: float
    docker: float | None
    ratio: float | None
    goal: str
    passed: bool | None  # None: reported, no goal
    runs: int
    samples_glmtui: list[float] = field(default_factory=list)
    samples_docker: list[float] = field(default_factory=list)
    note: str = ""


# -- running commands -------------------------------------------------------------------------


class Runner:
    """Starts every command in its own session, so Ctrl-C reaches the bench only; the bench
    then sends SIGINT to the command's process group once and waits for it to clean up."""

    def __init__(self, workdir: Path, log: bool, pyc: bool = True) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.env = {**os.environ, "XDG_DATA_HOME": str(self.data)}
        self.env.pop("GLMTUI_DEBUG", None)
        if pyc:  # compiled modules cached as an installed glmtui has them, in the temporary folder
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        self.log = log
        self.gnu_time = _gnu_time()
        self.run_ids: set[str] = set()  # every run started here, for the sweep

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    def run(self, argv: list[str], *, capture: bool = False, rss: bool = False) -> tuple[float, str, int | None]:
        """Wall time, stdout (if captured) and peak RSS in bytes (if asked) of one command."""
        rss_file = self.workdir / "rss.txt"
        if rss:
            if self.gnu_time:
                argv = [self.gnu_time, "-f", "%M", "-o", str(rss_file), *argv]
            else:  # a fresh Python whose only child is the command: RUSAGE_CHILDREN is that child's
                argv = [str(PYTHON), "-c", _RSS_WRAPPER, str(rss_file), *argv]
        err_file = (self.workdir / "stderr.txt").open("w+b")
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=err_file, cwd=self.workdir, env=self.env, start_new_session=True,
        )
        try:
            out, _ = child.communicate()
        except KeyboardInterrupt:
            self.stop(child)
            raise
        elapsed = time.perf_counter() - started
        err_file.seek(0)
        err = err_file.read().decode("utf-8", "replace").strip()
        err_file.close()
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({child.returncode}): {err[-2000:]}")
        peak = None
        if rss:
            peak = int(rss_file.read_text().split()[-1]) * 1024  # kilobytes, from both
        return elapsed, (out or b"").decode("utf-8", "replace"), peak

    def stop(self, child: subprocess.Popen) -> None:
        """Ctrl-C to the command's group, then up to 60 s for its clean-up, then SIGKILL."""
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # more Ctrl-C / SIGTERM must not cut the wait short
        old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            try:
                os.killpg(child.pid, signal.SIGINT)
            except ProcessLookupError:
                return
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.wait()
        finally:
            signal.signal(signal.SIGINT, old)
            signal.signal(signal.SIGTERM, old_term)

    def glmtui(self, *args: str, **kwargs: Any) -> tuple[float, str, int | None]:
        return self.run([str(GLMTUI_BIN), *args], **kwargs)

    def newest_run(self) -> Path:
        runs = sorted((self.data / "glmtui" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
        return runs[-1]

    def throwaway_environments(self) -> set[str]:
        """The throw-away environments of every run recorded in this bench's own data folder."""
        names = {f"run-{run_id}" for run_id in self.run_ids}
        database = self.data / "glmtui" / "glmtui.sqlite3"
        if database.exists():
            try:
                db = sqlite3.connect(database, timeout=5)
                try:
                    names |= {row[0] for row in db.execute("SELECT environment FROM runs WHERE throwaway = 1")
                              if row[0]}
                finally:
                    db.close()
            except sqlite3.Error:
                pass
        return names


_RSS_WRAPPER = """
import resource, signal, subprocess, sys
signal.signal(signal.SIGINT, lambda *a: None)  # the command gets Ctrl-C and cleans up; a handler resets on exec
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def _gnu_time() -> str | None:
    path = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if not path:
        return None
    probe = subprocess.run([path, "-f", "%M", "-o", "/dev/null", "true"], capture_output=True)
    return path if probe.returncode == 0 else None


# -- plans --------------------------------------------------------------------------------------


def chain_plan(env: str, steps: int) -> str:
    lines = ["version: 1", f"name: chain{steps}", f"env: {{name: {env}}}", "steps:"]
    for i in range(steps):
        lines += [f"  - id: s{i}", "    run: \"true\""]
        if i:
            lines.append(f"    needs: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def parallel_plan(steps: int) -> str:
    lines = ["version: 1", "name: parallel", f"env: {{image: {BUSYBOX}}}", "steps:"]
    for i in range(steps):
        lines += [f"  - id: p{i}", "    run: sleep 1"]
    return "\n".join(lines) + "\n"


def output_plan(env: str, lines_out: int, *, secret: bool = False) -> str:
    return "\n".join([
        "version: 1", "name: output", f"env: {{name: {env}}}", *(["secrets: [BENCH_SECRET]"] if secret else []),
        "steps:", "  - id: out", f"    run: seq {lines_out}",
    ]) + "\n"


def validate_plan(steps: int) -> str:
    lines = ["version: 1", f"name: validate{steps}", f"env: {{image: {BUSYBOX}}}", "steps:",
             "  - id: s0", "    run: echo start"]
    for i in range(1, steps):
        lines += [f"  - id: s{i}", f"    run: echo \"${{steps.s{i - 1}.stdout}}\""]
    return "\n".join(lines) + "\n"


_WARM_IMPORTS = """
import glmtui.cli, glmtui.commands.plan, glmtui.plan.runner, glmtui.plan.validate, glmtui.headless, glmtui.store
import glmtui.plan.steps, glmtui.plan.environment, jsonschema
"""

_LOAD_PLAN_TIMER = """
import json, statistics, sys, time
from pathlib import Path
from glmtui.plan.validate import load_plan
path, warm = Path(sys.argv[1]), int(sys.argv[2])
times = []
for _ in range(1 + warm):
    started = time.perf_counter()
    loaded = load_plan([path])
    times.append(time.perf_counter() - started)
assert len(loaded.workflow.steps) == int(sys.argv[3]), len(loaded.workflow.steps)
print(json.dumps(times))
"""


# -- the figures --------------------------------------------------------------------------------


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of the per-round ratios: each round runs both sides back to back, so a change of
    the machine's load between rounds cancels out better than in a ratio of two medians."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


class Bench:
    def __init__(self, runner: Runner, env: str, runs: int) -> None:
        self.r = runner
        self.env = env
        self.runs = runs
        self.figures: list[Figure] = []
        self.dir = runner.workdir

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text)
        return path

    def overhead(self) -> None:
        plan50 = self.write("chain50.yaml", chain_plan(self.env, CHAIN_STEPS))
        plan1 = self.write("chain1.yaml", chain_plan(self.env, 1))
        loop = ["sh", "-c", f"for i in $(seq {CHAIN_STEPS}); do docker exec {container_name(self.env)} true; done"]
        self.r.say(f"overhead: {self.runs} rounds of the 1-step plan, the {CHAIN_STEPS}-step plan and "
                   f"{CHAIN_STEPS} docker exec")
        self.r.run(["docker", "exec", container_name(self.env), "true"])
        t1s: list[float] = []
        t50s: list[float] = []
        d50s: list[float] = []
        for _ in range(self.runs):
            t1s.append(self.r.glmtui("--run", str(plan1))[0])
            t50s.append(self.r.glmtui("--run", str(plan50))[0])
            d50s.append(self.r.run(loop)[0])
        t1, t50, d50 = (statistics.median(x) for x in (t1s, t50s, d50s))
        per_exec = [d / CHAIN_STEPS for d in d50s]
        per_step = [(a - b) / (CHAIN_STEPS - 1) for a, b in zip(t50s, t1s)]
        ratio = paired(t50s, d50s)
        self.figures += [
            Figure("steps50", f"{CHAIN_STEPS} `true` steps in a chain, wall", "s", "median", t50, d50, ratio,
                   "ratio <= 1.0", ratio <= 1.0, self.runs, t50s, d50s,
                   note=f"docker: a shell loop of {CHAIN_STEPS} `docker exec glmtui-ENV true`"),
            Figure("steps50_aim", f"{CHAIN_STEPS} `true` steps in a chain, wall (aim)", "s", "median", t50, d50, ratio,
                   "ratio <= 0.7", ratio <= 0.7, self.runs, t50s, d50s),
            Figure("fixed", "1-step plan, wall (fixed cost)", "s", "median", t1, statistics.median(per_exec),
                   paired(t1s, per_exec), "-", None, self.runs, t1s, per_exec,
                   note="docker column: one `docker exec` (loop time / 50), for reference"),
            Figure("per_step", f"per step (T{CHAIN_STEPS} - T1) / {CHAIN_STEPS - 1}", "s", "median",
                   statistics.median(per_step), statistics.median(per_exec), paired(per_step, per_exec), "-", None,
                   self.runs, per_step, per_exec, note="docker column: time per `docker exec` in the loop"),
        ]

    def parallel(self) -> None:
        plan = self.write("parallel.yaml", parallel_plan(PARALLEL_STEPS))
        baseline = ["sh", "-c", f"for i in $(seq {PARALLEL_STEPS}); do docker exec {container_name(self.env)} sleep 1 & "
                    "done; wait"]
        self.r.say(f"parallel: {self.runs} rounds of {PARALLEL_STEPS} `sleep 1` steps (--jobs {PARALLEL_STEPS}) "
                   f"and {PARALLEL_STEPS} docker exec at once")
        spans: list[float] = []
        walls: list[float] = []
        dockers: list[float] = []
        for _ in range(self.runs):
            dockers.append(self.r.run(baseline)[0])
            wall, out, _ = self.r.glmtui("--run", str(plan), "--json", "--jobs", str(PARALLEL_STEPS), capture=True)
            events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            for e in events:
                if e.get("event") == "run_started":
                    self.r.run_ids.add(e["run_id"])
            started = [e["ts"] for e in events if e.get("event") == "step_started"]
            finished = [e for e in events if e.get("event") == "step_finished"]
            if len(started) != PARALLEL_STEPS or [e["status"] for e in finished] != ["success"] * PARALLEL_STEPS:
                raise RuntimeError(f"parallel plan: unexpected events: {out[-2000:]}")
            spans.append(max(e["ts"] for e in finished) - min(started))
            walls.append(wall)
        span, wall, docker = statistics.median(spans), statistics.median(walls), statistics.median(dockers)
        self.figures += [
            Figure("parallel", f"{PARALLEL_STEPS} x `sleep 1`, first start -> last finish", "s", "median", span, docker,
                   paired(spans, dockers), "< 1.5 s", span < 1.5, self.runs, spans, dockers,
                   note="from the ts of the --json step_started / step_finished events; docker: "
                   f"{PARALLEL_STEPS} `docker exec glmtui-ENV sleep 1` at once (&, wait), whole wall time"),
            Figure("parallel_wall", f"{PARALLEL_STEPS} x `sleep 1`, wall (throw-away env)", "s", "median", wall, None,
                   None, "-", None, self.runs, walls, note="with creating and removing the throw-away environment"),
        ]

    def output(self) -> None:
        plan = self.write("output.yaml", output_plan(self.env, OUTPUT_LINES))
        with_secret = self.write("output-secret.yaml", output_plan(self.env, OUTPUT_LINES, secret=True))
        plan1 = self.write("chain1.yaml", chain_plan(self.env, 1))
        expected = seq_bytes(OUTPUT_LINES)
        baseline = ["sh", "-c", f"docker exec {container_name(self.env)} seq {OUTPUT_LINES} > /dev/null"]
        self.r.say(f"output: {self.runs} rounds of `seq {OUTPUT_LINES}` plain, --json, plain with a secret, "
                   "docker exec and a 1-step plan")
        samples: dict[str, list[float]] = {"plain": [], "json": [], "secret": [], "docker": [], "fixed": []}
        peaks: dict[str, list[float]] = {"plain": [], "json": [], "secret": []}
        for _ in range(self.runs):
            samples["docker"].append(self.r.run(baseline)[0])
            for mode in ("plain", "json", "secret"):
                extra = {"plain": [], "json": ["--json"], "secret": ["-e", f"BENCH_SECRET={BENCH_SECRET}"]}[mode]
                wall, _, peak = self.r.glmtui("--run", str(with_secret if mode == "secret" else plan), *extra, rss=True)
                log = self.r.newest_run() / "out.log"
                size = log.stat().st_size if log.exists() else -1
                if size != expected:
                    raise RuntimeError(f"output ({mode}): the step log {log} has {size:,} bytes, not {expected:,}")
                samples[mode].append(wall)
                peaks[mode].append((peak or 0) / MB)
            samples["fixed"].append(self.r.glmtui("--run", str(plan1))[0])
        docker = statistics.median(samples["docker"])
        how = "GNU time -f %M, the max RSS of -v" if self.r.gnu_time else "getrusage(RUSAGE_CHILDREN) in a wrapper"
        for mode, flag in (("plain", ""), ("json", " --json"), ("secret", ", a secret")):
            wall = statistics.median(samples[mode])
            ratio = paired(samples[mode], samples["docker"])
            stream = [w - f for w, f in zip(samples[mode], samples["fixed"])]
            peak = max(peaks[mode])
            self.figures += [
                Figure(f"output_{mode}", f"`seq {OUTPUT_LINES}` step{flag}, wall", "s", "median", wall, docker, ratio,
                       "ratio <= 1.5", ratio <= 1.5, self.runs, samples[mode], samples["docker"],
                       note="" if flag else f"log file written and checked ({expected:,} bytes); "
                       f"docker: `docker exec glmtui-ENV seq {OUTPUT_LINES} > /dev/null`"),
                Figure(f"output_{mode}_stream", f"`seq {OUTPUT_LINES}` step{flag}, wall - 1-step plan", "s", "median",
                       statistics.median(stream), docker, paired(stream, samples["docker"]), "-", None, self.runs,
                       stream, samples["docker"],
                       note="" if flag else "less the wall time of a 1-step plan run in the same round: the "
                       "streaming without the fixed cost"),
                Figure(f"output_{mode}_rss", f"`seq {OUTPUT_LINES}` step{flag}, peak RSS", "MB", "max", peak, None,
                       None, "< 150 MB", peak < 150, self.runs, peaks[mode],
                       note="" if flag else f"max RSS of the glmtui process ({how})"),
            ]

    def validate(self) -> None:
        plan = self.write("validate.yaml", validate_plan(VALIDATE_STEPS))
        runs = 2 * self.runs + 1
        self.r.say(f"validate: {VALIDATE_STEPS}-step chain, {runs} CLI runs, load_plan cold + {runs} warm calls")
        self.r.glmtui("plan", "validate", str(plan))  # warm-up (page cache, .pyc)
        _, out, _ = self.r.run([str(PYTHON), "-c", _LOAD_PLAN_TIMER, str(plan), str(runs), str(VALIDATE_STEPS)],
                               capture=True)
        times = json.loads(out.strip().splitlines()[-1])
        first, warm = times[0], times[1:]
        cli = [self.r.glmtui("plan", "validate", str(plan))[0] for _ in range(runs)]
        self.figures += [
            Figure("load_plan", f"load_plan, {VALIDATE_STEPS}-step chain, first call", "s", "first", first, None, None,
                   "< 0.5 s", first < 0.5, 1, [first],
                   note="in a fresh process after the imports; the first call compiles the schema validator"),
            Figure("load_plan_warm", f"load_plan, {VALIDATE_STEPS}-step chain, warm", "s", "median",
                   statistics.median(warm), None, None, "< 0.5 s", statistics.median(warm) < 0.5, len(warm), warm),
            Figure("validate_cli", f"`glmtui plan validate`, {VALIDATE_STEPS} steps, wall", "s", "median",
                   statistics.median(cli), None, None, "-", None, runs, cli,
                   note="the whole command: interpreter start-up, imports, load_plan, the message"),
        ]


# -- setup and clean-up -------------------------------------------------------------------------


def remove_environment(name: str) -> bool:
    """docker rm -f -v the container and remove its workspace volume; True if something was there."""
    found = False
    done = subprocess.run(["docker", "rm", "-f", "-v", container_name(name)], capture_output=True, text=True)
    found |= done.returncode == 0
    done = subprocess.run(["docker", "volume", "rm", "-f", volume_name(name)], capture_output=True, text=True)
    found |= done.returncode == 0 and bool(done.stdout.strip())
    return found


def sweep(runner: Runner, env: str) -> list[str]:
    removed = []
    for name in sorted({env} | runner.throwaway_environments()):
        exists = subprocess.run(["docker", "inspect", "--type", "container", container_name(name)],
                                capture_output=True).returncode == 0
        if remove_environment(name) and (exists or name == env):
            removed.append(name)
    return removed


def run(args: argparse.Namespace, runner: Runner, env: str, meta: dict[str, Any]) -> list[Figure]:
    wanted = args.only
    bench = Bench(runner, env, args.runs)
    runner.say("warm-up: compiling and caching glmtui's modules")
    runner.run([str(PYTHON), "-c", _WARM_IMPORTS])
    if wanted & {"overhead", "parallel", "output"}:
        runner.say(f"creating environment {env} ({BUSYBOX})")
        runner.glmtui("env", "create", env, "--image", BUSYBOX)
        runner.glmtui("--run", str(bench.write("warmup.yaml", chain_plan(env, 1))))
    if "overhead" in wanted:
        bench.overhead()
    if "parallel" in wanted:
        bench.parallel()
    if "output" in wanted:
        bench.output()
    if "validate" in wanted:
        bench.validate()
    return bench.figures


# -- output --------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def table(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"glmtui plans bench  {meta['date']}",
        f"engine: Docker {meta['engine']}   glmtui {meta['glmtui']}",
        f"machine: {meta['nproc']} cores (nproc), {meta['cpu']}; Python {meta['python']}; runs={meta['runs']}"
        f"; load average at start {meta['loadavg']}",
        f"bytecode: {meta['bytecode']}",
        "",
    ]
    header = ("figure", "runs", "glmtui", "docker CLI", "ratio", "goal", "")
    rows = [
        (f.title, str(f.runs), fmt(f.glmtui, f.unit), fmt(f.docker, f.unit),
         "-" if f.ratio is None else f"{f.ratio:.2f}", f.goal, verdict(f.passed))
        for f in figures
    ]
    lines += aligned(header, rows)
    notes = [f"  {f.key}: {f.note}" for f in figures if f.note]
    notes.append("  ratio: the median of the per-round ratios (each round runs both sides back to back)")
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    kinds = ("overhead", "parallel", "output", "validate")
    parser = argparse.ArgumentParser(description="glmtui plan runs and validation, against the docker CLI.")
    parser.add_argument("--runs", type=int, metavar="N", help="rounds of each figure (default 5, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="one round of each figure")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--only", default=",".join(kinds), metavar="LIST",
                        help=f"a comma-separated subset of {','.join(kinds)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data folder (run logs)")
    parser.add_argument("--no-pyc", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE as it is (default: cache compiled modules in the "
                        "temporary folder, as an installed glmtui has them)")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    if not args.only or args.only - set(kinds):
        parser.error(f"--only takes a subset of {','.join(kinds)}")
    return args


def main(argv: list[str] | None = None) -> int:
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # first: nothing below may be left behind by a SIGTERM
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("bench/plans.py: the docker CLI is not on PATH", file=sys.stderr)
        return 2
    if not GLMTUI_BIN.exists():
        print(f"bench/plans.py: {GLMTUI_BIN} not found; run it with the venv's python", file=sys.stderr)
        return 2
    env = f"benchplans-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    figures: list[Figure] = []
    meta: dict[str, Any] = {}
    runner: Runner | None = None
    code = 0
    try:
        runner = Runner(Path(tempfile.mkdtemp(prefix="glmtui-bench-plans-")), log=not args.json and not args.quiet,
                        pyc=not args.no_pyc)
        meta.update(describe_machine(args, runner, env))
        figures = run(args, runner, env, meta)
    except KeyboardInterrupt:
        print("\nbench/plans.py: interrupted; cleaning up", file=sys.stderr)
        code = 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/plans.py: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    finally:
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the sweep
        old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if runner is not None:
                removed = sweep(runner, env)
                leftovers = [name for name in removed if name != env]
                if leftovers:
                    print(f"bench/plans.py: removed leftovers: {' '.join(leftovers)}", file=sys.stderr)
                if args.keep_data:
                    print(f"bench/plans.py: data kept in {runner.workdir}", file=sys.stderr)
                else:
                    shutil.rmtree(runner.workdir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
    if code:
        return code
    if args.json:
        print(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=2))
    else:
        print(table(figures, meta))
    return 1 if args.strict and any(f.passed is False for f in figures) else 0


def describe_machine(args: argparse.Namespace, runner: Runner, env: str) -> dict[str, Any]:
    server = subprocess.run(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                            capture_output=True, text=True)
    version = subprocess.run([str(GLMTUI_BIN), "--version"], capture_output=True, text=True)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "engine": server.stdout.strip() or "?",
        "glmtui": version.stdout.strip().rsplit(" ", 1)[-1] or "?",
        "runs": args.runs,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "environment": env,
        "rss_by": "GNU time" if runner.gnu_time else "getrusage",
        "bytecode": "compiled modules cached" if not args.no_pyc else
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!s} left as it is",
    }


if __name__ == "__main__":
    sys.exit(main())
