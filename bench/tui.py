#!/usr/bin/env python
"""Benchmarks of the terminal UI (`glmtui.tui.app.GlmtuiApp`) on a real engine, against baselines, in one run.

    .venv/bin/python bench/tui.py [--quick] [--runs N] [--json] [--only throughput,latency,memory,idle,start]

What is measured (every app runs in a process of its own, so each figure is that process's):

  throughput  a plan of one step `seq 2000000` in a named environment (created first, busybox;
              the plan says `env: {name: ...}`, so both sides reuse it), run from the TUI: the
              whole app headless (`App.run_test(size=(160, 50))`) in a child process, the plan
              loaded, the step table focused (so the step is selected and its output streams
              into the log pane, the worst case), `enter` pressed; the wall time from the key to
              the plan pane's `running` going back to False, vs the whole `glmtui --run plan.yaml
              > /dev/null` command (goal: ratio <= 1.5). Also the runner's own run duration
              (RunStarted -> RunFinished, from the run record) of both sides, for reference.
              The log pane must hold all 2,000,000 lines and the step log be byte-exact.
  latency     while a step floods the log pane (`seq 200000000`, same set-up, the 20 environments
              of `idle` listed too), keys are pressed 30 to 80 ms apart: `j`/`k` in the
              environments pane (focused), then `t` (timestamps) in the log pane (focused); then
              the run is cancelled. The latency is from the key event reaching the app (posted as
              the terminal driver posts it) to the first screen update that shows its effect: the
              new cursor row in the cursor's colours, or the log rows with (without) a time
              prefix. p50 and p95 of each key (goal: p95 < 100 ms), also in CPU time of the app
              process (what the wall time would be on an idle machine). Presses after the flood
              ended would be left out.
  memory      a `seq 10000000` step, selected, run to its end: the app process's peak RSS
              (getrusage RUSAGE_SELF ru_maxrss, printed by the child at the end), after all
              10,000,000 lines went through the log pane (goal: < 250 MB).
  idle        the real `glmtui` in tmux (160x45) with 20 busybox environments of the bench
              (running) and nothing happening: the process's CPU time (/proc/PID/stat utime +
              stime) over 30 s after it has drawn and settled (goal: < 2 % of one CPU). Then the
              same with the bench's environments stopped: the difference is what following
              `docker stats` of the running environments on screen costs. The engine's glmtui
              container events in each window are counted (other work on the engine: each one
              makes the TUI list the environments again), and the CPU of the seconds without one.
  start       the real `glmtui` launched in tmux, `tmux capture-pane -p` every 20 ms until an
              environment name of the bench shows: the median of 5 launches (goal: < 1 s).
              `python -X importtime` of the TUI's imports is reported too (the top costs).

Headless Textual does not turn the screen updates into terminal output; the bench hooks
`App._display` and does it (`render_segments`, written to /dev/null), so the app pays what it
pays in a terminal. Every glmtui process gets its own data and config folders (XDG_DATA_HOME,
XDG_CONFIG_HOME in a temporary folder); compiled modules are cached there (PYTHONPYCACHEPREFIX,
PYTHONDONTWRITEBYTECODE dropped) as an installed glmtui has them (--no-pyc: leave it). Figures are
medians of N rounds (default 3, --quick 1; throughput rounds run both sides back to back, the
ratio is the median of the per-round ratios). Every environment made here is named
`bt<pid % 1000><random>-...` (short: the environments pane shows names up to 16 characters whole)
and labelled glmtui.bench=<that prefix>; they are removed at the end, also on an error, Ctrl-C or SIGTERM, and so is the bench's own tmux server (-L).
Other environments on the engine are listed by the TUI too (they are counted in the notes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import re
import resource
import shlex
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
from common import aligned, cpu_model, seq_bytes, verdict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

BUSYBOX = "glmtui/busybox:latest"
BENCH_LABEL = "glmtui.bench"
GLMTUI_BIN = Path(sys.executable).parent / "glmtui"
PYTHON = Path(sys.executable)
SIZE = (160, 50)  # the headless app's screen
TMUX_SIZE = (160, 45)  # the real one's
THROUGHPUT_LINES = 2_000_000
FLOOD_LINES = 10_000_000
LATENCY_LINES = 200_000_000  # more than the presses take; the run is cancelled after them
IDLE_ENVIRONMENTS = 20
MB = 1024 * 1024
RESULT = "BENCHTUI-RESULT "
KINDS = ("throughput", "latency", "memory", "idle", "start")


def seq_plan(env: str, lines: int, name: str) -> str:
    return "\n".join([
        "version: 1", f"name: {name}", f"env: {{name: {env}}}", "steps:",
        "  - id: out", f"    run: seq {lines}",
    ]) + "\n"


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


# ================================================================================================
# The child: one headless app, one scenario, a JSON result on stdout.
# ================================================================================================


class Terminal:
    """What a terminal driver does with each screen update (headless Textual skips it): build
    the escape sequences and write them out (to /dev/null). A probe can watch the updates."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.out = open(os.devnull, "w")
        self.probe: Any = None
        self.updates = 0
        self.bytes = 0
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None:
                return
            seen = time.perf_counter()
            data = renderable.render_segments(app.console)
            self.out.write(data)
            self.updates += 1
            self.bytes += len(data)
            if self.probe is not None:
                self.probe(renderable, seen)

        app._display = display

    async def wait_for(self, check: Any, since: float, timeout: float = 10.0) -> tuple[float, float] | None:
        """(wall, CPU) seconds from `since` (perf_counter, process_time) to the first update for which
        check(update) holds (None: timeout). The CPU time of this process is what the wall time would
        be on an idle machine: on a shared one the wall time also holds other processes' turns."""
        done = asyncio.get_running_loop().create_future()

        def probe(update: Any, seen: float) -> None:
            if not done.done() and check(update):
                done.set_result((seen - since[0], time.process_time() - since[1]))

        self.probe = probe
        try:
            return await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self.probe = None


