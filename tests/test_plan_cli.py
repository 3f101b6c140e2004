"""The plan command line as a user runs it: `glmtui --run PLAN`, `plan validate|inspect|schema`,
exit statuses, the JSON event stream, --keep, --workflow and --jobs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import helpers
from plan_helpers import (
    containers,
    json_lines,
    lines_of,
    of,
    remove_run_leftovers,
    run_containers,
    run_volume_exists,
    unique_name,
    write_plan,
)

PROJECT = Path(__file__).resolve().parent.parent
FULL_EXAMPLE = Path(__file__).parent / "plans" / "full-example.yaml"

GOOD_PLAN = """
    version: 1
    name: @NAME@
    inputs:
      who: {type: string, default: world}
    env: {image: glmtui/busybox:latest}
    steps:
      - id: greet
        run: |
          echo "hello, ${inputs.who}"
          echo "oops" >&2
          echo "greeting=hello ${inputs.who}" >> "$GLMTUI_OUTPUT"
      - id: count
        run: ls /bin | wc -l
      - id: report
        needs: [greet, count]
        run: echo "${steps.greet.outputs.greeting}"
    """


def check_event_order(events: list[dict]) -> None:
    """docs/plan-format.md, --json: run_started first, run_finished last, per step started, output, finished."""
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    assert all("event" in e and isinstance(e["ts"], (int, float)) for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    for index, event in enumerate(events):
        step = event.get("step")
        if event["event"] == "output":
            earlier = [e for e in events[:index] if e.get("step") == step]
            assert any(e["event"] == "step_started" for e in earlier), f"output of {step} before step_started"
            assert not any(e["event"] == "step_finished" for e in earlier), f"output of {step} after step_finished"
        if event["event"] == "step_finished" and event["status"] not in ("skipped", "cancelled"):
            assert any(e["event"] == "step_started" and e["step"] == step for e in events[:index])


@pytest.mark.docker
def test_a_good_run_exits_0_with_json_events_in_order(glmtui, busybox_image, tmp_path):
    name = unique_name()
    plan = write_plan(tmp_path, GOOD_PLAN, NAME=name)
    done = glmtui("--run", str(plan), "--json", "--input", "who=cli")
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    check_event_order(events)
    started = events[0]
    assert (started["plan"], started["workflow"]) == (name, "main")
    assert {"run_id", "plan", "workflow"} <= started.keys()
    assert lines_of(events, "greet", "stdout") == ["hello, cli"]
    assert lines_of(events, "greet", "stderr") == ["oops"]
    greet = of(events, "step_finished", step="greet")[0]
    assert {"step", "status", "exit_code", "duration", "outputs", "reason"} <= greet.keys()
    assert (greet["status"], greet["exit_code"], greet["outputs"]) == ("success", 0, {"greeting": "hello cli"})
    assert lines_of(events, "report") == ["hello cli"]
    finished = events[-1]
    assert finished["run_id"] == started["run_id"] and finished["status"] == "success"
    assert isinstance(finished["duration"], (int, float))
    assert run_containers(started["run_id"]) == []


@pytest.mark.docker
def test_plain_output_prefixes_lines_with_the_step(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, GOOD_PLAN, NAME=unique_name())
    done = glmtui("--run", str(plan))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("greet") and line.endswith("| hello, world") for line in lines), done.stdout
    assert any("greet" in line and "success" in line for line in lines)
    assert lines[-1].startswith("run ") and "success" in lines[-1]


@pytest.mark.docker
def test_a_failed_step_exits_1(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: fails
        env: {image: glmtui/busybox:latest}
        steps:
          - id: bad
            run: exit 2
          - id: after
            needs: [bad]
            run: echo no
        """)
    done = glmtui("--run", str(plan), "--json")
    assert done.returncode == 1, done.stderr
    events = json_lines(done.stdout)
    assert of(events, "step_finished", step="bad")[0]["exit_code"] == 2
    assert of(events, "step_finished", step="after")[0]["status"] == "skipped"
    assert events[-1]["status"] == "failure"
    assert "Traceback" not in done.stderr


