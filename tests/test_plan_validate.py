"""Plan validation: every bad input is one located line; a good plan is a model the runner can use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtui.errors import BadInput
from glmtui.plan.graph import find_cycle, layers
from glmtui.plan.model import LoadedPlan, Location, PlanError, PlanInvalid, Retry, Step
from glmtui.plan.permissions import resolve
from glmtui.plan.validate import load_plan, schema_text
from glmtui.plan.values import coerce, parse_dotenv

PLANS = Path(__file__).parent / "plans"
BAD = PLANS / "bad"
FULL = PLANS / "full-example.yaml"
SECRETS = {"ZAI_API_KEY": "sk-test"}


def errors_of(paths: list[Path], **options: Any) -> list[str]:
    options.setdefault("environ", {})
    with pytest.raises(PlanInvalid) as caught:
        load_plan(paths, **options)
    assert str(caught.value) == "\n".join(str(error) for error in caught.value.errors)
    return [str(error) for error in caught.value.errors]


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- every bad input: one clear located line -------------------------------------------------

BAD_PLANS = {
    "not-yaml": "7:1: not valid YAML: found unexpected end of stream (while scanning a quoted scalar at line 5)",
    "not-mapping": "1:1: a plan is a YAML mapping (key: value lines), but this file is a list",
    "version-2": "1:10: unsupported plan version 2 (this glmtui reads version 1)",
    "two-kinds": "6:5: step 'a' has two kinds, run and agent; a step has exactly one of run, write, copy, http, use, workflow, llm, agent",
    "no-kind": "4:5: step 'a' has no kind: give it one of run, write, copy, http, use, workflow, llm, agent",
    "duplicate-id": "6:9: duplicate step id 'a' (first at line 4)",
    "cycle": "4:5: steps wait for each other in a cycle: a -> c -> b -> a",
    "needs-missing": "7:13: step 'test' needs 'instal', which is not a step of this plan (did you mean 'install'?)",
    "unknown-step-ref": "7:10: unknown step 'nope' in ${steps.nope.stdout}",
    "unknown-input": "7:10: unknown input 'x' in ${inputs.x}",
    "bad-expression": "7:9: expression '${steps.a.exit_code ==}' does not parse: expected a value after '=='",
    "timeout-soon": "6:14: timeout: 'soon' is not a duration (use e.g. 30s, 10m or 1h)",
    "unknown-key": "7:5: unknown key 'neeeds' (did you mean 'needs'?)",
    "memory-lots": "4:23: memory: 'lots' is not a size (use e.g. 512m or 2g)",
    "docker-socket": "5:7: mount '/var/run/docker.sock:/var/run/docker.sock' reaches the Docker socket /run/docker.sock (control of the host) and is writable and env has no user: the image's user, often root, would write there, which can leave files of root, setuid ones too, on the host: declare it at the plan's top level with permissions: {docker_socket: true, root: true} (and run it with --allow)",
}


@pytest.mark.parametrize("name", sorted(BAD_PLANS))
def test_a_bad_plan_is_one_located_line(name: str) -> None:
    path = BAD / f"{name}.yaml"
    assert errors_of([path]) == [f"{path}:{BAD_PLANS[name]}"]


def test_plan_invalid_is_bad_input_with_exit_status_2() -> None:
    with pytest.raises(BadInput) as caught:
        load_plan([BAD / "cycle.yaml"], environ={})
    assert caught.value.exit_code == 2
    assert PlanError(Path("p.yaml"), 3, 7, "oops").__str__() == "p.yaml:3:7: oops"


def test_an_unreadable_file(tmp_path: Path) -> None:
    assert errors_of([tmp_path / "gone.yaml"]) == [f"{tmp_path / 'gone.yaml'}:1:1: no such file"]


def test_a_plan_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\n" + "#" * (10 * 1024 * 1024))
    assert errors_of([path]) == [f"{path}:1:1: the file is over the size limit of plan files (10 MiB)"]


def test_a_yaml_bomb() -> None:
    [line] = errors_of([BAD / "bomb.yaml"])
    assert line.startswith(f"{BAD / 'bomb.yaml'}:8:8: ") and "100000 nodes" in line


def test_an_input_of_the_wrong_type_from_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nname: t\ninputs:\n  count: {type: integer}\nsteps:\n  - {id: a, run: 'echo ${inputs.count}'}\n")
    assert errors_of([path], inputs={"count": "many"}) == [
        f"{path}:4:3: --input count: input 'count' must be an integer, not 'many'"
    ]


def test_a_missing_required_secret() -> None:
    assert errors_of([FULL]) == [
        f"{FULL}:15:5: secret ZAI_API_KEY is not set (set it in the environment or in .env beside the plan)"
    ]
    plan = load_plan([FULL], environ={}, check_secrets=False)
    assert plan.secrets == {}


def test_all_errors_at_once() -> None:
    path = BAD / "three-errors.yaml"
    assert errors_of([path]) == [
        f"{path}:5:10: unknown input 'missing' in ${{inputs.missing}}",
        f"{path}:6:14: timeout: 'soon' is not a duration (use e.g. 30s, 10m or 1h)",
        f"{path}:8:13: step 'b' needs 'zz', which is not a step of this plan",
    ]


def test_schema_errors_and_model_errors_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """version: 1
name: Bad Name
env:
  network: brige
  image: x
  build: .
