"""The whole TUI (GlmtuiApp) driven by Pilot against the real Docker engine.

Every key of the environments pane (n s e d l enter), the app's keys (? ctrl+p tab q), the
log pane's keys on a step's output, live updates from Docker events, and the banner while
the engine is unreachable. Assertions read what the user sees (the screen's text, the
tables' cells, notifications) and what Docker says (the `docker` CLI).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, OptionList, Select

import helpers
from helpers import container_exists, container_of, docker, docker_inspect, volume_exists, volume_of
from plan_helpers import make_store, remove_run_leftovers, run_containers, write_plan

from glmtui.config import KEYS, Config
from glmtui.docker.engine import Engine
from glmtui.docker.spec import Mount, Resources
from glmtui.errors import EngineUnreachable
from glmtui.tui.app import GlmtuiApp
from glmtui.tui.screens.dialogs import Confirm, ConfirmRemove, EnvironmentDetails
from glmtui.tui.screens.help import HelpScreen
from glmtui.tui.screens.new_env import NewEnvironment
from glmtui.tui.screens.plan_picker import PastRunsScreen, PlanPickerScreen
from glmtui.tui.widgets.environments import EnvironmentsPane
from glmtui.tui.widgets.log_view import LogView
from glmtui.tui.widgets.agents import AgentList
from glmtui.tui.widgets.chat import ChatPane
from glmtui.tui.widgets.plan_view import PlanPane, StepTable

pytestmark = pytest.mark.docker

SIZE = (160, 45)
HELLO = helpers.PROJECT_ROOT / "plans" / "hello.yaml"


# --- the app, connected to the real engine ------------------------------------------------------


def default_config() -> Config:
    """glmtui's defaults, whatever other tests wrote into the session's user config."""
    values = {key: spec.default for key, spec in KEYS.items()}
    return Config(values, {key: "default" for key in values})


class SessionEngine:
    """The real engine, as seen by the app under test: only this test session's environments.

    Other people's glmtui containers (other test sessions, benchmarks) share this Docker engine;
    hiding them keeps what the pane shows, and the work it does (stats of every visible running
    environment), this test's own. It also counts the app's environment listings and the
    container events it delivered, to tell event-driven refreshes from polling.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.listings: list[float] = []
        self.container_events: list[float] = []
        self.closed_by_the_app = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def list_environments(self, **kwargs: Any) -> Any:
        self.listings.append(time.monotonic())
        return [env for env in await self._engine.list_environments(**kwargs) if ours(env.name)]

    async def events(self, **kwargs: Any) -> AsyncIterator[Any]:
        async for event in self._engine.events(**kwargs):
            if event.type == "container":
                if not ours(event.name):
                    continue
                self.container_events.append(time.monotonic())
            yield event

    async def close(self) -> None:
        self.closed_by_the_app = True
        await self._engine.close()


def ours(name: str | None) -> bool:
    return bool(name) and name.startswith(helpers.SESSION_PREFIX)


@asynccontextmanager
async def tui(
    tmp_path: Path,
    *,
    plan: Path | None = None,
    factory: Callable[[Callable[[], Any]], Any] | None = None,
    wait_connected: bool = True,
    config: Config | None = None,
) -> AsyncIterator[tuple[GlmtuiApp, Pilot]]:
    """The app with a connection of its own to the real engine (closed afterwards), showing this
    session's environments only (SessionEngine).

    `factory(connect)` wraps the real connect (for an engine that is away at first).
    """
    engines: list[SessionEngine] = []

    async def connect() -> SessionEngine:
        engines.append(SessionEngine(await Engine.connect()))
        return engines[-1]

    engine_factory = connect if factory is None else factory(connect)
    app = GlmtuiApp(config=config or default_config(), store=make_store(tmp_path / "data"), plan=plan,
                    engine_factory=engine_factory)
    try:
        async with app.run_test(size=SIZE) as pilot:
            if wait_connected:
                await wait_until(pilot, lambda: app.connected and app.engine.listings, what="connected and listed")
            yield app, pilot
    finally:
        for engine in engines:
            if not engine.closed_by_the_app:
                await engine._engine.close()


# --- what the user sees -------------------------------------------------------------------------


def screen_text(app: GlmtuiApp) -> str:
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


def region_text(app: GlmtuiApp, widget: Any) -> list[str]:
    """The screen's rows inside the widget's content region (what the user reads in that pane)."""
    region = widget.content_region
    strips = app.screen._compositor.render_strips()
    return [strips[y].text[region.x : region.right].rstrip(" ▁▂▃▄▅▆▇█") for y in range(region.y, region.bottom)]


def env_pane(app: GlmtuiApp) -> EnvironmentsPane:
    return app.query_one(EnvironmentsPane)


def env_row(app: GlmtuiApp, name: str) -> dict[str, str] | None:
    """The environment's row in the pane: column key -> the cell's text (None: not listed)."""
    pane = env_pane(app)
    if name not in pane.rows:
        return None
    keys = [column.key.value for column in pane.ordered_columns]
    return {key: str(cell) for key, cell in zip(keys, pane.get_row(name))}


def step_rows(app: GlmtuiApp) -> dict[str, list[str]]:
    table = app.query_one(StepTable)
    out = {}
    for index in range(table.row_count):
        key = table.coordinate_to_cell_key((index, 0)).row_key.value
        out[key] = [str(cell) for cell in table.get_row(key)]
    return out


def notifications(app: GlmtuiApp, severity: str | None = None) -> list[str]:
    return [n.message for n in app._notifications if severity is None or n.severity == severity]


def on_screen(app: GlmtuiApp, widget: Any) -> bool:
    """The widget is drawn inside the terminal (not pushed out of a dialog or off the screen)."""
    region = widget.region
    screen = app.screen.region
    return bool(region.width and region.height) and screen.contains_region(region)


