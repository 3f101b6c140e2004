"""The engine layer against the real Docker engine, checked from outside with the `docker` CLI."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from helpers import (
    container_exists,
    container_of,
    docker,
    docker_inspect,
    processes,
    ps_has,
    unique_name,
    volume_exists,
    volume_of,
)

from glmtui.docker.engine import STDERR, STDOUT, Engine
from glmtui.docker.spec import EnvSpec, Mount, Resources, refuse_docker_socket
from glmtui.errors import BadInput, Conflict, EngineUnreachable, NotFound

pytestmark = pytest.mark.docker


# -- life cycle, limits, labels -------------------------------------------------------------


async def test_life_cycle(engine, busybox_image, env_name):
    created = await engine.create_environment(EnvSpec(name=env_name, image=busybox_image))
    assert created.name == env_name and created.running and created.workdir == "/workspace"
    assert created.image == busybox_image
    assert container_exists(env_name) and volume_exists(env_name)

    listed = {e.name: e for e in await engine.list_environments()}
    assert listed[env_name].id == created.id and listed[env_name].status == "running"
    assert (await engine.inspect_environment(env_name))["Id"] == created.id

    await engine.stop_environment(env_name, timeout=1)
    assert (await engine.get_environment(env_name)).status == "exited"
    assert docker_inspect(env_name)["State"]["Running"] is False

    await engine.start_environment(env_name)
    assert (await engine.get_environment(env_name)).running
    assert (await engine.exec(env_name, ["true"])).exit_code == 0

    await engine.remove_environment(env_name)
    assert not container_exists(env_name)
    assert volume_exists(env_name), "the workspace stays unless asked"
    with pytest.raises(NotFound):
        await engine.get_environment(env_name)
    assert env_name not in {e.name for e in await engine.list_environments()}


async def test_workspace_survives_recreation_and_remove_volume_drops_it(engine, busybox_image, env_name):
    spec = EnvSpec(name=env_name, image=busybox_image)
    await engine.create_environment(spec)
    await engine.write_file(env_name, "/workspace/kept.txt", b"still here\n")
    await engine.remove_environment(env_name)
    await engine.create_environment(spec)
    assert await engine.read_file(env_name, "/workspace/kept.txt") == b"still here\n"
    await engine.remove_environment(env_name, volume=True)
    assert not container_exists(env_name) and not volume_exists(env_name)


async def test_limits_labels_and_safe_defaults_in_docker_inspect(engine, make_env):
    env = await make_env(resources=Resources(memory=256 * 1024**2, cpus=0.5, pids=100), environment={"A": "b"})
    info = docker_inspect(env.name)
    host = info["HostConfig"]
    assert host["Memory"] == 256 * 1024**2
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 100
    assert host["Init"] is True
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["CapDrop"] == ["ALL"]
    assert "SYS_ADMIN" not in (host["CapAdd"] or []) and "NET_RAW" not in (host["CapAdd"] or [])
    labels = info["Config"]["Labels"]
    assert labels["glmtui.managed"] == "true" and labels["glmtui.env"] == env.name
    assert "A=b" in info["Config"]["Env"]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/workspace"]["Type"] == "volume" and mounts["/workspace"]["Name"] == volume_of(env.name)
    assert not any("docker.sock" in (m.get("Source") or "") for m in info["Mounts"])
    assert not any("docker.sock" in bind for bind in host["Binds"] or [])
    # and from the inside: the limit is real
    pids_max = await engine.exec(
        env.name, ["sh", "-c", "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"]
    )
    assert pids_max.stdout.strip() == b"100"


async def test_default_limits(make_env):
    env = await make_env()
    host = docker_inspect(env.name)["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (1024**3, 2_000_000_000, 1024)
    assert host["NetworkMode"] == "bridge"


async def test_network_none_and_bind_mount(make_env, tmp_path):
    (tmp_path / "hello.txt").write_text("from the host\n")
    env = await make_env(network="none", mounts=(Mount.parse(f"{tmp_path}:/data:ro"),))
    info = docker_inspect(env.name)
    assert info["HostConfig"]["NetworkMode"] == "none"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/data"]["Source"] == str(tmp_path) and mounts["/data"]["RW"] is False


# -- exec -------------------------------------------------------------------------------------


async def test_stdout_stderr_apart_and_exit_codes(engine, make_env):
    env = await make_env()
    result = await engine.exec(env.name, ["sh", "-c", "echo out; echo err >&2; echo more; exit 3"])
    assert result.stdout == b"out\nmore\n"
    assert result.stderr == b"err\n"
    assert result.exit_code == 3 and not result.ok and not result.timed_out and result.reason is None
    ok = await engine.exec(env.name, ["true"])
    assert ok.exit_code == 0 and ok.ok and ok.stdout == b"" and ok.stderr == b""
    assert (await engine.exec(env.name, ["sh", "-c", "exit 255"])).exit_code == 255


async def test_argv_is_never_a_shell_string(engine, make_env):
    env = await make_env()
    tricky = "$HOME; echo pwned `id` && rm -rf / 'quoted' \"x\""
    result = await engine.exec(env.name, ["echo", tricky])
    assert result.stdout == tricky.encode() + b"\n"


async def test_environment_workdir_and_user(engine, make_env):
    env = await make_env(environment={"FROM_SPEC": "spec"})
    result = await engine.exec(
        env.name,
        ["sh", "-c", 'echo "$FROM_SPEC|$EXTRA|$(pwd)|$(id -u)"'],
        environment={"EXTRA": "a b;c"},
        workdir="/tmp",
        user="1234",
    )
    assert result.stdout == b"spec|a b;c|/tmp|1234\n"
    default = await engine.exec(env.name, ["pwd"])
    assert default.stdout == b"/workspace\n"


async def test_output_arrives_as_it_comes(engine, make_env):
    env = await make_env()
    seen: list[tuple[float, int, bytes]] = []
    started = time.monotonic()
    result = await engine.exec(
        env.name,
        ["sh", "-c", "echo first; echo oops >&2; sleep 1; echo second"],
        on_output=lambda stream, data: seen.append((time.monotonic() - started, stream, data)),
    )
    ended = time.monotonic() - started
    assert result.exit_code == 0
    out = b"".join(data for _, stream, data in seen if stream == STDOUT)
    err = b"".join(data for _, stream, data in seen if stream == STDERR)
    assert out == b"first\nsecond\n" and err == b"oops\n"
    first_at = next(at for at, stream, data in seen if b"first" in data)
    assert ended - first_at >= 0.7, f"'first' came at {first_at:.2f}s, the command ended at {ended:.2f}s"
    # with a callback, the output goes there and not into the result
    assert result.stdout == b"" and result.stderr == b""


async def test_timeout_kills_every_process(engine, make_env):
    env = await make_env()
    started = time.monotonic()
    result = await engine.exec(env.name, ["sh", "-c", "sleep 300 & sleep 300"], timeout=1)
    assert time.monotonic() - started < 10
    assert result.timed_out and result.exit_code != 0
    assert result.reason and "timed out" in result.reason
    listing = processes(env.name)
    assert not ps_has(listing, "sleep 300"), listing


async def test_cancel_kills_every_process(engine, make_env):
    env = await make_env()
    task = asyncio.create_task(engine.exec(env.name, ["sh", "-c", "sleep 300 & sleep 300"]))
    for _ in range(100):
        if processes(env.name).count("sleep 300") >= 2:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the command did not start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    listing = processes(env.name)
    assert not ps_has(listing, "sleep 300"), listing
    # the environment is fine afterwards
    assert (await engine.exec(env.name, ["echo", "ok"])).stdout == b"ok\n"


async def test_timeout_leaves_other_commands_alone(engine, make_env):
    env = await make_env()
    other = asyncio.create_task(engine.exec(env.name, ["sh", "-c", "sleep 1.5; echo survived"]))
    await asyncio.sleep(0.2)
    result = await engine.exec(env.name, ["sleep", "200"], timeout=0.3)
    assert result.timed_out
    assert (await other).stdout == b"survived\n"


# A child in the background, a daemon that forks twice into a session of its own, one that
# ignores hang-ups, and one started by a child that has already gone.
LEAVES_BEHIND = ("sleep 301 & setsid sh -c 'sleep 302 & exit 0' & nohup sleep 303 >/dev/null 2>&1 & "
                 "sh -c '(sleep 304 &)'; sleep 0.3; exit 3")


async def test_reap_ends_every_process_the_command_left_behind(engine, make_env):
    env = await make_env()
    other = asyncio.create_task(engine.exec(env.name, ["sh", "-c", "sleep 2; echo survived"]))
    await asyncio.sleep(0.2)
    result = await engine.exec(env.name, ["sh", "-c", LEAVES_BEHIND], reap=True)
    assert result.exit_code == 3 and not result.timed_out and result.reason is None
    listing = processes(env.name)
    assert not ps_has(listing, "sleep 30"), listing
    assert (await other).stdout == b"survived\n"  # another command's processes are not its own


async def test_a_fork_bomb_that_times_out_is_ended(engine, make_env, workspace_image):
    """At the process limit runc itself may fail to start the exec that kills the bomb (it
    needs threads too): that exec is tried again until it starts. A few rounds, since the
    start fails only some of the times."""
    env = await make_env(image=workspace_image, resources=Resources.parse("1g", 0.5, 48))
    for _ in range(3):
        result = await engine.exec(env.name, ["bash", "-c", "bomb() { bomb | bomb & }; bomb; sleep 100"],
                                   timeout=1.5, reap=True)
        assert result.timed_out
        left = docker("top", container_of(env.name), "-o", "pid,args").stdout.splitlines()[1:]
        assert len(left) <= 2, left  # the init process and `tail -f /dev/null`
        assert (await engine.exec(env.name, ["echo", "works"], reap=True)).stdout == b"works\n"


async def test_without_reap_what_a_command_starts_in_the_background_stays(engine, make_env):
    """`glmtui env exec` (like `docker exec`) may start a server that outlives it."""
    env = await make_env()
    result = await engine.exec(env.name, ["sh", "-c", "sleep 305 >/dev/null 2>&1 &"])
    assert result.exit_code == 0
    assert ps_has(processes(env.name), "sleep 305")


async def test_reap_says_which_program_is_missing(engine, make_env):
    env = await make_env()
    result = await engine.exec(env.name, ["no-such-command-xyz", "arg"], reap=True)
    assert result.exit_code == 127
    assert result.reason == "command not found: 'no-such-command-xyz' is not in the environment's PATH"
    assert result.stdout == b"" and result.stderr == b""
    found = await engine.exec(env.name, ["sh", "-c", "echo found; exit 127"], reap=True)
    assert found.exit_code == 127 and found.reason is None and found.stdout == b"found\n"


async def test_command_not_found(engine, make_env):
    env = await make_env()
    result = await engine.exec(env.name, ["no-such-command-xyz", "arg"])
    assert result.exit_code == 127
    assert result.reason and "not found" in result.reason and "no-such-command-xyz" in result.reason
    assert b"OCI runtime" not in result.stdout + result.stderr


async def test_a_missing_working_directory_is_named_as_such(engine, make_env):
    env = await make_env()
    for argv in (["sh", "-c", "true"], ["no-such-command-xyz"]):
        result = await engine.exec(env.name, argv, workdir="/workspace/nope")
        assert result.exit_code != 0 and result.exit_code != 127
        assert result.reason == "the working directory '/workspace/nope' does not exist in the environment"
        assert b"OCI runtime" not in result.stdout + result.stderr


async def test_container_killed_while_exec_streams(engine, make_env):
    env = await make_env()
    started = asyncio.Event()
    chunks: list[bytes] = []

    def collect(stream: int, data: bytes) -> None:
        chunks.append(data)
        if b"started" in b"".join(chunks):
            started.set()

    task = asyncio.create_task(engine.exec(env.name, ["sh", "-c", "echo started; sleep 300"], on_output=collect))
    await asyncio.wait_for(started.wait(), 10)
    killer = await asyncio.create_subprocess_exec(
        "docker", "kill", container_of(env.name), stdout=asyncio.subprocess.DEVNULL
    )
    assert await killer.wait() == 0
    result = await asyncio.wait_for(task, 15)
    assert result.exit_code != 0
    assert result.reason and "stopped while the command ran" in result.reason


async def test_exec_in_stopped_environment(engine, make_env):
    env = await make_env()
    await engine.stop_environment(env.name, timeout=0)
    with pytest.raises(BadInput, match="not running"):
        await engine.exec(env.name, ["true"])


async def test_exec_of_nothing_is_bad_input(engine, make_env):
    env = await make_env()
    with pytest.raises(BadInput):
        await engine.exec(env.name, [])


# -- interactive ------------------------------------------------------------------------------


async def read_until(session, needle: bytes, timeout: float = 10) -> bytes:
    seen = b""

    async def reader() -> bytes:
        nonlocal seen
        while needle not in seen:
            data = await session.read()
            if data is None:
                break
            seen += data
        return seen

    return await asyncio.wait_for(reader(), timeout)


async def test_open_interactive_runs_a_shell_with_a_tty(engine, make_env):
    env = await make_env()
    session = await engine.open_interactive(env.name, rows=30, columns=100)
    await session.write(b"echo $((6*7)); stty size; [ -t 0 ] && echo IS-A-$((1+1))TTY\n")
    screen = await read_until(session, b"IS-A-2TTY\r\n")
    assert b"42\r\n" in screen and b"30 100" in screen
    await session.resize(40, 120)
    await session.write(b"stty size\n")
    assert b"40 120" in await read_until(session, b"40 120")
    await session.write(b"exit 3\n")
    await read_until(session, b"\x00never")  # to the end of the stream
    assert await session.close() == 3


# -- files ------------------------------------------------------------------------------------


async def test_binary_file_in_and_out(engine, make_env, tmp_path):
    env = await make_env()
    content = bytes(range(256)) * 64
    source = tmp_path / "all-bytes.bin"
    source.write_bytes(content)
    await engine.copy_in(env.name, source, "/workspace/")
    sizes = await engine.exec(env.name, ["wc", "-c", "/workspace/all-bytes.bin"])
    assert sizes.stdout.split()[0] == str(len(content)).encode()
    out = tmp_path / "out"
    out.mkdir()
    await engine.copy_out(env.name, "/workspace/all-bytes.bin", out)
    assert (out / "all-bytes.bin").read_bytes() == content
    await engine.copy_out(env.name, "/workspace/all-bytes.bin", tmp_path / "renamed.bin")
    assert (tmp_path / "renamed.bin").read_bytes() == content
    assert await engine.read_file(env.name, "/workspace/all-bytes.bin") == content


async def test_write_file_and_read_file(engine, make_env):
    env = await make_env()
    content = b"\x00\xff binary \r\n and text \xe9"
    await engine.write_file(env.name, "/workspace/deep/er/file.bin", content, mode=0o600)
    assert await engine.read_file(env.name, "/workspace/deep/er/file.bin") == content
    mode = await engine.exec(env.name, ["stat", "-c", "%a", "/workspace/deep/er/file.bin"])
    assert mode.stdout == b"600\n"
    written = await engine.exec(env.name, ["stat", "-c", "%Y", "/workspace/deep/er/file.bin"])
    assert abs(int(written.stdout) - time.time()) < 120  # dated now, not 1970
    with pytest.raises(NotFound):
        await engine.read_file(env.name, "/workspace/no-such-file")


async def test_folder_tree_in_and_out(engine, make_env, tmp_path):
    env = await make_env()
    tree = tmp_path / "tree"
    files = {
        "top.txt": b"top\n",
        "a/one.txt": b"one\n",
        "a/b/two.bin": bytes(range(256)),
        "a/b/c/empty": b"",
        "spaces in name/x y.txt": b"spaced\n",
    }
    for relative, data in files.items():
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tree / "empty-folder").mkdir()
    (tree / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (tree / "run.sh").chmod(0o755)

    await engine.copy_in(env.name, tree, "/workspace/tree")
    found = await engine.exec(env.name, ["sh", "-c", "cd /workspace/tree && find . | sort"])
    listed = set(found.stdout.decode().split("\n")) - {""}
    assert {f"./{name}" for name in files} <= listed and "./empty-folder" in listed
    assert (await engine.exec(env.name, ["/workspace/tree/run.sh"])).stdout == b"ran\n"

    back = tmp_path / "back"
    back.mkdir()
    await engine.copy_out(env.name, "/workspace/tree", back)
    for relative, data in files.items():
        assert (back / "tree" / relative).read_bytes() == data, relative
    assert (back / "tree" / "empty-folder").is_dir()
    assert os.access(back / "tree" / "run.sh", os.X_OK)


def _latin1_file(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    """A host folder holding one file whose name is not UTF-8: (folder, name, content)."""
    raw_name = b"caf\xe9.txt"
    folder = os.fsencode(tmp_path / "latin1")
    os.mkdir(folder)
    content = b"\xe9t\xe9\x00\xff"
    with open(os.path.join(folder, raw_name), "wb") as out:
        out.write(content)
    return folder, raw_name, content


# busybox ls shows unprintable bytes as '?': the shell prints the real names
LIST_NAMES = "cd \"$1\" && for f in *; do echo \"$f\"; done"


async def test_non_utf8_file_name_in_and_out_in_a_folder(engine, make_env, tmp_path):
    env = await make_env()
    folder, raw_name, content = _latin1_file(tmp_path)
    await engine.copy_in(env.name, Path(os.fsdecode(folder)), "/workspace/folder")
    inner = await engine.exec(env.name, ["sh", "-c", LIST_NAMES, "sh", "/workspace/folder"])
    assert inner.stdout == raw_name + b"\n"
    back = tmp_path / "back"
    await engine.copy_out(env.name, "/workspace/folder", back)
    assert os.listdir(os.fsencode(back)) == [raw_name]
    with open(os.path.join(os.fsencode(back), raw_name), "rb") as got:
        assert got.read() == content


async def test_non_utf8_file_name_in_and_out_by_its_own_name(engine, make_env, tmp_path):
    env = await make_env()
    folder, raw_name, content = _latin1_file(tmp_path)
    await engine.copy_in(env.name, Path(os.fsdecode(os.path.join(folder, raw_name))), "/workspace/")
    listing = await engine.exec(env.name, ["sh", "-c", LIST_NAMES, "sh", "/workspace"])
    assert listing.stdout == raw_name + b"\n"
    back = tmp_path / "back"
    back.mkdir()
    inside = "/workspace/" + os.fsdecode(raw_name)  # the name as Python spells undecodable bytes
    await engine.copy_out(env.name, inside, back)
    assert os.listdir(os.fsencode(back)) == [raw_name]
    with open(os.path.join(os.fsencode(back), raw_name), "rb") as got:
        assert got.read() == content
    assert await engine.read_file(env.name, inside) == content


async def test_copy_errors(engine, make_env, tmp_path):
    env = await make_env()
    with pytest.raises(NotFound, match="no such file"):
        await engine.copy_in(env.name, tmp_path / "missing", "/workspace/")
    with pytest.raises(NotFound):
        await engine.copy_out(env.name, "/workspace/missing", tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_files_belong_to_the_environment_user(engine, make_env, tmp_path):
    env = await make_env(user="1234:1234")
    (tmp_path / "f.txt").write_text("x")
    await engine.copy_in(env.name, tmp_path / "f.txt", "/tmp/")
    owner = await engine.exec(env.name, ["stat", "-c", "%u:%g", "/tmp/f.txt"])
    assert owner.stdout == b"1234:1234\n"


# -- events and logs --------------------------------------------------------------------------


async def test_events_of_a_container_stopped_by_the_docker_cli(engine, make_env):
    env = await make_env()
    seen = []

    async def collect():
        async for event in engine.events(reconnect=False):
            seen.append(event)
            if event.name == env.name and event.action in ("die", "stop"):
                return event

    task = asyncio.create_task(collect())
    # Be sure the subscription is live: nudge the container until an event for it arrives.
    for _ in range(50):
        docker("kill", "--signal", "WINCH", container_of(env.name))
        await asyncio.sleep(0.1)
        if any(e.name == env.name for e in seen):
            break
    else:
        raise AssertionError(f"no event for {env.name}: {seen}")
    docker("stop", "-t", "1", container_of(env.name))
    event = await asyncio.wait_for(task, 10)
    assert event.type == "container" and event.id and event.id.startswith(env.id[:12])
    assert event.attributes.get("glmtui.managed") == "true"
    assert event.time > 0


async def test_logs_of_the_main_process(engine, busybox_image, env_name):
    docker(
        "run", "-d", "--label", "glmtui.managed=true", "--label", f"glmtui.env={env_name}",
        "--name", container_of(env_name), busybox_image, "sh", "-c", "echo one; echo two >&2; sleep 600",
    )

    async def collect(**options):
        return [chunk async for chunk in engine.logs(env_name, **options)]

    for _ in range(100):
        chunks = await collect()
        if len(chunks) >= 2:
            break
        await asyncio.sleep(0.05)
    assert sorted(chunks) == [(STDOUT, b"one\n"), (STDERR, b"two\n")]
    assert len(await collect(tail=1)) == 1
    stamped = await collect(timestamps=True)
    assert all(data[:4].isdigit() and b"T" in data[:20] for _, data in stamped)
    assert len(await collect(since="10m")) == 2

    async def first_followed():
        async for chunk in engine.logs(env_name, follow=True):
            return chunk

    assert await asyncio.wait_for(first_followed(), 5) in [(STDOUT, b"one\n"), (STDERR, b"two\n")]


# -- images -----------------------------------------------------------------------------------


async def test_images(engine, busybox_image):
    from glmtui.docker.images import build_named

    assert await engine.image_exists(busybox_image)
    assert not await engine.image_exists("glmtui/no-such-image:latest")
    tags = {tag for image in await engine.list_images() for tag in image.get("RepoTags") or []}
    assert busybox_image in tags
    again = await build_named(engine, "busybox")
    assert again.cached and again.image.startswith("glmtui/busybox:")
    with pytest.raises(NotFound, match="did you mean 'busybox'"):
        await build_named(engine, "busybx")


def test_a_build_context_does_not_send_a_linked_host_file(tmp_path):
    from glmtui.docker.images import build_context

    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY key /\n")
    (tmp_path / "key").symlink_to("/etc/hostname")
    with pytest.raises(BadInput, match="holds key, a link to /etc/hostname outside it"):
        build_context(tmp_path)
    (tmp_path / "key").unlink()
    (tmp_path / "key").symlink_to("Dockerfile")
    build_context(tmp_path)  # a link inside the context is fine


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Upper", "-dash", "has space", "semi;colon", "x" * 64, "ünï", "a/b"])
def test_invalid_names(name):
    with pytest.raises(BadInput, match="invalid environment name"):
        EnvSpec(name=name, image="glmtui/busybox:latest")


def test_bad_values():
    with pytest.raises(BadInput, match="lots"):
        Resources.parse("lots", 2, 1024)
    with pytest.raises(BadInput):
        Resources.parse("1g", "many", 1024)
    with pytest.raises(BadInput):
        Resources.parse("1g", 2, 0)
    with pytest.raises(BadInput, match="network"):
        EnvSpec(name="ok", image="x", network="wifi")
    with pytest.raises(BadInput, match="does not exist"):
        Mount.parse("/no/such/host/path:/data")


def test_a_mount_that_reaches_the_docker_socket_is_refused(tmp_path):
    """The socket, any folder holding it, a symlink to either, and the configured engine's socket."""
    import socket

    (tmp_path / "to-socket").symlink_to("/var/run/docker.sock")
    (tmp_path / "to-run").symlink_to("/var/run")
    reaching = ["/var/run/docker.sock:/s", "/run/docker.sock:/s", "/var/run:/r", "/run:/r", "/:/host",
                f"{tmp_path}/to-socket:/s", f"{tmp_path}/to-run:/r:ro"]
    for text in reaching:
        with pytest.raises(BadInput, match="gives the environment the Docker socket") as caught:
            refuse_docker_socket((Mount.parse(text),), None, hint="say so")
        assert "/run/docker.sock" in str(caught.value) and "(say so)" in str(caught.value)
    refuse_docker_socket((Mount.parse(f"{tmp_path}:/data"), Mount.parse("/etc:/etc:ro")), None, hint="-")

    engine_socket = tmp_path / "engines" / "other.sock"
    engine_socket.parent.mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(engine_socket))
    try:
        with pytest.raises(BadInput, match=f"{engine_socket} is in {engine_socket.parent}"):
            refuse_docker_socket((Mount.parse(f"{engine_socket.parent}:/e"),), f"unix://{engine_socket}", hint="-")
        refuse_docker_socket((Mount.parse(f"{engine_socket.parent}:/e"),), None, hint="-")  # not this engine's
    finally:
        listener.close()