@pytest.mark.docker
@pytest.mark.parametrize("problem", ["unknown-key", "unknown-input", "missing-secret", "bad-cli-input"])
def test_an_invalid_plan_exits_2_and_creates_nothing(glmtui, busybox_image, tmp_path, problem):
    name = unique_name()
    text = {
        "unknown-key": "steps:\n  - id: a\n    run: echo hi\n    tiemout: 5s\n",
        "unknown-input": "steps:\n  - id: a\n    run: echo ${inputs.nope}\n",
        "missing-secret": "secrets: [GLMTUI_TEST_NEVER_SET]\nsteps:\n  - id: a\n    run: echo hi\n",
        "bad-cli-input": "inputs:\n  n: {type: integer}\nsteps:\n  - id: a\n    run: echo ${inputs.n}\n",
    }[problem]
    plan = write_plan(tmp_path, f"version: 1\nname: {name}\nenv: {{image: glmtui/busybox:latest}}\n" + text)
    args = ["--run", str(plan), "--json"] + (["--input", "n=many"] if problem == "bad-cli-input" else [])
    done = glmtui(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == "", "nothing ran, so no events"
    assert "Traceback" not in done.stderr
    assert "plan.yaml:" in done.stderr or problem == "bad-cli-input"
    assert containers(f"label=glmtui.plan={name}") == []
    runs = json.loads(glmtui("runs", "--json", "--limit", "500").stdout)
    assert not any(r["plan"] == name for r in runs)


def test_an_unreachable_engine_exits_3(glmtui, tmp_path):
    plan = write_plan(tmp_path, GOOD_PLAN, NAME=unique_name())
    done = glmtui("--run", str(plan), env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert done.returncode == 3, (done.stdout, done.stderr)
    line = helpers.one_error_line(done.stderr)
    assert "nonexistent.sock" in line


@pytest.mark.docker
def test_keep_leaves_a_failed_throwaway_environment_and_says_how_to_enter_it(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: keeper
        env: {image: glmtui/busybox:latest}
        steps:
          - id: leave-a-trace
            run: echo evidence > /workspace/trace.txt
          - id: bad
            needs: [leave-a-trace]
            run: exit 1
        """)
    done = glmtui("--run", str(plan), "--keep")
    assert done.returncode == 1, done.stderr
    run_id = done.stdout.split()[1].rstrip(":")
    env = f"run-{run_id}"
    try:
        assert f"glmtui env exec {env}" in done.stdout
        assert len(run_containers(run_id)) == 1
        assert helpers.container_status(env) == "running"
        inside = glmtui("env", "exec", env, "cat", "/workspace/trace.txt")
        assert inside.returncode == 0, inside.stderr
        assert inside.stdout.strip() == "evidence"
    finally:
        remove_run_leftovers(run_id)


@pytest.mark.docker
def test_keep_does_not_keep_a_successful_run(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, GOOD_PLAN, NAME=unique_name())
    done = glmtui("--run", str(plan), "--keep", "--json")
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    run_id = events[0]["run_id"]
    try:
        assert events[-1]["kept_environment"] is None
        assert run_containers(run_id) == [] and not run_volume_exists(run_id)
    finally:
        remove_run_leftovers(run_id)


@pytest.mark.docker
def test_workflow_and_inputs_from_the_command_line(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: choose
        env: {image: glmtui/busybox:latest}
        workflows:
          main:
            default: true
            steps:
              - id: main-step
                run: echo main
          other:
            inputs:
              times: {type: integer, default: 1}
              label: {type: string}
            steps:
              - id: other-step
                run: echo "${inputs.label} x${inputs.times}"
                outputs: {doubled: "${inputs.times}"}
        """)
    done = glmtui("--run", str(plan), "--workflow", "other", "-i", "label=chosen", "--input", "times=4", "--json")
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert events[0]["workflow"] == "other"
    assert [e["step"] for e in of(events, "step_finished")] == ["other-step"]
    assert lines_of(events, "other-step") == ["chosen x4"]
    assert of(events, "step_finished")[0]["outputs"] == {"doubled": 4}
    missing = glmtui("--run", str(plan), "--workflow", "other", "--json")
    assert missing.returncode == 2 and "label" in missing.stderr
    unknown = glmtui("--run", str(plan), "--workflow", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


@pytest.mark.docker
def test_jobs_1_serialises_steps_from_the_command_line(glmtui, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: serial
        env: {image: glmtui/busybox:latest}
        steps:
          - id: one
            run: sleep 1
          - id: two
            run: sleep 1
        """)
    done = glmtui("--run", str(plan), "--json", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    spans = sorted((of(events, "step_started", step=s)[0]["ts"], of(events, "step_finished", step=s)[0]["ts"])
                   for s in ("one", "two"))
    assert max(end for _, end in spans) - spans[0][0] >= 2.0, f"the steps overlapped: {spans}"
    # step_started means the step runs: the second one must not announce itself (and count its
    # duration) while it still waits for the one --jobs slot
    assert spans[1][0] >= spans[0][1] - 0.05, f"the second step started before the first ended: {spans}"
    assert all(e["duration"] < 1.8 for e in of(events, "step_finished")), of(events, "step_finished")


EIGHT_SLEEPS = "version: 1\nname: eight\nenv: {image: glmtui/busybox:latest}\nsteps:\n" + "".join(
    f"  - {{id: s{i}, run: sleep 1}}\n" for i in range(8)
)


@pytest.mark.docker
def test_every_ready_step_starts_at_once_by_default(glmtui, busybox_image, tmp_path):
    """Steps wait on their containers, not on this machine's CPUs: eight independent steps all
    start before any of them ends (the config's `jobs`, 16, not the number of CPUs)."""
    done = glmtui("--run", str(write_plan(tmp_path, EIGHT_SLEEPS)), "--json")
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    starts = sorted(e["ts"] for e in of(events, "step_started"))
    ends = sorted(e["ts"] for e in of(events, "step_finished"))
    assert len(starts) == 8 and starts[-1] < ends[0], f"started {starts}, finished {ends}"


@pytest.mark.docker
def test_the_config_jobs_bounds_the_steps_at_once(glmtui, busybox_image, tmp_path):
    done = glmtui("--run", str(write_plan(tmp_path, EIGHT_SLEEPS)), "--json", env={"GLMTUI_JOBS": "4"})
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    starts = sorted(e["ts"] for e in of(events, "step_started"))
    ends = sorted(e["ts"] for e in of(events, "step_finished"))
    assert starts[3] < ends[0] <= starts[4] + 0.05, f"started {starts}, finished {ends}"


# --- validate, inspect, schema ---------------------------------------------------------------

INSPECT_PLAN = """
    version: 1
    name: inspected
    description: A plan to look at.
    inputs:
      who: {type: string, default: nobody}
    secrets: [INSPECT_TOKEN]
    env: {name: inspected-env, image: glmtui/busybox:latest, network: none}
    steps:
      - id: first
        run: echo "hi ${inputs.who} with ${secrets.INSPECT_TOKEN}"
      - id: second
        needs: [first]
        timeout: 30s
        run: echo "${steps.first.outputs.x}"
      - id: third
        needs: [first]
        write: {path: /tmp/x, content: "${inputs.who}"}
    """


def test_plan_validate_prints_an_ok_line(glmtui, tmp_path):
    plan = write_plan(tmp_path, INSPECT_PLAN)
    done = glmtui("plan", "validate", str(plan), "-e", "INSPECT_TOKEN=s3cr3t-value")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{plan}: valid (plan inspected, workflow main, 3 steps)"
    as_json = glmtui("plan", "validate", str(plan), "--json", "-e", "INSPECT_TOKEN=x")
    none = {"host_paths": [], "network_host": False, "docker_socket": False, "root": False}
    assert json.loads(as_json.stdout) == {"valid": True, "plan": "inspected", "workflow": "main", "steps": 3,
                                          "permissions": none}
    broken = write_plan(tmp_path, INSPECT_PLAN.replace("needs: [first]\n        timeout", "needs: [frist]\n        timeout"),
                        name="broken.yaml")
    bad = glmtui("plan", "validate", str(broken), "-e", "INSPECT_TOKEN=x")
    assert bad.returncode == 2
    assert "broken.yaml:" in bad.stderr and "frist" in bad.stderr and "did you mean" in bad.stderr


def test_plan_inspect_shows_layers_and_filled_in_commands_with_the_secret_masked(glmtui, tmp_path):
    plan = write_plan(tmp_path, INSPECT_PLAN)
    done = glmtui("plan", "inspect", str(plan), "-i", "who=Grace", "-e", "INSPECT_TOKEN=s3cr3t-value")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "s3cr3t-value" not in out
    assert 'echo "hi Grace with ***"' in out
    assert "layer 1" in out and "layer 2" in out
    assert out.index("layer 1") < out.index("first") < out.index("layer 2") < out.index("second")
    assert "${steps.first.outputs.x}" in out  # not known before the run: shown as written
    assert "inspected-env" in out and "network none" in out


def test_plan_inspect_json(glmtui, tmp_path):
    plan = write_plan(tmp_path, INSPECT_PLAN)
    done = glmtui("plan", "inspect", str(plan), "--json", "-e", "INSPECT_TOKEN=s3cr3t-value")
    assert done.returncode == 0, done.stderr
    assert "s3cr3t-value" not in done.stdout
    data = json.loads(done.stdout)
    assert data["plan"] == "inspected" and data["workflow"] == "main"
    assert data["environment"]["name"] == "inspected-env" and data["environment"]["throwaway"] is False
    steps = {s["id"]: s for s in data["steps"]}
    assert (steps["first"]["layer"], steps["second"]["layer"], steps["third"]["layer"]) == (0, 1, 1)
    assert steps["first"]["command"] == 'echo "hi nobody with ***"'
    assert steps["second"]["needs"] == ["first"] and steps["second"]["timeout"] == 30
    assert [i["name"] for i in data["inputs"]] == ["who"]
    assert data["secrets"] == [{"name": "INSPECT_TOKEN", "set": True}]


def test_plan_schema_is_a_json_schema_the_example_plans_satisfy(glmtui):
    done = glmtui("plan", "schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for path in [FULL_EXAMPLE, *sorted((PROJECT / "plans").glob("*.yaml"))]:
        document = yaml.safe_load(path.read_text())
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == [], f"{path}: {errors}"
    document = yaml.safe_load(FULL_EXAMPLE.read_text())
    document["steps"][0]["tiemout"] = "5m"
    assert not validator.is_valid(document), "an unknown step key must not satisfy the schema"


# --- what glmtui reads: regular files only, of a bounded size ---------------------------------

MEMORY_CAP = 2 * 1024**3  # the child's address space: a regression dies of MemoryError, not the host


def glmtui_bounded(*args: str, cwd: Path, timeout: float = 30) -> tuple[int, str, float]:
    """The CLI with capped memory and a deadline: (exit status, stderr, peak memory in MiB).
    A command that hangs is killed at the deadline and the test fails on its status."""
    import os
    import resource
    import subprocess
    import time

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    with open(cwd / "stderr.txt", "w+") as err:
        process = subprocess.Popen(
            helpers.glmtui_argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            env=helpers.child_env(), cwd=cwd, preexec_fn=cap,
        )
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return process.returncode, err.read(), usage.ru_maxrss / 1024


PLAIN_PLAN = "version: 1\nname: plain\nsteps:\n  - {id: a, run: echo}\n"


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "sparse"])
@pytest.mark.parametrize("given_as", ["plan", "--input-file", "--env-file", ".env"])
def test_only_regular_files_of_a_bounded_size_are_read(tmp_path, special, given_as):
    import os

    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAIN_PLAN)
    target = tmp_path / (".env" if given_as == ".env" else "given")
    if special == "/dev/zero":
        target.symlink_to("/dev/zero")
    elif special == "fifo":
        os.mkfifo(target)  # nobody writes to it: opening it for reading would wait for ever
    else:
        with target.open("wb") as sparse:
            sparse.truncate(8 * 1024**3)
    args = {
        "plan": [str(target)],
        "--input-file": [str(plan), "--input-file", str(target)],
        "--env-file": [str(plan), "--env-file", str(target)],
        ".env": [str(plan)],
    }[given_as]
    status, stderr, peak_mib = glmtui_bounded("plan", "validate", *args, cwd=tmp_path)
    assert status == 2, stderr
    line = helpers.one_error_line(stderr)
    assert line.startswith(f"glmtui: error: {target}:1:1: "), line
    what = {"/dev/zero": "is a device;", "fifo": "is a FIFO (a named pipe);", "sparse": "over the size limit"}[special]
    assert what in line
    assert peak_mib < 300, f"{peak_mib:.0f} MiB to refuse a file"


@pytest.mark.parametrize("target", ["[a]", "{}", "[[a], {b: 1}]"])
def test_a_workflow_step_naming_a_list_or_a_mapping_is_a_located_error(glmtui, tmp_path, target):
    plan = write_plan(tmp_path, f"version: 1\nname: calls\nsteps:\n  - id: x\n    workflow: {target}\n")
    done = glmtui("plan", "validate", str(plan))
    assert done.returncode == 2, done.stderr
    line = helpers.one_error_line(done.stderr)
    assert line.startswith(f"glmtui: error: {plan}:5:15: workflow must be a string, not "), line


@pytest.mark.docker  # it checks that nothing was created
@pytest.mark.parametrize(("command", "flag", "pair"), [
    (["plan", "validate", "PLAN"], "-e", "A-B=1"),
    (["plan", "run", "PLAN"], "--env", "1A=x"),
    (["env", "create", "NAME"], "--env", "A B=1"),
    (["env", "exec", "FLAG", "NAME", "true"], "-e", "A.B=1"),
])
def test_variables_from_the_command_line_have_variable_names(glmtui, tmp_path, command, flag, pair):
    plan = write_plan(tmp_path, PLAIN_PLAN)
    name = unique_name()
    args = [str(plan) if arg == "PLAN" else name if arg == "NAME" else arg for arg in command if arg != "FLAG"]
    at = command.index("FLAG") if "FLAG" in command else len(args)
    args[at:at] = [flag, pair]
    done = glmtui(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    key = pair.split("=")[0]
    named = "-e" if command[0] == "plan" else "--env"
    expected = f"glmtui: error: {named} {key}=...: {key!r} is not a variable name (letters, digits and _, not starting with a digit)"
    assert helpers.one_error_line(done.stderr) == expected
    assert containers(f"name=^/glmtui-{name}$") == []


JSON_INPUTS_PLAN = """
    version: 1
    name: json-inputs
    inputs:
      topic: {type: string}
      count: {type: integer, default: 1}
      names: {type: list, default: []}
    steps:
      - id: a
        run: echo "${inputs.topic} ${inputs.count} ${inputs.names}"
    """


def test_inputs_as_a_json_object_beside_key_value_pairs(glmtui, tmp_path):
    plan = write_plan(tmp_path, JSON_INPUTS_PLAN)
    done = glmtui("plan", "inspect", str(plan), "--json", "--input", '{"topic": "x", "count": 3, "names": ["a", "b"]}',
                  "-i", "count=4")
    assert done.returncode == 0, done.stderr
    values = {item["name"]: item["value"] for item in json.loads(done.stdout)["inputs"]}
    assert values == {"topic": "x", "count": 4, "names": ["a", "b"]}, "JSON values keep their types; a later -i wins"


@pytest.mark.parametrize(("given", "expected"), [
    ('{"topic": x}', "glmtui: error: --input '{\"topic\": x}' is not a JSON object: Expecting value: line 1 column 11 "
                     "(char 10) (--input KEY=VALUE, or --input '{\"KEY\": VALUE}')"),
    ('{"count": "many", "topic": "x"}', "input 'count' must be an integer, not 'many'"),
    ('{"topic": "x", "cuont": 2}', "--input cuont: the plan has no input 'cuont' (did you mean 'count'?)"),
])
def test_a_bad_json_object_of_inputs_is_one_line_and_exit_2(glmtui, tmp_path, given, expected):
    plan = write_plan(tmp_path, JSON_INPUTS_PLAN)
    done = glmtui("plan", "validate", str(plan), "--input", given)
    assert done.returncode == 2, done.stdout
    assert expected in helpers.one_error_line(done.stderr)