def update_rows(update: Any, region: Any) -> dict[int, list[tuple[int, Any]]]:
    """The segments (x, Segment) an update draws inside `region`, by screen row."""
    from rich.cells import cell_len
    from textual._compositor import ChopsUpdate, LayoutUpdate

    rows: dict[int, list[tuple[int, Any]]] = {}
    x_end, y_end = region.x + region.width, region.y + region.height

    def take(y: int, x: int, strips: Any) -> None:
        if not region.y <= y < y_end:
            return
        row = rows.setdefault(y, [])
        for strip in strips:
            for segment in strip:
                width = cell_len(segment.text)
                if x + width > region.x and x < x_end and not segment.control:
                    row.append((x, segment))
                x += width

    if isinstance(update, LayoutUpdate):
        for index, line in enumerate(update.strips):
            take(update.region.y + index, update.region.x, line)
    elif isinstance(update, ChopsUpdate):
        for y, _, _ in update.spans:
            for x, strip in update.chops[y].items():
                if strip is not None:
                    take(y, x, [strip])
    return rows


def row_text(row: list[tuple[int, Any]], region: Any) -> str:
    """The text of a row inside the region's columns."""
    chars: dict[int, str] = {}
    for x, segment in row:
        for offset, char in enumerate(segment.text):  # the log's rows are single-width text
            if region.x <= x + offset < region.x + region.width:
                chars[x + offset] = char
    return "".join(chars.get(x, " ") for x in range(region.x, region.x + region.width))


TIME_PREFIX = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \d+\s*$")
PLAIN_ROW = re.compile(r"^\d+\s*$")


