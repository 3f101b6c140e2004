"""Several engines by name, through the CLI: the config's engines, Docker contexts and the default;
`glmtui engines list|check`; env commands across engines; plans on the engine they name; SSH
connections reused; each way an SSH engine fails said in one line. The remote engine is a
private one reached over TLS and SSH (tests/remote_engine.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import BUSYBOX, docker, one_error_line, remove_quietly, run_glmtui, unique_name
from plan_helpers import write_plan
from sshd import ALIASES

from glmtui.docker.spec import EnvSpec

pytestmark = pytest.mark.docker


def configured(tmp_path: Path, engines: dict[str, Any] | None = None, **keys: Any) -> dict[str, str]:
    """The variables of a user config holding `engines` (and other keys) in a folder of the test's."""
    folder = tmp_path / "config"
    (folder / "glmtui").mkdir(parents=True, exist_ok=True)
    data = {**({"engines": engines} if engines else {}), **keys}
    (folder / "glmtui" / "config.yaml").write_text(yaml.safe_dump(data))
    return {"XDG_CONFIG_HOME": str(folder)}


def names_on(remote: Any) -> set[str]:
    return set(remote.docker("ps", "-a", "--format", "{{.Names}}").stdout.split())


@pytest.fixture
def far_name(remote: Any) -> Any:
    """A fresh environment name, removed from both engines afterwards."""
    name = unique_name()
    yield name
    remove_quietly(name)
    remote.docker("rm", "-f", "-v", f"glmtui-{name}", check=False)
    remote.docker("volume", "rm", "-f", f"glmtui-{name}-workspace", check=False)


# -- engines list and check ---------------------------------------------------------------------


