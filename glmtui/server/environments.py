"""Environments for the server's clients: which ones outside agents may use, and making and
removing them.

An outside agent (Claude Code, Codex, opencode through MCP) works in named glmtui environments,
the ones `glmtui env list` shows, whoever made them; never in the throw-away environment of a
plan run, which belongs to its run. Inside one it has the agent's own tools (glmtui.agent.tools:
commands, files, search), acting only inside the environment, as the environment's user, with
the same output limits; a stopped environment is started first, as a plan run starts its own.
A command it runs (`exec`) is recorded as `glmtui env exec` records one, its output masked into
the record's log (glmtui.service.commands), and answered masked too.

Environments made for a client, through MCP or the HTTP API (`create_environment`), have the
safe defaults of every environment (glmtui.docker.spec) and the configured limits unless given,
with no mounts and no copies from the host (host paths never come from a client); the network
is `bridge` or `none`, or `host` only where the server's policy (`serve.allow`) grants the
host's network.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from glmtui.agent.tools import CommandResult, Toolbox
from glmtui.docker.spec import EnvSpec, Resources
from glmtui.docker.types import Environment
from glmtui.errors import BadInput, NotFound
from glmtui.plan.permissions import Permissions

SHELL_TOOL = "exec"  # what the notes of the tools call the tool that runs commands
LIST_HINT = "env_list shows them; env_create makes one"


async def create_environment(engine: Any, config: Any, policy: Permissions, name: str, *,
                             image: str | None = None, memory: str | None = None, cpus: float | None = None,
                             pids: int | None = None, network: str | None = None,
                             environment: dict[str, str] | None = None, user: str | None = None,
                             workdir: str | None = None) -> Environment:
    """Make and start environment `name` for a client, as the module says."""
    network = network or config.get("network")
    if network == "host" and not policy.network_host:
        raise BadInput("network host shares the host's network, which the server's policy does not grant",
                       hint="use bridge or none, or grant it in config serve.allow: {network_host: true}")
    spec = EnvSpec(
        name=name,
        image=image or config.get("default_image"),
        workdir=workdir or "/workspace",
        environment=environment or {},
        user=user,
        resources=Resources.parse(memory or config.get("resources.memory"), cpus or config.get("resources.cpus"),
                                  pids or config.get("resources.pids")),
        network=network,
    )
    return await engine.create_environment(spec)


class EnvironmentTools:
    def __init__(self, service: Any, policy: Permissions) -> None:
        self.service = service
        self.engine = service.engine
        self.config = service.config
        self.policy = policy

    async def list(self) -> list[Environment]:
        return await self.engine.list_environments(include_runs=False)

    async def create(self, name: str, **options: Any) -> Environment:
        return await create_environment(self.engine, self.config, self.policy, name, **options)

    async def remove(self, name: str, *, volumes: bool = False) -> None:
        await self.named(name)
        await self.engine.remove_environment(name, volume=volumes)

    async def exec(self, name: str, argv: list[str], *, timeout: float | None = None) -> tuple[str, CommandResult]:
        """Run argv in named environment `name` with the tools' limits, recorded: the record's id
        and the result, masked."""
        from glmtui.service.commands import recorded_command

        tools = await self.toolbox(name)
        with recorded_command(self.service.store, self.config, name, argv) as command:
            result = command.result = await tools.command(argv, timeout=timeout, on_output=command.output.feed)
        mask = command.masker.mask
        return command.id, replace(result, stdout=mask(result.stdout), stderr=mask(result.stderr),
                                   reason=mask(result.reason) if result.reason else None)

    async def toolbox(self, name: str) -> Toolbox:
        """The tools inside named environment `name`, started if it was stopped."""
        env = await self.named(name)
        if not env.running:
            await self.engine.start_environment(name)
        return Toolbox(self.engine, name, workdir=env.workdir, shell_tool=SHELL_TOOL)

    async def named(self, name: str) -> Environment:
        """Named environment `name`; BadInput for any other (none, a run's throw-away one)."""
        try:
            env = await self.engine.get_environment(name)
        except NotFound:
            raise NotFound(f"no environment named {name!r}", hint=LIST_HINT) from None
        if env.run_id:
            raise BadInput(f"{name} is the throw-away environment of plan run {env.run_id}, which belongs to that run",
                           hint=f"work in a named environment: {LIST_HINT}")
        return env
