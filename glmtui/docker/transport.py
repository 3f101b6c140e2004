"""How the bytes of one HTTP connection reach an engine: a unix socket, TCP (with TLS), or SSH.

SSH goes through the system's `ssh`, so ~/.ssh/config, agents, jump hosts and known_hosts work
as they do for the user. One SSH connection per host is kept and shared (OpenSSH multiplexing:
a master with a control socket in the user's runtime folder, persisting CONTROL_PERSIST seconds
after its last use, so the next glmtui command finds it), and each HTTP connection carries
requests one after another (keep-alive, see `wire`). Over it, a connection to the engine is:

- a channel of the master to the engine's socket on the far side (`ssh -O forward` of a socket
  in the runtime folder to it): no process on either side, a millisecond to open. The socket is
  the one the far side's docker uses (`docker context inspect` there, once per master), or the
  one the address names (ssh://HOST/PATH);
- else `ssh HOST docker system dial-stdio` on a socket pair, as the docker CLI does: a session of
  the master, whose start costs the far side a shell and a docker process. It is also what says
  why the engine cannot be reached (ssh's and the far side's own words, made one line).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shlex
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from glmtui.docker.endpoints import TLS, Endpoint
from glmtui.docker.errors import EngineConnectionError

READ_SIZE = 256 * 1024
SSH_CONNECT_SECONDS = 10  # ssh's own ConnectTimeout; a connection takes at most CONNECT_SECONDS in all
CONTROL_PERSIST = 300  # seconds an SSH master stays after its last session
STDERR_KEPT = 16 * 1024


class Channel:
    """One connection to the engine: a stream pair, and for SSH the process or the forward carrying it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 process: SSHProcess | None = None, forward: SSHDialer | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.process = process
        self.forward = forward
        # A connection that failed before an answer may be tried once more on a new one: through
        # a forward that stopped working, the new one goes the other way (dial-stdio), which works
        # or says why not.
        self.second_chance = forward is not None

    async def why_closed(self) -> EngineConnectionError | None:
        """Why a new connection ended before an answer, when its carrier can say (SSH: ssh's or
        the far side's own words, made one line); None when nothing more is known."""
        if self.forward is not None:
            self.forward.forward_failed()
        return None if self.process is None else await self.process.failure()

    def close(self) -> None:
        self.writer.close()
        if self.process is not None:
            self.process.end()


class Dialer:
    """Opens connections to one engine."""

    slow = False  # a dial costs tens of milliseconds: keep one ready (see wire)

    async def dial(self) -> Channel:
        raise NotImplementedError

    async def close(self) -> None:
        """Wait for what the connections left running (SSH processes) to end."""


def dialer_for(endpoint: Endpoint) -> Dialer:
    scheme = endpoint.scheme
    if scheme == "unix":
        return UnixDialer(urlsplit(endpoint.host).path)
    if scheme in ("tcp", "http", "https"):
        parts = urlsplit(endpoint.host)
        tls = endpoint.tls
        port = parts.port or (2376 if tls else 2375)
        return TCPDialer(parts.hostname or "localhost", port, tls_context(tls) if tls else None)
    if scheme == "ssh":
        return SSHDialer(endpoint.host)
    raise EngineConnectionError(f"unsupported engine address {endpoint.host!r}",
                                hint="unix://PATH, tcp://HOST:PORT or ssh://USER@HOST")


# -- unix and TCP --------------------------------------------------------------------------------


class UnixDialer(Dialer):
    def __init__(self, path: str) -> None:
        self.path = path

    async def dial(self) -> Channel:
        try:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=READ_SIZE)
        except FileNotFoundError:
            raise EngineConnectionError(f"no socket at {self.path}") from None
        except PermissionError:
            raise EngineConnectionError(f"permission denied on {self.path}",
                                        hint="add yourself to the docker group (then log in again)") from None
        except OSError as err:
            raise EngineConnectionError(f"{self.path}: {err.strerror or err}") from None
        return Channel(reader, writer)


class TCPDialer(Dialer):
    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.host, self.port, self.tls = host, port, tls

    async def dial(self) -> Channel:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls, limit=READ_SIZE)
        except ssl.SSLCertVerificationError as err:
            raise EngineConnectionError(
                f"the engine's certificate is not trusted ({err.reason}: {err.verify_message})",
                hint="its CA is tls.ca of the engine, or ca.pem of DOCKER_CERT_PATH") from None
        except ssl.SSLError as err:
            raise tls_failure(err) from None
        except socket.gaierror as err:
            raise EngineConnectionError(f"cannot find the host {self.host} ({err.strerror})",
                                        hint="check the engine's address") from None
        except OSError as err:
            reason = os.strerror(err.errno).lower() if err.errno else str(err)
            raise EngineConnectionError(f"{self.host}:{self.port}: {reason}",
                                        hint="is the engine listening on that address (dockerd -H tcp://...)?") from None
        return Channel(reader, writer)


