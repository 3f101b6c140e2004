"""A run's events as Server-Sent Events: the JSON objects of `glmtui --run --json`, one per
SSE message (no `event:` field, so a browser's EventSource `onmessage` gets them all), each with
`id:` its sequence number in the run.

A run this server holds (running, or one of its last 100 finished) streams from its first
event, then live, until it ends; a client that comes back with `Last-Event-ID: N` (or `?after=N`)
gets the events after N and nothing twice. The run keeps its last 20,000 to 40,000 events in
memory (work.HISTORY); a client further behind than that gets a `gap` message saying which were
dropped (the step logs have their output). A finished run the server does not hold (older, or
run by another process) is told from its records: `run_started`, then each step's
`step_started`, its whole log as `output` events (stream `log`: stdout and stderr as the log
has them), `step_finished`, and `run_finished`, numbered the same way every time. A client
that asks for more of a run that has ended and has nothing more to give is answered 204, which
tells an EventSource not to come back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from glmtui.events import Output
from glmtui.server.http import ApiError, dumps

REPLAY_LINES = 1000  # lines of a step's log per replayed output event


def last_event_id(request: Any, after: int | None) -> int:
    """Where the client is: `Last-Event-ID` (an EventSource coming back) or `?after=N`."""
    header = request.headers.get("last-event-id")
    if header is not None and header.strip():
        if not header.strip().isdigit():
            raise ApiError(400, f"Last-Event-ID {header[:40]!r} is not an event number")
        return int(header)
    return after or 0


def event_text(event: Any) -> str:
    return event.json_line() if isinstance(event, Output) else json.dumps(event.to_json(), ensure_ascii=False,
                                                                          default=str)


def stream(work: Any, after: int, ping: float = 15.0) -> Response:
    """The events of a run held by the server, after `after`, then live until it ends."""
    if work.finished and after >= work.last_seq:
        return Response(status_code=204)

    async def events() -> AsyncIterator[ServerSentEvent]:
        expected = after + 1
        async for seq, event in work.follow(after):
            if seq > expected:
                yield ServerSentEvent(data=dumps({"event": "gap", "first": expected, "last": seq - 1,
                                                  "reason": "the server keeps a run's latest events only; "
                                                            "the step logs have all of the output"}))
            yield ServerSentEvent(data=event_text(event), id=str(seq))
            expected = seq + 1

    return EventSourceResponse(events(), ping=ping)


def replay(store: Any, record: Any, after: int) -> Response:
    """The events of a finished run told from its records (see the module's doc)."""
    events = list(_recorded_events(store, record))
    if after >= len(events):
        return Response(status_code=204)

    async def send() -> AsyncIterator[ServerSentEvent]:
        for seq, data in enumerate(events[after:], start=after + 1):
            yield ServerSentEvent(data=dumps(data), id=str(seq))

    return EventSourceResponse(send())


def _recorded_events(store: Any, record: Any) -> Iterator[dict[str, Any]]:
    yield {"event": "run_started", "ts": record.started, "run_id": record.id, "plan": record.plan,
           "workflow": record.workflow, "environment": record.environment, "throwaway": record.throwaway}
    for step in record.steps:
        if step.status not in ("skipped",):
            yield {"event": "step_started", "ts": step.started or record.started, "step": step.step,
                   "attempt": step.attempt}
        log = store.log_file(record.id, step.step)
        if log.exists():
            yield from _log_events(log, step)
        yield {"event": "step_finished", "ts": step.finished or step.started or record.started, "step": step.step,
               "status": step.status, "exit_code": step.exit_code,
               "duration": None if step.duration is None else round(step.duration, 3), "outputs": step.outputs,
               "reason": step.reason, "attempt": step.attempt, "allowed_failure": False}
    duration = None if record.finished is None else round(record.finished - record.started, 3)
    yield {"event": "run_finished", "ts": record.finished or record.started, "run_id": record.id,
           "status": record.status, "duration": duration, "kept_environment": None}


def _log_events(path: Any, step: Any) -> Iterator[dict[str, Any]]:
    lines: list[str] = []
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as log:
        for line in log:
            lines.append(line[:-1] if line.endswith("\n") else line)
            if len(lines) == REPLAY_LINES:
                yield {"event": "output", "ts": step.finished or step.started, "step": step.step, "stream": "log",
                       "lines": lines}
                lines = []
    if lines:
        yield {"event": "output", "ts": step.finished or step.started, "step": step.step, "stream": "log",
               "lines": lines}
