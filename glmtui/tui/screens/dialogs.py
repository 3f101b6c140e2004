"""Small modal screens: confirmations and the environment's details."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, Static

from glmtui.tui.widgets.tick_box import TickBox

BLOCKED_SHOWN = 20  # refusals in the details: the latest (glmtui env blocked NAME lists them all)


class ConfirmRemove(ModalScreen[tuple[bool, bool] | None]):
    """Remove an environment? Returns (remove, also_volume), or None when dismissed."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="dialog.cancel")]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.env_name = name

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Remove environment [b]{self.env_name}[/b]? Its container goes; running work stops.")
            yield TickBox("also remove its workspace volume (its files)", id="volume")
            with Horizontal(classes="buttons"):
                yield Button("Remove", variant="error", id="remove")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "remove":
            self.dismiss((True, self.query_one("#volume", Checkbox).value))
        else:
            self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes/no question: `y` or the first button says yes, `escape` or the second no."""

    BINDINGS = [Binding("escape", "dismiss(False)", "No", id="dialog.no"), Binding("y", "dismiss(True)", "Yes", id="dialog.yes")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question)
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="warning", id="yes")
                yield Button(self.no, id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class ApproveCall(ModalScreen[str]):
    """An agent (a plan run's agent step, an agent's execution) asks to run a tool call: yes, no,
    or always for a pattern. `title` says who asks (default: the step)."""

    BINDINGS = [
        Binding("y", "dismiss('yes')", "Yes", id="approve.yes"),
        Binding("n,escape", "dismiss('no')", "No", id="approve.no"),
        Binding("a", "dismiss('always')", "Always", id="approve.always"),
    ]

    def __init__(self, step: str, request: Any, title: str | None = None) -> None:
        super().__init__()
        self.step, self.request = step, request
        self.title_markup = title or f"Step [b]{escape(step)}[/b]"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.title_markup}: the agent wants to run")
            yield Static(escape(self.request.describe()), classes="command")
            with Horizontal(classes="buttons"):
                yield Button("y Yes", variant="warning", id="yes")
                yield Button("n No", id="no")
                yield Button(f"a Always for {self.request.pattern}"[:60], id="always")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "no")


class EnvironmentDetails(ModalScreen[None]):
    """What `docker inspect` says, in a few readable lines."""

    BINDINGS = [Binding("escape,q,enter", "dismiss(None)", "Close", id="dialog.close")]

    def __init__(self, name: str, info: dict[str, Any],
                 egress: tuple[tuple[str, ...], list[str]] | None = None) -> None:
        """`egress`: an environment with an allowlist: the allowlist, and the lines of what the
        egress proxy refused it (oldest first)."""
        super().__init__()
        self.env_name, self.info, self.egress = name, info, egress

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog details"):
            yield Static(details_text(self.env_name, self.info, self.egress))
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


def details_text(name: str, info: dict[str, Any], egress: tuple[tuple[str, ...], list[str]] | None = None) -> str:
    from glmtui.units import format_bytes

    host, config, state = info.get("HostConfig", {}), info.get("Config", {}), info.get("State", {})
    lines = [
        f"[b]{name}[/b]  {state.get('Status', '?')}  {info.get('Id', '')[:12]}",
        f"image     {config.get('Image', '')}",
        f"workdir   {config.get('WorkingDir', '')}   user {config.get('User') or 'image default'}",
        f"memory    {format_bytes(host.get('Memory') or 0)}   cpus {(host.get('NanoCpus') or 0) / 1e9:g}"
        f"   pids {host.get('PidsLimit')}",
        f"network   {host.get('NetworkMode')}   init {'yes' if host.get('Init') else 'no'}"
        f"   security {', '.join(host.get('SecurityOpt') or []) or 'none'}",
        f"caps      drop {', '.join(host.get('CapDrop') or [])}; add {', '.join(host.get('CapAdd') or [])}",
        "",
        "[b]mounts[/b]",
    ]
    for mount in info.get("Mounts", []):
        source = mount.get("Name") or mount.get("Source")
        lines.append(f"  {source} -> {mount.get('Destination')} ({'rw' if mount.get('RW') else 'ro'})")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    lines += ["", "[b]ports[/b]"] + [f"  {port} -> {bound}" for port, bound in ports.items()] if ports else []
    if egress is not None:
        allow, refused = egress
        lines += ["", "[b]egress[/b] (glmtui env allow / blocked)", f"  allowed  {', '.join(allow) or 'nothing'}"]
        shown = refused[-BLOCKED_SHOWN:]
        if not refused:
            lines.append("  nothing refused yet")
        elif len(shown) < len(refused):
            lines.append(f"  the last {len(shown)} of {len(refused)} refusals:")
        lines += [f"  {escape(line)}" for line in shown]
    lines += ["", "[b]labels[/b]"] + [f"  {k}={v}" for k, v in sorted((config.get("Labels") or {}).items())]
    return "\n".join(lines)
