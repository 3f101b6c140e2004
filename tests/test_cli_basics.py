"""Help, version, completion and images through the CLI; help and version stay light."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from helpers import BUSYBOX, child_env, docker, glmtui_argv, one_error_line, run_glmtui

HEAVY = ("textual", "aiohttp", "openai")


def imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def heavy_in(names: set[str]) -> list[str]:
    """The heavy top-level packages among `names`."""
    return sorted({n.split(".")[0] for n in names} & set(HEAVY))


def importtime(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, timeout=60, env=child_env()
    )
    return result, imported(result.stderr)


def test_importing_the_cli_imports_nothing_heavy():
    result, names = importtime("-c", "import glmtui.cli")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "glmtui.cli" in names and "click" in names, "importtime output was not parsed"
    assert heavy_in(names) == []


@pytest.mark.parametrize(
    "args",
    [
        ("--help",), ("-V",), ("env", "--help"), ("env", "create", "--help"), ("config", "--help"),
        ("models", "--help"), ("models", "check", "--help"), ("chats", "--help"), ("agents", "--help"),
        ("agents", "run", "--help"), ("serve", "--help"),
    ],
)
def test_help_imports_nothing_heavy(args):
    result, names = importtime("-m", "glmtui", *args)
    assert result.returncode == 0
    assert heavy_in(names) == [], f"`glmtui {' '.join(args)}` imported {heavy_in(names)}"
    # Not the model SDK, nor the agent modules that import it.
    assert not {n for n in names if n == "openai" or n.startswith(("openai.", "glmtui.agent"))}, args


def test_a_command_imports_its_own_command_module_only(tmp_path):
    """`glmtui --run` pays for the plan commands, not for every command glmtui has."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nname: p\nsteps:\n  - {id: a, run: 'true'}\n")
    loaded = (
        "import sys\n"
        "from glmtui.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(*sorted(m for m in sys.modules if m.startswith('glmtui.commands.')), file=sys.stderr)\n"
    )

    def commands_loaded(*args: str) -> set[str]:
        done = subprocess.run([sys.executable, "-c", loaded, *args], capture_output=True, text=True, timeout=60,
                              env=child_env())
        return set(done.stderr.splitlines()[-1].split())

    assert commands_loaded("plan", "validate", str(plan)) == {"glmtui.commands.common", "glmtui.commands.plan"}
    assert {"glmtui.commands.env", "glmtui.commands.agents"} <= commands_loaded("--help"), "--help lists them all"


def test_the_model_sdk_is_seen_when_imported():
    """The check above can see openai: a command that makes a model client imports it."""
    result, names = importtime("-c", "import glmtui.agent.client; glmtui.agent.client.ModelClient")
    assert result.returncode == 0
    assert "openai" not in names  # imported only when a client is made
    result, names = importtime("-c", "import openai")
    assert result.returncode == 0 and "openai" in names and heavy_in(names) == ["aiohttp", "openai"]


@pytest.mark.docker
def test_version_imports_nothing_heavy():
    result, names = importtime("-m", "glmtui", "version")
    assert result.returncode == 0
    assert "glmtui 0.1.0" in result.stdout
    assert heavy_in(names) == [], f"`glmtui version` imported {heavy_in(names)}"


@pytest.mark.docker
def test_a_run_in_a_named_environment_imports_no_aiohttp(glmtui, tmp_path, busybox_image):
    """Everything goes to the engine through glmtui's own HTTP client: aiohttp (80 ms of a
    start) is not imported for a plan of `run` steps, nor for the image list."""
    name = f"t-{tmp_path.name[-12:].replace('_', '-')}".lower()
    assert glmtui("env", "create", name, "--image", busybox_image).returncode == 0
    try:
        plan = tmp_path / "plan.yaml"
        plan.write_text(f"version: 1\nname: t\nenv: {{name: {name}}}\nsteps:\n  - id: a\n    run: echo hi\n")
        result, names = importtime("-m", "glmtui", "--run", str(plan))
        assert result.returncode == 0, result.stderr[-2000:]
        assert re.search(r"^a +\| hi$", result.stdout, re.M), result.stdout
        assert "glmtui.docker.wire" in names, "importtime output was not parsed"
        assert not {n for n in names if n.split(".")[0] in ("aiohttp", "aiodocker", "yarl")}
        result, names = importtime("-m", "glmtui", "image", "list")
        assert result.returncode == 0 and "glmtui.docker.wire" in names
        assert not {n for n in names if n.split(".")[0] in ("aiohttp", "aiodocker", "yarl")}
    finally:
        glmtui("env", "remove", name, "--volumes")


def test_help_lists_the_commands(glmtui):
    result = glmtui("--help")
    assert result.returncode == 0 and result.stdout.startswith("Usage: glmtui")
    for command in ("env", "logs", "config", "init", "image", "clean", "version", "completion", "models", "chats"):
        assert f"\n  {command} " in result.stdout, command
    env_help = glmtui("env", "--help")
    for command in ("create", "list", "start", "stop", "remove", "exec"):
        assert f"\n  {command} " in env_help.stdout, command
    models_help = glmtui("models", "--help")
    for command in ("list", "check"):
        assert f"\n  {command} " in models_help.stdout, command
    chats_help = glmtui("chats", "--help")
    for command in ("show", "export", "remove"):
        assert f"\n  {command} " in chats_help.stdout, command
    assert glmtui("-h").stdout == result.stdout


