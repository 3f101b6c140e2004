"""`n`: a form for a new environment, validated as `glmtui env create` validates."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from glmtui.config import Config
from glmtui.docker.spec import NETWORKS, EnvSpec, Mount, Resources, refuse_docker_socket
from glmtui.errors import BadInput


_FIELD_OF_ERROR = (("environment name", "name"), ("memory", "memory"), ("cpus", "cpus"), ("mount", "mounts"))


class NewEnvironment(ModalScreen[EnvSpec | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="new_env.cancel")]

    def __init__(self, images: list[str], config: Config) -> None:
        super().__init__()
        self.config = config
        default = config.get("default_image")
        self.images = [default, *(image for image in images if image != default)]

    def compose(self) -> ComposeResult:
        config = self.config
        with VerticalScroll(classes="dialog form"):  # it scrolls in a small terminal: Create stays reachable
            yield Label("[b]New environment[/b]")
            yield Label("name")
            yield Input(placeholder="e.g. fix-tests", id="name")
            yield Label("image")
            yield Select([(image, image) for image in self.images], value=self.images[0], allow_blank=False, id="image")
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("memory")
                    yield Input(str(config.get("resources.memory")), id="memory")
                with Vertical():
                    yield Label("cpus")
                    yield Input(f"{config.get('resources.cpus'):g}", id="cpus")
                with Vertical():
                    yield Label("network")
                    yield Select([(n, n) for n in NETWORKS], value=config.get("network"), allow_blank=False, id="network")
            yield Label("mounts (HOST:CONTAINER[:ro], comma separated)")
            yield Input(placeholder="./project:/workspace/project", id="mounts")
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self) -> None:
        try:
            spec = self.spec()
        except BadInput as err:
            error = self.query_one("#error", Static)
            error.update(Text(str(err)))
            self._point_at(str(err))
            self.query_one(".buttons").scroll_visible()  # the buttons come after the error: both on screen
            return
        self.dismiss(spec)

    def _point_at(self, error: str) -> None:
        """The field the error is about gets the focus, its cursor after its text."""
        for words, field_id in _FIELD_OF_ERROR:
            if words in error:
                field = self.query_one(f"#{field_id}", Input)
                field.focus()
                field.cursor_position = len(field.value)
                return

    def spec(self) -> EnvSpec:
        def value(widget_id: str) -> str:
            return str(self.query_one(f"#{widget_id}").value or "").strip()

        mounts = tuple(Mount.parse(m.strip()) for m in value("mounts").split(",") if m.strip())
        refuse_docker_socket(mounts, self.config.get("docker_host"),
                             hint="glmtui env create --allow-docker-socket gives it, if you mean it")
        return EnvSpec(
            name=value("name"),
            image=value("image"),
            mounts=mounts,
            resources=Resources.parse(value("memory"), value("cpus"), self.config.get("resources.pids")),
            network=value("network"),
        )
