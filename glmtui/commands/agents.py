"""glmtui agents apply|validate|list|show|run|pause|resume|remove|executions|schema (docs/agents.md)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from glmtui.commands.common import engine, print_json, run, state


def _records():
    from glmtui.service.records import AgentStore
    from glmtui.store import Store

    return AgentStore(Store())


def _when(instant: float | None) -> str:
    return "" if instant is None else f"{datetime.fromtimestamp(instant):%Y-%m-%d %H:%M:%S}"


@click.group("agents")
def agents_group() -> None:
    """Saved agents: a task for a model that runs by hand or on a schedule (`glmtui serve`)."""


@agents_group.command("apply")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def apply(files: tuple[Path, ...]) -> None:
    """Save the agent of each FILE (one per file). The same file again changes nothing; a
    changed one updates its agent and keeps its executions. Every file is checked first:
    one error and nothing is saved."""
    from glmtui.errors import BadInput
    from glmtui.plan.model import PlanInvalid

    checked, errors = _check_files(files)
    if errors:
        raise PlanInvalid(errors)
    seen: dict[str, Path] = {}
    for path, definition in checked:
        if definition.name in seen:
            raise BadInput(f"{path}: agent {definition.name!r} is also defined in {seen[definition.name]}")
        seen[definition.name] = path
    records = _records()
    for _, definition in checked:
        outcome = records.apply(definition)
        click.echo(records.get(definition.name).applied(outcome))


@agents_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check agent FILES without saving them: every error, as FILE:LINE:COL: message."""
    from glmtui.plan.model import PlanInvalid

    checked, errors = _check_files(files)
    for path, definition in checked:
        click.echo(f"{path}: valid (agent {definition.name})")
    if errors:
        raise PlanInvalid(errors)


def _check_files(files: tuple[Path, ...]) -> tuple[list[tuple[Path, Any]], list[Any]]:
    """Each agent file checked: (path, definition) of the valid ones, and every error of the others."""
    from glmtui.plan.model import PlanInvalid
    from glmtui.service.definition import load_agent_file

    checked, errors = [], []
    for path in files:
        try:
            checked.append((path, load_agent_file(path, state().config)))
        except PlanInvalid as err:
            errors += err.errors
    return checked, errors