async def wait_until(pilot: Pilot, predicate: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    return await helpers.until(predicate, timeout, what=what, pause=pilot.pause, shown=lambda: screen_text(pilot.app))


async def select_env(pilot: Pilot, app: GlmtuiApp, name: str) -> None:
    """Focus the environments pane and move its cursor to `name` with the arrow keys."""
    pane = env_pane(app)
    pane.focus()
    await wait_until(pilot, lambda: name in pane.rows, what=f"{name} in the environments pane")
    for _ in range(200):
        if pane.selected_key == name:  # its name, or ENGINE/NAME with several engines
            return
        target = pane.get_row_index(name)
        await pilot.press("down" if target > pane.cursor_row else "up")
    raise AssertionError(f"could not select {name}")


async def type_into(pilot: Pilot, widget: Input, text: str) -> None:
    """Replace the field's text as a user does: to the start, delete to the end, then type the text
    (long text is pasted, as from the terminal: a key press costs tens of milliseconds)."""
    widget.focus()
    await pilot.pause()
    await pilot.press("ctrl+a", "ctrl+k")
    if len(text) > 12:
        widget.post_message(events.Paste(text))
        await pilot.pause()
    else:
        await pilot.press(*text)


async def docker_cli(*args: str) -> str:
    """`docker ARGS` without blocking the app's event loop (the app keeps processing events)."""
    process = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"docker {' '.join(args)}: {err.decode()}"
    return out.decode()


def shell_processes(name: str) -> list[str]:
    """Processes in the environment other than its init, its keep-alive and the `ps` itself."""
    lines = helpers.processes(name).splitlines()[1:]
    return [line for line in lines if not re.search(r"docker-init|tail -f /dev/null|ps -o pid,args", line)]


# --- n: the new-environment form ---------------------------------------------------------------


async def open_new_form(pilot: Pilot, app: GlmtuiApp) -> NewEnvironment:
    env_pane(app).focus()
    await pilot.press("n")
    screen = await wait_until(pilot, lambda: isinstance(app.screen, NewEnvironment) and app.screen, what="the form")
    await pilot.pause(0.1)
    return screen


async def test_new_form_shows_every_field_with_the_defaults(tmp_path: Path) -> None:
    async with tui(tmp_path) as (app, pilot):
        form = await open_new_form(pilot, app)
        text = screen_text(app)
        for label in ("New environment", "name", "image", "memory", "cpus", "network"):
            assert label in text
        assert form.query_one("#memory", Input).value == "1g"
        assert form.query_one("#cpus", Input).value == "2"
        assert form.query_one("#network", Select).value == "bridge"
        problems = []
        # the images offered are the engine's, the configured default image chosen
        chosen = form.query_one("#image", Select).value
        if chosen != KEYS["default_image"].default:
            problems.append(f"the image chosen is {chosen!r}, not the configured default_image "
                            f"{KEYS['default_image'].default!r}")
        # every field and both buttons are on the screen
        for selector in ("#mounts", "#create", "#cancel"):
            if not on_screen(app, form.query_one(selector)):
                problems.append(f"{selector} is not on the screen (at {form.query_one(selector).region})")
        if "mounts (HOST:CONTAINER[:ro], comma separated)" not in text:
            problems.append("the mounts label is not on the screen")
        assert not problems, "\n".join(problems) + "\n" + text
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewEnvironment))


async def test_new_form_rejects_what_the_cli_rejects_and_creates_nothing(tmp_path: Path, env_name: str) -> None:
    bad = {"name": "Bad Name", "memory": "lots", "cpus": "0", "mounts": "nope"}
    cli = helpers.run_glmtui_many([
        ["env", "create", bad["name"]],
        ["env", "create", env_name, "--memory", bad["memory"]],
        ["env", "create", env_name, "--cpus", bad["cpus"]],
        ["env", "create", env_name, "--mount", bad["mounts"]],
    ])
    expected = {}
    for field_name, result in zip(bad, cli):
        assert result.returncode == 2, result.stderr
        expected[field_name] = helpers.one_error_line(result.stderr).removeprefix("glmtui: error: ")
    shown_on_screen: dict[str, bool] = {}
    good = {"name": env_name, "memory": "1g", "cpus": "2", "mounts": ""}
    async with tui(tmp_path) as (app, pilot):
        form = await open_new_form(pilot, app)
        await type_into(pilot, form.query_one("#name", Input), env_name)
        for field_name, value in bad.items():
            await type_into(pilot, form.query_one(f"#{field_name}", Input), value)
            await pilot.press("enter")
            error = form.query_one("#error")
            await wait_until(pilot, lambda: str(error.content) == expected[field_name],
                             what=f"the error line for {field_name}: {expected[field_name]!r}, got {str(error.content)!r}")
            assert app.screen is form, "the form stays open on bad input"
            shown_on_screen[field_name] = expected[field_name][:60] in screen_text(app)
            await type_into(pilot, form.query_one(f"#{field_name}", Input), good[field_name])
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewEnvironment))
        await pilot.pause(0.3)
        assert not container_exists(env_name) and not volume_exists(env_name)
        assert env_row(app, env_name) is None
    assert all(shown_on_screen.values()), f"the error line is not on the screen for: {shown_on_screen}"


async def test_n_creates_an_environment_that_shows_in_the_pane_and_docker_ps(
    tmp_path: Path, env_name: str, busybox_image: str
) -> None:
    data = tmp_path / "data-to-mount"
    data.mkdir()
    (data / "hello.txt").write_text("mounted\n")
    async with tui(tmp_path) as (app, pilot):
        form = await open_new_form(pilot, app)
        await type_into(pilot, form.query_one("#name", Input), env_name)
        image = form.query_one("#image", Select)
        image.focus()
        await pilot.press("enter", *"glmtui/busybox:l", "enter")  # open the list, type to find, choose
        await wait_until(pilot, lambda: image.value == busybox_image, what="busybox chosen")
        await type_into(pilot, form.query_one("#memory", Input), "256m")
        await type_into(pilot, form.query_one("#cpus", Input), "1.5")
        network = form.query_one("#network", Select)
        network.focus()
        await pilot.press("enter", *"none", "enter")
        await wait_until(pilot, lambda: network.value == "none", what="network none")
        await type_into(pilot, form.query_one("#mounts", Input), f"{data}:/data:ro")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewEnvironment), what="the form to close")
        row = await wait_until(pilot, lambda: (env_row(app, env_name) or {}).get("status") == "running"
                               and env_row(app, env_name), what=f"{env_name} running in the pane")
        assert row["image"] == busybox_image.removesuffix(":latest") and row["mark"] == "●"
        assert re.search(rf"●\s+{env_name}\s+running", screen_text(app))
        await wait_until(pilot, lambda: f"created {env_name}" in notifications(app), what="the notification")
        # Docker agrees
        assert env_name in [n.removeprefix("glmtui-") for n in docker("ps", "--format", "{{.Names}}").stdout.split()]
        info = docker_inspect(env_name)
        assert info["HostConfig"]["Memory"] == 256 * 1024**2
        assert info["HostConfig"]["NanoCpus"] == 1_500_000_000
        assert info["HostConfig"]["NetworkMode"] == "none"
        assert {"Source": str(data), "Destination": "/data", "RW": False}.items() <= next(
            m for m in info["Mounts"] if m["Destination"] == "/data").items()
        assert helpers.docker("exec", container_of(env_name), "cat", "/data/hello.txt").stdout == "mounted\n"


# --- s, e, d, l, enter ------------------------------------------------------------------------


