"""The HTTP API at /api/v1: one table of endpoints (ENDPOINTS) from which both the routes the
server answers and its OpenAPI document are made, so the two cannot drift apart.

Each endpoint declares its method and path, the JSON Schema of its body and query (checked
before its handler runs: unknown fields and wrong types are 400 with one line naming the field),
its success status, and whether it is public (health and webhooks; everything else needs the
token, see auth.py). A handler gets the Api (the service, the settings) and the Call (path
parameters, query, body) and returns JSON-able data, or a Response of its own (events, logs).
Errors are ApiError (a status and one line) or the service's own errors, whose status
http.status_of gives.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from glmtui.config import HOOK_AGENT_PAYLOAD, HOOK_PAYLOAD
from glmtui.errors import GlmtuiError, NotFound
from glmtui.events import RunStarted
from glmtui.plan.model import PlanInvalid
from glmtui.server import hooks as webhooks
from glmtui.server import sse
from glmtui.server.http import (
    ApiError, check, dumps, error_response, json_response, parse_json, parse_query, plan_problem, status_of,
)

PREFIX = "/api/v1"
RAW = {"raw": True}  # the body as bytes, unchecked (webhooks verify its signature first)
NAME = "^[a-z0-9][a-z0-9_.-]{0,62}$"
VARIABLE_NAME = "^[A-Za-z_][A-Za-z0-9_]*$"


@dataclass
class Call:
    request: Request
    params: dict[str, str]
    query: dict[str, Any]
    body: Any
    raw: bytes = b""


Handler = Callable[["Api", Call], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below PREFIX, with {parameters}
    handler: Handler
    status: int = 200
    body: dict[str, Any] | None = None
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    public: bool = False
    produces: str = "application/json"

    @property
    def summary(self) -> str:
        return (self.handler.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")

    @property
    def description(self) -> str:
        parts = (self.handler.__doc__ or "").strip().split("\n\n", 1)
        return " ".join(parts[1].split()) if len(parts) > 1 else ""


ENDPOINTS: list[Endpoint] = []


def endpoint(method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ENDPOINTS.append(Endpoint(method, path, handler, **options))
        return handler
    return register


def public_paths() -> list[str]:
    """The paths (Starlette templates) that need no token: health and webhooks."""
    return [PREFIX + e.path for e in ENDPOINTS if e.public]


class Api:
    """What handlers share: the service, the server's settings, whether it is stopping."""

    def __init__(self, service: Any, settings: Any) -> None:
        self.service = service
        self.settings = settings
        self.store = service.store
        self.stopping = False
        self.deliveries = webhooks.Deliveries(service.store, service.config.get("keep_runs_days"))

    def routes(self) -> list[Route]:
        return [Route(PREFIX + e.path, self._route(e), methods=[e.method]) for e in ENDPOINTS]

    def _route(self, ep: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            try:
                query = parse_query(request.query_params, ep.query)
                raw, body = b"", None
                if ep.body is not None:
                    raw = await request.body()
                    if ep.body is not RAW:
                        body = parse_json(raw) if raw.strip() else {}
                        check(body, ep.body, "body")
                result = await ep.handler(self, Call(request, dict(request.path_params), query, body, raw))
            except ApiError as err:
                return error_response(err.status, err.message, err.headers)
            except PlanInvalid as err:
                return error_response(422, plan_problem(err))
            except GlmtuiError as err:
                return error_response(status_of(err), str(err))
            return result if isinstance(result, Response) else json_response(result, ep.status)
        answer.__name__ = ep.handler.__name__
        return answer

    def new_work(self) -> None:
        if self.stopping:
            raise ApiError(503, "the server is stopping: it starts no new work")

    # -- runs -------------------------------------------------------------------------------

    def run_json(self, run_id: str) -> dict[str, Any]:
        record = self.store.run(run_id)
        data = record.as_json()
        work = self.service.get(record.id)
        data["held"] = work is not None  # its events are live here (GET .../events)
        data["last_event"] = work.last_seq if work is not None else None
        data["approvals"] = open_approvals(work)
        data["error"] = _work_error(work)
        return data

    def work_of(self, run_id: str) -> Any:
        """The run (or execution) this server holds by that id or prefix; 409 when it runs elsewhere."""
        work = self.service.get(run_id)
        if work is not None:
            return work
        record = self.store.run(run_id)
        work = self.service.get(record.id)
        if work is None:
            where = "in another process" if record.status == "running" else f"no more: it is {record.status}"
            raise ApiError(409, f"run {record.id} does not run in this server ({where})")
        return work

    async def start_run(self, entry: Any, workflow: str | None, inputs: dict[str, Any], *, approvals: bool,
                        jobs: int | None = None, keep: bool = False, resume: str | None = None) -> Any:
        """A run of a served plan with the server's policy as its grant, once it is recorded (its
        run_started event): what stops it before that (a missing secret, host access the policy
        does not grant, an agent that may ask with nobody to answer) is raised, and nothing runs."""
        from glmtui.plan.steps.agent import preflight

        self.new_work()
        config = self.service.config
        loaded = self.settings.plans.bind(entry, workflow, inputs)
        preflight(loaded, config, approver=_nobody)  # providers and keys
        if not approvals:
            try:
                preflight(loaded, config)
            except PlanInvalid as err:
                raise ApiError(422, f"plan {entry.name} has agent steps that may ask a person before a tool call "
                                    f"({plan_problem(err)}): send \"approvals\": true and answer them "
                                    f"(POST {PREFIX}/runs/ID/approvals/APPROVAL_ID), or set approval: auto") from None
        work = self.service.start_run(loaded, jobs=jobs, keep=keep, resume=resume, asks=approvals,
                                      grant=self.settings.plans.policy)
        work.task.add_done_callback(self._ended)
        await until_recorded(work)
        return work

    def _ended(self, task: asyncio.Task[Any]) -> None:
        """A run's error is its own record's (and its events'); a bug goes to the log with its traceback."""
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, GlmtuiError):
            self.settings.log(f"api: internal error in {task.get_name()}: {type(error).__name__}: {error}\n"
                              + "".join(traceback.format_exception(error)).rstrip())

    async def finished_run(self, work: Any) -> dict[str, Any]:
        await asyncio.wait([work.task])
        return self.run_json(work.id)