@agents_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of agent files (for editor completion)."""
    from glmtui.service.definition import schema_text

    sys.stdout.write(schema_text())


@agents_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def list_(as_json: bool) -> None:
    """The saved agents: schedule, next run, last execution, tokens."""
    from glmtui.render import table
    from glmtui.service.records import agent_json
    from glmtui.service.serve import schedules_status

    records = _records()
    rows = []
    for agent in records.list():
        last = records.last(agent.name)
        totals = records.totals(agent.name)
        nexts = agent.next_runs()
        rows.append((agent, last, totals, nexts[0] if nexts else None))
    if as_json:
        print_json([agent_json(agent, last, totals, upcoming) for agent, last, totals, upcoming in rows])
        return
    if not rows:
        click.echo("no saved agents yet (glmtui agents apply FILE; docs/agents.md)")
        return
    table(
        ["NAME", "STATUS", "SCHEDULE", "NEXT RUN", "LAST", "TOKENS"],
        [[agent.name, agent.status, agent.schedule_words(), _when(upcoming) or ("paused" if agent.status == "paused" else "-"),
          f"{last.status} {_ago(last.queued)}" if last else "-",
          f"{totals['all time']['input_tokens'] + totals['all time']['output_tokens']:,}"]
         for agent, last, totals, upcoming in rows],
    )
    if any(agent.definition.schedule_text for agent, *_ in rows):
        click.echo(schedules_status())


def _ago(instant: float) -> str:
    from datetime import timezone

    from glmtui.render import age

    return age(datetime.fromtimestamp(instant, timezone.utc))


@agents_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def show(name: str, as_json: bool) -> None:
    """One agent: its task, environment, model, approval, schedule with its next three fire
    times, and its tokens today, in 7 days and in all."""
    from glmtui.service.records import agent_json
    from glmtui.service.serve import schedules_status

    records = _records()
    agent = records.get(name)
    definition, data = agent.definition, agent.definition.data
    totals = records.totals(name)
    nexts = agent.next_runs(3)
    recent = records.executions(name, limit=5)
    if as_json:
        print_json({**agent_json(agent, recent[0] if recent else None, totals, nexts[0] if nexts else None),
                    "next_runs": nexts, "executions": [r.as_json() for r in recent]})
        return
    env = data.get("env")
    if isinstance(env, str):
        where = f"the existing environment {env}"
    elif isinstance(env, dict):
        where = (f"environment {env['name']} (made on first use, then reused)" if env.get("name")
                 else "a throw-away environment per execution")
        image = env.get("image") or (f"built from {env['build']}" if env.get("build") else None)
        where += f", image {image}" if image else ""
    else:
        where = "a throw-away environment of the default image per execution"
    lines = [
        ("agent", f"{name} ({agent.status})"),
        ("description", definition.description or "-"),
        ("file", str(definition.file)),
        ("works in", where),
        ("model", _model_line(data)),
    ]
    if definition.command is not None:
        lines.append(("driver", "command: " + " ".join(definition.command)))
    else:
        limits = [f"max_turns {data.get('max_turns', state().config.get('max_turns'))}"]
        if definition.budget:
            limits.append(f"budget {definition.budget:,} tokens")
        lines.append(("driver", "builtin · " + " · ".join(limits)))
        rules = ", ".join(f"{r.get('tool', '*')}{' ' + repr(r['pattern']) if r.get('pattern') else ''} {r['mode']}"
                          for r in data.get("approval_rules") or [])
        lines.append(("approval", f"{data.get('approval', 'the config’s (' + state().config.get('approval') + ')')}"
                                  + (f"; rules: {rules}" if rules else "")))
    if data.get("timeout"):
        lines.append(("timeout", str(data["timeout"])))
    if definition.schedule_text:
        lines.append(("schedule", f"{definition.schedule_text}: {agent.schedule_words()}; catch_up {definition.catch_up}"))
        zone = definition.schedule()
        lines.append(("next runs", ", ".join(f"{zone.local(t):%Y-%m-%d %H:%M:%S%z}" for t in nexts) if nexts
                      else "none while paused"))
    else:
        lines.append(("schedule", "none: runs by hand (glmtui agents run NAME)"))
    for span, figures in totals.items():
        lines.append((f"tokens {span}", f"{figures['input_tokens']:,} in / {figures['output_tokens']:,} out "
                                        f"({figures['executions']} execution{'' if figures['executions'] == 1 else 's'})"))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label:<{width}}  {value}")
    click.echo("prompt:")
    for line in str(data["prompt"]).rstrip("\n").split("\n"):
        click.echo(f"  {line}")
    if recent:
        from glmtui.service.execution import describe

        click.echo("last executions:")
        for record in recent:
            click.echo(f"  {record.id}  {record.trigger:<8}  {_when(record.queued)}  {describe(record)}")
    if definition.schedule_text:
        click.echo(schedules_status())


def _model_line(data: dict[str, Any]) -> str:
    from glmtui.agent import providers
    from glmtui.errors import GlmtuiError

    try:
        provider = providers.resolve(state().config, data.get("provider"), data.get("model"))
    except GlmtuiError as err:
        return f"{data.get('provider', 'the default provider')}: {err}"
    chosen = "" if data.get("provider") else " (the config's default_provider)"
    return f"{provider.name}{chosen} · {provider.model}"


@agents_group.command("run")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Stay and stream it like a headless run; exit with its status.")
@click.option("--yes", "-y", is_flag=True, help="Approve every tool call the agent would ask about.")
@click.option("--json", "as_json", is_flag=True, help="With --wait: JSON lines, as `glmtui --run --json`.")
@click.option("--execution", "execution_id", hidden=True, help="Run this queued execution (the background process).")
def run_(name: str, wait: bool, yes: bool, as_json: bool, execution_id: str | None) -> None:
    """Run agent NAME now. Without --wait it runs to its end in a background process of its own
    (its lines go to agents.log) and the command prints its execution id."""
    if execution_id:
        sys.exit(_background(execution_id, yes))
    if wait:
        sys.exit(_wait(name, yes, as_json))
    _start_in_background(name, yes)


def _start_in_background(name: str, yes: bool) -> None:
    import subprocess

    from glmtui import paths
    from glmtui.errors import BadInput, Conflict
    from glmtui.service.service import asking_problem

    records = _records()
    agent = records.get(name)
    problem = asking_problem(agent, state().config, auto_approve=yes)
    if problem:
        raise BadInput(problem)
    execution_id, blocking = records.queue(agent.name, "manual")
    if execution_id is None:
        raise Conflict(f"agent {name} was not started again: execution {blocking} of it still runs",
                       hint=f"glmtui agents executions show {blocking}")
    log = paths.agents_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "glmtui", "agents", "run", name, "--execution", execution_id, *(["--yes"] if yes else [])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    records.hand_over(execution_id, child.pid)
    click.echo(f"execution {execution_id} of {name} runs in the background (pid {child.pid}); "
               f"follow it: glmtui agents executions show {execution_id}")


def _wait(name: str, yes: bool, as_json: bool) -> int:
    import asyncio
    import signal

    from glmtui.events import Progress
    from glmtui.headless import renderer_for
    from glmtui.service.execution import describe
    from glmtui.service.service import Service
    from glmtui.store import Store

    store = Store()
    render = renderer_for(as_json)

    async def work() -> int:
        async with engine() as docker:
            service = Service(docker, store, state().config)
            execution = service.run_agent(name, "manual", auto_approve=yes)
            assert execution is not None
            execution.subscribe(lambda _seq, event: render(event), after=0)
            signals = 0

            def interrupt() -> None:
                nonlocal signals
                signals += 1
                render(Progress("interrupted: stopping the agent and cleaning up" if signals == 1
                                else "still cleaning up, one moment"))
                execution.cancel()

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, interrupt)
            try:
                await asyncio.wait([execution.task])
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            if not as_json:
                render.close()
                click.echo(f"execution {execution.id} of {name}: {describe(execution.record)}")
            if not execution.task.cancelled() and execution.task.exception() is not None:
                raise execution.task.exception()  # a bug: one line, the traceback with --debug
            return execution.exit_code

    try:
        return run(work)
    finally:
        render.close()
        store.close()


def _background(execution_id: str, yes: bool) -> int:
    """The background process of `agents run` without --wait: runs the execution handed to it;
    every line, and any failure before it could start, goes to its record and agents.log."""
    import asyncio
    import signal

    from glmtui.errors import GlmtuiError
    from glmtui.service.serve import AgentsLog
    from glmtui.service.service import Service
    from glmtui.store import Store

    store = Store()
    log = AgentsLog()

    async def work() -> int:
        async with engine() as docker:
            service = Service(docker, store, state().config, announce=log.line)
            execution = service.take_over(execution_id, auto_approve=yes)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, execution.cancel)
            await asyncio.wait([execution.task])
            return execution.exit_code

    try:
        return run(work)
    except GlmtuiError as err:  # e.g. no engine: the execution cannot start
        from glmtui.service.records import AgentStore

        records = AgentStore(store)
        record = records.execution(execution_id)
        if record.status == "queued":
            record.status, record.reason = "failure", str(err)
            records.finish(record)
            log.line(f"{record.agent}: execution {record.id} failure · {err}")
        return err.exit_code
    finally:
        log.close()
        store.close()


@agents_group.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Stop running NAME on its schedule (it still runs by hand)."""
    changed = _records().set_status(name, "paused")
    click.echo(f"{name}: {'paused' if changed else 'already paused'}")


