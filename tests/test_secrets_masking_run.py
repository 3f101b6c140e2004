"""Secrets in a real run: from -e, the process environment, a .env beside the plan, or --env-file,
and shown as *** everywhere: the console, the JSON events, run records, logs, the files on disk."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from plan_helpers import json_lines, of, unique_name, write_plan

pytestmark = pytest.mark.docker

SECRET_PLAN = """
    version: 1
    name: @NAME@
    secrets: [PLAN_TOKEN]
    inputs:
      note: {type: string, default: "nothing"}
    env: {image: glmtui/busybox:latest}
    steps:
      - id: whole
        environment: {TOKEN: "${secrets.PLAN_TOKEN}"}
        run: |
          echo "token: $TOKEN"
          echo "again: ${secrets.PLAN_TOKEN} and the note ${inputs.note}"
          echo "to stderr $TOKEN" >&2
          echo "leak=$TOKEN" >> "$GLMTUI_OUTPUT"
      - id: split
        environment: {HEAD: "@HEAD@", TAIL: "@TAIL@"}
        run: |
          printf '%s' "$HEAD"
          sleep 0.3
          printf '%s\\n' "$TAIL"
          printf '%s' "$HEAD" >&2
          sleep 0.3
          printf '%s\\n' "$TAIL" >&2
      - id: reason
        continue_on_error: true
        copy: {from: "./missing-${secrets.PLAN_TOKEN}.txt", to: "env:/tmp/x"}
    """


def new_secret() -> str:
    return f"Sk{uuid.uuid4().hex[:14]}"


def plan_for(folder: Path, secret: str) -> Path:
    half = len(secret) // 2
    return write_plan(folder, SECRET_PLAN, NAME=unique_name(), HEAD=secret[:half], TAIL=secret[half:])


def data_dir() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "glmtui"


def lines(events: list[dict], step: str, stream: str) -> list[str]:
    return [line for e in of(events, "output", step=step, stream=stream) for line in e["lines"]]


def check_masked_events(events: list[dict], secret: str) -> None:
    assert secret not in json.dumps(events)
    assert lines(events, "whole", "stdout") == ["token: ***", "again: *** and the note note-with-***"]
    assert lines(events, "whole", "stderr") == ["to stderr ***"]
    assert lines(events, "split", "stdout") == ["***"]
    assert lines(events, "split", "stderr") == ["***"]
    whole = of(events, "step_finished", step="whole")[0]
    assert whole["status"] == "success" and whole["outputs"] == {"leak": "***"}
    reason = of(events, "step_finished", step="reason")[0]
    assert reason["status"] == "failure" and "missing-***" in reason["reason"]
    assert events[-1]["status"] == "success"


@pytest.mark.parametrize("source", ["-e", "process-env", "dotenv", "env-file"])
def test_a_secret_from_each_source_is_masked_in_the_events(glmtui, busybox_image, tmp_path, source):
    secret = new_secret()
    plan = plan_for(tmp_path, secret)
    args = ["--run", str(plan), "--json", "--input", f"note=note-with-{secret}"]
    env = {"PLAN_TOKEN": None}
    if source == "-e":
        args += ["-e", f"PLAN_TOKEN={secret}"]
    elif source == "process-env":
        env["PLAN_TOKEN"] = secret
    elif source == "dotenv":
        (tmp_path / ".env").write_text(f"# the plan's own .env\nPLAN_TOKEN={secret}\n")
    else:
        (tmp_path / "other.env").write_text(f"PLAN_TOKEN={secret}\n")
        args += ["--env-file", str(tmp_path / "other.env")]
    done = glmtui(*args, env=env)
    failed = [e for e in json_lines(done.stdout) if e["event"] == "step_finished" and e["status"] != "success"]
    assert done.returncode == 0, (failed, done.stderr)
    assert secret not in done.stdout and secret not in done.stderr
    check_masked_events(json_lines(done.stdout), secret)


def test_a_secret_is_masked_in_every_sink(glmtui, busybox_image, tmp_path):
    secret = new_secret()
    plan = plan_for(tmp_path, secret)
    common = ["--input", f"note=note-with-{secret}", "-e", f"PLAN_TOKEN={secret}"]

    console = glmtui("--run", str(plan), *common)
    assert console.returncode == 0, console.stderr
    assert secret not in console.stdout + console.stderr
    assert "whole    | token: ***" in console.stdout
    assert "split    | ***" in console.stdout

    as_json = glmtui("--run", str(plan), "--json", *common)
    assert as_json.returncode == 0, as_json.stderr
    assert secret not in as_json.stdout + as_json.stderr
    events = json_lines(as_json.stdout)
    check_masked_events(events, secret)
    run_id = events[0]["run_id"]

    shown = glmtui("runs", "show", run_id, "--json")
    assert shown.returncode == 0 and secret not in shown.stdout
    record = json.loads(shown.stdout)
    assert record["inputs"] == {"note": "note-with-***"}
    steps = {s["step"]: s for s in record["steps"]}
    assert steps["whole"]["outputs"] == {"leak": "***"}
    assert "missing-***" in steps["reason"]["reason"]
    assert secret not in glmtui("runs", "show", run_id).stdout
    assert secret not in glmtui("runs", "--json").stdout

    logs = glmtui("logs", "--run", run_id)
    assert logs.returncode == 0 and secret not in logs.stdout
    assert "whole | token: ***" in logs.stdout and "split | ***" in logs.stdout
    for step in ("whole", "split"):
        one = glmtui("logs", "--run", run_id, "--step", step)
        assert secret not in one.stdout and "***" in one.stdout

    files = list((data_dir() / "runs" / run_id).rglob("*"))
    assert {f.name for f in files} >= {"whole.log", "split.log"}
    for path in files:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    split_log = (data_dir() / "runs" / run_id / "split.log").read_bytes()
    assert split_log.count(b"***") == 2

    database = sorted(data_dir().glob("glmtui.sqlite3*"))
    assert database, "the run records live in glmtui.sqlite3"
    for path in database:
        data = path.read_bytes()
        assert secret.encode() not in data, f"{path.name} holds the secret"
        assert secret.encode("utf-16-le") not in data


SHORT_PLAN = """
    version: 1
    name: @NAME@
    secrets: [ONE_LETTER, WORD]
    inputs:
      note: {type: string, default: "text"}
    env: {image: glmtui/busybox:latest}
    steps:
      - id: say
        run: |
          echo "text x, the queue is EMPTYING, NOT_EMPTY, EMPTY"
          echo "word=text" >> "$GLMTUI_OUTPUT"
    """


def test_a_short_secret_is_masked_only_as_a_whole_word_and_the_load_warns(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, SHORT_PLAN, NAME=unique_name())
    secrets = ["-e", "ONE_LETTER=x", "-e", "WORD=EMPTY"]

    done = glmtui("--run", str(plan), "--json", *secrets)

    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert lines(events, "say", "stdout") == ["text ***, the queue is EMPTYING, NOT_EMPTY, ***"]
    assert done.stderr.count("glmtui: warning:") == 2
    assert ("glmtui: warning: secret ONE_LETTER is 1 character: too short to hide safely inside other text; "
            "it is masked only as a whole word") in done.stderr
    assert "glmtui: warning: secret WORD is 5 characters" in done.stderr
    shown = glmtui("runs", "show", events[0]["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert "inputs {'note': 'text'}" in shown.stdout and "word=text" in shown.stdout  # not te***t
    validated = glmtui("plan", "validate", str(plan), *secrets)
    assert validated.returncode == 0 and validated.stderr.count("glmtui: warning: secret") == 2


PEM_PLAN = """
    version: 1
    name: @NAME@
    secrets: [DEPLOY_KEY]
    env: {image: glmtui/busybox:latest}
    steps:
      - id: show
        environment: {KEY: "${secrets.DEPLOY_KEY}"}
        run: |
          n=0
          printf '%s\\n' "$KEY" | while IFS= read -r line; do
            n=$((n + 1))
            echo "line $n: $line"
            sleep 0.1
          done
    """
PEM_LINES = [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    "QyNTUxOQAAACDx0q2s1Rk4nD5bYc1mJt2vGvB9yQ6lC3VgGJwFXnZc7wAAAJg=",
    "Zm8=",
    "-----END OPENSSH PRIVATE KEY-----",
]


def test_a_multi_line_secret_printed_one_line_at_a_time_is_masked(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, PEM_PLAN, NAME=unique_name())
    (tmp_path / ".env").write_text('DEPLOY_KEY="' + "\n".join(PEM_LINES) + '"\n')

    done = glmtui("--run", str(plan), "--json")

    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert lines(events, "show", "stdout") == [f"line {n}: ***" for n in range(1, len(PEM_LINES) + 1)]
    assert "secret DEPLOY_KEY has 1 line shorter than 8 characters" in done.stderr
    run_id = events[0]["run_id"]
    console = glmtui("logs", "--run", run_id).stdout + glmtui("runs", "show", run_id, "--json").stdout
    log = (data_dir() / "runs" / run_id / "show.log").read_text()
    assert log == "".join(f"line {n}: ***\n" for n in range(1, len(PEM_LINES) + 1))
    for line in PEM_LINES:
        assert line not in done.stdout + done.stderr + console + log