async def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    from textual import events

    from glmtui.config import Config
    from glmtui.store import Store
    from glmtui.tui.app import GlmtuiApp
    from glmtui.tui.widgets.environments import EnvironmentsPane
    from glmtui.tui.widgets.log_view import LogView
    from glmtui.tui.widgets.plan_view import PlanPane

    mode, lines = spec["mode"], spec["lines"]
    result: dict[str, Any] = {"mode": mode, "lines": lines}
    started = time.perf_counter()
    app = GlmtuiApp(config=Config.load(), store=Store(), plan=Path(spec["plan"]))
    terminal = Terminal(app)

    def press(key: str, character: str | None) -> tuple[float, float]:
        event = events.Key(key, character)
        event.set_sender(app)
        sent = time.perf_counter(), time.process_time()
        app._driver.send_message(event)  # as the terminal driver posts a key from its thread
        return sent

    async def until(condition: Any, timeout: float, what: str, step: float = 0.005) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(step)

    async with app.run_test(size=SIZE) as pilot:
        envs = app.query_one(EnvironmentsPane)
        plan = app.query_one(PlanPane)
        log = app.query_one(LogView)
        await until(lambda: plan.backend is not None and plan.loaded is not None
                    and envs.row_count >= spec["min_envs"], 60, "the engine, the plan and the environments")
        result["ready_s"] = time.perf_counter() - started
        result["environments_listed"] = envs.row_count
        plan.table.focus()
        await pilot.pause(0.3)
        rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        updates0 = terminal.updates
        cpu0 = time.process_time()
        t0 = press("enter", "\r")[0]
        await until(lambda: plan.running, 30, "the run to start")
        result["started_s"] = time.perf_counter() - t0
        await until(lambda: str(log.border_title) == "out", 10, "the log pane to show the step")

        if mode == "keys":
            await until(lambda: log.line_count >= 100_000 or not plan.running, 60, "the flood to reach the log pane")
            rng = random.Random(7)
            # What happened meanwhile, to read the figures by: listings of the environments (each
            # glmtui container event on the engine brings one) and full garbage collections.
            listings = [0]
            envs.watch(envs, "environments", lambda _: listings.__setitem__(0, listings[0] + 1), init=False)
            full_gc = [0, 0.0, 0.0]

            def on_gc(phase: str, info: dict[str, Any]) -> None:
                if info["generation"] == 2:
                    if phase == "start":
                        full_gc[2] = time.perf_counter()
                    else:
                        full_gc[0] += 1
                        full_gc[1] += time.perf_counter() - full_gc[2]

            gc.callbacks.append(on_gc)
            keys_started = time.perf_counter()
            if spec["env_keys"]:
                envs.focus()
                await pilot.pause(0.2)
                result["env_keys"] = await env_presses(envs, plan, terminal, press, rng, spec["presses"])
            if spec["log_keys"]:
                log.focus()
                await pilot.pause(0.2)
                result["log_keys"] = await log_presses(log, plan, terminal, press, rng, spec["presses"])
                if log._timestamps:  # leave it as it was
                    press("t", "t")
            result["keys_done_at_lines"] = log.line_count
            gc.callbacks.remove(on_gc)
            result["keys_seconds"] = time.perf_counter() - keys_started
            result["keys_listings"] = listings[0]
            result["keys_full_gc"] = full_gc[0]
            result["keys_full_gc_s"] = full_gc[1]
            if spec["cancel"]:  # C, and yes in the dialog that asks
                plan.table.focus()
                await pilot.press("C")
                await until(lambda: app.screen.query("#yes"), 30, "the cancel question", step=0.005)
                await pilot.press("y")

        await until(lambda: not plan.running, 900, "the run to end", step=0.005)
        result["wall_s"] = time.perf_counter() - t0
        result["cpu_s"] = time.process_time() - cpu0
        result["status"] = plan.run_status
        result["progress"] = plan.progress  # what a failed run said
        result["duration_s"] = plan.run_duration
        result["run_id"] = plan.run_id
        if not spec.get("cancel") and plan.run_status == "success":  # else the parent says what ended it
            await until(lambda: log.line_count >= lines, 30, "every line in the log pane", step=0.02)
        await pilot.pause(0.3)
        result["log_pane_lines"] = log.line_count
        result["log_window_lines"] = len(log._lines)
        result["screen_updates"] = terminal.updates - updates0
        log_file = app.store.log_file(plan.run_id, "out")
        result["log_file_bytes"] = log_file.stat().st_size if log_file.exists() else -1
        result["rss_ready_mb"] = rss_ready
        result["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["rss_now_mb"] = _rss_now() / MB
        if app.engine is not None:
            await app.engine.close()
    return result


def _rss_now() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


async def env_presses(envs: Any, plan: Any, terminal: Terminal, press: Any, rng: random.Random,
                      count: int) -> dict[str, Any]:
    """`j`/`k` in the environments pane: until the new cursor row is drawn in the cursor's colours."""
    cursor_bg = envs.get_component_rich_style("datatable--cursor").bgcolor
    latencies: list[float] = []
    cpu: list[float] = []
    late = missed = 0
    for _ in range(count):
        await asyncio.sleep(rng.uniform(0.03, 0.08))
        if not plan.running:
            late += 1
            continue
        row = envs.cursor_row
        target = row + 1 if row < 1 else row - 1  # between the first two rows: never scrolls
        key = "j" if target > row else "k"
        name = envs.coordinate_to_cell_key((target, 0)).row_key.value
        region = envs.content_region
        y = region.y + (envs.header_height if envs.show_header else 0) + target - round(envs.scroll_y)

        def drawn(update: Any) -> bool:
            row_segments = update_rows(update, region).get(y)
            return bool(row_segments) and any(
                name in segment.text and segment.style is not None and segment.style.bgcolor == cursor_bg
                for _, segment in row_segments
            )

        sent = press(key, key)
        seen = await terminal.wait_for(drawn, sent)
        if seen is None:
            missed += 1
        else:
            latencies.append(seen[0])
            cpu.append(seen[1])
    return {"key": "j/k", "latencies": latencies, "cpu": cpu, "late": late, "missed": missed}


async def log_presses(log: Any, plan: Any, terminal: Terminal, press: Any, rng: random.Random,
                      count: int) -> dict[str, Any]:
    """`t` in the log pane: until its rows are drawn with (without) the time prefix."""
    latencies: list[float] = []
    cpu: list[float] = []
    late = missed = 0
    for _ in range(count):
        await asyncio.sleep(rng.uniform(0.03, 0.08))
        if not plan.running:
            late += 1
            continue
        want = not log._timestamps
        region = log.scrollable_content_region
        pattern = TIME_PREFIX if want else PLAIN_ROW

        def drawn(update: Any) -> bool:
            rows = update_rows(update, region)
            texts = [row_text(r, region).strip() for r in rows.values()]
            texts = [t for t in texts if t]
            return len(texts) >= 3 and all(pattern.match(t) for t in texts)

        sent = press("t", "t")
        seen = await terminal.wait_for(drawn, sent)
        if seen is None:
            missed += 1
        else:
            latencies.append(seen[0])
            cpu.append(seen[1])
    return {"key": "t", "latencies": latencies, "cpu": cpu, "late": late, "missed": missed}


def child(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    result = asyncio.run(child_main(spec))
    print(RESULT + json.dumps(result), flush=True)
    return 0


# ================================================================================================
# The parent.
# ================================================================================================


@dataclass
class Figure:
    key: str
    title: str
    unit: str  # "s", "ms", "MB", "%": lower is better
    statistic: str
    tui: float
    baseline: float | None
    ratio: float | None
    goal: str
    passed: bool | None  # None: reported, no goal
    runs: int
    samples_tui: list[float] = field(default_factory=list)
    samples_baseline: list[float] = field(default_factory=list)
    note: str = ""


class Interrupted(Exception):
    pass


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, tag: str) -> None:
        self.args = args
        self.runs = args.runs
        self.workdir = workdir
        self.tag = tag
        self.data = workdir / "data"
        self.env = {**os.environ, "XDG_DATA_HOME": str(self.data), "XDG_CONFIG_HOME": str(workdir / "config")}
        self.env.pop("GLMTUI_DEBUG", None)
        if not args.no_pyc:
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        self.log = not args.json and not args.quiet
        self.figures: list[Figure] = []
        self.meta: dict[str, Any] = {}
        self.created: list[str] = []  # environments made here, for the clean-up
        self.flood_env = f"{tag}-flood"
        self.idle_envs = [f"{tag}-{i:02d}" for i in range(IDLE_ENVIRONMENTS)]
        self.tmux_socket = tag
        self.tmux_started = False
        self.children: list[subprocess.Popen] = []

    def say(self, text: str) -> None:
        if self.log:
            print(text, file=sys.stderr, flush=True)

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    # -- environments ---------------------------------------------------------------------------

    def engine_do(self, coroutine_fn: Any) -> Any:
        from glmtui.docker.engine import Engine

        async def go() -> Any:
            engine = await Engine.connect()
            try:
                return await coroutine_fn(engine)
            finally:
                await engine.close()

        return asyncio.run(go())

    def create(self, names: list[str]) -> None:
        from glmtui.docker.spec import EnvSpec

        todo = [n for n in names if n not in self.created]
        self.created += todo  # before: a half-made one is swept too

        async def go(engine: Any) -> None:
            for name in todo:  # one by one: a 2-core machine shared with other work
                await engine.create_environment(EnvSpec(name, BUSYBOX, labels={BENCH_LABEL: self.tag}))

        self.engine_do(go)

    def stop_all(self, names: list[str]) -> None:
        async def go(engine: Any) -> None:
            await asyncio.gather(*(engine.stop_environment(n, timeout=1) for n in names))

        self.engine_do(go)

    @staticmethod
    def load() -> str:
        return f"{os.getloadavg()[0]:.1f}"

    def engine_events(self, since: float, until: float) -> list[float]:
        """When the engine sent glmtui container events between two times (each makes the TUI list again)."""
        out = subprocess.run(["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter",
                              "label=glmtui.managed=true", "--filter", "type=container", "--format",
                              "{{.TimeNano}}"], capture_output=True, text=True, timeout=30).stdout
        return [int(t) / 1e9 for t in out.split() if t.isdigit()]

    def listed(self) -> tuple[int, int]:
        """(environments, running ones) the TUI lists now: every glmtui one on the engine."""
        out = subprocess.run(["docker", "ps", "-a", "--filter", "label=glmtui.managed=true", "--filter",
                              "label=glmtui.env", "--format", "{{.State}}"], capture_output=True, text=True).stdout
        states = out.split()
        return len(states), states.count("running")

    # -- running commands -------------------------------------------------------------------------

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        child = subprocess.Popen(argv, cwd=self.workdir, env=self.env, start_new_session=True, **kwargs)
        self.children.append(child)
        return child

    def finish(self, child: subprocess.Popen, timeout: float | None = None) -> tuple[bytes, bytes]:
        try:
            out, err = child.communicate(timeout=timeout)
        finally:
            if child.poll() is not None and child in self.children:
                self.children.remove(child)
        return out or b"", err or b""

    def stop_children(self) -> None:
        """Ctrl-C to each command still running (its process group), then SIGKILL after 30 s."""
        for child in list(self.children):
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGINT)
                    child.wait(30)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(child.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    child.wait()
        self.children.clear()

    def run_child(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One headless app scenario in a fresh process; its JSON result."""
        err_file = (self.workdir / "child-stderr.txt").open("w+b")
        started = time.perf_counter()
        child = self.popen([str(PYTHON), str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err_file)
        out, _ = self.finish(child, timeout=1200)
        elapsed = time.perf_counter() - started
        err_file.seek(0)
        err = err_file.read().decode("utf-8", "replace")
        err_file.close()
        text = out.decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT):])
                result["process_wall_s"] = elapsed
                return result
        raise RuntimeError(f"the app child ({spec['mode']}) failed ({child.returncode}): {err[-3000:]}")

    def headless(self, plan: Path) -> dict[str, Any]:
        """`glmtui --run plan > /dev/null`: wall, CPU, the run's duration from its record."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        err_file = (self.workdir / "stderr.txt").open("w+b")
        started = time.perf_counter()
        child = self.popen([str(GLMTUI_BIN), "--run", str(plan)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err_file)
        self.finish(child)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        err_file.seek(0)
        err = err_file.read().decode("utf-8", "replace")
        err_file.close()
        if child.returncode != 0:
            raise RuntimeError(f"glmtui --run {plan} failed ({child.returncode}): {err[-2000:]}")
        run_id, duration = self.newest_run()
        log = self.data / "glmtui" / "runs" / run_id / "out.log"
        return {"wall_s": wall, "cpu_s": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
                "duration_s": duration, "log_file_bytes": log.stat().st_size if log.exists() else -1}

    def newest_run(self) -> tuple[str, float]:
        db = sqlite3.connect(self.data / "glmtui" / "glmtui.sqlite3", timeout=10)
        try:
            run_id, started, finished = db.execute(
                "SELECT id, started, finished FROM runs ORDER BY started DESC LIMIT 1").fetchone()
        finally:
            db.close()
        return run_id, finished - started

    # -- throughput -------------------------------------------------------------------------------

    def throughput(self) -> None:
        plan = self.write("throughput.yaml", seq_plan(self.flood_env, THROUGHPUT_LINES, "throughput"))
        expected = seq_bytes(THROUGHPUT_LINES)
        self.say(f"throughput: {self.runs} rounds of `seq {THROUGHPUT_LINES}`: glmtui --run, then the TUI "
                 "(headless app in a child process, the step selected)")
        self.headless(plan)  # warm-up: page cache, compiled modules, the engine's exec path
        heads: list[dict[str, Any]] = []
        tuis: list[dict[str, Any]] = []
        for _ in range(self.runs):
            head = self.headless(plan)
            tui = self.run_child({"mode": "throughput", "plan": str(plan), "lines": THROUGHPUT_LINES, "min_envs": 1})
            for side, got in (("glmtui --run", head), ("TUI", tui)):
                if got["log_file_bytes"] != expected:
                    raise RuntimeError(f"throughput ({side}): the step log has {got['log_file_bytes']:,} bytes, "
                                       f"not {expected:,}")
            if tui["status"] != "success" or tui["log_pane_lines"] != THROUGHPUT_LINES:
                raise RuntimeError(f"throughput (TUI): status {tui['status']} {tui['progress']!r}, "
                                   f"{tui['log_pane_lines']:,} lines in the log pane")
            heads.append(head)
            tuis.append(tui)
            self.say(f"  glmtui --run {head['wall_s']:.2f} s (run {head['duration_s']:.2f} s, "
                     f"CPU {head['cpu_s']:.2f} s)"
                     f"  TUI {tui['wall_s']:.2f} s (run {tui['duration_s']:.2f} s, CPU {tui['cpu_s']:.2f} s, "
                     f"{tui['screen_updates']} screen updates)")
        walls = [t["wall_s"] for t in tuis]
        base = [h["wall_s"] for h in heads]
        runs_t = [t["duration_s"] for t in tuis]
        runs_h = [h["duration_s"] for h in heads]
        cpu_t = [t["cpu_s"] for t in tuis]
        cpu_h = [h["cpu_s"] for h in heads]
        ratio = paired(walls, base)
        self.figures += [
            Figure("throughput", f"`seq {THROUGHPUT_LINES}` step, key -> run ended (vs whole `glmtui --run`)", "s",
                   "median", statistics.median(walls), statistics.median(base), ratio, "ratio <= 1.5", ratio <= 1.5,
                   self.runs, walls, base,
                   note="TUI: from `enter` in the plan pane to its `running` going False, the step selected (its "
                   "2,000,000 lines all reach the log pane); baseline: the whole `glmtui --run plan.yaml > /dev/null` "
                   "(interpreter start-up included); both logs checked byte for byte"),
            Figure("throughput_run", "the same, the runner's own run duration on both sides", "s", "median",
                   statistics.median(runs_t), statistics.median(runs_h), paired(runs_t, runs_h), "-", None,
                   self.runs, runs_t, runs_h,
                   note="RunStarted -> RunFinished (the TUI's RunFinished.duration, the headless run's record): "
                   "no start-up on either side"),
            Figure("throughput_cpu", "the same, CPU time (user+sys)", "s", "median", statistics.median(cpu_t),
                   statistics.median(cpu_h), paired(cpu_t, cpu_h), "-", None, self.runs, cpu_t, cpu_h,
                   note="TUI: the app process from the key to the end; baseline: the whole glmtui --run process"),
        ]
        self.meta["throughput_screen_updates"] = [t["screen_updates"] for t in tuis]

    # -- latency and memory -------------------------------------------------------------------------

    def latency(self) -> None:
        lines = LATENCY_LINES
        plan = self.write("latency.yaml", seq_plan(self.flood_env, lines, "latency"))
        presses = self.args.presses
        self.say(f"latency: `seq {lines}` from the TUI, the step selected; {presses} presses of j/k in the "
                 "environments pane, then of t in the log pane; then the run is cancelled")
        listed = self.listed()
        got = self.run_child({"mode": "keys", "plan": str(plan), "lines": lines, "min_envs": IDLE_ENVIRONMENTS + 1,
                              "env_keys": True, "log_keys": True, "presses": presses, "cancel": True})
        if got["status"] != "cancelled":
            raise RuntimeError(f"latency: the flood ended ({got['status']}) before the presses did")
        rate = got["keys_done_at_lines"] / got["wall_s"]
        self.meta["latency"] = {k: v for k, v in got.items() if k not in ("env_keys", "log_keys")}
        self.meta["latency"]["environments_on_engine"] = listed
        for part, title in (("env_keys", "`j`/`k` in the environments pane"), ("log_keys", "`t` in the log pane")):
            keys = got[part]
            samples = [s * 1000 for s in keys["latencies"]]
            self.say(f"  {keys['key']}: p50 {statistics.median(samples):.0f} ms, p95 {p95(samples):.0f} ms, "
                     f"max {max(samples):.0f} ms ({len(samples)} presses)" if samples else f"  {keys['key']}: none")
            if len(samples) < 30:
                raise RuntimeError(f"latency ({keys['key']}): only {len(samples)} presses during the flood "
                                   f"({keys['late']} after it, {keys['missed']} never shown)")
            p50, high = statistics.median(samples), p95(samples)
            cpu = [c * 1000 for c in keys["cpu"]]
            short = "env" if part == "env_keys" else "log"
            self.figures.append(Figure(
                f"latency_{short}", f"{title} while flooding, key -> screen, p95", "ms", "p95", high, None, None,
                "p95 < 100 ms", high < 100 and not keys["missed"], len(samples), samples,
                note=f"p50 {p50:.0f} ms, max {max(samples):.0f} ms; in CPU time of the app process p50 "
                f"{statistics.median(cpu):.0f} ms, p95 {p95(cpu):.0f} ms"
                + (f", {keys['missed']} never shown within 10 s" if keys["missed"] else "")
                + (f", {keys['late']} after the flood (left out)" if keys["late"] else "")
                + (f"; {listed[0]} environments listed ({listed[1]} running), the log pane flooded at "
                   f"{rate / 1e6:.2f} M lines/s meanwhile; during the {got['keys_seconds']:.1f} s of presses "
                   f"{got['keys_listings']} listings of the environments (engine events, also from other work on "
                   f"the engine) and {got['keys_full_gc']} full garbage collections ({got['keys_full_gc_s'] * 1000:.0f}"
                   f" ms); load average {self.load()}" if short == "env" else ""),
            ))
            self.figures.append(Figure(f"latency_{short}_p50", f"{title} while flooding, p50", "ms", "median", p50,
                                       None, None, "-", None, len(samples), samples))

    def memory(self) -> None:
        plan = self.write("memory.yaml", seq_plan(self.flood_env, FLOOD_LINES, "memory"))
        self.say(f"memory: `seq {FLOOD_LINES}` from the TUI, the step selected, to the end")
        got = self.run_child({"mode": "flood", "plan": str(plan), "lines": FLOOD_LINES, "min_envs": 1,
                              "env_keys": False, "log_keys": False, "presses": 0, "cancel": False})
        expected = seq_bytes(FLOOD_LINES)
        if got["status"] != "success" or got["log_file_bytes"] != expected or got["log_pane_lines"] != FLOOD_LINES:
            raise RuntimeError(f"memory: status {got['status']} {got['progress']!r}, log {got['log_file_bytes']:,} "
                               f"bytes (not {expected:,}), {got['log_pane_lines']:,} lines in the log pane")
        self.say(f"  {FLOOD_LINES:,} lines in {got['wall_s']:.1f} s ({FLOOD_LINES / got['wall_s'] / 1e6:.2f} M "
                 f"lines/s, CPU {got['cpu_s']:.1f} s), peak RSS {got['rss_peak_mb']:.0f} MB")
        self.meta["memory"] = got
        self.figures.append(Figure(
            "memory", f"peak RSS after {FLOOD_LINES:,} lines through the log pane", "MB", "max",
            got["rss_peak_mb"], None, None, "< 250 MB", got["rss_peak_mb"] < 250, 1, [got["rss_peak_mb"]],
            note=f"the app process (ru_maxrss); {got['rss_ready_mb']:.0f} MB before the run, {got['rss_now_mb']:.0f} "
            f"MB at the end; the log pane keeps {got['log_window_lines']:,} lines; {FLOOD_LINES:,} lines in "
            f"{got['wall_s']:.1f} s ({got['cpu_s']:.1f} s CPU)",
        ))

    # -- the real TUI in tmux -----------------------------------------------------------------------

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["tmux", "-L", self.tmux_socket, "-f", "/dev/null", *args], capture_output=True,
                              text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def tmux_server(self) -> None:
        if not self.tmux_started:
            self.tmux_started = True
            self.tmux("new-session", "-d", "-s", "keep", "-x", "80", "-y", "24", "sleep 100000")
            self.tmux("set-option", "-g", "remain-on-exit", "on")  # a glmtui that fails leaves its message

    def tui_command(self) -> str:
        # PYTHONPATH: a checkout run with the shared venv (PYTHONPATH=$PWD) measures its own code
        keep = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "PYTHONPYCACHEPREFIX", "PYTHONPATH", "PATH", "HOME", "DOCKER_HOST")
        sets = [f"{k}={shlex.quote(self.env[k])}" for k in keep if k in self.env]
        unset = [] if "PYTHONDONTWRITEBYTECODE" in self.env else ["-u", "PYTHONDONTWRITEBYTECODE"]
        return shlex.join(["exec", "env", *unset]) + " " + " ".join(sets) + " " + shlex.quote(str(GLMTUI_BIN))

    def launch(self, session: str) -> float:
        """Start glmtui in a new tmux session; the perf_counter time just before."""
        started = time.perf_counter()
        self.tmux("new-session", "-d", "-s", session, "-x", str(TMUX_SIZE[0]), "-y", str(TMUX_SIZE[1]),
                  "-c", str(self.workdir), self.tui_command())
        return started

    def capture(self, session: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", session, check=False)

    def pane_state(self, session: str) -> str:
        return self.tmux("display-message", "-p", "-t", session, "pane dead: #{pane_dead} (status "
                         "#{pane_dead_status})", check=False)

    def pane_pid(self, session: str) -> int:
        return int(self.tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())

    def wait_screen(self, session: str, check: Any, timeout: float, poll: float = 0.02) -> float:
        started = time.perf_counter()
        while True:
            if check(self.capture(session)):
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"tmux session {session}: the screen did not show it within {timeout:.0f} s:\n"
                                   + self.capture(session) + self.pane_state(session))
            time.sleep(poll)

    def close_session(self, session: str) -> None:
        pid = None
        try:
            pid = self.pane_pid(session)
        except (RuntimeError, ValueError):
            pass
        self.tmux("send-keys", "-t", session, "q", check=False)
        deadline = time.monotonic() + 5
        while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.tmux("kill-session", "-t", session, check=False)
        deadline = time.monotonic() + 5
        while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def names_shown(self, screen: str) -> bool:
        return any(name in screen for name in self.idle_envs)

    def start(self) -> None:
        launches = self.args.launches
        self.tmux_server()
        self.say(f"start: {launches} launches of glmtui in tmux, until an environment of the bench shows "
                 "(+1 warm-up)")
        samples: list[float] = []
        for i in range(launches + 1):
            session = f"start{i}"
            started = self.launch(session)
            while True:
                if self.names_shown(self.capture(session)):
                    elapsed = time.perf_counter() - started
                    break
                if time.perf_counter() - started > 30:
                    raise RuntimeError("start: glmtui did not list the environments within 30 s:\n"
                                       + self.capture(session) + self.pane_state(session))
                time.sleep(0.02)
            self.close_session(session)
            if i:  # the first launch warms the page cache and the compiled modules
                samples.append(elapsed)
                self.say(f"  {elapsed * 1000:.0f} ms")
        median = statistics.median(samples)
        imports = self.importtime()
        self.meta["importtime"] = imports
        note = (f"tmux {TMUX_SIZE[0]}x{TMUX_SIZE[1]}, capture-pane every 20 ms; from `tmux new-session` to the first "
                f"capture with an environment name; {self.listed()[0]} environments listed; the TUI's imports alone "
                f"{imports['total_ms']:.0f} ms (python -X importtime, warm)")
        self.figures.append(Figure("start", "launch -> environments listed (tmux)", "s", "median", median, None, None,
                                   "< 1 s", median < 1.0, len(samples), samples, note=note))

    def importtime(self) -> dict[str, Any]:
        code = "import glmtui.cli, glmtui.commands.common, glmtui.tui.app"
        done = subprocess.run([str(PYTHON), "-X", "importtime", "-c", code], capture_output=True, text=True,
                              env=self.env, cwd=self.workdir)
        entries = []
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
            if match:
                entries.append((int(match[1]), int(match[2]), len(match[3]) // 2, match[4]))
        top_level = sorted((e for e in entries if e[2] == 0), key=lambda e: -e[1])
        total = sum(e[1] for e in top_level)
        packages: dict[str, int] = {}
        for own, _, _, name in entries:  # self times by distribution (glmtui by sub-package)
            parts = name.split(".")
            root = ".".join(parts[:2]) if parts[0] == "glmtui" and len(parts) > 1 else parts[0]
            packages[root] = packages.get(root, 0) + own
        return {"total_ms": total / 1000,
                "by_package": sorted(((n, t / 1000) for n, t in packages.items()), key=lambda x: -x[1])[:12],
                "top_cumulative": [(name, cum / 1000) for _, cum, _, name in top_level[:10]],
                "top_self": [(name, own / 1000) for own, _, _, name in sorted(entries, key=lambda e: -e[0])[:10]]}

    def idle(self) -> None:
        seconds = self.args.idle_seconds
        self.tmux_server()
        session = "idle"
        self.say(f"idle: glmtui in tmux, {IDLE_ENVIRONMENTS} environments running, {seconds:.0f} s; then stopped, "
                 f"{seconds:.0f} s")
        self.launch(session)
        self.wait_screen(session, self.names_shown, 30)
        pid = self.pane_pid(session)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "glmtui" not in cmdline:
            raise RuntimeError(f"idle: the pane's process is not glmtui: {cmdline}")
        results = {}
        try:
            for phase in ("running", "stopped"):
                if phase == "stopped":
                    self.stop_all(list(self.created))  # the flood one too: none of the bench's runs
                    self.wait_screen(session, lambda s: all(
                        re.search(re.escape(n) + r"\s+exited", s) for n in self.idle_envs if n in s), 30, poll=0.5)
                listed = self.listed()
                time.sleep(3)  # settle: the listing after the events, the stats streams started or ended
                screen = self.capture(session)
                shown = sum(1 for n in self.idle_envs if n in screen)
                since = time.time()
                cpu, per_second, spans = self.sample_cpu(pid, seconds)
                times = self.engine_events(since - 1, time.time())
                # Each event makes the TUI list the environments again (after 50 ms): a second counts the
                # events from 0.3 s before it began.
                counts = [sum(1 for t in times if a - 0.3 <= t < b - 0.3) for a, b in spans]
                quiet = [c for c, n in zip(per_second, counts) if n == 0]
                fit = None
                if len(set(counts)) > 1:
                    slope, intercept = statistics.linear_regression(counts, per_second)
                    fit = (intercept, slope)
                results[phase] = {"cpu_percent": cpu, "per_second": per_second, "events_per_second": counts,
                                  "listed": listed, "bench_envs_on_screen": shown,
                                  "engine_events": sum(1 for t in times if t >= since), "quiet_seconds": len(quiet),
                                  "quiet_cpu_percent": statistics.mean(quiet) if quiet else None, "fit": fit,
                                  "load": self.load()}
                self.say(f"  {phase}: {cpu:.2f} % of one CPU ({listed[0]} environments listed, {listed[1]} running, "
                         f"{shown} of the bench's on screen; {results[phase]['engine_events']} container events from "
                         f"the engine meanwhile; {_quiet_text(results[phase])})")
        finally:
            self.close_session(session)
        run, stop = results["running"], results["stopped"]
        self.meta["idle"] = results
        self.figures += [
            Figure("idle", f"idle CPU, {IDLE_ENVIRONMENTS} environments running", "%", "mean", run["cpu_percent"],
                   None, None, "< 2 %", run["cpu_percent"] < 2, 1, run["per_second"],
                   note=f"utime+stime of the glmtui process over {seconds:.0f} s, % of one CPU; "
                   f"{run['listed'][0]} environments listed, {run['listed'][1]} running (docker stats followed for "
                   f"the running ones on screen); {run['engine_events']} glmtui container events from the engine "
                   f"meanwhile (other work on it; each one makes the TUI list the environments again): "
                   f"{_quiet_text(run)}; load average {run['load']}"),
            Figure("idle_stopped", f"idle CPU, the {IDLE_ENVIRONMENTS} stopped", "%", "mean", stop["cpu_percent"],
                   None, None, "-", None, 1, stop["per_second"],
                   note=f"{stop['listed'][1]} running environments left (none of the bench's); "
                   f"{stop['engine_events']} container events meanwhile ({_quiet_text(stop)}); "
                   + _stats_cost(run, stop)),
        ]

    def sample_cpu(self, pid: int, seconds: float) -> tuple[float, list[float], list[tuple[float, float]]]:
        """% of one CPU the process used over `seconds`, and per second (with each second's wall-clock span)."""
        tick = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15)

        first = last = cpu()
        started = previous = time.perf_counter()
        wall = time.time()
        per_second: list[float] = []
        spans: list[tuple[float, float]] = []
        while time.perf_counter() - started < seconds:
            time.sleep(min(1.0, seconds - (time.perf_counter() - started)) or 0.01)
            now, used, now_wall = time.perf_counter(), cpu(), time.time()
            per_second.append((used - last) / (now - previous) * 100)
            spans.append((wall, now_wall))
            last, previous, wall = used, now, now_wall
        return (last - first) / (previous - started) * 100, per_second, spans

    # -- clean-up ------------------------------------------------------------------------------

    def sweep(self) -> list[str]:
        """Every container labelled with this bench's tag and every environment made here."""
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label={BENCH_LABEL}={self.tag}",
                              "--format", "{{.Label \"glmtui.env\"}}"], capture_output=True, text=True).stdout
        names = sorted(set(self.created) | {n for n in out.split() if n})
        removed = []
        containers = [f"glmtui-{n}" for n in names]
        if containers:
            done = subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True, text=True)
            removed = [line.strip().removeprefix("glmtui-") for line in done.stdout.splitlines() if line.strip()]
            subprocess.run(["docker", "volume", "rm", "-f", *[f"glmtui-{n}-workspace" for n in names]],
                           capture_output=True)
        return removed

    def stop_tmux(self) -> None:
        if self.tmux_started:
            self.tmux("kill-server", check=False)


