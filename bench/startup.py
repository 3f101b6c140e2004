#!/usr/bin/env python
"""The start-up of the glmtui command, as paired ratios against what it cannot be faster than.

    .venv/bin/python bench/startup.py [--runs N] [--json] [--only help,run] [--strict] [--profile]

What is measured (glmtui side = the `.venv/bin/glmtui` command, stdout not a TTY):

  help  `glmtui --help` against `python -c pass` (the same interpreter: its start-up and
        `site`, which every Python command pays). Goal: ratio <= 1.8. For reference, the same
        ratio of `python -c "import click"`: what any click command pays before its own code.
  run   `glmtui --run one-step.yaml`, a plan of one `true` step in a named environment made
        first (`glmtui env create ENV --image glmtui/busybox:latest`), against `docker exec
        glmtui-ENV true` (what the step itself costs). Goal: ratio <= 2.5.

Each round runs both sides back to back, in alternating order; a figure is the median over
rounds, a ratio the median of the per-round ratios (its range beside it). CPU time (user+sys of
the child) is given too: it moves less with the machine's load than the wall time. Compiled
modules are cached (PYTHONDONTWRITEBYTECODE dropped, PYTHONPYCACHEPREFIX in a temporary
folder), as an installed glmtui has them; every glmtui command gets its own data and config
folders there. `--profile` adds the largest imports of each command (`python -X importtime`).
The environment `benchstart-<pid>-<random>` is removed at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
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

from common import aligned, cpu_model, verdict  # noqa: E402

BUSYBOX = "glmtui/busybox:latest"
PYTHON = Path(sys.executable)
GLMTUI_BIN = PYTHON.parent / "glmtui"
KINDS = ("help", "run")
GOALS: dict[str, float | None] = {"help": 1.8, "run": 2.5, "click": None}


@dataclass
class Figure:
    key: str
    title: str
    glmtui: float  # seconds, median
    baseline: float
    ratio: float  # median of the per-round ratios
    ratio_range: tuple[float, float]
    cpu_glmtui: float
    cpu_baseline: float
    goal: float | None  # None: for reference
    runs: int
    samples_glmtui: list[float] = field(default_factory=list)
    samples_baseline: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.goal is None else self.ratio <= self.goal


class Runner:
    def __init__(self, workdir: Path, log: bool) -> None:
        self.workdir = workdir
        self.env = {**os.environ, "XDG_DATA_HOME": str(workdir / "data"), "XDG_CONFIG_HOME": str(workdir / "config"),
                    "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
        for name in ("PYTHONDONTWRITEBYTECODE", "GLMTUI_DEBUG"):
            self.env.pop(name, None)
        self.log = log

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    def run(self, argv: list[str], *, capture: bool = False) -> tuple[float, float, str]:
        """Wall time, CPU time (user+sys of the child) and the output (if captured) of one command."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out if capture else subprocess.DEVNULL,
                                     stderr=err, cwd=self.workdir, env=self.env)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            text = out.read().decode(errors="replace") + err.read().decode(errors="replace")
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({child.returncode}): {text[-2000:]}")
        return wall, usage.ru_utime + usage.ru_stime, text


def paired(runner: Runner, key: str, title: str, ours: list[str], theirs: list[str], runs: int, note: str) -> Figure:
    runner.say(f"{key}: {runs} rounds of `{' '.join(Path(a).name if '/' in a else a for a in ours)}` "
               f"against `{' '.join(Path(a).name if '/' in a else a for a in theirs)}`")
    for _ in range(2):  # warm-up: page cache, compiled modules
        runner.run(ours)
        runner.run(theirs)
    walls: dict[str, list[float]] = {"ours": [], "theirs": []}
    cpus: dict[str, list[float]] = {"ours": [], "theirs": []}
    for round_ in range(runs):
        order = (("ours", ours), ("theirs", theirs)) if round_ % 2 else (("theirs", theirs), ("ours", ours))
        for side, argv in order:
            wall, cpu, _ = runner.run(argv)
            walls[side].append(wall)
            cpus[side].append(cpu)
    ratios = [a / b for a, b in zip(walls["ours"], walls["theirs"])]
    return Figure(key, title, statistics.median(walls["ours"]), statistics.median(walls["theirs"]),
                  statistics.median(ratios), (min(ratios), max(ratios)), statistics.median(cpus["ours"]),
                  statistics.median(cpus["theirs"]), GOALS[key], runs, walls["ours"], walls["theirs"], note)


def largest_imports(runner: Runner, argv: list[str], most: int = 12) -> list[tuple[str, int]]:
    """The modules whose import took longest, with what they imported (µs), from -X importtime."""
    _, _, output = runner.run([str(PYTHON), "-X", "importtime", *argv], capture=True)
    found = []
    for line in output.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and len(match.group(3)) <= 2:  # top-level imports and their direct children
            found.append((match.group(3) + match.group(4), int(match.group(2))))
    return sorted(found, key=lambda item: -item[1])[:most]