def tls_failure(err: ssl.SSLError) -> EngineConnectionError:
    """A TLS error during or just after the handshake. With TLS 1.3 the engine's refusal of a
    client (no certificate, or one it does not trust) arrives with the first read."""
    reason = err.reason or str(err)
    if "CERTIFICATE_REQUIRED" in reason or "HANDSHAKE_FAILURE" in reason or "UNKNOWN_CA" in reason \
            or "BAD_CERTIFICATE" in reason:
        return EngineConnectionError(f"the engine refused this client's certificate ({reason})",
                                     hint="give tls.cert and tls.key (or cert.pem and key.pem of DOCKER_CERT_PATH) "
                                     "signed by the CA the engine trusts")
    return EngineConnectionError(f"TLS failed ({reason})")


def tls_context(tls: TLS) -> ssl.SSLContext:
    """The client side of TLS to an engine: its CA (else the system's), the client certificate."""
    for path in (tls.ca, tls.cert, tls.key):
        if path and not os.path.isfile(path):
            raise EngineConnectionError(f"{path} is missing",
                                        hint="the engine's tls.ca, tls.cert and tls.key, or with DOCKER_TLS_VERIFY "
                                        "the folder DOCKER_CERT_PATH names, hold ca.pem, cert.pem and key.pem")
    try:
        context = ssl.create_default_context(cafile=tls.ca)
        if tls.cert and tls.key:
            context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as err:
        raise EngineConnectionError(f"cannot use the TLS files ({getattr(err, 'strerror', None) or err}"
                                    f"{': ' + err.filename if getattr(err, 'filename', None) else ''})",
                                    hint="tls.ca, tls.cert and tls.key of the engine, or DOCKER_CERT_PATH") from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# -- SSH -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SSHTarget:
    user: str | None
    host: str
    port: int | None
    socket: str | None  # the engine's socket on the far side, when the address names one

    @classmethod
    def parse(cls, address: str) -> SSHTarget:
        """ssh://[USER@]HOST[:PORT][/SOCKET], the host's case kept (ssh_config matches it)."""
        rest = address[len("ssh://"):]
        netloc, slash, path = rest.partition("/")
        user, at, hostport = netloc.rpartition("@")
        if hostport.startswith("["):
            host, _, port = hostport[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = hostport.partition(":")
        return cls(user if at else None, host, int(port) if port else None, "/" + path if slash and path else None)

    @property
    def shown(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}"


def ssh_argv(target: SSHTarget, *options: str, command: list[str] | None = None) -> list[str]:
    argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_CONNECT_SECONDS}",
            "-o", "ServerAliveInterval=15", "-o", f"ControlPath={control_path()}", *options]
    if target.user:
        argv += ["-l", target.user]
    if target.port:
        argv += ["-p", str(target.port)]
    return [*argv, "--", target.host, *(command or [])]


def control_path() -> str:
    """The control sockets of SSH masters: one per user, host and port (%C)."""
    from glmtui.paths import runtime_dir

    return str(runtime_dir() / "ssh-%C")