async def test_s_stops_and_starts_the_selected_environment(tmp_path: Path, make_env: Any) -> None:
    env = await make_env()
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env.name)
        assert env_row(app, env.name)["status"] == "running"
        await wait_until(pilot, lambda: env_row(app, env.name)["mem"], timeout=10, what="its usage")
        await pilot.press("s")
        await wait_until(pilot, lambda: env_row(app, env.name)["status"] == "exited", what="exited in the pane")
        assert helpers.container_status(env.name) == "exited"
        assert env_row(app, env.name)["mark"] == "○"
        await pilot.pause(1.5)  # a stopped one shows no usage (not its last sample), the stats shown since included
        assert (env_row(app, env.name)["cpu"], env_row(app, env.name)["mem"]) == ("", "")
        await pilot.press("s")
        await wait_until(pilot, lambda: env_row(app, env.name)["status"] == "running", what="running again")
        assert helpers.container_status(env.name) == "running"
        await wait_until(pilot, lambda: f"started {env.name}" in notifications(app), what="the notification")


async def test_e_on_a_stopped_environment_says_how_to_start_it(tmp_path: Path, make_env: Any) -> None:
    env = await make_env()
    docker("stop", "-t", "1", container_of(env.name))
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env.name)
        await wait_until(pilot, lambda: env_row(app, env.name)["status"] == "exited")
        await pilot.press("e")
        await wait_until(pilot, lambda: f"{env.name} is stopped: s starts it" in notifications(app))


async def test_e_where_the_terminal_cannot_be_suspended_notifies_and_leaves_no_shell(
    tmp_path: Path, make_env: Any
) -> None:
    """Pilot's headless driver cannot suspend (App.suspend raises SuspendNotSupported): the app
    must say so clearly, keep running, and leave no shell behind in the environment. The real
    shell is covered by tests/test_tui_e2e.py in tmux."""
    env = await make_env()
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env.name)
        await pilot.press("e")
        errors = await wait_until(pilot, lambda: notifications(app, "error"), what="a notification")
        await pilot.pause(0.3)
        assert app.is_running and isinstance(app.screen.focused, EnvironmentsPane)
        message = errors[-1]
        problems = []
        if "shell" not in message.lower() or re.match(r"[A-Z]\w+: ", message):
            problems.append(f"the notification should say in words that the shell cannot open here, not {message!r}")
        left = shell_processes(env.name)
        if left:
            problems.append(f"the shell opened for `e` is left running in the environment: {left}")
        assert not problems, "\n".join(problems)


async def test_d_asks_first_then_removes_the_container_and_keeps_or_removes_the_volume(
    tmp_path: Path, make_env: Any
) -> None:
    keep = await make_env()
    drop = await make_env()
    async with tui(tmp_path) as (app, pilot):
        # d, then escape: nothing happens
        await select_env(pilot, app, keep.name)
        await pilot.press("d")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, ConfirmRemove) and app.screen)
        text = screen_text(app)
        assert f"Remove environment {keep.name}?" in text
        assert "also remove its workspace volume (its files)" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmRemove))
        await pilot.pause(0.2)
        assert container_exists(keep.name) and env_row(app, keep.name) is not None
        # d, Remove: the container goes, its volume stays
        await pilot.press("d")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, ConfirmRemove) and app.screen)
        dialog.query_one("#remove", Button).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: env_row(app, keep.name) is None, what=f"{keep.name} gone from the pane")
        assert not container_exists(keep.name)
        assert volume_of(keep.name) in docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
        await wait_until(pilot, lambda: f"removed {keep.name}" in notifications(app), what="the notification")
        # d, tick the volume, Remove: both go
        await select_env(pilot, app, drop.name)
        await pilot.press("d")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, ConfirmRemove) and app.screen)
        dialog.query_one("#volume", Checkbox).focus()
        await pilot.press("space")
        assert dialog.query_one("#volume", Checkbox).value is True
        dialog.query_one("#remove", Button).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: env_row(app, drop.name) is None, what=f"{drop.name} gone from the pane")
        assert not container_exists(drop.name)
        assert volume_of(drop.name) not in docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
        await wait_until(pilot, lambda: f"removed {drop.name} and its volume" in notifications(app), what="the notification")
    helpers.remove_quietly(keep.name)


async def test_l_shows_the_environment_main_process_log(tmp_path: Path, env_name: str, busybox_image: str) -> None:
    docker("run", "-d", "--label", "glmtui.managed=true", "--label", f"glmtui.env={env_name}",
           "--name", container_of(env_name), busybox_image,
           "sh", "-c", "echo hello-from-main; echo oops-on-stderr >&2; sleep 600")
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env_name)
        await pilot.press("l")
        log = app.query_one(LogView)
        await wait_until(pilot, lambda: "hello-from-main" in screen_text(app), what="the main process's output")
        text = screen_text(app)
        assert "oops-on-stderr" in text
        assert f"env {env_name}" in text  # the log pane's title
        assert log.border_title == f"env {env_name}"
        assert "following · 2 lines" in text
        # it follows: new output appears
        await docker_cli("exec", container_of(env_name), "sh", "-c", "echo later-line > /proc/1/fd/1")
        await wait_until(pilot, lambda: "later-line" in screen_text(app), what="a line written later")


def clock_text(at: float) -> str:
    """A time as the log pane's `t` shows it (local time, to the millisecond)."""
    moment = datetime.fromtimestamp(at)
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"


def engine_times(name: str) -> dict[str, str]:
    """line -> the time the engine gave it, as `t` shows it (`docker logs --timestamps`)."""
    out = docker("logs", "--timestamps", container_of(name))
    times = {}
    for line in (out.stdout + out.stderr).splitlines():
        stamp, _, text = line.partition(" ")
        seconds, _, fraction = stamp.rstrip("Z").partition(".")
        at = datetime.fromisoformat(f"{seconds}.{fraction[:3]:0<3}+00:00").timestamp()
        times[text] = clock_text(at)
    return times


async def test_t_shows_the_engines_time_of_each_environment_log_line_the_same_when_reopened(
    tmp_path: Path, env_name: str, busybox_image: str
) -> None:
    docker("run", "-d", "--label", "glmtui.managed=true", "--label", f"glmtui.env={env_name}",
           "--name", container_of(env_name), busybox_image,
           "sh", "-c", "echo early-line; sleep 1; echo later-line >&2; sleep 600")
    await asyncio.to_thread(helpers.wait_for, lambda: "later-line" in engine_times(env_name), 20, 0.2, "both lines")
    expected = engine_times(env_name)
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env_name)
        await pilot.press("l")
        log = app.query_one(LogView)
        await wait_until(pilot, lambda: log.line_count == 2, what="the two lines")
        log.focus()
        await pilot.press("t")
        for line in ("early-line", "later-line"):
            await wait_until(pilot, lambda: f"{expected[line]} {line}" in screen_text(app), what=f"{line}'s time")
        await pilot.pause(1.1)
        env_pane(app).focus()
        await pilot.press("l")  # opened again: the same times
        await wait_until(pilot, lambda: log.line_count == 2, what="the two lines again")
        for line in ("early-line", "later-line"):
            await wait_until(pilot, lambda: f"{expected[line]} {line}" in screen_text(app), what=f"{line}'s time")


