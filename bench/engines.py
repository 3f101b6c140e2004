#!/usr/bin/env python
"""Benchmarks of remote engines: glmtui over SSH against the docker CLI over SSH, and `env list`
across several engines against one, in the same run.

    .venv/bin/python bench/engines.py [--runs N] [--json] [--only exec,stream,list] [--strict]

The remote engine is the tests' (tests/remote_engine.py): a private dockerd started for the run
(its own socket, data root and network namespace), reached over SSH through an sshd started for
the run on 127.0.0.1 with keys made for it, and over TCP with TLS through a veth pair. Both sides
run the system's `ssh` with the run's ssh config (an `ssh` first on PATH that adds -F), so they
reach the same sshd the same way; the docker CLI opens its SSH connections as it always does.

  exec     median latency of `Engine.exec(name, ["true"])` on an SSH engine (one Engine for the run:
           its connection kept, as in the TUI and a plan run)  vs  `docker -H ssh://HOST exec
           glmtui-NAME true`; N runs each after warm-up, interleaved (goal: ratio <= 0.8); then
           the whole command, `glmtui env exec --engine E NAME true`, against the same (for reference)
  stream   `seq 2000000` through `Engine.exec(..., on_output=count bytes)` over SSH vs `docker -H
           ssh://HOST exec glmtui-NAME seq 2000000 > /dev/null`; median lines/s of N/3 runs each
           (goal: throughput ratio >= 0.9)
  list     median wall time of `glmtui env list` with three engines configured (the machine's,
           the remote one over TLS and over SSH) vs with the machine's alone; N/3 runs each,
           interleaved (goal: ratio <= 1.3)

N is --runs (default 20). A throw-away environment `bench-<pid>-<random>` is made on the remote
engine for exec and stream; the engine, the sshd and what they made go at the end, also on
Ctrl-C or an error. The local engine's own figures are bench/engine.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
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
for folder in (ROOT, ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import yaml  # noqa: E402

from common import aligned, cpu_model, seq_bytes  # noqa: E402
from glmtui.docker.engine import Engine  # noqa: E402
from glmtui.docker.spec import EnvSpec, container_name  # noqa: E402
from private_dockerd import PrivateDockerd  # noqa: E402
from remote_engine import Remote  # noqa: E402
from sshd import SSHServer  # noqa: E402

BUSYBOX = "glmtui/busybox:latest"
STREAM_LINES = 2_000_000
SSH_HOST = "glmtui-test"  # the Host entry of tests/sshd.py's ssh config


@dataclass
class Figure:
    key: str
    title: str
    unit: str  # "s" (lower is better) or "lines/s" (higher is better)
    glmtui: float
    docker: float
    ratio: float
    goal: str
    passed: bool | None  # None: for reference, no goal
    runs: int
    samples_glmtui: list[float] = field(default_factory=list)
    samples_docker: list[float] = field(default_factory=list)
    note: str = ""


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one command, its output thrown away (stderr kept to explain a failure)."""
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode().strip()}")
    return elapsed


