"""Fixtures for the whole suite: isolated user state, the real Docker engine, environments, the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from helpers import BUSYBOX, WORKSPACE, remove_everything_named, remove_quietly, run_glmtui, unique_name  # noqa: E402
from model_server import model_server  # noqa: E402,F401 - the scripted OpenAI-compatible server, as a fixture

_ISOLATED = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


@pytest.fixture(scope="session", autouse=True)
def isolated_user_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """User config and data in a session folder (CLI subprocesses inherit it); no GLMTUI_* leaks in.

    Also removes, at the end, every container and volume named with this session's prefix,
    so a failing test leaves nothing behind.
    """
    root = tmp_path_factory.mktemp("user-state")
    saved = {key: os.environ.get(key) for key in os.environ if key.startswith("GLMTUI_")}
    saved.update({key: os.environ.get(key) for key in _ISOLATED})
    for key in list(os.environ):
        if key.startswith("GLMTUI_"):
            del os.environ[key]
    for key in _ISOLATED:
        folder = root / key.split("_")[1].lower()
        folder.mkdir()
        os.environ[key] = str(folder)
    neutral = root / "cwd"
    neutral.mkdir()
    helpers.NEUTRAL_CWD = neutral
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            remove_everything_named(helpers.SESSION_PREFIX)
        except (OSError, AssertionError):
            pass  # no docker here: nothing was made either


# What a test needs the Docker engine through; such a test carries the docker marker.
ENGINE_FIXTURES = ("engine", "make_env", "busybox_image", "workspace_image", "env_name")
NO_ENGINE = "unix:///nonexistent/glmtui-tests/a-test-without-the-docker-marker.sock"


@pytest.fixture(autouse=True)
def docker_only_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiers stay true: a test without the docker marker reaches no engine (DOCKER_HOST
    points nowhere, for the CLI it starts too), so `pytest -m "not docker"` runs where there
    is none; one that asks for an engine fixture without the marker fails, saying so."""
    if request.node.get_closest_marker("docker") is not None:
        return
    used = [name for name in ENGINE_FIXTURES if name in request.fixturenames]
    if used:
        pytest.fail(f"{request.node.nodeid} uses the Docker engine ({', '.join(used)}) without "
                    "@pytest.mark.docker", pytrace=False)
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine() -> AsyncIterator[Any]:
    """One connection to the real Docker engine for the session."""
    from glmtui.docker.engine import Engine
    from glmtui.errors import EngineUnreachable

    try:
        connected = await Engine.connect()
    except EngineUnreachable as err:
        pytest.fail(f"these tests need a Docker engine: {err}", pytrace=False)
    try:
        yield connected
    finally:
        await connected.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def busybox_image(engine: Any) -> str:
    from glmtui.docker.images import build_named

    await build_named(engine, "busybox")
    return BUSYBOX


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def workspace_image(engine: Any) -> str:
    from glmtui.docker.images import build_named

    await build_named(engine, "workspace")
    return WORKSPACE


@pytest.fixture(scope="session")
def remote(busybox_image: str) -> Iterator[Any]:
    """A private engine reached three ways, as a remote one is (tests/remote_engine.py): its unix
    socket, TCP with TLS, SSH. For the session, PATH starts with the ssh of tests/sshd.py (the
    system's, with the tests' own ssh config) and XDG_RUNTIME_DIR holds its control sockets."""
    from private_dockerd import PrivateDockerd
    from remote_engine import Remote
    from sshd import SSHServer

    dockerd = PrivateDockerd(tls=True)
    sshd = None
    saved = {key: os.environ.get(key) for key in ("PATH", "XDG_RUNTIME_DIR")}
    try:
        dockerd.start()
        dockerd.load_image_from_machine(busybox_image)
        sshd = SSHServer(dockerd.host)
        sshd.start()
        os.environ.update(sshd.variables())
        yield Remote(dockerd, sshd)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if sshd is not None:
            sshd.close()
        dockerd.close()


@pytest.fixture
def env_name() -> Iterator[str]:
    """A fresh environment name; whatever the test made under it is removed afterwards."""
    name = unique_name()
    yield name
    remove_quietly(name)


@pytest_asyncio.fixture(loop_scope="session")
async def make_env(engine: Any, busybox_image: str) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """`await make_env(**spec_overrides)`: a running busybox environment, removed after the test."""
    from glmtui.docker.spec import EnvSpec
    from glmtui.errors import GlmtuiError

    made: list[str] = []

    async def make(**overrides: Any) -> Any:
        overrides.setdefault("name", unique_name())
        overrides.setdefault("image", busybox_image)
        spec = EnvSpec(**overrides)
        made.append(spec.name)
        return await engine.create_environment(spec)

    yield make
    for name in made:
        try:
            await engine.remove_environment(name, volume=True)
        except GlmtuiError:
            remove_quietly(name)


@pytest.fixture
def glmtui() -> Callable[..., Any]:
    """`glmtui(*args, input=None, env=None, timeout=60, cwd=None)`: the CLI in a subprocess."""
    return run_glmtui