steps:
  - id: a
    run: echo
    retry: {attempts: -1}
    continue_on_error: "yes"
  - id: b
    llm: {prompt: hi, temperature: 3}
    needs: a
""",
    )
    assert errors_of([path]) == [
        f"{path}:2:7: name 'Bad Name' is not valid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or a digit",
        f"{path}:4:3: env has both image and build: use one",
        f"{path}:4:12: network must be one of bridge, none, host, not 'brige' (did you mean 'bridge'?)",
        f"{path}:10:23: attempts must be at least 0, not -1",
        f"{path}:11:24: continue_on_error must be true or false, not a string",
        f"{path}:13:36: temperature must be at most 2, not 3",
    ]


# --- the whole example of docs/plan-format.md ------------------------------------------------


def test_the_full_example_loads() -> None:
    loaded = load_plan([FULL], environ=SECRETS)
    plan = loaded.plan
    assert isinstance(loaded, LoadedPlan)
    assert (plan.name, plan.version, plan.file, plan.dir) == ("fix-tests", 1, FULL, PLANS.resolve())
    assert plan.description == "Run the tests; if they fail, let the agent fix them."
    assert loaded.inputs == {"path": "tests/", "verbose": False}
    assert loaded.secrets == SECRETS
    assert loaded.env["ZAI_API_KEY"] == "sk-test"
    assert plan.inputs["verbose"].type == "boolean" and not plan.inputs["verbose"].required
    assert plan.env.name == "fix-tests" and plan.env.image == "glmtui/workspace:latest"
    assert plan.env.resources.memory == 1024**3 and plan.env.resources.cpus == 2 and plan.env.resources.pids == 512
    assert [(c.host, c.container) for c in plan.env.copy] == [("./project", "/workspace")]
    assert resolve(plan.dir, "./project") == PLANS.resolve() / "project"

    workflow = loaded.workflow
    assert workflow.name == plan.default_workflow == "main"
    install, test, fix, report = workflow.steps
    assert install.timeout == 600 and install.retry == Retry(3, 2.0, "exponential")
    assert install.retry.delay_before(3) == 8
    assert (test.kind, test.spec, test.component) == ("run", "python -m pytest -q ${with.path}", "pytest")
    assert test.with_ == {"path": "${inputs.path}"} and test.continue_on_error
    assert fix.needs == ("test",)  # implicit, from ${steps.test...}
    assert fix.condition == "${steps.test.exit_code != 0}"
    assert fix.kind == "agent" and fix.spec["max_turns"] == 30
    assert report.needs == ("fix", "test")
    assert report.condition == "always()"
    assert report.location == Location(FULL, 56, 5)
    assert [[step.id for step in layer] for layer in layers(workflow.steps)] == [["install"], ["test"], ["fix"], ["report"]]


def test_the_schema_is_valid_and_describes_itself() -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] and schema["title"]
    example = yaml.safe_load(FULL.read_text())
    assert list(Draft202012Validator(schema).iter_errors(example)) == []
    two_kinds = yaml.safe_load((BAD / "two-kinds.yaml").read_text())
    assert not Draft202012Validator(schema).is_valid(two_kinds)


# --- components ------------------------------------------------------------------------------

COMPONENTS = """version: 1
name: comps
components:
  greet:
    with:
      who: {}
      loud: {default: false}
    run: echo ${with.who}
    timeout: 5s
    environment: {A: "1", B: "2"}
    outputs: {said: "${step.stdout}"}
