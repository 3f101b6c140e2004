"""The environment contract on every kind of address: one private engine reached through its
unix socket, over TCP with TLS, and over SSH (tests/remote_engine.py), each test once per way.
What a user does with an environment works on a remote engine as on the local one."""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from helpers import BUSYBOX, unique_name
from remote_engine import ADDRESSES

from glmtui.docker.engine import Engine
from glmtui.docker.spec import EnvSpec
from glmtui.errors import NotFound

pytestmark = pytest.mark.docker


@pytest_asyncio.fixture(scope="module", params=ADDRESSES, loop_scope="session")
async def far(request: pytest.FixtureRequest, remote: Any) -> AsyncIterator[Engine]:
    engine = await Engine.connect(remote.endpoint(request.param))
    try:
        yield engine
    finally:
        await engine.close()


@pytest_asyncio.fixture(loop_scope="session")
async def far_env(far: Engine) -> AsyncIterator[str]:
    name = unique_name()
    await far.create_environment(EnvSpec(name=name, image=BUSYBOX))
    try:
        yield name
    finally:
        try:
            await far.remove_environment(name, volume=True)
        except NotFound:
            pass


async def test_create_exec_stop_start_remove(far: Engine, remote: Any):
    name = unique_name()
    created = await far.create_environment(EnvSpec(name=name, image=BUSYBOX))
    try:
        assert (created.name, created.status, created.engine) == (name, "running", far.name)
        assert f"glmtui-{name}" in remote.docker("ps", "--format", "{{.Names}}").stdout.split()
        result = await far.exec(name, ["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
        missing = await far.exec(name, ["no-such-program"])
        assert missing.exit_code == 127 and "command not found" in (missing.reason or "")
        assert name in {env.name for env in await far.list_environments()}
        await far.stop_environment(name, timeout=1)
        assert (await far.get_environment(name)).status == "exited"
        await far.start_environment(name)
        assert (await far.exec(name, ["true"])).ok
    finally:
        await far.remove_environment(name, volume=True)
    assert f"glmtui-{name}" not in remote.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert f"glmtui-{name}-workspace" not in remote.docker("volume", "ls", "-q").stdout.split()
    with pytest.raises(NotFound):
        await far.get_environment(name)


async def test_output_streams_while_the_command_runs(far: Engine, far_env: str):
    arrived: list[tuple[float, bytes]] = []
    started = time.monotonic()
    result = await far.exec(far_env, ["sh", "-c", "echo first; sleep 1.5; echo second"],
                            on_output=lambda fd, data: arrived.append((time.monotonic() - started, data)))
    assert result.ok and b"".join(data for _, data in arrived) == b"first\nsecond\n"
    assert arrived[0][1].startswith(b"first") and arrived[0][0] < 1.2, arrived  # before the command ended
    counted = 0

    def count(fd: int, data: bytes) -> None:
        nonlocal counted
        counted += len(data)

    big = await far.exec(far_env, ["seq", "200000"], on_output=count)
    assert big.ok and counted == len("".join(f"{n}\n" for n in range(1, 200001)))


async def test_a_timeout_kills_the_command(far: Engine, far_env: str):
    result = await far.exec(far_env, ["sleep", "30"], timeout=1)
    assert result.timed_out and "timed out" in (result.reason or "")
    assert "sleep 30" not in (await far.exec(far_env, ["ps", "-o", "args"])).stdout.decode()


async def test_files_both_ways(far: Engine, far_env: str, tmp_path: Path):
    source = tmp_path / "tree"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha\n")
    (source / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    await far.copy_in(far_env, source, "/workspace/")
    listing = await far.exec(far_env, ["sh", "-c", "cd /workspace/tree && find . -type f | sort && cat a.txt"])
    assert listing.stdout == b"./a.txt\n./sub/b.bin\nalpha\n"
    await far.write_file(far_env, "/workspace/written.txt", b"written here\n")
    assert await far.read_file(far_env, "/workspace/written.txt") == b"written here\n"
    back = tmp_path / "back"
    back.mkdir()
    await far.copy_out(far_env, "/workspace/tree", back)
    assert (back / "tree" / "a.txt").read_text() == "alpha\n"
    assert (back / "tree" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 1000


async def test_an_interactive_shell(far: Engine, far_env: str):
    session = await far.open_interactive(far_env, rows=30, columns=100)
    await session.write(b"stty size; echo $((6 * 7)); exit 3\n")
    screen = b""
    async with asyncio.timeout(30):
        while (data := await session.read()) is not None:
            screen += data
    assert b"30 100" in screen and b"42" in screen, screen
    assert await session.close() == 3


async def test_the_container_logs_and_following_them(far: Engine, far_env: str):
    await far.exec(far_env, ["sh", "-c", "echo before > /proc/1/fd/1; echo oops > /proc/1/fd/2"])
    seen = [chunk async for chunk in far.logs(far_env)]
    assert (1, b"before\n") in seen and (2, b"oops\n") in seen, seen
    following = far.logs(far_env, follow=True, tail=0)
    later = asyncio.ensure_future(following.__anext__())
    await asyncio.sleep(0.5)
    await far.exec(far_env, ["sh", "-c", "echo later > /proc/1/fd/1"])
    assert await asyncio.wait_for(later, 30) == (1, b"later\n")
    await following.aclose()


async def test_events_and_stats(far: Engine):
    name = unique_name()
    events = far.events()
    seen: list[Any] = []

    async def collect() -> None:
        async for event in events:
            if event.name == name:
                seen.append(event)
                if event.action == "destroy":
                    return

    collecting = asyncio.ensure_future(collect())
    await asyncio.sleep(0.5)
    await far.create_environment(EnvSpec(name=name, image=BUSYBOX))
    sample = await asyncio.wait_for(far.stats(name).__anext__(), 30)
    assert sample.memory > 0 and sample.memory_limit == 1024**3
    await far.remove_environment(name, volume=True)
    await asyncio.wait_for(collecting, 30)
    await events.aclose()
    actions = [event.action for event in seen if event.type == "container"]
    assert actions[:2] == ["create", "start"] and "destroy" in actions, actions
    assert {event.engine for event in seen} == {far.name}


async def test_an_image_built_from_a_context_sent_to_the_engine(far: Engine, remote: Any):
    tag = f"glmtui/contract-{uuid.uuid4().hex[:8]}:latest"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in (("Dockerfile", f"FROM {BUSYBOX}\nCOPY hello.txt /hello.txt\nRUN echo built > /built\n"),
                           ("hello.txt", "from this machine\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    lines: list[str] = []
    name = unique_name()
    try:
        image_id = await far.build_image(context.getvalue(), [tag], on_progress=lines.append)
        assert image_id.startswith("sha256:") and any(line.startswith("Step 1/") for line in lines), (image_id, lines)
        assert tag in remote.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        await far.create_environment(EnvSpec(name=name, image=tag))
        result = await far.exec(name, ["cat", "/hello.txt", "/built"])
        assert result.stdout == b"from this machine\nbuilt\n"
        await far.remove_environment(name, volume=True)
    finally:
        remote.docker("rm", "-f", "-v", f"glmtui-{name}", check=False)
        remote.docker("rmi", "-f", tag, check=False)