class Bench:
    def __init__(self, remote: Remote, engine: Engine, env: str, runs: int, log: bool, folder: Path) -> None:
        self.remote = remote
        self.engine = engine
        self.env = env
        self.runs = runs
        self.log = log
        self.folder = folder
        # Whole commands: with bytecode written, as a user's installed glmtui runs.
        self.environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    def glmtui(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "glmtui", *args]

    def configured(self, name: str, engines: dict[str, Any]) -> dict[str, str]:
        folder = self.folder / name
        (folder / "glmtui").mkdir(parents=True, exist_ok=True)
        (folder / "glmtui" / "config.yaml").write_text(yaml.safe_dump({"engines": engines} if engines else {}))
        return {**self.environ, "XDG_CONFIG_HOME": str(folder)}

    async def exec_true(self) -> list[Figure]:
        runs, warmup = self.runs, 3
        docker = ["docker", "-H", f"ssh://{SSH_HOST}", "exec", container_name(self.env), "true"]
        whole = self.glmtui("env", "exec", "--engine", "far-ssh", self.env, "true")
        whole_env = self.configured("ssh-only", self.remote.config("ssh"))
        ours, theirs, commands = [], [], []
        self.say(f"exec true over SSH: {warmup} warm-up + {runs} runs each, interleaved")
        for i in range(warmup + runs):
            started = time.perf_counter()
            result = await self.engine.exec(self.env, ["true"])
            a = time.perf_counter() - started
            if not result.ok:
                raise RuntimeError(f"Engine.exec true over SSH: exit {result.exit_code} {result.reason or ''}")
            b = timed(docker, self.environ)
            c = timed(whole, whole_env)
            if i >= warmup:
                ours.append(a)
                theirs.append(b)
                commands.append(c)
        a, b, c = statistics.median(ours), statistics.median(theirs), statistics.median(commands)
        return [
            Figure("exec", "exec `true` over SSH, median latency", "s", a, b, a / b, "ratio <= 0.8", a / b <= 0.8,
                   runs, ours, theirs, note="glmtui: Engine.exec on one Engine for the run; docker: "
                   f"docker -H ssh://{SSH_HOST} exec NAME true"),
            Figure("exec_command", "`glmtui env exec NAME true` over SSH, whole command", "s", c, b, c / b,
                   "for reference", None, runs, commands, theirs,
                   note="a new process each time: Python's start-up, the config, the SSH master of the run"),
        ]

    async def stream(self) -> Figure:
        runs, warmup = max(1, math.ceil(self.runs / 3)), 1
        expected = seq_bytes(STREAM_LINES)
        docker = ["docker", "-H", f"ssh://{SSH_HOST}", "exec", container_name(self.env), "seq", str(STREAM_LINES)]
        ours, theirs = [], []
        self.say(f"stream {STREAM_LINES:,} lines over SSH: {warmup} warm-up + {runs} runs each")
        for i in range(warmup + runs):
            counted = {1: 0, 2: 0}

            def count(fd: int, data: bytes) -> None:
                counted[fd] = counted.get(fd, 0) + len(data)

            started = time.perf_counter()
            result = await self.engine.exec(self.env, ["seq", str(STREAM_LINES)], on_output=count)
            a = time.perf_counter() - started
            if not result.ok or counted[1] != expected or counted[2]:
                raise RuntimeError(f"Engine.exec seq over SSH: exit {result.exit_code}, {counted[1]:,} of "
                                   f"{expected:,} bytes")
            b = timed(docker, self.environ)
            if i >= warmup:
                ours.append(STREAM_LINES / a)
                theirs.append(STREAM_LINES / b)
        a, b = statistics.median(ours), statistics.median(theirs)
        return Figure("stream", f"stream {STREAM_LINES // 1_000_000}M lines over SSH, median", "lines/s", a, b, a / b,
                      "ratio >= 0.9", a / b >= 0.9, runs, ours, theirs,
                      note=f"every one of the {expected:,} bytes counted; best: glmtui {max(ours) / 1e6:.2f}, "
                      f"docker {max(theirs) / 1e6:.2f} M lines/s")

    def env_list(self) -> Figure:
        runs, warmup = max(1, math.ceil(self.runs / 3)), 1
        three = self.configured("three", self.remote.config("tls", "ssh"))
        one = self.configured("one", {})
        argv = self.glmtui("env", "list")
        with_three, with_one = [], []
        self.say(f"env list, three engines vs one: {warmup} warm-up + {runs} runs each, interleaved")
        for i in range(warmup + runs):
            a = timed(argv, three)
            b = timed(argv, one)
            if i >= warmup:
                with_three.append(a)
                with_one.append(b)
        a, b = statistics.median(with_three), statistics.median(with_one)
        return Figure("list", "`glmtui env list`, three engines vs one, median", "s", a, b, a / b, "ratio <= 1.3",
                      a / b <= 1.3, runs, with_three, with_one,
                      note="the docker column is `glmtui env list` with the machine's engine alone; three: "
                      "it, and the remote engine over TLS and over SSH")


