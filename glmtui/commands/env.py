"""glmtui env create|list|start|stop|remove|exec|allow|blocked|checkpoint|checkpoints|diff|rollback, and glmtui logs ENV."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from glmtui.commands.common import (
    engine,
    engine_option,
    engines,
    parse_variables,
    print_json,
    progress_printer,
    run,
    state,
)
from glmtui.errors import BadInput


@click.group("env")
def env_group() -> None:
    """Environments: named containers with a workspace volume and safe defaults."""


@env_group.command("create")
@click.argument("name")
@click.option("--image", help="Image (default: config default_image).")
@click.option("--memory", help="Memory limit, e.g. 512m or 2g (default: config resources.memory).")
@click.option("--cpus", help="CPU limit, e.g. 2 or 0.5 (default: config resources.cpus).")
@click.option("--pids", help="Process limit (default: config resources.pids).")
@click.option("--network", type=click.Choice(["bridge", "none", "host"]), help="Network (default: config).")
@click.option("--allow", "allow", multiple=True, metavar="HOST",
              help="Reach only these hosts (HOST[:PORT], *.DOMAIN, an address or CIDR), through glmtui's egress proxy.")
@click.option("--mount", "mounts", multiple=True, metavar="SRC:DST[:ro]",
              help="Bind mount a host path: a path on the engine's machine (for a remote engine, not this one).")
@click.option("--allow-docker-socket", is_flag=True,
              help="Allow a --mount of the Docker socket (or of a folder holding it): control of the host.")
@click.option("--copy", "copies", multiple=True, metavar="SRC:DST", help="Copy a host path in once, at creation.")
@click.option("-e", "--env", "variables", multiple=True, metavar="K=V", help="An environment variable.")
@click.option("--user", help="User inside, uid[:gid] or a name.")
@click.option("--workdir", default="/workspace", show_default=True, help="Workspace folder (a named volume).")
@click.option("--json", "as_json", is_flag=True, help="Print the environment as JSON.")
@engine_option("The engine to create it on (`glmtui engines list`); default: the current one.")
def create(name, image, memory, cpus, pids, network, allow, mounts, allow_docker_socket, copies, variables, user,
           workdir, as_json, engine_name) -> None:
    """Create and start environment NAME (names are unique per engine)."""
    from glmtui.docker.endpoints import from_config
    from glmtui.docker.passthrough import ca_certificates, upstream_proxy
    from glmtui.docker.spec import EnvSpec, Mount, Resources, refuse_docker_socket

    config = state().config
    endpoint = from_config(config)[engine_name]
    parsed = tuple(Mount.parse(m, on_engine=not endpoint.local) for m in mounts)
    if not allow_docker_socket:
        refuse_docker_socket(parsed, endpoint.host, hint="add --allow-docker-socket if you mean it")
    for mount in parsed if not endpoint.local else ():
        click.echo(f"note: --mount {mount.source}:{mount.target}: {mount.source} is a path on the machine of engine "
                   f"{endpoint.name} ({endpoint.host}), not on this one", err=True)
    spec = EnvSpec(
        name=name,
        image=image or config.get("default_image"),
        workdir=workdir,
        mounts=parsed,
        environment=parse_variables(variables, "--env"),
        user=user,
        resources=Resources.parse(
            memory or config.get("resources.memory"),
            cpus or config.get("resources.cpus"),
            pids or config.get("resources.pids"),
        ),
        network="bridge" if allow and not network else network or config.get("network"),
        allow=allow,
        upstream_proxy=upstream_proxy(config),
        ca_certificates=ca_certificates(config),
    )
    copy_in = [_parse_copy(c) for c in copies]

    async def work():
        async with engine(endpoint.name) as docker:
            return await docker.create_environment(spec, copy_in=copy_in, on_progress=progress_printer())

    created = run(work)
    if as_json:
        print_json(created.as_json())
    else:
        click.echo(f"created {created.name} on {created.engine} ({created.image}, {created.status})")


def _parse_copy(text: str) -> tuple[Path, str]:
    source, sep, target = text.rpartition(":")
    if not sep or not source or not target.startswith("/"):
        raise BadInput(f"--copy {text!r} is not HOST_PATH:/CONTAINER_PATH")
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise BadInput(f"--copy {text!r}: host path {path} does not exist")
    return path, target


@env_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@click.option("--all", "show_all", is_flag=True, help="Also the throw-away environments of plan runs.")
@engine_option("Only the environments of this engine (`glmtui engines list`); default: of every engine.")
def list_(as_json: bool, show_all: bool, engine_name: str | None) -> None:
    """List glmtui environments, of every engine that answers."""
    from glmtui.docker.engines import describe_failures

    async def work():
        async with engines() as every:
            return await every.list_environments(include_runs=show_all, engine=engine_name)

    envs, failed = run(work)
    if failed:
        click.echo(f"glmtui: {describe_failures(failed)}; {'its' if len(failed) == 1 else 'their'} environments "
                   "are not listed (`glmtui engines check` says what to do)", err=True)
    if as_json:
        print_json([e.as_json() for e in envs])
        return
    if not envs:
        click.echo("no environments (create one: glmtui env create NAME)")
        return
    from glmtui.render import age, table

    table(
        ["NAME", "ENGINE", "STATUS", "IMAGE", "CREATED", "PORTS"],
        [[e.name, e.engine, e.status, e.image, age(e.created), ", ".join(e.ports)] for e in envs],
    )


@env_group.command("start")
@click.argument("name")
@engine_option()
def start(name: str, engine_name: str | None) -> None:
    """Start a stopped environment."""

    async def work():
        async with engines() as every:
            docker, _ = await every.find_environment(name, engine_name)
            await docker.start_environment(name)

    run(work)
    click.echo(f"started {name}")


@env_group.command("stop")
@click.argument("name")
@click.option("--timeout", "-t", help="Seconds to wait before killing (default: config stop_timeout).")
@engine_option()
def stop(name: str, timeout: str | None, engine_name: str | None) -> None:
    """Stop a running environment (its workspace stays)."""
    from glmtui.units import parse_duration

    seconds = parse_duration(timeout, what="--timeout") if timeout else state().config.get("stop_timeout")

    async def work():
        async with engines() as every:
            docker, _ = await every.find_environment(name, engine_name)
            await docker.stop_environment(name, timeout=seconds)

    run(work)
    click.echo(f"stopped {name}")


@env_group.command("remove")
@click.argument("name")
@click.option("--volumes", is_flag=True, help="Also remove its workspace volume.")
@engine_option()
def remove(name: str, volumes: bool, engine_name: str | None) -> None:
    """Remove an environment (running or not)."""

    async def work():
        async with engines() as every:
            docker = await _engine_of(every, name, engine_name, missing_ok=volumes)
            await docker.remove_environment(name, volume=volumes)

    run(work)
    click.echo(f"removed {name}" + (" and its workspace volume" if volumes else ""))


@env_group.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-e", "--env", "variables", multiple=True, metavar="K=V", help="An environment variable.")
@click.option("-w", "--workdir", help="Working directory inside.")
@click.option("-u", "--user", help="User inside.")
@click.option("--timeout", help="Kill the command after this long, e.g. 30s.")
@engine_option()
def exec_(name: str, command: tuple[str, ...], variables, workdir, user, timeout, engine_name) -> None:
    """Run COMMAND in environment NAME, or open a shell (bash, else sh) without one."""
    from glmtui.units import parse_duration

    environment = parse_variables(variables, "--env")
    seconds = parse_duration(timeout, what="--timeout") if timeout else None
    if command[:1] == ("--",):
        command = command[1:]
    if not command:
        sys.exit(_shell(name, environment, workdir, user, engine_name))

    from glmtui.service.commands import recorded_command
    from glmtui.store import Store

    out, err = sys.stdout.buffer, sys.stderr.buffer

    async def work():
        async with engines() as every:
            docker, _ = await every.find_environment(name, engine_name)  # no environment: no record
            store = Store()
            try:
                with recorded_command(store, state().config, name, command, engine=docker.name) as recording:

                    def show(stream: int, data: bytes) -> None:
                        target = err if stream == 2 else out
                        target.write(data)
                        target.flush()
                        recording.output.feed(stream, data)

                    recording.result = await docker.exec(
                        name, command, environment=environment, workdir=workdir, user=user, timeout=seconds,
                        on_output=show,
                    )
            finally:
                store.close()
            return recording.result

    result = run(work)
    if result.reason:
        click.echo(f"glmtui: {result.reason}", err=True)
    if result.exit_code == 127 and result.reason:
        click.echo("glmtui: hint: check the spelling, or install it in the image", err=True)
    sys.exit(result.exit_code if result.exit_code >= 0 else 1)


def _shell(name: str, environment: dict[str, str], workdir: str | None, user: str | None,
           engine_name: str | None) -> int:
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise BadInput("a shell needs a terminal", hint=f"give a command: glmtui env exec {name} CMD...")
    import shutil

    from glmtui.terminal import attach

    size = shutil.get_terminal_size()

    async def work() -> int:
        async with engines() as every:
            docker, _ = await every.find_environment(name, engine_name)  # no environment: no record
            with _recorded(name, docker.name, [], shell=True) as (store, record, _):
                session = await docker.open_interactive(
                    name, rows=size.lines, columns=size.columns, environment=environment, workdir=workdir, user=user
                )
                code = await attach(session)
                store.finish_exec(record.id, code)
                return code

    return run(work)


@env_group.command("checkpoint")
@click.argument("name")
@click.option("-m", "--message", default="", help="What the checkpoint is of.")
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoint as JSON.")
@engine_option()
def checkpoint(name: str, message: str, as_json: bool, engine_name: str | None) -> None:
    """Take a checkpoint of environment NAME's workspace (files, modes, owners; every .git left out)."""
    from glmtui.units import counted

    taken = run(_with_checkpoints(name, engine_name, lambda checkpoints: checkpoints.take(message)))
    if as_json:
        print_json(taken.as_json())
    else:
        click.echo(f"checkpoint {taken.id} of {name}: {counted(taken.files_changed, 'file')} changed since the one before")


