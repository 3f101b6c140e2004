#!/usr/bin/env python
"""MCP's `exec` tool against `docker exec`, on the same environment, in one run.

    .venv/bin/python bench/mcp.py [--quick] [--runs N] [--json] [--strict]

What is measured: a busybox environment is made for the run. The official MCP SDK's client
(`mcp.Client`) calls the `exec` tool with `{"environment": ENV, "command": ["true"]}`:

  stdio   through `glmtui mcp` (started once, as Claude Code, Codex or opencode start it)
  http    through `glmtui serve --port 0` (loopback) at /mcp, behind its bearer token, one
          connection kept

both with their own config and data folders in a temporary folder (as bench/serve.py's server:
the commands they record are not the user's), the interpreter's compiled modules cached there
as an installed glmtui has them,

each with the protocol's two eras: `auto` (the SDK's default, the 2026-07-28 protocol: one
POST per request on HTTP) and `legacy` (the 2025-11-25 handshake and session that Claude Code,
Codex and opencode speak). A call is timed at the client, from `call_tool` to its result; the
baseline is `docker exec glmtui-ENV true` by the docker CLI (goal: ratio <= 1.5 for each). For
reference, `Toolbox.command(["true"])` in this process: the tool without MCP (the command runs
under the shell that ends what it leaves behind, as every agent command does).

Every client is warmed up first; then each round runs every side once, back to back, and the
figure is the median of the per-round ratios (N rounds, default 30, --quick 5). The environment
`benchmcp-<pid>-<random>` (label glmtui.bench=<that name>), the server processes and the
temporary folder are removed at the end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from common import aligned, cpu_model, verdict  # noqa: E402
from serve import Server  # noqa: E402

# This file's folder is first on the path and this file is mcp.py: without that folder, `import mcp`
# is the MCP SDK, not this file again.
sys.path.remove(str(Path(__file__).resolve().parent))

BUSYBOX = "glmtui/busybox:latest"
BENCH_LABEL = "glmtui.bench"
GOAL = 1.5
SIDES = [("stdio", "auto"), ("stdio", "legacy"), ("http", "auto"), ("http", "legacy")]


@dataclass
class Figure:
    key: str
    title: str
    glmtui: float
    baseline: float
    ratio: float
    goal: str
    passed: bool | None
    runs: int
    samples_glmtui: list[float] = field(default_factory=list)
    samples_baseline: list[float] = field(default_factory=list)


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(ours, theirs))


def timed_cli(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode().strip()}")
    return elapsed


async def measure(env: str, runs: int, warmup: int, say: Any) -> list[Figure]:
    import httpx2
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    from glmtui.agent.tools import Toolbox
    from glmtui.docker.engine import Engine
    from glmtui.docker.spec import EnvSpec, container_name

    engine = await Engine.connect()
    folder = tempfile.TemporaryDirectory(prefix="benchmcp-")
    server = Server(Path(folder.name), log=False)
    server.env["PYTHONPATH"] = str(ROOT)
    try:
        say(f"creating environment {env} ({BUSYBOX})")
        made = await engine.create_environment(EnvSpec(name=env, image=BUSYBOX, labels={BENCH_LABEL: env}))
        toolbox = Toolbox(engine, env, workdir=made.workdir)
        say("starting glmtui serve")
        await asyncio.to_thread(server.start)
        url = server.url.removesuffix("/api/v1") + "/mcp"
        async with AsyncExitStack() as stack:
            clients = {}
            for transport, mode in SIDES:
                if transport == "stdio":
                    params = StdioServerParameters(command=sys.executable, args=["-m", "glmtui", "mcp"],
                                                   env=server.env, cwd=str(server.folder))
                    client = Client(params, mode=mode)
                else:
                    http = await stack.enter_async_context(httpx2.AsyncClient(headers=server.headers(), timeout=60))
                    client = Client(streamable_http_client(url, http_client=http), mode=mode)
                clients[f"{transport}_{mode}"] = await stack.enter_async_context(client)
            arguments = {"environment": env, "command": ["true"]}

            async def call(client: Any) -> float:
                started = time.perf_counter()
                result = await client.call_tool("exec", arguments)
                elapsed = time.perf_counter() - started
                if result.is_error or result.structured_content["exit_code"] != 0:
                    raise RuntimeError(f"exec true through MCP: {result.content[0].text}")
                return elapsed

            async def direct() -> float:
                started = time.perf_counter()
                result = await toolbox.command(["true"])
                elapsed = time.perf_counter() - started
                if not result.ok:
                    raise RuntimeError(f"Toolbox.command true: exit {result.exit_code}")
                return elapsed

            cli = ["docker", "exec", container_name(env), "true"]
            samples: dict[str, list[float]] = {key: [] for key in (*clients, "toolbox", "cli")}
            say(f"{warmup} warm-up + {runs} rounds of exec true: {', '.join(clients)}, Toolbox.command, docker exec")
            for round_ in range(warmup + runs):
                timings = {key: await call(client) for key, client in clients.items()}
                timings["toolbox"] = await direct()
                timings["cli"] = await asyncio.to_thread(timed_cli, cli)
                if round_ >= warmup:
                    for key, value in timings.items():
                        samples[key].append(value)
    finally:
        server.stop()
        folder.cleanup()
        try:
            await asyncio.shield(engine.remove_environment(env, volume=True))
        except Exception:  # noqa: BLE001 - the sweep after the loop gets it
            pass
        await engine.close()
    cli_median = statistics.median(samples["cli"])
    figures = []
    for key in (*clients, "toolbox"):
        ratio = median_ratio(samples[key], samples["cli"])
        if key == "toolbox":
            title, goal, passed = "Toolbox.command(['true']) in-process", "-", None
        else:
            transport, mode = key.split("_")
            title, goal, passed = f"MCP exec true, {transport} ({mode})", f"ratio <= {GOAL}", ratio <= GOAL
        figures.append(Figure(key, title, statistics.median(samples[key]), cli_median, ratio, goal, passed, runs,
                              samples[key], samples["cli"]))
    return figures


def sweep(env: str) -> list[str]:
    """Remove what this run made (containers by label, the workspace volume); without the event loop."""
    removed: list[str] = []
    found = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={env}"],
                           capture_output=True, text=True)
    ids = found.stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True)
        removed += ids
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name=glmtui-{env}"],
                             capture_output=True, text=True)
    names = [v for v in volumes.stdout.split() if v.startswith(f"glmtui-{env}")]
    if names:
        subprocess.run(["docker", "volume", "rm", "-f", *names], capture_output=True)
        removed += names
    return removed


def fmt(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def table(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"glmtui MCP bench  {meta['date']}",
        f"mcp {meta['mcp']}, uvicorn {meta['uvicorn']}; Docker {meta['engine']}; docker CLI {meta['docker_cli']}",
        f"machine: {meta['nproc']} cores (nproc), {meta['cpu']}; Python {meta['python']}; runs={meta['runs']} "
        f"(+{meta['warmup']} warm-up); load average before/after: {meta['load_before']} / {meta.get('load_after')}",
        "",
    ]
    header = ("figure", "runs", "glmtui", "docker exec", "ratio", "goal", "")
    rows = [(f.title, str(f.runs), fmt(f.glmtui), fmt(f.baseline), f"{f.ratio:.2f}", f.goal, verdict(f.passed))
            for f in figures]
    lines += aligned(header, rows)
    lines += ["", "notes:",
              "  a call is timed at the client (mcp.Client.call_tool of exec with command ['true']); baseline: "
              "`docker exec glmtui-ENV true` by the docker CLI, in the same round",
              "  ratio: the median of the per-round ratios; auto is the 2026-07-28 protocol (the SDK's default), "
              "legacy the 2025-11-25 session that Claude Code, Codex and opencode speak"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="MCP's exec tool against docker exec.")
    parser.add_argument("--runs", type=int, metavar="N", help="rounds (default 30, --quick 5)")
    parser.add_argument("--quick", action="store_true", help="5 rounds after 2 warm-up rounds")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout, with every sample")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 5 if args.quick else 30
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.warmup = 2 if args.quick else 5
    return args


def describe(args: argparse.Namespace, env: str) -> dict[str, Any]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    server = subprocess.run(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                            capture_output=True, text=True)
    client = subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "mcp": version("mcp"),
        "uvicorn": version("uvicorn"),
        "engine": server.stdout.strip() or "?",
        "docker_cli": client.stdout.strip() or "?",
        "runs": args.runs,
        "warmup": args.warmup,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "environment": env,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("bench/mcp.py: the docker CLI is not on PATH", file=sys.stderr)
        return 2
    env = f"benchmcp-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def say(text: str) -> None:
        if not args.json and not args.quiet:
            print(f"bench/mcp.py: {text}", file=sys.stderr, flush=True)

    saved = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    meta = describe(args, env)
    try:
        figures = asyncio.run(measure(env, args.runs, args.warmup, say))
    except KeyboardInterrupt:
        print("\nbench/mcp.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/mcp.py: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        for sig in saved:  # a second Ctrl-C must not skip the clean-up
            signal.signal(sig, signal.SIG_IGN)
        leftovers = sweep(env)
        if leftovers:
            print(f"bench/mcp.py: removed leftovers: {' '.join(leftovers)}", file=sys.stderr)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.json:
        print(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=2))
    else:
        print(table(figures, meta))
    return 1 if args.strict and any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