async def test_taken_name(engine, make_env, busybox_image):
    env = await make_env()
    with pytest.raises(Conflict, match="exists already"):
        await engine.create_environment(EnvSpec(name=env.name, image=busybox_image))
    assert (await engine.get_environment(env.name)).id == env.id
    assert (await engine.exec(env.name, ["true"])).ok


async def test_unknown_environment(engine, env_name, tmp_path):
    for action in (
        engine.get_environment(env_name),
        engine.inspect_environment(env_name),
        engine.start_environment(env_name),
        engine.stop_environment(env_name),
        engine.remove_environment(env_name),
        engine.exec(env_name, ["true"]),
        engine.read_file(env_name, "/etc/hostname"),
        engine.copy_out(env_name, "/etc/hostname", tmp_path),
    ):
        with pytest.raises(NotFound, match=env_name):
            await action


async def test_missing_image_leaves_nothing(engine, env_name):
    with pytest.raises(NotFound, match="not here and could not be pulled"):
        await engine.create_environment(EnvSpec(name=env_name, image="glmtui/no-such-image:latest"))
    assert not container_exists(env_name) and not volume_exists(env_name)


async def test_failed_start_leaves_nothing(engine, busybox_image, env_name):
    spec = EnvSpec(name=env_name, image=busybox_image)
    # a copy of a missing host file fails after the container started: all of it is undone
    with pytest.raises(NotFound):
        await engine.create_environment(spec, copy_in=[(Path("/no/such/file"), "/workspace/")])
    assert not container_exists(env_name) and not volume_exists(env_name)


