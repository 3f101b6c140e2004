"""The engine's version with the standard library alone, so `glmtui version` stays light."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlparse

from glmtui.docker.address import unreachable
from glmtui.errors import EngineUnreachable

TIMEOUT = 5.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self.socket_path)


def engine_version(host: str) -> dict[str, Any]:
    """GET /version from `unix://PATH` or `tcp://HOST:PORT`; EngineUnreachable when nothing answers."""
    address = urlparse(host)
    if address.scheme == "unix":
        connection: http.client.HTTPConnection = _UnixConnection(address.path)
    elif address.scheme in ("tcp", "http"):
        connection = http.client.HTTPConnection(address.hostname or "localhost", address.port or 2375, timeout=TIMEOUT)
    else:
        raise EngineUnreachable(f"glmtui version cannot ask {host} (only unix:// and tcp:// addresses)")
    try:
        connection.request("GET", "/version")
        response = connection.getresponse()
        if response.status != 200:
            raise EngineUnreachable(f"the Docker engine at {host} answered {response.status} to /version")
        return json.loads(response.read())
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise unreachable(host, err) from None
    finally:
        connection.close()
