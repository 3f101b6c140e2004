"""glmtui mcp: MCP over stdio, for clients that start a process (docs/serving.md, MCP)."""

from __future__ import annotations

import sys

import click

from glmtui.commands.common import run, state


@click.command("mcp")
def mcp() -> None:
    """Serve MCP over stdin and stdout, for clients that start a process (Claude Code, Codex,
    opencode): the plans of config serve.plans as tools, and tools to work in environments.
    Logs go to stderr. Ends when the client closes stdin."""
    from glmtui.server.mcp import serve_stdio

    config = state().config
    sys.exit(run(lambda: serve_stdio(config)))
