"""Egress allowlists against the real engine: an environment on an internal network whose only
way out is glmtui's egress proxy. Every endpoint is a container these tests start, on a Docker
network of their own that the proxy joins: two HTTP servers and one TLS server, reached by name."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SESSION_PREFIX, WORKSPACE, child_env, docker, one_error_line, remove_quietly, unique_name

pytestmark = pytest.mark.docker

PROXY = "glmtui.egress"
# A server that answers every GET with its own name; with a certificate, over TLS.
SERVER = """
import http.server, ssl, sys
name, port = sys.argv[1], int(sys.argv[2])
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {name}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Answer)
if len(sys.argv) > 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


class Servers:
    def __init__(self, network: str, containers: dict[str, str], ca: Path) -> None:
        self.network = network
        self.containers = containers  # alias -> container
        self.ca = ca

    def address(self, alias: str) -> str:
        info = json.loads(docker("inspect", self.containers[alias]).stdout)[0]
        return info["NetworkSettings"]["Networks"][self.network]["IPAddress"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    folder = tmp_path_factory.mktemp("egress-servers")
    (folder / "server.py").write_text(SERVER)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tls1",
                    "-addext", "subjectAltName=DNS:tls1,DNS:tls2", "-keyout", "key.pem", "-out", "cert.pem"],
                   cwd=folder, check=True, capture_output=True, timeout=60)
    (folder / "key.pem").chmod(0o644)
    network = f"glmtui-{SESSION_PREFIX}-egress-net"
    containers: dict[str, str] = {}
    docker("network", "create", network)
    try:
        for alias, port, tls in (("web1", 8000, False), ("web2", 8000, False), ("tls1", 443, True),
                                 ("tls2", 443, True)):
            containers[alias] = f"glmtui-{SESSION_PREFIX}-egress-{alias}"
            extra = ["/s/cert.pem", "/s/key.pem"] if tls else []
            docker("run", "-d", "--name", containers[alias], "--network", network, "--network-alias", alias,
                   "-v", f"{folder}:/s:ro", "--user", "0", "--entrypoint", "python3", WORKSPACE,
                   "/s/server.py", alias, str(port), *extra)
        # The proxy (made by the first environment with an allowlist) reaches the servers by name.
        first = subprocess.run([sys.executable, "-m", "glmtui", "env", "create", f"{SESSION_PREFIX}-egress-first",
                                "--image", "glmtui/busybox:latest", "--allow", "web1"], capture_output=True, text=True,
                               timeout=180, env=child_env())
        assert first.returncode == 0, first.stderr
        remove_quietly(f"{SESSION_PREFIX}-egress-first")
        docker("network", "connect", network, PROXY)
        yield Servers(network, containers, folder / "cert.pem")
    finally:
        if containers:
            docker("rm", "-f", *containers.values(), check=False)
        docker("network", "disconnect", "-f", network, PROXY, check=False)
        docker("network", "rm", network, check=False)


def make_limited(glmtui, name: str, servers: Servers, *allow: str) -> None:
    """An environment of the workspace image with an allowlist, and the servers' certificate in it."""
    flags = [flag for host in allow for flag in ("--allow", host)]
    created = glmtui("env", "create", name, "--image", WORKSPACE, *flags, timeout=180)
    assert created.returncode == 0, created.stderr
    docker("cp", str(servers.ca), f"glmtui-{name}:/tmp/ca.pem")


