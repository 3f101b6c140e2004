"""The engine at a tcp:// address, plain and with TLS (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), as
a remote engine is reached. The local engine only listens on its unix socket, so a relay on
127.0.0.1 forwards bytes to it unchanged: with TLS, the relay ends the TLS session with a
server certificate of a test CA, and asks for the client certificate the engine would ask for."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import helpers

from glmtui.docker.engine import Engine
from glmtui.errors import EngineUnreachable

pytestmark = pytest.mark.docker

SOCKET = "/var/run/docker.sock"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return helpers.certificates(tmp_path_factory.mktemp("certs"), "127.0.0.1")


async def relay(tls: ssl.SSLContext | None) -> tuple[asyncio.Server, int]:
    """A server on 127.0.0.1 that forwards each connection to the engine's socket."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        engine_reader, engine_writer = await asyncio.open_unix_connection(SOCKET)
        await asyncio.gather(pipe(reader, engine_writer), pipe(engine_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def tls_relay(certs: Path) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.pem"))
    context.load_cert_chain(certs / "server.pem", certs / "server-key.pem")
    context.verify_mode = ssl.CERT_REQUIRED  # the engine's --tlsverify: no client certificate, no entry
    server, port = await relay(context)
    async with server:
        yield port


async def a_command_runs(engine: Engine, make_env) -> None:
    env = await make_env()
    result = await engine.exec(env.name, ["sh", "-c", "seq 3; echo oops >&2; exit 3"])
    assert (result.stdout, result.stderr, result.exit_code) == (b"1\n2\n3\n", b"oops\n", 3)
    await engine.write_file(env.name, "/tmp/x.txt", b"over tcp")
    assert await engine.read_file(env.name, "/tmp/x.txt") == b"over tcp"
    assert env.name in {e.name for e in await engine.list_environments()}


async def test_a_plain_tcp_address(make_env, monkeypatch):
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    server, port = await relay(None)
    async with server:
        engine = await Engine.connect(f"tcp://127.0.0.1:{port}")
        try:
            await a_command_runs(engine, make_env)
        finally:
            await engine.close()


async def test_tls_with_the_certificates_of_docker_cert_path(make_env, tls_relay, certs, monkeypatch):
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs))
    engine = await Engine.connect(f"tcp://127.0.0.1:{tls_relay}")
    try:
        await a_command_runs(engine, make_env)
        # the sections aiodocker carries use the same certificates
        assert any("glmtui/busybox:latest" in (image.get("RepoTags") or []) for image in await engine.list_images())
    finally:
        await engine.close()


async def test_tls_without_the_certificate_files_names_the_missing_one(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    with pytest.raises(EngineUnreachable, match=f"{tmp_path}/ca.pem is missing"):
        await Engine.connect("tcp://127.0.0.1:2376")


async def test_tls_without_a_trusted_ca_is_refused(tls_relay, tmp_path, certs, monkeypatch):
    """Certificates of another CA: the engine's certificate is not trusted, one clear line."""
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_bytes((certs / name).read_bytes())
    helpers.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other CA",
                    "-keyout", "other-key.pem", "-out", "ca.pem", cwd=tmp_path)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    with pytest.raises(EngineUnreachable, match="cannot reach the Docker engine at tcp://127.0.0.1.*CERTIFICATE_VERIFY_FAILED"):
        await Engine.connect(f"tcp://127.0.0.1:{tls_relay}")