def test_version_flag(glmtui):
    result = glmtui("-V")
    assert (result.returncode, result.stdout.strip()) == (0, "glmtui, version 0.1.0")


def test_unknown_command_is_bad_input(glmtui):
    result = glmtui("no-such-command")
    assert result.returncode == 2 and "No such command 'no-such-command'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.docker
def test_version(glmtui):
    server = docker("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}").stdout.split()
    result = glmtui("version")
    assert result.returncode == 0
    first, second = result.stdout.splitlines()
    assert first == f"glmtui 0.1.0  Python {sys.version.split()[0]}"
    assert second.startswith(f"Docker engine {server[0]} (API {server[1]}) at ")

    as_json = glmtui("version", "--json")
    assert as_json.returncode == 0
    info = json.loads(as_json.stdout)
    assert set(info) == {"glmtui", "python", "engine", "api", "host", "engine_name"}
    assert info["glmtui"] == "0.1.0" and info["python"] == sys.version.split()[0]
    assert [info["engine"], info["api"]] == server
    assert info["host"].startswith(("unix://", "tcp://", "npipe://"))


def test_version_with_an_unreachable_engine(glmtui, tmp_path):
    address = f"unix://{tmp_path}/none.sock"
    result = glmtui("version", "--json", env={"DOCKER_HOST": address})
    assert result.returncode == 3
    info = json.loads(result.stdout)
    assert info["glmtui"] == "0.1.0" and info["engine"] is None and info["host"] == address
    assert "cannot reach the Docker engine" in one_error_line(result.stderr)
    text = glmtui("version", env={"DOCKER_HOST": address})
    assert text.returncode == 3 and f"Docker engine unreachable at {address}" in text.stdout


@pytest.mark.parametrize(
    "shell, marks",
    [
        ("bash", ["_GLMTUI_COMPLETE=bash_complete", "complete -o nosort -F _glmtui_completion glmtui"]),
        ("zsh", ["#compdef glmtui", "_GLMTUI_COMPLETE=zsh_complete"]),
        ("fish", ["_GLMTUI_COMPLETE=fish_complete", "complete --no-files --command glmtui"]),
    ],
)
def test_completion_scripts(glmtui, shell, marks):
    result = glmtui("completion", shell)
    assert result.returncode == 0 and result.stderr == ""
    for mark in marks:
        assert mark in result.stdout


def test_completion_completes(glmtui):
    def complete(words: str, index: int) -> list[str]:
        result = glmtui(env={"_GLMTUI_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(index)})
        assert result.returncode == 0, result.stderr
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert complete("glmtui en", 1) == ["engines", "env"]
    assert complete("glmtui env cr", 2) == ["create"]
    assert complete("glmtui completion ", 2) == ["bash", "zsh", "fish"]


def test_completion_of_an_unknown_shell(glmtui):
    result = glmtui("completion", "tcsh")
    assert result.returncode == 2 and "tcsh" in result.stderr and result.stdout == ""


@pytest.mark.docker
def test_image_list(glmtui, busybox_image):
    result = glmtui("image", "list")
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["IMAGE", "ID", "SIZE"]
    row = next(r for r in rows if r.split()[0] == BUSYBOX)
    their_id = docker("image", "inspect", "--format", "{{.Id}}", BUSYBOX).stdout.strip()
    assert their_id.removeprefix("sha256:").startswith(row.split()[1])
    as_json = json.loads(glmtui("image", "list", "--json").stdout)
    assert BUSYBOX in {image["tag"] for image in as_json["images"]}
    assert as_json["definitions"]["busybox"] == "glmtui/busybox"


@pytest.mark.docker
def test_image_build_twice_is_cached(glmtui, busybox_image):
    first = glmtui("image", "build", "busybox")
    second = glmtui("image", "build", "--quiet", "busybox")
    for result in (first, second):
        assert result.returncode == 0, result.stderr
    assert second.stdout.startswith("glmtui/busybox:") and second.stdout.strip().endswith("(cached)")
    tag = second.stdout.split()[0]
    assert docker("image", "inspect", "--format", "{{.Id}}", tag).stdout == docker(
        "image", "inspect", "--format", "{{.Id}}", BUSYBOX
    ).stdout


@pytest.mark.docker
def test_image_build_of_an_unknown_name(glmtui):
    result = glmtui("image", "build", "busybx")
    assert result.returncode == 2
    line = next(line for line in result.stderr.splitlines() if line.startswith("glmtui: error:"))
    assert "no image definition named 'busybx'" in line and "did you mean 'busybox'?" in line
    assert "Traceback" not in result.stderr


def test_glmtui_runs_from_anywhere(tmp_path):
    """`python -m glmtui` works outside the source tree (the helper's default)."""
    result = subprocess.run(
        glmtui_argv("--help"), cwd=tmp_path, capture_output=True, text=True, timeout=60, env=child_env()
    )
    assert result.returncode == 0
    assert run_glmtui("--help").stdout == result.stdout
