"""Agent files: every kind of problem is reported as FILE:LINE:COL with did-you-mean, all at
once, by `glmtui agents validate` and `apply` (exit 2, nothing saved); the shipped JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

from agent_helpers import Cli, write_agent

CONFIG = """
default_provider: test
providers: {test: {base_url: "http://127.0.0.1:9/v1", api_key_env: TEST_MODEL_KEY, model: m}}
"""


def cli_in(folder: Path, config: str = CONFIG) -> Cli:
    (folder / ".glmtui").mkdir(parents=True, exist_ok=True)
    (folder / ".glmtui" / "config.yaml").write_text(config)
    return Cli(folder, "sk-unused")


def errors_of(cli: Cli, path: Path) -> list[str]:
    result = cli("agents", "validate", str(path))
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("glmtui: error: ")
    lines[0] = lines[0].removeprefix("glmtui: error: ")
    prefix = f"{path}:"
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def test_every_problem_of_a_file_with_its_place_and_a_close_name(tmp_path):
    cli = cli_in(tmp_path)
    path = write_agent(tmp_path, """
        version: 1
        name: Nightly_Tests
        descripton: Run the tests
        prompt: "Fix ${inputs.target}"
        env:
          image: glmtui/workspace:latest
          network: brige
          resources: {memory: lots}
        provider: tset
        max_turns: 0
        budget: {tokens: many}
        approval: sometimes
        approval_rules: [{tool: bash, pattern: "rm *", mode: refuse}]
        driver: claude
        schedule: "0 8 * * mno"
        timezone: Europe/Berln
        catch_up: twice
        timeout: soon
    """)
    rule = "lowercase letters, digits, '.', '_' and '-', starting with a letter or a digit, at most 63 characters"
    assert errors_of(cli, path) == [
        f"2:7: name 'Nightly_Tests' is not valid: use {rule}",
        "3:1: unknown key 'descripton' (did you mean 'description'?)",
        "4:9: unknown input 'target' in ${inputs.target}",
        "7:12: network must be one of bridge, none, host, not 'brige' (did you mean 'bridge'?)",
        "8:23: memory: 'lots' is not a size (use e.g. 512m or 2g)",
        "9:11: unknown provider 'tset' (did you mean 'test'?) (known: ollama, openai, test, vllm, zai, zai-coding; "
        "add one with `glmtui config set providers.tset.base_url URL`)",
        "10:12: max_turns must be at least 1, not 0",
        "11:18: budget.tokens must be a whole number, not a string",
        "12:11: approval must be one of auto, ask, deny, not 'sometimes'",
        "13:54: approval_rules[0].mode must be one of auto, ask, deny, not 'refuse'",
        "14:9: driver must be builtin or {command: [PROGRAM, ARGS...]}, not 'claude'",
        "15:11: schedule '0 8 * * mno': bad day-of-week (cron fields: minute hour day month weekday)",
        "16:11: unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?) (an IANA name such as Europe/Berlin or UTC)",
        "17:11: catch_up must be one of once, skip, not 'twice'",
        "18:10: timeout: 'soon' is not a duration (use e.g. 30s, 10m or 1h)",
    ]
    assert cli("agents", "apply", str(path)).returncode == 2
    assert cli("agents", "list").stdout.startswith("no saved agents yet"), "nothing was saved"


def test_version_env_name_driver_and_schedule_forms(tmp_path):
    cli = cli_in(tmp_path)
    path = write_agent(tmp_path, """
        version: 2
        name: nightly
        prompt: Run the tests.
        env: "Not A Name"
        driver: {command: [], program: claude}
        schedule: "@dialy"
        approval: deny
    """)
    assert errors_of(cli, path) == [
        "1:10: unsupported agent file version 2 (this glmtui reads version 1)",
        "4:6: env 'Not A Name' is not an environment name (lowercase letters, digits, '.', '_' and '-', starting with "
        "a letter or a digit, at most 63 characters); or give an env block such as {image: glmtui/workspace:latest}",
        "5:19: command must be the program and its arguments: a list of words, or one string",
        "5:23: unknown key 'program'; a driver has only command",
        "6:11: schedule '@dialy' is not one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually "
        "(did you mean '@daily'?)",
    ]
    missing = write_agent(tmp_path, "version: 1\nname: x\n", "missing.yaml")
    assert errors_of(cli, missing) == ["1:1: the agent is missing the key 'prompt'"]
    broken = write_agent(tmp_path, "version: 1\nname: [x\n", "broken.yaml")
    assert errors_of(cli, broken)[0].startswith("3:1: not valid YAML")


def test_a_command_driver_has_no_builtin_keys(tmp_path):
    cli = cli_in(tmp_path)
    path = write_agent(tmp_path, """
        version: 1
        name: claude-nightly
        prompt: Run the tests.
        driver: {command: [claude, -p]}
        budget: {tokens: 10}
        max_turns: 3
        approval_rules: [{tool: bash, mode: deny}]
    """)
    assert errors_of(cli, path) == [
        "5:1: budget is for the builtin driver; a driver command runs its own agent program",
        "6:1: max_turns is for the builtin driver; driver 'claude' runs its own agent program",
        "7:1: approval_rules is for the builtin driver; a driver command runs its own agent program",
    ]


def test_an_agent_that_would_ask_cannot_have_a_schedule(tmp_path):
    cli = cli_in(tmp_path)
    remedy = "or remove schedule and run it by hand (glmtui agents run nightly --yes)"
    cannot = "so agent nightly cannot have a schedule (nobody is there to answer)"
    rule = write_agent(tmp_path, """
        version: 1
        name: nightly
        prompt: Run the tests.
        approval: auto
        approval_rules:
          - {tool: bash, pattern: "pytest *", mode: auto}
          - {tool: bash, pattern: "git push *", mode: ask}
        schedule: "@daily"
    """, "rule.yaml")
    assert errors_of(cli, rule) == [
        f"7:5: the approval rule {{tool: bash, pattern: 'git push *', mode: ask}} asks a person, {cannot}: "
        f"make it auto or deny, {remedy}"]
    asks = write_agent(tmp_path, "version: 1\nname: nightly\nprompt: x\napproval: ask\nschedule: every 10m\n", "asks.yaml")
    assert errors_of(cli, asks) == [
        f"4:11: approval: ask asks a person before each tool call that changes things, {cannot}: set approval to "
        f"auto or deny, {remedy}"]
    default = write_agent(tmp_path, "version: 1\nname: nightly\nprompt: x\nschedule: every 10m\n", "default.yaml")
    assert errors_of(cli, default) == [
        f"4:11: the file sets no approval and the config's approval is ask, {cannot}: set approval: auto or deny, "
        f"{remedy}"]
    cli_in(tmp_path, CONFIG + "approval: auto\napproval_rules: [{tool: write_file, mode: ask}]\n")
    assert errors_of(cli, default) == [
        f"4:11: the config's approval rule {{tool: write_file, mode: ask}} asks a person, {cannot}: change that "
        f"rule (glmtui config get approval_rules), {remedy}"]
    by_hand = write_agent(tmp_path, "version: 1\nname: nightly\nprompt: x\napproval: ask\n", "by-hand.yaml")
    assert cli("agents", "validate", str(by_hand)).returncode == 0, "without a schedule it may ask (run by hand)"


def test_the_schema_is_shipped_and_its_env_block_is_the_plans(tmp_path):
    from jsonschema import Draft202012Validator

    cli = cli_in(tmp_path)
    result = cli("agents", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    plan = json.loads(cli("plan", "schema").stdout)
    for name in ("env", "mount", "bind", "memory", "variables", "variable", "scalar", "name", "duration"):
        assert schema["$defs"][name] == plan["$defs"][name], f"$defs.{name} differs from the plan schema's"
    example = write_agent(tmp_path, """
        version: 1
        name: nightly-tests
        description: Run the tests and fix what broke
        prompt: |
          Run the test suite in /workspace. If anything fails, fix it and run it again.
        env: {name: nightly, image: glmtui/workspace:latest}
        provider: test
        model: glm-4.6
        max_turns: 30
        budget: {tokens: 200000}
        approval: auto
        approval_rules: [{tool: bash, pattern: "rm *", mode: deny}]
        driver: builtin
        schedule: "0 8 * * mon"
        timezone: Europe/Berlin
        catch_up: once
    """)
    import yaml

    assert list(Draft202012Validator(schema).iter_errors(yaml.safe_load(example.read_text()))) == []
    checked = cli("agents", "validate", str(example))
    assert checked.returncode == 0 and checked.stdout.strip() == f"{example}: valid (agent nightly-tests)"


def test_list_pause_resume_and_remove_by_name(tmp_path):
    cli = cli_in(tmp_path)
    path = write_agent(tmp_path, """
        version: 1
        name: weekly-report
        prompt: Write the weekly report.
        approval: auto
        schedule: "0 8 * * mon"
        timezone: Europe/Berlin
    """)
    assert cli("agents", "apply", str(path)).returncode == 0
    [listed] = json.loads(cli("agents", "list", "--json").stdout)
    assert listed["status"] == "active" and listed["schedule_words"] == "At 08:00 on Monday (Europe/Berlin)"
    assert listed["next_run"] > 0 and listed["last_execution"] is None
    assert listed["totals"]["all time"] == {"executions": 0, "input_tokens": 0, "output_tokens": 0}
    table = cli("agents", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "SCHEDULE", "NEXT", "RUN", "LAST", "TOKENS"]
    assert table[1].startswith("weekly-report  active  At 08:00 on Monday (Europe/Berlin)  ")
    assert table[-1] == "schedules are not being run: start `glmtui serve` (or `glmtui serve --install-user-unit`)"
    shown = cli("agents", "show", "weekly-report").stdout
    assert "next runs        " in shown and shown.count(" 08:00:00+0") == 3, "in the agent's time zone"
    assert [cli("agents", "pause", "weekly-report").stdout, cli("agents", "pause", "weekly-report").stdout] == [
        "weekly-report: paused\n", "weekly-report: already paused\n"]
    assert json.loads(cli("agents", "list", "--json").stdout)[0]["next_run"] is None
    assert "weekly-report  paused" in cli("agents", "list").stdout
    assert cli("agents", "resume", "weekly-report").stdout == "weekly-report: resumed\n"
    missing = cli("agents", "show", "weekly-reprot")
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("glmtui: error: no agent 'weekly-reprot' (did you mean 'weekly-report'?) "
                                      "(`glmtui agents list` lists them)")
    assert cli("agents", "remove", "weekly-report").stdout == "weekly-report: removed, with 0 execution records\n"
    assert cli("agents", "list").stdout.startswith("no saved agents yet")
