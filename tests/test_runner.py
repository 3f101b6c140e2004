"""The plan runner against the real Docker engine: every step kind, the common step keys,
expressions in scripts, the `env` section, and bad things happening at run time.

Most tests share one named busybox environment (created by the first run, reused by the
others) so the suite stays fast; the tests about environments make their own.
"""

from __future__ import annotations

import asyncio
import socket
import io
import json
import shutil
import subprocess

from typing import Any

import pytest

import helpers
from plan_helpers import (
    RUNPLANS,
    Timer,
    containers,
    docker_out,
    env_sh,
    make_store,
    plan_runner,
    remove_run_leftovers,
    run_containers,
    run_plan,
    run_volume_exists,
    unique_name,
    write_plan,
)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def shared(busybox_image: str):
    """A named busybox environment the step tests share; removed at the end of the module."""
    name = unique_name()
    yield f"{{name: {name}, image: {busybox_image}}}"
    helpers.remove_quietly(name)


@pytest.fixture(scope="module")
def shared_name(shared: str) -> str:
    return shared.split("name: ")[1].split(",")[0]


@pytest.fixture(scope="module")
def shared_ws(workspace_image: str):
    """A named workspace (Debian, python3, bash) environment, for what busybox lacks."""
    name = unique_name()
    yield f"{{name: {name}, image: {workspace_image}}}"
    helpers.remove_quietly(name)


@pytest.fixture
def run_shared(engine, shared: str, tmp_path):
    """Runs a plan in the shared busybox environment (plan_runner)."""
    return plan_runner(engine, shared, tmp_path)


@pytest.fixture
def run_shared_ws(engine, shared_ws: str, tmp_path):
    """Runs a plan in the shared workspace environment (plan_runner)."""
    return plan_runner(engine, shared_ws, tmp_path)


def ok(outcome, *steps: str) -> None:
    """The run succeeded (and the given steps did)."""
    assert outcome.error is None, f"{outcome.error}\n{outcome.summary()}"
    assert outcome.status == "success", outcome.summary()
    for step in steps:
        assert outcome.finished(step).status == "success", outcome.summary()


# --- run --------------------------------------------------------------------------------------


async def test_run_streams_stdout_and_stderr_apart_with_the_exit_code(run_shared):
    outcome = await run_shared("""
        version: 1
        name: streams
        env: @ENV@
        steps:
          - id: talk
            run: |
              echo out-1
              echo err-1 >&2
              echo out-2
              exit 3
        """)
    assert outcome.lines("talk", "stdout") == ["out-1", "out-2"]
    assert outcome.lines("talk", "stderr") == ["err-1"]
    assert {e.stream for e in outcome.of("output")} == {"stdout", "stderr"}
    finished = outcome.finished("talk")
    assert (finished.status, finished.exit_code) == ("failure", 3)
    assert "3" in finished.reason
    assert outcome.status == "failure" and outcome.exit_code == 1


async def test_run_with_bash_in_the_workspace_image(run_shared_ws):
    outcome = await run_shared_ws("""
        version: 1
        name: bash
        env: @ENV@
        steps:
          - id: b
            shell: bash
            run: |
              words=(one two three)
              [[ ${#words[@]} -eq 3 ]] && echo "bash ${BASH_VERSINFO[0]} has ${words[2]}"
        """)
    ok(outcome, "b")
    [line] = outcome.lines("b")
    assert line.startswith("bash ") and line.endswith(" has three")


async def test_run_with_an_argv_shell_python(run_shared_ws):
    outcome = await run_shared_ws("""
        version: 1
        name: python-shell
        env: @ENV@
        inputs:
          n: {type: integer, default: 6}
        steps:
          - id: py
            shell: [python3, -c]
            run: |
              import os, sys
              print("product", 7 * 6)
              print("to stderr", file=sys.stderr)
              open(os.environ["GLMTUI_OUTPUT"], "a").write("answer=42\\n")
        """)
    ok(outcome, "py")
    assert outcome.lines("py") == ["product 42"]
    assert outcome.lines("py", "stderr") == ["to stderr"]
    assert outcome.finished("py").outputs == {"answer": "42"}


# --- write ------------------------------------------------------------------------------------


async def test_write_content_mode_relative_path_and_expressions(run_shared):
    folder = unique_name()
    outcome = await run_shared("""
        version: 1
        name: writes
        env: @ENV@
        inputs:
          who: {type: string, default: "Ada"}
        steps:
          - id: script
            write:
              path: /workspace/@DIR@/hello.sh
              mode: '0755'
              content: |
                #!/bin/sh
                echo "hello from ${inputs.who} in ${plan.name}"
          - id: plain
            workdir: /workspace/@DIR@
            write:
              path: notes/plain.txt
              content: "line 1\\nline 2\\n"
          - id: check
            needs: [script, plain]
            workdir: /workspace/@DIR@
            run: |
              ./hello.sh
              stat -c '%a %n' hello.sh notes/plain.txt
              cat notes/plain.txt
        """, DIR=folder)
    ok(outcome, "script", "plain", "check")
    assert outcome.lines("check") == [
        "hello from Ada in writes", "755 hello.sh", "644 notes/plain.txt", "line 1", "line 2",
    ]
    assert outcome.finished("plain").outputs["path"] == f"/workspace/{folder}/notes/plain.txt"


# --- copy -------------------------------------------------------------------------------------


async def test_copy_files_and_folders_both_ways_relative_to_the_plan_file(engine, shared, tmp_path, monkeypatch):
    here = tmp_path / "project"
    (here / "src" / "pkg").mkdir(parents=True)
    (here / "src" / "top.txt").write_text("top\n")
    (here / "src" / "pkg" / "inner.txt").write_text("inner\n")
    (here / "single.txt").write_text("single file\n")
    folder = unique_name()
    plan = write_plan(here, """
        version: 1
        name: copies
        env: @ENV@
        steps:
          - id: folder-in
            copy: {from: ./src, to: "env:/workspace/@DIR@/src"}
          - id: file-in
            copy: {from: single.txt, to: "env:/workspace/@DIR@/"}
          - id: change
            needs: [folder-in, file-in]
            run: |
              cd /workspace/@DIR@
              cat src/top.txt src/pkg/inner.txt single.txt
              echo made-inside > src/pkg/new.txt
          - id: folder-out
            needs: [change]
            copy: {from: "env:/workspace/@DIR@/src", to: ./out/tree}
          - id: file-out
            needs: [change]
            copy: {from: "env:/workspace/@DIR@/single.txt", to: ./out/single-copy.txt}
        """, ENV=shared, DIR=folder)
    monkeypatch.chdir(tmp_path)  # relative host paths are against the plan file, not the cwd
    outcome = await run_plan(engine, plan)
    ok(outcome, "folder-in", "file-in", "change", "folder-out", "file-out")
    assert outcome.lines("change") == ["top", "inner", "single file"]
    out = here / "out"
    assert (out / "tree" / "top.txt").read_text() == "top\n"
    assert (out / "tree" / "pkg" / "inner.txt").read_text() == "inner\n"
    assert (out / "tree" / "pkg" / "new.txt").read_text() == "made-inside\n"
    assert (out / "single-copy.txt").read_text() == "single file\n"
    assert not (tmp_path / "out").exists()