def _quiet_text(phase: dict[str, Any]) -> str:
    """The idle CPU without the engine's events: the seconds without one, and a line fitted over all."""
    parts = []
    if phase["quiet_seconds"]:
        parts.append(f"{phase['quiet_seconds']} seconds without an event: {phase['quiet_cpu_percent']:.2f} %")
    else:
        parts.append("no second without an event")
    if phase["fit"] is not None:
        intercept, slope = phase["fit"]
        parts.append(f"fitted {intercept:.2f} % + {slope:.2f} points per event a second")
    return ", ".join(parts)


def _stats_cost(run: dict[str, Any], stop: dict[str, Any]) -> str:
    """What following docker stats costs: the running phase less the stopped one, compared over the
    seconds without an engine event when both have some (the events' listings cost apart)."""
    if not run["engine_events"] and not stop["engine_events"]:
        return (f"the difference ({run['cpu_percent'] - stop['cpu_percent']:.2f} points) is what following docker "
                "stats costs (the samples, and the table redrawn when they change)")
    if run["quiet_seconds"] and stop["quiet_seconds"]:
        difference = run["quiet_cpu_percent"] - stop["quiet_cpu_percent"]
        return f"over the seconds without an event, the difference ({difference:.2f} points) is what following " \
            "docker stats costs"
    return "the engine's events make the two phases hard to compare"


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of the per-round ratios (each round runs both sides back to back)."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def run(bench: Bench) -> None:
    wanted = bench.args.only
    bench.say("warm-up: compiling and caching glmtui's modules")
    subprocess.run([str(PYTHON), "-c", "import glmtui.cli, glmtui.tui.app, glmtui.plan.runner, glmtui.headless"],
                   env=bench.env, cwd=bench.workdir, check=True)
    if wanted & {"throughput", "latency", "memory"}:
        bench.say(f"creating environment {bench.flood_env} ({BUSYBOX})")
        bench.create([bench.flood_env])
    if "throughput" in wanted:
        bench.throughput()
    if wanted & {"latency", "idle", "start"}:
        bench.say(f"creating {IDLE_ENVIRONMENTS} environments {bench.idle_envs[0]} .. {bench.idle_envs[-1]}")
        bench.create(bench.idle_envs)
    if "latency" in wanted:
        bench.latency()
    if "memory" in wanted:
        bench.memory()
    if "start" in wanted:
        bench.start()
    if "idle" in wanted:
        bench.idle()


