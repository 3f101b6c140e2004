"""One private engine reached three ways, as remote engines are: its unix socket, TCP with TLS
(certificates the test made), and SSH (an sshd of the test's, `docker system dial-stdio` there).

The tests' stand-in for "another machine": a dockerd of their own (tests/private_dockerd.py) in
its own network namespace, its TLS port reached through a veth pair, its SSH through 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

from private_dockerd import PrivateDockerd
from sshd import SSHServer

from glmtui.docker.endpoints import TLS, Endpoint

ADDRESSES = ("unix", "tls", "ssh")  # the ways the contract tests reach it


class Remote:
    def __init__(self, dockerd: PrivateDockerd, sshd: SSHServer) -> None:
        self.dockerd = dockerd
        self.sshd = sshd

    def tls(self) -> TLS:
        certs = self.dockerd.certs
        assert certs is not None
        return TLS(str(certs / "ca.pem"), str(certs / "cert.pem"), str(certs / "key.pem"))

    def endpoint(self, way: str) -> Endpoint:
        """The engine reached `way` (unix, tls, ssh), named far-WAY."""
        if way == "unix":
            return Endpoint("far-unix", self.dockerd.host, source="config")
        if way == "tls":
            assert self.dockerd.tls_host is not None
            return Endpoint("far-tls", self.dockerd.tls_host, self.tls(), source="config")
        assert way == "ssh"
        return Endpoint("far-ssh", "ssh://glmtui-test", source="config")

    def config(self, *ways: str) -> dict[str, Any]:
        """The `engines:` block of a config for these ways (all three when none are given)."""
        engines: dict[str, Any] = {}
        for way in ways or ADDRESSES:
            endpoint = self.endpoint(way)
            entry: dict[str, Any] = {"host": endpoint.host}
            if endpoint.tls is not None:
                entry["tls"] = {"ca": endpoint.tls.ca, "cert": endpoint.tls.cert, "key": endpoint.tls.key}
            engines[endpoint.name] = entry
        return engines

    def docker(self, *args: str, check: bool = True) -> Any:
        """The docker CLI against it (through its socket), to check from the outside."""
        return self.dockerd.docker(*args, check=check)