class SSHDialer(Dialer):
    def __init__(self, address: str) -> None:
        self.address = address
        self.target = SSHTarget.parse(address)
        self._preparing = asyncio.Lock()
        self._prepared = False  # the master checked (made), and the forward looked for (set up)
        self._forward: str | None = None  # the local socket forwarded to the engine's, when there is one
        self._ending: set[asyncio.Task[None]] = set()

    @property
    def slow(self) -> bool:
        """Without a forward, a connection is a session on the far side: worth dialling ahead."""
        return self._forward is None

    def remote_command(self) -> list[str]:
        """`docker system dial-stdio` on the far side; the remote shell reads it, so the socket is quoted."""
        host = ["--host", shlex.quote(f"unix://{self.target.socket}")] if self.target.socket else []
        return ["docker", *host, "system", "dial-stdio"]

    async def dial(self) -> Channel:
        await self._prepare()
        if self._forward is not None:
            try:
                reader, writer = await asyncio.open_unix_connection(self._forward, limit=READ_SIZE)
                return Channel(reader, writer, forward=self)
            except OSError:
                self.forward_failed()  # gone with its master
        return await self._dial_stdio()

    def forward_failed(self) -> None:
        """The forward did not carry a connection: this process uses sessions from now on, and
        the next command sets a forward up again (its socket goes; it is ours, in our folder)."""
        if self._forward is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._forward)
        self._forward = None

    async def _dial_stdio(self) -> Channel:
        ours, theirs = socket.socketpair()
        try:
            process = await _spawn(ssh_argv(self.target, "-o", "ControlMaster=no", command=self.remote_command()),
                                   stdin=theirs.fileno(), stdout=theirs.fileno())
        except OSError as err:
            ours.close()
            raise EngineConnectionError(f"cannot start ssh ({err.strerror or err})",
                                        hint="install the OpenSSH client") from None
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours, limit=READ_SIZE)
        carrier = SSHProcess(process, self)
        return Channel(reader, writer, carrier)

    async def _prepare(self) -> None:
        """Once per dialer: the SSH connection that everything shares, checked and made when
        missing, and the forward to the engine's socket, found or set up when it can be."""
        if self._prepared:
            return
        async with self._preparing:
            if self._prepared:
                return
            await self._ensure_master()
            self._forward = await self._set_up_forward()
            self._prepared = True

    async def _ensure_master(self) -> None:
        """Made apart (`ssh -f -N`), a master's failure is ssh's own, before any session."""
        check = await _spawn(ssh_argv(self.target, "-O", "check"))
        await check.communicate()
        if check.returncode == 0:
            return
        master = await _spawn(ssh_argv(self.target, "-o", "ControlMaster=yes",
                                       "-o", f"ControlPersist={CONTROL_PERSIST}", "-f", "-N"))
        try:
            async with asyncio.timeout(SSH_CONNECT_SECONDS * 3):
                _, stderr = await master.communicate()
        except TimeoutError:
            master.kill()
            await master.wait()
            raise EngineConnectionError(f"ssh to {self.target.shown} did not finish logging in "
                                        f"within {SSH_CONNECT_SECONDS * 3} s") from None
        if master.returncode != 0:
            raise ssh_failure(self.target, stderr.decode(errors="replace"), master.returncode)

    async def _set_up_forward(self) -> str | None:
        """The local socket the master forwards to the engine's socket: one an earlier command
        set up, or a new one. None when the far side's engine is not on a unix socket, or its
        docker cannot say where (then sessions are used, and say what is wrong)."""
        from glmtui.paths import runtime_dir

        local = runtime_dir() / f"docker-{hashlib.sha256(self.address.encode()).hexdigest()[:16]}.sock"
        if local.is_socket():
            return str(local)
        remote = self.target.socket or await self._remote_socket()
        if remote is None:
            return None
        spec = f"{local}:{remote}"
        # A master keeps a forward whose socket went (it would not make it again): cancelled first.
        await (await _spawn(ssh_argv(self.target, "-O", "cancel", "-L", spec))).communicate()
        forward = await _spawn(ssh_argv(self.target, "-o", "StreamLocalBindUnlink=yes", "-O", "forward", "-L", spec))
        await forward.communicate()
        return str(local) if forward.returncode == 0 and local.is_socket() else None

    async def _remote_socket(self) -> str | None:
        """The socket the far side's docker uses (its DOCKER_HOST, or its current context)."""
        inspect = await _spawn(ssh_argv(self.target, "-o", "ControlMaster=no", command=[
            "docker", "context", "inspect", "--format", shlex.quote("{{.Endpoints.docker.Host}}")]),
            stdout=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(SSH_CONNECT_SECONDS * 3):
                out, _ = await inspect.communicate()
        except TimeoutError:
            inspect.kill()
            await inspect.wait()
            return None
        host = out.decode(errors="replace").strip()
        return host[len("unix://"):] if inspect.returncode == 0 and host.startswith("unix:///") else None

    def ending(self, task: asyncio.Task[None]) -> None:
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        if self._ending:
            await asyncio.gather(*list(self._ending), return_exceptions=True)


async def _spawn(argv: list[str], **streams: Any) -> asyncio.subprocess.Process:
    """ssh in its own session (a Ctrl-C at the terminal is glmtui's to handle, not ssh's), with
    no terminal to ask on (BatchMode), its stderr kept for the reason of a failure."""
    return await asyncio.create_subprocess_exec(
        *argv, stdin=streams.get("stdin", asyncio.subprocess.DEVNULL),
        stdout=streams.get("stdout", asyncio.subprocess.DEVNULL), stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


class SSHProcess:
    """The ssh of one connection: what it says on stderr is kept, and it is ended with the connection."""

    def __init__(self, process: asyncio.subprocess.Process, dialer: SSHDialer) -> None:
        self.process = process
        self.dialer = dialer
        self.stderr = bytearray()
        self._reading = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while data := await self.process.stderr.read(4096):
            del self.stderr[: max(0, len(self.stderr) + len(data) - STDERR_KEPT)]
            self.stderr += data

    async def failure(self) -> EngineConnectionError:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SSH_CONNECT_SECONDS + 5):
                await self.process.wait()
                await self._reading
        return ssh_failure(self.dialer.target, self.stderr.decode(errors="replace"), self.process.returncode)

    def end(self) -> None:
        self.dialer.ending(asyncio.get_running_loop().create_task(self._end()))

    async def _end(self) -> None:
        """A session of the master: ending its ssh ends the session (the master stays)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
        await self.process.wait()
        await self._reading


# What ssh and the far side say, and the one line each becomes. `{host}` is USER@HOST, `{name}` HOST.
_SSH_FAILURES: list[tuple[tuple[str, ...], str, str | None]] = [
    # the far side's docker, first: its words may hold ssh's ("connection refused")
    (("permission denied while trying to connect to the docker daemon socket",
      "permission denied while trying to connect to the Docker daemon socket", "connect: permission denied"),
     "the user of {host} may not use the Docker socket there",
     "add the user to the docker group on {name} (sudo usermod -aG docker USER), then log in again"),
    (("docker: command not found", "docker: not found", "docker: No such file"),
     "docker is not installed on {name} (or not on the PATH of a non-interactive ssh session there)",
     "install the docker CLI there; glmtui runs `docker system dial-stdio` on the far side"),
    (("Cannot connect to the Docker daemon", "Is the docker daemon running", "connect: no such file or directory",
      "connect: connection refused"),
     "the Docker engine on {name} is not running (or not at that socket)",
     "start it there (e.g. sudo systemctl start docker), or name its socket: ssh://{host}/PATH/docker.sock"),
    (("unknown command", "is not a docker command"), "docker on {name} is too old to carry the API over ssh "
     "(no `docker system dial-stdio`)", "install docker 18.09 or later there"),
    (("REMOTE HOST IDENTIFICATION HAS CHANGED",), "the host key of {name} is not the one known_hosts has for it",
     "if the change is expected, remove the old key (ssh-keygen -R {name}) and connect once with `ssh {host}` "
     "to check and accept the new one; if not, someone may be in the middle"),
    (("Host key verification failed", "No ED25519 host key is known", "No RSA host key is known"),
     "the host key of {name} is not in known_hosts", "connect once with `ssh {host}` to check and accept it"),
    (("Could not resolve hostname", "Name or service not known", "nodename nor servname"),
     "ssh cannot find the host {name}", "check the name, or give it a Host entry in ~/.ssh/config"),
    (("Permission denied (",), "{name} refused the key of {host}",
     "add your key to the agent (ssh-add) or name it in ~/.ssh/config (IdentityFile); "
     "`ssh {host}` shows what happens"),
    (("Connection refused",), "nothing answers ssh on {name}: connection refused",
     "is sshd running there, and is the port right?"),
    (("timed out", "No route to host", "Network is unreachable"), "{name} cannot be reached over ssh ({detail})",
     "is the host up, and the address right?"),
]


def ssh_failure(target: SSHTarget, stderr: str, returncode: int | None) -> EngineConnectionError:
    """The one line for why an SSH connection to an engine failed, from what ssh and the far side said."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not _noise(line)]
    detail = lines[-1] if lines else f"ssh exited with status {returncode}"
    for needles, message, hint in _SSH_FAILURES:
        if any(needle in stderr for needle in needles):
            values = {"host": target.shown, "name": target.host, "detail": detail.removeprefix("ssh: ")}
            return EngineConnectionError(message.format(**values), hint=hint.format(**values) if hint else None)
    if returncode == 127:
        return EngineConnectionError(f"docker is not installed on {target.host}",
                                     hint="install the docker CLI there")
    return EngineConnectionError(f"ssh to {target.shown} failed: {detail}",
                                 hint=f"`ssh {target.shown} docker version` shows what happens")


def _noise(line: str) -> bool:
    """Lines ssh prints that say nothing about a failure."""
    return line.startswith(("Warning: Permanently added", "@@@@", "Pseudo-terminal")) or "X11 forwarding" in line
