"""Step logs on disk: capped by config `step_log_max` (head and tail kept, a line saying what was
dropped), timed by the index beside them; the live stream is never cut."""

from __future__ import annotations

import re
import signal
import time

import pytest
from helpers import one_error_line, run_glmtui, wait_for
from plan_helpers import LiveRun, json_lines, write_plan

CAP = 16 * 1024
NOTICE = ("… this log reached half its cap of 16.0KiB (config step_log_max): the rest is added when it ends, "
          "with its middle dropped if it goes over the cap")
DROPPED = re.compile(r"^… (\d+\.\d)KiB \(([\d,]+) lines\) dropped from the middle of this log; "
                     r"the cap is 16\.0KiB \(config step_log_max\)$")


CAPPED = {"GLMTUI_STEP_LOG_MAX": "16k"}  # the config, as a variable: step logs capped at 16k


def numbers(lines: list[str]) -> list[int]:
    return [int(line) for line in lines]


def consecutive(values: list[int]) -> bool:
    return values == list(range(values[0], values[0] + len(values)))


@pytest.mark.docker
def test_a_step_log_keeps_its_head_and_tail_past_the_cap(busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: flood
        env: {image: glmtui/busybox:latest}
        steps:
          - id: flood
            run: seq 100000
        """)
    done = run_glmtui("--run", str(plan), "--json", env=CAPPED, timeout=120)
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    streamed = [line for e in events if e["event"] == "output" for line in e["lines"]]
    assert streamed == [str(n) for n in range(1, 100001)], "the live stream has every line"

    run_id = events[0]["run_id"]
    log = run_glmtui("logs", "--run", run_id, "--step", "flood").stdout
    size = len(log.encode())
    assert size <= CAP + 400, f"the log is {size} bytes"
    lines = log.splitlines()
    notice = lines.index(NOTICE)
    marker = DROPPED.match(lines[notice + 1])
    assert marker, lines[notice - 1: notice + 3]
    head, tail = numbers(lines[:notice]), numbers(lines[notice + 2:])
    assert head[0] == 1 and consecutive(head) and tail[-1] == 100000 and consecutive(tail)
    dropped_lines = int(marker.group(2).replace(",", ""))
    assert len(head) + dropped_lines + len(tail) == 100000
    every = "".join(f"{n}\n" for n in range(1, 100001)).encode()
    dropped_bytes = len(every) - len("".join(f"{n}\n" for n in head + tail).encode())
    assert marker.group(1) == f"{dropped_bytes / 1024:.1f}"
    assert sum(len(f"{n}\n") for n in head) <= CAP // 2 and sum(len(f"{n}\n") for n in tail) <= CAP // 2
    from glmtui.store import Store

    folder = Store().run_dir(run_id)
    assert sorted(path.name for path in folder.iterdir()) == ["flood.log", "flood.log.times"], \
        "the tail's segments are gone once the step ended"


@pytest.mark.docker
def test_a_log_over_its_cap_says_so_while_the_step_runs(busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: flood
        env: {image: glmtui/busybox:latest}
        steps:
          - id: flood
            run: seq 20000; echo printed; sleep 300
        """)
    run = LiveRun("--run", plan, "--json", env=CAPPED)
    try:
        streamed: list[str] = []
        while "printed" not in streamed:
            streamed += run.wait_for("output", step="flood")["lines"]
        during = run_glmtui("logs", "--run", run.run_id, "--step", "flood").stdout.splitlines()
        assert during[-1] == NOTICE, during[-3:]
        assert numbers(during[:-1]) == list(range(1, len(during))), "the head, then the line saying why no more"
        run.signal(signal.SIGINT)
        assert run.finish() == 130, run.stderr
        after = run_glmtui("logs", "--run", run.run_id, "--step", "flood").stdout.splitlines()
        notice = after.index(NOTICE)
        assert after[:notice] == during[:-1] and DROPPED.match(after[notice + 1]), after[notice - 1: notice + 3]
        tail = numbers(after[notice + 2: -1])
        assert after[-1] == "printed" and tail[-1] == 20000 and consecutive(tail)
    finally:
        run.kill()


def test_step_log_max_must_be_a_size(tmp_path):
    for value, message in (("lots", "'lots' is not a size"), ("100", "is too small")):
        result = run_glmtui("config", "set", "step_log_max", value, env={"XDG_CONFIG_HOME": str(tmp_path)})
        assert result.returncode == 2 and message in one_error_line(result.stderr), value


def test_times_survive_the_cap(tmp_path):
    """Each line keeps the time it was written, through the cut and the tail."""
    from glmtui.steplog import LogReader, StepLog

    path = tmp_path / "step.log"
    written: list[tuple[float, bytes]] = []
    with StepLog.open(path, 4096) as log:
        for burst in range(6):
            for n in range(200):
                line = f"{burst} {n}".encode()
                written.append((time.time(), line))
                log.write(line + b"\n")
            time.sleep(0.2)
    read = list(LogReader(path, fallback=0).lines(final=True))
    assert [stamp for stamp, _ in read] == sorted(stamp for stamp, _ in read)
    when = dict((line, stamp) for stamp, line in written)
    kept = [(stamp, line) for stamp, line in read if line in when]
    assert len(kept) < len(written) and kept[0][1] == b"0 0" and kept[-1][1] == b"5 199"
    for stamp, line in kept:
        assert abs(stamp - when[line]) < 0.15, (line, stamp, when[line])
    wait_for(lambda: not list(tmp_path.glob("step.log.tail*")), timeout=1, what="the tail's segments to go")


def test_tail_reads_the_end_of_big_logs_with_the_time_each_line_was_written(tmp_path):
    """The plan pane opens a recorded step with the last lines of its log, each at the time the
    log's index says it was written (so reopening shows the same times)."""
    from glmtui.steplog import StepLog, tail

    path = tmp_path / "step.log"
    with StepLog.open(path, 1 << 30) as log:
        log.write("".join(f"line {n}\n" for n in range(100_000)).encode())
        first = time.time()
        time.sleep(0.3)
        log.write("".join(f"line {n}\n" for n in range(100_000, 200_000)).encode())
        second = time.time()
    lines = tail(path, 5000)
    assert len(lines) == 5000 and lines[0][1] == "line 195000" and lines[-1][1] == "line 199999"
    assert {round(at, 1) for at, _ in lines} == {round(second, 1)}
    around_the_cut = tail(path, 100_001)
    assert around_the_cut[0][1] == "line 99999" and around_the_cut[0][0] <= first < around_the_cut[1][0]
    assert tail(path, 5000) == lines  # the same times each time it is read
    assert tail(tmp_path / "missing.log", 10) == []
    (tmp_path / "short.log").write_text("a\nb")  # no index: the file's time
    mtime = (tmp_path / "short.log").stat().st_mtime
    assert tail(tmp_path / "short.log", 10) == [(mtime, "a"), (mtime, "b")]
