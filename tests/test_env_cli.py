"""`glmtui env ...` and `logs --container` through the CLI, in subprocesses, against the real engine."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from helpers import (
    BUSYBOX,
    child_env,
    container_exists,
    container_of,
    container_status,
    docker,
    docker_inspect,
    glmtui_argv,
    one_error_line,
    processes,
    ps_has,
    run_glmtui_many,
    volume_exists,
    volume_of,
    wait_for,
)

pytestmark = pytest.mark.docker

UNREACHABLE = {"DOCKER_HOST": "unix:///no/such/dir/docker.sock"}


def create(glmtui, name, *options):
    result = glmtui("env", "create", name, "--image", BUSYBOX, *options)
    assert result.returncode == 0, result.stderr
    return result


def listed(glmtui) -> dict[str, dict]:
    result = glmtui("env", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def leaves_nothing(name: str) -> None:
    assert not container_exists(name), f"container of {name} left behind"
    assert not volume_exists(name), f"volume of {name} left behind"


# -- the life cycle -------------------------------------------------------------------------


def test_life_cycle(glmtui, busybox_image, env_name):
    result = create(glmtui, env_name, "--memory", "512m", "--cpus", "1", "--network", "none", "-e", "A=b")
    assert result.stdout.strip() == f"created {env_name} on default ({BUSYBOX}, running)"
    info = docker_inspect(env_name)
    assert info["HostConfig"]["Memory"] == 512 * 1024**2
    assert info["HostConfig"]["NanoCpus"] == 1_000_000_000
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert "A=b" in info["Config"]["Env"]
    assert info["Config"]["Labels"]["glmtui.env"] == env_name
    assert volume_exists(env_name)

    table = glmtui("env", "list")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "ENGINE", "STATUS", "IMAGE", "CREATED", "PORTS"]
    row = next(r for r in rows if r.split()[0] == env_name)
    assert row.split()[1:4] == ["default", "running", BUSYBOX]
    entry = listed(glmtui)[env_name]
    assert entry["status"] == "running" and entry["image"] == BUSYBOX and entry["workdir"] == "/workspace"
    assert entry["engine"] == "default"
    assert info["Id"].startswith(entry["id"])

    ran = glmtui("env", "exec", env_name, "sh", "-c", 'echo "A=$A"; echo to-err >&2; exit 7')
    assert (ran.returncode, ran.stdout, ran.stderr) == (7, "A=b\n", "to-err\n")
    ran = glmtui("env", "exec", env_name, "--", "sh", "-c", "pwd")
    assert (ran.returncode, ran.stdout) == (0, "/workspace\n")

    stopped = glmtui("env", "stop", env_name, "--timeout", "1s")
    assert (stopped.returncode, stopped.stdout.strip()) == (0, f"stopped {env_name}")
    assert container_status(env_name) == "exited" and listed(glmtui)[env_name]["status"] == "exited"
    refused = glmtui("env", "exec", env_name, "true")
    assert refused.returncode == 2 and "is not running" in one_error_line(refused.stderr)

    started = glmtui("env", "start", env_name)
    assert (started.returncode, started.stdout.strip()) == (0, f"started {env_name}")
    assert container_status(env_name) == "running"
    assert glmtui("env", "exec", env_name, "true").returncode == 0

    removed = glmtui("env", "remove", env_name, "--volumes")
    assert removed.returncode == 0 and removed.stdout.strip() == f"removed {env_name} and its workspace volume"
    assert not container_exists(env_name)
    assert volume_of(env_name) not in docker("volume", "ls", "-q").stdout.split()
    assert env_name not in listed(glmtui)


def test_remove_keeps_the_workspace_unless_asked(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    removed = glmtui("env", "remove", env_name)
    assert (removed.returncode, removed.stdout.strip()) == (0, f"removed {env_name}")
    assert not container_exists(env_name) and volume_exists(env_name)


def test_create_json_copy_and_options(glmtui, busybox_image, env_name, tmp_path):
    (tmp_path / "seed.txt").write_text("seeded\n")
    result = create(
        glmtui, env_name, "--json", "--copy", f"{tmp_path / 'seed.txt'}:/work/seed.txt",
        "--pids", "64", "--workdir", "/work", "--user", "1234",
    )
    entry = json.loads(result.stdout)
    assert entry["name"] == env_name and entry["status"] == "running" and entry["workdir"] == "/work"
    info = docker_inspect(env_name)
    assert info["HostConfig"]["PidsLimit"] == 64 and info["Config"]["User"] == "1234"
    ran = glmtui("env", "exec", env_name, "sh", "-c", "cat seed.txt; id -u; stat -c %u seed.txt")
    assert ran.stdout == "seeded\n1234\n1234\n"


def test_exec_options(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    ran = glmtui("env", "exec", "-e", "X=1 2", "-w", "/tmp", "-u", "4321", env_name, "sh", "-c", 'echo "$X|$(pwd)|$(id -u)"')
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "1 2|/tmp|4321\n", "")
    literal = glmtui("env", "exec", env_name, "echo", "$HOME;", "`id`", "--timeout", "-x")
    assert literal.stdout == "$HOME; `id` --timeout -x\n", "arguments after the command are the command's"


def test_exec_binary_output_passes_through(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    result = subprocess.run(
        glmtui_argv("env", "exec", env_name, "sh", "-c", r"printf '\000\377\351\n'"),
        capture_output=True, timeout=60, env=child_env(),
    )
    assert result.returncode == 0 and result.stdout == b"\x00\xff\xe9\n"


def test_exec_timeout_kills_every_process(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    started = time.monotonic()
    result = glmtui("env", "exec", "--timeout", "1s", env_name, "sh", "-c", "echo begun; sleep 300 & sleep 300")
    assert time.monotonic() - started < 15
    assert result.returncode != 0 and result.stdout == "begun\n"
    assert "timed out after 1s" in one_error_line(result.stderr)
    listing = processes(env_name)
    assert not ps_has(listing, "sleep 300"), listing


def test_exec_interrupted_kills_every_process(glmtui, busybox_image, env_name):
    """Ctrl-C on `glmtui env exec` (SIGINT) cancels the command inside too."""
    create(glmtui, env_name)
    process = subprocess.Popen(
        glmtui_argv("env", "exec", env_name, "sh", "-c", "echo begun; sleep 300 & sleep 300"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )
    try:
        assert process.stdout.readline() == "begun\n"
        wait_for(lambda: processes(env_name).count("sleep 300") >= 2, what="the sleeps")
        process.send_signal(2)
        process.wait(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "interrupted" in process.stderr.read()
    listing = processes(env_name)
    assert not ps_has(listing, "sleep 300"), listing


# -- bad input: one line, the right status, nothing left behind ----------------------------


def test_invalid_names():
    names = ["Bad_Name", ".hidden", "a b", "x" * 70, "semi;colon", "caf\u00e9"]
    results = run_glmtui_many([("env", "create", name, "--image", BUSYBOX) for name in names])
    for name, result in zip(names, results):
        assert result.returncode == 2, (name, result.stderr)
        assert "invalid environment name" in one_error_line(result.stderr), name
    assert docker("ps", "-aq", "--filter", "name=Bad_Name", "--filter", "name=semi", check=False).stdout == ""


def test_taken_name(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    before = docker_inspect(env_name)["Id"]
    again = glmtui("env", "create", env_name, "--image", BUSYBOX)
    assert again.returncode == 2 and again.stdout == ""
    assert f"environment '{env_name}' exists already" in one_error_line(again.stderr)
    assert docker_inspect(env_name)["Id"] == before and container_status(env_name) == "running"


def test_unknown_environment(env_name):
    calls = [
        ("env", "start", env_name),
        ("env", "stop", env_name),
        ("env", "remove", env_name),
        ("env", "remove", "--volumes", env_name),
        ("env", "exec", env_name, "true"),
        ("logs", env_name),
    ]
    for args, result in zip(calls, run_glmtui_many(calls)):
        assert result.returncode == 2, (args, result.stderr)
        line = one_error_line(result.stderr)
        assert f"no environment '{env_name}'" in line or f"no environment named '{env_name}'" in line, args
        assert "glmtui env list" in line, args


def test_image_that_does_not_exist(glmtui, env_name):
    result = glmtui("env", "create", env_name, "--image", "glmtui/no-such-image:latest")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "glmtui/no-such-image:latest" in line and "glmtui image build" in line
    leaves_nothing(env_name)


def test_memory_like_lots(glmtui, env_name):
    result = glmtui("env", "create", env_name, "--image", BUSYBOX, "--memory", "lots")
    assert result.returncode == 2
    assert "'lots' is not a size" in one_error_line(result.stderr)
    leaves_nothing(env_name)


def test_bad_create_values(env_name):
    cases = [
        (("--cpus", "many"), "is not a number"),
        (("--cpus", "0"), "out of range"),
        (("--pids", "0"), "must be above 0"),
        (("--memory", "1k"), "too small"),
        (("-e", "NOEQUALS"), "is not KEY=VALUE"),
        (("--copy", "/no/such/file:/workspace/x"), "does not exist"),
        (("--copy", "relative-target"), "is not HOST_PATH:/CONTAINER_PATH"),
        (("--workdir", "relative"), "must be an absolute path"),
        (("--mount", "/tmp"), "is not HOST:CONTAINER"),
        (("--mount", "/tmp:relative"), "must be absolute"),
    ]
    results = run_glmtui_many([("env", "create", env_name, "--image", BUSYBOX, *options) for options, _ in cases])
    for (options, message), result in zip(cases, results):
        assert result.returncode == 2, (options, result.stderr)
        assert message in one_error_line(result.stderr), options
    leaves_nothing(env_name)


def test_bad_network_is_a_usage_error(glmtui, env_name):
    result = glmtui("env", "create", env_name, "--image", BUSYBOX, "--network", "wifi")
    assert result.returncode == 2 and "wifi" in result.stderr and "Traceback" not in result.stderr
    leaves_nothing(env_name)


def test_mount_of_a_missing_host_path(glmtui, env_name, tmp_path):
    missing = tmp_path / "not-there"
    result = glmtui("env", "create", env_name, "--image", BUSYBOX, "--mount", f"{missing}:/data")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert str(missing) in line and "does not exist" in line
    assert not missing.exists(), "no host folder is made for a missing mount"
    leaves_nothing(env_name)


def test_mount_of_the_docker_socket_or_a_folder_holding_it_needs_the_flag(glmtui, env_name, tmp_path):
    (tmp_path / "run").symlink_to("/var/run")
    for mount in ("/var/run/docker.sock:/var/run/docker.sock", "/var/run:/hostrun", f"{tmp_path}/run:/hostrun:ro"):
        result = glmtui("env", "create", env_name, "--image", BUSYBOX, "--mount", mount)
        assert result.returncode == 2, (mount, result.stderr)
        line = one_error_line(result.stderr)
        assert "Docker socket" in line and "/run/docker.sock" in line and "--allow-docker-socket" in line, line
        leaves_nothing(env_name)
    create(glmtui, env_name, "--mount", "/var/run:/hostrun", "--allow-docker-socket")
    shown = docker("exec", container_of(env_name), "ls", "-l", "/hostrun/docker.sock").stdout
    assert shown.startswith("s"), shown  # the person asked for it: the socket is there


def test_mount_works(glmtui, busybox_image, env_name, tmp_path):
    (tmp_path / "hello.txt").write_text("hi\n")
    create(glmtui, env_name, "--mount", f"{tmp_path}:/data:ro")
    shown = glmtui("env", "exec", env_name, "cat", "/data/hello.txt")
    assert (shown.returncode, shown.stdout, shown.stderr) == (0, "hi\n", "")
    denied = glmtui("env", "exec", env_name, "touch", "/data/new")
    assert denied.returncode != 0 and not (tmp_path / "new").exists()


def test_unreachable_engine(env_name):
    calls = [
        ("env", "list"),
        ("env", "create", env_name, "--image", BUSYBOX),
        ("env", "exec", env_name, "true"),
        ("env", "stop", env_name),
        ("logs", env_name),
        ("clean",),
        ("image", "list"),
    ]
    started = time.monotonic()
    results = run_glmtui_many(calls, env=UNREACHABLE)
    assert time.monotonic() - started < 20
    for args, result in zip(calls, results):
        assert result.returncode == 3, (args, result.stderr)
        line = one_error_line(result.stderr)
        assert "cannot reach the Docker engine at unix:///no/such/dir/docker.sock" in line, args
        assert "DOCKER_HOST" in line, args
    leaves_nothing(env_name)


def test_exec_of_a_command_that_does_not_exist(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    result = glmtui("env", "exec", env_name, "no-such-command-xyz", "--flag")
    assert result.returncode == 127 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and "OCI runtime" not in result.stderr
    assert any("command not found" in line and "no-such-command-xyz" in line for line in lines), lines
    assert any("hint" in line for line in lines), lines
    assert len(lines) <= 2


def test_exec_in_a_missing_working_directory_says_so(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    result = glmtui("env", "exec", "--workdir", "/workspace/nope", env_name, "true")
    assert result.returncode not in (0, 127) and result.stdout == ""
    assert one_error_line(result.stderr) == "glmtui: the working directory '/workspace/nope' does not exist in the environment"


def test_exec_without_a_terminal_asks_for_a_command(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    result = glmtui("env", "exec", env_name)
    assert result.returncode == 2
    assert "needs a terminal" in one_error_line(result.stderr)


def test_container_killed_while_exec_streams(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    process = subprocess.Popen(
        glmtui_argv("env", "exec", env_name, "sh", "-c", "echo started; sleep 300"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )
    try:
        assert process.stdout.readline() == "started\n"
        docker("kill", container_of(env_name))
        process.wait(timeout=15)
    finally:
        process.kill()
    stderr = process.stderr.read()
    assert process.returncode not in (0, None)
    assert "Traceback" not in stderr
    assert "stopped while the command ran" in stderr, f"no reason given; stderr: {stderr!r}"


def test_two_creates_of_one_name_at_once(busybox_image, env_name):
    argv = glmtui_argv("env", "create", env_name, "--image", BUSYBOX)
    processes_ = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        for _ in range(2)
    ]
    outcomes = sorted((p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in processes_)
    (won, won_out, _), (lost, _, lost_err) = outcomes
    assert (won, lost) == (0, 2), outcomes
    assert won_out.startswith(f"created {env_name}")
    assert "exists already" in one_error_line(lost_err)
    names = docker("ps", "-a", "--filter", f"name=^/{container_of(env_name)}$", "--format", "{{.Names}}").stdout
    assert names.split() == [container_of(env_name)]
    assert container_status(env_name) == "running" and volume_exists(env_name)


def test_debug_shows_the_traceback(glmtui, env_name):
    result = glmtui("--debug", "env", "start", env_name)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and f"no environment named '{env_name}'" in result.stderr


# -- logs -----------------------------------------------------------------------------------


@pytest.fixture
def chatty_env(busybox_image, env_name):
    """A glmtui-labelled container whose main process writes to stdout and stderr."""
    docker(
        "run", "-d", "--label", "glmtui.managed=true", "--label", f"glmtui.env={env_name}",
        "--name", container_of(env_name), busybox_image, "sh", "-c", "echo one; echo two >&2; sleep 600",
    )
    wait_for(lambda: docker("logs", container_of(env_name)).stderr == "two\n", what="the container's output")
    return env_name


def test_logs_show_the_container_output(glmtui, chatty_env):
    result = glmtui("logs", "--container", chatty_env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "one\n", "two\n")
    theirs = docker("logs", container_of(chatty_env))
    assert (result.stdout, result.stderr) == (theirs.stdout, theirs.stderr)


def test_logs_timestamps_tail_since(glmtui, chatty_env):
    stamped = glmtui("logs", "--container", "--timestamps", chatty_env)
    assert stamped.returncode == 0
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")
    assert re.match(stamp.pattern + "one$", stamped.stdout.strip()) and re.match(stamp.pattern + "two$", stamped.stderr.strip())
    theirs = docker("logs", "--timestamps", container_of(chatty_env))
    assert (stamped.stdout, stamped.stderr) == (theirs.stdout, theirs.stderr)

    tail = glmtui("logs", "--container", "--tail", "1", chatty_env)
    assert tail.returncode == 0 and len((tail.stdout + tail.stderr).splitlines()) == 1
    theirs = docker("logs", "--tail", "1", container_of(chatty_env))
    assert (tail.stdout, tail.stderr) == (theirs.stdout, theirs.stderr)

    recent = glmtui("logs", "--container", "--since", "10m", chatty_env)
    assert (recent.returncode, recent.stdout, recent.stderr) == (0, "one\n", "two\n")
    bad = glmtui("logs", "--container", "--since", "soon", chatty_env)
    assert bad.returncode == 2 and "soon" in one_error_line(bad.stderr)


def test_logs_follow_keeps_going(chatty_env):
    process = subprocess.Popen(
        glmtui_argv("logs", "--container", "-f", chatty_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(),
    )
    try:
        assert process.stdout.readline() == "one\n"
        time.sleep(0.5)
        assert process.poll() is None, "logs -f ended instead of following"
        docker("stop", "-t", "0", container_of(chatty_env))
        assert process.wait(timeout=15) == 0, "logs -f ends when the container stops"
    finally:
        process.kill()


def test_logs_of_a_quiet_environment(glmtui, busybox_image, env_name):
    create(glmtui, env_name)
    for options in (("--container",), ()):
        result = glmtui("logs", *options, "--tail", "5", env_name)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), options


def test_logs_without_an_environment(glmtui):
    result = glmtui("logs")
    assert result.returncode == 2 and "name an environment or a run" in one_error_line(result.stderr)
