"""Helpers shared by the tests: the CLI in a subprocess, the real `docker` CLI, waiting."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# Every environment a test makes is named SESSION_PREFIX + 4 hex digits, so the session
# finalizer can remove whatever a failing test left behind.
SESSION_PREFIX = f"t-{uuid.uuid4().hex[:4]}"
BUSYBOX = "glmtui/busybox:latest"
WORKSPACE = "glmtui/workspace:latest"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where CLI subprocesses run by default: an empty folder, so no project config is found.
NEUTRAL_CWD: Path | None = None


def unique_name() -> str:
    return f"{SESSION_PREFIX}{uuid.uuid4().hex[:4]}"


def container_of(name: str) -> str:
    return f"glmtui-{name}"


def volume_of(name: str) -> str:
    return f"glmtui-{name}-workspace"


def run_glmtui(
    *args: str,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 60,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m glmtui ARGS` in a subprocess; `env` adds to (None: removes from) os.environ."""
    return subprocess.run(
        glmtui_argv(*args),
        input=input,
        env=child_env(env),
        cwd=str(cwd or NEUTRAL_CWD or PROJECT_ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def run_glmtui_many(
    calls: Sequence[Sequence[str]], env: Mapping[str, str | None] | None = None, timeout: float = 60
) -> list[subprocess.CompletedProcess[str]]:
    """Several `glmtui` runs at once (independent ones: the suite stays fast); results in order."""
    started = [
        (args, subprocess.Popen(
            glmtui_argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=child_env(env), cwd=str(NEUTRAL_CWD or PROJECT_ROOT),
        ))
        for args in calls
    ]
    results = []
    for args, process in started:
        try:
            out, err = process.communicate(timeout=timeout)
        finally:
            process.kill()
        results.append(subprocess.CompletedProcess(glmtui_argv(*args), process.returncode, out, err))
    return results


def glmtui_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "glmtui", *args]


def child_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    environ = dict(os.environ)
    for key, value in (extra or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return environ


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real `docker` CLI, to check what glmtui did from the outside."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def docker_inspect(name: str) -> dict[str, Any]:
    return json.loads(docker("inspect", container_of(name)).stdout)[0]


def container_exists(name: str) -> bool:
    return docker("container", "inspect", container_of(name), check=False).returncode == 0


def volume_exists(name: str) -> bool:
    return docker("volume", "inspect", volume_of(name), check=False).returncode == 0


def container_status(name: str) -> str:
    return docker_inspect(name)["State"]["Status"]


def processes(name: str) -> str:
    """`ps` inside the environment, by the docker CLI (independent of glmtui's exec)."""
    return docker("exec", container_of(name), "ps", "-o", "pid,args").stdout


def checkpoints_of(name: str) -> str:
    return f"glmtui.checkpoints-{name}"


def remove_quietly(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", "-v", container_of(name), checkpoints_of(name)], capture_output=True,
                   timeout=60)
    subprocess.run(["docker", "volume", "rm", "-f", volume_of(name), checkpoints_of(name)], capture_output=True,
                   timeout=60)
    remove_egress_networks(f"glmtui.egress-{name}")


def remove_egress_networks(prefix: str) -> None:
    """The internal networks of environments with an allowlist (the shared proxy leaves them first)."""
    found = docker("network", "ls", "--format", "{{.Name}}", "--filter", f"name={prefix}", check=False).stdout.split()
    for network in found:
        name = network.removeprefix("glmtui.egress-")
        subprocess.run(["docker", "exec", "glmtui.egress", "rm", "-f", f"/egress/allow/{name}.json",
                        f"/egress/blocked/{name}.jsonl", f"/egress/blocked/{name}.jsonl.1"], capture_output=True,
                       timeout=60)
        subprocess.run(["docker", "network", "disconnect", "-f", network, "glmtui.egress"], capture_output=True,
                       timeout=60)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, timeout=60)


def remove_everything_named(prefix: str) -> None:
    """Every container and volume whose name starts with glmtui-PREFIX (or is the checkpoints of one)."""
    starts = (f"glmtui-{prefix}", checkpoints_of(prefix))
    names = [found for start in starts
             for found in docker("ps", "-aq", "--filter", f"name=^/{start}", check=False).stdout.split()]
    if names:
        subprocess.run(["docker", "rm", "-f", "-v", *names], capture_output=True, timeout=120)
    volumes = [found for start in starts
               for found in docker("volume", "ls", "-q", "--filter", f"name={start}", check=False).stdout.split()]
    volumes = [v for v in volumes if v.startswith(starts)]
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, timeout=120)
    remove_egress_networks(f"glmtui.egress-{prefix}")


def wait_for(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.1, what: str = "",
             shown: Callable[[], str] | None = None) -> Any:
    """What `predicate` returns once it is true; on timeout an AssertionError naming `what`, with
    `shown()` (e.g. the screen) below it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, what or predicate, shown))
        time.sleep(interval)


async def until(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.05, what: str = "",
                shown: Callable[[], str] | None = None,
                pause: Callable[[float], Awaitable[Any]] | None = None) -> Any:
    """`wait_for` in a coroutine: `predicate` may return an awaitable (a check run in a thread),
    `pause` waits between tries (asyncio.sleep; a Pilot's `pause` lets the app draw meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, what or predicate, shown))
        await (pause or asyncio.sleep)(interval)


def _timed_out(timeout: float, what: Any, shown: Callable[[], str] | None) -> str:
    return f"timed out after {timeout}s waiting for {what}" + (f"\n{shown()}" if shown else "")


def one_error_line(stderr: str) -> str:
    """The one line an error prints: no traceback, nothing else."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("glmtui: "), lines[0]
    return lines[0]


def ps_has(output: str, needle: str) -> bool:
    return any(needle in line for line in output.splitlines()[1:])


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def certificates(folder: Path, ip: str) -> Path:
    """A test CA (ca.pem), a server certificate for `ip` (server.pem, server-key.pem), and a
    client certificate as DOCKER_CERT_PATH holds one (cert.pem, key.pem), in `folder`."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=folder)
    (folder / "san.cnf").write_text(f"subjectAltName=IP:{ip}\n")
    for name, extra in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=folder)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extra, cwd=folder)
    (folder / "cert.pem").write_bytes((folder / "client.pem").read_bytes())
    (folder / "key.pem").write_bytes((folder / "client-key.pem").read_bytes())
    return folder
