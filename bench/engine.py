#!/usr/bin/env python
"""Benchmarks of the engine layer against the `docker` CLI, on the same engine, in the same run.

    .venv/bin/python bench/engine.py [--runs N] [--json] [--only exec,create,stream,help] [--strict]

What is measured (glmtui side = `glmtui.docker.Engine`, one connection kept for the run):

  exec     median latency of `Engine.exec(name, ["true"])`  vs  `docker exec glmtui-NAME true`
           (goal: ratio <= 0.8); N runs each after warm-up, interleaved A, B, A, B ...; then the
           same with `reap=True` (as run steps and the agent's bash tool use it: the command runs
           under a shell that ends what it left behind), against the same docker exec
  create   median of `create_environment(EnvSpec(busybox))` + `remove_environment(volume=True)`
           vs `docker run --rm glmtui/busybox true` (goal: ratio <= 1.1); N/2 runs each, interleaved
  stream   `seq 2000000` through `Engine.exec(..., on_output=count bytes)` (every byte is checked)
           vs `docker exec glmtui-NAME seq 2000000 > /dev/null`; the MEDIAN lines/s of N/3 runs each,
           interleaved (goal: throughput ratio >= 0.9). Median, not best: on a busy machine one lucky
           run decides a best-of-N, a median does not. The best figures are in the notes.
  help     wall time of `.venv/bin/glmtui --help`, median of N/3 runs (goal: < 0.25 s);
           `docker --help` for reference

N is --runs (default 30: 30 / 15 / 10 / 10 runs, about a minute); --runs 60 for steadier figures
on a busy machine. The header gives the load average before and after: on a shared machine the
spread between runs is larger than anything the engine layer adds (see docs/performance.md).
A create+remove sample disturbed from outside (another `glmtui clean` on the same engine removes a
container still in state "created") is redone and said so in the notes. A throw-away environment `bench-<pid>-<random>` is created for the
exec and stream figures and removed at the end, also on Ctrl-C or an error; every container
the benchmark makes carries the label glmtui.bench=<that name>, so a sweep finds leftovers.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from glmtui.docker.engine import Engine  # noqa: E402
from glmtui.docker.spec import EnvSpec  # noqa: E402
from glmtui.docker.spec import container_name, volume_name  # noqa: E402
from glmtui.errors import GlmtuiError  # noqa: E402
from common import aligned, cpu_model, seq_bytes  # noqa: E402

BUSYBOX = "glmtui/busybox:latest"
BENCH_LABEL = "glmtui.bench"
STREAM_LINES = 2_000_000
GLMTUI_BIN = next(
    (p for p in (Path(sys.executable).parent / "glmtui", ROOT / ".venv" / "bin" / "glmtui") if p.exists()),
    Path(shutil.which("glmtui") or "glmtui"),
)


@dataclass
class Figure:
    key: str
    title: str
    unit: str  # "s" (lower is better) or "lines/s" (higher is better)
    statistic: str  # median / best
    glmtui: float
    docker: float | None
    ratio: float | None
    goal: str
    passed: bool
    runs: int
    samples_glmtui: list[float] = field(default_factory=list)
    samples_docker: list[float] = field(default_factory=list)
    note: str = ""


def cli(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, **kwargs)


def timed_cli(argv: list[str], cpu: list[float] | None = None) -> float:
    """Wall time of one command, output thrown away (stderr kept to explain a failure).

    With `cpu`, the command's user+sys CPU time is appended to it (it does not grow with the load
    of other work on the machine the way wall time does)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode().strip()}")
    if cpu is not None:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return elapsed