steps:
"""


def test_a_step_overrides_its_component(tmp_path: Path) -> None:
    path = write(tmp_path, COMPONENTS + "  - id: a\n    use: greet\n    with: {who: world}\n    timeout: 1m\n    environment: {B: '3'}\n")
    [step] = load_plan([path], environ={}).workflow.steps
    assert (step.kind, step.spec, step.component) == ("run", "echo ${with.who}", "greet")
    assert step.with_ == {"who": "world", "loud": False}
    assert step.timeout == 60
    assert step.environment == {"A": "1", "B": "3"}
    assert step.outputs == {"said": "${step.stdout}"}


def test_component_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        COMPONENTS.replace("echo ${with.who}", "echo ${with.whom} ${inputs.zz}")
        + "  - {id: a, use: greet, with: {who: x, extra: 1}}\n  - {id: b, use: gret}\n  - {id: c, run: 'echo ${with.who}'}\n",
    )
    assert errors_of([path]) == [
        f"{path}:8:10: unknown parameter 'whom' of component 'greet' in ${{with.whom}} (did you mean 'who'?)",
        f"{path}:8:10: unknown input 'zz' in ${{inputs.zz}} (in step 'a', which uses component 'greet')",
        f"{path}:13:40: component 'greet' has no parameter 'extra'",
        f"{path}:14:18: unknown component 'gret' (did you mean 'greet'?)",
        f"{path}:15:18: ${{with.who}} is only available inside a component",
    ]


def test_a_missing_required_parameter(tmp_path: Path) -> None:
    path = write(tmp_path, COMPONENTS + "  - {id: a, use: greet}\n")
    assert errors_of([path]) == [f"{path}:13:18: step 'a' does not give parameter 'who', which component 'greet' requires"]


# --- expressions and where they may stand -----------------------------------------------------


def test_references_that_are_out_of_place(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """version: 1
name: places
env:
  environment: {X: "${steps.a.stdout}"}
steps:
  - id: a
    run: echo ${step.stdout} ${response.status} ${plan.nme}
    outputs: {ok: "${step.outputs.x}", bad: "${response.text}"}
  - id: b
    http: {url: "https://example.com"}
    outputs: {code: "${response.status}", typo: "${steps.a.exitcode}"}
  - id: c
    run: echo ${steps.c.stdout} ${secrets.NOPE}
""",
    )
    assert errors_of([path]) == [
        f"{path}:4:20: ${{steps.a.stdout}} is only available in steps",
        f"{path}:7:10: ${{step.stdout}} is only available inside a step's outputs",
        f"{path}:7:10: ${{response.status}} is only available in the outputs of an http step",
        f"{path}:7:10: the plan has no 'nme' in ${{plan.nme}} (did you mean 'name'?)",
        f"{path}:8:45: ${{response.text}} is only available in the outputs of an http step",
        f"{path}:11:49: a step has no 'exitcode' in ${{steps.a.exitcode}} (did you mean 'exit_code'?)",
        f"{path}:13:10: step 'c' refers to its own result in ${{steps.c.stdout}}; inside outputs use ${{step...}}",
        f"{path}:13:10: unknown secret 'NOPE' in ${{secrets.NOPE}}: declare it under secrets",
    ]


def test_a_reference_back_to_a_dependant_is_a_cycle(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nname: c\nsteps:\n  - {id: a, run: 'echo ${steps.b.stdout}'}\n  - {id: b, needs: [a], run: echo}\n",
    )
    assert errors_of([path]) == [f"{path}:4:5: steps wait for each other in a cycle: a -> b -> a"]


KEEP_RUNNING = """version: 1
name: k
steps:
  - id: a
    write: {path: /x, content: y}
    keep_running: true
  - id: b
    run: httpd -p 8080
    keep_running: true
