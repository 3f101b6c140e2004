"""MCP: glmtui's plans as tools, and environments for outside coding agents.

One MCP server (the official SDK's low-level `Server`) on the service, with two transports:
streamable HTTP and stdio (`glmtui mcp`, `serve_stdio`). For HTTP, `glmtui serve` serves
`McpFace.face()` at `/mcp` behind the gate of every face (token, Host; the face checks neither)
and holds `McpFace.running()` (the session manager) open while it serves.

Tools:
- `plan_NAME`, `plan_NAME__WORKFLOW`: each workflow of a plan the server offers (the one
  catalog of glmtui.server.plans, which the HTTP API uses too), its inputs as the input schema;
  the plan's default workflow under the plan's name, each other one under `plan_NAME__WORKFLOW`.
  Tool names keep to letters, digits, `_` and `-` (what model APIs take): a `.` becomes `_`, and
  of two plans whose names become the same tool name the first (by plan name) has it. A call
  binds the plan to its arguments and the server's policy as the API binds it (a plan that
  asks for more host access than `serve.allow` grants does not start) and runs it through the
  service, as every run is run; while it runs, a client that asked for
  progress gets a notification as steps start and finish; the answer is the run's status,
  each step's status and outputs, and the last lines of the steps that failed. A run whose
  call is cancelled (or whose client goes away) is cancelled.
- `env_list`, `env_create`, `env_remove`, and inside one environment `exec`, `read_file`,
  `write_file`, `edit_file`, `list_files`, `grep` (glmtui.server.environments). An `exec` is
  recorded as `glmtui env exec` and the API's exec record theirs (`glmtui logs ENV` shows it).

Whatever goes wrong is answered as a tool error of one line (isError), never a traceback; a
failed run and a command that exits non-zero are tool errors too, with their whole result.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager

from glmtui import __version__
from glmtui.agent.tools import argument_problem, tool_schema
from glmtui.errors import EXIT_INTERRUPTED, GlmtuiError, did_you_mean
from glmtui.events import Event, Output, Progress, RunFinished, RunStarted, StepFinished, StepStarted
from glmtui.plan.model import DEFAULT_WORKFLOW, InputSpec, Plan, Workflow
from glmtui.server.environments import EnvironmentTools
from glmtui.server.listen import GRACE
from glmtui.server.plans import PlanCatalog, PlanEntry
from glmtui.units import counted

TAIL_LINES = 20  # last lines of a failed step in a plan tool's answer
TAIL_LINE_LIMIT = 400  # characters of one of them
INSTRUCTIONS = (
    "glmtui runs work in isolated Docker environments. The plan_* tools run the user's glmtui plans. For work "
    "of your own, use an environment: env_list shows them, env_create makes one (then exec, read_file, "
    "write_file, edit_file, list_files and grep act inside it, never on the user's machine), env_remove "
    "removes it. Relative paths are relative to the environment's working folder (/workspace)."
)
_ENVIRONMENT = {"type": "string", "minLength": 1, "description": "The environment's name (env_list shows them)."}
_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "list": "array",
          "object": "object"}
_READ_ONLY = types.ToolAnnotations(read_only_hint=True)
_ARGV = ("command", "path", "pattern", "glob")  # arguments of the environment tools that become argv elements
PLAN_PREFIX = "plan_"
WORKFLOW_SEPARATOR = "__"
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_-]")

Handler = Callable[[dict[str, Any]], Awaitable[types.CallToolResult]]


class McpFace:
    """The MCP server of one service: its tools, and its two transports."""

    def __init__(self, service: Any, plans: PlanCatalog, *, log: Callable[[str], None] | None = None) -> None:
        self.service = service
        self.plans = plans
        self.log = log or service.announce
        self.environments = EnvironmentTools(service, plans.policy)
        self._clashes: set[str] = set()  # plan files whose tool name another plan has, said in the log
        self.server: Server[Any] = Server("glmtui", version=__version__, instructions=INSTRUCTIONS,
                                          on_list_tools=self._list_tools, on_call_tool=self._call_tool)
        self._manager = StreamableHTTPSessionManager(self.server)
        self.asgi = Answering(StreamableHTTPASGIApp(self._manager))
        self._tools: dict[str, tuple[types.Tool, Handler]] = {
            tool.name: (tool, handler) for tool, handler in (
                (_tool("env_list", "List the named environments (name, status, image, working folder).", {},
                       annotations=_READ_ONLY), self._env_list),
                (_tool("env_create", "Create and start an environment: an isolated Docker container with a "
                       "workspace volume, limits and safe defaults, nothing of the host in it.", _CREATE,
                       required=("environment",)), self._env_create),
                (_tool("env_remove", "Remove an environment (its workspace volume too with volumes: true).",
                       _REMOVE, required=("environment",),
                       annotations=types.ToolAnnotations(destructive_hint=True)), self._env_remove),
                (_tool("exec", "Run a command in an environment: a string runs with sh -c, a list of strings "
                       "as it is (argv). Answers the exit code, stdout and stderr (each cut, with a note, when "
                       "long). Nothing comes on stdin; what it leaves running in the background is ended.",
                       _EXEC, required=("environment", "command")), self._exec),
                *((_inside(name), self._inside_handler(name)) for name in
                  ("read_file", "write_file", "edit_file", "list_files", "grep")),
            )
        }

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Enter around serving `asgi` (the session manager's task group lives in it). Leaving it
        ends the sessions and their streams, once the requests being answered are (for at most
        the GRACE serve gives open requests: the service has ended their runs by then)."""
        async with self._manager.run():
            yield
            with anyio.move_on_after(GRACE):
                await self.asgi.answered()

    def face(self) -> Any:
        """The streamable-HTTP transport, for `glmtui serve` to serve at /mcp (glmtui.server.app)."""
        from glmtui.server.app import Face

        return Face("/mcp", self.asgi, "MCP (streamable HTTP)", lifespan=self.running)

    async def serve_stdio(self) -> None:
        """Serve over this process's stdin and stdout until the client closes stdin."""
        async with stdio_server(stdin=StdinLines()) as (read_stream, write_stream):
            await self.server.run(read_stream, write_stream, self.server.create_initialization_options())

    # -- the protocol's handlers --------------------------------------------------------------

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        plans = [types.Tool(name=tool.name, description=tool.describe(), input_schema=plan_schema(tool))
                 for tool in self.plan_tools().values()]
        return types.ListToolsResult(tools=[tool for tool, _ in self._tools.values()] + plans)

    def plan_tools(self) -> dict[str, PlanTool]:
        """The plan tools by name, from the plans the server offers now."""
        tools: dict[str, PlanTool] = {}
        for entry in self.plans.scan()[0].values():
            for tool in _plan_tools(entry):
                taken = tools.get(tool.name)
                if taken is None:
                    tools[tool.name] = tool
                elif str(entry.file) not in self._clashes:
                    self._clashes.add(str(entry.file))
                    self.log(f"mcp: {entry.file}: plan {entry.name}'s tool {tool.name} is plan {taken.plan.name}'s "
                             f"already ({taken.entry.file}); rename one of them")
        return tools

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        arguments = {key: value for key, value in (params.arguments or {}).items() if value is not None}
        try:
            if name in self._tools:
                tool, handler = self._tools[name]
                problem = argument_problem(name, tool.input_schema, arguments, argv=_ARGV)
                return _error(problem) if problem else await handler(arguments)
            plans = self.plan_tools()
            if name not in plans:
                return _error(f"there is no tool {name!r}{did_you_mean(name, [*self._tools, *plans])}")
            return await self._run_plan(ctx, plans[name], arguments)
        except GlmtuiError as err:
            return _error(str(err))
        except Exception as err:  # noqa: BLE001 - a bug: the client gets one line, the log the traceback
            self.log(f"mcp: {name}: internal error: {type(err).__name__}: {err}")
            for line in traceback.format_exc().splitlines():
                self.log(f"mcp:   {line}")
            return _error(f"internal error in glmtui ({type(err).__name__}); its log has the details")

    # -- plans ----------------------------------------------------------------------------

    async def _run_plan(self, ctx: Any, tool: PlanTool, arguments: dict[str, Any]) -> types.CallToolResult:
        problem = argument_problem(tool.name, plan_schema(tool), arguments)
        if problem:
            return _error(problem)
        loaded = self.plans.bind(tool.entry, tool.workflow.name, arguments)
        run = self.service.start_run(loaded, grant=self.plans.policy)
        report = RunReport(tool)
        try:
            async for _, event in run.follow():
                message = report.add(event)
                if message:
                    await ctx.session.report_progress(report.progress, None, message)
            await asyncio.wait([run.task])
        except BaseException:  # the call was cancelled, or its client went away: so does the run
            run.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([run.task])
            self.log(f"mcp: {tool.name}: run {run.id} cancelled: its call was cancelled")
            raise
        error = None if run.task.cancelled() else run.task.exception()
        if error is not None and report.run_id is None:  # it did not start (a missing secret, an agent that would ask ...)
            raise error
        self.log(f"mcp: {tool.name}: run {run.id} {report.status}")
        if error is not None:  # it started and stopped (an image that is not there ...): its error, masked
            report.error = run.runner.masker.mask(str(error))
        return _answer(report.text(), report.data(), error=report.status != "success")

    # -- environments -----------------------------------------------------------------------

    async def _env_list(self, arguments: dict[str, Any]) -> types.CallToolResult:
        envs = await self.environments.list()
        lines = [f"{env.name}  {env.status}  {env.image}  {env.workdir}" for env in envs]
        text = "\n".join(lines) if lines else "no environments (env_create makes one)"
        return _answer(text, {"environments": [env.as_json() for env in envs]})

    async def _env_create(self, arguments: dict[str, Any]) -> types.CallToolResult:
        name = arguments["environment"]
        env = await self.environments.create(name, image=arguments.get("image"), memory=arguments.get("memory"),
                                             cpus=arguments.get("cpus"), network=arguments.get("network"))
        self.log(f"mcp: env_create: created environment {env.name} ({env.image})")
        return _answer(f"created {env.name} ({env.image}, {env.status}); its working folder is {env.workdir}",
                       env.as_json())

    async def _env_remove(self, arguments: dict[str, Any]) -> types.CallToolResult:
        name, volumes = arguments["environment"], arguments.get("volumes", False)
        await self.environments.remove(name, volumes=volumes)
        self.log(f"mcp: env_remove: removed environment {name}" + (" and its workspace" if volumes else ""))
        return _answer(f"removed {name}" + (" and its workspace volume" if volumes else ""),
                       {"environment": name, "removed": True, "volumes": volumes})

    async def _exec(self, arguments: dict[str, Any]) -> types.CallToolResult:
        command = arguments["command"]
        argv = ["sh", "-c", command] if isinstance(command, str) else command
        exec_id, result = await self.environments.exec(arguments["environment"], argv, timeout=arguments.get("timeout"))
        ended = f"exit code {result.exit_code}" + (f" ({result.reason})" if result.reason else "")
        parts = [f"{ended} in {result.duration:.2f}s"]
        parts += [f"{name}:\n{text.removesuffix(chr(10))}" for name, text in (("stdout", result.stdout),
                                                                             ("stderr", result.stderr)) if text]
        data = {"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                "reason": result.reason, "duration": round(result.duration, 3), "saved_to": result.saved_to,
                "exec_id": exec_id}
        return _answer("\n".join(parts), data, error=not result.ok)

    def _inside_handler(self, name: str) -> Handler:
        async def handler(arguments: dict[str, Any]) -> types.CallToolResult:
            given = dict(arguments)
            tools = await self.environments.toolbox(given.pop("environment"))
            result = await tools.call(name, given)
            return _answer(result.output, error=not result.ok)

        return handler


