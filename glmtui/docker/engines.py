"""Every engine the user has, by name, each connected on first use and shared after.

`Engines` is what needs more than one engine uses: `env list` across engines, commands that find
an environment wherever it is, a plan run on the engine its plan names, and the event streams of
every engine at once (each reconnecting on its own, for a view of all of them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from glmtui.docker.endpoints import Endpoint, Endpoints, from_config
from glmtui.docker.interface import ContainerEngine
from glmtui.docker.types import EngineEvent, Environment
from glmtui.errors import BadInput, EngineUnreachable, GlmtuiError, NotFound

OTHERS_SECONDS = 2.0  # found on one engine: how long the others still get to say they have it too
RETRY_SECONDS = (0.5, 5.0)  # an engine that cannot be reached is tried again, first and at most after


class Engines:
    def __init__(self, endpoints: Endpoints, *, connected: Iterable[ContainerEngine] = ()) -> None:
        """`connected`: engines connected already (by name), used rather than connected again; the
        caller closes them. Those connected here are closed by `close`."""
        self.endpoints = endpoints
        self._engines: dict[str, ContainerEngine] = {engine.name: engine for engine in connected}
        self._owned: list[ContainerEngine] = []
        self._connecting: dict[str, asyncio.Future[ContainerEngine]] = {}

    @classmethod
    def from_config(cls, config: Any, *, connected: Iterable[ContainerEngine] = ()) -> Engines:
        return cls(from_config(config), connected=connected)

    @property
    def current(self) -> str:
        """The engine used when none is named."""
        return self.endpoints.current

    def endpoint(self, name: str | None = None) -> Endpoint:
        return self.endpoints[name]

    async def get(self, name: str | None = None) -> ContainerEngine:
        """The engine `name` (None: the current one), connected once, whoever asks at the same time."""
        endpoint = self.endpoints[name]
        if endpoint.name in self._engines:
            return self._engines[endpoint.name]
        connecting = self._connecting.get(endpoint.name)
        if connecting is None:
            from glmtui.docker.engine import Engine

            connecting = self._connecting[endpoint.name] = asyncio.ensure_future(Engine.connect(endpoint))
            connecting.add_done_callback(lambda _: self._connecting.pop(endpoint.name, None))
        engine = await asyncio.shield(connecting)
        if endpoint.name not in self._engines:
            self._engines[endpoint.name] = engine
            self._owned.append(engine)
        return self._engines[endpoint.name]

    async def close(self) -> None:
        for connecting in list(self._connecting.values()):
            connecting.cancel()
        owned, self._owned = self._owned, []
        for engine in owned:
            await engine.close()

    async def __aenter__(self) -> Engines:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- across engines ----------------------------------------------------------------------

    async def reach(self, names: Iterable[str] | None = None) -> tuple[list[ContainerEngine], dict[str, GlmtuiError]]:
        """The engines that answer (every engine, once each, when no names are given), and why
        each of the others does not."""
        wanted = [self.endpoints[name] for name in names] if names is not None else self.endpoints.distinct()
        results = await asyncio.gather(*(self.get(endpoint.name) for endpoint in wanted), return_exceptions=True)
        reached, failed = [], {}
        for endpoint, result in zip(wanted, results):
            if isinstance(result, GlmtuiError):
                failed[endpoint.name] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                reached.append(result)
        return reached, failed

    async def list_environments(self, *, include_runs: bool = True, engine: str | None = None,
                                ) -> tuple[list[Environment], dict[str, GlmtuiError]]:
        """The environments of every engine (or of `engine`), by name then engine, and the
        engines that could not be asked, with why. When none could, EngineUnreachable."""
        names = [engine] if engine is not None else None
        reached, failed = await self.reach(names)
        if not reached:
            raise _none_answered(failed)
        listed = await asyncio.gather(*(e.list_environments(include_runs=include_runs) for e in reached),
                                      return_exceptions=True)
        found: list[Environment] = []
        for each, result in zip(reached, listed):
            if isinstance(result, EngineUnreachable):
                failed[each.name] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                found += result
        if all(each.name in failed for each in reached):
            raise _none_answered(failed)
        return sorted(_once_each(found), key=lambda env: (env.name, env.engine)), failed

    async def find_environment(self, name: str, engine: str | None = None) -> tuple[ContainerEngine, Environment]:
        """The engine environment `name` is on, and the environment: on `engine` when given, else
        wherever it is. On two engines, BadInput asks which; on none that answers while an
        engine does not, EngineUnreachable."""
        if engine is not None or len(self.endpoints.distinct()) == 1:
            on = await self.get(engine)
            return on, await on.get_environment(name)
        candidates = self.endpoints.distinct()
        tasks = {asyncio.ensure_future(self._look(endpoint.name, name)): endpoint.name for endpoint in candidates}
        found: list[tuple[ContainerEngine, Environment]] = []
        failed: dict[str, GlmtuiError] = {}
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, timeout=OTHERS_SECONDS if found else None,
                                                   return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    break  # found already; the engines still silent count as not having it
                for task in done:
                    error = task.exception()
                    if isinstance(error, NotFound):
                        continue
                    if isinstance(error, GlmtuiError):
                        failed[tasks[task]] = error
                    elif error is not None:
                        raise error
                    else:
                        found.append(task.result())
        finally:
            for task in pending:
                task.cancel()
        order = [endpoint.name for endpoint in candidates]
        found.sort(key=lambda pair: order.index(pair[0].name))
        if len({env.id for _, env in found}) > 1:
            where = " and ".join(sorted(env.engine for _, env in found))
            raise BadInput(f"environment {name!r} is on engines {where}",
                           hint=f"say which: --engine {sorted(env.engine for _, env in found)[0]}")
        if found:  # one container, maybe reached through two names of one engine: the first name
            return found[0]
        if failed:
            raise EngineUnreachable(f"no environment named {name!r} on the engines that answer; "
                                    f"{describe_failures(failed)}",
                                    hint="`glmtui engines check` says what to do")
        raise NotFound(f"no environment named {name!r}", hint="`glmtui env list` shows them")

    async def _look(self, engine: str, name: str) -> tuple[ContainerEngine, Environment]:
        on = await self.get(engine)
        return on, await on.get_environment(name)

    async def events(self) -> AsyncIterator[EngineEvent]:
        """The events of every engine, each marked with its engine's name. Each engine is
        followed on its own: one that cannot be reached says `disconnected` (an engine event of
        its own) and is tried again until it answers (`reconnected`), not holding up the others."""
        queue: asyncio.Queue[EngineEvent | BaseException] = asyncio.Queue()

        async def follow(endpoint: Endpoint) -> None:
            delay, away = RETRY_SECONDS[0], False
            while True:
                try:
                    engine = await self.get(endpoint.name)
                    break
                except GlmtuiError:
                    if not away:
                        away = True
                        queue.put_nowait(EngineEvent("engine", "disconnected", time=time.time(), engine=endpoint.name))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_SECONDS[1])
            if away:
                queue.put_nowait(EngineEvent("engine", "reconnected", time=time.time(), engine=endpoint.name))
            async for event in engine.events():
                queue.put_nowait(event)

        def ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                queue.put_nowait(task.exception())  # type: ignore[arg-type]

        tasks = [asyncio.ensure_future(follow(endpoint)) for endpoint in self.endpoints.distinct()]
        for task in tasks:
            task.add_done_callback(ended)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()


def _once_each(environments: list[Environment]) -> list[Environment]:
    """Each container once: two names of one engine (its socket, and ssh to its machine) that
    glmtui cannot tell apart by address list the same containers, which have the same id."""
    seen: set[str] = set()
    kept = []
    for env in environments:
        if env.id not in seen:
            seen.add(env.id)
            kept.append(env)
    return kept


def _none_answered(failed: dict[str, GlmtuiError]) -> GlmtuiError:
    if len(failed) == 1:
        return next(iter(failed.values()))
    return EngineUnreachable(f"no engine answered: {describe_failures(failed)}",
                             hint="`glmtui engines check` says what to do")


def describe_failures(failed: dict[str, GlmtuiError]) -> str:
    """The engines that did not answer, and why: `engine gpu did not answer: WHY`."""
    if len(failed) == 1:
        name, error = next(iter(failed.items()))
        return f"engine {name} did not answer: {_reason(error)}"
    reasons = "; ".join(f"{name}: {_reason(error)}" for name, error in sorted(failed.items()))
    return f"engines {', '.join(sorted(failed))} did not answer ({reasons})"


def _reason(error: GlmtuiError) -> str:
    return getattr(error, "reason", None) or error.message