async def measure(args: argparse.Namespace, remote: Remote, meta: dict[str, Any], folder: Path) -> list[Figure]:
    engine = await Engine.connect(remote.endpoint("ssh"))
    env = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    figures: list[Figure] = []
    try:
        meta["engine"] = {"version": engine.version_info.get("Version"), "api": engine.version_info.get("ApiVersion")}
        await engine.create_environment(EnvSpec(name=env, image=BUSYBOX))
        bench = Bench(remote, engine, env, args.runs, not (args.json or args.quiet), folder)
        if "exec" in args.only:
            figures += await bench.exec_true()
        if "stream" in args.only:
            figures.append(await bench.stream())
        if "list" in args.only:
            figures.append(bench.env_list())
        return figures
    finally:
        try:
            await asyncio.shield(engine.remove_environment(env, volume=True))
        except Exception:  # noqa: BLE001 - the engine goes at the end with all it holds
            pass
        await engine.close()


def fmt(value: float, unit: str) -> str:
    if unit == "lines/s":
        return f"{value / 1e6:.2f} M lines/s"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def table(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"glmtui remote engines bench  {meta['date']}",
        f"remote engine: Docker {meta['engine']['version']} (API {meta['engine']['api']}), a private dockerd over "
        f"SSH to 127.0.0.1 ({meta['ssh']})   docker CLI: {meta['docker_cli']}",
        f"machine: {meta['nproc']} cores (nproc), {meta['cpu']}; Python {meta['python']}; runs={meta['runs']}; "
        f"load average before/after: {' '.join(map(str, meta['load_before']))} / "
        f"{' '.join(map(str, meta.get('load_after', [])))}",
        "",
    ]
    header = ("figure", "runs", "glmtui", "docker CLI", "ratio", "goal", "")
    rows = [(f.title, str(f.runs), fmt(f.glmtui, f.unit), fmt(f.docker, f.unit), f"{f.ratio:.3f}", f.goal,
             "" if f.passed is None else "PASS" if f.passed else "MISS") for f in figures]
    lines += aligned(header, rows)
    notes = [f"  {f.key}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    kinds = ("exec", "stream", "list")
    parser = argparse.ArgumentParser(description="glmtui on remote engines vs the docker CLI, same engine, same run.")
    parser.add_argument("--runs", type=int, default=20, metavar="N",
                        help="exec runs per side (default 20); stream and list use N/3")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--only", default=",".join(kinds), metavar="LIST", help=f"a subset of {','.join(kinds)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    if args.runs < 1 or not args.only or args.only - set(kinds):
        parser.error(f"--runs must be at least 1, --only a subset of {','.join(kinds)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for program in ("docker", "dockerd", "/usr/sbin/sshd", "ssh"):
        if shutil.which(program) is None:
            print(f"bench/engines.py: {program} is not here (scripts/setup installs it)", file=sys.stderr)
            return 2
    meta: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "docker_cli": subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True,
                                     text=True).stdout.strip() or "?",
        "ssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
        "runs": args.runs,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    dockerd = PrivateDockerd(tls=True)
    sshd = None
    figures: list[Figure] = []
    try:
        say = (lambda text: None) if args.json or args.quiet else (lambda text: print(text, file=sys.stderr))
        say("starting a private dockerd and an sshd for the run")
        dockerd.start()
        dockerd.load_image_from_machine(BUSYBOX)
        sshd = SSHServer(dockerd.host)
        sshd.start()
        os.environ.update(sshd.variables())
        figures = asyncio.run(measure(args, Remote(dockerd, sshd), meta, dockerd.root / "bench"))
    except KeyboardInterrupt:
        print("\nbench/engines.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/engines.py: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        for sig in saved:  # a second Ctrl-C must not skip the clean-up
            signal.signal(sig, signal.SIG_IGN)
        if sshd is not None:
            sshd.close()
        dockerd.close()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=2))
    else:
        print(table(figures, meta))
    return 1 if args.strict and any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