"""


def test_shared_is_for_a_named_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nname: s\nenv: {image: glmtui/busybox:latest, shared: true}\n"
                           "steps:\n  - {id: a, run: 'true'}\n")
    assert errors_of([path]) == [
        f"{path}:3:37: shared is for a named environment (env.name); a throw-away one is its run's own"]
    named = write(tmp_path, "version: 1\nname: s\nenv: {name: box, shared: true}\nsteps:\n  - {id: a, run: 'true'}\n",
                  "named.yaml")
    assert load_plan([named], environ={}).plan.env.shared


def test_keep_running_is_only_for_run_steps(tmp_path: Path) -> None:
    path = write(tmp_path, KEEP_RUNNING)
    assert errors_of([path]) == [f"{path}:6:5: keep_running is only for run steps"]
    valid = write(tmp_path, KEEP_RUNNING.replace("    keep_running: true\n  - id: b", "  - id: b"), "valid.yaml")
    assert [step.keep_running for step in load_plan([valid], environ={}).workflow.steps] == [False, True]


def test_shell_words_and_escapes_are_not_expressions(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nname: s\nsteps:\n  - {id: a, run: 'echo ${HOME} $${inputs.x} ${1}'}\n")
    assert load_plan([path], environ={}).workflow.steps[0].needs == ()


# --- inputs, secrets and the environment view --------------------------------------------------

INPUTS = """version: 1
name: typed
inputs:
  count: {type: integer}
  ratio: {type: number, default: 0.5}
  dry: {type: boolean, default: false}
  names: {type: list, default: []}
  extra: {type: object, required: false}
steps:
  - {id: a, run: 'echo ${inputs.count}'}
