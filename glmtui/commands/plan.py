"""glmtui plan run|validate|inspect|schema (and `glmtui --run PLAN`), glmtui runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from glmtui.commands.common import engine, parse_pairs, parse_variables, print_json, run, state
from glmtui.units import counted


def plan_options(function):
    """The flags every plan command takes (docs/plan-format.md, "Running")."""
    options = [
        click.argument("plan", type=click.Path(dir_okay=False, path_type=Path), required=False),
        click.option("-f", "--file", "files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Plan file; several are merged in order (steps by id)."),
        click.option("--workflow", "-w", help="The workflow to run (default: the plan's default)."),
        click.option("--input", "-i", "inputs", multiple=True, metavar="K=V|JSON",
                     help="A plan input, or a JSON object of inputs: -i topic=x, -i '{\"topic\": \"x\"}'."),
        click.option("--input-file", type=click.Path(dir_okay=False, path_type=Path), help="Inputs from JSON/YAML."),
        click.option("--env-file", "env_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Variables for secrets and ${env.X} (beside the plan's .env)."),
        click.option("-e", "--env", "variables", multiple=True, metavar="K=V", help="A variable for secrets and ${env.X}."),
        click.option("--json", "as_json", is_flag=True, help="JSON output, one object per line."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _load(plan, files, workflow, inputs, input_file, env_files, variables, *, check_secrets=True):
    """The plan built from its files, then bound to the values of the command line."""
    from glmtui.errors import BadInput
    from glmtui.plan.validate import bind_plan, build_plan, secret_warnings

    paths = ([plan] if plan else []) + list(files)
    if not paths:
        raise BadInput("name a plan file", hint="glmtui plan run PLAN.yaml")
    given, extra_env = parse_inputs(inputs), parse_variables(variables, "-e")
    built = build_plan(paths, docker_host=state().config.get("docker_host"))
    loaded = bind_plan(built, workflow=workflow, inputs=given, input_file=input_file, env_files=list(env_files),
                       extra_env=extra_env, check_secrets=check_secrets)
    for warning in secret_warnings(loaded.secrets):
        click.echo(f"glmtui: warning: {warning}", err=True)
    return loaded


def parse_inputs(given: tuple[str, ...]) -> dict[str, Any]:
    """The --input values in order, a later one winning: KEY=VALUE (text, parsed to the input's
    type), or a JSON object of inputs (its values keep their JSON types), as model-compose takes."""
    from glmtui.errors import BadInput

    inputs: dict[str, Any] = {}
    for text in given:
        if not text.lstrip().startswith("{"):
            inputs.update(parse_pairs((text,), "--input"))
            continue
        try:
            values = json.loads(text)
        except ValueError as err:
            raise BadInput(f"--input {text!r} is not a JSON object: {err}",
                           hint='--input KEY=VALUE, or --input \'{"KEY": VALUE}\'') from None
        if not isinstance(values, dict):
            raise BadInput(f"--input {text!r} is not a JSON object", hint='--input \'{"KEY": VALUE}\'')
        inputs.update(values)
    return inputs


@click.group("plan")
def plan_group() -> None:
    """Plans: YAML files of steps that run in an environment."""


@plan_group.command("run")
@plan_options
@click.option("--jobs", "-j", type=click.IntRange(1, 256), help="Steps at once (default: the config's jobs, 16).")
@click.option("--keep", is_flag=True, help="Keep a throw-away environment when a step failed.")
@click.option("--resume", metavar="RUN_ID", help="Skip the steps that succeeded in RUN_ID, reusing their outputs.")
@click.option("--yes", "-y", is_flag=True, help="Approve everything agents ask (headless).")
@click.option("--allow", is_flag=True, help="Agree to the host access the plan declares under permissions:.")
def run_(plan, files, workflow, inputs, input_file, env_files, variables, as_json, jobs, keep, resume, yes,
         allow) -> None:
    """Run PLAN headless; exit 0 when every step succeeded or was allowed to fail."""
    loaded = _load(plan, files, workflow, inputs, input_file, env_files, variables)
    sys.exit(run_loaded(loaded, as_json=as_json, jobs=jobs, keep=keep, resume=resume, yes=yes, allow=allow))


def run_loaded(loaded, *, as_json: bool, jobs, keep: bool, resume, yes: bool, allow: bool) -> int:
    """The run, started through the service and followed into the renderer; the exit status."""
    import asyncio
    import signal

    from glmtui.errors import BadInput
    from glmtui.events import Progress
    from glmtui.headless import renderer_for
    from glmtui.service.service import Service
    from glmtui.store import Store

    asked = loaded.plan.permissions
    if asked and not allow:
        raise BadInput(f"plan {loaded.plan.name} asks for host access: {', '.join(asked.phrases())}",
                       hint="run again with --allow to agree")
    render = renderer_for(as_json)
    store = Store()

    output_closed = False

    def show(seq: int, event) -> None:
        """The renderer; when the reader of the output goes away (`| head`), the run stops as
        on Ctrl-C, its records kept, the rest of its output dropped."""
        nonlocal output_closed
        if output_closed:
            return
        try:
            render(event)
        except BrokenPipeError:
            output_closed = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered
            plan_run.cancel()

    async def work() -> int:
        nonlocal plan_run
        async with engine(loaded.plan.env.engine) as docker:
            service = Service(docker, store, state().config, late_followers=False)  # the renderer only
            plan_run = service.start_run(loaded, jobs=jobs, keep=keep, resume=resume, auto_approve=yes,
                                         grant=asked if allow else None)
            plan_run.subscribe(show, after=0)  # every event, as the run emits it
            signals = 0

            def interrupt() -> None:
                nonlocal signals
                signals += 1
                if signals == 1:
                    render(Progress("interrupted: stopping the steps and cleaning up"))
                    plan_run.cancel()
                else:
                    render(Progress("still cleaning up, one moment"))  # a second Ctrl-C does not cut it short

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, interrupt)
            try:
                result = await plan_run.wait()
            except asyncio.CancelledError:
                return 130
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            return result.exit_code

    plan_run = None
    try:
        code = run(work)
    finally:
        render.close()
        store.close()
    if output_closed:
        print("glmtui: the output was closed before the run ended: the run was stopped and recorded as "
              "cancelled (glmtui runs)", file=sys.stderr)
    return code


@plan_group.command("validate")
@plan_options
def validate(plan, files, workflow, inputs, input_file, env_files, variables, as_json) -> None:
    """Check PLAN without running it: every error at once, as FILE:LINE:COL: message."""
    from glmtui.plan.model import PlanInvalid

    try:
        loaded = _load(plan, files, workflow, inputs, input_file, env_files, variables)
    except PlanInvalid as err:
        if as_json:
            print_json({"valid": False, "errors": [vars(e) | {"file": str(e.file)} for e in err.errors]})
            sys.exit(2)
        raise
    steps = len(loaded.workflow.steps)
    asked = loaded.plan.permissions
    if as_json:
        print_json({"valid": True, "plan": loaded.plan.name, "workflow": loaded.workflow.name, "steps": steps,
                    "permissions": asked.as_json()})
    else:
        click.echo(f"{loaded.plan.file}: valid (plan {loaded.plan.name}, workflow {loaded.workflow.name}, {counted(steps, 'step')})")
        if asked:
            click.echo(f"it asks for host access (run it with --allow): {', '.join(asked.phrases())}")


@plan_group.command("inspect")
@plan_options
def inspect(plan, files, workflow, inputs, input_file, env_files, variables, as_json) -> None:
    """Show what PLAN would do: environment, inputs, steps in the order they can run."""
    from glmtui.plan.preview import describe_plan, print_description

    loaded = _load(plan, files, workflow, inputs, input_file, env_files, variables, check_secrets=False)
    description = describe_plan(loaded, state().config)
    if as_json:
        print_json(description)
    else:
        print_description(description)


@plan_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of plan files (for editor completion)."""
    from glmtui.plan.validate import schema_text

    sys.stdout.write(schema_text())


