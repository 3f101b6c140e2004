"""A Docker engine of the test's own, for tests that stop, kill or restart an engine, or reach
one over TCP with TLS.

The machine's dockerd may be shared with other work, so no test touches it. A private one
gets its own socket, data root, exec root and pid file, and its own network namespace
(`unshare --net`): a dockerd in the host's namespace would create or remove the host's
docker0 bridge (with `--bridge none` it deletes it), breaking every other container.

With `tls=True` it also listens on TCP port 2376 with TLS (--tlsverify, certificates the test
makes with openssl), reached from the host through a veth pair of its own: one end in the
engine's namespace, the other in the host's, on a /30 of 10.231.0.0/16 no interface uses. The
pair goes when the namespace does (when the engine exits); docker0 is never touched.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from helpers import certificates

TLS_PORT = 2376
VETH_NETWORK = ipaddress.ip_network("10.231.0.0/16")


class PrivateDockerd:
    def __init__(self, root: Path | None = None, *, tls: bool = False) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="glmtui-dockerd-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = self.root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = tls
        self.veth = f"gt{os.getpid() % 0x10000:04x}{random.randrange(0x100):02x}"  # + h / c: 9 characters
        self.address = _free_slash_30() if tls else None  # (host end, engine end)
        self.certs = certificates(_folder(self.root / "certs"), str(self.address[1])) if self.address else None
        self.tls_host = f"tcp://{self.address[1]}:{TLS_PORT}" if self.address else None

    def argv(self) -> list[str]:
        argv = [
            "unshare", "--net", "--fork", "--kill-child",
            "dockerd",
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--host", self.host,
            "--iptables=false", "--ip6tables=false",
        ]
        if self.certs is not None:
            argv += ["--host", f"tcp://0.0.0.0:{TLS_PORT}", "--tlsverify", "--tlscacert", str(self.certs / "ca.pem"),
                     "--tlscert", str(self.certs / "server.pem"), "--tlskey", str(self.certs / "server-key.pem")]
        return argv

    def tls_variables(self) -> dict[str, str]:
        """DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for its TLS address, as the docker CLI takes them."""
        assert self.tls_host and self.certs
        return {"DOCKER_HOST": self.tls_host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.certs)}

    def _link(self) -> None:
        """The veth pair from the host's namespace into the engine's, once unshare has made it."""
        assert self.process is not None and self.address is not None
        own = os.readlink("/proc/self/ns/net")
        theirs = f"/proc/{self.process.pid}/ns/net"
        deadline = time.monotonic() + 10
        while os.readlink(theirs) == own:  # unshare has not unshared yet: never put the pair in the host's
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("the private dockerd's network namespace did not appear")
            time.sleep(0.01)
        host_end, engine_end = self.address
        _ip("link", "add", f"{self.veth}h", "type", "veth", "peer", "name", f"{self.veth}c",
            "netns", str(self.process.pid))
        _ip("addr", "add", f"{host_end}/30", "dev", f"{self.veth}h")
        _ip("link", "set", f"{self.veth}h", "up")
        inside = ["nsenter", f"--net={theirs}", "ip"]
        for args in (("addr", "add", f"{engine_end}/30", "dev", f"{self.veth}c"),
                     ("link", "set", f"{self.veth}c", "up"), ("link", "set", "lo", "up")):
            subprocess.run([*inside, *args], check=True, capture_output=True, timeout=30)

    def start(self, timeout: float = 60) -> None:
        assert self.process is None, "already started"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        if self.address is not None:
            self._link()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the private dockerd exited at start: {self.log.read_text()[-2000:]}")
            if self.docker("info", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"the private dockerd did not answer within {timeout:g}s: {self.log.read_text()[-2000:]}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as a service manager stops an engine; SIGKILL if it does not go."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def kill(self) -> None:
        """SIGKILL to all of it, as a crash or the kernel's OOM killer ends an engine: nothing shuts
        down cleanly. Its pid file stays behind (as the machine's does), so it goes for a next start."""
        process, self.process = self.process, None
        assert process is not None, "not started"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        (self.root / "dockerd.pid").unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def docker(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine."""
        result = subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def load_image_from_machine(self, image: str) -> None:
        """`docker save` from the machine's engine into this one: no build, no registry."""
        saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=saved.stdout, capture_output=True,
                                text=True, timeout=120)
        assert saved.wait(60) == 0 and loaded.returncode == 0, loaded.stderr

    def close(self) -> None:
        """Stop it and remove everything it made (its containers live in its own data root)."""
        if self.process is not None:
            for cid in self.docker("ps", "-aq", check=False).stdout.split():
                self.docker("rm", "-f", cid, check=False)
        self.stop()
        if self.address is not None:  # gone with the namespace; said again in case it was not
            subprocess.run(["ip", "link", "del", f"{self.veth}h"], capture_output=True, timeout=30)
        self._unmount()
        shutil.rmtree(self.root, ignore_errors=True)

    def _unmount(self) -> None:
        """What a killed engine left mounted under its root (its data root is a mount of its own)."""
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        for point in sorted({p for p in points if p == str(self.root) or p.startswith(f"{self.root}/")}, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_slash_30() -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """A /30 of VETH_NETWORK that no interface of the host has an address in: (host end, engine end)."""
    taken = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=30).stdout
    used = {ipaddress.ip_interface(word).network for line in taken.splitlines() for word in line.split()
            if "/" in word and word[0].isdigit()}
    for _ in range(100):
        start = VETH_NETWORK.network_address + 4 * random.randrange(VETH_NETWORK.num_addresses // 4)
        subnet = ipaddress.ip_network(f"{start}/30")
        if not any(subnet.overlaps(network) for network in used):
            first, second = list(subnet.hosts())
            return first, second
    raise AssertionError(f"no free /30 in {VETH_NETWORK}")