async def test_enter_shows_limits_mounts_and_labels(tmp_path: Path, make_env: Any) -> None:
    shared = Path(tempfile.mkdtemp(prefix="glmtui-details-"))  # short: one line in the dialog
    try:
        env = await make_env(resources=Resources(256 * 1024**2, 1.5, 200), network="none",
                             mounts=(Mount(str(shared), "/data", True),))
        async with tui(tmp_path) as (app, pilot):
            await select_env(pilot, app, env.name)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, EnvironmentDetails), what="the details")
            await pilot.pause(0.1)
            text = screen_text(app)
            assert f"{env.name}  running" in text
            assert "memory    256.0MiB   cpus 1.5   pids 200" in text
            assert "network   none   init yes   security no-new-privileges" in text
            assert "caps      drop ALL; add CHOWN" in text
            assert f"{volume_of(env.name)} -> /workspace (rw)" in text
            assert f"{shared} -> /data (ro)" in text
            assert f"glmtui.env={env.name}" in text and "glmtui.managed=true" in text
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, EnvironmentDetails))
    finally:
        shutil.rmtree(shared, ignore_errors=True)


async def test_running_environments_show_cpu_and_memory(tmp_path: Path, make_env: Any) -> None:
    env = await make_env()
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env.name)
        await wait_until(pilot, lambda: env_row(app, env.name)["mem"], timeout=10, what="stats in the pane")
        row = env_row(app, env.name)
        assert re.fullmatch(r"\d+%", row["cpu"]), row
        assert re.fullmatch(r"[\d.]+(B|KiB|MiB|GiB) \d+%", row["mem"]), row
        line = next(line for line in screen_text(app).splitlines() if env.name in line)
        assert row["mem"] in line, f"the memory cell is cut on the screen: {row['mem']!r} not in {line!r}"


# --- live: Docker events, the engine going away ------------------------------------------------


async def test_a_long_name_leaves_the_image_column_whole(tmp_path: Path, make_env: Any, busybox_image: str) -> None:
    env = await make_env(name=f"{helpers.unique_name()}-with-a-rather-long-name")
    async with tui(tmp_path) as (app, pilot):
        await select_env(pilot, app, env.name)
        await wait_until(pilot, lambda: env_row(app, env.name)["mem"], timeout=10, what="its usage")
        line = next(line for line in region_text(app, env_pane(app)) if env.name[:15] in line)
        assert f"{env.name[:15]}…" in line and line.rstrip().endswith(busybox_image.removesuffix(":latest")), line


async def test_a_container_stopped_outside_changes_the_pane_within_a_second(tmp_path: Path, make_env: Any) -> None:
    env = await make_env()
    async with tui(tmp_path) as (app, pilot):
        await wait_until(pilot, lambda: (env_row(app, env.name) or {}).get("status") == "running")
        await docker_cli("stop", "-t", "1", container_of(env.name))
        stopped = time.monotonic()
        await wait_until(pilot, lambda: env_row(app, env.name)["status"] == "exited", timeout=5)
        took = time.monotonic() - stopped
        assert took < 1.5, f"the pane took {took:.2f}s to show the stop (events, not polling: about a second at most)"
        assert re.search(rf"○\s+{env.name}\s+exited", screen_text(app))
        # no polling: in a quiet while, the pane lists environments only after container events
        await pilot.pause(0.5)
        engine: SessionEngine = app.engine  # type: ignore[assignment]
        start = time.monotonic()
        await pilot.pause(2.5)
        listings = [t for t in engine.listings if t >= start]
        events = [t for t in engine.container_events if t >= start - 0.1]
        assert len(listings) <= len(events), f"{len(listings)} listings for {len(events)} container events"


async def test_unreachable_engine_shows_the_banner_until_it_comes_back(tmp_path: Path, make_env: Any) -> None:
    env = await make_env()
    attempts: list[float] = []

    def factory(connect: Callable[[], Any]) -> Callable[[], Any]:
        async def make() -> Any:
            attempts.append(time.monotonic())
            if len(attempts) <= 2:
                raise EngineUnreachable("cannot reach the Docker engine at unix:///nowhere.sock (no such file)")
            return await connect()
        return make

    async with tui(tmp_path, factory=factory, wait_connected=False) as (app, pilot):
        await wait_until(pilot, lambda: "⚠ cannot reach the Docker engine at unix:///nowhere.sock" in screen_text(app),
                         timeout=5, what="the banner")
        assert "reconnecting…" in screen_text(app)
        assert not app.connected
        await pilot.press("n")  # nothing to do without an engine: it says so
        await wait_until(pilot, lambda: "the Docker engine is unreachable" in notifications(app, "error"))
        assert not isinstance(app.screen, NewEnvironment)
        await wait_until(pilot, lambda: app.connected, timeout=10, what="the reconnection")
        await wait_until(pilot, lambda: env_row(app, env.name) is not None, what="the environments listed")
        assert "cannot reach" not in screen_text(app)
        assert not app.query_one("#banner").display
        assert len(attempts) == 3


# --- the app's keys -----------------------------------------------------------------------------


async def test_help_lists_the_focused_pane_bindings_and_the_app_bindings(tmp_path: Path) -> None:
    async with tui(tmp_path, plan=HELLO) as (app, pilot):
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        for key, description in [("n", "New"), ("s", "Start/stop"), ("e", "Shell"), ("d", "Remove"), ("l", "Logs"),
                                 ("c", "Chat here"), ("enter", "Details")]:
            assert re.search(rf"\b{re.escape(key)}\s+{re.escape(description)}\b", text), (key, description)
        assert "Environments" in text and "Everywhere" in text
        for key, description in [("?", "Help"), ("ctrl+p", "Commands"), ("tab", "Next pane"), ("q", "Quit")]:
            assert re.search(rf"{re.escape(key)}\s+{re.escape(description)}", text), (key, description)
        assert "Next match" not in text  # the log pane's keys are not the focused pane's
        assert re.search(r"r\s+Run plan", text) and re.search(r"/\s+Search log", text)  # from anywhere
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        # on the log pane: its keys
        app.query_one(LogView).focus()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        for key, description in [("/", "Search"), ("n", "Next match"), ("t", "Timestamps"), ("w", "Wrap"),
                                 ("f,end", "Follow")]:
            assert re.search(rf"{re.escape(key)}\s+{re.escape(description)}", text), (key, description)
        assert "Start/stop" not in text and "Quit" in text
        await pilot.press("escape")
        # on the plan pane: its keys
        app.query_one(StepTable).focus()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        assert re.search(r"enter\s+Run", text) and re.search(r"r\s+Pick plan", text) and "Quit" in text