async def test_copy_out_of_a_tree_with_a_link_pointing_outside_is_refused_in_one_line(engine, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: @NAME@
        env: {image: glmtui/busybox:latest}
        steps:
          - id: tree
            run: |
              mkdir -p /tmp/t/sub /tmp/u
              echo a > /tmp/t/a
              ln -s ../a /tmp/t/sub/fine
              ln -s @LINK@ /tmp/t/sub/away
          - {id: out, needs: [tree], copy: {from: "env:/tmp/t", to: ./out}}
        """, NAME=unique_name(), LINK="/etc/passwd")
    for link in ("/etc/passwd", "../../u"):
        plan.write_text(plan.read_text().replace("/etc/passwd", link))
        outcome = await run_plan(engine, plan)
        out = outcome.finished("out")
        assert out.status == "failure"
        assert out.reason == f"copy of /tmp/t refused: /tmp/t/sub/away is a link to {link}, outside what is copied; nothing was copied"
        log = outcome.store.log_file(outcome.run_id, "out").read_text()
        assert "Traceback" not in log and "internal error" not in out.reason
        assert not (tmp_path / "out").exists()
    plan.write_text(plan.read_text().replace("../../u", "../fine"))
    outcome = await run_plan(engine, plan)
    assert outcome.finished("out").status == "success"
    assert (tmp_path / "out" / "sub" / "fine").read_text() == "a\n"  # a link inside the tree is copied as it is


async def test_copy_of_a_missing_host_file_fails_the_step(run_shared):
    outcome = await run_shared("""
        version: 1
        name: copy-missing
        env: @ENV@
        steps:
          - id: c
            copy: {from: ./nope.txt, to: "env:/tmp/nope.txt"}
        """)
    finished = outcome.finished("c")
    assert finished.status == "failure"
    assert "nope.txt" in finished.reason
    assert outcome.exit_code == 1


# --- http -------------------------------------------------------------------------------------


async def test_http_get_json_status_headers_and_outputs(run_shared, shared_name):
    folder = unique_name()
    outcome = await run_shared("""
        version: 1
        name: http-get
        env: @ENV@
        steps:
          - id: content
            write:
              path: /workspace/@DIR@/www/status.json
              content: '{"service": "demo", "version": "1.4.2", "healthy": true, "items": [10, 20, 30]}'
          - id: serve
            needs: [content]
            keep_running: true
            run: |
              httpd -p 18080 -h /workspace/@DIR@/www
              for i in $(seq 1 50); do wget -q -O /dev/null http://127.0.0.1:18080/status.json && exit 0; sleep 0.1; done
              exit 1
          - id: fetch
            needs: [serve]
            http:
              url: http://localhost:18080/status.json
              timeout: 10s
            outputs:
              version: ${response.json.version}
              healthy: ${response.json.healthy}
              second: ${response.json.items[1]}
              status: ${response.status}
              length: ${response.headers.content-length}
          - id: use
            run: |
              echo "version ${steps.fetch.outputs.version} status ${steps.fetch.outputs.status}"
              echo "healthy=${steps.fetch.outputs.healthy} second=${steps.fetch.outputs.second}"
          - id: missing
            needs: [serve]
            http: {url: "http://localhost:18080/nothing-here.json"}
            outputs:
              code: ${response.status}
        """, DIR=folder)
    for step in ("content", "serve", "fetch", "use"):
        assert outcome.finished(step).status == "success", outcome.summary()
    outputs = outcome.finished("fetch").outputs
    assert outputs["version"] == "1.4.2"
    assert outputs["healthy"] is True and outputs["second"] == 20 and outputs["status"] == 200
    assert int(outputs["length"]) > 20
    assert outcome.lines("use") == ["version 1.4.2 status 200", "healthy=true second=20"]
    assert any('"version": "1.4.2"' in line for line in outcome.lines("fetch"))
    missing = outcome.finished("missing")
    assert missing.status == "failure" and "404" in missing.reason
    assert outcome.status == "failure"
    ps = helpers.processes(shared_name)  # the server lived until the run ended, and no longer
    assert not helpers.ps_has(ps, "httpd -p 18080"), ps


async def test_the_shipped_http_plan_keeps_its_server_for_the_steps_after(engine, busybox_image, tmp_path):
    outcome = await run_plan(engine, helpers.PROJECT_ROOT / "plans" / "http.yaml", store=make_store(tmp_path))
    ok(outcome, "serve", "fetch", "use")
    assert outcome.lines("use") == ["the demo service runs version 1.4.2"]


@pytest.fixture
async def https_server(tmp_path):
    """An https server on the host at 127.0.0.2 (not a name that means the environment), its
    certificate from a test CA: (its URL, the CA file)."""
    import ssl

    certs = helpers.certificates(tmp_path, "127.0.0.2")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.pem", certs / "server-key.pem")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"secure": true}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # a client that refused our certificate
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.2", 0, ssl=context)
    async with server:
        yield f"https://127.0.0.2:{server.sockets[0].getsockname()[1]}/status", certs / "ca.pem"


HTTPS_PLAN = """
    version: 1
    name: https
    permissions: {network_host: true}  # the test's server listens on the host's loopback
    env: @ENV@
    steps:
      - id: fetch
        http: {url: "@URL@", timeout: 10s}
        outputs:
          secure: ${response.json.secure}
"""


async def test_https_is_verified_against_the_system_trust_store(engine, shared, tmp_path, https_server, monkeypatch):
    url, ca = https_server
    plan = write_plan(tmp_path, HTTPS_PLAN, ENV=shared, URL=url)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the trust store: as if the test CA were installed
    outcome = await run_plan(engine, plan, allow=True)
    ok(outcome, "fetch")
    assert outcome.finished("fetch").outputs == {"secure": True}


async def test_https_with_an_untrusted_certificate_fails_in_one_line(engine, shared, tmp_path, https_server, monkeypatch):
    url, _ = https_server
    plan = write_plan(tmp_path, HTTPS_PLAN, ENV=shared, URL=url)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca-key.pem"))  # a trust store without the test CA
    outcome = await run_plan(engine, plan, allow=True)
    fetch = outcome.finished("fetch")
    assert fetch.status == "failure"
    assert fetch.reason.startswith(f"request to {url} failed: ") and "CERTIFICATE_VERIFY_FAILED" in fetch.reason
    assert "\n" not in fetch.reason


@pytest.fixture
def host_server():
    """An HTTP server of the host's own, on every address (its loopback, its docker0 address):
    what an http step must not reach without permissions: {network_host: true}."""
    import http.server
    import threading

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"the host's own service")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def docker0_address() -> str:
    """The host's address on Docker's default bridge (what a container sees as its gateway)."""
    return helpers.docker("network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()


async def test_an_http_step_reaches_the_hosts_own_services_only_with_network_host(engine, shared, tmp_path, host_server):
    port = host_server
    urls = {
        "loopback": f"http://127.0.0.2:{port}/",  # not localhost: that name means the environment
        "name": f"http://{socket.gethostname()}:{port}/",  # a name of this machine, resolved by DNS
        "v6": f"http://[::ffff:127.0.0.1]:{port}/",
        "gateway": f"http://{docker0_address()}:{port}/",
    }
    steps = "\n".join(f"      - {{id: {name}, continue_on_error: true, http: {{url: '{url}', timeout: 5s}}}}"
                      for name, url in urls.items())
    plan = write_plan(tmp_path, "version: 1\nname: host-http\nenv: @ENV@\nsteps:\n" + steps + "\n", ENV=shared)
    refused = await run_plan(engine, plan)
    for name, url in urls.items():
        step = refused.finished(name)
        assert step.status == "failure", (name, refused.summary())
        assert step.reason.startswith("request to http://") and " refused: " in step.reason, step.reason
        assert "is this host" in step.reason
        assert "permissions: {network_host: true}" in step.reason
    assert "the host's own service" not in refused.text("loopback")

    allowed_plan = write_plan(tmp_path / "allowed", "version: 1\nname: host-http\npermissions: {network_host: true}\n"
                              "env: @ENV@\nsteps:\n" + steps + "\n", ENV=shared)
    allowed = await run_plan(engine, allowed_plan, allow=True)
    for name in ("loopback", "name", "gateway"):
        ok(allowed, name)
    assert "the host's own service" in allowed.text("gateway")


async def test_an_http_url_from_an_expression_is_only_http_or_https(engine, shared, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: http-scheme
        env: @ENV@
        inputs: {url: {default: "http://localhost:9/"}}
        steps:
          - id: fetch
            http: {url: "${inputs.url}"}
        """, ENV=shared)
    for url in ("file:///etc/passwd", "localhost:9/x", "http:///etc/passwd"):
        outcome = await run_plan(engine, plan, inputs={"url": url})
        fetch = outcome.finished("fetch")
        assert fetch.status == "failure", outcome.summary()
        assert fetch.reason == f"url {url!r} is not an http:// or https:// URL with a host; an http step sends nothing else"
        assert "root:" not in outcome.summary()