def curl(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return docker("exec", f"glmtui-{name}", "curl", "-sS", "-m", "5", *args, check=False, timeout=30)


def test_only_the_allowed_hosts_answer_and_every_refusal_says_why(glmtui, env_name, servers) -> None:
    make_limited(glmtui, env_name, servers, "web1:8000", "tls1")

    assert curl(env_name, "http://web1:8000/").stdout == "hello from web1\n"
    assert curl(env_name, "--cacert", "/tmp/ca.pem", "https://tls1/").stdout == "hello from tls1\n"

    denied = curl(env_name, "-i", "http://web2:8000/")
    assert "403 blocked: web2:8000 is not in this environment's allowlist" in denied.stdout
    assert "blocked: web2:8000 is not in this environment's allowlist\n" in denied.stdout
    tunnel = curl(env_name, "--cacert", "/tmp/ca.pem", "https://tls2/")
    assert tunnel.returncode != 0 and "403" in tunnel.stderr
    # The CONNECT names tls1 (allowed), the TLS server name tls2: refused.
    mismatch = curl(env_name, "--cacert", "/tmp/ca.pem", "--connect-to", "tls2:443:tls1:443", "https://tls2/")
    assert mismatch.returncode != 0 and "hello" not in mismatch.stdout
    # Around the proxy: no name resolution, and no route to the server's address.
    direct = curl(env_name, "--noproxy", "*", f"http://{servers.address('web1')}:8000/")
    assert direct.returncode != 0 and "hello" not in direct.stdout

    blocked = glmtui("env", "blocked", env_name, "--json")
    assert blocked.returncode == 0, blocked.stderr
    refusals = json.loads(blocked.stdout)
    assert [(r["host"], r["port"]) for r in refusals] == [("web2", 8000), ("tls2", 443), ("tls1", 443)]
    assert refusals[0]["line"] == "blocked: web2:8000 is not in this environment's allowlist"
    assert refusals[2]["reason"] == "the TLS server name 'tls2' is not the CONNECT host 'tls1'"
    assert refusals[2]["line"] == "blocked: tls1:443: the TLS server name 'tls2' is not the CONNECT host 'tls1'"
    shown = glmtui("env", "blocked", env_name).stdout
    assert "blocked: tls2:443 is not in this environment's allowlist" in shown


def test_the_allowlist_changes_on_a_running_environment_at_once(glmtui, env_name, servers) -> None:
    make_limited(glmtui, env_name, servers, "web1:8000")
    assert "403" in curl(env_name, "-i", "http://web2:8000/").stdout

    added = glmtui("env", "allow", env_name, "web2:8000")
    assert added.returncode == 0, added.stderr
    assert added.stdout.split() == ["web1:8000", "web2:8000"]
    assert curl(env_name, "http://web2:8000/").stdout == "hello from web2\n"

    removed = glmtui("env", "allow", env_name, "--remove", "web1:8000")
    assert removed.stdout.split() == ["web2:8000"]
    assert "403" in curl(env_name, "-i", "http://web1:8000/").stdout
    assert glmtui("env", "allow", env_name).stdout.split() == ["web2:8000"]


def test_the_environment_has_no_way_out_but_the_proxy_and_goes_with_its_network(glmtui, env_name, servers) -> None:
    make_limited(glmtui, env_name, servers, "web1")
    info = json.loads(docker("inspect", f"glmtui-{env_name}").stdout)[0]
    network = f"glmtui.egress-{env_name}"
    assert list(info["NetworkSettings"]["Networks"]) == [network]
    assert "NET_ADMIN" not in info["HostConfig"]["CapAdd"]
    assert json.loads(docker("network", "inspect", network).stdout)[0]["Internal"] is True
    variables = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert variables["HTTPS_PROXY"] == variables["HTTP_PROXY"] == "http://glmtui-egress:3128"

    assert glmtui("env", "remove", env_name).returncode == 0
    assert docker("network", "inspect", network, check=False).returncode != 0
    gone = docker("exec", PROXY, "ls", "/egress/allow").stdout
    assert f"{env_name}.json" not in gone


@pytest.mark.asyncio(loop_scope="session")
async def test_the_agents_bash_result_and_a_plan_steps_output_say_what_was_blocked(
    glmtui, env_name, servers, engine, tmp_path,
) -> None:
    from glmtui.agent.tools import Toolbox

    make_limited(glmtui, env_name, servers, "web1:8000")
    result = await Toolbox(engine, env_name).call("bash", {"command": "curl -sS -m 5 -f http://web2:8000/"})
    assert "glmtui: blocked: web2:8000 is not in this environment's allowlist" in result.output
    allowed = await Toolbox(engine, env_name).call("bash", {"command": "curl -sS -m 5 http://web1:8000/"})
    assert allowed.output == "hello from web1\nexit code 0"

    plan = tmp_path / "limited.yaml"
    plan.write_text(f"""version: 1
name: limited
env:
  image: {WORKSPACE}
  network: {{allow: [web1:8000]}}
steps:
  - id: fetch
    run: |
      curl -sS -m 5 http://web1:8000/
      curl -sS -m 5 -o /dev/null -w '%{{http_code}}\\n' http://web2:8000/
""")
    ran = glmtui("--run", str(plan), timeout=180)
    assert ran.returncode == 0, ran.stderr
    shown = ran.stdout + ran.stderr
    assert "hello from web1" in shown and "403" in shown
    assert "glmtui: blocked: web2:8000 is not in this environment's allowlist" in shown
    inspected = glmtui("plan", "inspect", str(plan))
    assert "network only web1:8000 (egress allowlist)" in inspected.stdout


def test_a_plan_in_a_named_environment_made_with_an_allowlist_says_what_was_blocked(
    glmtui, env_name, servers, tmp_path,
) -> None:
    make_limited(glmtui, env_name, servers, "web1:8000")
    plan = tmp_path / "named.yaml"
    plan.write_text(f"""version: 1
name: named
env: {{name: {env_name}}}
steps:
  - id: fetch
    run: curl -sS -m 5 -o /dev/null http://web2:8000/
""")
    ran = glmtui("--run", str(plan), timeout=180)
    assert ran.returncode == 0, ran.stderr
    assert "glmtui: blocked: web2:8000 is not in this environment's allowlist" in ran.stdout + ran.stderr


def test_a_plan_with_a_bad_allowlist_entry_is_refused_at_its_line(glmtui, tmp_path) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("version: 1\nname: bad\nenv:\n  network:\n    allow: [pypi.org, 'no way']\n"
                    "steps:\n  - id: a\n    run: 'true'\n")
    checked = glmtui("plan", "validate", str(plan))
    assert checked.returncode == 2
    assert "bad.yaml:5" in checked.stderr + checked.stdout
    assert "allowlist entry 'no way' is not a host name" in checked.stderr + checked.stdout


def test_bad_allowlists_are_refused_before_anything_is_made(glmtui) -> None:
    name = unique_name()
    for args, says in (
        (("--allow", "not a host!"), "allowlist entry 'not a host!' is not a host name"),
        (("--allow", "pypi.org:99999"), "is not a port"),
        (("--allow", "pypi.org", "--network", "none"), "an allowlist and network 'none' do not go together"),
    ):
        refused = glmtui("env", "create", name, "--image", WORKSPACE, *args)
        assert refused.returncode == 2, refused.stderr
        assert says in one_error_line(refused.stderr)
    assert docker("container", "inspect", f"glmtui-{name}", check=False).returncode != 0
    assert docker("network", "inspect", f"glmtui.egress-{name}", check=False).returncode != 0


def test_allow_on_an_environment_without_an_allowlist_says_so(glmtui, env_name) -> None:
    assert glmtui("env", "create", env_name, "--image", "glmtui/busybox:latest").returncode == 0
    name = env_name
    refused = glmtui("env", "allow", name, "pypi.org")
    assert refused.returncode == 2
    assert f"environment {name!r} has no allowlist" in one_error_line(refused.stderr)





def test_clean_would_take_the_helper_an_environment_removed_behind_its_back_left(glmtui, env_name, servers) -> None:
    """Only --dry-run here: `clean` acts on every glmtui container of the shared engine (a real
    clean is tested on an engine of its own, in test_clean.py)."""
    make_limited(glmtui, env_name, servers, "web1")
    assert glmtui("env", "checkpoint", env_name).returncode == 0
    docker("rm", "-f", f"glmtui-{env_name}")  # not through glmtui: its helper and network stay

    listed = glmtui("clean", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    helpers_line = next(line for line in listed.stdout.splitlines() if "checkpoint helper" in line)
    assert helpers_line.startswith("would remove ") and "(of environments that are gone): " in helpers_line
    assert env_name in helpers_line.split(": ", 1)[1].split(", ")
    # A network younger than a minute may be an environment's being made: it stays that long.
    assert f"glmtui.egress-{env_name}" not in listed.stdout


def test_past_a_megabyte_the_refusals_start_again_and_the_previous_ones_stay_listed(glmtui, env_name, servers) -> None:
    make_limited(glmtui, env_name, servers, "web1:8000")
    old = json.dumps({"time": 1.0, "host": "old.example", "port": 443, "reason": "not in the allowlist"})
    script = f"import sys\nwith open(sys.argv[1], 'w') as f:\n    f.write(({old!r} + '\\n') * 13000)\n"  # > 1 MiB
    docker("exec", PROXY, "python3", "-c", script, f"/egress/blocked/{env_name}.jsonl")
    assert "403" in curl(env_name, "-i", "http://web2:8000/").stdout

    files = docker("exec", PROXY, "ls", "/egress/blocked").stdout.split()
    assert f"{env_name}.jsonl.1" in files and f"{env_name}.jsonl" in files
    assert docker("exec", PROXY, "wc", "-l", f"/egress/blocked/{env_name}.jsonl").stdout.split()[0] == "1"
    refusals = json.loads(glmtui("env", "blocked", env_name, "--json").stdout)
    assert len(refusals) == 13001 and refusals[-1]["host"] == "web2" and refusals[0]["host"] == "old.example"
    assert glmtui("env", "remove", env_name).returncode == 0
    assert not [f for f in docker("exec", PROXY, "ls", "/egress/blocked").stdout.split() if env_name in f]


async def test_the_tuis_details_show_the_allowlist_and_what_was_refused(glmtui, env_name, servers, tmp_path) -> None:
    from test_tui_app import screen_text, select_env, tui, wait_until

    from glmtui.tui.screens.dialogs import EnvironmentDetails

    make_limited(glmtui, env_name, servers, "web1:8000")
    assert "blocked" in curl(env_name, "-i", "http://web2:8000/").stdout
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env_name)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EnvironmentDetails), what="the details")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "allowed  web1:8000" in text
        assert "blocked: web2:8000 is not in this environment's allowlist" in text