async def test_help_in_the_chat_lists_only_the_keys_that_work_there(tmp_path: Path) -> None:
    """In the chat letters type: its help lists its own keys (f1 is help there) and of the app's
    only those a text field does not take; `?` types into the message."""
    async with tui(tmp_path) as (app, pilot):
        chat = app.query_one(ChatPane)
        app.query_one(LogView).focus()
        await pilot.press("c")  # the chat, from any pane
        await wait_until(pilot, lambda: chat.input.has_focus, what="the chat")
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, HelpScreen) and chat.input.value == "?"
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        text = screen_text(app)
        assert "Everywhere (letters type into the field)" in text
        assert re.search(r"f1\s+Help", text) and re.search(r"ctrl\+n\s+New chat", text)
        assert re.search(r"tab\s+Next pane", text) and re.search(r"ctrl\+p\s+Commands", text)
        for typed in (r"r\s+Run plan", r"/\s+Search log", r"q\s+Quit", r"\?\s+Help", r"c\s+Chat\b"):
            assert not re.search(typed, text), typed


async def test_a_key_that_cannot_act_says_why(tmp_path: Path) -> None:
    """p in the log pane names the pane it belongs to; R with nothing to resume says so; an empty
    environments pane says n creates one."""
    async with tui(tmp_path, plan=HELLO) as (app, pilot):
        assert "none yet: n creates one" in screen_text(app)
        app.query_one(LogView).focus()
        await pilot.press("p")
        await wait_until(pilot, lambda: "p (Past runs) is a key of the Plan pane: tab to it" in notifications(app),
                         what="p explained")
        app.query_one(StepTable).focus()
        await pilot.press("R")
        await wait_until(pilot, lambda: "nothing to resume: R resumes a failed or cancelled run (p opens past runs)"
                         in notifications(app, "warning"), what="R explained")
        await pilot.press("C")
        await wait_until(pilot, lambda: "no run is going: C cancels one while it runs" in notifications(app, "warning"),
                         what="C explained")
        env_pane(app).focus()
        await pilot.press("s")
        await wait_until(pilot, lambda: "no environment selected: n creates one" in notifications(app, "warning"))


async def test_palette_finds_environment_new_and_runs_it(tmp_path: Path) -> None:
    async with tui(tmp_path, plan=HELLO) as (app, pilot):
        await pilot.press("ctrl+p")
        palette = await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen)
        await pilot.press(*"env new")
        options = palette.query_one(OptionList)
        await wait_until(pilot, lambda: options.option_count and "Environment: New" in str(options.get_option_at_index(0).prompt),
                         what="Environment: New first in the palette")
        assert "Environment: New" in screen_text(app) and "key n" in screen_text(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, NewEnvironment), what="the form, from the palette")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewEnvironment))
        # the plan's and the log pane's actions are there by name too
        await pilot.press("ctrl+p")
        palette = await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen)
        await pilot.press(*"plan run")
        await wait_until(pilot, lambda: "Plan: Run" in screen_text(app), what="Plan: Run in the palette")
        await pilot.press("ctrl+a", "ctrl+k", *"log wrap")
        await wait_until(pilot, lambda: "Log: Wrap" in screen_text(app), what="Log: Wrap in the palette")
        await pilot.press("ctrl+a", "ctrl+k", *"log search")
        await wait_until(pilot, lambda: "Log: Search" in screen_text(app), what="Log: Search in the palette")
        assert "key /" in screen_text(app) and "key slash" not in screen_text(app)
        await pilot.press("escape")