"""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"count": "3"}, {"count": 3, "ratio": 0.5, "dry": False, "names": [], "extra": None}),
        ({"count": "-1", "ratio": "2", "dry": "yes"}, {"count": -1, "ratio": 2, "dry": True}),
        ({"count": "0", "dry": "0", "names": '["a", "b"]'}, {"dry": False, "names": ["a", "b"]}),
        ({"count": "1", "names": "[a, b]", "extra": "{k: 1}"}, {"names": ["a", "b"], "extra": {"k": 1}}),
        ({"count": "1", "extra": '{"k": [1]}', "dry": "TRUE"}, {"extra": {"k": [1]}, "dry": True}),
    ],
)
def test_inputs_from_the_command_line_get_their_types(tmp_path: Path, given: dict, expected: dict) -> None:
    values = load_plan([write(tmp_path, INPUTS)], environ={}, inputs=given).inputs
    assert {key: values[key] for key in expected} == expected


def test_input_errors(tmp_path: Path) -> None:
    path = write(tmp_path, INPUTS)
    assert errors_of([path], inputs={"ratio": "half", "dry": "maybe", "names": "a", "extra": "[1]", "cuont": "1"}) == [
        f"{path}:3:1: --input cuont: the plan has no input 'cuont' (did you mean 'count'?)",
        f"{path}:4:3: input 'count' is required: give it with --input count=VALUE",
        f"{path}:5:3: --input ratio: input 'ratio' must be a number, not 'half'",
        f"{path}:6:3: --input dry: input 'dry' must be a boolean (true/false, yes/no, 1/0), not 'maybe'",
        f"{path}:7:3: --input names: input 'names' must be a list (JSON or YAML, e.g. [a, b]), not 'a'",
        f"{path}:8:3: --input extra: input 'extra' must be an object (JSON or YAML, e.g. {{a: 1}}), not '[1]'",
    ]


def test_an_input_file_is_located_too(tmp_path: Path) -> None:
    path = write(tmp_path, INPUTS)
    good = write(tmp_path, "count: 4\nnames: [x]\n", "good.yaml")
    assert load_plan([path], environ={}, input_file=good, inputs={"count": "5"}).inputs["count"] == 5
    assert load_plan([path], environ={}, input_file=good).inputs["names"] == ["x"]
    bad = write(tmp_path, "count: four\nnope: 1\n", "bad.yaml")
    assert errors_of([path], input_file=bad) == [
        f"{bad}:1:8: input 'count' must be an integer, not 'four'",
        f"{bad}:2:1: the plan has no input 'nope'",
    ]


def test_a_default_of_the_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nname: d\ninputs:\n  n: {type: integer, default: lots}\nsteps:\n  - {id: a, run: x}\n")
    assert errors_of([path]) == [f"{path}:4:31: the default of input 'n' must be an integer, not 'lots'"]


def test_where_secrets_come_from(tmp_path: Path) -> None:
    plan = write(tmp_path, "version: 1\nname: s\nsecrets: [A, B, C, D]\nsteps:\n  - {id: a, run: 'echo ${secrets.A} ${env.E}'}\n")
    write(tmp_path, "A=dotenv\nB=dotenv\nC=dotenv\nD=dotenv\nE=from-dotenv\n", ".env")
    env_file = write(tmp_path, "A=file\nB=file\nC=file\n", "extra.env")
    loaded = load_plan([plan], env_files=[env_file], environ={"A": "environ", "B": "environ"}, extra_env={"A": "flag"})
    assert loaded.secrets == {"A": "flag", "B": "environ", "C": "file", "D": "dotenv"}
    assert loaded.env["E"] == "from-dotenv"
    assert errors_of([plan], env_files=[tmp_path / "missing.env"]) == [
        f"{tmp_path / 'missing.env'}:1:1: no such file"
    ]


def test_an_empty_secret_is_not_set(tmp_path: Path) -> None:
    plan = write(tmp_path, "version: 1\nname: s\nsecrets: [TOKEN]\nsteps:\n  - {id: a, run: x}\n")
    assert errors_of([plan], environ={"TOKEN": ""}) == [
        f"{plan}:3:11: secret TOKEN is not set (set it in the environment or in .env beside the plan)"
    ]


def test_dotenv_parsing(tmp_path: Path) -> None:
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=value # trailing comment\n"
        "export EXPORTED = spaced \n"
        "EMPTY=\n"
        "HASH=a#b\n"
        "SINGLE='keep $HOME \\n as is'\n"
        'DOUBLE="line\\nnext \\"q\\""  # comment\n'
        'MULTI="first\n'
        'second"\n'
        "AFTER=1\n"
    )
    assert parse_dotenv(text, tmp_path / ".env") == {
        "PLAIN": "value",
        "EXPORTED": "spaced",
        "EMPTY": "",
        "HASH": "a#b",
        "SINGLE": "keep $HOME \\n as is",
        "DOUBLE": 'line\nnext "q"',
        "MULTI": "first\nsecond",
        "AFTER": "1",
    }


def test_dotenv_errors_name_their_lines(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    with pytest.raises(PlanInvalid) as caught:
        parse_dotenv("OK=1\nnot a line\n  X='open\n", env)
    assert str(caught.value) == f"{env}:2:1: expected '=' after not\n{env}:3:3: the value's ' is not closed"


def test_coerce_typed_values() -> None:
    here = Location(Path("f"), 1, 1)
    assert coerce(3.0, "integer", where=here) == 3
    assert coerce(7, "string", where=here) == "7"
    with pytest.raises(ValueError, match="must be an integer, not a boolean"):
        coerce(True, "integer", where=here)
    with pytest.raises(ValueError, match="must be a number"):
        coerce("nan", "number", where=here)


# --- workflows --------------------------------------------------------------------------------

WORKFLOWS = PLANS / "workflows.yaml"


def test_workflows_choose_the_default_or_the_named_one() -> None:
    loaded = load_plan([WORKFLOWS], environ={})
    assert loaded.workflow.name == "build" and loaded.inputs == {"target": "prod", "jobs": 2}
    release = load_plan([WORKFLOWS], environ={}, workflow="release", inputs={"tag": "v1"})
    build, push = release.workflow.steps
    assert (build.kind, build.spec, build.with_) == ("workflow", "build", {"jobs": 4})
    assert push.needs == ("build",)
    assert release.inputs == {"target": "prod", "tag": "v1"}


def test_workflow_errors() -> None:
    assert errors_of([WORKFLOWS], workflow="relase") == [
        f"{WORKFLOWS}:5:1: --workflow relase: unknown workflow (did you mean 'release'?); the workflows are build, release"
    ]
    assert errors_of([WORKFLOWS], workflow="release") == [
        f"{WORKFLOWS}:15:7: input 'tag' is required: give it with --input tag=VALUE"
    ]


def test_no_default_workflow_among_several(tmp_path: Path) -> None:
    path = write(tmp_path, WORKFLOWS.read_text().replace("    default: true\n", ""))
    assert errors_of([path]) == [
        f"{path}:5:1: this plan has several workflows (build, release): choose one with --workflow NAME, or mark one default: true"
    ]
    several = write(tmp_path, WORKFLOWS.read_text().replace("  release:\n", "  release:\n    default: true\n"), "b.yaml")
    assert errors_of([several], workflow="build") == [
        f"{several}:14:14: several workflows are marked default: true (build, release); mark one"
    ]


def test_workflow_steps_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """version: 1
name: calls
workflows:
  a:
    default: true
    steps:
      - {id: x, workflow: b, with: {nope: 1}}
      - {id: y, workflow: c}
  b:
    inputs:
      need: {}
    steps:
      - {id: z, workflow: a, with: {}}