def one_step_plan(workdir: Path, env: str) -> Path:
    path = workdir / "one-step.yaml"
    path.write_text(f"version: 1\nname: one-step\nenv: {{name: {env}}}\nsteps:\n  - id: a\n    run: \"true\"\n")
    return path


def remove_environment(env: str) -> None:
    subprocess.run(["docker", "rm", "-f", "-v", f"glmtui-{env}"], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "-f", f"glmtui-{env}-workspace"], capture_output=True)


def measure(args: argparse.Namespace, runner: Runner, env: str) -> tuple[list[Figure], dict[str, list]]:
    figures, profiles = [], {}
    glmtui = str(GLMTUI_BIN)
    if "help" in args.only:
        figures.append(paired(runner, "help", "`glmtui --help` / `python -c pass`", [glmtui, "--help"],
                              [str(PYTHON), "-c", "pass"], args.runs,
                              "the same interpreter on both sides; the baseline is its start-up and site"))
        floor = paired(runner, "click", "`python -c \"import click\"` / `python -c pass`",
                       [str(PYTHON), "-c", "import click"], [str(PYTHON), "-c", "pass"], args.runs,
                       "for reference: what importing click alone costs any click command")
        figures.append(floor)
        if args.profile:
            profiles["help"] = largest_imports(runner, [glmtui, "--help"])
    if "run" in args.only:
        runner.say(f"creating environment {env} ({BUSYBOX})")
        runner.run([glmtui, "env", "create", env, "--image", BUSYBOX])
        plan = one_step_plan(runner.workdir, env)
        figures.append(paired(runner, "run", "`glmtui --run` 1-step plan / `docker exec ENV true`",
                              [glmtui, "--run", str(plan)], ["docker", "exec", f"glmtui-{env}", "true"], args.runs,
                              "a named busybox environment, made first; the step runs `true`"))
        if args.profile:
            profiles["run"] = largest_imports(runner, [glmtui, "--run", str(plan)])
    return figures, profiles


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def table(figures: list[Figure], profiles: dict[str, list], meta: dict[str, Any]) -> str:
    lines = [f"glmtui start-up bench  {meta['date']}",
             f"machine: {meta['nproc']} cores, {meta['cpu']}; Python {meta['python']}; engine {meta['engine']}",
             f"rounds: {meta['runs']}; load average {meta['loadavg']} at start, {meta['loadavg_end']} at the end", ""]
    header = ("figure", "rounds", "measured", "baseline", "ratio", "goal", "")
    rows = [(f.title, str(f.runs), ms(f.glmtui), ms(f.baseline), f"{f.ratio:.2f}", "-" if f.goal is None else f"<= {f.goal}",
             verdict(f.passed))
            for f in figures]
    lines += aligned(header, rows)
    lines += ["", "notes:"]
    for f in figures:
        lines.append(f"  {f.key}: ratio range {f.ratio_range[0]:.2f}-{f.ratio_range[1]:.2f}; CPU time (user+sys) "
                     f"{ms(f.cpu_glmtui)} / {ms(f.cpu_baseline)}; {f.note}")
    lines.append("  ratio: the median of the per-round ratios (each round runs both sides back to back)")
    for key, imports in profiles.items():
        lines += ["", f"largest imports of `{key}` (python -X importtime, cumulative):"]
        lines += [f"  {us / 1000:7.1f} ms  {name}" for name, us in imports]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="glmtui's start-up, as ratios against python and docker exec.")
    parser.add_argument("--runs", type=int, default=20, metavar="N", help="rounds of each figure (default 20)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--only", default=",".join(KINDS), metavar="LIST", help=f"a subset of {','.join(KINDS)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--profile", action="store_true", help="also the largest imports of each command")
    args = parser.parse_args(argv)
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not args.only or args.only - set(KINDS):
        parser.error(f"--only takes a subset of {','.join(KINDS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    args = parse_args(argv)
    if not GLMTUI_BIN.exists():
        print(f"bench/startup.py: {GLMTUI_BIN} not found; run it with the venv's python", file=sys.stderr)
        return 2
    if "run" in args.only and shutil.which("docker") is None:
        print("bench/startup.py: the docker CLI is not on PATH", file=sys.stderr)
        return 2
    env = f"benchstart-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="glmtui-bench-startup-"))
    runner = Runner(workdir, log=not args.json and not args.quiet)
    meta: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
        "cpu": cpu_model(), "python": platform.python_version(), "runs": args.runs,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "engine": subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                                 text=True).stdout.strip() if shutil.which("docker") else "-",
    }
    try:
        figures, profiles = measure(args, runner, env)
    except KeyboardInterrupt:
        print("\nbench/startup.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/startup.py: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        if "run" in args.only:
            remove_environment(env)
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.json:
        print(json.dumps({"meta": meta, "figures": [asdict(f) | {"passed": f.passed} for f in figures],
                          "imports": profiles}, indent=2))
    else:
        print(table(figures, profiles, meta))
    return 1 if args.strict and any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