async def test_r_from_the_environments_pane_picks_a_plan_that_enter_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The footer (README, "The terminal UI"): `r` runs a plan from the main screen, not only from the plan pane."""
    project = tmp_path / "project"
    write_plan(project / "plans", "version: 1\nname: picked\nsteps:\n  - id: a\n    run: echo hi\n", "picked.yaml")
    monkeypatch.chdir(project)
    async with tui(tmp_path) as (app, pilot):
        assert isinstance(app.focused, EnvironmentsPane)
        assert re.search(r"\br Run plan\b", screen_text(app)), "the footer offers it"
        await pilot.press("r")
        picker = await wait_until(pilot, lambda: isinstance(app.screen, PlanPickerScreen) and app.screen)
        await wait_until(pilot, lambda: "plans/picked.yaml" in screen_text(app), what="the plan in the picker")
        await pilot.press(*"picked", "enter")  # the plans other tests opened are listed first
        await wait_until(pilot, lambda: app.screen is not picker)
        pane = app.query_one(PlanPane)
        await wait_until(pilot, lambda: pane.plan_path is not None and pane.plan_path.name == "picked.yaml")
        assert isinstance(app.focused, StepTable)  # enter now runs it
        assert pane.check_action("run", ()) is True


async def test_picking_another_plan_clears_the_step_the_log_pane_showed(
    tmp_path: Path, busybox_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    first = write_plan(project / "plans", """
        version: 1
        name: first
        env: {image: @IMAGE@}
        steps:
          - id: speak
            run: echo spoken-by-the-first-plan
        """, "first.yaml", IMAGE=busybox_image)
    write_plan(project / "plans", "version: 1\nname: second\nsteps:\n  - id: b\n    run: echo hi\n", "second.yaml")
    monkeypatch.chdir(project)
    run_id = None
    try:
        async with tui(tmp_path, plan=first) as (app, pilot):
            run_id = await start_run(pilot, app)
            pane = app.query_one(PlanPane)
            log = app.query_one(LogView)
            await wait_until(pilot, lambda: pane.run_status == "success" and not pane.running, timeout=60)
            await wait_until(pilot, lambda: "spoken-by-the-first-plan" in screen_text(app), what="the step's output")
            assert log.border_title == "speak"
            await pilot.press("r")
            picker = await wait_until(pilot, lambda: isinstance(app.screen, PlanPickerScreen) and app.screen)
            await pilot.press(*"second", "enter")
            await wait_until(pilot, lambda: app.screen is not picker)
            await wait_until(pilot, lambda: pane.plan_path is not None and pane.plan_path.name == "second.yaml")
            await wait_until(pilot, lambda: log.border_title == "Log" and log.line_count == 0, what="the log cleared")
            assert "spoken-by-the-first-plan" not in screen_text(app)
    finally:
        if run_id:
            remove_run_leftovers(run_id)


async def test_slash_from_the_environments_pane_searches_the_log(tmp_path: Path) -> None:
    async with tui(tmp_path) as (app, pilot):
        log = app.query_one(LogView)
        log.write_lines([f"line {i} ERROR" if i == 7 else f"line {i}" for i in range(100)])
        await pilot.pause(0.2)
        assert isinstance(app.focused, EnvironmentsPane)
        await pilot.press("slash", *"error", "enter")
        await wait_until(pilot, lambda: "match 1/1" in log.border_subtitle, what="the match counted")
        assert app.focused is log  # n and N go on from there
        assert "line 7 ERROR" in screen_text(app)


async def test_tab_moves_focus_between_the_panes(tmp_path: Path) -> None:
    async with tui(tmp_path, plan=HELLO) as (app, pilot):
        order = [EnvironmentsPane, AgentList, StepTable, LogView, ChatPane, EnvironmentsPane]
        assert isinstance(app.focused, order[0])
        for expected in order[1:]:
            await pilot.press("tab")
            await pilot.pause()
            assert isinstance(app.focused, expected), (expected, app.focused)
        await pilot.press("shift+tab")
        await pilot.pause()
        assert isinstance(app.focused, ChatPane)


async def test_q_quits_at_once_when_nothing_runs_and_closes_the_engine(tmp_path: Path) -> None:
    async with tui(tmp_path) as (app, pilot):
        engine: SessionEngine = app.engine  # type: ignore[assignment]
        await pilot.press("q")
        await wait_for_exit(app)
    assert app.return_value == 0
    # its connection is closed when it quits (else aiohttp warns on the user's terminal)
    assert engine.closed_by_the_app, "the app quit without closing its engine connection"


async def wait_for_exit(app: GlmtuiApp, timeout: float = 20) -> None:
    await helpers.until(lambda: not app.is_running, timeout, what="the app to exit")


# --- plans in the app: run, output, cancel, quit during a run ----------------------------------


SLEEPY = """
    version: 1
    name: sleepy
    env: {image: @IMAGE@}
    steps:
      - id: nap
        run: |
          echo going to sleep
          sleep 30
      - id: after
        needs: [nap]
        run: echo never
    """


async def start_run(pilot: Pilot, app: GlmtuiApp) -> str:
    """Tab to the plan's steps and press enter; the run's id."""
    await pilot.press("tab", "tab")
    assert isinstance(app.focused, StepTable)
    await pilot.press("enter")
    pane = app.query_one(PlanPane)
    await wait_until(pilot, lambda: pane.run_id, what="the run to start")
    return pane.run_id


async def test_a_plan_run_shows_each_step_status_and_output(tmp_path: Path, busybox_image: str) -> None:
    run_id = None
    try:
        async with tui(tmp_path, plan=HELLO) as (app, pilot):
            run_id = await start_run(pilot, app)
            pane = app.query_one(PlanPane)
            await wait_until(pilot, lambda: pane.run_status == "success" and not pane.running, timeout=60)
            await pilot.pause(0.3)
            rows = step_rows(app)
            assert {step: cells[0] for step, cells in rows.items()} == {
                "greet": "✔", "count": "✔", "shout": "↷", "report": "✔", "show": "✔"}
            assert rows["shout"][6].startswith("skipped · condition is false: ${inputs.")
            assert all(re.fullmatch(r"\d+\.\ds", rows[s][6]) for s in ("greet", "count", "report", "show"))
            text = screen_text(app)
            assert f"✔ run {run_id} success in" in text
            assert "every step succeeded" in " ".join(notifications(app))
            # greet was highlighted: the log pane shows its output
            assert app.query_one(LogView).border_title == "greet"
            assert "hello, world" in text
            await pilot.press("down")  # count
            await wait_until(pilot, lambda: re.search(r"the image has \d+ commands", screen_text(app)),
                             what="count's output")
            assert app.query_one(LogView).border_title == "count"
            await pilot.press("down", "down", "down")  # show
            await wait_until(pilot, lambda: re.search(r"hello, world; \d+ commands", screen_text(app)),
                             what="show's output")
    finally:
        if run_id:
            remove_run_leftovers(run_id)


async def test_c_during_a_run_is_the_chat_and_shift_c_asks_before_it_cancels(
    tmp_path: Path, busybox_image: str
) -> None:
    """`c` in the plan pane means the chat, as everywhere (the run goes on); `C` asks, `escape`
    keeps the run, `C` then `y` cancels it and leaves no container."""
    plan = write_plan(tmp_path, SLEEPY, IMAGE=busybox_image)
    run_id = None
    try:
        async with tui(tmp_path, plan=plan) as (app, pilot):
            run_id = await start_run(pilot, app)
            pane = app.query_one(PlanPane)
            await wait_until(pilot, lambda: step_rows(app)["nap"][6].startswith("running"), what="nap running")
            await wait_until(pilot, lambda: "going to sleep" in screen_text(app), what="nap's output")
            assert run_containers(run_id)
            await pilot.press("c")
            await wait_until(pilot, lambda: app.query_one(ChatPane).input.has_focus, what="the chat focused")
            await pilot.pause(0.5)
            assert pane.running and step_rows(app)["nap"][6].startswith("running")
            app.query_one(StepTable).focus()
            await pilot.press("C")
            await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
            assert f"Cancel run {run_id} of sleepy?" in screen_text(app)
            await pilot.press("escape")  # no: it goes on
            await wait_until(pilot, lambda: not isinstance(app.screen, Confirm))
            await pilot.pause(0.5)
            assert pane.running and run_containers(run_id)
            await pilot.press("C")
            await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question again")
            await pilot.press("y")
            await wait_until(pilot, lambda: pane.run_status == "cancelled" and not pane.running, timeout=30)
            await pilot.pause(0.2)
            assert step_rows(app)["nap"][0] == "■" and step_rows(app)["after"][0] == "■"
            assert f"■ run {run_id} cancelled" in screen_text(app)
            assert run_containers(run_id) == []
            await pilot.press("q")  # nothing runs now: no question
            await wait_for_exit(app)
    finally:
        if run_id:
            remove_run_leftovers(run_id)


async def test_q_during_a_run_asks_first_then_cancels_and_quits(tmp_path: Path, busybox_image: str) -> None:
    plan = write_plan(tmp_path, SLEEPY, IMAGE=busybox_image)
    run_id = None
    try:
        async with tui(tmp_path, plan=plan) as (app, pilot):
            run_id = await start_run(pilot, app)
            await wait_until(pilot, lambda: step_rows(app)["nap"][6].startswith("running"), what="nap running")
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
            assert "A plan is running. Cancel it and quit?" in screen_text(app)
            await pilot.press("escape")  # no: it goes on
            await wait_until(pilot, lambda: not isinstance(app.screen, Confirm))
            await pilot.pause(0.3)
            assert app.is_running and app.query_one(PlanPane).running
            assert run_containers(run_id)
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, Confirm))
            await pilot.press("y")
            await wait_for_exit(app, timeout=30)
        assert app.return_value == 0
        assert run_containers(run_id) == []
        assert helpers.docker("ps", "-aq", "--filter", f"label=glmtui.run={run_id}").stdout.strip() == ""
    finally:
        if run_id:
            remove_run_leftovers(run_id)


TICKER = """
    version: 1
    name: ticker
    env: {image: @IMAGE@}
    steps:
      - id: tick
        run: for i in $(seq 1 20); do echo "tick $i"; sleep 0.4; done
      - id: after
        needs: [tick]
        run: echo after the ticks
    """


async def test_a_run_goes_on_while_another_plan_is_picked_and_p_follows_it_again(
    tmp_path: Path, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run belongs to the service, not to the plan pane: picking another plan lets it go on
    (the pane says so, and q still asks), `p` lists it first, and opening it shows its steps and
    its output from the start, then live, to its end."""
    plan = write_plan(tmp_path, TICKER, "ticker.yaml", IMAGE=busybox_image)
    write_plan(tmp_path, "version: 1\nname: other\nsteps:\n  - {id: hello, run: echo hi}\n", "other.yaml")
    monkeypatch.chdir(tmp_path)  # the picker lists the plans here
    run_id = None
    try:
        async with tui(tmp_path, plan=plan) as (app, pilot):
            run_id = await start_run(pilot, app)
            pane = app.query_one(PlanPane)
            log = app.query_one(LogView)
            await wait_until(pilot, lambda: "tick 2" in "\n".join(region_text(app, log)), what="tick's output, live")
            # r, another plan: the run goes on without the pane
            await pilot.press("r")
            await wait_until(pilot, lambda: isinstance(app.screen, PlanPickerScreen), what="the plan picker")
            await pilot.press(*"other", "enter")
            await wait_until(pilot, lambda: list(step_rows(app)) == ["hello"], what="the other plan's preview")
            assert f"run {run_id} of ticker goes on: p shows it" in notifications(app)
            assert not pane.running and pane.check_action("run", ()) is True
            log_file = app.store.log_file(run_id, "tick")
            await wait_until(pilot, lambda: "tick 4" in log_file.read_text(), what="the run going on")
            assert run_containers(run_id)
            # q asks first: the runs of the app end with it
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
            assert "A plan is running. Cancel it and quit?" in screen_text(app)
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, Confirm))
            # p: the run still going comes first; enter follows it again, from its start
            app.query_one(StepTable).focus()
            await pilot.press("p")
            await wait_until(pilot, lambda: isinstance(app.screen, PastRunsScreen), what="the past runs")
            await pilot.pause(0.1)
            listed = [line for line in screen_text(app).splitlines() if re.search(r"\d{8}-\d{6}-[0-9a-f]{6}", line)]
            assert f"▶ {run_id}  ticker  running" in listed[0] and "live" in listed[0]
            await pilot.press("enter")
            await wait_until(pilot, lambda: pane.running and list(step_rows(app)) == ["tick", "after"],
                             what="the run followed again")
            # its events from the first replayed (a moment on a loaded machine)
            await wait_until(pilot, lambda: step_rows(app)["tick"][6].startswith("running"), what="tick running again")
            assert step_rows(app)["after"][6] == "waits for tick"
            assert f"run {run_id}" in screen_text(app)

            def shown() -> list[str]:
                return [line.strip() for line in region_text(app, log) if line.strip()]

            await wait_until(pilot, lambda: "tick 1" in shown() or log.line_count > 3, what="the output from the start")
            await wait_until(pilot, lambda: pane.run_status == "success" and not pane.running, timeout=60,
                             what="the run to end")
            await pilot.pause(0.3)
            assert {step: cells[0] for step, cells in step_rows(app).items()} == {"tick": "✔", "after": "✔"}
            assert f"✔ run {run_id} success in" in screen_text(app)
            # the log pane got every line once: those from before (the run's history), then the live ones
            assert log.border_title == "tick" and log.line_count == 20 and shown()[-1] == "tick 20"
            log.focus()
            await pilot.press("home")
            await wait_until(pilot, lambda: shown()[:3] == ["tick 1", "tick 2", "tick 3"], what="the log's top")
            await pilot.press("q")  # nothing runs now: no question
            await wait_for_exit(app)
    finally:
        if run_id:
            remove_run_leftovers(run_id)


