"""A Docker engine of the test's own, for tests that stop, kill or restart an engine.

The machine's dockerd may be shared with other work, so no test touches it. A private one
gets its own socket, data root, exec root and pid file, and its own network namespace
(`unshare --net`): a dockerd in the host's namespace would create or remove the host's
docker0 bridge (with `--bridge none` it deletes it), breaking every other container.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


class PrivateDockerd:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="glmtui-dockerd-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = self.root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            "unshare", "--net", "--fork", "--kill-child",
            "dockerd",
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--host", self.host,
            "--iptables=false", "--ip6tables=false",
        ]

    def start(self, timeout: float = 60) -> None:
        assert self.process is None, "already started"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
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
        shutil.rmtree(self.root, ignore_errors=True)
