"""MCP, driven by the official SDK's own client over both transports: `glmtui mcp` (stdio) and
streamable HTTP at /mcp of a real `glmtui serve` on a loopback port, behind its bearer token,
both on the same project, config and records. The served plans are tools (their inputs the
schema, each workflow its own tool); a call runs the plan in a real container with progress
notifications; bad calls are tool errors of one line; the environment tools work in a real
container, and their commands are recorded as `glmtui env exec`'s are."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

import helpers
from helpers import BUSYBOX, container_exists, docker, unique_name
from serve_helpers import Serve

pytestmark = pytest.mark.docker

TRANSPORTS = ["stdio", "http"]
MODES = ["auto", "legacy"]  # auto: the 2026 protocol; legacy: the 2025 handshake Claude Code, Codex, opencode use
PLANS = {
    "greet.yaml": """
        version: 1
        name: greet
        description: Greets someone, a number of times.
        inputs:
          who: {type: string, description: Whom to greet}
          times: {type: integer, default: 1, description: How many greetings}
          loud: {type: boolean, default: false}
        env: {image: glmtui/busybox:latest, network: none}
        steps:
          - id: greet
            run: |
              i=0
              while [ "$i" -lt ${inputs.times} ]; do echo "hello, ${inputs.who}"; i=$((i + 1)); done
              echo "greeting=hello, ${inputs.who}" >> "$GLMTUI_OUTPUT"
          - id: shout
            if: ${inputs.loud}
            needs: [greet]
            run: echo "${steps.greet.outputs.greeting}" | tr a-z A-Z
    """,
    "fails.yaml": """
        version: 1
        name: fails
        env: {image: glmtui/busybox:latest, network: none}
        steps:
          - id: build
            run: |
              for i in $(seq 1 30); do echo "line $i"; done
              exit 3
    """,
    "release.yaml": """
        version: 1
        name: release
        workflows:
          build:
            default: true
            description: Build it.
            inputs:
              jobs: {type: integer, default: 2, description: Parallel jobs}
            steps:
              - id: compile
                run: echo "compiling with ${inputs.jobs} jobs"
          publish:
            description: Publish a tag.
            inputs:
              tag: {type: string, description: The tag to publish}
            steps:
              - id: push
                run: echo "tag=${inputs.tag}" >> "$GLMTUI_OUTPUT"
        env: {image: glmtui/busybox:latest, network: none}
    """,
    "host.yaml": """
        version: 1
        name: host
        permissions: {network_host: true}
        env: {image: glmtui/busybox:latest, network: host}
        steps:
          - id: look
            run: cat /etc/hostname
    """,
    "secret.yaml": """
        version: 1
        name: secret
        secrets: [MCP_TEST_SECRET_NOT_SET]
        env: {image: glmtui/busybox:latest, network: none}
        steps:
          - id: use
            run: echo "${secrets.MCP_TEST_SECRET_NOT_SET}" | wc -c
    """,
    "slow.yaml": """
        version: 1
        name: slow
        env: {image: glmtui/busybox:latest, network: none}
        steps:
          - id: wait
            run: sleep 60
    """,
    "dotted.yaml": "version: 1\nname: my.dotted-plan\nenv: {image: glmtui/busybox:latest}\nsteps: [{id: a, run: 'true'}]\n",
    "broken.yaml": "version: 1\nname: broken\nsteps: [{id: a, rnu: x}]\n",
    "twin.yaml": "version: 1\nname: twin\nsteps: [{id: a, run: 'true'}]\n",
    "more/twin.yaml": "version: 1\nname: twin\ndescription: Another twin.\nsteps: [{id: a, run: 'true'}]\n",
    "more/nested.yml": "version: 1\nname: nested\nenv: {image: glmtui/busybox:latest}\nsteps: [{id: a, run: 'true'}]\n",
    "notes.txt": "not a plan\n",
}
ENVIRONMENT_TOOLS = {"env_list", "env_create", "env_remove", "exec", "read_file", "write_file", "edit_file",
                     "list_files", "grep"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Any:
    """A real `glmtui serve` in a project of its own (the plans in ./plans), stopped at the end as
    a user stops it: 130, no traceback, none of its containers left."""
    folder = tmp_path_factory.mktemp("mcp")
    for name, text in PLANS.items():
        path = folder / "plans" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    serve = Serve(folder, env={"MCP_TEST_SECRET_NOT_SET": None})
    try:
        yield serve
        assert serve.stop() == 130, serve.errors()
        log = serve.log.read_text()
        assert "Traceback" not in serve.errors() + log and "glmtui serve stopped" in log
        runs = [run["id"] for run in json.loads(serve.glmtui("runs", "--json").stdout)]
        assert not [run for run in runs if container_exists(f"run-{run}")]
    finally:
        serve.kill()


class Servers:
    """Both transports on the same project, config and records: `connect(transport, mode)` gives
    the SDK's Client (stdio: a `glmtui mcp` of its own; http: serve's /mcp)."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.env = helpers.child_env(serve.env)
        self.url = serve.url + "/mcp"

    @asynccontextmanager
    async def connect(self, transport: str, mode: str = "auto", **env: str) -> AsyncIterator[Client]:
        """`env`: more variables for `glmtui mcp` (stdio only)."""
        if transport == "stdio":
            params = StdioServerParameters(command=sys.executable, args=["-m", "glmtui", "mcp"],
                                           env={**self.env, **env}, cwd=str(self.serve.folder))
            async with Client(params, mode=mode) as client:
                yield client
            return
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.serve.token}"}, timeout=120) as http:
            async with Client(streamable_http_client(self.url, http_client=http), mode=mode) as client:
                yield client

    def glmtui(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI on the same config and records."""
        return self.serve.glmtui(*args)


@pytest.fixture(scope="module")
def servers(served: Serve) -> Servers:
    return Servers(served)


@pytest.fixture(scope="module")
def server_env(servers: Servers) -> dict[str, str]:
    return servers.env


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tools_are_the_plans_with_their_inputs_and_the_environment_tools(transport, mode, servers):
    async with servers.connect(transport, mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert ENVIRONMENT_TOOLS <= set(tools)
    plans = {name for name in tools if name.startswith("plan_")}
    assert plans == {"plan_greet", "plan_fails", "plan_release", "plan_release__publish", "plan_host", "plan_secret",
                     "plan_slow", "plan_my_dotted-plan", "plan_nested"}  # broken.yaml is invalid; twin is two files
    greet = tools["plan_greet"]
    assert "Greets someone, a number of times." in greet.description
    assert greet.input_schema == {
        "type": "object",
        "properties": {
            "who": {"type": "string", "description": "Whom to greet"},
            "times": {"type": "integer", "description": "How many greetings", "default": 1},
            "loud": {"type": "boolean", "default": False},
        },
        "required": ["who"],
        "additionalProperties": False,
    }
    build, publish = tools["plan_release"], tools["plan_release__publish"]
    assert "workflow build" in build.description and "Build it." in build.description
    assert build.input_schema["properties"] == {"jobs": {"type": "integer", "description": "Parallel jobs", "default": 2}}
    assert publish.input_schema["required"] == ["tag"] and "Publish a tag." in publish.description
    assert tools["exec"].input_schema["required"] == ["environment", "command"]
    assert tools["read_file"].input_schema["required"] == ["environment", "path"]
    assert set(tools["read_file"].input_schema["properties"]) == {"environment", "path", "start_line", "end_line"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_plan_tool_runs_the_plan_with_progress_and_answers_its_outputs(transport, mode, servers):
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with servers.connect(transport, mode) as client:
        result = await client.call_tool("plan_greet", {"who": "mcp", "times": 2, "loud": True},
                                        progress_callback=on_progress)
        publish = await client.call_tool("plan_release__publish", {"tag": "v1.2"})
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert (data["plan"], data["workflow"], data["status"]) == ("greet", "main", "success")
    steps = {step["step"]: step for step in data["steps"]}
    assert steps["greet"]["outputs"] == {"greeting": "hello, mcp"} and steps["greet"]["exit_code"] == 0
    assert steps["shout"]["status"] == "success"
    assert "greet: success" in text_of(result) and "greeting=hello, mcp" in text_of(result)
    messages = [message for _, message in progress]
    assert "step greet started" in messages and "step shout started" in messages
    assert any(message.startswith("step greet: success") for message in messages)
    assert [value for value, _ in progress] == sorted({value for value, _ in progress})  # only ever grows
    run = json.loads(servers.glmtui("runs", "show", data["run_id"], "--json").stdout)
    assert run["status"] == "success" and run["inputs"] == {"who": "mcp", "times": 2, "loud": True}
    assert not container_exists(data["environment"])  # its throw-away environment is gone
    assert not publish.is_error, text_of(publish)
    assert publish.structured_content["workflow"] == "publish"
    assert publish.structured_content["steps"][0]["outputs"] == {"tag": "v1.2"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_failed_run_answers_the_last_lines_of_its_failed_step(transport, servers):
    async with servers.connect(transport) as client:
        result = await client.call_tool("plan_fails", {})
    assert result.is_error
    data = result.structured_content
    assert data["status"] == "failure"
    build = data["steps"][0]
    assert (build["status"], build["exit_code"]) == ("failure", 3)
    tail = build["tail"].splitlines()
    assert tail == [f"line {n}" for n in range(11, 31)]
    assert "| line 30" in text_of(result) and "build: failure (exit code 3)" in text_of(result)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_calls_that_cannot_run_are_tool_errors_of_one_line(transport, servers):
    calls = [
        ("plan_greet", {"who": 3}, "plan_greet: argument 'who': 3 is not of type 'string' (plan_greet takes who, times?, loud?)"),
        ("plan_greet", {}, "plan_greet: missing required argument 'who' (plan_greet takes who, times?, loud?)"),
        ("plan_greet", {"who": "x", "time": 2}, "plan_greet: unknown argument 'time' (did you mean 'times'?)"),
        ("plan_host", {}, "plan host asks for host access that the server's policy (serve.allow) does not grant: "
                          "the host's network"),
        ("plan_secret", {}, "secret MCP_TEST_SECRET_NOT_SET is not set"),
        ("plan_grete", {}, "there is no tool 'plan_grete' (did you mean 'plan_greet'?)"),
        ("plan_broken", {}, "there is no tool 'plan_broken'"),
        ("exec", {"environment": "no-such-env-here", "command": "true"}, "no environment named 'no-such-env-here'"),
        ("exec", {"environment": "x", "command": []}, "exec: argument 'command'"),
    ]
    async with servers.connect(transport) as client:
        for name, arguments, expected in calls:
            result = await client.call_tool(name, arguments)
            assert result.is_error, (name, arguments)
            line = text_of(result)
            assert expected in line, line
            assert "\n" not in line and "Traceback" not in line
    runs = json.loads(servers.glmtui("runs", "--json").stdout)
    assert not [run for run in runs if run["plan"] in ("host", "secret")]  # nothing ran: no run records


async def test_plans_run_with_the_servers_policy_not_with_what_they_ask_for(servers):
    async with servers.connect("stdio", GLMTUI_SERVE__ALLOW="{network_host: true}") as client:
        granted = await client.call_tool("plan_host", {})
    assert not granted.is_error, text_of(granted)
    assert granted.structured_content["status"] == "success"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_environment_tools_work_inside_a_real_container(transport, servers):
    name = unique_name()
    async with servers.connect(transport) as client:
        async def call(tool: str, **arguments: Any) -> Any:
            return await client.call_tool(tool, {"environment": name, **arguments} if tool != "env_list" else {})

        try:
            created = await call("env_create", image=BUSYBOX, memory="256m", cpus=0.5, network="none")
            assert not created.is_error, text_of(created)
            inspected = helpers.docker_inspect(name)["HostConfig"]
            assert (inspected["Memory"], inspected["NanoCpus"], inspected["NetworkMode"]) == (256 * 2**20, 5 * 10**8, "none")
            assert inspected["CapDrop"] == ["ALL"] and inspected["SecurityOpt"] == ["no-new-privileges"]
            listed = await call("env_list")
            assert name in [env["name"] for env in listed.structured_content["environments"]]

            wrote = await call("write_file", path="src/notes.txt", content="alpha\nbeta\nbeta\ngamma\n")
            assert not wrote.is_error and "4 lines" in text_of(wrote)
            assert docker("exec", helpers.container_of(name), "cat", "/workspace/src/notes.txt").stdout == "alpha\nbeta\nbeta\ngamma\n"
            whole = await call("read_file", path="src/notes.txt")
            assert text_of(whole).splitlines() == ["     1\talpha", "     2\tbeta", "     3\tbeta", "     4\tgamma"]
            part = await call("read_file", path="src/notes.txt", start_line=3, end_line=4)
            assert text_of(part).splitlines()[:2] == ["     3\tbeta", "     4\tgamma"]

            absent = await call("edit_file", path="src/notes.txt", old_text="delta", new_text="x")
            assert absent.is_error and "old_text was not found" in text_of(absent)
            twice = await call("edit_file", path="src/notes.txt", old_text="beta", new_text="x")
            assert twice.is_error and "appears 2 times" in text_of(twice)
            edited = await call("edit_file", path="src/notes.txt", old_text="beta\ngamma", new_text="BETA\nGAMMA")
            assert not edited.is_error, text_of(edited)
            assert text_of(await call("read_file", path="src/notes.txt")).splitlines()[2:] == ["     3\tBETA", "     4\tGAMMA"]

            argv = await call("exec", command=["cat", "src/notes.txt"])
            assert not argv.is_error and argv.structured_content["stdout"] == "alpha\nbeta\nBETA\nGAMMA\n"
            shell = await call("exec", command="echo out; echo err >&2; exit 3")
            assert shell.is_error
            assert {key: shell.structured_content[key] for key in ("exit_code", "stdout", "stderr")} == {
                "exit_code": 3, "stdout": "out\n", "stderr": "err\n"}
            assert text_of(shell).startswith("exit code 3")
            logged = servers.glmtui("logs", name).stdout.splitlines()  # recorded as `glmtui env exec` records
            label = f"exec {shell.structured_content['exec_id'][:6]}"
            assert [line for line in logged if label in line and line.endswith(("out", "err"))], logged
            missing = await call("exec", command=["no-such-program"])
            assert missing.structured_content["exit_code"] == 127 and "command not found" in text_of(missing)
            docker("stop", "-t", "0", helpers.container_of(name))
            where = await call("exec", command="pwd")  # a stopped environment is started first
            assert where.structured_content["stdout"] == "/workspace\n"

            listed_files = await call("list_files")
            assert text_of(listed_files).splitlines()[1:] == ["src/", "src/notes.txt"]
            found = await call("grep", pattern="^GAM")
            assert text_of(found) == "src/notes.txt:4:GAMMA"

            removed = await call("env_remove", volumes=True)
            assert not removed.is_error, text_of(removed)
            assert not container_exists(name) and not helpers.volume_exists(name)
            after = await call("env_list")
            assert name not in [env["name"] for env in after.structured_content["environments"]]
        finally:
            helpers.remove_quietly(name)


async def test_exec_masks_the_hosts_api_keys_in_its_answer_and_its_record(servers, make_env):
    env = await make_env()
    key = "zai-key-for-the-mcp-masking-test-0123456789"
    async with servers.connect("stdio", ZAI_API_KEY=key) as client:
        result = await client.call_tool("exec", {"environment": env.name, "command": f"echo {key}; echo {key} >&2"})
    assert not result.is_error and key not in text_of(result)
    assert key not in result.structured_content["stdout"] + result.structured_content["stderr"]
    logged = servers.glmtui("logs", env.name).stdout
    assert f"exec {result.structured_content['exec_id'][:6]}" in logged and key not in logged


def test_mcp_is_served_by_glmtui_serve_behind_its_token_on_the_apis_plans(servers):
    serve = servers.serve
    assert f"MCP (streamable HTTP) at {serve.url}/mcp" in serve.output()
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    before = serve.log.read_text()
    with httpx2.Client(timeout=60) as http:
        for token in (None, "not-the-token-1234"):
            sent = {**headers, **({"Authorization": f"Bearer {token}"} if token else {})}
            refused = http.post(servers.url, json=initialize, headers=sent)
            assert refused.status_code == 401 and "Bearer" in refused.json()["error"]
            assert "mcp-session-id" not in refused.headers
        rebound = http.post(servers.url, json=initialize, headers={**headers, "Host": "evil.example",
                                                                     "Authorization": f"Bearer {serve.token}"})
        assert rebound.status_code == 400 and "Host" in rebound.json()["error"]
        answered = http.post(servers.url, json=initialize, headers={**headers, "Authorization": f"Bearer {serve.token}"})
        assert answered.status_code == 200 and answered.headers["mcp-session-id"]
    refusals = serve.log.read_text()[len(before):]
    assert "refused POST /mcp" in refusals and serve.token not in refusals and "not-the-token-1234" not in refusals

    with serve.client() as api:  # one catalog: the API offers the plans MCP offers, with the same problems
        listed = api.get("/plans").json()
    served = {plan["name"]: plan for plan in listed["plans"]}
    assert set(served) == {"greet", "fails", "release", "host", "secret", "slow", "my.dotted-plan", "nested"}
    assert served["host"]["runnable"] is False
    assert {Path(problem["file"]).name for problem in listed["problems"]} == {"broken.yaml", "twin.yaml"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_glmtui_serve_stopped_during_a_plan_call_cancels_the_run_and_ends(sig, tmp_path, busybox_image):
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "slow.yaml").write_text(textwrap.dedent(PLANS["slow.yaml"]).lstrip())
    serve = Serve(tmp_path)
    try:
        started = anyio.Event()
        run_ids: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            if message and message.startswith("run "):
                run_ids.append(message.split()[1])
            if message == "step wait started":
                started.set()

        answers: list[Any] = []
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {serve.token}"}, timeout=120) as http:
            async with Client(streamable_http_client(serve.url + "/mcp", http_client=http)) as client:
                async with anyio.create_task_group() as group:
                    async def call() -> None:
                        answers.append(await client.call_tool("plan_slow", {}, progress_callback=on_progress))

                    group.start_soon(call)
                    with anyio.fail_after(60):
                        await started.wait()
                    serve.proc.send_signal(sig)
        assert await anyio.to_thread.run_sync(serve.wait_exit) == 130
        assert answers[0].is_error and answers[0].structured_content["status"] == "cancelled", text_of(answers[0])
        run_id = run_ids[0]
        assert json.loads(serve.glmtui("runs", "show", run_id, "--json").stdout)["status"] == "cancelled"
        assert not container_exists(f"run-{run_id}")
        log = serve.log.read_text()
        assert "Traceback" not in serve.errors() + log and "glmtui serve stopped" in log
    finally:
        serve.kill()


async def test_glmtui_serve_with_a_session_open_stops_without_waiting_for_it(tmp_path):
    """The 2025 session keeps a stream open (GET /mcp) for as long as it lasts: serve ends it when
    it stops, instead of waiting out the grace uvicorn gives open requests (5 s)."""
    serve = Serve(tmp_path)
    try:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {serve.token}"}, timeout=120) as http:
            with pytest.raises(BaseException):  # the server goes away under the session
                async with Client(streamable_http_client(serve.url + "/mcp", http_client=http), mode="legacy") as client:
                    assert (await client.list_tools()).tools
                    stopping = time.monotonic()
                    serve.proc.send_signal(signal.SIGTERM)
                    assert await anyio.to_thread.run_sync(serve.wait_exit) == 130
                    took = time.monotonic() - stopping
                    await client.list_tools()
        assert took < 3, took
        assert "Traceback" not in serve.errors() + serve.log.read_text()
    finally:
        serve.kill()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_long_output_is_cut_with_a_note_and_kept_whole_in_the_environment(transport, servers, make_env):
    env = await make_env()
    async with servers.connect(transport) as client:
        result = await client.call_tool("exec", {"environment": env.name, "command": "seq 1 100000; seq 1 5 >&2"})
        data = result.structured_content
        assert not result.is_error and data["exit_code"] == 0
        assert data["stderr"] == "1\n2\n3\n4\n5\n"  # short: whole
        stdout = data["stdout"]
        assert len(stdout) < 17_000 and stdout.startswith("1\n2\n") and stdout.endswith("99999\n100000\n")
        assert f"the whole stdout is in {data['saved_to']['stdout']}, read it with read_file" in stdout
        saved = await client.call_tool("exec", {"environment": env.name, "command": ["wc", "-l", data["saved_to"]["stdout"]]})
        assert saved.structured_content["stdout"].split()[0] == "100000"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_environment_tools_refuse_what_is_not_theirs(transport, servers, make_env):
    run_env = await make_env(run_id="20990101-000000-abcdef")  # a plan run's throw-away environment
    async with servers.connect(transport) as client:
        for tool, arguments in [("exec", {"command": "true"}), ("read_file", {"path": "x"}), ("env_remove", {})]:
            result = await client.call_tool(tool, {"environment": run_env.name, **arguments})
            assert result.is_error
            assert "is the throw-away environment of plan run 20990101-000000-abcdef" in text_of(result)
        host = await client.call_tool("env_create", {"environment": unique_name(), "network": "host"})
        assert host.is_error and "network host shares the host's network" in text_of(host)
        small = await client.call_tool("env_create", {"environment": unique_name(), "memory": "a lot"})
        assert small.is_error and text_of(small) == "memory: 'a lot' is not a size (use e.g. 512m or 2g)"
        listed = await client.call_tool("env_list", {})
        assert run_env.name not in [env["name"] for env in listed.structured_content["environments"]]
    assert container_exists(run_env.name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cancelled_call_cancels_its_run(transport, mode, servers):
    started = anyio.Event()
    run_ids: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if message and message.startswith("run "):
            run_ids.append(message.split()[1])
        if message == "step wait started":
            started.set()

    async with servers.connect(transport, mode) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: client.call_tool("plan_slow", {}, progress_callback=on_progress))
            with anyio.fail_after(60):
                await started.wait()
            group.cancel_scope.cancel()
        run_id = run_ids[0]

        def recorded_cancelled() -> bool:
            return json.loads(servers.glmtui("runs", "show", run_id, "--json").stdout)["status"] == "cancelled"

        with anyio.fail_after(60):  # the loop runs meanwhile: the client's cancel goes out
            while not await anyio.to_thread.run_sync(recorded_cancelled):
                await anyio.sleep(0.2)
        assert not container_exists(f"run-{run_id}")
        assert not (await client.call_tool("env_list", {})).is_error  # the connection serves on


class RawMcp:
    """`glmtui mcp` spoken to in JSON-RPC lines (the 2025-11-25 session), as a client does."""

    INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(helpers.glmtui_argv("mcp"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env, cwd=str(cwd))
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        return json.loads(self.lines.get(timeout=60))  # every line of stdout is a JSON-RPC message

    def start(self) -> dict[str, Any]:
        self.send(self.INITIALIZE)
        answer = self.receive()
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def test_glmtui_mcp_writes_nothing_but_the_protocol_and_ends_with_stdin(servers):
    mcp = RawMcp(servers.env, servers.serve.folder)
    try:
        assert mcp.start()["result"]["serverInfo"]["name"] == "glmtui"
        mcp.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        answer = mcp.receive()
        assert answer["id"] == 2 and "plan_greet" in [tool["name"] for tool in answer["result"]["tools"]]
        mcp.process.stdin.close()
        assert mcp.process.wait(60) == 0
        assert mcp.lines.empty()
        stderr = mcp.process.stderr.read()
        assert "Traceback" not in stderr
        assert "broken.yaml" in stderr and "left out until it is valid" in stderr
        plans = servers.serve.plans
        assert (f"plans: plan name 'twin' is given by 2 files ({plans / 'twin.yaml'}, {plans / 'more' / 'twin.yaml'}): "
                "rename all but one") in stderr
    finally:
        mcp.close()


def test_glmtui_mcp_stopped_by_sigterm_cancels_its_runs_and_cleans_up(servers):
    mcp = RawMcp(servers.env, servers.serve.folder)
    try:
        mcp.start()
        mcp.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "plan_slow", "arguments": {}, "_meta": {"progressToken": "p"}}})
        said = []
        while "step wait started" not in said:
            said.append(mcp.receive()["params"]["message"])
        run_id = next(line.split()[1] for line in said if line.startswith("run "))
        mcp.process.send_signal(signal.SIGTERM)  # stdin stays open
        assert mcp.process.wait(60) == 130
        assert json.loads(servers.glmtui("runs", "show", run_id, "--json").stdout)["status"] == "cancelled"
        assert not container_exists(f"run-{run_id}")
        assert "Traceback" not in mcp.process.stderr.read()
    finally:
        mcp.close()


def test_glmtui_mcp_without_an_engine_says_so_in_one_line(server_env):
    done = subprocess.run(helpers.glmtui_argv("mcp"), input="", capture_output=True, text=True, timeout=60,
                          env={**server_env, "GLMTUI_DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 3 and done.stdout == ""
    assert helpers.one_error_line(done.stderr).startswith("glmtui: error: ")

