"""glmtui serve [--host H] [--port P] [--tls-cert F --tls-key F] [--insecure-bind] | serve token [--rotate]
(docs/serving.md, docs/agents.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from glmtui.commands.common import run, state


@click.group("serve", invoke_without_command=True)
@click.option("--host", help="Address to listen on (default: config serve.host, 127.0.0.1). Beyond loopback: TLS.")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: config serve.port, 8765; 0: any free one).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="Certificate (PEM): serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="Its private key (PEM).")
@click.option("--insecure-bind", is_flag=True,
              help="Listen beyond loopback without TLS (the token crosses the network in clear text).")
@click.option("--install-user-unit", is_flag=True,
              help="Write a systemd user unit that keeps `glmtui serve` running, and say how to enable it.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, tls_cert: Path | None, tls_key: Path | None,
          insecure_bind: bool, install_user_unit: bool) -> None:
    """Run the schedules of saved agents and serve the HTTP API (docs/serving.md), in the
    foreground, until Ctrl-C or SIGTERM (which cancel the running work and clean up). One per
    user: a second one exits with 2. Every request needs the token of `glmtui serve token`."""
    if ctx.invoked_subcommand is not None:
        return
    if install_user_unit:
        from glmtui import paths
        from glmtui.service.serve import install_user_unit as install

        path, outcome = install()
        click.echo(f"{path}: {outcome}")
        click.echo("enable it:  systemctl --user daemon-reload && systemctl --user enable --now glmtui")
        click.echo("keep it running without a login session:  loginctl enable-linger $USER")
        click.echo(f"API keys for the agents (KEY=value lines, mode 0600):  {paths.user_config_file().parent / 'serve.env'}")
        return
    from glmtui.server.listen import Bind
    from glmtui.server.process import serve as serve_forever

    config = state().config
    cert, key = tls_cert or config.get("serve.tls_cert"), tls_key or config.get("serve.tls_key")
    bind = Bind(host or config.get("serve.host"), config.get("serve.port") if port is None else port,
                Path(cert).expanduser() if cert else None, Path(key).expanduser() if key else None, insecure_bind)
    sys.exit(run(lambda: serve_forever(config, bind)))


@serve.command("token")
@click.option("--rotate", is_flag=True, help="Make a new token; the old one stops working at once (a running serve too).")
def token(rotate: bool) -> None:
    """Print the bearer token every request to `glmtui serve` needs (made now if there is none)."""
    from glmtui.server.auth import TokenFile

    file = TokenFile()
    click.echo(file.rotate() if rotate else file.ensure()[0])
