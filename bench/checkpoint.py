#!/usr/bin/env python
"""Checkpoints of a large workspace: how long a checkpoint and a rollback take.

    .venv/bin/python bench/checkpoint.py [--files 10000] [--changed 10] [--runs 5] [--json]

A throw-away busybox environment `bench-<pid>` gets FILES files of 1 KiB in 100 folders and a
first checkpoint (not timed: the first one hashes everything). Then, RUNS times:

  checkpoint  CHANGED files rewritten by a shell command, then `Checkpoints.take` (goal < 0.5 s)
  rollback    CHANGED more files rewritten, one deleted, one made, then `Checkpoints.rollback` to
              the checkpoint before (goal < 1 s; it takes its rescue checkpoint first, included)

Each figure is the median of the runs, wall time of the call as glmtui makes it (an exec in the
environment's checkpoint helper). The environment, its helper and their volumes are removed at
the end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glmtui.docker.checkpoints import Checkpoints  # noqa: E402
from glmtui.docker.engine import Engine  # noqa: E402
from glmtui.docker.spec import EnvSpec  # noqa: E402

GOALS = {"checkpoint": 0.5, "rollback": 1.0}


async def bench(files: int, changed: int, runs: int) -> dict[str, float]:
    engine = await Engine.connect()
    name = f"bench-{os.getpid()}"
    try:
        await engine.create_environment(EnvSpec(name=name, image="glmtui/busybox:latest"))
        make = ('for d in $(seq 0 99); do mkdir -p d$d; done; i=0; while [ $i -lt "$1" ]; do '
                'head -c 1024 /dev/zero > d$((i % 100))/f$i; i=$((i + 1)); done')
        await engine.exec(name, ["sh", "-c", make, "sh", str(files)], workdir="/workspace")
        checkpoints = Checkpoints(engine, name)
        await checkpoints.take("all files")
        touch = 'i=0; while [ $i -lt "$1" ]; do echo "$2 $i" > d$((i % 100))/f$i; i=$((i + 1)); done'
        figures: dict[str, list[float]] = {"checkpoint": [], "rollback": []}
        for run in range(runs):
            await engine.exec(name, ["sh", "-c", touch, "sh", str(changed), f"run {run}"], workdir="/workspace")
            started = time.perf_counter()
            before = await checkpoints.take(f"run {run}")
            figures["checkpoint"].append(time.perf_counter() - started)
            assert before.files_changed >= changed, before  # (and what the last rollback undid)
            await engine.exec(name, ["sh", "-c", touch + "; rm d1/f1; echo new > d2/new", "sh", str(changed),
                                     f"after {run}"], workdir="/workspace")
            started = time.perf_counter()
            await checkpoints.rollback(before.id)
            figures["rollback"].append(time.perf_counter() - started)
        return {key: statistics.median(values) for key, values in figures.items()}
    finally:
        await asyncio.shield(engine.remove_environment(name, volume=True))
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    medians = asyncio.run(bench(args.files, args.changed, args.runs))
    if args.json:
        print(json.dumps({"load": load, **medians}))
        return
    print(f"{args.files:,} files, {args.changed} changed, median of {args.runs} runs, load {load:.1f}")
    for key, seconds in medians.items():
        print(f"{key:<11} {seconds * 1000:7.0f} ms  goal < {GOALS[key]:g} s  "
              f"{'PASS' if seconds < GOALS[key] else 'MISS'}")


if __name__ == "__main__":
    main()