@env_group.command("checkpoints")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@engine_option()
def checkpoints_(name: str, as_json: bool, engine_name: str | None) -> None:
    """List the checkpoints of environment NAME, newest first."""
    found = run(_with_checkpoints(name, engine_name, lambda checkpoints: checkpoints.list()))
    if as_json:
        print_json([c.as_json() for c in found])
        return
    if not found:
        click.echo(f"no checkpoints of {name} (take one: glmtui env checkpoint {name})")
        return
    from glmtui.render import age, table

    table(["ID", "TAKEN", "FILES CHANGED", "MESSAGE"],
          [[c.id, age(c.time), str(c.files_changed), c.message.splitlines()[0] if c.message else ""] for c in found])


@env_group.command("diff")
@click.argument("name")
@click.argument("checkpoint_id", metavar="[ID]", required=False)
@engine_option()
def diff(name: str, checkpoint_id: str | None, engine_name: str | None) -> None:
    """What changed in environment NAME's workspace since checkpoint ID (default: the latest), as a patch."""
    patch = run(_with_checkpoints(name, engine_name, lambda checkpoints: checkpoints.diff(checkpoint_id)))
    click.echo(patch, nl=False)


@env_group.command("rollback")
@click.argument("name")
@click.argument("checkpoint_id", metavar="ID")
@engine_option()
def rollback(name: str, checkpoint_id: str, engine_name: str | None) -> None:
    """Put environment NAME's workspace back as it was at checkpoint ID. A rescue checkpoint of the
    workspace as it is is taken first, so the rollback can itself be undone."""
    done = run(_with_checkpoints(name, engine_name, lambda checkpoints: checkpoints.rollback(checkpoint_id)))
    click.echo(f"rolled {name} back to checkpoint {done.checkpoint.id}"
               + (f" ({done.checkpoint.message})" if done.checkpoint.message else ""))
    click.echo(f"undo it with: glmtui env rollback {name} {done.rescue.id}")