@agents_group.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Run NAME on its schedule again, from now on (what it missed while paused is not caught up)."""
    changed = _records().set_status(name, "active")
    click.echo(f"{name}: {'resumed' if changed else 'already active'}")


@agents_group.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Forget NAME and its execution records (their runs and logs stay: glmtui runs)."""
    from glmtui.errors import Conflict

    records = _records()
    active = records.active(records.get(name).name)
    if active:
        raise Conflict(f"agent {name} is running (execution {active}): remove it when that has ended",
                       hint=f"glmtui agents pause {name} stops its schedule now")
    count = records.remove(name)
    click.echo(f"{name}: removed, with {count} execution record{'' if count == 1 else 's'}")


@agents_group.command("executions")
@click.argument("words", nargs=-1, metavar="[NAME] | show ID")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.option("--limit", default=20, show_default=True, help="How many executions.")
def executions(words: tuple[str, ...], as_json: bool, limit: int) -> None:
    """Executions, newest first (of agent NAME); `executions show ID`: one with its result,
    tokens, tool calls and transcript."""
    from glmtui.errors import BadInput

    if words[:1] == ("show",) and len(words) == 2:
        _show_execution(words[1], as_json)
        return
    if len(words) > 1:
        raise BadInput(f"unexpected {' '.join(words[1:])!r}", hint="glmtui agents executions [NAME] | executions show ID")
    from glmtui.render import table

    records = _records()
    agent = records.get(words[0]).name if words else None
    found = records.executions(agent, limit)
    if as_json:
        print_json([record.as_json() for record in found])
        return
    if not found:
        click.echo("no executions yet (glmtui agents run NAME)")
        return
    table(
        ["EXECUTION", "AGENT", "TRIGGER", "STATUS", "STARTED", "DURATION", "TURNS", "TOKENS IN/OUT", "RESULT"],
        [[r.id, r.agent, r.trigger, r.status, _when(r.started or r.queued),
          "" if r.duration is None else f"{r.duration:.1f}s", str(r.turns),
          f"{r.input_tokens:,}/{r.output_tokens:,}", _one_line(r.reason if r.status != "success" else r.result)]
         for r in found],
    )