""",
    )
    assert errors_of([path]) == [
        f"{path}:7:9: workflows call each other in a cycle: a -> b -> a",
        f"{path}:7:27: workflow 'b' needs input 'need': give it under with:",
        f"{path}:7:37: workflow 'b' has no input 'nope'",
        f"{path}:8:27: unknown workflow 'c'",
    ]


def test_a_single_steps_plan_is_workflow_main(tmp_path: Path) -> None:
    assert load_plan([FULL], environ=SECRETS, workflow="main").workflow.name == "main"
    assert errors_of([FULL], environ=SECRETS, workflow="other") == [
        f"{FULL}:34:1: --workflow other: this plan has no workflows, only steps (workflow 'main')"
    ]


# --- several files -------------------------------------------------------------------------------


def test_several_files_merge_by_step_id() -> None:
    base, override = PLANS / "merge-base.yaml", PLANS / "merge-override.yaml"
    loaded = load_plan([base, override], environ={})
    assert loaded.plan.files == (base, override) and loaded.plan.file == base
    assert [(s.id, s.kind, s.needs) for s in loaded.workflow.steps] == [
        ("build", "run", ()),
        ("test", "agent", ("build",)),
        ("deploy", "run", ("test",)),
    ]
    assert loaded.workflow.step("test").location == Location(override, 4, 5)  # the winning node
    assert loaded.plan.env.environment == {"A": "1", "B": "override", "C": "3"}


def test_errors_point_into_the_file_that_set_the_value(tmp_path: Path) -> None:
    override = write(tmp_path, "steps:\n  - id: build\n    timeout: later\n", "o.yaml")
    assert errors_of([PLANS / "merge-base.yaml", override]) == [
        f"{override}:3:14: timeout: 'later' is not a duration (use e.g. 30s, 10m or 1h)"
    ]


# --- graph -----------------------------------------------------------------------------------


def make_step(step_id: str, *needs: str) -> Step:
    return Step(step_id, "run", "true", Location(Path("p"), 1, 1), needs=needs)


def test_layers_and_cycles() -> None:
    steps = [make_step("a"), make_step("b", "a"), make_step("c", "a"), make_step("d", "b", "c"), make_step("e")]
    assert [[s.id for s in layer] for layer in layers(steps)] == [["a", "e"], ["b", "c"], ["d"]]
    assert find_cycle(steps) is None
    assert find_cycle([make_step("x"), make_step("a", "c"), make_step("b", "a"), make_step("c", "b")]) == ["a", "c", "b", "a"]
    assert find_cycle([make_step("a", "a")]) == ["a", "a"]
    with pytest.raises(ValueError, match="a -> b -> a"):
        layers([make_step("a", "b"), make_step("b", "a")])


# --- speed and robustness ----------------------------------------------------------------------


def test_a_long_chain_is_linear(tmp_path: Path) -> None:
    lines = ["version: 1", "name: chain", "steps:", "  - {id: s0, run: echo}"]
    lines += [f"  - {{id: s{i}, needs: [s{i - 1}], run: 'echo ${{steps.s{i - 1}.stdout}}'}}" for i in range(1, 2000)]
    loaded = load_plan([write(tmp_path, "\n".join(lines))], environ={})
    assert len(layers(loaded.workflow.steps)) == 2000


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
plan_keys = st.sampled_from(["version", "name", "steps", "workflows", "env", "inputs", "secrets", "components", "id", "run", "needs", "with", "use"])
plan_like = st.recursive(
    st.none() | st.integers(0, 3) | st.sampled_from(["a", "b", "${steps.a.stdout}", "${inputs.x}", "${", "10s", "1g"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(plan_keys, children, max_size=5),
    max_leaves=25,
)


def only_plan_or_invalid(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.yaml"
    path.write_text(text)
    try:
        result = load_plan([path], environ={})
    except PlanInvalid as exc:
        assert exc.errors and all(isinstance(error, PlanError) for error in exc.errors)
    else:
        assert isinstance(result, LoadedPlan)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n\t[]{},&*!|>'\"#%@`~?$0.")), max_size=60) | st.text(max_size=60))
def test_random_text_is_a_plan_or_plan_invalid(tmp_path: Path, text: str) -> None:
    only_plan_or_invalid(tmp_path, text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=yaml_values | plan_like | st.fixed_dictionaries({"version": st.just(1), "name": st.just("p"), "steps": st.lists(plan_like, max_size=3)}))
def test_random_data_is_a_plan_or_plan_invalid(tmp_path: Path, data: Any) -> None:
    only_plan_or_invalid(tmp_path, yaml.safe_dump(data))


# --- values that only look plausible ---------------------------------------------------------

WRONG_VALUES = [
    ("timeout: .nan", "timeout: nan is not a duration (use e.g. 30s, 10m or 1h)"),
    ("timeout: .inf", "timeout: inf is not a duration (use e.g. 30s, 10m or 1h)"),
    ("timeout: 99999999999999999999d", "timeout: '99999999999999999999d' is longer than a plan may set (at most 7d, a week)"),
    ("timeout: 1.0e+30", "timeout: 1e+30 is longer than a plan may set (at most 7d, a week)"),
    ("retry: {attempts: 1, delay: 8d}", "delay: '8d' is longer than a plan may set (at most 7d, a week)"),
    ("workdir: rel/dir", "workdir 'rel/dir' is not an absolute path: start it with /"),
    ("workdir: ./${inputs.sub}", "workdir './${inputs.sub}' is not an absolute path: start it with /"),
]


@pytest.mark.parametrize(("line", "message"), WRONG_VALUES, ids=[line for line, _ in WRONG_VALUES])
def test_a_step_key_with_a_value_out_of_bounds_is_located(tmp_path: Path, line: str, message: str) -> None:
    plan = write(tmp_path, f"version: 1\nname: p\ninputs: {{sub: {{default: x}}}}\nsteps:\n  - id: a\n    run: echo\n    {line}\n")
    column = line.index(":") + 7 if not line.startswith("retry") else line.index("delay") + 12
    assert errors_of([plan]) == [f"{plan}:7:{column}: {message}"]


def test_durations_up_to_a_week_are_taken(tmp_path: Path) -> None:
    plan = write(tmp_path, "version: 1\nname: p\nsteps:\n  - {id: a, run: echo, timeout: 7d, retry: {attempts: 1, delay: 604800}}\n")
    step = load_plan([plan], environ={}).workflow.steps[0]
    assert (step.timeout, step.retry.delay) == (604800, 604800)


def test_http_steps_send_only_http_and_https(tmp_path: Path) -> None:
    plan = write(tmp_path, """version: 1