class Answering:
    """An ASGI app that counts the requests it is answering: each POST (a GET is a session's
    stream, which lasts as long as its session)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._none = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        self.count += 1
        self._none.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            if not self.count:
                self._none.set()

    async def answered(self) -> None:
        """Until no request is being answered."""
        while self.count:
            await self._none.wait()


class StdinLines:
    """This process's stdin, line by line, as the SDK's stdio transport reads it, read by a daemon
    thread: SIGTERM stops `glmtui mcp` while its client keeps stdin open. (The SDK's own reader
    is a worker thread blocked in a read, which a cancel waits for and the interpreter's exit
    joins.)"""

    def __init__(self) -> None:
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        stream = os.fdopen(os.dup(0), encoding="utf-8", errors="replace")

        def read() -> None:
            try:
                for line in stream:
                    loop.call_soon_threadsafe(self._lines.put_nowait, line)
                loop.call_soon_threadsafe(self._lines.put_nowait, None)
            except RuntimeError:  # the loop has closed: nobody reads any more
                pass

        threading.Thread(target=read, name="mcp stdin", daemon=True).start()

    def __aiter__(self) -> StdinLines:
        return self

    async def __anext__(self) -> str:
        line = await self._lines.get()
        if line is None:
            raise StopAsyncIteration
        return line


class RunReport:
    """What a plan tool reports of its run, from the run's events: progress lines as they come,
    then the answer."""

    def __init__(self, tool: PlanTool) -> None:
        self.tool = tool
        self.progress = 0  # notifications so far (the number a notification carries only grows)
        self.run_id: str | None = None
        self.environment: str | None = None
        self.status = "failure"
        self.error: str | None = None  # what stopped the run, when not one of its steps
        self.duration: float | None = None
        self.steps: dict[str, dict[str, Any]] = {}
        self._tails: dict[str, collections.deque[str]] = collections.defaultdict(
            lambda: collections.deque(maxlen=TAIL_LINES))

    def add(self, event: Event) -> str | None:
        """Take in an event; the progress line it makes, if any."""
        message = None
        if isinstance(event, Output):
            last = event.text.rsplit("\n", TAIL_LINES)[-TAIL_LINES:]  # not every line of a flood: its end
            self._tails[event.step].extend(line[:TAIL_LINE_LIMIT] for line in last)
        elif isinstance(event, StepStarted):
            self.steps.setdefault(event.step, {"step": event.step, "status": "running"})
            message = f"step {event.step} started" + (f" (attempt {event.attempt})" if event.attempt > 1 else "")
        elif isinstance(event, StepFinished):
            self.steps[event.step] = step = {
                "step": event.step, "status": event.status, "exit_code": event.exit_code,
                "duration": round(event.duration, 3), "outputs": event.outputs, "reason": event.reason,
            }
            if event.status == "failure":
                step["tail"] = "\n".join(self._tails.get(event.step, ()))
            message = f"step {event.step}: {_step_line(step)}"
        elif isinstance(event, RunStarted):
            self.run_id, self.environment = event.run_id, event.environment
            message = f"run {event.run_id} started in environment {event.environment}"
        elif isinstance(event, RunFinished):
            self.status, self.duration = event.status, event.duration
        elif isinstance(event, Progress):
            message = event.message
        if message:
            self.progress += 1
        return message

    def data(self) -> dict[str, Any]:
        plan, workflow = self.tool.plan, self.tool.workflow
        return {"run_id": self.run_id, "plan": plan.name, "workflow": workflow.name, "status": self.status,
                "duration": self.duration, "environment": self.environment, "error": self.error,
                "steps": list(self.steps.values())}

    def text(self) -> str:
        took = f" in {self.duration:.1f}s" if self.duration is not None else ""
        lines = [f"plan {self.tool.plan.name} (workflow {self.tool.workflow.name}): {self.status}{took}, "
                 f"run {self.run_id}, {counted(len(self.steps), 'step')}"]
        if self.error:
            lines.append(f"error: {self.error}")
        for step in self.steps.values():
            lines.append(f"{step['step']}: {_step_line(step)}")
            if step.get("tail"):
                lines.append("  its last lines:\n" + "\n".join(f"  | {line}" for line in step["tail"].splitlines()))
        return "\n".join(lines)


def _step_line(step: dict[str, Any]) -> str:
    line = step["status"]
    if step.get("exit_code") not in (None, 0):
        line += f" (exit code {step['exit_code']})"
    if step.get("duration"):
        line += f" in {step['duration']:.1f}s"
    if step.get("reason"):
        line += f"; {step['reason']}"
    if step.get("outputs"):
        line += "; outputs: " + ", ".join(f"{key}={value}" for key, value in step["outputs"].items())
    return line


@dataclass(frozen=True)
class PlanTool:
    """One runnable workflow of a plan the server offers, as a tool."""

    name: str  # plan_PLAN or plan_PLAN__WORKFLOW
    entry: PlanEntry
    workflow: Workflow

    @property
    def plan(self) -> Plan:
        return self.entry.plan

    @property
    def inputs(self) -> dict[str, InputSpec]:
        return {**self.plan.inputs, **self.workflow.inputs}

    def describe(self) -> str:
        named = list(self.plan.workflows) != [DEFAULT_WORKFLOW]  # the plan has `workflows:`, not only `steps:`
        what = f"plan {self.plan.name}" + (f", workflow {self.workflow.name}" if named else "")
        about = " ".join((self.workflow.description or self.plan.description or "").split()).rstrip(".")
        return (f"Run the glmtui {what} ({self.entry.file.name}){': ' + about if about else ''}. It runs in the "
                "plan's Docker environment; the answer gives the run's status, each step's status and outputs, and "
                "the last lines of the steps that failed.")


def _plan_tools(entry: PlanEntry) -> list[PlanTool]:
    base = PLAN_PREFIX + _NOT_IN_NAMES.sub("_", entry.name)
    return [PlanTool(base if workflow.name == entry.plan.default_workflow
                     else base + WORKFLOW_SEPARATOR + _NOT_IN_NAMES.sub("_", workflow.name), entry, workflow)
            for workflow in entry.plan.workflows.values()]


def plan_schema(tool: PlanTool) -> dict[str, Any]:
    """The input schema of a plan tool: the inputs of the plan and of its workflow."""
    properties: dict[str, Any] = {}
    for name, spec in tool.inputs.items():
        prop: dict[str, Any] = {"type": _TYPES.get(spec.type, "string")}
        if spec.description:
            prop["description"] = spec.description
        if spec.default is not None:
            prop["default"] = spec.default
        properties[name] = prop
    required = [name for name, spec in tool.inputs.items() if spec.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_CREATE = {
    "environment": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,62}$",
                    "description": "Its name: lower-case letters, digits, '.', '_' and '-'."},
    "image": {"type": "string", "minLength": 1, "description": "The image (default: the configured default_image)."},
    "memory": {"type": "string", "minLength": 1,
               "description": "Memory limit, e.g. 512m or 2g (default: the configured one, 1g)."},
    "cpus": {"type": "number", "exclusiveMinimum": 0, "description": "CPU limit, e.g. 0.5 or 2 (default 2)."},
    "network": {"type": "string", "enum": ["bridge", "none", "host"],
                "description": "bridge (default: a network of its own, with the internet), none (no network), or "
                               "host (only where the server's policy grants the host's network)."},
}
_REMOVE = {
    "environment": _ENVIRONMENT,
    "volumes": {"type": "boolean", "description": "Also remove its workspace volume (default false: kept)."},
}
_EXEC = {
    "environment": _ENVIRONMENT,
    "command": {
        "oneOf": [{"type": "string", "minLength": 1},
                  {"type": "array", "items": {"type": "string"}, "minItems": 1}],
        "description": "A shell command (run with sh -c), or a program and its arguments as a list of strings.",
    },
    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600,
                "description": "Seconds before the command and its children are killed (default 120)."},
}


def _tool(name: str, description: str, properties: dict[str, Any], *, required: tuple[str, ...] = (),
          annotations: types.ToolAnnotations | None = None) -> types.Tool:
    schema = {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}
    return types.Tool(name=name, description=description, input_schema=schema, annotations=annotations)


def _inside(name: str) -> types.Tool:
    """One of the agent's file tools, with the environment to act in as its first argument."""
    schema = tool_schema(name)
    parameters = schema["parameters"]
    properties = {"environment": _ENVIRONMENT, **parameters["properties"]}
    description = schema["description"] + " Acts inside the environment; relative paths start at its working folder."
    read_only = name in ("read_file", "list_files", "grep")
    return _tool(name, description, properties, required=("environment", *parameters.get("required", ())),
                 annotations=_READ_ONLY if read_only else None)