ECHO_SERVER_PORT = 18081


async def test_http_post_with_a_json_body_headers_and_query(run_shared_ws, tmp_path):
    """A tiny python3 echo server in the workspace image answers what it received."""
    shutil.copy(RUNPLANS / "echo_server.py", tmp_path / "echo_server.py")
    folder = unique_name()
    outcome = await run_shared_ws("""
        version: 1
        name: http-post
        env: @ENV@
        inputs:
          count: {type: integer, default: 3}
          tags: {type: list, default: [a, b]}
        steps:
          - id: server
            copy: {from: ./echo_server.py, to: "env:/workspace/@DIR@/echo_server.py"}
          - id: serve
            needs: [server]
            keep_running: true
            run: |
              python3 /workspace/@DIR@/echo_server.py @PORT@ >/tmp/echo-@DIR@.log 2>&1 &
              python3 - <<'EOF'
              import time, urllib.request
              for _ in range(100):
                  try:
                      urllib.request.urlopen("http://127.0.0.1:@PORT@/ready"); break
                  except OSError:
                      time.sleep(0.05)
              EOF
          - id: post
            needs: [serve]
            http:
              method: POST
              url: http://localhost:@PORT@/items
              query: {q: "x y", page: 2}
              headers: {X-Test: "${plan.name}", Authorization: "Bearer t0k"}
              body:
                count: ${inputs.count}
                tags: ${inputs.tags}
                text: "n=${inputs.count}"
                nested: {ok: true}
            outputs:
              status: ${response.status}
              method: ${response.json.method}
              path: ${response.json.path}
              count: ${response.json.body.count}
              text: ${response.json.body.text}
              echoed: ${response.headers.x-echo}
              got_header: ${response.json.headers.x-test}
              content_type: ${response.json.headers.content-type}
        """, DIR=folder, PORT=str(ECHO_SERVER_PORT))
    ok(outcome, "server", "serve", "post")
    out = outcome.finished("post").outputs
    assert out["status"] == 201 and out["method"] == "POST"
    assert out["path"] in ("/items?q=x+y&page=2", "/items?q=x%20y&page=2")
    assert out["count"] == 3  # a whole ${...} keeps its type, also inside a body
    assert out["text"] == "n=3"
    assert out["echoed"] == "yes" and out["got_header"] == "http-post"
    assert out["content_type"].startswith("application/json")
    body = json.loads(next(line for line in outcome.lines("post") if line.startswith("{")))["body"]
    assert body == {"count": 3, "tags": ["a", "b"], "text": "n=3", "nested": {"ok": True}}


# --- components and workflows -----------------------------------------------------------------


async def test_components_defaults_overrides_and_with(run_shared):
    outcome = await run_shared("""
        version: 1
        name: components
        env: @ENV@
        inputs:
          who: {type: string, default: "inputs-who"}
        components:
          greet:
            with:
              name: {default: world}
              punct: {default: "!"}
            environment: {GREETING: hello, MARK: from-component}
            run: echo "$GREETING ${with.name}${with.punct} $MARK"
        steps:
          - id: defaults
            use: greet
          - id: overridden
            use: greet
            with: {name: "${inputs.who}", punct: "?"}
          - id: own-keys
            use: greet
            with: {name: step}
            environment: {GREETING: bonjour}
        """)
    ok(outcome, "defaults", "overridden", "own-keys")
    assert outcome.lines("defaults") == ["hello world! from-component"]
    assert outcome.lines("overridden") == ["hello inputs-who? from-component"]
    # the step's environment is merged into the component's, name by name, the step's winning
    assert outcome.lines("own-keys") == ["bonjour step! from-component"]


WORKFLOWS_PLAN = """
    version: 1
    name: flows
    env: @ENV@
    inputs:
      greeting: {type: string, default: hi}
    workflows:
      main:
        default: true
        steps:
          - id: first
            run: echo "main first"
          - id: call
            needs: [first]
            workflow: build
            with: {target: from-main, level: 7}
          - id: after
            needs: [call]
            run: echo "after ${steps.call.outputs.compile.artifact}"
      build:
        inputs:
          target: {type: string, default: default-target}
          level: {type: integer, default: 1}
        steps:
          - id: compile
            run: |
              echo "${inputs.greeting}: building ${inputs.target} at level ${inputs.level}"
              echo "artifact=${inputs.target}.bin" >> "$GLMTUI_OUTPUT"
          - id: package
            needs: [compile]
            run: echo "packaging ${steps.compile.outputs.artifact}"
    """


async def test_workflow_step_runs_another_workflow_with_inputs(run_shared):
    outcome = await run_shared(WORKFLOWS_PLAN)
    ok(outcome, "first", "call", "after", "call.compile", "call.package")
    assert outcome.of("run_started")[0].workflow == "main"
    assert outcome.lines("call.compile") == ["hi: building from-main at level 7"]
    assert outcome.lines("call.package") == ["packaging from-main.bin"]
    assert outcome.lines("after") == ["after from-main.bin"]


async def test_choosing_a_workflow_with_its_inputs(run_shared):
    outcome = await run_shared(WORKFLOWS_PLAN, workflow="build", inputs={"level": "9"})
    ok(outcome, "compile", "package")
    assert outcome.of("run_started")[0].workflow == "build"
    assert {e.step for e in outcome.of("step_finished")} == {"compile", "package"}
    assert outcome.lines("compile") == ["hi: building default-target at level 9"]


# --- common keys: the graph -------------------------------------------------------------------


PARALLEL_PLAN = """
    version: 1
    name: parallel
    env: @ENV@
    steps:
      - id: one
        run: sleep 1
      - id: two
        run: sleep 1
      - id: last
        needs: [one, two]
        run: echo done
    """


def span(outcome, first: str, last: str) -> float:
    return outcome.finished(last).ts - outcome.started(first)[0].ts


async def test_independent_steps_start_in_parallel(run_shared):
    outcome = await run_shared(PARALLEL_PLAN, jobs=2)
    ok(outcome, "one", "two", "last")
    starts = sorted(e.ts for e in outcome.of("step_started") if e.step in ("one", "two"))
    assert starts[1] - starts[0] < 0.5
    both = max(outcome.finished(s).ts for s in ("one", "two")) - starts[0]
    assert both < 1.8, f"two `sleep 1` steps took {both:.2f}s together"
    assert outcome.started("last")[0].ts >= max(outcome.finished(s).ts for s in ("one", "two"))


async def test_jobs_1_runs_one_step_at_a_time(run_shared):
    outcome = await run_shared(PARALLEL_PLAN, jobs=1)
    ok(outcome, "one", "two", "last")
    both = max(outcome.finished(s).ts for s in ("one", "two")) - min(e.ts for e in outcome.of("step_started"))
    assert both >= 2.0, f"with --jobs 1 two `sleep 1` steps took only {both:.2f}s"