name: p
inputs: {host: {default: example.com}, url: {default: "http://example.com"}}
components:
  peek: {http: {url: "file:///etc/shadow"}}
steps:
  - {id: a, http: {url: "file:///etc/passwd"}}
  - {id: b, http: {url: "ftp://${inputs.host}/x"}}
  - {id: c, http: {url: "example.com/x"}}
  - {id: d, http: {url: "http://"}}
  - {id: e, http: {url: "https://${inputs.host}/x", timeout: .inf}}
  - {id: f, use: peek}
  - {id: ok1, http: {url: "${inputs.url}"}}
  - {id: ok2, http: {url: "HTTPS://example.com:8443/a?b=c"}}
  - {id: ok3, http: {url: "http://${inputs.host}/x"}}
""")
    assert errors_of([plan]) == [
        f"{plan}:5:22: url 'file:///etc/shadow': an http step sends only http:// and https:// requests, not file:",
        f"{plan}:7:25: url 'file:///etc/passwd': an http step sends only http:// and https:// requests, not file:",
        f"{plan}:8:25: url 'ftp://${{inputs.host}}/x': an http step sends only http:// and https:// requests, not ftp:",
        f"{plan}:9:25: url 'example.com/x' is not an http:// or https:// URL with a host",
        f"{plan}:10:25: url 'http://' is not an http:// or https:// URL with a host",
        f"{plan}:11:62: timeout: inf is not a duration (use e.g. 30s, 10m or 1h)",
    ]


def test_working_directories_are_absolute(tmp_path: Path) -> None:
    plan = write(tmp_path, """version: 1