def _with_checkpoints(name: str, engine_name: str | None, action):
    async def work():
        from glmtui.docker.checkpoints import Checkpoints

        async with engines() as every:
            docker, _ = await every.find_environment(name, engine_name)
            return await action(Checkpoints(docker, name))

    return work


@env_group.command("allow")
@click.argument("name")
@click.argument("hosts", nargs=-1, metavar="[HOST...]")
@click.option("--remove", is_flag=True, help="Take the HOSTs out of the allowlist instead.")
@engine_option()
def allow_(name: str, hosts: tuple[str, ...], remove: bool, engine_name: str | None) -> None:
    """Add HOSTs to environment NAME's egress allowlist (at once, while it runs), or show it."""
    from glmtui.docker.egress import Egress, check_allowlist

    wanted = check_allowlist(hosts)

    async def work():
        async with engines() as every:
            docker, _ = await every.find_environment(name, engine_name)
            egress = Egress(docker)
            current = await egress.allowlist(name)
            if current is None:
                raise BadInput(f"environment {name!r} has no allowlist: its network is not limited",
                               hint="create it with --allow HOST to limit it")
            if wanted:
                current = tuple(h for h in current if h not in wanted) if remove else check_allowlist(current + wanted)
                await egress.set_allowlist(name, current)
            return current

    for host in run(work):
        click.echo(host)


@env_group.command("blocked")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@engine_option()
def blocked(name: str, as_json: bool, engine_name: str | None) -> None:
    """The connections environment NAME's egress proxy refused, oldest first."""
    from glmtui.docker.egress import Egress

    async def work():
        async with engines() as every:
            docker, _ = await every.find_environment(name, engine_name)
            return await Egress(docker).blocked(name)

    refusals = run(work)
    if as_json:
        print_json([r.as_json() for r in refusals])
        return
    if not refusals:
        click.echo(f"nothing was blocked in {name}")
    for refusal in refusals:
        click.echo(f"{refusal.time.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  {refusal.line}")


