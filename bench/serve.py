#!/usr/bin/env python
"""Benchmarks of `glmtui serve`'s HTTP API on a real engine, against docker in the same run.

    .venv/bin/python bench/serve.py [--quick] [--runs N] [--json] [--only wait,latency,fanout] [--strict]

What is measured (one `glmtui serve --port 0` on loopback, its own config and data folders in a
temporary folder, driven by httpx2 from this process):

  wait     a plan of one `true` step on an existing named environment (busybox, made first),
           `POST /api/v1/runs {"plan": ..., "wait": true}` timed at the client, from sending the
           request to reading the answer's last byte (one kept-alive connection, as a CI client
           has), vs `docker exec glmtui-ENV true` by the docker CLI (goal: ratio <= 1.5).
  latency  a step prints a line with its own clock (python3 in glmtui/workspace, `time.time()`)
           every 20 ms, 200 lines; a client follows the run's events over SSE and takes, per
           line, the time it arrives less the time in it: p50, p95 (goal p95 < 20 ms), max; the
           same lines printed by `docker exec -i` read from its stdout as the baseline.
  fanout   50 clients follow one run at once over SSE (`seq 1 20000` in 200 prints, so the run
           lasts a while and the clients catch up with it live): every client must get every
           event once, in order (goal: none lost); the time until the last client has all of it,
           against one client alone.

Rounds: N (default 10, --quick 3); wait takes 3N samples, latency and fanout one run a round. A
ratio is the median of the per-sample ratios (both sides run back to back), a latency is over
every line of every round. The named environments `benchserve-<pid>-<random>` and every throw-away environment of a
run are removed at the end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
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

import httpx2 as httpx  # noqa: E402

from common import aligned, cpu_model, verdict  # noqa: E402

BUSYBOX = "glmtui/busybox:latest"
WORKSPACE = "glmtui/workspace:latest"
PYTHON = Path(sys.executable)
LATENCY_LINES = 200
FANOUT_CLIENTS = 50
FANOUT_NUMBERS = 20_000
START = re.compile(r"API at (https?://\S+?)/api/v1 ")


@dataclass
class Figure:
    key: str
    title: str
    unit: str  # "s" or "events"
    statistic: str
    glmtui: float
    docker: float | None
    ratio: float | None
    goal: str
    passed: bool | None
    runs: int
    samples_glmtui: list[float] = field(default_factory=list)
    samples_docker: list[float] = field(default_factory=list)
    note: str = ""


class Server:
    """`glmtui serve --port 0` in the bench's folder, with plans/ and its token."""

    def __init__(self, folder: Path, log: bool) -> None:
        self.folder = folder
        self.plans = folder / "plans"
        self.plans.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "config"), "XDG_DATA_HOME": str(folder / "data")}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled modules cached as an installed glmtui has them
        self.env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        self.log = log
        self.out = (folder / "serve.out").open("w+")
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.token = ""

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    def glmtui(self, *args: str) -> str:
        done = subprocess.run([str(PYTHON), "-m", "glmtui", *args], capture_output=True, text=True, env=self.env,
                              cwd=self.folder, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"glmtui {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
        return done.stdout

    def start(self) -> None:
        self.proc = subprocess.Popen([str(PYTHON), "-m", "glmtui", "serve", "--port", "0"], stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while not (match := START.search((self.folder / "serve.out").read_text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"glmtui serve did not start: {(self.folder / 'serve.out').read_text()[-1000:]}")
            time.sleep(0.1)
        self.url = match.group(1) + "/api/v1"
        self.token = self.glmtui("serve", "token").strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def plan(self, name: str, text: str) -> None:
        (self.plans / f"{name}.yaml").write_text(text)


def docker(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(["docker", *args], stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def sse_events(lines: Any) -> Any:
    """(id, event) of each SSE message from an iterator of text lines."""
    seq, data = None, []
    for line in lines:
        if line == "":
            if data:
                yield seq, json.loads("\n".join(data))
            seq, data = None, []
        elif line.startswith("id:"):
            seq = int(line[3:])
        elif line.startswith("data:"):
            data.append(line[5:].strip())


# -- the figures ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, server: Server, env: str, latency_env: str, runs: int) -> None:
        self.server = server
        self.env = env
        self.latency_env = latency_env
        self.runs = runs
        self.figures: list[Figure] = []

    def wait(self) -> None:
        server = self.server
        server.plan("one", f"version: 1\nname: one\nenv: {{name: {self.env}}}\nsteps:\n  - id: t\n    run: \"true\"\n")
        ours, theirs, ratios = [], [], []
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
            for _ in range(3):  # warm-up: the connection, the plan's cache, the engine
                client.post("/runs", json={"plan": "one", "wait": True}).raise_for_status()
                docker("exec", f"glmtui-{self.env}", "true")
            for _ in range(self.runs * 3):
                started = time.perf_counter()
                answer = client.post("/runs", json={"plan": "one", "wait": True})
                ours.append(time.perf_counter() - started)
                if answer.status_code != 200 or answer.json()["status"] != "success":
                    raise RuntimeError(f"the run failed: {answer.text[:500]}")
                theirs.append(docker("exec", f"glmtui-{self.env}", "true"))
                ratios.append(ours[-1] / theirs[-1])
        ratio = statistics.median(ratios)
        self.figures.append(Figure(
            "wait", "one-step plan, POST /runs wait:true (end to end at the client)", "s", "median",
            statistics.median(ours), statistics.median(theirs), ratio, "ratio <= 1.5", ratio <= 1.5, len(ours),
            ours, theirs, "vs `docker exec ENV true` by the CLI; the run is recorded, its step logged, as every run"))

    def latency(self) -> None:
        server = self.server
        script = (f"import time\nfor _ in range({LATENCY_LINES}):\n    print(repr(time.time()), flush=True)\n"
                  "    time.sleep(0.02)\n")
        server.plan("clock", "version: 1\nname: clock\nenv: {name: " + self.latency_env + "}\nsteps:\n  - id: tick\n"
                    "    shell: [python3, -c]\n    run: |\n" + "".join(f"      {line}\n" for line in script.splitlines()))
        ours: list[float] = []
        theirs: list[float] = []
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
            for _ in range(self.runs):
                run_id = client.post("/runs", json={"plan": "clock"}).json()["id"]
                with client.stream("GET", f"/runs/{run_id}/events") as response:
                    for _seq, event in sse_events(response.iter_lines()):
                        arrived = time.time()
                        if event["event"] == "output":
                            ours += [arrived - float(line) for line in event["lines"]]
                child = subprocess.Popen(["docker", "exec", f"glmtui-{self.latency_env}", "python3", "-c", script],
                                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
                assert child.stdout is not None
                for raw in child.stdout:
                    theirs.append(time.time() - float(raw))
                child.wait()
        p95, base95 = percentile(ours, 0.95), percentile(theirs, 0.95)
        self.figures.append(Figure(
            "latency", "SSE: a step's output line to the client, p95", "s", "p95", p95, base95, p95 / base95,
            "p95 < 20 ms", p95 < 0.020, self.runs, ours, theirs,
            f"p50 {percentile(ours, 0.5) * 1000:.1f} ms, max {max(ours) * 1000:.1f} ms over {len(ours)} lines; "
            f"docker exec -i stdout p50 {percentile(theirs, 0.5) * 1000:.1f} ms"))

    def fanout(self) -> None:
        server = self.server
        server.plan("numbers", f"version: 1\nname: numbers\nenv: {{name: {self.env}}}\nsteps:\n  - id: count\n"
                    f"    run: |\n      for i in $(seq 0 199); do seq $((i * 100 + 1)) $((i * 100 + 100)); sleep 0.005; done\n")
        alone, together, lost_total = [], [], 0
        for _ in range(self.runs):
            for clients in (1, FANOUT_CLIENTS):
                elapsed, lost = asyncio.run(self._followers(clients))
                (alone if clients == 1 else together).append(elapsed)
                lost_total += lost
        ratios = [t / a for a, t in zip(alone, together)]
        self.figures.append(Figure(
            "fanout", f"{FANOUT_CLIENTS} SSE clients on one run: events lost", "events", "sum", float(lost_total),
            None, None, "none lost", lost_total == 0, self.runs, together, alone,
            f"until the last of {FANOUT_CLIENTS} clients had every event {statistics.median(together):.2f} s, one "
            f"client alone {statistics.median(alone):.2f} s (ratio {statistics.median(ratios):.2f}); "
            f"{FANOUT_NUMBERS} lines each"))

    async def _followers(self, count: int) -> tuple[float, int]:
        """Start the run, follow it with `count` clients; the time until the last has all of
        it, and how many events any of them missed or got twice."""
        server = self.server
        limits = httpx.Limits(max_connections=count + 5, max_keepalive_connections=count + 5)
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=120, limits=limits) as client:
            started = time.perf_counter()
            run_id = (await client.post("/runs", json={"plan": "numbers"})).json()["id"]

            async def follow() -> tuple[list[int], list[str]]:
                numbers, lines = [], []
                async with client.stream("GET", f"/runs/{run_id}/events") as response:
                    buffer = []
                    async for line in response.aiter_lines():
                        buffer.append(line)
                    for seq, event in sse_events(buffer):
                        numbers.append(seq)
                        if event["event"] == "output":
                            lines += event["lines"]
                return numbers, lines

            results = await asyncio.gather(*(follow() for _ in range(count)))
            elapsed = time.perf_counter() - started
        expected_lines = [str(n) for n in range(1, FANOUT_NUMBERS + 1)]
        lost = 0
        for numbers, lines in results:
            lost += sum(1 for a, b in zip(numbers, numbers[1:]) if b != a + 1) + (numbers[:1] != [1])
            lost += 0 if lines == expected_lines else abs(len(expected_lines) - len(lines)) or 1
        return elapsed, lost


# -- output ---------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "events":
        return f"{value:.0f}"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def table(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"glmtui serve bench  {meta['date']}",
        f"engine: Docker {meta['engine']}   glmtui {meta['glmtui']}",
        f"machine: {meta['nproc']} cores (nproc), {meta['cpu']}; Python {meta['python']}; runs={meta['runs']}"
        f"; load average at start {meta['loadavg']}",
        "",
    ]
    header = ("figure", "runs", "glmtui", "docker", "ratio", "goal", "")
    rows = [(f.title, str(f.runs), fmt(f.glmtui, f.unit), fmt(f.docker, f.unit),
             "-" if f.ratio is None else f"{f.ratio:.2f}", f.goal, verdict(f.passed)) for f in figures]
    lines += aligned(header, rows)
    notes = [f"  {f.key}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    kinds = ("wait", "latency", "fanout")
    parser = argparse.ArgumentParser(description="glmtui serve's HTTP API and events, against docker.")
    parser.add_argument("--runs", type=int, metavar="N", help="rounds of each figure (default 10, --quick 3)")
    parser.add_argument("--quick", action="store_true", help="three rounds of each figure")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--only", default=",".join(kinds), metavar="LIST", help=f"a subset of {','.join(kinds)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.runs = args.runs or (3 if args.quick else 10)
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    if not args.only or args.only - set(kinds):
        parser.error(f"--only takes a subset of {','.join(kinds)}")
    return args


def main(argv: list[str] | None = None) -> int:
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("bench/serve.py: the docker CLI is not on PATH", file=sys.stderr)
        return 2
    tag = f"benchserve-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env, latency_env = tag, f"{tag}-py"
    folder = Path(tempfile.mkdtemp(prefix="glmtui-bench-serve-"))
    server = Server(folder, log=not args.json and not args.quiet)
    figures: list[Figure] = []
    meta: dict[str, Any] = {}
    code = 0
    try:
        meta = describe_machine(args)
        server.say(f"creating environments {env} ({BUSYBOX}) and {latency_env} ({WORKSPACE})")
        server.glmtui("env", "create", env, "--image", BUSYBOX)
        if "latency" in args.only:
            server.glmtui("env", "create", latency_env, "--image", WORKSPACE)
        server.say("starting glmtui serve")
        server.start()
        bench = Bench(server, env, latency_env, args.runs)
        for kind in ("wait", "latency", "fanout"):
            if kind in args.only:
                server.say(f"measuring {kind}")
                getattr(bench, kind)()
        figures = bench.figures
    except KeyboardInterrupt:
        print("\nbench/serve.py: interrupted; cleaning up", file=sys.stderr)
        code = 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/serve.py: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    finally:
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        try:
            server.stop()
            for name in (env, latency_env):
                subprocess.run(["docker", "rm", "-f", "-v", f"glmtui-{name}"], capture_output=True)
                subprocess.run(["docker", "volume", "rm", "-f", f"glmtui-{name}-workspace"], capture_output=True)
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, old_int)
    if code:
        return code
    if args.json:
        print(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=2))
    else:
        print(table(figures, meta))
    return 1 if args.strict and any(f.passed is False for f in figures) else 0


def describe_machine(args: argparse.Namespace) -> dict[str, Any]:
    server = subprocess.run(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                            capture_output=True, text=True)
    from glmtui import __version__

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "engine": server.stdout.strip() or "?",
        "glmtui": __version__,
        "runs": args.runs,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


if __name__ == "__main__":
    sys.exit(main())