async def test_a_reference_to_another_step_makes_an_implicit_need(run_shared):
    outcome = await run_shared("""
        version: 1
        name: implicit
        env: @ENV@
        steps:
          - id: reader
            run: echo "got ${steps.producer.outputs.value}"
          - id: producer
            run: |
              sleep 0.5
              echo "value=late" >> "$GLMTUI_OUTPUT"
        """)
    ok(outcome, "producer", "reader")
    assert outcome.started("reader")[0].ts >= outcome.finished("producer").ts
    assert outcome.lines("reader") == ["got late"]


async def test_if_true_runs_and_if_false_is_skipped(run_shared):
    outcome = await run_shared("""
        version: 1
        name: conditions
        env: @ENV@
        inputs:
          go: {type: boolean, default: true}
          level: {type: integer, default: 3}
        steps:
          - id: yes-bare
            if: inputs.level > 2 and inputs.go
            run: echo ran
          - id: yes-braced
            if: ${inputs.go}
            run: echo ran too
          - id: not-run
            if: ${inputs.level == 2}
            run: echo should not run
          - id: after-no
            needs: [not-run]
            run: echo should not run either
        """)
    ok(outcome, "yes-bare", "yes-braced")
    assert outcome.lines("yes-bare") == ["ran"]
    skipped = outcome.finished("not-run")
    assert skipped.status == "skipped" and "condition" in skipped.reason
    assert outcome.finished("after-no").status == "skipped"
    assert outcome.lines("not-run") == [] and outcome.lines("after-no") == []
    assert outcome.exit_code == 0


async def test_status_functions_and_steps_after_a_failure(run_shared):
    outcome = await run_shared("""
        version: 1
        name: status-functions
        env: @ENV@
        steps:
          - id: good
            run: "true"
          - id: bad
            run: exit 4
          - id: plain-after
            needs: [bad]
            run: echo no
          - id: second-hand
            needs: [plain-after]
            run: echo no
          - id: always
            needs: [bad]
            if: always()
            run: echo always ran
          - id: on-failure
            needs: [bad]
            if: failure()
            run: echo failure ran
          - id: on-success
            needs: [bad]
            if: success()
            run: echo no
          - id: failure-of-good
            needs: [good]
            if: failure()
            run: echo no
          - id: success-of-good
            needs: [good]
            if: success()
            run: echo success ran
        """)
    assert outcome.statuses() == {
        "good": "success", "bad": "failure", "plain-after": "skipped", "second-hand": "skipped",
        "always": "success", "on-failure": "success", "on-success": "skipped",
        "failure-of-good": "skipped", "success-of-good": "success",
    }, outcome.summary()
    assert "bad" in outcome.finished("plain-after").reason
    assert outcome.lines("always") == ["always ran"]
    assert outcome.lines("on-failure") == ["failure ran"]
    assert outcome.status == "failure" and outcome.exit_code == 1


async def test_continue_on_error_lets_the_run_succeed_and_dependants_run(run_shared):
    outcome = await run_shared("""
        version: 1
        name: allowed
        env: @ENV@
        steps:
          - id: flaky
            continue_on_error: true
            run: |
              echo trying
              exit 5
          - id: next
            needs: [flaky]
            run: echo "flaky said ${steps.flaky.status} with ${steps.flaky.exit_code}"
        """)
    flaky = outcome.finished("flaky")
    assert (flaky.status, flaky.exit_code, flaky.allowed_failure) == ("failure", 5, True)
    assert outcome.finished("next").status == "success"
    assert outcome.lines("next") == ["flaky said failure with 5"]
    assert outcome.status == "success" and outcome.exit_code == 0


# --- timeout and retry ------------------------------------------------------------------------


async def test_timeout_kills_the_step_and_its_children(engine, shared, shared_name, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: timeouts
        env: @ENV@
        steps:
          - id: slow
            timeout: 1s
            run: |
              sleep 317 &
              sh -c 'sleep 318'
          - id: quick
            timeout: 5
            run: echo in time
        """, ENV=shared)
    timer = Timer()
    outcome = await run_plan(engine, plan)
    assert timer.elapsed < 8
    slow = outcome.finished("slow")
    assert slow.status == "failure" and slow.reason == "timeout"
    assert 0.9 <= slow.duration < 4
    assert outcome.finished("quick").status == "success"
    ps = helpers.processes(shared_name)
    assert not helpers.ps_has(ps, "sleep 31"), ps


async def test_a_step_that_ends_ends_every_process_it_started(run_shared, shared_name):
    outcome = await run_shared("""
        version: 1
        name: leaves-behind
        env: @ENV@
        steps:
          - id: starts
            run: |
              sleep 321 &
              setsid sh -c 'sleep 322 & exit 0' &
              nohup sleep 323 > /dev/null 2>&1 &
              sh -c '(sleep 324 &)'
              echo started
          - id: next
            needs: [starts]
            run: echo next
        """)
    ok(outcome, "starts", "next")
    assert outcome.lines("starts") == ["started"]
    ps = helpers.processes(shared_name)
    assert not helpers.ps_has(ps, "sleep 32"), ps


def container_processes(name: str) -> list[str]:
    """The processes of an environment as the host sees them: no process is started inside."""
    return helpers.docker("top", helpers.container_of(name), "-o", "pid,args").stdout.splitlines()[1:]


async def test_a_fork_bomb_in_the_background_ends_with_its_step(engine, workspace_image, env_name, tmp_path):
    """bash retries a fork that fails, so its bomb lives on at the process limit (busybox sh gives up)."""
    plan = write_plan(tmp_path, """
        version: 1
        name: fork-bomb
        env: {name: @NAME@, image: @IMAGE@, resources: {pids: 48, cpus: 0.5}}
        steps:
          - id: bomb
            continue_on_error: true
            shell: bash
            run: |
              bomb() { bomb | bomb & }
              bomb
              sleep 1
          - id: after
            needs: [bomb]
            run: echo the environment works
        """, NAME=env_name, IMAGE=workspace_image)
    outcome = await run_plan(engine, plan)
    assert outcome.finished("after").status == "success", outcome.summary()
    assert outcome.lines("after") == ["the environment works"]
    left = container_processes(env_name)
    assert len(left) <= 2, left  # the init process and `tail -f /dev/null`


async def test_retry_until_success_with_exponential_backoff(run_shared, shared_name):
    base = f"/tmp/{unique_name()}"
    outcome = await run_shared("""
        version: 1
        name: retries
        env: @ENV@
        steps:
          - id: flaky
            retry: {attempts: 4, delay: 0.4s, backoff: exponential}
            run: |
              now() { cut -d' ' -f1 /proc/uptime; }
              n=$(cat @BASE@.count 2>/dev/null || echo 0)
              n=$((n + 1))
              echo $n > @BASE@.count
              echo "start $(now)" >> @BASE@.times
              echo "attempt $n"
              [ "$n" -ge 3 ] && exit 0
              echo "end $(now)" >> @BASE@.times
              exit 1
        """, BASE=base)
    ok(outcome, "flaky")
    assert [e.attempt for e in outcome.started("flaky")] == [1, 2, 3]
    assert outcome.finished("flaky").attempt == 3
    assert outcome.lines("flaky") == ["attempt 1", "attempt 2", "attempt 3"]
    times = [float(line.split()[1]) for line in env_sh(shared_name, f"cat {base}.times").stdout.splitlines()]
    start1, end1, start2, end2, start3 = times
    first_delay, second_delay = start2 - end1, start3 - end2
    assert first_delay >= 0.38 and second_delay >= 0.78, (first_delay, second_delay)
    # whatever each attempt's start costs, the wait itself doubles: 0.4s, then 0.8s
    assert 0.25 <= second_delay - first_delay <= 0.65, (first_delay, second_delay)
    log = outcome.store.log_file(outcome.run_id, "flaky").read_text()
    assert "attempt 1" in log and "attempt 3" in log


async def test_retry_gives_up_after_the_attempts(run_shared):
    outcome = await run_shared("""
        version: 1
        name: retries-fail
        env: @ENV@
        steps:
          - id: never
            retry: {attempts: 2, delay: 0.1s}
            run: exit 9
        """)
    assert [e.attempt for e in outcome.started("never")] == [1, 2, 3]
    finished = outcome.finished("never")
    assert (finished.status, finished.exit_code, finished.attempt) == ("failure", 9, 3)


# --- variables, workdir, outputs, expressions --------------------------------------------------


async def test_environment_variables_of_the_env_and_the_step(engine, shared_name, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: variables
        inputs:
          colour: {type: string, default: blue}
        env:
          name: @NAME@
          image: glmtui/busybox:latest
          environment:
            SHARED: "from-env"
            DERIVED: "plan ${plan.name} in ${inputs.colour}"
            OVERRIDE: "env-level"
        steps:
          - id: show
            environment:
              OVERRIDE: "step-level ${inputs.colour}"
              ONLY_STEP: "${inputs.colour | upper}"
            run: |
              echo "$SHARED|$DERIVED|$OVERRIDE|$ONLY_STEP"
          - id: other
            run: echo "$OVERRIDE|${ONLY_STEP:-unset}"
        """, NAME=shared_name)
    outcome = await run_plan(engine, plan, inputs={"colour": "red"})
    ok(outcome, "show", "other")
    assert outcome.lines("show") == ["from-env|plan variables in red|step-level red|RED"]
    assert outcome.lines("other") == ["env-level|unset"]


