"""Run records after the process is gone: `glmtui runs`, `runs show`, `logs --run`, `--resume`."""

from __future__ import annotations

import json

import pytest

from plan_helpers import json_lines, lines_of, of, unique_name, write_plan

pytestmark = pytest.mark.docker

RECORDED_PLAN = """
    version: 1
    name: @NAME@
    inputs:
      colour: {type: string, default: green}
    env: {image: glmtui/busybox:latest}
    steps:
      - id: first
        run: |
          echo "first line"
          echo "first err" >&2
          echo "colour=${inputs.colour}" >> "$GLMTUI_OUTPUT"
      - id: second
        needs: [first]
        retry: {attempts: 1, delay: 0.1s}
        run: |
          echo "second sees ${steps.first.outputs.colour}"
          exit 6
      - id: third
        needs: [second]
        run: echo never
    """


@pytest.fixture(scope="module")
def recorded(busybox_image, tmp_path_factory):
    """One finished (failed) run of RECORDED_PLAN through the CLI: (plan name, run id, events)."""
    from helpers import run_glmtui

    name = unique_name()
    plan = write_plan(tmp_path_factory.mktemp("recorded"), RECORDED_PLAN, NAME=name)
    done = run_glmtui("--run", str(plan), "--json", "--input", "colour=blue")
    assert done.returncode == 1, done.stderr
    events = json_lines(done.stdout)
    return name, events[0]["run_id"], events, plan


def test_runs_lists_the_run_as_json_and_as_a_table(glmtui, recorded):
    name, run_id, _, _ = recorded
    listing = json.loads(glmtui("runs", "--json").stdout)
    [mine] = [r for r in listing if r["id"] == run_id]
    assert mine["plan"] == name and mine["workflow"] == "main" and mine["status"] == "failure"
    assert mine["finished"] >= mine["started"] and mine["duration"] >= 0
    assert mine["inputs"] == {"colour": "blue"}
    shown = json.loads(glmtui("runs", "show", run_id, "--json").stdout)
    assert mine["steps"] == shown["steps"] and mine["steps"], "each run with its steps, as `runs show` has them"
    table = glmtui("runs").stdout
    line = next(line for line in table.splitlines() if line.startswith(run_id))
    assert name in line and "failure" in line


def test_runs_show_has_every_step(glmtui, recorded):
    _, run_id, events, plan = recorded
    done = glmtui("runs", "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["id"] == run_id and data["status"] == "failure"
    assert data["plan_file"] == str(plan)
    steps = {s["step"]: s for s in data["steps"]}
    assert [s["step"] for s in data["steps"]] == ["first", "second", "third"]
    assert (steps["first"]["status"], steps["first"]["exit_code"], steps["first"]["outputs"]) == (
        "success", 0, {"colour": "blue"})
    assert (steps["second"]["status"], steps["second"]["exit_code"], steps["second"]["attempt"]) == ("failure", 6, 2)
    assert steps["second"]["reason"] == of(events, "step_finished", step="second")[0]["reason"]
    assert steps["third"]["status"] == "skipped"
    assert all(s["duration"] is not None for s in data["steps"] if s["status"] != "skipped")
    text = glmtui("runs", "show", run_id[:-2]).stdout  # a unique prefix is enough
    assert run_id in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in steps}
    assert "success" in rows["first"] and "colour=blue" in rows["first"]
    assert "failure" in rows["second"] and " 6 " in rows["second"]


def test_logs_of_a_run_and_of_one_step(glmtui, recorded):
    _, run_id, _, _ = recorded
    everything = glmtui("logs", "--run", run_id)
    assert everything.returncode == 0, everything.stderr
    lines = everything.stdout.splitlines()
    assert "first | first line" in lines and "first | first err" in lines
    assert lines.count("second | second sees blue") == 2, "both attempts are in the log"
    assert not any(line.startswith("third") for line in lines)
    one = glmtui("logs", "--run", run_id, "--step", "second")
    assert one.returncode == 0, one.stderr
    assert one.stdout == "second sees blue\n--- attempt 2 ---\nsecond sees blue\n"
    wrong = glmtui("logs", "--run", run_id, "--step", "secnd")
    assert wrong.returncode == 2 and "did you mean 'second'" in wrong.stderr
    unknown = glmtui("runs", "show", "no-such-run")
    assert unknown.returncode == 2 and "no-such-run" in unknown.stderr


