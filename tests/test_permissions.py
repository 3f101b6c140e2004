"""Host-access permissions: a plan asks before it touches the host.

Every reproduction of issue 11's "A plan asks before it touches the host" is here: refused
by `plan validate` (exit 2, FILE:LINE:COL, the permission to add), refused by a run that was
not allowed (exit 2, one line, nothing created, no run record), and working when declared and
allowed, against the real engine. Then the checks at run time (paths known only then), the
policy of a server that a plan cannot widen, `plan inspect`, and copy steps.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

import helpers
from helpers import one_error_line, unique_name
from plan_helpers import containers, json_lines, lines_of, make_store, run_plan, write_plan

from glmtui.plan.model import PlanInvalid
from glmtui.plan.permissions import HostPath, NotGranted, Permissions
from glmtui.plan.validate import load_plan

pytestmark = pytest.mark.docker
LOCATED = re.compile(r"^(?P<file>/[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def errors(plan: Path) -> list[tuple[int, int, str]]:
    """(line, column, message) of each validation error of `plan`, in order."""
    with pytest.raises(PlanInvalid) as caught:
        load_plan([plan], environ={})
    return [(e.line, e.col, e.message) for e in caught.value.errors]


def validate(glmtui, plan: Path) -> list[tuple[int, int, str]]:
    """`glmtui plan validate PLAN` must refuse it (exit 2): its located lines, parsed."""
    done = glmtui("plan", "validate", str(plan))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    found = []
    for line in done.stderr.removeprefix("glmtui: error: ").splitlines():
        match = LOCATED.match(line)
        assert match and match["file"] == str(plan), line
        found.append((int(match["line"]), int(match["col"]), match["message"]))
    return found


def nothing_made(glmtui, plan_name: str) -> None:
    """No container of the plan, and no run record."""
    assert containers(f"label=glmtui.plan={plan_name}") == []
    runs = json.loads(glmtui("runs", "--json", "--limit", "1000").stdout)
    assert [r for r in runs if r["plan"] == plan_name] == []


def refused_for_want_of_allow(glmtui, plan: Path, *asks: str) -> None:
    """`glmtui --run PLAN` without --allow: exit 2, one line naming what it asks for."""
    done = glmtui("--run", str(plan))
    assert done.returncode == 2, (done.stdout, done.stderr)
    line = one_error_line(done.stderr)
    assert "asks for host access" in line and "run again with --allow to agree" in line, line
    for ask in asks:
        assert ask in line, (ask, line)
    assert done.stdout == ""


# --- the reproductions: refused by `plan validate`, working when declared and allowed -----------

SOCKET_FOLDER = """
    version: 1
    name: @NAME@
    @PERMISSIONS@
    env:
      image: glmtui/workspace:latest
      user: "0:0"
      mounts: ["@MOUNT@:/hostrun"]
    steps:
      - id: api
        run: |
          python3 -c '
          import socket
          s = socket.socket(socket.AF_UNIX)
          s.connect("/hostrun/docker.sock")
          s.sendall(b"GET /_ping HTTP/1.0\\r\\n\\r\\n")
          print(s.recv(200).decode().splitlines()[0])'
    """
SOCKET_PERMISSIONS = "permissions: {host_paths: [{path: @MOUNT@, write: true}], docker_socket: true, root: true}"


def test_a_mount_of_the_socket_folder_as_root_is_refused_by_validate(glmtui, tmp_path):
    plan = write_plan(tmp_path, SOCKET_FOLDER, NAME=unique_name(), PERMISSIONS="", MOUNT="/var/run")
    found = validate(glmtui, plan)
    assert [(line, col) for line, col, _ in found] == [(6, 9), (7, 12)]
    user, mount = found[0][2], found[1][2]
    assert user.startswith("user '0:0' runs as root with a writable bind mount ('/var/run:/hostrun')"), user
    assert "permissions: {root: true}" in user
    assert "reaches the Docker socket /run/docker.sock" in mount and "writes /var/run (/run) outside" in mount
    assert "permissions: {host_paths: [{path: /var/run, write: true}], docker_socket: true}" in mount


@pytest.mark.parametrize("link_to", ["/var/run", "/var/run/docker.sock"])
def test_a_symlink_to_the_socket_or_its_folder_is_caught_by_validate(glmtui, tmp_path, link_to):
    (tmp_path / "innocent").symlink_to(link_to)
    plan = write_plan(tmp_path, SOCKET_FOLDER, NAME=unique_name(), PERMISSIONS="", MOUNT="./innocent")
    messages = {(line, col): message for line, col, message in validate(glmtui, plan)}
    assert "reaches the Docker socket /run/docker.sock" in messages[(7, 12)], messages
    assert "docker_socket: true" in messages[(7, 12)]


def test_the_socket_folder_is_reached_only_when_declared_and_allowed(glmtui, workspace_image, tmp_path):
    (tmp_path / "innocent").symlink_to("/var/run")
    name = unique_name()
    plan = write_plan(tmp_path, SOCKET_FOLDER, NAME=name, PERMISSIONS=SOCKET_PERMISSIONS, MOUNT="./innocent")
    assert glmtui("plan", "validate", str(plan)).returncode == 0
    refused_for_want_of_allow(glmtui, plan, "write /run", "the Docker socket", "root with a writable bind mount")
    nothing_made(glmtui, name)
    done = glmtui("--run", str(plan), "--allow", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert lines_of(json_lines(done.stdout), "api") == ["HTTP/1.0 200 OK"]  # the whole Docker API


ROOT_OF_THE_HOST = """
    version: 1
    name: @NAME@
    @PERMISSIONS@
    env:
      image: glmtui/busybox:latest
      user: "0"
      mounts: ["/:/host"]
    steps:
      - id: write
        run: echo written by root > /host@TARGET@ && stat -c %u /host@TARGET@ && head -c 5 /host/etc/shadow
    """


def test_the_host_root_as_root_is_refused_and_works_when_declared_and_allowed(glmtui, busybox_image, tmp_path):
    target = tmp_path / "made-by-the-plan"
    name = unique_name()
    plan = write_plan(tmp_path / "p", ROOT_OF_THE_HOST, NAME=name, PERMISSIONS="", TARGET=str(target))
    found = validate(glmtui, plan)
    assert [(line, col) for line, col, _ in found] == [(6, 9), (7, 12)]
    assert "permissions: {root: true}" in found[0][2]
    assert "reaches the Docker socket /run/docker.sock" in found[1][2] and "writes / outside" in found[1][2]
    assert "permissions: {host_paths: [{path: /, write: true}], docker_socket: true}" in found[1][2]

    allowed = "permissions: {host_paths: [{path: /, write: true}], docker_socket: true, root: true}"
    plan = write_plan(tmp_path / "p", ROOT_OF_THE_HOST, NAME=name, PERMISSIONS=allowed, TARGET=str(target))
    refused_for_want_of_allow(glmtui, plan, "write /,", "the Docker socket", "root with a writable bind mount")
    assert not target.exists()
    done = glmtui("--run", str(plan), "--allow", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert target.read_text() == "written by root\n" and target.stat().st_uid == 0
    assert lines_of(json_lines(done.stdout), "write")[0] == "0"


def test_a_relative_mount_that_climbs_out_is_refused_and_works_when_declared(glmtui, busybox_image, tmp_path):
    (tmp_path / "secret.txt").write_text("outside the plan's folder\n")
    deep = tmp_path / "a" / "b" / "c"
    text = """
        version: 1
        name: @NAME@
        @PERMISSIONS@
        env:
          image: glmtui/busybox:latest
          mounts: ["../../..:/up:ro"]
        steps:
          - id: read
            run: cat /up/secret.txt
        """
    name = unique_name()
    plan = write_plan(deep, text, NAME=name, PERMISSIONS="")
    [(line, col, message)] = validate(glmtui, plan)
    assert (line, col) == (6, 12)
    assert message == (f"mount '../../..:/up:ro' reads ../../.. ({tmp_path}) outside the plan's folder: declare it at "
                       "the plan's top level with permissions: {host_paths: [{path: ../../..}]} (and run it with --allow)")
    plan = write_plan(deep, text, NAME=name, PERMISSIONS="permissions: {host_paths: [{path: ../../..}]}")
    refused_for_want_of_allow(glmtui, plan, f"read {tmp_path}")
    done = glmtui("--run", str(plan), "--allow", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert lines_of(json_lines(done.stdout), "read") == ["outside the plan's folder"]


COPY_OUT = """
    version: 1
    name: @NAME@
    @PERMISSIONS@
    env: {image: glmtui/busybox:latest}
    steps:
      - id: make
        run: echo from the environment > /tmp/f
      - id: out
        needs: [make]
        copy: {from: "env:/tmp/f", to: "@TO@"}
    """


def test_a_copy_out_of_the_plans_folder_is_refused_and_writes_when_declared_and_allowed(glmtui, busybox_image, tmp_path):
    deep = tmp_path / "one" / "two" / "three"
    outside = tmp_path / "x"
    name = unique_name()
    plan = write_plan(deep, COPY_OUT, NAME=name, PERMISSIONS="", TO="../../../x")
    [(line, col, message)] = validate(glmtui, plan)
    assert (line, col) == (10, 36)
    assert message == (f"copy to '../../../x' writes ../../../x ({outside}) outside the plan's folder: declare it at "
                       "the plan's top level with permissions: {host_paths: [{path: ../../../x, write: true}]} "
                       "(and run it with --allow)")
    read_only = "permissions: {host_paths: [{path: ../../../x}]}"
    plan = write_plan(deep, COPY_OUT, NAME=name, PERMISSIONS=read_only, TO="../../../x")
    assert "write: true" in validate(glmtui, plan)[0][2], "reading does not cover writing"
    covering = f"permissions: {{host_paths: [{{path: {tmp_path}, write: true}}]}}"  # a folder covers what is in it
    plan = write_plan(deep, COPY_OUT, NAME=name, PERMISSIONS=covering, TO="../../../x")
    refused_for_want_of_allow(glmtui, plan, f"write {tmp_path}")
    assert not outside.exists()
    done = glmtui("--run", str(plan), "--allow")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert outside.read_text() == "from the environment\n"


def test_a_copy_in_of_any_host_file_is_refused_and_reads_when_declared_and_allowed(glmtui, busybox_image, tmp_path):
    host_file = tmp_path / "host" / "any-file"
    host_file.parent.mkdir()
    host_file.write_text("a host file\n")
    text = """
        version: 1
        name: @NAME@
        @PERMISSIONS@
        env: {image: glmtui/busybox:latest}
        steps:
          - id: in
            copy: {from: "@FROM@", to: "env:/x"}
          - id: show
            needs: [in]
            run: cat /x
        """
    name = unique_name()
    plan = write_plan(tmp_path / "plan", text, NAME=name, PERMISSIONS="", FROM=str(host_file))
    [(line, col, message)] = validate(glmtui, plan)
    assert (line, col) == (7, 18)
    assert f"copy from '{host_file}' reads {host_file} outside the plan's folder" in message
    assert f"permissions: {{host_paths: [{{path: {host_file}}}]}}" in message
    plan = write_plan(tmp_path / "plan", text, NAME=name, FROM=str(host_file),
                      PERMISSIONS=f"permissions: {{host_paths: [{{path: {host_file.parent}}}]}}")
    refused_for_want_of_allow(glmtui, plan, f"read {host_file.parent}")
    done = glmtui("--run", str(plan), "--allow", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert lines_of(json_lines(done.stdout), "show") == ["a host file"]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"only on the host's loopback\n")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_host_network_is_refused_and_reaches_the_hosts_loopback_when_declared_and_allowed(
    glmtui, workspace_image, tmp_path
):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    text = """
        version: 1
        name: @NAME@
        @PERMISSIONS@
        env: {image: glmtui/workspace:latest, network: host}
        steps:
          - id: local
            run: python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:@PORT@/", timeout=5).read().decode())' 
        """
    name, port = unique_name(), str(server.server_address[1])
    try:
        plan = write_plan(tmp_path, text, NAME=name, PERMISSIONS="", PORT=port)
        [(line, col, message)] = validate(glmtui, plan)
        assert (line, col) == (4, 48)
        assert message.startswith("network: host shares the host's network, services on its loopback too: ")
        assert "permissions: {network_host: true}" in message
        plan = write_plan(tmp_path, text, NAME=name, PERMISSIONS="permissions: {network_host: true}", PORT=port)
        refused_for_want_of_allow(glmtui, plan, "the host's network")
        nothing_made(glmtui, name)
        done = glmtui("--run", str(plan), "--allow", "--json")
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert lines_of(json_lines(done.stdout), "local")[0] == "only on the host's loopback"
    finally:
        server.shutdown()


def test_everything_else_that_reaches_the_host_is_located(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "Dockerfile").write_text("FROM scratch\n")
    plan = write_plan(tmp_path / "plan", """
        version: 1
        name: others
        env:
          build: {context: ../outside, network: host}
          copy: ["../outside:/in"]
          mounts: ["./rw:/rw", "./ro:/ro:ro"]
        components:
          save:
            copy: {from: "env:/out", to: /tmp/anywhere}
        steps:
          - id: a
            use: save
        """)
    (tmp_path / "plan" / "rw").mkdir()
    (tmp_path / "plan" / "ro").mkdir()
    found = {(line, col): message for line, col, message in errors(plan)}
    assert sorted(found) == [(4, 20), (4, 41), (5, 10), (6, 12), (9, 34)], found
    assert "build context '../outside' sends the engine the files of ../outside" in found[(4, 20)]
    assert "build.network: host shares the host's network" in found[(4, 41)]
    assert "env.copy '../outside:/in' reads ../outside" in found[(5, 10)]
    assert found[(6, 12)].startswith("mount './rw:/rw' is writable and env has no user: the image's user, often root,")
    assert 'set env.user to a user that is not root (e.g. user: "1000:1000"), or declare' in found[(6, 12)]
    assert "permissions: {host_paths: [{path: /tmp/anywhere, write: true}]}" in found[(9, 34)]


def test_allow_docker_socket_is_gone_and_says_what_to_write(tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: old
        env:
          allow_docker_socket: true
        steps: [{id: a, run: "true"}]
        """)
    assert errors(plan) == [(4, 3, "allow_docker_socket is replaced by permissions: remove it and declare, at the "
                                   "plan's top level, permissions: {docker_socket: true} (then run the plan with --allow)")]