async def test_workdir_of_the_env_and_of_a_step(engine, busybox_image, env_name, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: workdirs
        env:
          name: @NAME@
          image: glmtui/busybox:latest
          workdir: /work/area
        steps:
          - id: default
            run: pwd
          - id: own
            workdir: /tmp
            run: pwd
          - id: relative-write
            write: {path: here.txt, content: x}
          - id: check
            needs: [relative-write]
            run: ls /work/area/here.txt
        """, NAME=env_name)
    outcome = await run_plan(engine, plan)
    ok(outcome, "default", "own", "relative-write", "check")
    assert outcome.lines("default") == ["/work/area"]
    assert outcome.lines("own") == ["/tmp"]


async def test_expressions_in_workdirs_and_the_image_are_evaluated(engine, busybox_image, env_name, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: workdir-expressions
        inputs:
          area: {default: area}
          pkg: {default: pkg-a}
          image: {default: glmtui/nothing}
        env:
          name: @NAME@
          image: ${inputs.image}
          workdir: /work/${inputs.area}
        steps:
          - id: make
            run: mkdir -p /workspace/${inputs.pkg}
          - id: default
            run: pwd
          - id: own
            needs: [make]
            workdir: /workspace/${inputs.pkg}
            run: pwd
          - id: from-a-step
            workdir: /workspace/${steps.make.status}
            run: pwd
        """, NAME=env_name)
    outcome = await run_plan(engine, plan, inputs={"area": "x", "image": busybox_image})
    assert outcome.statuses() == {"make": "success", "default": "success", "own": "success", "from-a-step": "failure"}
    assert outcome.lines("default") == ["/work/x"]
    assert outcome.lines("own") == ["/workspace/pkg-a"]
    late = outcome.finished("from-a-step")
    assert late.status == "failure" and late.reason == "the working directory '/workspace/success' does not exist in the environment"
    assert helpers.docker_inspect(env_name)["Config"]["Image"] == busybox_image


BUSYBOX_ENV = "{image: glmtui/busybox:latest}"


@pytest.mark.parametrize(("env", "step", "inputs", "message"), [
    ("{image: glmtui/busybox:latest, workdir: '${inputs.v}'}", "", {"v": "rel"},
     "env.workdir: '${inputs.v}' gives 'rel', which is not an absolute path (start it with /)"),
    ("{image: '${inputs.v}'}", "", {"v": " "}, "env.image: '${inputs.v}' gives an empty image name"),
    ("{image: glmtui/busybox:latest, environment: {N: '${inputs.v | int}'}}", "", {"v": "many"},
     "env.environment.N: expression '${inputs.v | int}' failed: int cannot convert 'many'"),
    ("{image: glmtui/busybox:latest, mounts: ['/tmp/${inputs.v | int}:/x:ro']}", "", {"v": "many"},
     "env.mounts: expression '${inputs.v | int}' failed: int cannot convert 'many'"),
    (BUSYBOX_ENV, "workdir: ${inputs.v}/sub", {"v": "rel"},
     "plan.yaml:7:5: step 'a': workdir: '${inputs.v}/sub' gives 'rel/sub', which is not an absolute path (start it with /)"),
    (BUSYBOX_ENV, "workdir: /x/${secrets.TOKEN | int}", {},
     "plan.yaml:7:5: step 'a': workdir: expression '${secrets.TOKEN | int}' failed: int cannot convert '***'"),
])
async def test_a_bad_value_in_the_env_or_a_workdir_stops_the_run_before_it_is_recorded(
    engine, tmp_path, env, step, inputs, message
):
    plan = write_plan(tmp_path, f"""
        version: 1
        name: bad-values
        inputs: {{v: {{default: x}}}}
        secrets: [TOKEN]
        env: {env}
        steps:
          - id: a
            run: echo never
            {step}
        """)
    store = make_store(tmp_path / "data")
    outcome = await run_plan(engine, plan, inputs=inputs, store=store, extra_env={"TOKEN": "hunter2"})
    assert outcome.exit_code == 2
    assert str(outcome.error).replace(str(tmp_path) + "/", "") == message
    assert outcome.events == [] and store.runs() == []