def _one_line(text: str | None, width: int = 60) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _show_execution(execution_id: str, as_json: bool) -> None:
    records = _records()
    record = records.execution(execution_id)
    transcript = records.transcript(record)
    text = transcript.read_text(encoding="utf-8", errors="replace") if transcript else None
    if as_json:
        print_json({**record.as_json(), "transcript": text, "transcript_file": str(transcript) if transcript else None})
        return
    lines = [
        ("execution", f"{record.id} of agent {record.agent}"),
        ("trigger", record.trigger + (f" (fire time {_when(record.scheduled)})" if record.scheduled else "")),
        ("status", record.status + (f": {record.reason}" if record.reason else "")),
        ("started", _when(record.started) or "-"),
        ("ended", _when(record.finished) or "-"),
    ]
    if record.duration is not None:
        lines.append(("took", f"{record.duration:.1f}s"))
    per_turn = ", ".join(f"{i}/{o}" for i, o in record.turn_usage)
    lines.append(("turns", str(record.turns)))
    lines.append(("tokens", f"{record.input_tokens:,} in / {record.output_tokens:,} out"
                            + (f" (per turn, in/out: {per_turn})" if per_turn else "")))
    if record.run_id:
        lines.append(("run", f"{record.run_id} (glmtui runs show {record.run_id})"))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label:<{width}}  {value}")
    if record.tool_calls:
        from glmtui.render import SYMBOLS

        click.echo("tool calls:")
        marks = {"ok": SYMBOLS["success"], "error": SYMBOLS["failure"], "denied": SYMBOLS["skipped"]}
        for call in record.tool_calls:
            exit_code = "" if call["exit_code"] is None else f" · exit {call['exit_code']}"
            duration = "" if call["duration"] is None else f" · {call['duration']:.1f}s"
            click.echo(f"  {marks.get(call['status'], SYMBOLS['cancelled'])} {call['tool']}: {call['call']}"
                       f" · {call['status']}{exit_code}{duration}")
    if record.result:
        click.echo("result:")
        for line in record.result.rstrip("\n").split("\n"):
            click.echo(f"  {line}")
    if text is not None:
        click.echo(f"transcript ({transcript}):")
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