name: p
inputs: {pkg: {default: x}}
env: {workdir: work}
components:
  c: {run: echo, workdir: "src"}
steps:
  - {id: a, run: echo, workdir: "/workspace/${inputs.pkg}"}
  - {id: b, run: echo, workdir: "${inputs.pkg}"}
  - {id: c, use: c}
""")
    assert errors_of([plan]) == [
        f"{plan}:4:16: workdir 'work' is not an absolute path: start it with /",
        f"{plan}:6:27: workdir 'src' is not an absolute path: start it with /",
    ]


def test_the_user_is_written_not_computed(tmp_path: Path) -> None:
    plan = write(tmp_path, "version: 1\nname: p\ninputs: {u: {default: '0'}}\nenv: {user: '${inputs.u}'}\nsteps:\n  - {id: a, run: echo}\n")
    assert errors_of([plan]) == [
        f"{plan}:4:13: user '${{inputs.u}}': write the user itself, not an expression "
        "(whether the environment runs as root must be known before anything runs)"
    ]


def test_expressions_in_a_script_for_another_interpreter_are_refused(tmp_path: Path) -> None:
    plan = write(tmp_path, """\
version: 1
name: python
inputs:
  msg: {default: hi}
components:
  py:
    shell: [python3, -c]
    run: print("${inputs.msg}")
steps:
  - id: direct
    shell: [python3, -c]
    run: print("${inputs.msg}")
  - id: through-component
    use: py
  - id: raw
    shell: [python3, -c]
    run: print(${inputs.msg | json | raw})
  - id: from-environment
    shell: [python3, -c]
    environment: {MSG: "${inputs.msg}"}
    run: import os; print(os.environ["MSG"])
  - id: bash
    shell: [/bin/bash, -eu, -c]
    run: echo "${inputs.msg}"
""")
    reason = (
        "expression '${inputs.msg}' cannot reach a script for python3: glmtui passes values to scripts as "
        "environment variables that only a shell expands (give the value to the step under environment: and "
        "read it from the process environment, or write '| raw' to put the text into the script as code)"
    )
    assert errors_of([plan]) == [f"{plan}:7:12: {reason}", f"{plan}:11:12: {reason}"]