@click.group("runs", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.option("--limit", default=20, show_default=True, help="How many runs.")
@click.pass_context
def runs_group(ctx: click.Context, as_json: bool, limit: int) -> None:
    """Past runs (newest first)."""
    if ctx.invoked_subcommand:
        return
    from glmtui.render import age, table
    from glmtui.store import Store

    store = Store()
    records = store.runs(limit, with_steps=as_json)
    store.close()
    if as_json:
        print_json([r.as_json() for r in records])
        return
    if not records:
        click.echo("no runs yet (glmtui --run PLAN)")
        return
    from datetime import datetime, timezone

    table(
        ["RUN", "PLAN", "WORKFLOW", "STATUS", "STARTED", "DURATION"],
        [
            [r.id, r.plan, r.workflow, r.status, age(datetime.fromtimestamp(r.started, timezone.utc)),
             "" if r.finished is None else f"{r.finished - r.started:.1f}s"]
            for r in records
        ],
    )


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def show(run_id: str, as_json: bool) -> None:
    """One run: its steps, statuses, exit codes, outputs."""
    from glmtui.render import table
    from glmtui.store import Store

    store = Store()
    record = store.run(run_id)
    store.close()
    if as_json:
        print_json(record.as_json())
        return
    data = record.as_json()
    click.echo(f"run {record.id}: plan {record.plan} ({record.plan_file}), workflow {record.workflow}")
    on = f" on engine {record.engine}" if record.engine else ""
    click.echo(f"status {record.status}, environment {record.environment}{on}, inputs {data['inputs']}")
    table(
        ["STEP", "STATUS", "EXIT", "DURATION", "OUTPUTS", "REASON"],
        [
            [s["step"], s["status"], "" if s["exit_code"] is None else str(s["exit_code"]),
             "" if s["duration"] is None else f"{s['duration']:.1f}s", ", ".join(f"{k}={v}" for k, v in s["outputs"].items()),
             s["reason"] or ""]
            for s in data["steps"]
        ],
    )