async def test_two_creates_of_one_name_at_once(engine, busybox_image, env_name):
    spec = EnvSpec(name=env_name, image=busybox_image)
    results = await asyncio.gather(*(engine.create_environment(spec) for _ in range(2)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], Conflict) and "exists already" in str(losers[0])
    assert winners[0].running and container_exists(env_name) and volume_exists(env_name)
    assert (await engine.exec(env_name, ["true"])).ok


async def test_unreachable_engine(tmp_path):
    address = f"unix://{tmp_path}/no-such.sock"
    started = time.monotonic()
    with pytest.raises(EngineUnreachable, match="cannot reach the Docker engine"):
        await Engine.connect(address)
    assert time.monotonic() - started < 5


async def test_an_address_that_is_not_an_engine(tmp_path):
    """Something listens, but it does not speak Docker's API: one clear line, no hang."""
    path = tmp_path / "not-docker.sock"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        writer.close()

    server = await asyncio.start_unix_server(answer, path=str(path))
    try:
        with pytest.raises(EngineUnreachable, match="cannot reach the Docker engine"):
            await asyncio.wait_for(Engine.connect(f"unix://{path}"), 5)
        with pytest.raises(BadInput, match="'npipe:////./pipe/docker_engine' is not an engine address"):
            await Engine.connect("npipe:////./pipe/docker_engine")
    finally:
        server.close()


def open_sockets() -> int:
    return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:") for fd in os.listdir("/proc/self/fd")
               if os.path.exists(f"/proc/self/fd/{fd}"))


async def test_connections_are_reused_not_leaked(engine, make_env):
    """Many commands, one after another and 20 at once: a few connections, kept for the next."""
    env = await make_env()
    await engine.exec(env.name, ["true"])
    before = open_sockets()
    for _ in range(30):
        assert (await engine.exec(env.name, ["echo", "hi"])).stdout == b"hi\n"
    assert open_sockets() <= before + 1
    results = await asyncio.gather(*(engine.exec(env.name, ["echo", str(i)]) for i in range(20)))
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(20)]
    await engine.list_environments()
    assert open_sockets() <= before + 8  # the kept ones; the rest were closed


def test_unique_names_are_valid():
    EnvSpec(name=unique_name(), image="x")
