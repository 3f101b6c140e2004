"""`glmtui serve` itself: the process that holds the scheduler lock, runs the schedules of saved
agents and serves HTTP (the API at /api/v1, MCP at /mcp, the dashboard at /) until Ctrl-C or
SIGTERM. The lock, the agents log and the user unit are glmtui.service.serve's.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from typing import IO, Any

from glmtui.errors import EXIT_INTERRUPTED
from glmtui.service.serve import AgentsLog, SchedulerLock
from glmtui.units import counted

def faces(service: Any, plans: Any, bind: Any, log: Any) -> list[Any]:
    """The faces served beside the HTTP API, behind its token (glmtui.server.app.Face): MCP at
    /mcp (on the API's plans and policy, `plans`: glmtui.server.plans.PlanCatalog), and the web
    dashboard at / (last: it answers every path no other face has)."""
    from glmtui.server.dashboard import dashboard_face
    from glmtui.server.mcp import McpFace

    return [McpFace(service, plans).face(), dashboard_face(log.line, bind.tls_cert)]


async def serve(config: Any, bind: Any = None, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Hold the lock, run the scheduler and serve HTTP until Ctrl-C or SIGTERM; then refuse new
    work, cancel the running work (whose followers see it end), and stop the server."""
    from glmtui.docker.engine import Engine
    from glmtui.server.listen import Bind
    from glmtui.server.plans import PlanCatalog
    from glmtui.server.web import HttpFace
    from glmtui.service.scheduler import Scheduler
    from glmtui.service.service import Service
    from glmtui.store import Store

    out, err = out or sys.stdout, err or sys.stderr
    bind = bind or Bind(config.get("serve.host"), config.get("serve.port"))
    bind.check()
    lock = SchedulerLock()
    lock.acquire("serve")
    store = Store()
    log = AgentsLog(echo=out)
    engine = None
    try:
        engine = await Engine.connect(config.get("docker_host"))
        service = Service(engine, store, config, announce=log.line)
        scheduler = Scheduler(service)
        plans = PlanCatalog.of(config, log.line)
        http = HttpFace(service, config, bind, log, plans, faces(service, plans, bind, log))
        warning = bind.warning()
        if warning:
            print(f"glmtui: {warning}", file=err, flush=True)
            log.line(warning)
        log.line(f"glmtui serve (pid {os.getpid()}): {'; '.join([_agents_line(service), *http.describe()])}; "
                 f"log {log.path}; Ctrl-C or `kill {os.getpid()}` stops it")
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if stopping.is_set():
                log.line("still stopping: cancelling the running work and cleaning up")
                return
            stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        schedules = asyncio.create_task(scheduler.run(), name="scheduler")
        serving = asyncio.create_task(http.run(), name="http")
        stopper = asyncio.create_task(stopping.wait())
        try:
            done, _ = await asyncio.wait([stopper, schedules, serving], return_when=asyncio.FIRST_COMPLETED)
            http.refuse_new_work()
            schedules.cancel()
            await asyncio.gather(schedules, return_exceptions=True)
            running = service.running()
            if running:
                kinds = collections.Counter(work.kind for work in running)
                log.line(f"stopping: cancelling {' and '.join(counted(n, f'running {kind}') for kind, n in sorted(kinds.items()))}")
            await service.shutdown()
            http.stop()
            await asyncio.gather(serving, return_exceptions=True)
            failed = [task for task in done if task is not stopper and not task.cancelled() and task.exception()]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        finally:
            stopper.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.line("glmtui serve stopped")
        return EXIT_INTERRUPTED
    finally:
        if engine is not None:
            await engine.close()
        store.close()
        log.close()
        lock.release()


def _agents_line(service: Any) -> str:
    agents = service.agents.list()
    scheduled = [a for a in agents if a.definition.schedule_text]
    active = sum(1 for a in scheduled if a.status == "active")
    paused = len(scheduled) - active
    return (f"runs the schedules of saved agents ({active} active{f', {paused} paused' if paused else ''}; "
            f"at most {service.slots.limit} executions at once)")