async def test_a_value_refused_by_a_script_that_will_run_stops_the_run_before_anything_runs(engine, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: refused-early
        inputs: {n: {default: "1"}}
        env: {image: glmtui/busybox:latest}
        steps:
          - id: first
            run: echo this must not run
          - id: count
            needs: [first]
            run: echo $(( ${inputs.n} + 1 ))
          - id: maybe
            if: ${inputs.n == 'never'}
            run: echo $(( ${inputs.n} ))
        """)
    store = make_store(tmp_path / "data")
    outcome = await run_plan(engine, plan, inputs={"n": "a[$(touch /tmp/pwn)]"}, store=store)
    assert outcome.exit_code == 2
    message = str(outcome.error).replace(str(tmp_path) + "/", "")
    assert message.startswith("plan.yaml:8:5: step 'count': expression '${inputs.n}' is inside (( )) or $(( ))"), message
    assert outcome.events == [] and store.runs() == []


async def test_outputs_from_the_output_file_and_the_outputs_mapping(run_shared):
    outcome = await run_shared("""
        version: 1
        name: outputs
        env: @ENV@
        steps:
          - id: produce
            run: |
              echo "simple=one" >> "$GLMTUI_OUTPUT"
              echo "with_equals=a=b" >> "$GLMTUI_OUTPUT"
              {
                echo "multi<<END_OF_VALUE"
                echo "line 1"
                echo "line 2 with = sign"
                echo "END_OF_VALUE"
              } >> "$GLMTUI_OUTPUT"
              echo first
              echo second
              echo third
              echo warning >&2
            outputs:
              code: ${step.exit_code}
              last: ${step.stdout | tail(1) | trim}
              both: "${step.outputs.simple}+${step.stderr | trim}"
              status: ${step.status}
          - id: consume
            run: |
              echo "[${steps.produce.outputs.multi}]"
              echo "${steps.produce.outputs.with_equals} ${steps.produce.outputs.both} ${steps.produce.outputs.code}"
              echo "tail: ${steps.produce.stdout | tail(1)}"
        """)
    ok(outcome, "produce", "consume")
    outputs = outcome.finished("produce").outputs
    assert outputs["simple"] == "one" and outputs["with_equals"] == "a=b"
    assert outputs["multi"] == "line 1\nline 2 with = sign"
    assert outputs["code"] == 0 and outputs["last"] == "third" and outputs["status"] == "success"
    assert outputs["both"] == "one+warning"
    assert outcome.lines("consume") == ["[line 1", "line 2 with = sign]", "a=b one+warning 0", "tail: third"]


async def test_output_files_are_removed_from_a_named_environment_after_the_run(run_shared, shared_name):
    outcome = await run_shared("""
        version: 1
        name: tidy
        env: @ENV@
        steps:
          - id: writes
            run: echo "k=v" >> "$GLMTUI_OUTPUT"
          - id: quiet
            run: "true"
        """)
    ok(outcome, "writes", "quiet")
    assert outcome.finished("writes").outputs == {"k": "v"}
    leftovers = "?"
    for _ in range(50):  # the removal is started, not waited for
        leftovers = env_sh(shared_name, f"ls /tmp | grep -c {outcome.run_id} || true").stdout.strip()
        if leftovers == "0":
            break
        await asyncio.sleep(0.1)
    assert leftovers == "0", env_sh(shared_name, "ls -la /tmp").stdout


async def test_a_whole_expression_keeps_its_type_and_text_makes_a_string(run_shared):
    outcome = await run_shared("""
        version: 1
        name: types
        env: @ENV@
        inputs:
          count: {type: integer, default: 3}
          ratio: {type: number, default: 0.5}
          flag: {type: boolean, default: false}
          items: {type: list, default: [1, two]}
          settings: {type: object, default: {a: 1}}
        steps:
          - id: typed
            run: "true"
            outputs:
              count: ${inputs.count}
              ratio: ${inputs.ratio}
              flag: ${inputs.flag}
              items: ${inputs.items}
              settings: ${inputs.settings}
              text: "n=${inputs.count} flag=${inputs.flag}"
              compare: ${inputs.count > 2}
              spaced: " ${inputs.count}"
        """, inputs={"count": "5", "flag": "true"})
    ok(outcome, "typed")
    assert outcome.finished("typed").outputs == {
        "count": 5, "ratio": 0.5, "flag": True, "items": [1, "two"], "settings": {"a": 1},
        "text": "n=5 flag=true", "compare": True, "spaced": " 5",
    }


HOSTILE = """[docs](x) $(touch /tmp/@MARK@-a) `touch /tmp/@MARK@-b` it's "quoted" ${HOME} $HOME \\ ; touch /tmp/@MARK@-c  end"""


async def test_expressions_in_run_scripts_are_never_code(run_shared, shared_name):
    mark = unique_name()
    message = HOSTILE.replace("@MARK@", mark)
    outcome = await run_shared("""
        version: 1
        name: injection
        env: @ENV@
        inputs:
          msg: {type: string}
        steps:
          - id: bare
            run: echo ${inputs.msg}
          - id: double
            run: |
              echo "msg: ${inputs.msg}"
          - id: single
            run: |
              echo 'msg: ${inputs.msg}'
          - id: heredoc
            run: |
              cat <<EOF
              msg: ${inputs.msg}
              EOF
          - id: quoted-heredoc
            run: |
              cat <<'EOF'
              msg: ${inputs.msg}
              EOF
          - id: in-variable
            environment: {MSG: "${inputs.msg}"}
            run: printf '%s\\n' "$MSG"
        """, inputs={"msg": message})
    ok(outcome, "bare", "double", "single", "heredoc", "quoted-heredoc", "in-variable")
    assert outcome.lines("bare") == [message]
    for step in ("double", "single", "heredoc", "quoted-heredoc"):
        assert outcome.lines(step) == [f"msg: {message}"], step
    assert outcome.lines("in-variable") == [message]
    leftovers = env_sh(shared_name, f"ls /tmp | grep {mark} || true").stdout
    assert leftovers == "", f"the message ran as code: {leftovers}"


async def test_a_multiline_input_prints_exactly(run_shared):
    message = "line one\n  line 'two'\n$(echo three)"
    outcome = await run_shared("""
        version: 1
        name: multiline
        env: @ENV@
        inputs:
          msg: {type: string}
        steps:
          - id: double
            run: echo "${inputs.msg}"
          - id: heredoc
            run: |
              cat <<END
              ${inputs.msg}
              END
        """, inputs={"msg": message})
    ok(outcome, "double", "heredoc")
    assert outcome.text("double") == message
    assert outcome.text("heredoc") == message


# Where bash reads a value as arithmetic or as a variable name: step id -> (script, what it prints for 7)
ARITHMETIC_STEPS = {
    "test-eq": ("[[ ${inputs.msg} -eq 7 ]] && echo yes", "yes"),
    "test-eq-quoted": ('[[ "${inputs.msg}" -eq 7 ]] && echo yes', "yes"),
    "let": ('let "x=${inputs.msg}"; echo "$x"', "7"),
    "array-index": ('a=(0 1 2 3 4 5 6 seven); echo "${a[${inputs.msg}]}"', "seven"),
    "declare-i": ("declare -i n; n=${inputs.msg}; echo $n", "7"),
    "double-parens": ("(( ${inputs.msg} == 7 )) && echo yes", "yes"),
    "arithmetic-expansion": ("echo $(( ${inputs.msg} + 1 ))", "8"),
    "offset": ("x=abcdefghij; echo ${x:${inputs.msg}}", "hij"),
    "bracket-eq": ('[ "${inputs.msg}" -eq 7 ] && echo yes', "yes"),
    "test-ge": ("test ${inputs.msg} -ge 7 && echo yes", "yes"),
    "kept-in-a-variable": ("n=${inputs.msg}; echo $(( n * 2 ))", "14"),
    "named-by-the-value": ('v7=seven; n=v${inputs.msg}; echo "${!n}"', "seven"),
    "environment": ("echo $(( N + 1 ))", "8"),
    "printed": ('echo "${inputs.msg}"', "7"),
}


FROM_A_STEP = "${steps.source.outputs.msg}"


def arithmetic_plan(tmp_path, env: str, value: str = "${inputs.msg}"):
    """The ARITHMETIC_STEPS with `value` in place of the input. With FROM_A_STEP the value is a
    step's output, known only when the steps run, so each step refuses it on its own (an input
    is refused before anything runs)."""
    steps = "".join(
        f"  - id: {step}\n    shell: bash\n"
        + (f'    environment: {{N: "{value}"}}\n' if step == "environment" else "")
        + "    run: |\n      " + script.replace("${inputs.msg}", value) + "\n"
        for step, (script, _) in ARITHMETIC_STEPS.items()
    )
    if value == FROM_A_STEP:
        steps = ('  - id: written\n    write: {path: "/tmp/${plan.run_id}.msg", content: "${inputs.msg}"}\n'
                 "  - id: source\n    needs: [written]\n"
                 "    run: printf 'msg<<END\\n%s\\nEND\\n' \"$(cat /tmp/${plan.run_id}.msg)\" >> $GLMTUI_OUTPUT\n") + steps
    text = f"version: 1\nname: arithmetic\nenv: {env}\ninputs:\n  msg: {{type: string}}\nsteps:\n{steps}"
    return write_plan(tmp_path, text)


@pytest.mark.parametrize("payload", ["a[$(touch /tmp/@MARK@)]", "x[$(touch /tmp/@MARK@)]+1", "a[`touch /tmp/@MARK@`]"])
async def test_a_subscript_in_a_value_runs_nothing_where_bash_reads_arithmetic(engine, shared_ws, tmp_path, payload):
    mark = unique_name()
    plan = arithmetic_plan(tmp_path, shared_ws, FROM_A_STEP)
    outcome = await run_plan(engine, plan, inputs={"msg": payload.replace("@MARK@", mark)})
    name = shared_ws.split("name: ")[1].split(",")[0]
    assert env_sh(name, f"ls /tmp | grep {mark} || true").stdout == "", "the value ran as code"
    assert [outcome.finished(step).status for step in ("written", "source")] == ["success", "success"]
    for step in ARITHMETIC_STEPS:
        finished = outcome.finished(step)
        assert (finished.status, finished.exit_code) == ("failure", None), (step, outcome.summary())
        assert "inside an array subscript" in finished.reason or "only a whole number is safe" in finished.reason, step
        assert "\n" not in finished.reason
        assert outcome.lines(step) == [], step
    assert "environment variable N has a value with an expansion inside" in outcome.finished("environment").reason


@pytest.mark.parametrize("payload", ["a[$(touch /tmp/@MARK@)]", "x[$(touch /tmp/@MARK@)]+1", "a[`touch /tmp/@MARK@`]"])
async def test_an_input_that_a_script_would_run_as_code_stops_the_run_before_anything_runs(
    engine, shared_ws, tmp_path, payload
):
    store = make_store(tmp_path / "data")
    outcome = await run_plan(engine, arithmetic_plan(tmp_path, shared_ws), inputs={"msg": payload.replace("@MARK@", "x")},
                             store=store)
    assert outcome.exit_code == 2 and outcome.events == [] and store.runs() == []
    assert "plan.yaml:7:5: step 'test-eq': expression '${inputs.msg}'" in str(outcome.error)


async def test_whole_numbers_work_where_bash_reads_arithmetic(engine, shared_ws, tmp_path):
    outcome = await run_plan(engine, arithmetic_plan(tmp_path, shared_ws), inputs={"msg": "7"})
    ok(outcome, *ARITHMETIC_STEPS)
    for step, (_, printed) in ARITHMETIC_STEPS.items():
        assert outcome.lines(step) == [printed], step


async def test_a_python_script_takes_values_from_its_environment(engine, shared_ws, tmp_path, glmtui):
    message = HOSTILE.replace("@MARK@", unique_name()) + " a[$(id)] \\"
    plan = write_plan(tmp_path, """
        version: 1
        name: python-values
        env: @ENV@
        inputs:
          msg: {type: string}
        steps:
          - id: py
            shell: [python3, -c]
            environment: {MSG: "${inputs.msg}"}
            run: |
              import os
              print(os.environ["MSG"])
        """, ENV=shared_ws)
    outcome = await run_plan(engine, plan, inputs={"msg": message})
    ok(outcome, "py")
    assert outcome.lines("py") == [message]
    inline = write_plan(tmp_path, plan.read_text().replace('os.environ["MSG"]', '"${inputs.msg}"'), name="inline.yaml")
    refused = glmtui("plan", "validate", str(inline), "--input", "msg=x")
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith(
        f"{inline}:8:12: expression '${{inputs.msg}}' cannot reach a script for python3: glmtui passes values to "
        "scripts as environment variables that only a shell expands (give the value to the step under "
        "environment: and read it from the process environment, or write '| raw' to put the text into the "
        "script as code)"
    ), refused.stderr


# --- the env section --------------------------------------------------------------------------


async def test_a_named_environment_is_created_then_reused_and_started_if_stopped(engine, env_name, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: named
        env: {name: @NAME@, image: glmtui/busybox:latest}
        steps:
          - id: mark
            run: |
              cat /workspace/visits 2>/dev/null || echo none
              echo visit >> /workspace/visits
        """, NAME=env_name)
    first = await run_plan(engine, plan)
    ok(first, "mark")
    container = helpers.docker_inspect(env_name)
    assert container["State"]["Running"], "a named environment stays running after the run"
    assert "glmtui.run" not in container["Config"]["Labels"]
    second = await run_plan(engine, plan)
    ok(second, "mark")
    assert helpers.docker_inspect(env_name)["Id"] == container["Id"]
    assert second.lines("mark") == ["visit"]
    helpers.docker("stop", "-t", "0", helpers.container_of(env_name))
    assert helpers.container_status(env_name) == "exited"
    third = await run_plan(engine, plan)
    ok(third, "mark")
    after = helpers.docker_inspect(env_name)
    assert after["Id"] == container["Id"] and after["State"]["Running"]
    assert third.lines("mark") == ["visit", "visit"]
    assert any("start" in e.message for e in third.of("progress"))


async def test_a_throwaway_environment_is_removed_after_the_run(engine, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: throwaway
        env: {image: glmtui/busybox:latest}
        steps:
          - id: where
            run: hostname
          - id: fails
            run: exit 1
        """)
    outcome = await run_plan(engine, plan)
    started = outcome.of("run_started")[0]
    assert started.throwaway and started.environment == f"run-{outcome.run_id}"
    try:
        assert outcome.status == "failure"
        assert run_containers(outcome.run_id) == []
        assert not run_volume_exists(outcome.run_id)
        assert outcome.of("run_finished")[0].kept_environment is None
    finally:
        remove_run_leftovers(outcome.run_id)


async def test_copy_in_at_creation_and_mounts(engine, env_name, busybox_image, tmp_path):
    (tmp_path / "project" / "sub").mkdir(parents=True)
    (tmp_path / "project" / "a.txt").write_text("A\n")
    (tmp_path / "project" / "sub" / "b.txt").write_text("B\n")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "r.txt").write_text("read me\n")
    (tmp_path / "rw").mkdir()
    plan = write_plan(tmp_path, """
        version: 1
        name: copy-mounts
        permissions: {root: true}         # busybox runs as root, and ./rw is writable
        env:
          name: @NAME@
          image: glmtui/busybox:latest
          copy: ["./project:/workspace/project", "./ro/r.txt:/opt/r.txt"]
          mounts: ["./ro:/ro:ro", "./rw:/rw"]
        steps:
          - id: look
            run: |
              cat /workspace/project/a.txt /workspace/project/sub/b.txt /opt/r.txt /ro/r.txt
              echo written > /rw/out.txt
          - id: write-ro
            run: echo nope > /ro/new.txt
        """, NAME=env_name)
    outcome = await run_plan(engine, plan, allow=True)
    assert outcome.finished("look").status == "success", outcome.summary()
    assert outcome.lines("look") == ["A", "B", "read me", "read me"]
    assert (tmp_path / "rw" / "out.txt").read_text() == "written\n"
    failed = outcome.finished("write-ro")
    assert failed.status == "failure"
    assert any("Read-only" in line for line in outcome.lines("write-ro", "stderr"))
    assert not (tmp_path / "ro" / "new.txt").exists()


