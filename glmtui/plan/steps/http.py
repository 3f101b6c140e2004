"""`http`: a request sent by glmtui; `localhost` in the URL means the environment.

glmtui sends it from the host, so the image needs no HTTP client. A URL whose host
is `localhost` or `127.0.0.1` goes to the environment's own address (so a server a
plan starts inside its environment must listen on all addresses, 0.0.0.0).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from glmtui.errors import BadInput
from glmtui.plan.expressions import to_text
from glmtui.plan.model import HTTP_SCHEMES
from glmtui.plan.steps.base import StepContext, StepOutcome, render
from glmtui.units import parse_duration

if TYPE_CHECKING:
    from yarl import URL

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
DEFAULT_TIMEOUT = 30.0


def _aiohttp() -> Any:
    """aiohttp, imported without loading the system's CA store. aiohttp builds two TLS contexts
    when it is imported, and loading the store into them costs about 35 ms; this step makes a
    context of its own for https, so OpenSSL is pointed at no store while the import runs."""
    import os
    import sys

    if "aiohttp" not in sys.modules:
        variables = ("SSL_CERT_FILE", "SSL_CERT_DIR")
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(dict.fromkeys(variables, os.devnull))
        try:
            import aiohttp  # noqa: F401
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    import aiohttp

    return aiohttp


async def _environment_address(ctx: StepContext) -> str | None:
    """The environment's IP address; None when it shares the host's network."""
    if ctx.engine.remote:
        raise BadInput(f"step {ctx.step.id}: localhost means the environment, which is on engine {ctx.engine.name} "
                       f"({ctx.engine.host}), maybe another machine: its address is not reachable from here",
                       hint="run the request inside the environment (a run step), or use an engine of this machine")
    info = await ctx.engine.inspect_environment(ctx.environment)
    mode = info["HostConfig"].get("NetworkMode")
    if mode == "host":
        return None
    for network in (info["NetworkSettings"].get("Networks") or {}).values():
        if network.get("IPAddress"):
            return network["IPAddress"]
    raise BadInput(
        f"step {ctx.step.id}: the environment has no network address (network: {mode})",
        hint="use network: bridge or host for plans with http steps to the environment",
    )


async def http_step(ctx: StepContext) -> StepOutcome:
    aiohttp = _aiohttp()  # aiohttp and yarl only for plans with http steps: 80 ms of a start

    spec = render(ctx.step.spec, ctx.values)
    method = str(spec.get("method", "GET")).upper()
    url = _url(to_text(spec["url"]))
    headers = {str(k): to_text(v) for k, v in (spec.get("headers") or {}).items()}
    if url.host in LOCAL_HOSTS:
        address = await _environment_address(ctx)
        if address:
            headers.setdefault("Host", f"{url.host}:{url.port}" if url.explicit_port else url.host)
            url = url.with_host(address)
    query = {str(k): to_text(v) for k, v in (spec.get("query") or {}).items()}
    body = spec.get("body")
    kwargs: dict[str, Any] = {"headers": headers, "params": query or None}
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    elif body is not None:
        kwargs["data"] = to_text(body).encode()
    seconds = parse_duration(spec["timeout"], what="timeout") if "timeout" in spec else DEFAULT_TIMEOUT
    if ctx.timeout:
        seconds = min(seconds, ctx.timeout)
    ctx.output.write_text(f"{method} {url}\n", "stderr")
    try:
        # https gets a context with the system's CA store: aiohttp's own has none (_aiohttp)
        tls = ssl.create_default_context() if url.scheme == "https" else None
        refused: list[str] = []
        guard = _not_this_host(refused) if not ctx.host_network else None
        connector = aiohttp.TCPConnector(ssl=tls if tls else True, socket_factory=guard)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds), connector=connector) as session:
            async with session.request(method, url, **kwargs) as response:
                raw = await response.read()
                text = raw.decode(response.charset or "utf-8", "replace")
                result = {
                    "status": response.status,
                    "headers": {k.lower(): v for k, v in response.headers.items()},
                    "text": text,
                    "json": _json_or_none(text),
                }
    except asyncio.TimeoutError:
        return StepOutcome("failure", None, f"timeout: no answer from {url} within {seconds:g}s")
    except aiohttp.ClientError as err:
        if refused:
            return StepOutcome("failure", None, f"request to {url} refused: {refused[0]} is this host, and reaching "
                                                "the host's own services needs permissions: {network_host: true}")
        return StepOutcome("failure", None, f"request to {url} failed: {err}")
    ctx.output.write_text(f"HTTP {result['status']}\n", "stderr")
    ctx.output.write_text(text if text.endswith("\n") or not text else text + "\n")
    if result["status"] >= 400:
        return StepOutcome("failure", None, f"HTTP {result['status']}", response=result)
    return StepOutcome("success", None, response=result)


def _not_this_host(refused: list[str]) -> Callable[[Any], socket.socket]:
    """aiohttp's socket factory, called with each address it is about to connect to (after DNS,
    for IP literals and redirects too): this host's own addresses are refused, so a request
    cannot reach services that listen only on the host (its loopback, its docker0 address)
    unless the run was granted the host's network."""

    def make(addr_info: Any) -> socket.socket:
        family, kind, proto, _, address = addr_info
        if is_this_host(address[0]):
            refused.append(address[0])
            raise ConnectionRefusedError(errno.EACCES, f"{address[0]} is this host")
        return socket.socket(family, kind, proto)

    return make


def is_this_host(ip: str) -> bool:
    """A loopback or unspecified address, or one bound to an interface of this machine."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))  # only an address of this machine can be bound
        except OSError:
            return False
    return True


def _url(text: str) -> URL:
    """The URL to send to: only http:// or https:// with a host (file:// would read the host)."""
    from yarl import URL

    try:
        url = URL(text)
    except ValueError as err:
        raise BadInput(f"url {text!r} is not a URL: {err}") from None
    if url.scheme not in HTTP_SCHEMES or not url.host:
        raise BadInput(f"url {text!r} is not an http:// or https:// URL with a host; an http step sends nothing else")
    return url


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