def _answer(text: str, data: dict[str, Any] | None = None, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=data, is_error=error)


def _error(message: str) -> types.CallToolResult:
    return _answer(message, error=True)


# --- glmtui mcp --------------------------------------------------------------------------------


async def serve_stdio(config: Any) -> int:
    """`glmtui mcp`: MCP over stdin and stdout, with a service of its own, until the client closes
    stdin (0) or SIGINT or SIGTERM (130, after the running plan runs are cancelled and cleaned
    up). Nothing but the protocol goes to stdout; the log goes to stderr."""
    from glmtui.docker.engine import Engine
    from glmtui.service.service import Service
    from glmtui.store import Store

    engine = await Engine.connect(config.get("docker_host"))
    store = Store()
    try:
        service = Service(engine, store, config, announce=_stderr_line)
        face = McpFace(service, PlanCatalog.of(config, _stderr_line))
        async with _stopped_by_signals() as stopping:
            serving = asyncio.create_task(face.serve_stdio(), name="mcp stdio")
            stopper = asyncio.create_task(stopping.wait())
            try:
                await asyncio.wait([serving, stopper], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)
                await service.shutdown()
        if serving.done() and not serving.cancelled() and serving.exception() is not None:
            raise serving.exception()  # type: ignore[misc]
        return EXIT_INTERRUPTED if stopping.is_set() else 0
    finally:
        await engine.close()
        store.close()


@asynccontextmanager
async def _stopped_by_signals() -> AsyncIterator[asyncio.Event]:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        yield stopping
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _stderr_line(text: str) -> None:
    print(f"{datetime.now():%Y-%m-%d %H:%M:%S} glmtui[{os.getpid()}] {text}", file=sys.stderr, flush=True)
