#!/usr/bin/env python
"""The egress proxy's cost: the first byte of an HTTPS request through it vs the same request direct.

    .venv/bin/python bench/egress.py [--runs 30] [--json]

A TLS server (python3's http.server with a self-signed certificate) runs on a Docker network
of the benchmark's own, which the engine's egress proxy joins. Two clients of the workspace
image run the same `curl https://tls1/` (a new connection each time): an environment with the
allowlist [tls1] (through the proxy: CONNECT, the proxy's name resolution and connection, the
SNI check), and a plain container on the server's network (direct). The figure is the median
of curl's time_starttransfer over RUNS requests each, taken in turns (goal: the proxy adds at
most 5 ms). Everything made is removed at the end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "glmtui/workspace:latest"
SERVER = """
import http.server, ssl
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\\n")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Answer)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/s/cert.pem", "/s/key.pem")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""
CURL = ["curl", "-sS", "-o", "/dev/null", "--cacert", "/tmp/ca.pem", "-w", "%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer}\\n", "https://tls1/"]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def glmtui(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "glmtui", *args], check=True, capture_output=True, text=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def first_byte(container: str) -> float:
    """curl's time to the first byte; the phases before it (name lookup, connect, TLS) kept in PHASES."""
    times = [float(value) for value in docker("exec", container, *CURL).split()]
    PHASES.setdefault(container, []).append(times)
    return times[-1]


PHASES: dict[str, list[list[float]]] = {}


def bench(runs: int) -> dict[str, float]:
    tag = f"bench-{os.getpid()}"
    network, server, direct, env = f"{tag}-net", f"{tag}-tls1", f"{tag}-direct", f"{tag}-limited"
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=tls1",
                        "-addext", "subjectAltName=DNS:tls1", "-keyout", "key.pem", "-out", "cert.pem"],
                       cwd=folder, check=True, capture_output=True)
        os.chmod(Path(folder) / "key.pem", 0o644)
        (Path(folder) / "server.py").write_text(SERVER)
        try:
            docker("network", "create", network)
            docker("run", "-d", "--name", server, "--network", network, "--network-alias", "tls1", "-v",
                   f"{folder}:/s:ro", "--user", "0", "--entrypoint", "python3", IMAGE, "/s/server.py")
            docker("run", "-d", "--name", direct, "--network", network, "--entrypoint", "sleep", IMAGE, "infinity")
            glmtui("env", "create", env, "--image", IMAGE, "--allow", "tls1")
            docker("network", "connect", network, "glmtui.egress")
            for container in (direct, f"glmtui-{env}"):
                docker("cp", f"{folder}/cert.pem", f"{container}:/tmp/ca.pem")
                for _ in range(3):  # warm-up
                    first_byte(container)
            samples: dict[str, list[float]] = {"direct": [], "proxy": []}
            for _ in range(runs):
                samples["direct"].append(first_byte(direct))
                samples["proxy"].append(first_byte(f"glmtui-{env}"))
            return {key: statistics.median(values) for key, values in samples.items()}
        finally:
            subprocess.run([sys.executable, "-m", "glmtui", "env", "remove", env, "--volumes"], capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            subprocess.run(["docker", "rm", "-f", server, direct], capture_output=True)
            subprocess.run(["docker", "network", "disconnect", "-f", network, "glmtui.egress"], capture_output=True)
            subprocess.run(["docker", "network", "rm", network], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    medians = bench(args.runs)
    added = (medians["proxy"] - medians["direct"]) * 1000
    if args.json:
        print(json.dumps({"load": load, **medians, "added_ms": added}))
        return
    print(f"HTTPS first byte, median of {args.runs} requests each, load {load:.1f}")
    print(f"direct  {medians['direct'] * 1000:6.1f} ms")
    print(f"proxy   {medians['proxy'] * 1000:6.1f} ms  (+{added:.1f} ms, goal <= +5 ms: "
          f"{'PASS' if added <= 5 else 'MISS'})")
    for container, samples in PHASES.items():
        phases = [statistics.median(column) * 1000 for column in zip(*samples)]
        print(f"  {'proxy' if 'limited' in container else 'direct'}: name lookup {phases[0]:.1f} ms, connected "
              f"{phases[1]:.1f} ms, TLS done {phases[2]:.1f} ms, first byte {phases[3]:.1f} ms")


if __name__ == "__main__":
    main()