async def _engine_of(every, name: str, engine_name: str | None, *, missing_ok: bool = False):
    """The engine of environment `name`; with `missing_ok`, the named (or current) engine when the
    environment is on none (`remove --volumes` still takes a workspace whose container is gone)."""
    from glmtui.errors import NotFound

    try:
        docker, _ = await every.find_environment(name, engine_name)
    except NotFound:
        if not missing_ok:
            raise
        docker = await every.get(engine_name)
    return docker


@contextmanager
def _recorded(name: str, engine_name: str, command: list[str], *, shell: bool = False):
    """A record of a command (or a shell) in environment NAME on engine ENGINE_NAME, for `glmtui
    logs NAME`, masked (glmtui.service.commands.recorded), with its store and masker."""
    from glmtui.agent.providers import api_keys
    from glmtui.masking import Masker
    from glmtui.service.commands import recorded
    from glmtui.store import Store

    masker = Masker(api_keys(state().config))
    store = Store()
    try:
        with recorded(store, masker, name, command, shell=shell, engine=engine_name) as record:
            yield store, record, masker
    finally:
        store.close()


@click.command("logs")
@click.argument("env", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output (Ctrl-C stops).")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option("--since", help="Only output newer than this, e.g. 10m.")
@click.option("--timestamps", "-t", is_flag=True, help="Prefix each line with its time.")
@click.option("--container", is_flag=True, help="The container's own output (its main process) instead.")
@click.option("--run", "run_id", metavar="RUN_ID", help="A plan run's logs instead of an environment's.")
@click.option("--step", help="With --run: only this step's log.")
@engine_option()
def logs(env, follow, tail, since, timestamps, container, run_id, step, engine_name) -> None:
    """Show what ran in environment ENV: the output of plan steps, of the chat agent's tool calls
    and of `glmtui env exec` commands, from the records, by time, each line labelled
    (RUN/STEP, chat CONVERSATION TOOL, exec ID). Or a plan run's step logs (--run), or the
    container's own output (--container)."""
    if run_id:
        _run_logs(run_id, step)
        return
    if not env:
        raise BadInput("name an environment or a run", hint="glmtui logs ENV, or glmtui logs --run RUN_ID")
    if not container:
        _activity(env, engine_name, follow=follow, tail=tail, since=since, timestamps=timestamps)
        return
    out, err = sys.stdout.buffer, sys.stderr.buffer

    async def work():
        async with engines() as every:
            docker, _ = await every.find_environment(env, engine_name)
            async for stream, data in docker.logs(
                env, follow=follow, tail=tail, since=since, timestamps=timestamps
            ):
                target = err if stream == 2 else out
                target.write(data)
                target.flush()

    run(work)


FOLLOW_INTERVAL = 0.25  # seconds between two looks at the records when following


def _activity(env: str, engine_name: str | None, *, follow: bool, tail: int | None, since: str | None,
              timestamps: bool) -> None:
    import collections
    import time

    from glmtui.activity import Activity, merged
    from glmtui.store import Store
    from glmtui.units import parse_duration

    cutoff = time.time() - parse_duration(since, what="since") if since else None
    store = Store()
    activity = Activity(store, env)
    if not activity.recorded():  # nothing ran here yet: is there such an environment at all?
        async def exists():
            async with engines() as every:
                await every.find_environment(env, engine_name)

        run(exists)
    out = sys.stdout.buffer

    def recent(lines):
        return (line for line in lines if cutoff is None or line.time >= cutoff)

    def show(lines) -> None:
        for line in lines:
            stamp = _timestamp(line.time) + " " if timestamps else ""
            out.write(f"{stamp}{line.label} | ".encode() + line.text + b"\n")
        out.flush()

    history = recent(merged(activity.collect()))
    show(collections.deque(history, maxlen=tail) if tail is not None else history)
    while follow:
        time.sleep(FOLLOW_INTERVAL)
        show(recent(merged(activity.collect())))
    store.close()


def _timestamp(seconds: float) -> str:
    """RFC 3339 in UTC, to the millisecond, as `docker logs --timestamps` has it (to the nanosecond)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def _run_logs(run_id: str, step: str | None) -> None:
    from glmtui.errors import NotFound, did_you_mean
    from glmtui.store import Store

    store = Store()
    record = store.run(run_id)
    store.close()
    names = [s.step for s in record.steps]
    if step and step not in names:
        raise NotFound(f"run {record.id} has no step {step!r}{did_you_mean(step, names)}")
    out = sys.stdout.buffer
    for name in [step] if step else names:
        path = store.log_file(record.id, name)
        if not path.exists():
            continue
        if step:
            with path.open("rb") as log:
                while chunk := log.read(1 << 20):
                    out.write(chunk)
            continue
        prefix = f"{name} | ".encode()
        with path.open("rb") as log:
            for line in log:
                out.write(prefix + line)
    out.flush()