class Bench:
    def __init__(self, engine: Engine, prefix: str, runs: int, log: bool) -> None:
        self.engine = engine
        self.prefix = prefix
        self.runs = runs
        self.log = log
        self.env = prefix  # the environment exec and stream run in
        self.figures: list[Figure] = []

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    # -- exec `true` ------------------------------------------------------------------------

    async def exec_true(self, *, reap: bool = False) -> Figure:
        runs, warmup = self.runs, 3
        engine_samples: list[float] = []
        cli_samples: list[float] = []
        argv = ["docker", "exec", container_name(self.env), "true"]
        self.say(f"exec true{' reaped' if reap else ''}: {warmup} warm-up + {runs} runs each, interleaved")
        for i in range(warmup + runs):
            started = time.perf_counter()
            result = await self.engine.exec(self.env, ["true"], reap=reap)
            a = time.perf_counter() - started
            if result.exit_code != 0:
                raise RuntimeError(f"Engine.exec true: exit {result.exit_code} {result.reason or ''}")
            b = timed_cli(argv)
            if i >= warmup:
                engine_samples.append(a)
                cli_samples.append(b)
        med_a, med_b = statistics.median(engine_samples), statistics.median(cli_samples)
        ratio = med_a / med_b
        return Figure(
            "exec_reap" if reap else "exec", f"exec `true`{', reaped' if reap else ''}, median latency", "s", "median",
            med_a, med_b, ratio,
            "ratio <= 0.8", ratio <= 0.8, runs, engine_samples, cli_samples,
        )

    # -- create + start + remove ------------------------------------------------------------

    async def create_remove(self) -> Figure:
        runs, warmup = max(1, math.ceil(self.runs / 2)), 2
        engine_samples: list[float] = []
        cli_samples: list[float] = []
        argv = ["docker", "run", "--rm", "--label", f"{BENCH_LABEL}={self.prefix}", BUSYBOX, "true"]
        self.say(f"create+start+remove: {warmup} warm-up + {runs} runs each, interleaved")
        disturbed: list[str] = []
        i = 0
        while len(engine_samples) < runs:
            name = f"{self.prefix}-c{i}"
            i += 1
            spec = EnvSpec(name=name, image=BUSYBOX, labels={BENCH_LABEL: self.prefix})
            started = time.perf_counter()
            try:
                await self.engine.create_environment(spec)
                await self.engine.remove_environment(name, volume=True)
            except GlmtuiError as err:
                # The engine is shared: a `glmtui clean` elsewhere removes a container still in
                # state "created" (between create and start). Not our figure; redo the sample.
                disturbed.append(f"{name}: {err}")
                self.say(f"  sample disturbed, redone: {err}")
                remove_by_name(name)
                if len(disturbed) > 5:
                    raise RuntimeError(f"create+remove disturbed {len(disturbed)} times: {disturbed[-1]}") from None
                continue
            a = time.perf_counter() - started
            b = timed_cli(argv)
            if i > warmup:
                engine_samples.append(a)
                cli_samples.append(b)
        med_a, med_b = statistics.median(engine_samples), statistics.median(cli_samples)
        ratio = med_a / med_b
        note = ("glmtui: create_environment(EnvSpec(busybox)) + remove_environment(volume=True); "
                "docker: docker run --rm glmtui/busybox true")
        if disturbed:
            note += f"; {len(disturbed)} sample(s) redone, disturbed from outside: {disturbed[0]}"
        return Figure(
            "create", "create+start+remove, median", "s", "median", med_a, med_b, ratio,
            "ratio <= 1.1", ratio <= 1.1, runs, engine_samples, cli_samples, note=note,
        )

    # -- streaming --------------------------------------------------------------------------

    async def stream(self) -> Figure:
        runs, warmup = max(1, math.ceil(self.runs / 3)), 1
        expected = seq_bytes(STREAM_LINES)
        argv = ["docker", "exec", container_name(self.env), "seq", str(STREAM_LINES)]
        engine_rates: list[float] = []
        cli_rates: list[float] = []
        self.say(f"stream {STREAM_LINES:,} lines ({expected:,} bytes): {warmup} warm-up + {runs} runs each")
        for i in range(warmup + runs):
            counted = {1: 0, 2: 0}

            def count(fd: int, data: bytes) -> None:
                counted[fd] = counted.get(fd, 0) + len(data)

            started = time.perf_counter()
            result = await self.engine.exec(self.env, ["seq", str(STREAM_LINES)], on_output=count)
            a = time.perf_counter() - started
            if result.exit_code != 0 or counted[1] != expected or counted[2] != 0:
                raise RuntimeError(
                    f"Engine.exec seq: exit {result.exit_code}, {counted[1]:,} of {expected:,} bytes "
                    f"on stdout, {counted[2]:,} on stderr"
                )
            b = timed_cli(argv)
            if i >= warmup:
                engine_rates.append(STREAM_LINES / a)
                cli_rates.append(STREAM_LINES / b)
        med_a, med_b = statistics.median(engine_rates), statistics.median(cli_rates)
        ratio = med_a / med_b
        return Figure(
            "stream", f"stream {STREAM_LINES // 1_000_000}M lines, median", "lines/s", "median", med_a, med_b,
            ratio, "ratio >= 0.9", ratio >= 0.9, runs, engine_rates, cli_rates,
            note=f"every one of the {expected:,} bytes counted by on_output; "
            f"best: glmtui {max(engine_rates) / 1e6:.2f} M lines/s, docker {max(cli_rates) / 1e6:.2f} M lines/s",
        )

    # -- CLI start-up -----------------------------------------------------------------------

    def help_time(self) -> Figure:
        runs, warmup = max(1, math.ceil(self.runs / 3)), 1
        ours = [str(GLMTUI_BIN), "--help"]
        theirs = ["docker", "--help"]
        self.say(f"--help: {warmup} warm-up + {runs} runs each")
        a_samples: list[float] = []
        b_samples: list[float] = []
        a_cpu: list[float] = []
        b_cpu: list[float] = []
        for i in range(warmup + runs):
            a = timed_cli(ours, a_cpu)
            b = timed_cli(theirs, b_cpu)
            if i >= warmup:
                a_samples.append(a)
                b_samples.append(b)
        med_a, med_b = statistics.median(a_samples), statistics.median(b_samples)
        cpu_a, cpu_b = statistics.median(a_cpu[warmup:]), statistics.median(b_cpu[warmup:])
        return Figure(
            "help", "`glmtui --help` wall time, median", "s", "median", med_a, med_b, None,
            "< 0.25 s", med_a < 0.25, runs, a_samples, b_samples,
            note=f"docker column: `docker --help`, for reference only; CPU time (user+sys), median: "
            f"glmtui {cpu_a * 1000:.0f} ms, docker {cpu_b * 1000:.0f} ms",
        )


