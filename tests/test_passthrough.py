"""The user's proxy and CA certificates passed into environments: against the real engine, with a
company-like upstream proxy and an HTTPS package index signed by a test CA, all containers these
tests start (the proxy on the engine's bridge, the index on a network of their own)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SESSION_PREFIX, WORKSPACE, docker, wait_for

pytestmark = pytest.mark.docker

# A forward proxy that tunnels any CONNECT and logs its target: the company's proxy.
UPSTREAM = """
import asyncio
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    writer.close()
async def handle(reader, writer):
    head = (await reader.readuntil(b"\\r\\n\\r\\n")).decode()
    method, target = head.split(" ")[:2]
    print(method, target, flush=True)
    host, port = target.rsplit(":", 1)
    far_reader, far_writer = await asyncio.open_connection(host, int(port))
    writer.write(b"HTTP/1.1 200 OK\\r\\n\\r\\n")
    await asyncio.gather(pipe(reader, far_writer), pipe(far_reader, writer))
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", 3128)
    await server.serve_forever()
asyncio.run(main())
"""
# The package index: a folder served over TLS (http.server's listings are a simple index).
INDEX = """
import functools, http.server, ssl
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="/s/www")
server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/s/server.pem", "/s/server-key.pem")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def wheel(folder: Path) -> None:
    """glmtui_probe 1.0, a pure-Python wheel: `import glmtui_probe; glmtui_probe.SAID`."""
    name = "glmtui_probe-1.0-py3-none-any.whl"
    files = {
        "glmtui_probe/__init__.py": b"SAID = 'installed through the proxy'\n",
        "glmtui_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: glmtui-probe\nVersion: 1.0\n",
        "glmtui_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    ) + "glmtui_probe-1.0.dist-info/RECORD,,\n"
    files["glmtui_probe-1.0.dist-info/RECORD"] = record.encode()
    with zipfile.ZipFile(folder / name, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)


class Company:
    def __init__(self, proxy_url: str, ca: Path, upstream: str) -> None:
        self.proxy_url = proxy_url
        self.ca = ca
        self.upstream = upstream

    def connects(self) -> list[str]:
        return [line for line in docker("logs", self.upstream).stdout.splitlines() if line.startswith("CONNECT")]

    def settings(self) -> dict[str, str]:
        return {"GLMTUI_PROXY__HTTPS": self.proxy_url, "GLMTUI_PROXY__HTTP": self.proxy_url,
                "GLMTUI_CA_CERTIFICATES": str(self.ca)}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    folder = tmp_path_factory.mktemp("company")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=glmtui test CA",
            "-keyout", "ca-key.pem", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=index", "-keyout", "server-key.pem",
            "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=DNS:index\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    (folder / "server-key.pem").chmod(0o644)
    project = folder / "www" / "simple" / "glmtui-probe"
    project.mkdir(parents=True)
    wheel(project)
    (folder / "www" / "hello.txt").write_text("hello from the index\n")
    (folder / "index.py").write_text(INDEX)
    (folder / "upstream.py").write_text(UPSTREAM)
    network = f"glmtui-{SESSION_PREFIX}-company-net"
    index, upstream = f"glmtui-{SESSION_PREFIX}-index", f"glmtui-{SESSION_PREFIX}-upstream"
    docker("network", "create", network)
    try:
        docker("run", "-d", "--name", index, "--network", network, "--network-alias", "index", "-v", f"{folder}:/s:ro",
               "--user", "0", "--entrypoint", "python3", WORKSPACE, "/s/index.py")
        docker("run", "-d", "--name", upstream, "-v", f"{folder}:/s:ro", "--user", "0", "--entrypoint", "python3",
               WORKSPACE, "-u", "/s/upstream.py")
        address = json.loads(docker("inspect", upstream).stdout)[0]["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        docker("network", "connect", network, upstream)  # the company's proxy reaches the index by name
        yield Company(f"http://{address}:3128", folder / "ca.pem", upstream)
    finally:
        docker("rm", "-f", index, upstream, check=False)
        docker("network", "rm", network, check=False)


def in_env(name: str, script: str) -> subprocess.CompletedProcess[str]:
    return docker("exec", f"glmtui-{name}", "sh", "-c", script, check=False, timeout=120)


def test_an_environment_goes_through_the_company_proxy_and_trusts_its_ca(glmtui, env_name, company) -> None:
    created = glmtui("env", "create", env_name, "--image", WORKSPACE, env=company.settings(), timeout=180)
    assert created.returncode == 0, created.stderr

    fetched = in_env(env_name, "curl -sS -m 10 https://index/hello.txt")
    assert fetched.stdout == "hello from the index\n", fetched.stderr
    assert "CONNECT index:443" in company.connects()
    installed = in_env(env_name, "pip install -q --index-url https://index/simple/ glmtui-probe "
                                 "&& python3 -c 'import glmtui_probe; print(glmtui_probe.SAID)'")
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip().endswith("installed through the proxy")
    bundle = in_env(env_name, "grep -c 'BEGIN CERTIFICATE' /etc/glmtui/ca-bundle.pem").stdout
    assert int(bundle) > 50  # the system's and the test CA
    variables = in_env(env_name, "echo $HTTPS_PROXY $REQUESTS_CA_BUNDLE $NODE_EXTRA_CA_CERTS").stdout.split()
    assert variables == [company.proxy_url, "/etc/glmtui/ca-bundle.pem", "/etc/glmtui/extra-ca.pem"]


def test_the_egress_proxy_chains_to_the_company_proxy(glmtui, env_name, company) -> None:
    before = len(company.connects())
    created = glmtui("env", "create", env_name, "--image", WORKSPACE, "--allow", "index", env=company.settings(),
                     timeout=180)
    assert created.returncode == 0, created.stderr

    fetched = in_env(env_name, "curl -sS -m 10 https://index/hello.txt")
    assert fetched.stdout == "hello from the index\n", fetched.stderr
    wait_for(lambda: len(company.connects()) > before, what="the company proxy's log")
    assert company.connects()[before:] == ["CONNECT index:443"]
    installed = in_env(env_name, "pip install -q --index-url https://index/simple/ glmtui-probe")
    assert installed.returncode == 0, installed.stderr
    refused = in_env(env_name, "curl -sS -m 10 https://elsewhere/")
    assert refused.returncode != 0 and "403" in refused.stderr


def test_a_ca_file_that_is_not_pem_is_refused_before_anything_is_made(glmtui, env_name, tmp_path) -> None:
    bad = tmp_path / "ca.der"
    bad.write_bytes(b"\x30\x82 not pem")
    refused = glmtui("env", "create", env_name, "--image", WORKSPACE, env={"GLMTUI_CA_CERTIFICATES": str(bad)})
    assert refused.returncode == 2
    assert f"ca_certificates: {bad} holds no PEM certificate" in refused.stderr
    assert docker("container", "inspect", f"glmtui-{env_name}", check=False).returncode != 0
