"""Runs a plan's workflow as a graph: each step starts as soon as what it needs is done.

The runner reports only through events to the sink it is given, and records every
step in the store; it knows no step kind (see `steps/`) and no user interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from glmtui.config import Config
from glmtui.docker.interface import ContainerEngine
from glmtui.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BadInput, GlmtuiError, NotFound
from glmtui.events import Progress, RunFinished, RunStarted, Sink, StepFinished, StepStarted
from glmtui.masking import Masker
from glmtui.plan import environment as run_env
from glmtui.plan.envlock import EnvironmentLock
from glmtui.plan.expressions import ExpressionError, evaluate_condition, parse, parse_condition
from glmtui.plan.model import LoadedPlan, Step, Workflow
from glmtui.plan.permissions import HostAccess, Permissions, grant_covers
from glmtui.plan.shell import render_script
from glmtui.plan.steps import KINDS
from glmtui.plan.steps.agent import preflight
from glmtui.plan.steps.base import OutputCapture, StepContext, StepOutcome, add_secret, render
from glmtui.steplog import StepLog, configured_cap
from glmtui.store import StepRecord, Store

T = TypeVar("T")
SELF_TIMED_KINDS = {"run"}  # kinds that enforce the timeout inside the container themselves
UNSLOTTED_KINDS = {"workflow"}  # its own steps take the --jobs slots
PRE_RUN_ROOTS = frozenset({"inputs", "secrets", "env", "plan"})  # what expressions know before any step


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass
class RunResult:
    """How a run ended."""

    run_id: str
    status: str  # success | failure | cancelled
    kept_environment: str | None = None

    @property
    def exit_code(self) -> int:
        return {"success": EXIT_OK, "cancelled": EXIT_INTERRUPTED}.get(self.status, EXIT_FAILED)


class Runner:
    def __init__(
        self,
        engine: ContainerEngine,
        loaded: LoadedPlan,
        *,
        sink: Sink,
        store: Store,
        config: Config,
        jobs: int | None = None,
        keep: bool = False,
        resume: str | None = None,
        auto_approve: bool = False,
        approver: Any = None,
        run_id: str | None = None,
        grant: Permissions | None = None,
    ) -> None:
        """`auto_approve` (--yes) says yes to every tool call an agent step asks about;
        `approver` (an async function of a glmtui.agent.approval.ApprovalRequest answering
        yes, no or always) asks a person. With neither, a plan whose agent may ask is refused.

        `grant` is the host access whoever runs the plan agreed to: what the plan declares
        (`--allow`, the TUI's dialog) or a server's own policy. A run starts only when it
        covers everything the plan declares; then the run reaches on the host no more than
        the plan's folder and what the plan declares (None: nothing beyond the folder)."""
        self.engine = engine
        self.loaded = loaded
        self.sink = sink
        self.store = store
        self.config = config
        self.keep = keep
        self.auto_approve = auto_approve
        self.approver = approver
        self.run_id = run_id or new_run_id()
        self.grant = grant
        self.access = HostAccess.of(loaded.plan.dir, loaded.plan.permissions, engine.host)
        self.masker = Masker(loaded.secrets.values())
        self._slots = asyncio.Semaphore(jobs or config.get("jobs"))
        self._cancelled = False
        self._failed = False
        self._reused = self._resumable(resume) if resume else {}
        self._resumed_from = resume
        self._leftovers: set[str] = set()  # shared with every step: the $GLMTUI_OUTPUT files to remove
        self._kept_running = False  # a keep_running step ran: its processes end with the run
        self.env: run_env.RunEnvironment | None = None

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> RunResult:
        plan, workflow = self.loaded.plan, self.loaded.workflow
        grant_covers(self.grant, plan.permissions, plan.name)
        for key in preflight(self.loaded, self.config, auto_approve=self.auto_approve, approver=self.approver):
            add_secret(self.masker, key)  # API keys are hidden like secrets, everywhere
        resolved = self._resolve_before_start(workflow)
        throwaway = plan.env.name is None
        env_name = plan.env.name or run_env.throwaway_name(self.run_id)
        self.store.start_run(
            self.run_id, plan=plan.name, plan_file=str(plan.file.resolve()), workflow=workflow.name,
            inputs=self.masker.mask_value(self.loaded.inputs), environment=env_name, throwaway=throwaway,
            engine=self.engine.name,
        )
        started = time.monotonic()
        self.sink(RunStarted(self.run_id, plan.name, workflow.name, env_name, throwaway))
        status, error = "failure", None
        turn = None if throwaway else EnvironmentLock(self.engine.host, env_name)
        try:
            if turn is not None:  # runs that share a named environment take turns
                await turn.acquire(self.run_id, shared=plan.env.shared, on_wait=self._progress)
            self.env = await self._prepare(resolved)
            await self._run_workflow(workflow, self.loaded.inputs, prefix="")
            status = "failure" if self._failed else "success"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except GlmtuiError as err:
            error = err
            self.sink(Progress(f"error: {self.masker.mask(str(err))}"))
        finally:
            kept = await _to_the_end(self._finish(status))
            if turn is not None:
                turn.release()
            self.store.finish_run(self.run_id, status)
            self.sink(RunFinished(self.run_id, status, round(time.monotonic() - started, 3), kept))
        if error is not None:
            raise error
        return RunResult(self.run_id, status, kept)

    def _resolve_before_start(self, workflow: Workflow) -> run_env.RunEnvironment:
        """Evaluate what needs no step's result (the env, the workdirs that use only inputs,
        secrets, env and plan) before the run is recorded: a mistake there is BadInput, with
        no run record behind it."""
        values = self._values(self.loaded.inputs, {})
        try:
            run_env.check_engine(self.loaded, self.engine)
            resolved = run_env.resolve(self.loaded, self.run_id, values)
            for step in workflow.steps:
                if step.workdir and _known_before_start(step.workdir):
                    run_env.absolute_workdir(f"{step.location}: step {step.id!r}: workdir", step.workdir, values)
                if step.kind == "run" and step.condition is None and _known_before_start(step.spec):
                    _check_script(step, values)
        except BadInput as err:
            raise BadInput(self.masker.mask(str(err))) from None
        return resolved

    def _progress(self, message: str) -> None:
        self.sink(Progress(self.masker.mask(message)))

    async def _prepare(self, resolved: run_env.RunEnvironment) -> run_env.RunEnvironment:
        """The run's environment, ready; runs of plans that share it take turns at making it so."""
        env = self.loaded.plan.env
        making = EnvironmentLock(self.engine.host, env.name, "make") if env.shared and env.name else None
        if making is not None:
            await making.acquire(self.run_id, shared=False, on_wait=self._progress)
        try:
            return await run_env.prepare(
                self.engine, self.loaded, self.config, self.run_id, resolved, self._progress, self.access,
            )
        finally:
            if making is not None:
                making.release()

    async def _finish(self, status: str) -> str | None:
        """Remove a throw-away environment (kept by --keep after a failure); tidy a named one."""
        if self.env is None:
            if self.loaded.plan.env.name is None:  # creation may have half-happened
                await self._remove_quietly(run_env.throwaway_name(self.run_id))
            return None
        if not self.env.throwaway:
            if self._leftovers:
                try:
                    await self.engine.spawn(self.env.name, ["rm", "-rf", "--", *sorted(self._leftovers)], user=self.env.user)
                except GlmtuiError:
                    pass
            await self._end_kept_running()
            return None
        if self.keep and status == "failure":
            await self._end_kept_running()
            return self.env.name
        await self._remove_quietly(self.env.name)
        return None

    async def _end_kept_running(self) -> None:
        """What keep_running steps left in the background ends with the run (their processes
        carry GLMTUI_RUN_ID; every other step's have ended with their step)."""
        if self._kept_running:
            assert self.env is not None
            await self.engine.end_processes(self.env.name, "GLMTUI_RUN_ID", self.run_id, user=self.env.user)

    async def _remove_quietly(self, name: str) -> None:
        """Remove a throw-away environment; an engine that is restarting gets a few seconds."""
        problem: GlmtuiError | None = None
        for delay in (0.5, 1, 2, 3, 4, 5):
            try:
                await self.engine.remove_environment(name, volume=True)
                return
            except NotFound:
                return
            except GlmtuiError as err:  # unreachable, or answering "shutting down": try again
                problem = err
                await asyncio.sleep(delay)
        self.sink(Progress(f"could not remove {name} ({problem}); `glmtui clean` removes it later"))

    # -- workflows and steps ----------------------------------------------------------------

    async def _run_workflow(self, workflow: Workflow, inputs: Mapping[str, Any], prefix: str) -> dict[str, dict]:
        """Run every step of `workflow`; returns each step's result as expressions see it."""
        results: dict[str, dict[str, Any]] = {}
        done = {step.id: asyncio.Event() for step in workflow.steps}

        async def one(step: Step) -> None:
            try:
                for need in step.needs:
                    await done[need].wait()
                await self._step(step, inputs, results, prefix)
            finally:
                done[step.id].set()

        tasks = [asyncio.create_task(one(step)) for step in workflow.steps]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            self._cancelled = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for step in workflow.steps:
                if step.id not in results:
                    self._finish_step(prefix + step.id, StepRecord(prefix + step.id, "cancelled"), allowed=False)
            raise
        return results

    async def _step(self, step: Step, inputs: Mapping[str, Any], results: dict[str, dict], prefix: str) -> None:
        full_id = prefix + step.id
        if not prefix and step.id in self._reused:
            results[step.id] = self._reuse(step)
            return
        values = self._values(inputs, results)
        skip = self._skip_reason(step, values, results)
        if skip:
            results[step.id] = _result("skipped", reason=skip)
            self._finish_step(full_id, StepRecord(full_id, "skipped", reason=skip), allowed=False)
            return
        try:
            if step.with_:
                values["with"] = {k: render(v, values) for k, v in step.with_.items()}
        except ExpressionError as err:
            results[step.id] = _result("failure")
            self._fail(step, full_id, StepRecord(full_id, "failure", reason=str(err)))
            return
        record, outcome, capture = None, None, None
        for attempt in range(1, step.retry.attempts + 2):
            if attempt > 1:
                await asyncio.sleep(step.retry.delay_before(attempt - 1))
            # A step starts when it gets one of the --jobs slots; its own steps take a workflow's.
            async with self._slots if step.kind not in UNSLOTTED_KINDS else contextlib.nullcontext():
                record = StepRecord(full_id, "running", attempt=attempt, started=time.time())
                self.store.save_step(self.run_id, record)
                self.sink(StepStarted(full_id, attempt))
                outcome, capture = await self._attempt(step, full_id, values, attempt)
            if outcome.status == "success":
                break
        assert record and outcome and capture
        record.finished = time.time()
        record.status, record.exit_code, record.reason = outcome.status, outcome.exit_code, outcome.reason
        record.usage = outcome.usage
        record.turns = outcome.extra.get("turns")
        record.stdout_tail = self.masker.mask(capture.tail("stdout").decode("utf-8", "replace")).encode()
        record.stderr_tail = self.masker.mask(capture.tail("stderr").decode("utf-8", "replace")).encode()
        result = _result(
            outcome.status,
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            stdout=capture.tail("stdout").decode("utf-8", "replace"),
            stderr=capture.tail("stderr").decode("utf-8", "replace"),
            outputs=outcome.outputs,
            duration=round(record.finished - record.started, 3),
            usage=outcome.usage,
            **outcome.extra,
        )
        try:
            result["outputs"] = {**outcome.outputs, **self._outputs(step, values, result, outcome)}
        except ExpressionError as err:
            result["status"] = record.status = "failure"
            record.reason = f"outputs: {err}"
        record.outputs = self.masker.mask_value(result["outputs"])
        result["allowed_failure"] = record.status == "failure" and step.continue_on_error
        results[step.id] = result
        if record.status == "failure":
            self._fail(step, full_id, record)
        else:
            self._finish_step(full_id, record, allowed=False)

    async def _attempt(
        self, step: Step, full_id: str, values: dict[str, Any], attempt: int
    ) -> tuple[StepOutcome, OutputCapture]:
        assert self.env is not None
        if step.keep_running:
            self._kept_running = True
        log_path = self.store.log_file(self.run_id, full_id)
        with StepLog.open(log_path, configured_cap(self.config)) as log:
            if attempt > 1:
                log.write(f"--- attempt {attempt} ---\n".encode())
            capture = OutputCapture(full_id, self.sink, self.masker, log)
            try:
                env_vars = {**self.env.variables, **{k: run_env.render_value(v, values) for k, v in step.environment.items()}}
                ctx = StepContext(
                    engine=self.engine, loaded=self.loaded, step=step, environment=self.env.name,
                    workdir=run_env.absolute_workdir("workdir", step.workdir, values) if step.workdir else self.env.workdir,
                    user=self.env.user, env_vars=env_vars,
                    values=values, output=capture, run_id=self.run_id, attempt=attempt, timeout=step.timeout,
                    sink=self.sink, host_path=self.access.path, host_network=self.access.granted.network_host,
                    run_workflow=self._workflow_step,
                    auto_approve=self.auto_approve, leftovers=self._leftovers, config=self.config,
                    masker=self.masker, approver=self.approver, egress=self.env.egress,
                )
                kind = KINDS[step.kind]
                if step.timeout and step.kind not in SELF_TIMED_KINDS:
                    outcome = await asyncio.wait_for(kind(ctx), step.timeout)
                else:
                    outcome = await kind(ctx)
            except asyncio.TimeoutError:
                outcome = StepOutcome("failure", None, "timeout")
            except GlmtuiError as err:
                outcome = StepOutcome("failure", None, str(err))
            except Exception as err:  # noqa: BLE001 - a bug in a kind fails its step, not the run's records
                log.write(traceback.format_exc().encode())
                outcome = StepOutcome("failure", None, f"internal error: {type(err).__name__}: {err} (see the step log)")
            finally:
                capture.close()
        return outcome, capture

    async def _workflow_step(self, ctx: StepContext) -> StepOutcome:
        workflow = self.loaded.plan.workflows[ctx.step.spec]
        given = dict(ctx.values.get("with") or {})
        plan_inputs = {name: self.loaded.inputs.get(name) for name in self.loaded.plan.inputs}
        inputs = {**plan_inputs, **{name: given.get(name, spec.default) for name, spec in workflow.inputs.items()}}
        failed_before = self._failed
        self._failed = False
        results = await self._run_workflow(workflow, inputs, prefix=f"{ctx.step.id}.")
        failed, self._failed = self._failed, failed_before
        outputs = {step_id: result.get("outputs", {}) for step_id, result in results.items()}
        return StepOutcome("failure" if failed else "success", None, "a step of the workflow failed" if failed else None, outputs)

    # -- decisions --------------------------------------------------------------------------

    def _skip_reason(self, step: Step, values: dict[str, Any], results: dict[str, dict]) -> str | None:
        def ok(need: str) -> bool:
            result = results.get(need, {})
            return result.get("status") == "success" or result.get("allowed_failure", False)

        def status(name: str) -> bool:
            if name == "always":
                return True
            if name == "cancelled":
                return self._cancelled
            if name == "failure":
                return any(results.get(n, {}).get("status") == "failure" for n in step.needs)
            return all(ok(n) for n in step.needs)

        template = parse_condition(step.condition) if step.condition else None
        if not (template and template.status_functions()) and not status("success"):
            bad = [n for n in step.needs if not ok(n)]
            return f"{', '.join(bad)} did not succeed"
        if template is None:
            return None
        try:
            if not evaluate_condition(template, values, status=status):
                return f"condition is false: {step.condition}"
        except ExpressionError as err:
            return f"condition failed: {err}"
        return None

    def _outputs(self, step: Step, values: dict[str, Any], result: dict, outcome: StepOutcome) -> dict[str, Any]:
        if not step.outputs:
            return {}
        scope = {**values, "step": result, "response": outcome.response or {}}
        return {name: render(expression, scope) for name, expression in step.outputs.items()}

    def _values(self, inputs: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
        plan = self.loaded.plan
        return {
            "inputs": dict(inputs),
            "secrets": self.loaded.secrets,
            "steps": results,
            "env": self.loaded.env,
            "plan": {"name": plan.name, "dir": str(plan.dir), "run_id": self.run_id},
        }

    def _fail(self, step: Step, full_id: str, record: StepRecord) -> None:
        if not step.continue_on_error:
            self._failed = True
        self._finish_step(full_id, record, allowed=step.continue_on_error)

    def _finish_step(self, full_id: str, record: StepRecord, *, allowed: bool) -> None:
        record.reason = self.masker.mask(record.reason) if record.reason else None
        self.store.save_step(self.run_id, record)
        duration = round(record.duration or 0.0, 3)
        self.sink(
            StepFinished(
                full_id, record.status, record.exit_code, duration, record.outputs, record.reason,
                record.attempt, allowed,
            )
        )

    # -- resume -----------------------------------------------------------------------------

    def _resumable(self, run_id: str) -> dict[str, StepRecord]:
        previous = self.store.run(run_id)
        if previous.plan != self.loaded.plan.name:
            raise BadInput(f"run {previous.id} is of plan {previous.plan!r}, not {self.loaded.plan.name!r}")
        self._resumed_from = previous.id
        return {s.step: s for s in previous.steps if s.status == "success" and "." not in s.step}

    def _reuse(self, step: Step) -> dict[str, Any]:
        old = self._reused[step.id]
        record = StepRecord(
            step.id, "success", old.attempt, time.time(), time.time(), old.exit_code,
            f"reused from run {self._resumed_from}", old.outputs, old.stdout_tail, old.stderr_tail, old.usage,
            old.turns,
        )
        self._finish_step(step.id, record, allowed=False)
        return _result(
            "success", exit_code=old.exit_code, stdout=old.stdout_tail.decode("utf-8", "replace"),
            stderr=old.stderr_tail.decode("utf-8", "replace"), outputs=old.outputs, duration=0.0, usage=old.usage,
            **({"turns": old.turns} if old.turns is not None else {}),
        )


async def _to_the_end(work: Awaitable[T]) -> T:
    """Clean-up that a second Ctrl-C (another cancel) must not cut short."""
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()


def _check_script(step: Step, values: Mapping[str, Any]) -> None:
    """A `run` step that will run (no `if:`) and whose script uses only what is known now: a
    value it refuses (code where the shell reads a number or a name) stops the run before anything
    runs, rather than when the step comes."""
    try:
        render_script(parse(step.spec), values)
    except ExpressionError as err:
        raise BadInput(f"{step.location}: step {step.id!r}: {err}") from None


def _known_before_start(text: str) -> bool:
    """Whether a template refers to nothing a run makes (no step results, no component parameters)."""
    return all(ref.path[0] in PRE_RUN_ROOTS for ref in parse(text).references())


def _result(status: str, **fields: Any) -> dict[str, Any]:
    base = {"status": status, "exit_code": None, "reason": None, "stdout": "", "stderr": "", "outputs": {},
            "duration": 0.0, "usage": None}
    base.update(fields)
    return base