# -- setup and clean-up -----------------------------------------------------------------------


def remove_by_name(env: str) -> None:
    """docker rm -f -v one environment's container and its workspace volume, quietly."""
    cli("rm", "-f", "-v", container_name(env), check=False, capture_output=True)
    cli("volume", "rm", "-f", volume_name(env), check=False, capture_output=True)


def sweep(prefix: str) -> list[str]:
    """Remove every container and volume this run made; runs without the event loop."""
    removed: list[str] = []
    found = cli("ps", "-aq", "--filter", f"label={BENCH_LABEL}={prefix}", check=False, capture_output=True, text=True)
    ids = found.stdout.split()
    if ids:
        cli("rm", "-f", "-v", *ids, check=False, capture_output=True)
        removed += ids
    volumes = cli("volume", "ls", "-q", "--filter", f"name=glmtui-{prefix}", check=False, capture_output=True, text=True)
    names = [v for v in volumes.stdout.split() if v.startswith(f"glmtui-{prefix}")]
    if names:
        cli("volume", "rm", "-f", *names, check=False, capture_output=True)
        removed += names
    return removed


async def run(args: argparse.Namespace, prefix: str, meta: dict[str, Any]) -> list[Figure]:
    engine = await Engine.connect()
    try:
        info = engine.version_info
        meta["engine"] = {
            "version": info.get("Version"),
            "api": info.get("ApiVersion"),
            "os_arch": f"{info.get('Os')}/{info.get('Arch')}",
            "kernel": info.get("KernelVersion"),
        }
        bench = Bench(engine, prefix, args.runs, log=not args.json and not args.quiet)
        wanted = args.only
        if wanted & {"exec", "stream"}:
            await engine.create_environment(EnvSpec(name=prefix, image=BUSYBOX, labels={BENCH_LABEL: prefix}))
        try:
            if "exec" in wanted:
                bench.figures.append(await bench.exec_true())
                bench.figures.append(await bench.exec_true(reap=True))
            if "create" in wanted:
                bench.figures.append(await bench.create_remove())
            if "stream" in wanted:
                bench.figures.append(await bench.stream())
            if "help" in wanted:
                bench.figures.append(bench.help_time())
        finally:
            if wanted & {"exec", "stream"}:
                try:
                    await asyncio.shield(engine.remove_environment(prefix, volume=True))
                except Exception:  # the sweep after the loop gets it
                    pass
        return bench.figures
    finally:
        await engine.close()