# -- output --------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def table(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"glmtui TUI bench  {meta['date']}",
        f"engine: Docker {meta['engine']}   glmtui {meta['glmtui']}   Textual {meta['textual']}",
        f"machine: {meta['nproc']} cores (nproc), {meta['cpu']}; Python {meta['python']}; runs={meta['runs']}"
        f"; load average {meta['loadavg']} at start, {meta.get('loadavg_end', '?')} at the end",
        f"bytecode: {meta['bytecode']}",
        "",
    ]
    header = ("figure", "runs", "TUI", "baseline", "ratio", "goal", "")
    rows = [
        (f.title, str(f.runs), fmt(f.tui, f.unit), fmt(f.baseline, f.unit),
         "-" if f.ratio is None else f"{f.ratio:.2f}", f.goal, verdict(f.passed))
        for f in figures
    ]
    lines += aligned(header, rows)
    notes = [f"  {f.key}: {f.note}" for f in figures if f.note]
    if any(f.ratio is not None for f in figures):
        notes.append("  ratio: the median of the per-round ratios (each round runs both sides back to back)")
    imports = meta.get("importtime")
    if imports:
        top = ", ".join(f"{name} {ms:.0f} ms" for name, ms in imports["by_package"][:8])
        notes.append(f"  importtime: {imports['total_ms']:.0f} ms in all (glmtui.cli, glmtui.tui.app); "
                     f"by package: {top}")
        start = next((f for f in figures if f.key == "start"), None)
        if start is not None and start.passed is False:
            own = ", ".join(f"{name} {ms:.0f} ms" for name, ms in imports["top_self"][:8])
            notes.append(f"  importtime, self: {own}")
    lines += ["", "notes:", *notes]
    return "\n".join(lines)


