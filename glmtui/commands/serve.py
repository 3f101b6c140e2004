"""glmtui serve: the long-lived process that runs the schedules of saved agents (docs/agents.md)."""

from __future__ import annotations

import sys

import click

from glmtui.commands.common import run, state


@click.command("serve")
@click.option("--install-user-unit", is_flag=True,
              help="Write a systemd user unit that keeps `glmtui serve` running, and say how to enable it.")
def serve(install_user_unit: bool) -> None:
    """Run the schedules of saved agents, in the foreground, until Ctrl-C or SIGTERM (which
    cancel the running executions and clean up). One per user: a second one exits with 2."""
    if install_user_unit:
        from glmtui import paths
        from glmtui.service.serve import install_user_unit as install

        path, outcome = install()
        click.echo(f"{path}: {outcome}")
        click.echo("enable it:  systemctl --user daemon-reload && systemctl --user enable --now glmtui")
        click.echo("keep it running without a login session:  loginctl enable-linger $USER")
        click.echo(f"API keys for the agents (KEY=value lines, mode 0600):  {paths.user_config_file().parent / 'serve.env'}")
        return
    from glmtui.service.serve import serve as serve_forever

    config = state().config
    sys.exit(run(lambda: serve_forever(config)))