async def test_resources_network_and_user_reach_the_container(engine, env_name, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: limits
        env:
          name: @NAME@
          image: glmtui/busybox:latest
          resources: {memory: 256m, cpus: 0.5, pids: 64}
          network: none
          user: "1234:2345"
        steps:
          - id: who
            run: |
              id -u
              id -g
              cat /proc/net/route | wc -l
          - id: file-owner
            write: {path: /tmp/owned.txt, content: x}
          - id: owner
            needs: [file-owner]
            run: stat -c '%u:%g' /tmp/owned.txt
        """, NAME=env_name)
    outcome = await run_plan(engine, plan)
    ok(outcome, "who", "owner")
    uid, gid, routes = outcome.lines("who")
    assert (uid, gid) == ("1234", "2345")
    assert routes == "1", "network none: no routes but the header line"
    assert outcome.lines("owner") == ["1234:2345"]
    host = helpers.docker_inspect(env_name)["HostConfig"]
    assert host["Memory"] == 256 * 1024**2
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64
    assert host["NetworkMode"] == "none"
    assert helpers.docker_inspect(env_name)["Config"]["User"] == "1234:2345"


async def test_build_makes_the_image_once_and_reuses_it(engine, busybox_image, tmp_path):
    name = unique_name()
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {busybox_image}\nARG FLAVOUR=plain\nRUN echo \"built $FLAVOUR\" > /built.txt\n"
    )
    plan = write_plan(tmp_path, """
        version: 1
        name: @NAME@
        env:
          build: {context: ./ctx, args: {FLAVOUR: spicy}}
        steps:
          - id: look
            run: cat /built.txt
        """, NAME=name)
    repo = f"glmtui/plan-{name}"
    try:
        first = await run_plan(engine, plan)
        ok(first, "look")
        assert first.lines("look") == ["built spicy"]
        tags = docker_out("images", repo, "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").splitlines()
        assert tags, "the built image is tagged glmtui/plan-NAME"
        second = await run_plan(engine, plan)
        ok(second, "look")
        assert second.lines("look") == ["built spicy"]
        assert docker_out("images", repo, "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").splitlines() == tags
        messages = [e.message for e in second.of("progress")]
        assert not any(m.startswith("Step ") for m in messages), f"the second run built again: {messages}"
        images = {e.message.rsplit(" ", 1)[-1] for e in first.of("progress") + second.of("progress")
                  if e.message.startswith("creating")}
        assert len(images) == 1, images
    finally:
        for ref in docker_out("images", repo, "--format", "{{.Repository}}:{{.Tag}}").split():
            helpers.docker("rmi", "-f", ref, check=False)


# --- bad things at run time -------------------------------------------------------------------


async def test_a_command_not_found_gives_127_and_a_hint(run_shared):
    outcome = await run_shared("""
        version: 1
        name: not-found
        env: @ENV@
        steps:
          - id: typo
            run: ech0 hello
          - id: argv
            shell: [no-such-interpreter, -c]
            run: print(1)
        """)
    argv = outcome.finished("argv")
    assert argv.status == "failure" and argv.exit_code == 127
    assert "not found" in argv.reason
    typo = outcome.finished("typo")
    assert typo.status == "failure" and typo.exit_code == 127
    assert any("ech0" in line for line in outcome.lines("typo", "stderr"))
    assert "not found" in typo.reason or "install" in typo.reason, (
        f"exit 127 from the shell gives no hint: reason is {typo.reason!r}"
    )


async def test_a_one_megabyte_line_arrives_whole(run_shared):
    outcome = await run_shared("""
        version: 1
        name: big-line
        env: @ENV@
        steps:
          - id: big
            run: |
              head -c 1048576 /dev/zero | tr '\\0' 'x'
              echo
              echo after
        """)
    ok(outcome, "big")
    assert outcome.lines("big") == ["x" * 1048576, "after"]
    log = outcome.store.log_file(outcome.run_id, "big").read_bytes()
    assert log == b"x" * 1048576 + b"\nafter\n"


async def test_binary_output_does_not_break_the_run(run_shared):
    outcome = await run_shared("""
        version: 1
        name: binary
        env: @ENV@
        steps:
          - id: bin
            run: |
              printf 'ok \\377\\376 mid \\200\\n'
              head -c 3000 /dev/urandom
              echo
              echo still-here
          - id: after
            needs: [bin]
            run: echo "tail ${steps.bin.stdout | tail(1) | trim}"
        """)
    ok(outcome, "bin", "after")
    lines = outcome.lines("bin")
    assert lines[0] == "ok \ufffd\ufffd mid \ufffd"
    assert lines[-1] == "still-here"
    assert outcome.lines("after") == ["tail still-here"]


async def test_carriage_return_progress_shows_its_last_frame_in_plain_output(engine, shared, tmp_path):
    from glmtui.headless import PlainRenderer

    plan = write_plan(tmp_path, """
        version: 1
        name: progress
        env: @ENV@
        steps:
          - id: bar
            run: |
              printf 'loading 10%%\\r'
              sleep 0.2
              printf 'loading 50%%\\r'
              sleep 0.2
              printf 'loading 100%%\\n'
              echo done
        """, ENV=shared)
    screen = io.StringIO()
    outcome = await run_plan(engine, plan, sink=PlainRenderer(screen))
    ok(outcome, "bar")
    shown = [line for line in screen.getvalue().splitlines() if line.startswith("bar ")]
    assert [line.split("| ", 1)[1] for line in shown] == ["loading 100%", "done"]
    log = outcome.store.log_file(outcome.run_id, "bar").read_bytes()
    assert b"loading 10%\rloading 50%\r" in log  # the log keeps every frame


async def test_a_container_killed_mid_step_fails_the_run_cleanly(engine, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: killed
        env: {image: glmtui/busybox:latest}
        steps:
          - id: long
            run: |
              echo waiting
              sleep 300
          - id: next
            needs: [long]
            run: echo no
        """)
    store = make_store(tmp_path / "data")
    events: list = []
    task = asyncio.create_task(run_plan(engine, plan, store=store, sink=events.append))
    for _ in range(300):
        if any(e.kind == "output" and e.step == "long" for e in events):
            break
        await asyncio.sleep(0.05)
    run_id = events[0].run_id
    try:
        killer = await asyncio.create_subprocess_exec("docker", "kill", f"glmtui-run-{run_id}",
                                                      stdout=subprocess.DEVNULL)
        await killer.wait()
        outcome = await asyncio.wait_for(task, 30)
        assert outcome.error is None, outcome.error
        long = outcome.finished("long")
        assert long.status == "failure", outcome.summary()
        assert long.reason, "a killed step says why it failed"
        assert outcome.finished("next").status == "skipped"
        assert outcome.status == "failure" and outcome.exit_code == 1
        record = store.run(run_id)
        assert record.status == "failure"
        assert {s.step: s.status for s in record.steps} == {"long": "failure", "next": "skipped"}
        assert store.log_file(run_id, "long").read_text() == "waiting\n"
        assert run_containers(run_id) == []
        assert any(word in long.reason for word in ("environment", "killed", "stopped")), (
            f"the reason does not say the environment was killed: {long.reason!r}"
        )
    finally:
        remove_run_leftovers(run_id)