def describe_machine(args: argparse.Namespace, tag: str) -> dict[str, Any]:
    import textual

    server = subprocess.run(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                            capture_output=True, text=True)
    version = subprocess.run([str(GLMTUI_BIN), "--version"], capture_output=True, text=True)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "textual": getattr(textual, "__version__", "?"),
        "engine": server.stdout.strip() or "?",
        "glmtui": version.stdout.strip().rsplit(" ", 1)[-1] or "?",
        "runs": args.runs,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "prefix": tag,
        "bytecode": "compiled modules cached" if not args.no_pyc else
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!s} left as it is",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="glmtui's terminal UI against headless runs and its goals.")
    parser.add_argument("--runs", type=int, metavar="N", help="throughput rounds (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help="1 throughput round, 30 presses of each key, 3 launches, 10 s per idle phase")
    parser.add_argument("--presses", type=int, metavar="N", help="presses of each key (default 40, --quick 30)")
    parser.add_argument("--launches", type=int, metavar="N", help="start-up launches (default 5, --quick 3)")
    parser.add_argument("--idle-seconds", type=float, metavar="S",
                        help="seconds per idle phase (default 30, --quick 10)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--only", default=",".join(KINDS), metavar="LIST",
                        help=f"a comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary folder (run logs)")
    parser.add_argument("--no-pyc", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE as it is (default: cache compiled modules in the "
                        "temporary folder, as an installed glmtui has them)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs if args.runs is not None else (1 if quick else 3)
    args.presses = args.presses if args.presses is not None else (30 if quick else 40)
    args.launches = args.launches if args.launches is not None else (3 if quick else 5)
    args.idle_seconds = args.idle_seconds if args.idle_seconds is not None else (10.0 if quick else 30.0)
    if args.runs < 1 or args.launches < 1 or args.idle_seconds <= 0:
        parser.error("--runs and --launches must be at least 1, --idle-seconds more than 0")
    if args.presses < 30:
        parser.error("--presses must be at least 30 (the p95 needs them)")
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    if not args.only or args.only - set(KINDS):
        parser.error(f"--only takes a subset of {','.join(KINDS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # first: nothing below may be left behind by a SIGTERM
    args = parse_args(argv)
    for tool in ("docker", "tmux"):
        if shutil.which(tool) is None and (tool == "docker" or args.only & {"idle", "start"}):
            print(f"bench/tui.py: {tool} is not on PATH", file=sys.stderr)
            return 2
    if not GLMTUI_BIN.exists():
        print(f"bench/tui.py: {GLMTUI_BIN} not found; run it with the venv's python", file=sys.stderr)
        return 2
    tag = f"bt{os.getpid() % 1000:03d}{uuid.uuid4().hex[:4]}"  # short: the pane shows names up to 16 characters whole
    bench: Bench | None = None
    code = 0
    try:
        bench = Bench(args, Path(tempfile.mkdtemp(prefix="glmtui-bench-tui-")), tag)
        bench.meta.update(describe_machine(args, tag))
        run(bench)
        bench.meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except KeyboardInterrupt:
        print("\nbench/tui.py: interrupted; cleaning up", file=sys.stderr)
        code = 130
    except Exception as err:  # noqa: BLE001 - say what failed, clean up, exit non-zero
        print(f"bench/tui.py: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    finally:
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the sweep
        old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if bench is not None:
                bench.stop_children()
                bench.stop_tmux()
                removed = bench.sweep()
                if bench.log and removed:
                    print(f"bench/tui.py: removed {len(removed)} environments ({tag}-*)", file=sys.stderr)
                if args.keep_data:
                    print(f"bench/tui.py: data kept in {bench.workdir}", file=sys.stderr)
                else:
                    shutil.rmtree(bench.workdir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
    if code:
        return code
    assert bench is not None
    if args.json:
        print(json.dumps({"meta": bench.meta, "figures": [asdict(f) for f in bench.figures]}, indent=2))
    else:
        print(table(bench.figures, bench.meta))
    return 1 if args.strict and any(f.passed is False for f in bench.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
