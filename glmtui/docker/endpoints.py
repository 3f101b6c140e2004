"""Which Docker engines there are, by name, and how each is reached. Light: files and variables only.

Three sources, as the docker CLI has them:

- `default`: glmtui's `docker_host` (like `docker -H`), else DOCKER_HOST, else the default socket,
  with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for a tcp:// address;
- Docker contexts (`docker context create`): the meta files under DOCKER_CONFIG (~/.docker),
  read as the CLI reads them, with the TLS files it keeps beside them;
- glmtui's own `engines.NAME: {host, tls: {ca, cert, key, verify}}` in the config, which win
  over a context of the same name.

The engine used when none is named is the one the docker CLI would use: `default` when
docker_host or DOCKER_HOST is set, else the context DOCKER_CONTEXT names, else the current
context of ~/.docker/config.json, else `default`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from glmtui.errors import BadInput, NotFound, did_you_mean

DEFAULT_NAME = "default"
DEFAULT_HOST = "unix:///var/run/docker.sock"
SCHEMES = ("unix", "tcp", "http", "https", "ssh")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # a docker context's name
TLS_KEYS = ("ca", "cert", "key", "verify")


@dataclass(frozen=True)
class TLS:
    """Certificates for a tcp:// engine: the CA that signed the engine's (None: the system's),
    the client's certificate and key (None: none), and whether the engine's is verified."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str  # unix:///PATH, tcp://HOST:PORT, https://HOST:PORT or ssh://[USER@]HOST[:PORT][/SOCKET]
    tls: TLS | None = None
    source: str = "default"  # default, context or config
    description: str = ""

    @property
    def scheme(self) -> str:
        return self.host.split("://", 1)[0]

    @property
    def local(self) -> bool:
        """On this machine for sure: a unix socket. Any other address may be another machine,
        whose paths (bind mounts) are not this machine's."""
        return self.scheme == "unix"

    @property
    def same_engine_as(self) -> tuple[str, TLS | None]:
        """What identifies the engine: two names with the same address are one engine."""
        return self.host, self.tls


def check_host(host: str, what: str) -> str:
    """BadInput unless `host` is an engine address glmtui can reach."""
    parts = urlsplit(host)
    if parts.scheme not in SCHEMES:
        raise BadInput(f"{what}: {host!r} is not an engine address",
                       hint="unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST[:PORT]")
    if parts.scheme == "unix":
        if not parts.path:
            raise BadInput(f"{what}: {host!r} names no socket", hint="unix:///var/run/docker.sock")
        return host
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        raise BadInput(f"{what}: {host!r} has a port that is not a number") from None
    if not parts.hostname:
        raise BadInput(f"{what}: {host!r} names no host")
    if parts.query or parts.fragment:
        raise BadInput(f"{what}: {host!r} has a query or fragment, which engine addresses do not take")
    if parts.scheme == "ssh" and parts.password is not None:
        raise BadInput(f"{what}: {host!r} holds a password", hint="use a key (ssh-agent or ~/.ssh/config), "
                       "as the docker CLI does")
    if parts.scheme != "ssh" and parts.path not in ("", "/"):
        raise BadInput(f"{what}: {host!r} has a path, which only unix:// and ssh:// addresses take")
    return host


@dataclass
class Endpoints:
    """Every engine by name, in the order they are shown: default, then the config's, then contexts."""

    by_name: dict[str, Endpoint]
    current: str  # the engine used when none is named

    def __getitem__(self, name: str | None) -> Endpoint:
        name = self.current if name is None else name
        endpoint = self.by_name.get(name)
        if endpoint is None:
            raise NotFound(f"no engine named {name!r}{did_you_mean(name, self.by_name)}",
                           hint="`glmtui engines list` shows them")
        return endpoint

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    def distinct(self) -> list[Endpoint]:
        """One name per engine (the first, the current first of all): what to ask for environments."""
        seen: set[Any] = set()
        found = []
        ordered = [self.by_name[self.current], *(e for n, e in self.by_name.items() if n != self.current)]
        for endpoint in ordered:
            if endpoint.same_engine_as not in seen:
                seen.add(endpoint.same_engine_as)
                found.append(endpoint)
        return found


# -- the sources --------------------------------------------------------------------------------