async def test_an_unknown_image_fails_before_any_step_with_a_clear_error(engine, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: no-image
        env: {image: "glmtui/does-not-exist:never"}
        steps:
          - id: a
            run: echo no
        """)
    outcome = await run_plan(engine, plan)
    assert outcome.error is not None
    assert "glmtui image build" in (str(outcome.error) + str(getattr(outcome.error, "hint", "")))
    assert outcome.of("step_started") == []
    assert outcome.status == "failure"
    assert run_containers(outcome.run_id) == []
    assert containers(f"name=glmtui-run-{outcome.run_id}") == []


async def test_a_container_removed_mid_step_fails_the_step_and_leaves_no_volume(engine, busybox_image, tmp_path):
    plan = write_plan(tmp_path, """
        version: 1
        name: removed
        env: {image: glmtui/busybox:latest}
        steps:
          - id: long
            run: |
              echo waiting
              sleep 300
        """)
    store = make_store(tmp_path / "data")
    events: list = []
    task = asyncio.create_task(run_plan(engine, plan, store=store, sink=events.append))
    for _ in range(300):
        if any(e.kind == "output" and e.step == "long" for e in events):
            break
        await asyncio.sleep(0.05)
    run_id = events[0].run_id
    try:
        remover = await asyncio.create_subprocess_exec("docker", "rm", "-f", f"glmtui-run-{run_id}",
                                                       stdout=subprocess.DEVNULL)
        await remover.wait()
        outcome = await asyncio.wait_for(task, 30)
        assert outcome.finished("long").status == "failure", outcome.summary()
        assert outcome.status == "failure"
        assert store.run(run_id).status == "failure"
        assert run_containers(run_id) == []
        assert not run_volume_exists(run_id), "the throw-away environment's workspace volume was left behind"
    finally:
        remove_run_leftovers(run_id)
