"""glmtui chats [--env ENV] | chats show|export|remove ID: the saved agent conversations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from glmtui.commands.common import print_json
from glmtui.units import counted

if TYPE_CHECKING:
    from glmtui.conversations import Conversations


@contextmanager
def _history() -> Iterator[Conversations]:
    from glmtui.conversations import Conversations
    from glmtui.store import Store

    store = Store()
    try:
        yield Conversations(store)
    finally:
        store.close()


@click.group("chats", invoke_without_command=True)
@click.option("--env", "environment", metavar="ENV", help="Only the conversations of this environment.")
@click.option("--limit", default=50, show_default=True, help="How many conversations.")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def chats_group(ctx: click.Context, environment: str | None, limit: int, as_json: bool) -> None:
    """Saved agent conversations, the latest first.

    An ID may be shortened to a prefix that names one conversation."""
    if ctx.invoked_subcommand:
        return
    with _history() as history:
        conversations = history.list(environment, limit=limit)
    if as_json:
        print_json([c.as_json() for c in conversations])
        return
    if not conversations:
        where = f" in environment {environment}" if environment else ""
        click.echo(f"no conversations{where} yet (chat with an agent in the TUI)")
        return
    from datetime import datetime, timezone

    from glmtui.render import age, table

    table(
        ["ID", "ENVIRONMENT", "TITLE", "MODEL", "TOKENS", "UPDATED"],
        [
            [c.id, c.environment, _short(c.title or "(untitled)", 50), f"{c.provider}/{c.model}",
             f"{_tokens(c.input_tokens)} in, {_tokens(c.output_tokens)} out",
             age(datetime.fromtimestamp(c.updated, timezone.utc))]
            for c in conversations
        ],
    )


@chats_group.command("show")
@click.argument("conversation_id", metavar="ID")
def show(conversation_id: str) -> None:
    """Print a conversation as Markdown (what `export` writes)."""
    with _history() as history:
        text = history.markdown(conversation_id)
    click.echo(text, nl=False)


@chats_group.command("export")
@click.argument("conversation_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The Markdown file to write (default: ID.md here; '-': standard output).")
def export(conversation_id: str, output: Path | None) -> None:
    """Write a conversation as a Markdown file."""
    from glmtui.errors import BadInput

    with _history() as history:
        conversation = history.get(conversation_id)
        text = history.markdown(conversation.id)
    if output is not None and str(output) == "-":
        click.echo(text, nl=False)
        return
    target = output or Path(f"{conversation.id}.md")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as err:
        raise BadInput(f"cannot write {target}: {err.strerror or err}") from None
    click.echo(f"wrote {target} (conversation {conversation.id}, {counted(len(text.splitlines()), 'line')})")


@chats_group.command("remove")
@click.argument("conversation_id", metavar="ID")
def remove(conversation_id: str) -> None:
    """Forget a conversation and its messages."""
    with _history() as history:
        conversation = history.get(conversation_id)
        history.remove(conversation.id)
    title = f" ({_short(conversation.title, 50)})" if conversation.title else ""
    click.echo(f"removed conversation {conversation.id}{title}")


def _tokens(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 100_000:
        return f"{count / 1000:.0f}k"
    if count >= 1000:
        return f"{count / 1000:.1f}k"
    return str(count)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