# -- output ------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "lines/s":
        return f"{value / 1e6:.2f} M lines/s"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def table(figures: list[Figure], meta: dict[str, Any]) -> str:
    engine = meta.get("engine") or {}
    lines = [
        f"glmtui engine bench  {meta['date']}",
        f"engine: Docker {engine.get('version')} (API {engine.get('api')}, {engine.get('os_arch')}, "
        f"kernel {engine.get('kernel')})   docker CLI: {meta['docker_cli']}",
        f"machine: {meta['nproc']} cores (nproc), {meta['cpu']}; Python {meta['python']}, h11 {meta['h11']}; "
        f"runs={meta['runs']}; "
        f"load average before/after: {' '.join(map(str, meta['load_before']))} / "
        f"{' '.join(map(str, meta.get('load_after', [])))}",
        "",
    ]
    header = ("figure", "runs", "glmtui", "docker CLI", "ratio", "goal", "")
    rows = [
        (
            f.title,
            str(f.runs),
            fmt(f.glmtui, f.unit),
            fmt(f.docker, f.unit),
            "-" if f.ratio is None else f"{f.ratio:.3f}",
            f.goal,
            "PASS" if f.passed else "MISS",
        )
        for f in figures
    ]
    lines += aligned(header, rows)
    notes = [f"  {f.key}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    kinds = ("exec", "create", "stream", "help")
    parser = argparse.ArgumentParser(description="glmtui engine layer vs the docker CLI, same engine, same run.")
    parser.add_argument("--runs", type=int, default=30, metavar="N",
                        help="exec runs per side (default 30); create uses N/2, stream and help N/3")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--only", default=",".join(kinds), metavar="LIST",
                        help=f"a comma-separated subset of {','.join(kinds)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    if not args.only or args.only - set(kinds):
        parser.error(f"--only takes a subset of {','.join(kinds)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("bench/engine.py: the docker CLI is not on PATH", file=sys.stderr)
        return 2
    prefix = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    docker_cli = cli("version", "--format", "{{.Client.Version}}", check=False, capture_output=True, text=True)
    meta: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count() if not hasattr(os, "sched_getaffinity") else len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "h11": importlib.metadata.version("h11"),
        "docker_cli": docker_cli.stdout.strip() or "?",
        "runs": args.runs,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "environment": prefix,
    }

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop the run at once, even inside a `docker` subprocess; the sweep follows.
    saved = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    figures: list[Figure] = []
    try:
        figures = asyncio.run(run(args, prefix, meta))
    except KeyboardInterrupt:
        print("\nbench/engine.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/engine.py: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        for sig in saved:  # a second Ctrl-C must not skip the sweep
            signal.signal(sig, signal.SIG_IGN)
        leftovers = sweep(prefix)
        if leftovers:
            print(f"bench/engine.py: removed leftovers: {' '.join(leftovers)}", file=sys.stderr)
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=2))
    else:
        print(table(figures, meta))
    return 1 if args.strict and not all(f.passed for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
