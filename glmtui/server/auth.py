"""Who may talk to `glmtui serve`: the bearer token, the Host header, and the log of refusals.

The token is made at first need (`glmtui serve` or `glmtui serve token`), kept 0600 in the
user's config folder, and compared in constant time. A running server reads the file again
whenever it changes, so `glmtui serve token --rotate` takes effect at the next request.

The Host header is checked on every request (DNS rebinding: a web page whose name resolves
to 127.0.0.1 reaches a loopback server with its own name in Host): a server on loopback answers
to loopback names and addresses only; one bound to an address answers to that address too,
one bound to every address to any address literal; names beyond those come from `serve.hosts`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from glmtui import paths

TOKEN_PREFIX = "glmtui_"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


# --- the token ---------------------------------------------------------------------------------


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits


class TokenFile:
    """The token on disk; `matches()` reads it again when the file changed (rotation)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.serve_token_file()
        self._seen: tuple[int, int, int] | None = None
        self._token: bytes | None = None

    def ensure(self) -> tuple[str, bool]:
        """The token, made now when there is none (then True); a file others may read is made 0600."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return self.rotate(), True
        if info.st_mode & 0o077:
            os.chmod(self.path, 0o600)
        return self.read(), False

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8").strip()

    def rotate(self) -> str:
        """A new token, written atomically (0600 from the start); the old one stops working."""
        token = new_token()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (token + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(self.path)
        return token

    def matches(self, given: str) -> bool:
        """Whether `given` is the current token (constant time). A missing file matches nothing."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._seen = self._token = None
            return False
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            self._token = self.read().encode()
            self._seen = seen
        return self._token is not None and hmac.compare_digest(given.encode(), self._token)

    def session(self) -> str:
        """The dashboard's session cookie for the current token: made from it (so rotating the
        token ends every session), and not the token itself (the cookie is no bearer token)."""
        self.matches("")  # reads the file again if it changed
        if self._token is None:
            raise FileNotFoundError(self.path)
        return _session_of(self._token)

    def session_matches(self, given: str) -> bool:
        """Whether `given` is the session cookie of the current token (constant time)."""
        self.matches("")
        return self._token is not None and hmac.compare_digest(given.encode(), _session_of(self._token).encode())


def _session_of(token: bytes) -> str:
    return hmac.new(token, b"glmtui dashboard session", "sha256").hexdigest()


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def cookie(header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, or None."""
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


# --- the Host header -----------------------------------------------------------------------------


def host_name(header: str | None) -> str | None:
    """The name or address of a Host header without its port ([::1]:8765 -> ::1), lower-cased."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else None
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    address = _address(host)
    return host.lower() in LOOPBACK_NAMES if address is None else address.is_loopback


class HostNames:
    """The Host header values the server answers to."""

    def __init__(self, bind: str, extra: Iterable[str] = ()) -> None:
        self.bind = bind.strip("[]").lower()
        self.extra = frozenset(name.lower() for name in extra)

    def allows(self, header: str | None) -> bool:
        name = host_name(header)
        if name is None:
            return False
        if is_loopback(name) or name in self.extra or name == self.bind:
            return True
        return self.bind in WILDCARDS and _address(name) is not None

    def describe(self) -> str:
        names = ["loopback names"]
        if self.bind in WILDCARDS:
            names.append("any address")
        elif not is_loopback(self.bind):
            names.append(self.bind)
        return ", ".join(names + sorted(self.extra))


# --- the log of refusals ---------------------------------------------------------------------------


class RefusalLog:
    """One log line per refused request, at most `burst` in `period` seconds: then one line says
    how many more were refused (a flood must not fill the log)."""

    def __init__(self, line: Callable[[str], None], *, burst: int = 20, period: float = 60.0) -> None:
        self.line = line
        self.burst, self.period = burst, period
        self._window_start = 0.0
        self._logged = 0
        self._dropped = 0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.period:
            if self._dropped:
                self.line(f"api: {self._dropped} more refused requests in the last {self.period:g}s were not logged one by one")
            self._window_start, self._logged, self._dropped = now, 0, 0
        if self._logged < self.burst:
            self._logged += 1
            self.line(text)
        else:
            self._dropped += 1


def shown(text: str, limit: int = 200) -> str:
    """A client's text (a path, a name) for a log line: one line, bounded, escapes visible."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.encode("unicode_escape").decode("ascii")