def test_a_permission_path_is_written_out(tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: exprs
        inputs: {dir: {default: /tmp}}
        permissions:
          host_paths: [{path: "${inputs.dir}", write: true}]
        steps: [{id: a, run: "true"}]
        """)
    [(line, col, message)] = errors(plan)
    assert (line, col) == (5, 23) and "written out, without ${...}" in message


# --- at run time: what only a run knows ---------------------------------------------------------------


async def test_a_path_from_an_input_is_checked_when_the_run_knows_it(engine, busybox_image, tmp_path):
    """Mounts and copies whose host path comes from ${...}: refused at run time beyond the plan's
    folder and what was granted, in one line naming the path and the permission."""
    granted = tmp_path / "granted"
    granted.mkdir()
    (tmp_path / "plan").mkdir()
    plan = write_plan(tmp_path / "plan", """
        version: 1
        name: @NAME@
        inputs: {to: {}, mount: {default: ./here}}
        permissions:
          host_paths: [{path: ../granted, write: true}]
        env:
          image: glmtui/busybox:latest
          mounts: ["${inputs.mount}:/m:ro"]
        steps:
          - id: make
            run: echo made > /tmp/f
          - id: out
            needs: [make]
            copy: {from: "env:/tmp/f", to: "${inputs.to}"}
        """, NAME=unique_name())
    (tmp_path / "plan" / "here").mkdir()
    escaped = await run_plan(engine, plan, inputs={"to": "../../escaped"}, allow=True)
    out = escaped.finished("out")
    assert out.status == "failure"
    assert out.reason == (f"copy to '../../escaped': {tmp_path.parent / 'escaped'} is outside the plan's folder and "
                          f"write access to it was not granted (it needs permissions: {{host_paths: [{{path: "
                          f"'{tmp_path.parent / 'escaped'}', write: true}}]}})")
    assert not (tmp_path.parent / "escaped").exists()
    assert "Traceback" not in escaped.store.log_file(escaped.run_id, "out").read_text()

    inside = await run_plan(engine, plan, inputs={"to": "../granted/f"}, allow=True)
    assert inside.finished("out").status == "success" and (granted / "f").read_text() == "made\n"

    mounted = await run_plan(engine, plan, inputs={"to": "./f", "mount": "/etc"}, allow=True)
    assert mounted.status == "failure" and mounted.of("step_started") == []
    [error] = [e.message for e in mounted.of("progress") if e.message.startswith("error:")]
    assert error == ("error: mount '/etc:/m:ro': /etc is outside the plan's folder and read access to it was not "
                     "granted (it needs permissions: {host_paths: [{path: '/etc'}]})")
    assert containers(f"label=glmtui.run={mounted.run_id}") == []
    probe = await run_plan(engine, plan, inputs={"to": "./f", "mount": "/no/such/folder"}, allow=True)
    [error] = [e.message for e in probe.of("progress") if e.message.startswith("error:")]
    assert "read access to it was not granted" in error, "refused before it is looked at: no probing the host"


async def test_a_link_planted_at_run_time_does_not_lead_a_copy_out_of_the_plans_folder(engine, busybox_image, tmp_path):
    """A step makes a link in a mounted folder of the plan; a later copy out through it is refused."""
    shared = tmp_path / "plan" / "shared"
    shared.mkdir(parents=True)
    os.chmod(shared, 0o777)
    plan = write_plan(tmp_path / "plan", """
        version: 1
        name: @NAME@
        env:
          image: glmtui/busybox:latest
          user: "1000:1000"
          mounts: ["./shared:/shared"]
        steps:
          - id: plant
            run: echo payload > /tmp/f && ln -s @OUTSIDE@ /shared/door
          - id: out
            needs: [plant]
            copy: {from: "env:/tmp/f", to: ./shared/door/f}
        """, NAME=unique_name(), OUTSIDE=str(tmp_path))
    outcome = await run_plan(engine, plan)
    assert outcome.finished("plant").status == "success"
    out = outcome.finished("out")
    assert out.status == "failure" and f"{tmp_path}/f is outside the plan's folder" in out.reason
    assert not (tmp_path / "f").exists()


async def test_a_named_environment_made_with_host_mounts_is_not_reused_without_them(
    engine, busybox_image, env_name, tmp_path
):
    """An environment made earlier (by hand, or by an allowed plan) brings its mounts along:
    a plan reusing it needs what they reach."""
    from glmtui.docker.spec import EnvSpec, Mount

    (tmp_path / "host-data").mkdir()
    await engine.create_environment(EnvSpec(name=env_name, image=busybox_image, user="1000:1000",
                                            mounts=(Mount.parse(f"{tmp_path}/host-data:/data"),)))
    text = """
        version: 1
        name: reuser
        @PERMISSIONS@
        env: {name: @ENV@}
        steps: [{id: look, run: ls /data}]
        """
    plan = write_plan(tmp_path / "plan", text, ENV=env_name, PERMISSIONS="")
    refused = await run_plan(engine, plan)
    assert refused.status == "failure" and refused.of("step_started") == []
    [error] = [e.message for e in refused.of("progress") if e.message.startswith("error:")]
    assert error.startswith(f"error: environment {env_name} (its mount of {tmp_path}/host-data): {tmp_path}/host-data "
                            "is outside the plan's folder and write access to it was not granted"), error
    declared = "permissions: {host_paths: [{path: ../host-data, write: true}]}"
    plan = write_plan(tmp_path / "plan", text, ENV=env_name, PERMISSIONS=declared)
    assert (await run_plan(engine, plan, allow=True)).finished("look").status == "success"


async def test_a_user_name_that_is_root_in_the_image_is_root(engine, busybox_image, tmp_path):
    """`user: toor` is uid 0 in this image: caught when the environment exists, before any step."""
    from glmtui.docker.images import build_folder

    folder = tmp_path / "image"
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo 'toor:x:0:0::/:/bin/sh' >> /etc/passwd\n")
    repo = f"glmtui/{unique_name()}"
    image = (await build_folder(engine, folder, repo)).image
    try:
        (tmp_path / "plan" / "rw").mkdir(parents=True)
        plan = write_plan(tmp_path / "plan", """
            version: 1
            name: @NAME@
            env: {image: @IMAGE@, user: toor, mounts: ["./rw:/rw"]}
            steps: [{id: never, run: touch /rw/root-owned}]
            """, NAME=unique_name(), IMAGE=image)
        outcome = await run_plan(engine, plan)
        assert outcome.status == "failure" and outcome.of("step_started") == []
        [error] = [e.message for e in outcome.of("progress") if e.message.startswith("error:")]
        assert "runs as root (user 'toor' is uid 0) with a writable bind mount" in error
        assert "permissions: {root: true}" in error
        assert containers(f"label=glmtui.run={outcome.run_id}") == []
        assert not (tmp_path / "plan" / "rw" / "root-owned").exists()
    finally:
        helpers.docker("rmi", "-f", image, f"{repo}:latest", check=False)


# --- a server's policy: a plan can never widen it ---------------------------------------------------


async def test_a_servers_policy_is_never_widened_by_the_plan(engine, busybox_image, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "in.txt").write_text("granted\n")
    (tmp_path / "elsewhere.txt").write_text("not granted\n")
    policy = Permissions(host_paths=(HostPath(data),))  # what the server allows plans: reading data/
    text = """
        version: 1
        name: @NAME@
        inputs: {src: {}}
        permissions: @PERMISSIONS@
        env: {image: glmtui/busybox:latest}
        steps:
          - id: in
            copy: {from: "${inputs.src}", to: "env:/in.txt"}
          - {id: show, needs: [in], run: cat /in.txt}
        """
    store = make_store(tmp_path / "records")
    wider = [
        "{host_paths: [{path: ../data, write: true}]}",  # writing where reading was allowed
        "{host_paths: [{path: /}]}",  # more than data/
        "{host_paths: [{path: ../data/sub}], network_host: true}",  # something else too
    ]
    for permissions in wider:
        name = unique_name()
        plan = write_plan(tmp_path / "plan", text, NAME=name, PERMISSIONS=permissions)
        refused = await run_plan(engine, plan, inputs={"src": "../data/sub/in.txt"}, store=store, grant=policy)
        assert isinstance(refused.error, NotGranted) and refused.exit_code == 2, refused.error
        assert str(refused.error).startswith(f"plan {name} asks for host access that was not granted: ")
        assert refused.events == [] and store.runs(100) == [], "nothing started, nothing recorded"
        assert containers(f"label=glmtui.plan={name}") == []

    plan = write_plan(tmp_path / "plan", text, NAME=unique_name(), PERMISSIONS="{host_paths: [{path: ../data/sub}]}")
    within = await run_plan(engine, plan, inputs={"src": "../data/sub/in.txt"}, store=store, grant=policy)
    assert within.finished("show").status == "success" and within.lines("show") == ["granted"]
    # at run time the run reaches what the plan declared (inside the policy), not the rest of the policy
    beyond = await run_plan(engine, plan, inputs={"src": "../elsewhere.txt"}, store=store, grant=policy)
    assert beyond.finished("in").status == "failure" and "read access to it was not granted" in beyond.finished("in").reason


def test_a_grant_covers_what_it_names_and_what_is_inside(tmp_path):
    declared = Permissions(host_paths=(HostPath(tmp_path / "a" / "b", write=True),), network_host=True)
    assert not Permissions(host_paths=(HostPath(tmp_path, write=True),), network_host=True).missing(declared)
    assert Permissions(host_paths=(HostPath(tmp_path),), network_host=True).missing(declared).host_paths
    assert Permissions(host_paths=(HostPath(tmp_path / "a" / "bc", write=True),), network_host=True).missing(declared)
    assert Permissions(host_paths=(HostPath(tmp_path, write=True),)).missing(declared) == Permissions(network_host=True)
    assert not Permissions()
    assert Permissions(root=True)


# --- plan inspect --------------------------------------------------------------------------------------


def test_inspect_shows_the_permissions_first(glmtui, tmp_path):
    plan = write_plan(tmp_path / "plan", """
        version: 1
        name: asks
        permissions:
          host_paths: [{path: ../out, write: true}, {path: /etc/hostname}]
          network_host: true
        env: {network: host}
        steps:
          - {id: in, copy: {from: /etc/hostname, to: "env:/h"}}
          - {id: out, copy: {from: "env:/h", to: ../out/h}}
        """)
    text = glmtui("plan", "inspect", str(plan))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[:4] == [
        "permissions (host access; run it with --allow to agree):",
        f"  write {tmp_path / 'out'}",
        "  read /etc/hostname",
        "  the host's network",
    ]
    as_json = glmtui("plan", "inspect", str(plan), "--json")
    data = json.loads(as_json.stdout)
    assert next(iter(data)) == "permissions"
    assert data["permissions"] == {
        "host_paths": [{"path": str(tmp_path / "out"), "write": True}, {"path": "/etc/hostname", "write": False}],
        "network_host": True, "docker_socket": False, "root": False,
        "asks": [f"write {tmp_path / 'out'}", "read /etc/hostname", "the host's network"],
    }
    none = glmtui("plan", "inspect", str(helpers.PROJECT_ROOT / "plans" / "hello.yaml"))
    assert none.stdout.splitlines()[0] == "permissions: none (nothing on the host beyond the plan's folder)"


# --- copy steps --------------------------------------------------------------------------------------


def test_a_copy_step_needs_exactly_one_side_in_the_environment(glmtui, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: copies
        inputs: {src: {default: a}}
        components:
          twice: {copy: {from: "env:/a", to: "env:/b"}}
        steps:
          - id: neither
            copy: {from: ./a, to: ./b}
          - id: both
            use: twice
          - id: unknown-yet
            copy: {from: "${inputs.src}", to: ./b}
        """)
    found = validate(glmtui, plan)
    assert found == [
        (5, 17, "copy is between the host and the environment, and both sides are env:; to copy inside the "
                "environment, use run: cp ..."),
        (8, 11, "copy needs one side in the environment: write env:/path on that side (from: env:/... copies out "
                "to the host, to: env:/... copies in)"),
    ]