def test_engines_list_shows_every_engine_with_whether_it_answers(remote, tmp_path, far_name):
    engines = {**remote.config(), "down": {"host": "ssh://glmtui-wrongkey"}}
    env = configured(tmp_path, engines)
    assert run_glmtui("env", "create", far_name, "--image", BUSYBOX, "--engine", "far-ssh", env=env).returncode == 0
    result = run_glmtui("engines", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == ["default", "down", "far-ssh", "far-tls", "far-unix"]
    assert rows["default"]["current"] and rows["default"]["address"] == "unix:///var/run/docker.sock"
    assert rows["far-tls"]["address"] == remote.dockerd.tls_host
    assert rows["far-ssh"]["address"] == "ssh://glmtui-test"
    for name in ("far-ssh", "far-tls", "far-unix"):
        assert rows[name]["reachable"] and rows[name]["version"] and rows[name]["environments"] >= 1, rows[name]
    assert not rows["down"]["reachable"] and "refused the key" in rows["down"]["error"]
    table = run_glmtui("engines", "list", env=env)
    assert table.stdout.splitlines()[0].split() == ["NAME", "ADDRESS", "REACHABLE", "VERSION", "ENVIRONMENTS"]
    assert any(line.split()[:2] == ["default", "*"] for line in table.stdout.splitlines())
    assert any(line.split()[:3] == ["down", "ssh://glmtui-wrongkey", "no"] for line in table.stdout.splitlines())


def test_engines_check_says_in_one_line_each_what_works_or_what_to_do(remote, tmp_path):
    engines = {alias.removeprefix("glmtui-"): {"host": f"ssh://{alias}"} for alias in ALIASES}
    engines["nosuchhost"] = {"host": "ssh://root@no-such-host.invalid"}
    engines["tls"] = remote.config("tls")["far-tls"]
    engines["tls-no-client-cert"] = {"host": remote.dockerd.tls_host, "tls": {"ca": engines["tls"]["tls"]["ca"]}}
    engines["tls-other-ca"] = {"host": remote.dockerd.tls_host, "tls": {"ca": str(remote.dockerd.certs / "cert.pem")}}
    env = configured(tmp_path, engines)
    result = run_glmtui("engines", "check", env=env, timeout=120)
    assert result.returncode == 3, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert len(lines) == len(engines) + 1 == len(result.stdout.splitlines())
    expected = {
        "default": "ok ",
        "test": "ok ",
        "tls": "ok ",
        "nodocker": "docker is not installed on glmtui-nodocker",
        "noperm": "may not use the Docker socket there (add the user to the docker group",
        "wrongkey": "glmtui-wrongkey refused the key of glmtui-wrongkey (add your key to the agent",
        "changed": "the host key of glmtui-changed is not the one known_hosts has for it",
        "unknown": "the host key of glmtui-unknown is not in known_hosts (connect once with `ssh glmtui-unknown`",
        "nosuchhost": "ssh cannot find the host no-such-host.invalid",
        "tls-no-client-cert": "the engine refused this client's certificate",
        "tls-other-ca": "the engine's certificate is not trusted",
    }
    for name, phrase in expected.items():
        assert phrase in lines[name], lines[name]
        assert lines[name].startswith("ok" if phrase == "ok " else "fail"), lines[name]
    only = run_glmtui("engines", "check", "test", env=env)
    assert only.returncode == 0 and only.stdout.startswith("ok    test  ssh://glmtui-test: Docker ")
    unknown = run_glmtui("engines", "check", "tset", env=env)
    assert unknown.returncode == 2
    assert one_error_line(unknown.stderr) == ("glmtui: error: no engine named 'tset' (did you mean 'test'?) "
                                              "(`glmtui engines list` shows them)")


# -- configuration and Docker contexts ----------------------------------------------------------


def test_engines_in_the_config_are_checked_when_set(tmp_path):
    env = configured(tmp_path)
    bad = run_glmtui("config", "set", "engines.gpu.host", "ftp://gpu", env=env)
    assert bad.returncode == 2
    assert one_error_line(bad.stderr) == ("glmtui: error: engines.gpu.host: 'ftp://gpu' is not an engine address "
                                          "(unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST[:PORT])")
    taken = run_glmtui("config", "set", "engines.default.host", "ssh://gpu", env=env)
    assert taken.returncode == 2 and "the name default is the engine of docker_host" in taken.stderr
    password = run_glmtui("config", "set", "engines.gpu.host", "ssh://me:secret@gpu", env=env)
    assert password.returncode == 2 and "holds a password" in password.stderr
    assert run_glmtui("config", "set", "engines.gpu.host", "ssh://me@gpu:2222", env=env).returncode == 0
    half = run_glmtui("config", "set", "engines.gpu.tls.cert", "/c.pem", env=env)
    assert one_error_line(half.stderr) == "glmtui: error: engines.gpu.tls: a client certificate needs both cert and key"
    over_ssh = run_glmtui("config", "set", "engines.gpu.tls.ca", "/ca.pem", env=env)
    assert one_error_line(over_ssh.stderr) == "glmtui: error: engines.gpu.tls: tls is for tcp:// addresses, not ssh://"
    listed = run_glmtui("engines", "list", "--json", env=env)
    assert [row["name"] for row in json.loads(listed.stdout)] == ["default", "gpu"]
    broken = tmp_path / "config" / "glmtui" / "config.yaml"
    broken.write_text("engines:\n  gpu:\n    host: tcp://gpu:2376\n    tls: {ca: /ca.pem, verify: maybe}\n")
    result = run_glmtui("engines", "list", env=env)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == f"glmtui: error: {broken}: engines.gpu.tls.verify: true or false, not 'maybe'"


def docker_context(config: Path, *args: str) -> None:
    result = subprocess.run(["docker", "context", *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DOCKER_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr


def test_docker_contexts_are_engines_and_the_current_one_is_used(remote, tmp_path, far_name):
    """Contexts made by the docker CLI, read from its store as it reads them (TLS files too);
    the current one (docker context use, or DOCKER_CONTEXT) is where commands go by default."""
    config = tmp_path / "docker-config"
    certs = remote.dockerd.certs
    docker_context(config, "create", "far", "--description", "the far engine", "--docker",
                   f"host={remote.dockerd.tls_host},ca={certs / 'ca.pem'},cert={certs / 'cert.pem'},"
                   f"key={certs / 'key.pem'}")
    docker_context(config, "create", "far-by-ssh", "--docker", "host=ssh://glmtui-test")
    env = {**configured(tmp_path), "DOCKER_CONFIG": str(config)}
    rows = {row["name"]: row for row in json.loads(run_glmtui("engines", "list", "--json", env=env).stdout)}
    assert list(rows) == ["default", "far", "far-by-ssh"]
    assert rows["default"]["current"] and rows["far"]["reachable"] and rows["far-by-ssh"]["reachable"]
    assert rows["far"]["address"] == remote.dockerd.tls_host
    docker_context(config, "use", "far")
    created = run_glmtui("env", "create", far_name, "--image", BUSYBOX, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"created {far_name} on far (")
    assert f"glmtui-{far_name}" in names_on(remote)
    assert run_glmtui("env", "exec", far_name, "hostname", env={**env, "DOCKER_CONTEXT": "far-by-ssh"}).returncode == 0
    gone = run_glmtui("env", "list", env={**env, "DOCKER_CONTEXT": "gone"})
    assert gone.returncode == 2
    assert "DOCKER_CONTEXT names the context 'gone', which does not exist" in one_error_line(gone.stderr)
    overridden = run_glmtui("engines", "list", "--json", env={**env, "DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert [row["name"] for row in json.loads(overridden.stdout) if row["current"]] == ["default"]


# -- environments across engines ----------------------------------------------------------------


def test_env_commands_find_the_environment_on_its_engine(remote, tmp_path, far_name):
    env = configured(tmp_path, {**remote.config("ssh"), "down": {"host": "ssh://glmtui-unknown"}})
    created = run_glmtui("env", "create", far_name, "--image", BUSYBOX, "--engine", "far-ssh", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"created {far_name} on far-ssh (")
    assert f"glmtui-{far_name}" in names_on(remote) and docker("inspect", f"glmtui-{far_name}", check=False).returncode

    listed = run_glmtui("env", "list", env=env)
    assert listed.returncode == 0
    assert listed.stderr == ("glmtui: engine down did not answer: the host key of glmtui-unknown is not in known_hosts; "
                             "its environments are not listed (`glmtui engines check` says what to do)\n")
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "ENGINE", "STATUS"]
    assert [row.split()[1:3] for row in rows if row.split()[0] == far_name] == [["far-ssh", "running"]]
    as_json = json.loads(run_glmtui("env", "list", "--json", env=env).stdout)
    assert [e["engine"] for e in as_json if e["name"] == far_name] == ["far-ssh"]

    ran = run_glmtui("env", "exec", far_name, "sh", "-c", "echo on far; exit 4", env=env)
    assert (ran.returncode, ran.stdout) == (4, "on far\n")
    assert run_glmtui("env", "stop", far_name, "-t", "1", env=env).returncode == 0
    assert remote.docker("inspect", "-f", "{{.State.Status}}", f"glmtui-{far_name}").stdout.strip() == "exited"
    assert run_glmtui("env", "start", far_name, env=env).returncode == 0
    logs = run_glmtui("logs", far_name, env=env)
    assert logs.returncode == 0 and "| on far" in logs.stdout
    removed = run_glmtui("env", "remove", far_name, "--volumes", env=env)
    assert removed.returncode == 0 and f"glmtui-{far_name}" not in names_on(remote)


def test_a_name_on_two_engines_needs_engine(remote, tmp_path, far_name):
    env = configured(tmp_path, remote.config("tls"))
    for engine in ("default", "far-tls"):
        made = run_glmtui("env", "create", far_name, "--image", BUSYBOX, "--engine", engine, env=env)
        assert made.returncode == 0, made.stderr
    ambiguous = run_glmtui("env", "exec", far_name, "true", env=env)
    assert ambiguous.returncode == 2
    assert one_error_line(ambiguous.stderr) == (f"glmtui: error: environment '{far_name}' is on engines default and "
                                                "far-tls (say which: --engine default)")
    on_far = run_glmtui("env", "exec", "--engine", "far-tls", far_name, "cat", "/etc/hostname", env=env)
    assert on_far.returncode == 0
    assert on_far.stdout.strip() == remote.docker("inspect", "-f", "{{.Config.Hostname}}", f"glmtui-{far_name}").stdout.strip()
    listed = [(e["name"], e["engine"]) for e in json.loads(run_glmtui("env", "list", "--json", env=env).stdout)]
    assert (far_name, "default") in listed and (far_name, "far-tls") in listed
    assert run_glmtui("env", "remove", far_name, "--engine", "far-tls", "--volumes", env=env).returncode == 0
    assert f"glmtui-{far_name}" not in names_on(remote)
    assert run_glmtui("env", "exec", far_name, "true", env=env).returncode == 0  # one left: no question


def test_a_mount_on_a_remote_engine_names_its_machine(remote, tmp_path, far_name):
    env = configured(tmp_path, remote.config("ssh"))
    created = run_glmtui("env", "create", far_name, "--image", BUSYBOX, "--engine", "far-ssh",
                         "--mount", "/etc:/host-etc:ro", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stderr == ("note: --mount /etc:/host-etc: /etc is a path on the machine of engine far-ssh "
                              "(ssh://glmtui-test), not on this one\n")
    refused = run_glmtui("env", "create", unique_name(), "--engine", "far-ssh", "--mount",
                         "/var/run/docker.sock:/s", env=env)
    assert refused.returncode == 2 and "gives the environment the Docker socket" in refused.stderr


# -- plans --------------------------------------------------------------------------------------


def test_a_plan_runs_on_the_engine_it_names_and_its_run_records_it(remote, tmp_path, far_name):
    env = configured(tmp_path, remote.config("ssh"))
    plan = write_plan(tmp_path, """
        version: 1
        name: far
        env: {name: @NAME@, engine: far-ssh, image: glmtui/busybox:latest}
        steps:
          - id: where
            run: cat /etc/hostname
        """, NAME=far_name)
    result = run_glmtui("--run", str(plan), "--json", env=env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    run_id = events[0]["run_id"]
    hostname = remote.docker("inspect", "-f", "{{.Config.Hostname}}", f"glmtui-{far_name}").stdout.strip()
    assert any(hostname in line for e in events if e["event"] == "output" for line in e["lines"])
    record = json.loads(run_glmtui("runs", "show", run_id, "--json", env=env).stdout)
    assert (record["environment"], record["engine"]) == (far_name, "far-ssh")
    assert "on engine far-ssh" in run_glmtui("runs", "show", run_id, env=env).stdout


def test_a_plan_s_bind_mount_on_a_remote_engine_is_refused_before_the_run(remote, tmp_path):
    env = configured(tmp_path, remote.config("tls"))
    plan = write_plan(tmp_path, """
        version: 1
        name: mounted
        env: {engine: far-tls, image: glmtui/busybox:latest, mounts: ["./data:/data:ro"]}
        steps:
          - id: look
            run: ls /data
        """)
    (tmp_path / "data").mkdir()
    runs_before = run_glmtui("runs", "--json", env=env).stdout
    result = run_glmtui("--run", str(plan), env=env)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (
        f"glmtui: error: env.mounts: engine far-tls ({remote.dockerd.tls_host}) may be another machine, where the "
        "host path of a bind mount names that machine's files, not this one's (bring files in with env.copy, or "
        "run on an engine of this machine (unix://))")
    assert run_glmtui("runs", "--json", env=env).stdout == runs_before
    unknown = write_plan(tmp_path, "version: 1\nname: u\nenv: {engine: nowhere}\nsteps:\n  - id: a\n    run: 'true'\n",
                         name="unknown.yaml")
    missing = run_glmtui("--run", str(unknown), env=env)
    assert missing.returncode == 2
    assert one_error_line(missing.stderr) == ("glmtui: error: no engine named 'nowhere' "
                                              "(`glmtui engines list` shows them)")


# -- SSH connections are reused -----------------------------------------------------------------


def sessions_started(remote: Any) -> int:
    return (remote.sshd.root / "sshd.log").read_text().count("Starting session: command")


def logins(remote: Any) -> int:
    return (remote.sshd.root / "sshd.log").read_text().count("Accepted publickey")


async def test_an_ssh_engine_logs_in_once_and_starts_no_session_per_request(remote):
    """One SSH connection (the master) for every command, kept between commands; the engine's
    socket forwarded through it, so a request starts no process on either side."""
    from glmtui.docker.engine import Engine

    logged_in = logins(remote)
    engine = await Engine.connect(remote.endpoint("ssh"))
    sessions = sessions_started(remote)
    name = unique_name()
    try:
        await engine.create_environment(EnvSpec(name=name, image=BUSYBOX))
        for _ in range(10):
            await engine.list_environments()
            assert (await engine.exec(name, ["true"])).ok
        assert sessions_started(remote) == sessions
    finally:
        await engine.remove_environment(name, volume=True)
        await engine.close()
    for _ in range(3):
        assert run_glmtui("env", "list", "--engine", "far-ssh", env=configured_ssh(remote)).returncode == 0
    assert sessions_started(remote) == sessions
    assert logins(remote) - logged_in <= 1  # the master, made once (or still there from an earlier test)
    assert "glmtui-test" in remote.sshd.masters()


async def test_a_forward_that_stopped_working_gives_way_to_dial_stdio_then_comes_back(remote):
    from glmtui.docker.engine import Engine

    engine = await Engine.connect(remote.endpoint("ssh"))
    await engine.close()
    forwards = list((remote.sshd.runtime / "glmtui").glob("docker-*.sock"))
    assert len(forwards) == 1
    forwards[0].unlink()
    with socket.socket(socket.AF_UNIX) as dead:  # a socket file nothing listens on
        dead.bind(str(forwards[0]))
    sessions = sessions_started(remote)
    engine = await Engine.connect(remote.endpoint("ssh"))
    try:
        await engine.list_environments()
        assert sessions_started(remote) > sessions  # through dial-stdio
    finally:
        await engine.close()
    sessions = sessions_started(remote)
    engine = await Engine.connect(remote.endpoint("ssh"))  # the next one sets the forward up again
    try:
        await engine.list_environments()
        assert forwards[0].is_socket()
        after = sessions_started(remote)
        await engine.list_environments()
        assert sessions_started(remote) == after and after - sessions <= 1  # `docker context inspect` there
    finally:
        await engine.close()


def configured_ssh(remote: Any) -> dict[str, str]:
    folder = remote.sshd.root / "glmtui-config"
    (folder / "glmtui").mkdir(parents=True, exist_ok=True)
    (folder / "glmtui" / "config.yaml").write_text(yaml.safe_dump({"engines": remote.config("ssh")}))
    return {"XDG_CONFIG_HOME": str(folder)}


def test_an_http_step_to_the_environment_of_a_remote_engine_says_it_cannot_reach_it(remote, tmp_path):
    env = configured(tmp_path, remote.config("tls"))
    plan = write_plan(tmp_path, """
        version: 1
        name: probe
        env: {engine: far-tls, image: glmtui/busybox:latest}
        steps:
          - id: call
            http: {url: "http://localhost:8080/"}
        """)
    result = run_glmtui("--run", str(plan), "--json", env=env)
    assert result.returncode == 1, result.stderr
    finished = [json.loads(line) for line in result.stdout.splitlines() if '"step_finished"' in line][0]
    assert finished["status"] == "failure"
    assert finished["reason"].startswith("step call: localhost means the environment, which is on engine far-tls "
                                         f"({remote.dockerd.tls_host}), maybe another machine")


def test_clean_and_container_logs_on_a_remote_engine(remote, tmp_path, far_name):
    env = configured(tmp_path, remote.config("ssh"))
    assert run_glmtui("env", "create", far_name, "--image", BUSYBOX, "--engine", "far-ssh", env=env).returncode == 0
    assert run_glmtui("env", "exec", far_name, "sh", "-c", "echo to-pid-1 > /proc/1/fd/1", env=env).returncode == 0
    logs = run_glmtui("logs", far_name, "--container", env=env)
    assert (logs.returncode, logs.stdout) == (0, "to-pid-1\n")
    assert run_glmtui("env", "stop", far_name, "-t", "0", env=env).returncode == 0
    kept = run_glmtui("clean", "--engine", "far-ssh", env=env)
    assert kept.returncode == 0 and far_name in kept.stdout and "kept" in kept.stdout
    cleaned = run_glmtui("clean", far_name, "--engine", "far-ssh", env=env)
    assert cleaned.returncode == 0 and f"removed 1 environment: {far_name}" in cleaned.stdout
    assert f"glmtui-{far_name}" not in names_on(remote)