async def test_t_shows_when_a_recorded_step_wrote_each_line_the_same_each_time_it_is_opened(
    tmp_path: Path, busybox_image: str
) -> None:
    from glmtui.steplog import tail

    plan = write_plan(tmp_path, """
        version: 1
        name: slow-talk
        env: {image: @IMAGE@}
        steps:
          - id: talk
            run: |
              echo first-line
              sleep 1.2
              echo second-line
        """, IMAGE=busybox_image)
    run_id = None
    try:
        async with tui(tmp_path, plan=plan) as (app, pilot):
            run_id = await start_run(pilot, app)
            pane = app.query_one(PlanPane)
            await wait_until(pilot, lambda: pane.run_status == "success" and not pane.running, timeout=60)
            written = {line: clock_text(at) for at, line in tail(app.store.log_file(run_id, "talk"), 10)}
            assert written["first-line"] != written["second-line"]
            log = app.query_one(LogView)
            log.focus()
            await pilot.press("t")
            for _ in range(2):  # the past run opened twice, a moment apart: the times the log recorded
                await pilot.pause(1.1)
                app.query_one(StepTable).focus()
                pane.open_run(run_id)
                await wait_until(pilot, lambda: log.border_title == f"talk · run {run_id}" and log.line_count == 2,
                                 what="the recorded step")
                for line in ("first-line", "second-line"):
                    await wait_until(pilot, lambda: f"{written[line]} {line}" in screen_text(app),
                                     what=f"{line}'s time")
    finally:
        if run_id:
            remove_run_leftovers(run_id)


