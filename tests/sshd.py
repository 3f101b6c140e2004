"""An sshd of the test's own on 127.0.0.1, and the system's ssh client configured to reach it.

The sshd runs as root (as the machine's tests do) with a host key and a user key the test
makes; each session's `docker` talks to the engine of `docker_host` (SetEnv DOCKER_HOST). It
listens on one port per way an SSH engine can fail, so that each gets a master of its own
(OpenSSH shares a master per host, port and user):

    glmtui-test       a working engine
    glmtui-nodocker   a far side with no docker on its PATH
    glmtui-noperm     a far side whose docker runs as a user without access to the socket
                      (nobody, through setpriv: the real CLI, refused by the real socket), and
                      whose sshd forwards no socket (it would reach the socket as root)
    glmtui-wrongkey   a client key the server does not accept
    glmtui-changed    a known_hosts entry that is not the server's key
    glmtui-unknown    an empty known_hosts

These names are Host entries of an ssh config file of the test's (`ssh -F`): a folder holding
an `ssh` that runs the system's /usr/bin/ssh with it goes first on PATH (`path`), so glmtui and
the docker CLI both find it as they find ssh on a user's machine, and the user's own ~/.ssh is
never read. The control sockets of masters go to a runtime folder of the test's (`runtime`,
for XDG_RUNTIME_DIR); `close` ends the masters, then the sshd.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ALIASES = ("glmtui-test", "glmtui-nodocker", "glmtui-noperm", "glmtui-wrongkey", "glmtui-changed", "glmtui-unknown")
SSH = "/usr/bin/ssh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SSHServer:
    def __init__(self, docker_host: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="glmtui-sshd-"))
        self.docker_host = docker_host
        self.ports = {alias: free_port() for alias in ALIASES}
        self.runtime = Path(tempfile.mkdtemp(prefix="gr-"))  # short: control socket paths have a length limit
        self.bin = self.root / "bin"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def path(self) -> str:
        """PATH with the test's ssh first."""
        return f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"

    def variables(self) -> dict[str, str]:
        """What a process needs to reach the engine over this sshd as a user would."""
        return {"PATH": self.path, "XDG_RUNTIME_DIR": str(self.runtime)}

    def start(self, timeout: float = 20) -> None:
        root = self.root
        for name in ("host_key", "user_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(root / name)],
                           check=True, capture_output=True, timeout=30)
        (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
        noperm = root / "noperm-bin"
        noperm.mkdir()
        (noperm / "docker").write_text(  # the real CLI, as a user the socket refuses
            f"#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/ {shutil.which('docker')} \"$@\"\n")
        (noperm / "docker").chmod(0o755)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        lines = [
            *(f"ListenAddress 127.0.0.1:{port}" for port in self.ports.values()),
            f"HostKey {root / 'host_key'}",
            f"AuthorizedKeysFile {root / 'authorized_keys'}",
            f"PidFile {root / 'sshd.pid'}",
            "StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "PermitRootLogin prohibit-password", "MaxStartups 100", "MaxSessions 100",
            "LogLevel VERBOSE",  # each session in the log: `Starting session: command for root ...`
            # the first SetEnv that applies wins: the ports of the far sides that fail come first
            f"Match LocalPort {self.ports['glmtui-nodocker']}",
            f"  SetEnv DOCKER_HOST={self.docker_host} PATH=/usr/sbin",
            f"Match LocalPort {self.ports['glmtui-noperm']}",
            f"  SetEnv DOCKER_HOST={self.docker_host} PATH={noperm}:/usr/bin:/bin",
            "  AllowStreamLocalForwarding no",  # as root, a forward would reach the socket
            "Match all",
            f"  SetEnv DOCKER_HOST={self.docker_host}",
        ]
        (root / "sshd_config").write_text("\n".join(lines) + "\n")
        subprocess.run(["/usr/sbin/sshd", "-t", "-f", str(root / "sshd_config")], check=True, capture_output=True,
                       timeout=30)
        self._client_config()
        with (root / "sshd.log").open("ab") as log:
            self.process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")],
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"sshd exited at start: {(root / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.ports["glmtui-test"]), timeout=1) as probe:
                    if probe.recv(4).startswith(b"SSH"):
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"sshd did not answer within {timeout:g}s")

    def _client_config(self) -> None:
        root = self.root
        host_key = (root / "host_key.pub").read_text().split()[:2]
        other_key = (root / "other_key.pub").read_text().split()[:2]
        known = [f"[127.0.0.1]:{port} {' '.join(host_key)}" for port in self.ports.values()]
        (root / "known_hosts").write_text("\n".join(known) + "\n")
        (root / "known_hosts_changed").write_text(f"[127.0.0.1]:{self.ports['glmtui-changed']} {' '.join(other_key)}\n")
        (root / "known_hosts_empty").write_text("")
        entries = []
        for alias, port in self.ports.items():
            key = root / ("other_key" if alias == "glmtui-wrongkey" else "user_key")
            entries += [f"Host {alias}", "  HostName 127.0.0.1", f"  Port {port}", "  User root", f"  IdentityFile {key}"]
            if alias == "glmtui-changed":
                entries.append(f"  UserKnownHostsFile {root / 'known_hosts_changed'}")
            if alias == "glmtui-unknown":
                entries.append(f"  UserKnownHostsFile {root / 'known_hosts_empty'}")
        entries += ["Host *", "  IdentitiesOnly yes",
                    f"  UserKnownHostsFile {root / 'known_hosts'}", "  StrictHostKeyChecking yes",
                    "  LogLevel ERROR"]
        (root / "ssh_config").write_text("\n".join(entries) + "\n")
        self.bin.mkdir()
        (self.bin / "ssh").write_text(f'#!/bin/sh\nexec {SSH} -F {root / "ssh_config"} "$@"\n')
        (self.bin / "ssh").chmod(0o755)

    def masters(self) -> dict[str, int]:
        """The SSH masters running for its hosts (through glmtui's control sockets): alias -> pid."""
        running = {}
        for alias in ALIASES:
            check = self._control(alias, "check")
            if check.returncode == 0 and "pid=" in check.stderr:
                running[alias] = int(check.stderr.split("pid=")[1].split(")")[0])
        return running

    def _control(self, alias: str, command: str) -> subprocess.CompletedProcess[str]:
        control = self.runtime / "glmtui" / "ssh-%C"
        return subprocess.run([SSH, "-F", str(self.root / "ssh_config"), "-o", f"ControlPath={control}", "-O", command,
                               alias], capture_output=True, text=True, timeout=30)

    def close(self) -> None:
        """End the masters glmtui left (they persist after its last session, by design), then the sshd."""
        for alias in ALIASES:
            self._control(alias, "exit")
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runtime, ignore_errors=True)
