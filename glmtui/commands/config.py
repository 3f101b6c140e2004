"""glmtui config get|set|unset, and glmtui init."""

from __future__ import annotations

from pathlib import Path

import click

from glmtui.commands.common import print_json

scope_options = [
    click.option("--user", "scope", flag_value="user", default=True, help="The user config file (default)."),
    click.option("--project", "scope", flag_value="project", help="The project's .glmtui/config.yaml."),
]


def with_scope(function):
    for option in reversed(scope_options):
        function = option(function)
    return function


@click.group("config")
def config_group() -> None:
    """Settings: defaults < user file < project file < GLMTUI_* variables."""


@config_group.command("get")
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def get(key: str | None, as_json: bool) -> None:
    """Print KEY's value, or every key with its value and source."""
    from glmtui.config import Config

    config = Config.load()
    if key:
        value = config.get(key)
        if as_json:
            print_json(value)
        else:
            click.echo("" if value is None else _text(value))
        if config.sources.get(key, "default") != "default":  # stderr: scripts read the value alone
            click.echo(f"glmtui: {key} is from {config.origin(key)}", err=True)
        return
    values = config.items()
    if as_json:
        from glmtui.config import KEYS

        print_json(
            {
                k: {"value": v, "source": config.sources.get(k, "user"), "help": KEYS[k].help if k in KEYS else None}
                for k, v in values.items()
            }
        )
        return
    from glmtui.render import table

    table(["KEY", "VALUE", "SOURCE"], [[k, _text(v), config.sources.get(k, "")] for k, v in sorted(values.items())])
    click.echo(f"\nuser file: {config.files['user']}")
    click.echo(f"project file: {config.files['project'] or 'none here (glmtui init makes one)'}")


def _text(value) -> str:
    import yaml

    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return "" if value is None else str(value)


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@with_scope
def set_(key: str, value: str, scope: str) -> None:
    """Set KEY to VALUE (YAML: 2 is a number, [a, b] a list)."""
    from glmtui.config import set_value

    path = set_value(key, value, scope)
    click.echo(f"set {key} in {path}")
    import shlex

    _say_if_overridden(key, scope, f"glmtui config set --project {key} {shlex.quote(value)} changes it for this project")


@config_group.command("unset")
@click.argument("key")
@with_scope
def unset(key: str, scope: str) -> None:
    """Remove KEY from a config file (its default applies again)."""
    from glmtui.config import unset_value

    path_note = "removed" if unset_value(key, scope) else "was not set"
    click.echo(f"{key} {path_note}")
    _say_if_overridden(key, scope, f"glmtui config unset --project {key} removes it from this project")


def _say_if_overridden(key: str, scope: str, project_hint: str) -> None:
    """A warning when a layer above the file just written decides KEY here: the project file over
    the user file, or a GLMTUI_* variable over both."""
    from glmtui.config import Config

    config = Config.load()
    winner = config.sources.get(key, "default")
    if winner == scope or winner == "default" or (scope, winner) == ("project", "user"):
        return
    over = "every file" if winner == "env" else "the user file"
    hint = f" ({project_hint})" if winner == "project" else ""
    click.echo(f"glmtui: warning: here {key} is still {_text(config.get(key))}: {config.origin(key)} sets it and "
               f"wins over {over}{hint}", err=True)


@click.command("init")
@click.option("--image", help="The project's default image.")
def init(image: str | None) -> None:
    """Create .glmtui/config.yaml in the current folder."""
    from glmtui.config import init_project

    path = init_project(Path.cwd(), image)
    click.echo(f"created {path}")