async def test_log_pane_keys_on_a_step_output(tmp_path: Path, busybox_image: str) -> None:
    plan = write_plan(tmp_path, """
        version: 1
        name: chatter
        env: {image: @IMAGE@}
        steps:
          - id: talk
            run: |
              seq 1 80 | sed 's/^/line /'
              echo "needle one"
              echo "line 81"
              echo "needle two"
              echo "needle three $(printf 'x%.0s' $(seq 1 150)) END-OF-LINE-$((6*7))"
        """, IMAGE=busybox_image)
    run_id = None
    try:
        async with tui(tmp_path, plan=plan) as (app, pilot):
            run_id = await start_run(pilot, app)
            pane = app.query_one(PlanPane)
            await wait_until(pilot, lambda: pane.run_status == "success" and not pane.running, timeout=60)
            log = app.query_one(LogView)
            await wait_until(pilot, lambda: log.line_count == 84, what="talk's 84 lines in the log pane")
            await pilot.press("tab")
            assert app.focused is log

            def subtitle() -> str:
                return str(log.border_subtitle)

            await wait_until(pilot, lambda: "needle two" in screen_text(app))
            assert "END-OF-LINE-42" not in "".join(region_text(app, log))  # cut at the pane's width
            assert subtitle() == "following · 84 lines"
            await pilot.press("slash", *"needle", "enter")  # the first match from the top of the view down
            await wait_until(pilot, lambda: subtitle().startswith("match 1/3"), what="the search")
            assert subtitle() == "match 1/3 · paused · 84 lines"
            await pilot.press("N")  # wraps around to the last
            await wait_until(pilot, lambda: subtitle().startswith("match 3/3"))
            await pilot.press("n")  # and back to the first
            await wait_until(pilot, lambda: subtitle().startswith("match 1/3"))
            assert "needle one" in screen_text(app)
            await pilot.press("N")
            await wait_until(pilot, lambda: subtitle().startswith("match 3/3"))
            await pilot.press("t")
            await wait_until(pilot, lambda: "time" in subtitle())
            assert re.search(r"\d\d:\d\d:\d\d\.\d{3} needle one", screen_text(app)), screen_text(app)
            await pilot.press("w")
            await wait_until(pilot, lambda: "wrap" in subtitle())
            await pilot.press("end")
            await wait_until(pilot, lambda: "following" in subtitle())
            assert subtitle() == "match 3/3 · following · wrap · time · 84 lines"
            await wait_until(pilot, lambda: "END-OF-LINE-42" in "".join(region_text(app, log)),
                             what="the long line wrapped")
            await pilot.press("t", "w")
            await wait_until(pilot, lambda: "time" not in subtitle() and "wrap" not in subtitle())
            assert not re.search(r"\d\d:\d\d:\d\d\.\d{3} needle", screen_text(app))
            from glmtui.tui.screens.save_log import SaveLog

            await pilot.press("ctrl+s")  # offered in the data folder, the path said when saved
            dialog = await wait_until(pilot, lambda: isinstance(app.screen, SaveLog) and app.screen, what="the dialog")
            offered = Path(dialog.query_one(Input).value)
            assert offered.parent == app.store.database.parent / "logs" and offered.name.startswith("glmtui-log-talk-")
            await pilot.press("enter")
            await wait_until(pilot, lambda: f"Saved to {offered}" in notifications(app), what="the path said")
            assert offered.read_text().splitlines()[-1].startswith("needle three")
    finally:
        if run_id:
            remove_run_leftovers(run_id)


# --- many engines: every engine's environments, each engine away on its own -------------------


@pytest.fixture
def far_engine(busybox_image: str) -> Any:
    """A second Docker engine of the test's own (tests/private_dockerd.py), with the busybox image."""
    from private_dockerd import PrivateDockerd

    dockerd = PrivateDockerd()
    dockerd.start()
    try:
        dockerd.load_image_from_machine(busybox_image)
        yield dockerd
    finally:
        if dockerd.process is None:
            dockerd.start()
        dockerd.close()


async def test_every_engines_environments_with_an_engine_column_and_a_banner_line_for_one_away(
    tmp_path: Path, make_env: Any, far_engine: Any, busybox_image: str, model_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from model_server import text, tool_calls

    from glmtui.tui.widgets.chat import ChatPane

    near = await make_env()
    far = helpers.unique_name()
    far_engine.docker("run", "-d", "--label", "glmtui.managed=true", "--label", f"glmtui.env={far}",
                      "--name", container_of(far), busybox_image, "sleep", "600")
    monkeypatch.setenv("GLMTUI_TEST_FAR_KEY", "sk-test-far")
    values = {**{key: spec.default for key, spec in KEYS.items()}, "engines.far": {"host": far_engine.host},
              "default_provider": "test", "providers.test.base_url": model_server.base_url,
              "providers.test.api_key_env": "GLMTUI_TEST_FAR_KEY", "providers.test.model": "glm-test",
              "approval": "auto"}
    config = Config(values, {key: "default" for key in values})
    async with tui(tmp_path, config=config) as (app, pilot):
        await wait_until(pilot, lambda: env_row(app, f"far/{far}") and env_row(app, f"default/{near.name}"),
                         what="both engines' environments")
        assert env_row(app, f"far/{far}")["engine"] == "far" and env_row(app, f"far/{far}")["status"] == "running"
        assert env_row(app, f"default/{near.name}")["engine"] == "default"
        # the far engine's events keep its row current
        await asyncio.to_thread(far_engine.docker, "stop", "-t", "1", container_of(far))
        await wait_until(pilot, lambda: env_row(app, f"far/{far}")["status"] == "exited", what="far stopped")
        # an action on it goes to its engine
        await select_env(pilot, app, f"far/{far}")
        await pilot.press("s")
        await wait_until(pilot, lambda: env_row(app, f"far/{far}")["status"] == "running", what="far started")
        assert far_engine.docker("inspect", "-f", "{{.State.Status}}", container_of(far)).stdout.strip() == "running"
        # c on its row: the chat works in it, on its engine (the agent's command runs there)
        far_engine.docker("exec", container_of(far), "sh", "-c", "echo far-side > /tmp/where")
        model_server.script(tool_calls([("c1", "read_file", {"path": "/tmp/where"})]), text("Done."))
        await pilot.press("c")
        pane = app.query_one(ChatPane)
        await wait_until(pilot, lambda: pane.environment == far and pane.input.has_focus, what="the chat in far")
        assert pane.engine_name == "far"
        asked = len(model_server.requests)
        pane.input.value = "write where you are"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(model_server.requests) >= asked + 2 and not pane.busy, timeout=30,
                         what="the reply to end")
        said = model_server.requests[-1].body["messages"][-1]
        assert said["role"] == "tool" and "far-side" in said["content"], said
        assert "No such container" in helpers.docker("exec", container_of(far), "true", check=False).stderr
        # it goes away: a banner line of its own, the other engine's environments stay and act
        await asyncio.to_thread(far_engine.stop)
        line = f"⚠ engine far at {far_engine.host} is unreachable — reconnecting… (the others go on)"
        await wait_until(pilot, lambda: line in str(app.query_one("#banner").content), timeout=30, what="far's banner")
        await wait_until(pilot, lambda: env_row(app, f"far/{far}") is None, what="far's row gone")
        assert env_row(app, f"default/{near.name}")["status"] == "running" and app.connected
        await select_env(pilot, app, f"default/{near.name}")
        await pilot.press("s")
        await wait_until(pilot, lambda: env_row(app, f"default/{near.name}")["status"] == "exited", what="near stopped")
        # back: the banner line goes, its environments come back
        await asyncio.to_thread(far_engine.start)
        await wait_until(pilot, lambda: env_row(app, f"far/{far}") is not None, timeout=40, what="far back")
        assert line not in str(app.query_one("#banner").content)