async def _nobody(request: Any) -> str:  # the approver whose presence preflight checks; never asked
    raise AssertionError("not called")


def open_approvals(work: Any) -> list[dict[str, Any]]:
    if work is None:
        return []
    return [{"approval_id": a.id, "step": a.request.step, "tool": a.request.tool, "subject": a.request.subject,
             "pattern": a.request.pattern} for a in work.approvals.values() if not a.future.done()]


def _work_error(work: Any) -> str | None:
    if work is None or work.error is None:
        return None
    error = work.error
    text = str(error) if isinstance(error, GlmtuiError) else f"internal error: {type(error).__name__}"
    runner = getattr(work, "runner", None)
    return runner.masker.mask(text) if runner is not None else text


async def until_recorded(work: Any) -> None:
    """Wait until the run is recorded (run_started) or has ended before that (then raise why)."""
    recorded = asyncio.get_running_loop().create_future()

    def watch(_seq: int, event: Any) -> None:
        if isinstance(event, RunStarted) and not recorded.done():
            recorded.set_result(None)

    unsubscribe = work.subscribe(watch, after=0)
    try:
        await asyncio.wait([recorded, work.task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        unsubscribe()
    if not recorded.done():
        if work.task.cancelled():
            raise ApiError(503, "the run was cancelled before it started (the server is stopping)")
        error = work.task.exception()
        if error is not None:
            raise error


def _body(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


WAIT = {"type": "boolean", "description": "Answer when the work has ended (with its record) instead of at once."}
APPROVALS = {"type": "boolean", "description": "Someone will answer the approvals of its agents "
                                               "(POST /runs/{id}/approvals/{approval_id}); without it, work whose "
                                               "agent may ask is refused."}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000, "description": "How many, newest first (default 50)."}


# --- health and the document -------------------------------------------------------------------


@endpoint("GET", "/health", public=True)
async def health(api: Api, call: Call) -> Any:
    """Whether the server answers (no token needed; it says nothing else)."""
    return {"status": "ok"}


@endpoint("GET", "/openapi.json")
async def openapi_document(api: Api, call: Call) -> Any:
    """This API as an OpenAPI 3.1 document, made from the table the server routes by."""
    from glmtui.server.openapi import document

    return document(ENDPOINTS, PREFIX, faces=api.settings.face_paths)


# --- plans ---------------------------------------------------------------------------------------


@endpoint("GET", "/plans")
async def list_plans(api: Api, call: Call) -> Any:
    """The plans of the served folders, with their inputs and workflows.

    `runnable` says whether the server's policy (serve.allow) covers the host access a plan
    declares; `problems` lists plan files that are not valid or share a name."""
    plans, problems = api.settings.plans.scan()
    return {"plans": [entry.as_json(api.settings.plans.policy) for entry in plans.values()], "problems": problems,
            "folders": [str(folder) for folder in api.settings.plans.folders]}


@endpoint("GET", "/plans/{name}")
async def show_plan(api: Api, call: Call) -> Any:
    """One plan, by its name."""
    return api.settings.plans.get(call.params["name"]).as_json(api.settings.plans.policy)


# --- runs ----------------------------------------------------------------------------------------


@endpoint("POST", "/runs", status=202, body=_body({
    "plan": {"type": "string", "pattern": NAME, "description": "The plan's name (GET /plans)."},
    "workflow": {"type": "string", "pattern": NAME, "description": "The workflow (default: the plan's default)."},
    "inputs": {"type": "object", "description": "The plan's inputs by name, as JSON values of their types."},
    "wait": WAIT,
    "approvals": APPROVALS,
    "jobs": {"type": "integer", "minimum": 1, "maximum": 256, "description": "Steps at once (default: config jobs)."},
    "keep": {"type": "boolean", "description": "Keep a throw-away environment when a step failed."},
}, ("plan",)))
async def start_run(api: Api, call: Call) -> Any:
    """Start a run of a served plan.

    Answers 202 with the run's id as soon as it is recorded, or, with "wait": true, 200 with the
    run's record once it has ended. The run gets the server's policy as its host access: a plan
    that declares more is refused (422)."""
    body = call.body
    entry = api.settings.plans.get(body["plan"])
    work = await api.start_run(entry, body.get("workflow"), body.get("inputs") or {}, approvals=body.get("approvals", False),
                               jobs=body.get("jobs"), keep=body.get("keep", False))
    if body.get("wait"):
        return json_response(await api.finished_run(work))
    return json_response({"id": work.id, "plan": entry.name, "status": work.status,
                          "events": f"{PREFIX}/runs/{work.id}/events"}, 202,
                         headers={"Location": f"{PREFIX}/runs/{work.id}"})


@endpoint("GET", "/runs", query={"limit": LIMIT})
async def list_runs(api: Api, call: Call) -> Any:
    """Runs, newest first (those of every glmtui process of this user)."""
    records = api.store.runs(call.query.get("limit", 50))
    return {"runs": [record.as_json() | {"held": api.service.get(record.id) is not None} for record in records]}


@endpoint("GET", "/runs/{id}")
async def show_run(api: Api, call: Call) -> Any:
    """One run: its steps with status, exit code, outputs; its open approvals."""
    return api.run_json(call.params["id"])


@endpoint("GET", "/runs/{id}/events", query={"after": {"type": "integer", "minimum": 0,
                                                       "description": "Events after this number (as Last-Event-ID)."}},
          produces="text/event-stream")
async def run_events(api: Api, call: Call) -> Any:
    """The run's events as Server-Sent Events, from its start (or after Last-Event-ID) and then live.

    Each message's data is one JSON object of `glmtui --run --json`, its id the event's number.
    A finished run the server no longer holds is told from its records. 204 when there is
    nothing more to send."""
    after = sse.last_event_id(call.request, call.query.get("after"))
    run_id = call.params["id"]
    work = api.service.get(run_id)
    if work is None:
        record = api.store.run(run_id)
        work = api.service.get(record.id)
        if work is None:
            if record.status == "running":
                raise ApiError(409, f"run {record.id} runs in another process: its events are not here "
                                    f"(GET {PREFIX}/runs/{record.id} shows its steps)")
            return sse.replay(api.store, record, after)
    return sse.stream(work, after)


@endpoint("POST", "/runs/{id}/cancel", status=202, body=_body({"wait": WAIT}))
async def cancel_run(api: Api, call: Call) -> Any:
    """Cancel a run (or an agent's execution) this server holds, as Ctrl-C cancels it: its steps'
    processes are killed, a throw-away environment removed, the run recorded as cancelled."""
    work = api.work_of(call.params["id"])
    if work.finished:
        raise ApiError(409, f"run {work.id} has ended already ({work.status})")
    work.cancel()
    if call.body.get("wait"):
        await asyncio.wait([work.task])
        return json_response(api.run_json(work.id) if _recorded(api, work.id) else {"id": work.id, "status": work.status})
    return {"id": work.id, "status": "cancelling"}


def _recorded(api: Api, run_id: str) -> bool:
    try:
        api.store.run(run_id, with_steps=False)
    except NotFound:
        return False
    return True


@endpoint("POST", "/runs/{id}/resume", status=202, body=_body({"wait": WAIT, "approvals": APPROVALS}))
async def resume_run(api: Api, call: Call) -> Any:
    """Run a finished run's plan again with the same workflow and inputs, skipping the steps that
    succeeded (reusing their outputs): a new run."""
    record = api.store.run(call.params["id"], with_steps=False)
    held = api.service.get(record.id)
    if record.status == "running" or (held is not None and not held.finished):
        raise ApiError(409, f"run {record.id} is still running: resume it once it has ended")
    try:
        api.service.agents.execution(record.id)
    except NotFound:
        pass
    else:
        raise ApiError(409, f"run {record.id} is an agent's execution: run the agent again (POST {PREFIX}/agents/NAME/run)")
    try:
        entry = api.settings.plans.get(record.plan)
    except NotFound:
        raise ApiError(409, f"run {record.id} is of plan {record.plan!r}, which is not in the served folders") from None
    work = await api.start_run(entry, record.workflow, record.inputs, approvals=call.body.get("approvals", False),
                               resume=record.id)
    if call.body.get("wait"):
        return json_response(await api.finished_run(work))
    return {"id": work.id, "resumes": record.id, "plan": entry.name, "status": work.status,
            "events": f"{PREFIX}/runs/{work.id}/events"}


@endpoint("GET", "/runs/{id}/steps/{step}/log", query={"tail": {"type": "integer", "minimum": 1,
                                                               "description": "Only the last N lines."}},
          produces="text/plain")
async def step_log(api: Api, call: Call) -> Any:
    """A step's whole log (stdout and stderr as they came, masked), as text."""
    from glmtui.errors import did_you_mean

    record = api.store.run(call.params["id"])
    step = call.params["step"]
    names = [s.step for s in record.steps]
    if step not in names:
        raise NotFound(f"run {record.id} has no step {step!r}{did_you_mean(step, names)}")
    path = api.store.log_file(record.id, step)
    if not path.exists():
        return Response(b"", media_type="text/plain; charset=utf-8")
    tail = call.query.get("tail")
    if tail is None:
        return FileResponse(path, media_type="text/plain; charset=utf-8")
    import collections

    with path.open("rb") as log:
        lines = collections.deque(log, maxlen=tail)
    return Response(b"".join(lines), media_type="text/plain; charset=utf-8")


@endpoint("POST", "/runs/{id}/approvals/{approval_id}", body=_body({
    "answer": {"enum": ["yes", "no", "always"], "description": "always: yes, and to what the approval's pattern covers."},
}, ("answer",)))
async def answer_approval(api: Api, call: Call) -> Any:
    """Answer what an agent of the run asks before a tool call (its approval_asked event)."""
    work = api.work_of(call.params["id"])
    approval_id = call.params["approval_id"]
    open_ids = [a["approval_id"] for a in open_approvals(work)]
    if approval_id not in open_ids:
        raise ApiError(404, f"run {work.id} has no open approval {approval_id!r}"
                            f" (open: {', '.join(open_ids) if open_ids else 'none'})")
    work.answer(approval_id, call.body["answer"])
    return {"id": work.id, "approval_id": approval_id, "answer": call.body["answer"]}


# --- chats --------------------------------------------------------------------------------------


@endpoint("POST", "/chats", status=202, body=_body({
    "environment": {"type": "string", "pattern": NAME, "description": "A running environment the agent works in."},
    "text": {"type": "string", "minLength": 1, "description": "The message."},
    "conversation_id": {"type": "string", "minLength": 1, "description": "Continue this conversation (default: a new one)."},
    "provider": {"type": "string", "minLength": 1, "description": "Default: the conversation's (a new one: config's)."},
    "model": {"type": "string", "minLength": 1},
    "engine": {"type": "string", "pattern": NAME, "description": "The engine the environment is on (default: serve's own)."},
}, ("environment", "text")))
async def send_chat(api: Api, call: Call) -> Any:
    """Send a message to the agent of a conversation in an environment (a chat turn, as the TUI's chat pane).

    Answers 202 with the turn's id at once. Its events (GET /runs/{id}/events): turn_started
    (with the conversation's id), the agent's tokens and tool calls, approval_asked (answer with
    POST /runs/{id}/approvals/{approval_id}), then turn_finished. Cancel it with POST
    /runs/{id}/cancel; GET /chats/{id} says how it ended. 409 while the conversation replies to
    another message."""
    api.new_work()
    body = call.body
    turn = api.service.send_chat(body["environment"], body["text"], conversation_id=body.get("conversation_id"),
                                 provider=body.get("provider"), model=body.get("model"), engine=body.get("engine"))
    turn.task.add_done_callback(api._ended)
    return {"id": turn.id, "status": turn.status, "events": f"{PREFIX}/runs/{turn.id}/events"}


@endpoint("GET", "/chats/{id}")
async def show_chat(api: Api, call: Call) -> Any:
    """A chat turn this server holds (running, or one of its recent): its status, and the error that ended it."""
    from glmtui.service.chat import ChatTurn

    turn = api.service.get(call.params["id"])
    if not isinstance(turn, ChatTurn):
        raise NotFound(f"no chat turn {call.params['id']!r} in this server (it holds the recent ones only)")
    return {"id": turn.id, "status": turn.status, "environment": turn.environment,
            "conversation_id": turn.conversation_id, "error": _work_error(turn), "approvals": open_approvals(turn)}


@endpoint("POST", "/conversations/{id}/undo")
async def undo_chat(api: Api, call: Call) -> Any:
    """Put the workspace of a conversation back as it was before its last turn that changed files
    (the chat's /undo): {"checkpoint": the checkpoint gone back to, "rescue": the one that undoes
    this}, or {"checkpoint": null} when no turn since its session opened in this server changed
    any. 409 while the conversation replies to a message."""
    done = await api.service.chats.undo(call.params["id"])
    if done is None:
        return {"checkpoint": None, "rescue": None}
    return {"checkpoint": done.checkpoint.id, "rescue": done.rescue.id}


# --- environments --------------------------------------------------------------------------------


@endpoint("GET", "/envs", query={"all": {"type": "boolean", "description": "Also the throw-away environments of runs."}})
async def list_envs(api: Api, call: Call) -> Any:
    """The environments (named containers with a workspace volume)."""
    envs = await api.service.engine.list_environments(include_runs=call.query.get("all", False))
    return {"environments": [env.as_json() for env in envs]}


@endpoint("POST", "/envs", status=201, body=_body({
    "name": {"type": "string", "pattern": NAME},
    "image": {"type": "string", "minLength": 1, "description": "Default: config default_image (present locally, or pulled)."},
    "memory": {"type": "string", "description": "e.g. 512m, 2g (default: config resources.memory)."},
    "cpus": {"type": "number", "exclusiveMinimum": 0, "description": "Default: config resources.cpus."},
    "pids": {"type": "integer", "minimum": 1, "description": "Default: config resources.pids."},
    "network": {"enum": ["bridge", "none", "host"], "description": "host only where serve.allow grants network_host."},
    "environment": {"type": "object", "additionalProperties": {"type": "string"},
                    "propertyNames": {"pattern": VARIABLE_NAME}},
    "user": {"type": "string", "minLength": 1},
    "workdir": {"type": "string", "pattern": "^/", "description": "The workspace folder (default /workspace)."},
}, ("name",)))
async def create_env(api: Api, call: Call) -> Any:
    """Create and start an environment, with the safe defaults (no bind mounts: host paths never
    come from a client)."""
    from glmtui.server.environments import create_environment

    api.new_work()
    body = call.body
    created = await create_environment(api.service.engine, api.service.config, api.settings.plans.policy,
                                       body["name"], **{key: value for key, value in body.items() if key != "name"})
    return json_response(created.as_json(), 201, headers={"Location": f"{PREFIX}/envs/{created.name}"})


@endpoint("GET", "/envs/{name}")
async def show_env(api: Api, call: Call) -> Any:
    """One environment."""
    return (await api.service.engine.get_environment(call.params["name"])).as_json()


@endpoint("DELETE", "/envs/{name}", query={"volumes": {"type": "boolean", "description": "Also its workspace volume."}})
async def remove_env(api: Api, call: Call) -> Any:
    """Remove an environment (running or not)."""
    name = call.params["name"]
    await api.service.engine.get_environment(name)
    volumes = call.query.get("volumes", False)
    await api.service.engine.remove_environment(name, volume=volumes)
    return {"name": name, "removed": True, "volume_removed": volumes}


@endpoint("POST", "/envs/{name}/start", body=_body({}))
async def start_env(api: Api, call: Call) -> Any:
    """Start a stopped environment."""
    api.new_work()
    name = call.params["name"]
    await api.service.engine.start_environment(name)
    return (await api.service.engine.get_environment(name)).as_json()


@endpoint("POST", "/envs/{name}/stop", body=_body({
    "timeout": {"type": "number", "minimum": 0, "description": "Seconds before it is killed (default: config stop_timeout)."},
}))
async def stop_env(api: Api, call: Call) -> Any:
    """Stop a running environment (its workspace stays)."""
    name = call.params["name"]
    timeout = call.body.get("timeout", api.service.config.get("stop_timeout"))
    await api.service.engine.stop_environment(name, timeout=timeout)
    return (await api.service.engine.get_environment(name)).as_json()


@endpoint("POST", "/envs/{name}/exec", body=_body({
    "command": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                "description": "The argv; no shell unless you name one (e.g. [\"sh\", \"-c\", \"...\"])."},
    "environment": {"type": "object", "additionalProperties": {"type": "string"},
                    "propertyNames": {"pattern": VARIABLE_NAME}},
    "workdir": {"type": "string", "pattern": "^/"},
    "user": {"type": "string", "minLength": 1},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds (default 600); then its processes are killed."},
}, ("command",)))
async def exec_in_env(api: Api, call: Call) -> Any:
    """Run a command in the environment (never on the host) and answer its exit status and output.

    Each of stdout and stderr is capped to its first and last 512 KiB, with a note where the
    middle was left out; the command's log has all of it (glmtui logs ENV)."""
    from glmtui.service.commands import run_command

    api.new_work()
    body = call.body
    result = await run_command(api.service, call.params["name"], body["command"], environment=body.get("environment"),
                               workdir=body.get("workdir"), user=body.get("user"), timeout=body.get("timeout", 600.0))
    return result.as_json()


# --- agents and executions -----------------------------------------------------------------------


@endpoint("GET", "/agents")
async def list_agents(api: Api, call: Call) -> Any:
    """The saved agents: schedule, next run, last execution, tokens (as `glmtui agents list --json`)."""
    from glmtui.service.records import agent_json

    records = api.service.agents
    agents = []
    for agent in records.list():
        upcoming = agent.next_runs()
        agents.append(agent_json(agent, records.last(agent.name), records.totals(agent.name),
                                 upcoming[0] if upcoming else None))
    return {"agents": agents}


@endpoint("GET", "/agents/{name}")
async def show_agent(api: Api, call: Call) -> Any:
    """One agent, with its next three fire times and last five executions (as `agents show --json`)."""
    from glmtui.service.records import agent_json

    records = api.service.agents
    agent = records.get(call.params["name"])
    upcoming = agent.next_runs(3)
    recent = records.executions(agent.name, limit=5)
    return {**agent_json(agent, recent[0] if recent else None, records.totals(agent.name),
                         upcoming[0] if upcoming else None),
            "next_runs": upcoming, "executions": [r.as_json() for r in recent]}


@endpoint("POST", "/agents/{name}/run", status=202, body=_body({"wait": WAIT, "approvals": APPROVALS}))
async def run_agent(api: Api, call: Call) -> Any:
    """Run an agent now (an execution with trigger manual).

    Answers 202 with the execution's id (queued until one of serve.max_executions is free), or
    with "wait": true, 200 with its record once it has ended. Its events: GET /runs/{id}/events."""
    api.new_work()
    execution = api.service.run_agent(call.params["name"], "manual", asks=call.body.get("approvals", False))
    if call.body.get("wait"):
        await asyncio.wait([execution.task])
        return json_response(api.service.agents.execution(execution.id).as_json())
    return {"id": execution.id, "agent": execution.agent.name, "status": execution.record.status,
            "events": f"{PREFIX}/runs/{execution.id}/events"}


@endpoint("POST", "/agents/{name}/pause", body=_body({}))
async def pause_agent(api: Api, call: Call) -> Any:
    """Stop running the agent on its schedule (it still runs by hand)."""
    agent = api.service.agents.get(call.params["name"])
    return {"name": agent.name, "status": "paused", "changed": api.service.agents.set_status(agent.name, "paused")}


@endpoint("POST", "/agents/{name}/resume", body=_body({}))
async def resume_agent(api: Api, call: Call) -> Any:
    """Run the agent on its schedule again, from now on (what it missed while paused is not caught up)."""
    agent = api.service.agents.get(call.params["name"])
    return {"name": agent.name, "status": "active", "changed": api.service.agents.set_status(agent.name, "active")}


@endpoint("GET", "/agents/{name}/executions", query={"limit": LIMIT})
async def agent_executions(api: Api, call: Call) -> Any:
    """The agent's executions, newest first."""
    agent = api.service.agents.get(call.params["name"])
    return {"executions": [r.as_json() for r in api.service.agents.executions(agent.name, call.query.get("limit", 50))]}


@endpoint("GET", "/executions", query={"limit": LIMIT})
async def list_executions(api: Api, call: Call) -> Any:
    """Executions of every agent, newest first."""
    return {"executions": [r.as_json() for r in api.service.agents.executions(None, call.query.get("limit", 50))]}


@endpoint("GET", "/executions/{id}")
async def show_execution(api: Api, call: Call) -> Any:
    """One execution: its result, tokens, tool calls and transcript (as `agents executions show --json`)."""
    records = api.service.agents
    record = records.execution(call.params["id"])
    transcript = records.transcript(record)
    return {**record.as_json(), "transcript": transcript.read_text(encoding="utf-8", errors="replace") if transcript else None}


# --- webhooks ------------------------------------------------------------------------------------


@endpoint("POST", "/hooks/{name}", status=202, body=RAW, public=True)
async def hook(api: Api, call: Call) -> Any:
    """A webhook delivery: starts the plan or agent of config serve.hooks.NAME with the JSON body as
    its input `payload`.

    No token: the HMAC-SHA256 signature of the body with the hook's secret is its
    authentication (X-Hub-Signature-256: sha256=HEX, as GitHub sends it, or X-Glmtui-Signature:
    t=UNIX_SECONDS,v1=HEX over T.BODY). A replayed delivery is refused (409). Answers 202 with the
    run's (or the execution's) id."""
    name = call.params["name"]
    settings = api.settings
    target = settings.hooks.get(name)
    if target is None:
        raise ApiError(404, f"no hook {name!r} (config serve.hooks)")
    keys = webhooks.verify(settings.hook_secrets[name], call.request.headers, call.raw, now=time.time(),
                           window=settings.hook_window)
    if api.deliveries.seen(name, keys):
        raise ApiError(409, f"hook {name}: this delivery was accepted before (a replay): refused")
    content_type = call.request.headers.get("content-type", "")
    if "json" not in content_type:
        raise ApiError(400, f"hook {name}: the body must be JSON (content type application/json, not {content_type!r})")
    payload = parse_json(call.raw)
    api.deliveries.remember(name, keys)  # before any await: a second copy of it now is a replay too
    try:
        if target.plan:
            entry = settings.plans.get(target.plan)
            if HOOK_PAYLOAD not in {**entry.plan.inputs, **_workflow_inputs(entry, target.workflow)}:
                raise ApiError(422, f"hook {name}: plan {entry.name} has no input {HOOK_PAYLOAD!r} for the body "
                                    "(declare inputs: {payload: {type: object}})")
            work = await api.start_run(entry, target.workflow, {**target.inputs, HOOK_PAYLOAD: payload},
                                       approvals=False)
            started = {"id": work.id, "hook": name, "plan": entry.name}
        else:
            api.new_work()
            execution = api.service.run_agent(target.agent, "hook", variables={HOOK_AGENT_PAYLOAD: dumps(payload)})
            started = {"id": execution.id, "hook": name, "agent": target.agent}
    except BaseException:
        api.deliveries.forget(name, keys)
        raise
    settings.log(f"hook {name}: delivery accepted: {target.target}, {'run' if target.plan else 'execution'} {started['id']}")
    return {**started, "events": f"{PREFIX}/runs/{started['id']}/events"}


def _workflow_inputs(entry: Any, workflow: str | None) -> dict[str, Any]:
    plan = entry.plan
    chosen = plan.workflows.get(workflow or plan.default_workflow or "")
    return chosen.inputs if chosen is not None else {}
