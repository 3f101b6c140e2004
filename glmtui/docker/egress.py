"""Egress allowlists: an environment that reaches only the hosts it is allowed.

Such an environment sits only on an internal Docker network of its own
(`glmtui.egress-NAME`, no route out). Its only way out is the engine's egress proxy
(`glmtui.egress`, image `glmtui/egress` built from images/egress, where the proxy's source
and its rules are): a container on the engine's bridge network that glmtui joins to each of
those internal networks under the name `glmtui-egress`. The environment gets HTTP_PROXY and
friends pointing at it. The allowlist of each environment is a file in the proxy's volume,
read again by the proxy whenever it changes, so `glmtui env allow` takes effect at once;
the proxy records every refusal there too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from glmtui.docker import archive
from glmtui.docker.errors import EngineConnectionError, EngineHTTPError
from glmtui.docker.spec import LABEL_EGRESS, LABEL_MANAGED, egress_network
from glmtui.errors import BadInput, GlmtuiError

PROXY = "glmtui.egress"  # the proxy's container and volume
PROXY_HOST = "glmtui-egress"  # its name on the environments' networks
PROXY_PORT = 3128
PROXY_UID = 1000  # the image's user `dev`, who reads the allowlists and writes the refusals
_HOST = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


def proxy_variables() -> dict[str, str]:
    """What an environment with an allowlist gets, so its programs go through the proxy."""
    url = f"http://{PROXY_HOST}:{PROXY_PORT}"
    no_proxy = "localhost,127.0.0.1,::1"
    return {
        "HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
        "NO_PROXY": no_proxy, "no_proxy": no_proxy,
        "npm_config_proxy": url, "npm_config_https_proxy": url,  # npm
        "PIP_PROXY": url,  # pip (it reads HTTPS_PROXY too)
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.proxy", "GIT_CONFIG_VALUE_0": url,  # git
    }


def rule(entry: str) -> dict[str, Any]:
    """One allowlist entry as the proxy matches it: HOST, *.DOMAIN (its subdomains), either
    with :PORT, or an address or CIDR network (10.1.2.3/32) of hosts named by address."""
    text = entry.strip().lower()
    try:
        return {"network": str(ipaddress.ip_network(text, strict=False)), "port": None}
    except ValueError:
        pass
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = text, ""
    elif not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"allowlist entry {entry!r}: {port!r} is not a port")
    try:
        return {"network": str(ipaddress.ip_network(host.strip("[]"), strict=False)), "port": int(port) if port else None}
    except ValueError:
        pass
    if not _HOST.match(host):
        raise BadInput(f"allowlist entry {entry!r} is not a host name, *.domain, address or network",
                       hint="e.g. pypi.org, *.github.com:443, 10.1.2.3/32")
    return {"host": host.removeprefix("*."), "suffix": host.startswith("*."), "port": int(port) if port else None}


def check_allowlist(entries: Any) -> tuple[str, ...]:
    """The entries, each checked (BadInput for a bad one), duplicates dropped, in order."""
    if isinstance(entries, str) or not all(isinstance(entry, str) for entry in entries):
        raise BadInput("an allowlist is a list of host names")
    for entry in entries:
        rule(entry)
    return tuple(dict.fromkeys(entry.strip().lower() for entry in entries))


@dataclass(frozen=True)
class Refusal:
    time: datetime
    host: str
    port: int
    reason: str

    @property
    def line(self) -> str:
        if self.reason == "not in the allowlist":
            return f"blocked: {self.host}:{self.port} is not in this environment's allowlist"
        return f"blocked: {self.host}:{self.port}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "host": self.host, "port": self.port, "reason": self.reason,
                "line": self.line}


class Egress:
    """The egress proxy of one engine, and the allowlists of its environments."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._wire = engine._wire

    async def attach(self, env_name: str, allow: tuple[str, ...], upstream: dict[str, str] | None = None) -> str:
        """The environment's internal network, made and joined by the proxy, with its allowlist
        (and the user's proxy, which the egress proxy goes through) written: the network the
        environment's container goes on."""
        await self._ensure_proxy()
        network = egress_network(env_name)
        async with self.engine._translate(f"network of environment {env_name!r}"):
            await self._wire.json("POST", "/networks/create", body={
                "Name": network, "Internal": True, "CheckDuplicate": True,
                "Labels": {LABEL_MANAGED: "true", LABEL_EGRESS: env_name},
            })
        try:
            async with self.engine._translate(f"network of environment {env_name!r}"):
                await self._wire.json("POST", f"/networks/{network}/connect", body={
                    "Container": PROXY, "EndpointConfig": {"Aliases": [PROXY_HOST]},
                })
            await self.set_allowlist(env_name, allow, upstream)
        except BaseException:
            await asyncio.shield(self.detach(env_name))
            raise
        return network

    async def detach(self, env_name: str) -> None:
        """The environment's network and allowlist go (nothing when it had none); quietly."""
        network = egress_network(env_name)
        try:
            await self._wire.json("POST", f"/networks/{network}/disconnect", body={"Container": PROXY, "Force": True})
        except EngineHTTPError as err:
            if err.status == 404 and "network" in (err.message or "").lower():
                return  # it had no allowlist
        except EngineConnectionError:
            return
        await self.engine._remove_quietly(f"/networks/{network}")
        await self._proxy_exec(["rm", "-f", f"/egress/allow/{env_name}.json", f"/egress/blocked/{env_name}.jsonl",
                                f"/egress/blocked/{env_name}.jsonl.1"])

    async def allowlist(self, env_name: str) -> tuple[str, ...] | None:
        """The environment's allowlist; None when it has none (its network is not the proxy's)."""
        data = await self._read(f"/egress/allow/{env_name}.json")
        return tuple(json.loads(data)["allow"]) if data is not None else None

    async def set_allowlist(self, env_name: str, allow: tuple[str, ...], upstream: dict[str, str] | None = None) -> None:
        """Written where the proxy reads it: it takes effect with the next connection. `upstream`
        None: the one written before stays."""
        if upstream is None:
            data = await self._read(f"/egress/allow/{env_name}.json")
            upstream = json.loads(data).get("upstream", {}) if data else {}
        async with self.engine._translate(f"network of environment {env_name!r}"):
            info = await self._wire.json("GET", f"/networks/{egress_network(env_name)}")
        subnets = [entry["Subnet"] for entry in (info.get("IPAM") or {}).get("Config") or [] if entry.get("Subnet")]
        await self._forget_others_on(env_name, subnets)
        config = {"environment": env_name, "subnets": subnets, "allow": list(allow), "rules": [rule(e) for e in allow],
                  "upstream": upstream}
        data = archive.pack_bytes(f"egress/allow/{env_name}.json", json.dumps(config).encode(), 0o644,
                                  PROXY_UID, PROXY_UID)
        async with self.engine._translate("the egress proxy"):
            async with self._wire.request("PUT", f"/containers/{PROXY}/archive", params={"path": "/"}, body=data,
                                          content_type="application/x-tar") as response:
                await response.read()

    async def _forget_others_on(self, env_name: str, subnets: list[str]) -> None:
        """The allowlists of environments gone without glmtui (`docker rm`) whose networks' subnets
        the engine gave out again: the proxy knows an environment by its subnet."""
        data = await self._read_tree("/egress/allow")
        mine = [ipaddress.ip_network(subnet) for subnet in subnets]
        stale = []
        for name, content in data.items():
            try:
                config = json.loads(content)
                theirs = [ipaddress.ip_network(subnet) for subnet in config["subnets"]]
            except (ValueError, KeyError, TypeError):
                continue
            if config.get("environment") != env_name and any(a.overlaps(b) for a in mine for b in theirs):
                stale.append(f"/egress/allow/{name}")
        if stale:
            await self._proxy_exec(["rm", "-f", "--", *stale], wait=True)

    async def _read_tree(self, path: str) -> dict[str, bytes]:
        """The files of a folder of the proxy's, by name."""
        import io
        import tarfile

        try:
            async with self._wire.request("GET", f"/containers/{PROXY}/archive", params={"path": path}) as response:
                data = await response.read()
        except EngineHTTPError:
            return {}
        found = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    found[member.name.rpartition("/")[2]] = tar.extractfile(member).read()
        return found

    async def blocked(self, env_name: str) -> list[Refusal]:
        """What the proxy refused the environment, oldest first."""
        older = await self._read(f"/egress/blocked/{env_name}.jsonl.1")
        data = (older or b"") + (await self._read(f"/egress/blocked/{env_name}.jsonl") or b"")
        refusals = []
        for line in data.decode(errors="replace").splitlines():
            if line.strip():
                item = json.loads(line)
                refusals.append(Refusal(datetime.fromtimestamp(item["time"], tz=timezone.utc), item["host"],
                                        item["port"], item["reason"]))
        return refusals

    async def blocked_lines(self, env_name: str, since: float) -> list[str]:
        """The refusals since `since` (a time.time()), each as its one line."""
        return [refusal.line for refusal in await self.blocked(env_name) if refusal.time.timestamp() >= since]

    async def _read(self, path: str) -> bytes | None:
        try:
            async with self._wire.request("GET", f"/containers/{PROXY}/archive", params={"path": path}) as response:
                return archive.read_single_file(await response.read())
        except EngineHTTPError as err:
            if err.status == 404:
                return None
            raise GlmtuiError(f"the egress proxy: {err.message}") from None
        except EngineConnectionError as err:
            from glmtui.docker.errors import unreachable

            raise unreachable(self.engine.host, err, self.engine.name) from None

    async def _ensure_proxy(self) -> None:
        """The proxy's container, of the image images/egress makes now (built when missing; a
        proxy of an older one is replaced and joined again to the environments' networks), running."""
        from glmtui.docker.images import build_named

        image = (await build_named(self.engine, "egress")).image
        try:
            info = await self._wire.json("GET", f"/containers/{PROXY}/json")
        except EngineHTTPError as err:
            if err.status != 404:
                raise GlmtuiError(f"the egress proxy: {err.message}") from None
            info = None
        if info is not None and info["Config"]["Image"] != image:
            await self.engine._remove_quietly(f"/containers/{PROXY}", force="1")
            info = None
        if info is None:
            await self._create_proxy(image)
            await self._rejoin()
        if not (info or {}).get("State", {}).get("Running"):
            async with self.engine._translate("the egress proxy"):
                await self._wire.json("POST", f"/containers/{PROXY}/start")

    async def _rejoin(self) -> None:
        """A new proxy container joins the networks of the environments there are."""
        filters = json.dumps({"label": [LABEL_EGRESS]})
        async with self.engine._translate("the egress proxy"):
            networks = await self._wire.json("GET", "/networks", params={"filters": filters})
            for network in networks:
                await self._wire.json("POST", f"/networks/{network['Name']}/connect", body={
                    "Container": PROXY, "EndpointConfig": {"Aliases": [PROXY_HOST]},
                })

    async def _create_proxy(self, image: str) -> None:
        labels = {LABEL_MANAGED: "true", LABEL_EGRESS: "proxy"}
        async with self.engine._translate("the egress proxy"):
            await self._wire.json("POST", "/volumes/create", body={"Name": PROXY, "Labels": labels})
        config = {
            "Image": image,
            "Labels": labels,
            "HostConfig": {
                "Binds": [f"{PROXY}:/egress"],
                "NetworkMode": "bridge",
                "RestartPolicy": {"Name": "unless-stopped"},
                "Memory": 256 * 1024**2,
                "PidsLimit": 256,
                "Init": True,
                "SecurityOpt": ["no-new-privileges"],
                "CapDrop": ["ALL"],
            },
        }
        try:
            await self._wire.json("POST", "/containers/create", params={"name": PROXY}, body=config)
        except EngineHTTPError as err:
            if err.status != 409:  # 409: made by another glmtui at the same moment
                raise GlmtuiError(f"the egress proxy: {err.message}") from None

    async def _proxy_exec(self, argv: list[str], *, wait: bool = False) -> None:
        try:
            created = await self._wire.json("POST", f"/containers/{PROXY}/exec", body={"Cmd": argv})
            await self._wire.json("POST", f"/exec/{created['Id']}/start", body={"Detach": True, "Tty": False})
            if wait:
                await self.engine._exec_exit_code(created["Id"])
        except (EngineHTTPError, EngineConnectionError):
            pass  # the proxy is gone: so is what it kept
