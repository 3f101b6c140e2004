"""glmtui's egress proxy: the only way out of environments with an allowlist.

One per engine, in the container `glmtui.egress`: on the engine's bridge network (its way
out) and on each such environment's internal network (which has no route anywhere else).
It admits plain HTTP by the request's host (the Host header must name the same), and HTTPS by
the CONNECT host, once the TLS ClientHello's server name (SNI) is that host too. It resolves
names itself. Everything else is refused, and every refusal is recorded.

Which environment asks is known by the address a connection comes from: glmtui writes, for
each environment, /egress/allow/NAME.json: {"environment", "subnets" (of that environment's
internal network), "allow" (as written), "rules": [{"host", "suffix", "port"} | {"network",
"port"}], "upstream": {"http", "https", "no_proxy"} (the user's proxy, which this one goes
through, with the user's no_proxy)}, read at every connection. Refusals are appended to /egress/blocked/NAME.jsonl as
{"time", "host", "port", "reason"} (the previous megabyte of them in NAME.jsonl.1).
"""

import asyncio
import base64
import ipaddress
import json
import os
import sys
import time

PORT = 3128
ROOT = os.environ.get("GLMTUI_EGRESS_ROOT", "/egress")
HEAD_LIMIT = 64 * 1024
HEAD_SECONDS = 30
CONNECT_SECONDS = 15
CHUNK = 64 * 1024
BLOCKED_LIMIT = 1024 * 1024  # bytes of refusals kept per environment (and as many before them)

def environment_of(peer):
    """The config of the environment whose network `peer` (an address) is on, or None."""
    address = ipaddress.ip_address(peer)
    for config in environments():
        if any(address in ipaddress.ip_network(subnet) for subnet in config["subnets"]):
            return config
    return None


def environments():
    """The configs of the environments, as written now: read at every connection (they are a few
    small files, and an mtime can stay the same across two quick writes)."""
    folder = os.path.join(ROOT, "allow")
    configs = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if entry.name.endswith(".json"):
            try:
                with open(entry.path, encoding="utf-8") as file:
                    configs.append(json.load(file))
            except (OSError, ValueError):
                continue  # being written: refused this once
    return configs


def allowed(rules, host, port):
    host = host.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for rule in rules:
        if rule.get("port") not in (None, port):
            continue
        if "network" in rule:
            if address is not None and address in ipaddress.ip_network(rule["network"]):
                return True
        elif rule["suffix"]:
            if host.endswith("." + rule["host"]):
                return True
        elif host == rule["host"]:
            return True
    return False


def record(config, host, port, reason):
    """Appended to the environment's refusals; past BLOCKED_LIMIT bytes they start again, the
    previous ones kept beside (NAME.jsonl.1)."""
    line = json.dumps({"time": time.time(), "host": host, "port": port, "reason": reason})
    name = config["environment"] if config else "-unknown"
    path = os.path.join(ROOT, "blocked", f"{name}.jsonl")
    try:
        if os.path.exists(path) and os.path.getsize(path) > BLOCKED_LIMIT:
            os.replace(path, path + ".1")
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    except OSError as err:
        print(f"cannot record a refusal of {host}:{port}: {err}", file=sys.stderr)


def blocked_line(host, port):
    return f"blocked: {host}:{port} is not in this environment's allowlist"


def split_host_port(text, default):
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and ":" not in host:
        return host, int(port)
    return text, default