def docker_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def default_endpoint(docker_host: str | None = None, environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine of glmtui's docker_host (set like `docker -H`), else DOCKER_HOST, else the default socket."""
    environ = os.environ if environ is None else environ
    if docker_host:
        host, what = docker_host, "docker_host"
    elif environ.get("DOCKER_HOST"):
        host, what = environ["DOCKER_HOST"], "DOCKER_HOST"
    else:
        host, what = DEFAULT_HOST, "default"
    check_host(host, what)
    tls = _environment_tls(environ) if host.split("://", 1)[0] in ("tcp", "https") else None
    if tls is None and host.startswith("https://"):
        tls = TLS()
    description = {"docker_host": "glmtui's docker_host", "DOCKER_HOST": "DOCKER_HOST"}.get(what, "the default socket")
    return Endpoint(DEFAULT_NAME, host, tls, "default", description)


def _environment_tls(environ: Mapping[str, str]) -> TLS | None:
    """DOCKER_TLS_VERIFY (any value, as the docker CLI reads it) with the files of DOCKER_CERT_PATH
    (a missing one is said when the engine is reached)."""
    if not environ.get("DOCKER_TLS_VERIFY"):
        return None
    folder = Path(environ.get("DOCKER_CERT_PATH") or docker_config_dir(environ))
    return TLS(*(str(folder / name) for name in ("ca.pem", "cert.pem", "key.pem")))


def context_endpoints(environ: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """The Docker contexts that have a docker endpoint, by name."""
    store = docker_config_dir(environ) / "contexts"
    found: dict[str, Endpoint] = {}
    for meta_file in sorted((store / "meta").glob("*/meta.json")):
        try:
            meta = json.loads(meta_file.read_text())
            name = meta["Name"]
            docker = meta["Endpoints"]["docker"]
            host = docker["Host"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a context the docker CLI could use either
        if not isinstance(name, str) or name == DEFAULT_NAME or not NAME_PATTERN.match(name):
            continue
        tls_folder = store / "tls" / meta_file.parent.name / "docker"
        files = {key: tls_folder / f"{key}.pem" for key in ("ca", "cert", "key")}
        present = {key: str(path) for key, path in files.items() if path.is_file()}
        skip_verify = bool(docker.get("SkipTLSVerify"))
        tls = TLS(**present, verify=not skip_verify) if present or skip_verify else None
        if tls is None and str(host).startswith("https://"):
            tls = TLS()
        description = ((meta.get("Metadata") or {}).get("Description") or "") if isinstance(meta, dict) else ""
        found[name] = Endpoint(name, str(host), tls, "context", str(description))
    return found


def current_context(environ: Mapping[str, str] | None = None) -> str:
    """DOCKER_CONTEXT, else the currentContext of the docker CLI's config.json, else default."""
    environ = os.environ if environ is None else environ
    if environ.get("DOCKER_CONTEXT"):
        return environ["DOCKER_CONTEXT"]
    try:
        data = json.loads((docker_config_dir(environ) / "config.json").read_text())
    except (OSError, ValueError):
        return DEFAULT_NAME
    current = data.get("currentContext") if isinstance(data, dict) else None
    return current if isinstance(current, str) and current else DEFAULT_NAME


def configured_endpoint(name: str, entry: Any, where: str = "engines") -> Endpoint:
    """An `engines.NAME` entry of the config, checked."""
    what = f"{where}.{name}"
    if name == DEFAULT_NAME:
        raise BadInput(f"{what}: the name default is the engine of docker_host / DOCKER_HOST",
                       hint="set docker_host for it, or pick another name")
    if not NAME_PATTERN.match(name):
        raise BadInput(f"{what}: {name!r} is not an engine name", hint="letters, digits, '_', '.', '+' and '-'")
    if isinstance(entry, str):
        entry = {"host": entry}
    if not isinstance(entry, Mapping) or not entry.get("host"):
        raise BadInput(f"{what}: give its address as host", hint=f"{what}.host: ssh://USER@HOST or tcp://HOST:2376")
    unknown = set(entry) - {"host", "tls", "description"}
    if unknown:
        raise BadInput(f"{what}: unknown key {sorted(unknown)[0]!r}", hint="host, tls, description")
    tls = None
    if entry.get("tls") is not None:
        settings = entry["tls"]
        if not isinstance(settings, Mapping):
            raise BadInput(f"{what}.tls: a mapping of ca, cert, key and verify")
        unknown = set(settings) - set(TLS_KEYS)
        if unknown:
            raise BadInput(f"{what}.tls: unknown key {sorted(unknown)[0]!r}", hint="ca, cert, key, verify")
        verify = settings.get("verify", True)
        if not isinstance(verify, bool):
            raise BadInput(f"{what}.tls.verify: true or false, not {verify!r}")
        files = {key: _expand(settings.get(key)) for key in ("ca", "cert", "key")}
        if bool(files["cert"]) != bool(files["key"]):
            raise BadInput(f"{what}.tls: a client certificate needs both cert and key")
        tls = TLS(files["ca"], files["cert"], files["key"], verify)
    host = check_host(str(entry["host"]), f"{what}.host")
    if tls is not None and not host.startswith(("tcp://", "https://")):
        raise BadInput(f"{what}.tls: tls is for tcp:// addresses, not {host.split('://', 1)[0]}://")
    if tls is None and host.startswith("https://"):
        tls = TLS()
    return Endpoint(name, host, tls, "config", str(entry.get("description") or ""))


def _expand(path: Any) -> str | None:
    return None if path in (None, "") else os.path.expanduser(str(path))


def resolve(docker_host: str | None = None, configured: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> Endpoints:
    """Every engine: `docker_host` is the config's, `configured` its `engines` mapping."""
    environ = os.environ if environ is None else environ
    default = default_endpoint(docker_host, environ)
    by_name = {DEFAULT_NAME: default}
    for name, entry in sorted((configured or {}).items()):
        by_name[name] = configured_endpoint(name, entry)
    for name, endpoint in context_endpoints(environ).items():
        by_name.setdefault(name, endpoint)
    current = DEFAULT_NAME if docker_host or environ.get("DOCKER_HOST") else current_context(environ)
    if current not in by_name:
        where = "DOCKER_CONTEXT" if environ.get("DOCKER_CONTEXT") else "the docker CLI's current context"
        raise BadInput(f"{where} names the context {current!r}, which does not exist{did_you_mean(current, by_name)}",
                       hint="`docker context ls` lists them; `docker context use default` goes back to the socket")
    return Endpoints(by_name, current)


def from_config(config: Any, environ: Mapping[str, str] | None = None) -> Endpoints:
    return resolve(config.get("docker_host"), config.engines(), environ)