RESUME_PLAN = """
    version: 1
    name: @NAME@
    permissions: {root: true}   # busybox runs as root, and ./state is writable
    env:
      image: glmtui/busybox:latest
      mounts: ["./state:/state"]
    steps:
      - id: prepare
        run: |
          n=$(cat /state/count 2>/dev/null || echo 0)
          echo $((n + 1)) > /state/count
          echo "prepared $((n + 1))"
          echo "token=tok-$((n + 1))" >> "$GLMTUI_OUTPUT"
      - id: fetch
        needs: [prepare]
        copy: {from: ./input.txt, to: "env:/workspace/input.txt"}
      - id: use
        needs: [fetch]
        run: |
          cat /workspace/input.txt
          echo "token ${steps.prepare.outputs.token}"
    """


def test_resume_reuses_what_succeeded_and_runs_the_rest(glmtui, busybox_image, tmp_path):
    (tmp_path / "state").mkdir()
    plan = write_plan(tmp_path, RESUME_PLAN, NAME=unique_name())
    first = glmtui("--run", str(plan), "--json", "--allow")
    assert first.returncode == 1, first.stderr
    events = json_lines(first.stdout)
    run_id = events[0]["run_id"]
    assert of(events, "step_finished", step="fetch")[0]["status"] == "failure"
    assert "input.txt" in of(events, "step_finished", step="fetch")[0]["reason"]
    assert of(events, "step_finished", step="use")[0]["status"] == "skipped"
    assert (tmp_path / "state" / "count").read_text().strip() == "1"

    (tmp_path / "input.txt").write_text("the missing file\n")
    second = glmtui("--run", str(plan), "--json", "--resume", run_id, "--allow")
    assert second.returncode == 0, (second.stdout, second.stderr)
    events = json_lines(second.stdout)
    assert events[0]["run_id"] != run_id
    prepare = of(events, "step_finished", step="prepare")[0]
    assert prepare["status"] == "success" and "reused" in prepare["reason"]
    assert prepare["outputs"] == {"token": "tok-1"}
    assert of(events, "step_started", step="prepare") == [], "a reused step does not run again"
    assert (tmp_path / "state" / "count").read_text().strip() == "1"
    assert lines_of(events, "use") == ["the missing file", "token tok-1"]
    record = json.loads(glmtui("runs", "show", events[0]["run_id"], "--json").stdout)
    assert record["status"] == "success"
    assert {s["step"]: s["status"] for s in record["steps"]} == {"prepare": "success", "fetch": "success",
                                                                 "use": "success"}
    assert "reused" in next(s for s in record["steps"] if s["step"] == "prepare")["reason"]


def test_resume_of_another_plans_run_is_refused(glmtui, recorded, busybox_image, tmp_path):
    _, run_id, _, _ = recorded
    (tmp_path / "state").mkdir()
    plan = write_plan(tmp_path, RESUME_PLAN, NAME=unique_name())
    done = glmtui("--run", str(plan), "--resume", run_id, "--allow")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert run_id in done.stderr
    assert not (tmp_path / "state" / "count").exists(), "nothing ran"


def test_records_of_an_older_glmtui_are_kept_and_read(glmtui, tmp_path):
    """A database made before the `turns` column: opened, migrated once, nothing lost."""
    import sqlite3

    data = tmp_path / "data"
    database = data / "glmtui" / "glmtui.sqlite3"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as db:
        db.executescript("""
            CREATE TABLE runs (id TEXT PRIMARY KEY, plan TEXT NOT NULL, plan_file TEXT NOT NULL,
                workflow TEXT NOT NULL, status TEXT NOT NULL, started REAL NOT NULL, finished REAL,
                inputs TEXT NOT NULL DEFAULT '{}', environment TEXT, throwaway INTEGER NOT NULL DEFAULT 0,
                pid INTEGER, host TEXT);
            CREATE TABLE steps (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                step TEXT NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1, started REAL,
                finished REAL, exit_code INTEGER, reason TEXT, outputs TEXT NOT NULL DEFAULT '{}',
                stdout_tail BLOB, stderr_tail BLOB, usage TEXT, PRIMARY KEY (run_id, step));
            INSERT INTO runs VALUES ('20250101-000000-abcdef', 'old', '/p.yaml', 'main', 'success', 1.0, 2.0,
                '{}', 'e', 0, NULL, NULL);
            INSERT INTO steps VALUES ('20250101-000000-abcdef', 'a', 'success', 1, 1.0, 2.0, 0, NULL,
                '{"k": "v"}', x'6869', x'', '{"input_tokens": 3, "output_tokens": 4}');
        """)
    env = {"XDG_DATA_HOME": str(data)}
    for _ in range(2):  # migrated once; the second open finds it done
        shown = glmtui("runs", "show", "20250101-000000-abcdef", "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        step = json.loads(shown.stdout)["steps"][0]
        assert (step["step"], step["outputs"], step["usage"], step.get("turns")) == (
            "a", {"k": "v"}, {"input_tokens": 3, "output_tokens": 4}, None)
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert "turns" in [row[1] for row in db.execute("PRAGMA table_info(steps)")]