async def refuse(writer, status, reason_line):
    body = (reason_line + "\n").encode()
    writer.write(f"HTTP/1.1 {status} {reason_line}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)
    try:
        await writer.drain()
    except OSError:
        pass
    writer.close()


def upstream_proxy(config, host, scheme):
    """(host, port, Proxy-Authorization or None) of the user's proxy for `scheme`, or None when
    there is none or `host` is in its no_proxy."""
    upstream = config.get("upstream") or {}
    url = upstream.get(scheme)
    if not url:
        return None
    host = host.lower()
    for entry in (upstream.get("no_proxy") or "").split(","):
        entry = entry.strip().lower()
        if entry == "*" or entry and (host == entry.lstrip(".") or host.endswith("." + entry.lstrip("."))):
            return None
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    credentials, _, authority = rest.rpartition("@")
    proxy_host, proxy_port = split_host_port(authority, 80)
    authorization = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
    return proxy_host, proxy_port, authorization


async def open_through(config, host, port):
    """A tunnel to host:port: through the user's proxy (a CONNECT of its own) if there is one."""
    chained = upstream_proxy(config, host, "https")
    if chained is None:
        return await open_upstream(host, port)
    proxy_host, proxy_port, authorization = chained
    reader, writer = await open_upstream(proxy_host, proxy_port)
    request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if authorization:
        request += f"Proxy-Authorization: {authorization}\r\n"
    writer.write((request + "\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_SECONDS)
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        writer.close()
        raise OSError(f"the upstream proxy {proxy_host}:{proxy_port} answered {head.splitlines()[0].decode(errors='replace')}")
    return reader, writer


async def open_upstream(host, port):
    """Resolved here, not by the environment; the first address that answers."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=1)  # SOCK_STREAM
    last = None
    for _family, _type, _proto, _name, address in infos:
        try:
            return await asyncio.wait_for(asyncio.open_connection(address[0], address[1]), CONNECT_SECONDS)
        except (OSError, asyncio.TimeoutError) as err:
            last = err
    raise last or OSError(f"no address for {host}")


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass


async def splice(client_reader, client_writer, upstream_reader, upstream_writer):
    await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
    for writer in (upstream_writer, client_writer):
        writer.close()


def server_name(hello):
    """The SNI host name of a TLS ClientHello record, or None (no SNI, or not a ClientHello)."""
    try:
        if hello[0] != 0x16 or hello[5] != 0x01:
            return None
        position = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        position += 1 + hello[position]  # session id
        position += 2 + int.from_bytes(hello[position:position + 2], "big")  # cipher suites
        position += 1 + hello[position]  # compression methods
        end = position + 2 + int.from_bytes(hello[position:position + 2], "big")
        position += 2
        while position + 4 <= end:
            kind = int.from_bytes(hello[position:position + 2], "big")
            length = int.from_bytes(hello[position + 2:position + 4], "big")
            if kind == 0:
                names = hello[position + 4:position + 4 + length]
                if names[2] == 0:
                    size = int.from_bytes(names[3:5], "big")
                    return names[5:5 + size].decode("ascii").lower()
            position += 4 + length
    except (IndexError, UnicodeDecodeError):
        return None
    return None


async def tunnel(config, host, port, reader, writer):
    """The tunnel is answered at once; the connection to the host is made while the client sends
    its ClientHello (it is not passed on before its server name is checked)."""
    upstream = asyncio.ensure_future(open_through(config, host, port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    try:
        await writer.drain()
        header = await asyncio.wait_for(reader.readexactly(5), HEAD_SECONDS)
        hello = header + await asyncio.wait_for(reader.readexactly(int.from_bytes(header[3:5], "big")), HEAD_SECONDS)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
        await close_upstream(upstream)
        writer.close()
        return
    name = server_name(hello)
    if name != host.lower().rstrip(".") and not (name is None and _is_address(host)):
        reason = (f"the TLS server name {name!r} is not the CONNECT host {host!r}" if name
                  else f"no TLS server name for {host!r} (only TLS with the host's name passes)")
        record(config, host, port, reason)
        await close_upstream(upstream)
        writer.close()
        return
    try:
        upstream_reader, upstream_writer = await upstream
    except (OSError, asyncio.TimeoutError) as err:
        print(f"cannot reach {host}:{port}: {err}", file=sys.stderr)
        writer.close()
        return
    upstream_writer.write(hello)
    await splice(reader, writer, upstream_reader, upstream_writer)


async def close_upstream(upstream):
    upstream.cancel()
    try:
        _, upstream_writer = await upstream
        upstream_writer.close()
    except (asyncio.CancelledError, OSError, asyncio.TimeoutError):
        pass


def _is_address(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


async def forward(config, method, target, version, headers, reader, writer):
    """Plain HTTP: one request, to the host its URL names (the Host header must agree)."""
    if not target.lower().startswith("http://"):
        record(config, target, 0, "not a proxy request")
        await refuse(writer, 400, "glmtui egress proxy: only absolute http:// URLs and CONNECT are served")
        return
    rest = target[7:]
    authority, slash, path = rest.partition("/")
    host, port = split_host_port(authority, 80)
    given = [value for name, value in headers if name.lower() == "host"]
    if given and split_host_port(given[0].strip(), 80) != (host, port):
        reason = f"the Host header {given[0].strip()!r} is not the URL's host {authority!r}"
        record(config, host, port, reason)
        await refuse(writer, 403, f"blocked: {reason}")
        return
    if not allowed(config["rules"], host, port):
        record(config, host, port, "not in the allowlist")
        await refuse(writer, 403, blocked_line(host, port))
        return
    chained = upstream_proxy(config, host, "http")
    try:
        upstream_reader, upstream_writer = await open_upstream(*(chained[:2] if chained else (host, port)))
    except (OSError, asyncio.TimeoutError) as err:
        await refuse(writer, 502, f"cannot reach {host}:{port}: {err}")
        return
    kept = [(name, value) for name, value in headers
            if name.lower() not in ("proxy-connection", "proxy-authorization", "connection", "keep-alive")]
    if not given:
        kept.append(("Host", authority))
    if chained and chained[2]:
        kept.append(("Proxy-Authorization", " " + chained[2]))
    # Through the user's proxy the URL stays whole; to the host itself, only its path.
    line = f"{method} {target if chained else '/' + path} {version}\r\n"
    head = line + "".join(f"{n}:{v}\r\n" for n, v in kept) + "Connection: close\r\n\r\n"
    upstream_writer.write(head.encode("latin-1"))
    await splice(reader, writer, upstream_reader, upstream_writer)


async def read_head(reader):
    data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
    lines = data.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value))
    return method, target, version, headers


async def handle(reader, writer):
    config = environment_of(writer.get_extra_info("peername")[0])
    try:
        method, target, version, headers = await read_head(reader)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError, OSError):
        writer.close()
        return
    try:
        if config is None:
            await refuse(writer, 403, "blocked: this proxy serves only glmtui environments with an allowlist")
        elif method.upper() == "CONNECT":
            host, port = split_host_port(target, 443)
            if allowed(config["rules"], host, port):
                await tunnel(config, host, port, reader, writer)
            else:
                record(config, host, port, "not in the allowlist")
                await refuse(writer, 403, blocked_line(host, port))
        else:
            await forward(config, method, target, version, headers, reader, writer)
    except (OSError, asyncio.IncompleteReadError):
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", PORT, limit=HEAD_LIMIT, reuse_address=True)
    print(f"glmtui egress proxy on port {PORT}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
