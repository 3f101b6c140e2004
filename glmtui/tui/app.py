"""The full-screen glmtui: environments, plan, log, agents and chat panes, keyboard first.

The app owns the engine connection and the backend (`GlmtuiApp.backend`, glmtui.service.backend:
the service that owns plan runs and chat turns) and hands them down; widgets post messages up.
Docker events keep the environments pane current; nothing polls the list. The chat pane works
in the environment the user picked for it (c on its row), whatever the cursor does after.
Once the first screen is drawn the app starts its service (glmtui.service) on the engine: the
agents pane runs executions through it, and while no `glmtui serve` runs, the TUI runs the
schedules of saved agents on it until it quits (glmtui.tui.schedules).
"""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.widgets import Footer, Input, Static, TextArea
from textual.worker import Worker, WorkerState

from glmtui.config import Config, set_value
from glmtui.docker.interface import ContainerEngine
from glmtui.errors import EngineUnreachable, GlmtuiError
from glmtui.store import Store
from glmtui.tui.commands import GlmtuiCommands
from glmtui.tui.messages import (
    AgentsChanged,
    EnvironmentAction,
    SaveAsAgent,
    StepDeselected,
    StepOutput,
    StepSelected,
    TranscriptSelected,
)
from glmtui.tui.schedules import TuiSchedules
from glmtui.tui.screens.dialogs import Confirm, ConfirmRemove, EnvironmentDetails
from glmtui.tui.screens.help import HelpScreen, binding_rows, key_text
from glmtui.tui.screens.new_env import NewEnvironment
from glmtui.tui.widgets.agents import AgentsPane
from glmtui.tui.widgets.chat import ChatPane
from glmtui.tui.widgets.environments import EnvironmentsPane
from glmtui.tui.widgets.log_view import LogView
from glmtui.tui.widgets.plan_view import PlanPane

EngineFactory = Callable[[], Awaitable[Any]]
TYPED_ACTIONS = frozenset({"help", "pick_plan", "search_log", "focus_chat", "leave"})  # app keys a text field types
LOG_TAIL = 1000  # lines of an environment's log shown when it is opened
SCHEDULES_RETRY = 3.0  # seconds: how often the TUI tries to run the schedules while another process does


class GlmtuiApp(App[int]):
    TITLE = "glmtui"
    CSS_PATH = ["app.tcss", "screens/plan.tcss", "screens/chat.tcss", "screens/agents.tcss"]
    COMMANDS = App.COMMANDS | {GlmtuiCommands}
    # Screen classes by the terminal's size (app.tcss lays the panes out by them).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (35, "-tall")]
    BINDINGS = [
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("f1", "help", "Help", show=False, id="app.help_f1"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.commands"),  # the footer has Textual's
        Binding("r", "pick_plan", "Run plan", id="app.plan"),
        Binding("slash", "search_log", "Search log", show=False, id="app.search"),
        Binding("c", "focus_chat", "Chat", id="app.chat"),
        Binding("tab", "focus_next", "Next pane", show=False, id="app.next"),
        Binding("shift+tab", "focus_previous", "Previous pane", show=False, id="app.previous"),
        Binding("q", "leave", "Quit", id="app.quit"),  # ctrl+q (Textual's) quits from a text field too
    ]

    connected: reactive[bool] = reactive(False)

    def __init__(
        self,
        *,
        config: Config | None = None,
        store: Store | None = None,
        plan: Path | None = None,
        engine_factory: EngineFactory | None = None,
        backend_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__()
        self.config = config or Config.load()
        self.store = store or Store()
        self.plan_path = plan
        self.engine: ContainerEngine | None = None  # the app's own: the service's, new environments'
        self.engines: Any | None = None  # glmtui.docker.engines.Engines: every engine, when there are several
        self._away: dict[str, str] = {}  # engine name -> its banner line, while it cannot be reached
        # Starts and follows plan runs and chat turns (glmtui.service.backend.Backend): made once
        # the engine is connected; its work ends with the app (quitting asks first).
        self.backend: Any | None = None
        self._engine_factory = engine_factory or self._connect_docker
        # Given (the web dashboard's TUI: glmtui.service.remote.RemoteBackend), the work is another
        # process's: this TUI has no service, runs no schedules, and quits without cancelling anything.
        self._backend_factory = backend_factory
        self._stats: dict[str, Any] = {}
        self._stats_workers: dict[str, Worker] = {}
        self._refresh_pending = False
        self.service: Any | None = None  # glmtui.service.service.Service: the backend's, for the agents pane
        self.schedules = TuiSchedules(self.store.database.with_name("scheduler.lock"))
        self._agents_log: Any = None
        self._agents_started = False

    async def _connect_docker(self) -> Any:
        from glmtui.docker.engine import Engine

        return await Engine.connect(self.config.get("docker_host"))

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        with Horizontal(id="top"):
            with Vertical(id="left"):
                yield EnvironmentsPane(id="environments")
                yield AgentsPane(config=self.config, store=self.store, schedules=self.schedules, id="agents")
            with Vertical(id="right"):
                yield PlanPane(plan_path=self.plan_path, config=self.config, store=self.store, id="plan")
                yield LogView(id="log")
        yield ChatPane(config=self.config, store=self.store, id="chat")
        yield Footer()

    def on_mount(self) -> None:
        theme = self.config.get("theme")
        if theme in self.available_themes:
            self.theme = theme
        log = self.query_one(LogView)
        log.border_title = "Log"
        log.save_folder = self.store.database.parent / "logs"  # ctrl+s offers the data folder
        self.query_one(EnvironmentsPane).focus()
        self.set_banner("connecting to the Docker engine…")
        self.watch_engine()
        self.set_interval(1.0, self._show_stats)
        # The start-up objects live as long as the app: out of the collector's way, fewer pauses.
        self.call_after_refresh(gc.freeze)

    async def on_unmount(self) -> None:
        await self._stop_service()
        if self.engine is not None:
            await self.engine.close()

    def watch_theme(self, theme: str) -> None:
        if self.is_mounted and theme != self.config.get("theme"):
            try:
                set_value("theme", theme)
            except GlmtuiError as err:
                self.notify(f"theme not saved: {err}", severity="warning")

    def set_banner(self, text: str | None) -> None:
        """The banner: `text` (None: none), then a line for each engine that is away."""
        lines = ([text] if text else []) + list(self._away.values())
        banner = self.query_one("#banner", Static)
        banner.update("\n".join(lines))
        banner.display = bool(lines)

    # -- the engine -------------------------------------------------------------------------

    @work(exclusive=True, group="engine", exit_on_error=False)
    async def watch_engine(self) -> None:
        """Connect (retrying while the engine is away), then follow its events for good: of every
        engine when the configuration has more than one (`engines`), each reconnecting on its own."""
        delay = 0.5
        while self.engine is None:
            try:
                self.engine = await self._engine_factory()
            except EngineUnreachable as err:
                self.set_banner(f"⚠ {err.message} — reconnecting…")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
        if self.engines is None:
            self.engines = self._every_engine()
        self._on_connected(self.engine.name)
        events = self.engines.events() if self.engines is not None else self.engine.events()
        async for event in events:
            if event.action == "disconnected":
                self._on_disconnected(event.engine)
            elif event.action == "reconnected":
                self._on_connected(event.engine)
            elif event.type == "container" and not event.action.startswith("exec_"):
                self.refresh_soon()  # execs do not change the list; runs make many of them

    def _every_engine(self) -> Any:
        """glmtui.docker.engines.Engines over the app's engine and the others configured, when
        there are others (None: the app's engine is all there is)."""
        from glmtui.docker.engines import Engines

        try:
            engines = Engines.from_config(self.config, connected=[self.engine])
        except GlmtuiError as err:  # a configured engine that cannot be: the app's own still works
            self.notify(f"only engine {self.engine.name}: {err}", severity="warning", timeout=10)
            return None
        return engines if len(engines.endpoints.distinct()) > 1 else None

    def _on_connected(self, engine: str | None = None) -> None:
        self._away.pop(engine or self.engine.name, None)
        if engine in (None, self.engine.name):
            self.connected = True
            if self.backend is None:
                self._start_service()
        self.set_banner(None)
        self.refresh_soon()

    def _on_disconnected(self, engine: str | None = None) -> None:
        """An engine went away: a banner line of its own; the others go on."""
        name = engine or self.engine.name
        if name == self.engine.name:
            self.connected = False
            host = getattr(self.engine, "host", "the engine")
        else:
            host = self.engines.endpoint(name).host
        self._away[name] = (f"⚠ engine {name} at {host} is unreachable — reconnecting… (the others go on)"
                            if self.engines is not None else
                            f"⚠ the Docker engine at {host} is unreachable — reconnecting…")
        self.query_one(EnvironmentsPane).border_subtitle = f"engine {name} unreachable"
        self.set_banner(None)
        for key in [key for key in self._stats_workers if self.engines is None or key.startswith(f"{name}/")]:
            self._stats_workers.pop(key).cancel()
        self.refresh_soon()

    def refresh_soon(self) -> None:
        """Events come in bursts (create, start, attach…): one listing per burst."""
        if not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(0.05, self.refresh_environments)

    @work(exclusive=True, group="env-list", exit_on_error=False)
    async def refresh_environments(self) -> None:
        self._refresh_pending = False
        if self.engine is None or not self.connected and self.engines is None:
            return
        pane = self.query_one(EnvironmentsPane)
        pane.lay_out(compact=pane.compact, by_engine=self.engines is not None)
        if self.engines is None:
            pane.environments = await self.engine.list_environments()
        else:  # the engines that answer, each asked at once (one away is in the banner, not waited for)
            names = [e.name for e in self.engines.endpoints.distinct() if e.name not in self._away]
            listed = await asyncio.gather(*(self.engines.list_environments(engine=name) for name in names),
                                          return_exceptions=True)
            found = [env for result in listed if not isinstance(result, BaseException) for env in result[0]]
            pane.environments = sorted(found, key=lambda env: (env.name, env.engine))
        on_mine = [env for env in pane.environments if env.engine == self.engine.name]
        self._list_for_chat()
        self.query_one(AgentsPane).environments = [env.name for env in on_mine]
        self._follow_stats(pane)
        if self.service is not None and not self._agents_started:
            self._agents_started = True
            self.call_after_refresh(self._start_agents)  # after the first screen: it costs imports

    # -- the service: agent executions and the schedules --------------------------------------

    def _start_service(self) -> None:
        """The service (glmtui.service) on the engine, once: plan runs, chat turns and agent
        executions started from the TUI run on it, the panes through the backend. Its lines
        (executions started, ended, skipped) go to agents.log beside the store."""
        from glmtui.service.backend import LocalBackend
        from glmtui.service.serve import AgentsLog
        from glmtui.service.service import Service

        if self._backend_factory is not None:
            self.backend = self._backend_factory()
            self.query_one(AgentsPane).no_service = ("agents run in glmtui serve, not in this TUI: "
                                                     "glmtui agents run NAME, or POST /api/v1/agents/NAME/run")
            self.query_one(PlanPane).backend = self.backend
            self.query_one(ChatPane).backend = self.backend
            return
        self._agents_log = AgentsLog(self.store.database.with_name("agents.log"))
        self.service = Service(self.engine, self.store, self.config, announce=self._announce)
        self.backend = LocalBackend(self.service)
        self.query_one(PlanPane).backend = self.backend
        self.query_one(ChatPane).backend = self.backend

    def _start_agents(self) -> None:
        """The agents pane runs executions on the service; the schedules run on it while no other
        process runs them (tried again every SCHEDULES_RETRY seconds)."""
        pane = self.query_one(AgentsPane)
        pane.service = self.service
        self._take_schedules()
        self.set_interval(SCHEDULES_RETRY, self._take_schedules)
        pane.changed_here()

    def _announce(self, line: str) -> None:
        """A line of the service (an execution started, ended or skipped): agents.log, the pane."""
        if self._agents_log is not None:
            self._agents_log.line(line)
        try:
            self.query_one(AgentsPane).changed_here()
        except NoMatches:  # the app is closing
            pass

    def _take_schedules(self) -> None:
        """Run the schedules here while no `glmtui serve` (or other TUI) does."""
        if self.service is not None:
            self.schedules.take(self.service)

    @on(AgentsChanged)
    def on_agents_changed(self) -> None:
        self.schedules.reload()

    async def _stop_service(self) -> None:
        """Stop the schedules and cancel the executions still running (each cleans up)."""
        await self.schedules.stop()
        if self.backend is not None:
            await self.backend.close()  # the service's work cancelled, each clean-up to its end
        if self._agents_log is not None:
            self._agents_log.close()
            self._agents_log = None

    def _executions_running(self) -> list[Any]:
        return [work for work in self.service.running() if work.kind == "execution"] if self.service else []

    def _plan_runs(self) -> list[Any]:
        return [work for work in self.service.running() if work.kind == "run"] if self.service else []

    def _follow_stats(self, pane: EnvironmentsPane) -> None:
        running = {pane.key_of(env): env for env in pane.environments if env.running}
        wanted = set(running) & set(pane.visible_names())
        for key in list(self._stats_workers):
            if key not in wanted:
                self._stats_workers.pop(key).cancel()
                self._stats.pop(key, None)
        for key in wanted - set(self._stats_workers):
            env = running[key]
            self._stats_workers[key] = self.run_worker(
                self._stats_of(key, env.name, env.engine), group=f"stats-{key}", exclusive=True, exit_on_error=False
            )

    async def _stats_of(self, key: str, name: str, engine: str) -> None:
        try:
            async for sample in (await self._engine_named(engine)).stats(name):
                self._stats[key] = sample
        except GlmtuiError:
            self._stats.pop(key, None)  # it stopped or went away: the next listing says so

    async def _engine_named(self, engine: str | None) -> Any:
        """The engine called `engine` (None: the app's own)."""
        if engine is None or engine == self.engine.name or self.engines is None:
            return self.engine
        return await self.engines.get(engine)

    def _show_stats(self) -> None:
        try:
            pane = self.query_one(EnvironmentsPane)
        except NoMatches:  # the app is closing: its widgets go before its timers
            return
        if self._stats != pane.stats:
            pane.stats = dict(self._stats)

    # -- environment actions ----------------------------------------------------------------

    @on(EnvironmentAction)
    def on_environment_action(self, message: EnvironmentAction) -> None:
        engine = message.engine or (self.engine.name if self.engine is not None else None)
        if self.engine is None or engine in self._away or (engine == self.engine.name and not self.connected):
            self.notify("the Docker engine is unreachable" + (f" ({engine})" if self.engines is not None else ""),
                        severity="error")
            return
        handler = getattr(self, f"_env_{message.action}")
        if message.action == "new":  # new ones are made on the app's own engine
            handler(message.name)
        else:
            handler(message.name, message.engine)

    @work(group="env-action", exit_on_error=False)
    async def _env_new(self, _: str | None) -> None:
        images = sorted({tag for image in await self.engine.list_images() for tag in image.get("RepoTags") or []})
        spec = await self.push_screen_wait(NewEnvironment(images, self.config))
        if spec is None:
            return
        self.notify(f"creating {spec.name} from {spec.image}…")
        await self.engine.create_environment(spec, on_progress=lambda line: self.set_banner(f"⏳ {line}"))
        self.set_banner(None)
        self.notify(f"created {spec.name}")

    def _list_for_chat(self) -> None:
        """The chat pane hears of the environments of its engine (stopped, removed)."""
        chat = self.query_one(ChatPane)
        engine = chat.engine_name or (self.engine.name if self.engine is not None else None)
        environments = self.query_one(EnvironmentsPane).environments
        chat.environments_listed({env.name: env.status for env in environments if env.engine == engine})

    def _env_chat(self, name: str, engine_name: str | None) -> None:
        chat = self.query_one(ChatPane)
        own = self.engine is not None and engine_name in (None, self.engine.name)
        if chat.chat_in(name, None if own else engine_name):
            self._list_for_chat()
            chat.focus_input()

    @work(group="env-action", exit_on_error=False)
    async def _env_start_stop(self, name: str, engine_name: str | None) -> None:
        engine = await self._engine_named(engine_name)
        env = await engine.get_environment(name)
        if env.running:
            self.notify(f"stopping {name}…")
            await engine.stop_environment(name, timeout=self.config.get("stop_timeout"))
        else:
            await engine.start_environment(name)
            self.notify(f"started {name}")

    @work(group="env-action", exit_on_error=False)
    async def _env_remove(self, name: str, engine_name: str | None) -> None:
        answer = await self.push_screen_wait(ConfirmRemove(name))
        if answer is None:
            return
        await (await self._engine_named(engine_name)).remove_environment(name, volume=answer[1])
        self.notify(f"removed {name}" + (" and its volume" if answer[1] else ""))

    @work(group="env-action", exit_on_error=False)
    async def _env_details(self, name: str, engine_name: str | None) -> None:
        engine = await self._engine_named(engine_name)
        info = await engine.inspect_environment(name)
        egress = None
        from glmtui.docker.spec import LABEL_EGRESS

        if LABEL_EGRESS in ((info.get("Config") or {}).get("Labels") or {}):  # an allowlist: what it refused
            from glmtui.docker.egress import Egress

            proxy = Egress(engine)
            egress = (await proxy.allowlist(name) or (), [refusal.line for refusal in await proxy.blocked(name)])
        await self.push_screen_wait(EnvironmentDetails(name, info, egress))

    @work(group="env-action", exit_on_error=False)
    async def _env_shell(self, name: str, engine_name: str | None) -> None:
        """The TUI steps aside for a shell in the environment (bash, else sh) and comes back after."""
        from glmtui.terminal import attach

        engine = await self._engine_named(engine_name)
        env = await engine.get_environment(name)
        if not env.running:
            self.notify(f"{name} is stopped: s starts it", severity="warning")
            return
        size = self.size
        try:
            with self.suspend():  # opened only once the terminal is ours to hand over
                session = await engine.open_interactive(name, rows=size.height, columns=size.width)
                code = await attach(session)
        except SuspendNotSupported:
            self.notify("a shell cannot open here: this terminal cannot hand itself over", severity="error")
            return
        self.refresh()
        self.notify(f"shell in {name} exited with {code}")

    @work(exclusive=True, group="log-source", exit_on_error=False)
    async def _env_logs(self, name: str, engine_name: str | None) -> None:
        self.query_one(PlanPane).release_log()
        self.query_one(AgentsPane).release_log()
        log = self.query_one(LogView)
        log.show_source(f"env {name}" + (f" · {engine_name}" if self.engines is not None else ""), None)
        partial = {1: "", 2: ""}
        async for stream, data in (await self._engine_named(engine_name)).logs(name, follow=True, tail=LOG_TAIL, timestamps=True):
            lines = (partial[stream] + data.decode("utf-8", "replace")).split("\n")
            partial[stream] = lines.pop()
            # Each line comes with the engine's time of it: what `t` shows, the same each time.
            for at, batch in groupby(map(_engine_timed, lines), key=itemgetter(0)):
                log.write_lines([line for _, line in batch], stream="stderr" if stream == 2 else "stdout", timestamp=at)

    # -- the plan pane and the log pane -----------------------------------------------------

    @on(StepSelected)
    def on_step_selected(self, message: StepSelected) -> None:
        self.query_one(AgentsPane).release_log()
        self._show_in_log(message.title, message.lines, message.log_file)

    @on(StepDeselected)
    def on_step_deselected(self) -> None:
        self.workers.cancel_group(self, "log-source")
        self.query_one(LogView).show_source("Log", None)

    @on(TranscriptSelected)
    def on_transcript_selected(self, message: TranscriptSelected) -> None:
        self.query_one(PlanPane).release_log()
        self._show_in_log(message.title, [("stdout", line, None) for line in message.lines], message.log_file)

    def _show_in_log(self, title: str, lines: list[tuple[str, str, float | None]], log_file: Path | None) -> None:
        """The log pane shows this from now on: `lines` (stream, line, when it was written), then
        what follows."""
        self.workers.cancel_group(self, "log-source")
        log = self.query_one(LogView)
        log.show_source(title, log_file)
        for (stream, at), batch in groupby(lines, key=lambda line: (line[0], line[2])):
            log.write_lines([line for _, line, _ in batch], stream=stream, timestamp=at)

    @on(StepOutput)
    def on_step_output(self, message: StepOutput) -> None:
        self.query_one(LogView).write_lines(message.lines, stream=message.stream, timestamp=message.timestamp)

    # -- app actions ------------------------------------------------------------------------

    def action_help(self) -> None:
        sections = []
        node = self.focused
        while node is not None and node is not self.screen:
            if isinstance(node, Input):  # its editing keys are Textual's; its pane's keys follow
                node = node.parent
                continue
            bindings = list(getattr(node, "BINDINGS", []))
            rows = binding_rows(bindings, getattr(node, "KEY_HELP", None))  # type: ignore[arg-type]
            if rows:
                title = node.border_title or type(node).__name__
                sections.append((str(title), rows))
            node = node.parent
        everywhere = [binding for binding in self.BINDINGS if self.check_action(binding.action, ()) is not False]  # type: ignore[union-attr]
        title = "Everywhere" if not self._typing() else "Everywhere (letters type into the field)"
        sections.append((title, binding_rows(everywhere)))  # type: ignore[arg-type]
        self.push_screen(HelpScreen(sections))

    def _typing(self) -> bool:
        """A text field has the focus: the keys of letters and signs type into it."""
        return isinstance(self.focused, (Input, TextArea))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in TYPED_ACTIONS and self._typing():
            return False  # its key types into the field: neither in the footer nor in the help
        return True

    def on_key(self, event: events.Key) -> None:
        """A letter that does nothing where the focus is says why: the pane's reason when its key
        cannot act now, or which pane the key belongs to. (Keys that act never reach here first
        as unhandled: Textual runs a key's binding after this, so the active ones are skipped.)"""
        if len(self.screen_stack) > 1 or self._typing() or not (event.is_printable and event.character):
            return
        if event.key in self.screen.active_bindings:
            return
        focused = self.focused
        chain = [focused, *focused.ancestors] if focused is not None else []
        for node in chain:
            binding = _binding_for(node, event.key)
            if binding is not None:
                why = getattr(node, "why_not", lambda _action: None)(binding.action)
                if why:
                    self.notify(why, severity="warning", timeout=4)
                return
        for pane in (self.query_one(EnvironmentsPane), self.query_one(PlanPane), self.query_one(LogView),
                     self.query_one(AgentsPane)):
            binding = _binding_for(pane, event.key)
            if binding is not None and pane not in chain:
                title = str(pane.border_title or type(pane).__name__).split()[0]
                self.notify(f"{key_text(event.key)} ({binding.description}) is a key of the {title} pane: tab to it",
                            timeout=4)
                return

    async def action_leave(self) -> None:
        await self.action_quit()

    async def action_quit(self) -> None:
        if self._plan_runs() or self._executions_running():
            self._confirm_quit()
            return
        self.exit(0)

    @work(group="quit", exit_on_error=False)
    async def _confirm_quit(self) -> None:
        from glmtui.units import counted

        runs, executions = len(self._plan_runs()), len(self._executions_running())
        running = ([counted(runs, "plan run") if runs > 1 else "a plan"] if runs else []) + \
            ([counted(executions, "agent execution")] if executions else [])
        one = len(running) == 1 and runs <= 1 and executions <= 1
        question = f"{' and '.join(running)} {'is' if one else 'are'} running. Cancel {'it' if one else 'them'} and quit?"
        question = question[0].upper() + question[1:]
        yes = "Cancel and quit" if executions or runs > 1 else "Cancel run and quit"
        if await self.push_screen_wait(Confirm(question, yes=yes)):
            self.notify("cancelling: the steps stop and throw-away environments are removed…")
            await self._stop_service()  # every run cancelled, each clean-up to its end
            self.exit(0)

    def palette_actions(self) -> list[tuple[str, str, str]]:
        """(name, help, action) of everything the user can do now."""
        actions: list[tuple[str, str, str]] = []
        pane = self.query_one(EnvironmentsPane)
        for binding in pane.BINDINGS:
            if isinstance(binding, Binding) and binding.show:
                action = binding.action.removeprefix("env(").removesuffix(")")
                actions.append((f"Environment: {binding.description}", f"key {key_text(binding.key)}", f"env_action({action})"))
        plan = self.query_one(PlanPane)
        for binding in plan.BINDINGS:
            if isinstance(binding, Binding) and plan.check_action(binding.action, ()) is not False:
                actions.append((f"Plan: {binding.description}", f"key {key_text(binding.key)}", f"plan_action({binding.action!r})"))
        log = self.query_one(LogView)
        for binding in log.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                actions.append((f"Log: {binding.description}", f"key {key_text(binding.key)}", f"log_action({binding.action!r})"))
        chat = self.query_one(ChatPane)
        for binding in chat.BINDINGS:
            if isinstance(binding, Binding) and binding.action in chat.KEY_HELP and \
                    chat.check_action(binding.action, ()) is not False:
                actions.append((f"Chat: {binding.description}", f"key {key_text(binding.key)} · {chat.KEY_HELP[binding.action]}",
                                f"chat_action({binding.action!r})"))
        agents = self.query_one(AgentsPane)
        for binding in agents.BINDINGS:
            if isinstance(binding, Binding) and agents.check_action(binding.action, ()) is not False:
                actions.append((f"Agents: {binding.description}", f"key {key_text(binding.key)} · {agents.KEY_HELP[binding.action]}",
                                f"agents_action({binding.action!r})"))
        actions += [("Help", "every key binding", "help"), ("Quit", "leave glmtui", "quit")]
        return actions

    async def action_env_action(self, action: str) -> None:
        await self.query_one(EnvironmentsPane).run_action(f"env({action!r})")

    async def action_plan_action(self, action: str) -> None:
        await self.query_one(PlanPane).run_action(action)

    async def action_log_action(self, action: str) -> None:
        await self.query_one(LogView).run_action(action)

    async def action_chat_action(self, action: str) -> None:
        await self.query_one(ChatPane).run_action(action)

    async def action_agents_action(self, action: str) -> None:
        await self.query_one(AgentsPane).run_action(action)

    @on(SaveAsAgent)
    def on_save_as_agent(self, message: SaveAsAgent) -> None:
        """ctrl+a in the chat: the new-agent form with the conversation's task."""
        from glmtui.tui.screens.new_agent import AgentDraft

        self.query_one(AgentsPane).new_agent(AgentDraft(message.prompt, message.environment, message.provider,
                                                        message.model))

    def action_focus_chat(self) -> None:
        self.query_one(ChatPane).focus_input()

    def action_search_log(self) -> None:
        """`/` from any pane: the log pane's search prompt (in the log pane its own `/`)."""
        log = self.query_one(LogView)
        log.focus()
        log.action_search()

    def action_pick_plan(self) -> None:
        """`r` from any pane: the plan picker, with the plan pane focused so that `enter` runs
        the plan picked (in the plan pane its own `r` does the same)."""
        pane = self.query_one(PlanPane)
        pane.table.focus()
        pane.action_pick()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place where background work's failures reach the user: one clear line."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, EngineUnreachable):
            self._on_disconnected()
            if event.worker.group == "engine":
                self.watch_engine()
            return
        message = str(error) if isinstance(error, GlmtuiError) else f"{type(error).__name__}: {error}"
        self.notify(message, severity="error", timeout=8)


def _binding_for(node: Any, key: str) -> Binding | None:
    """The binding of `node` (a pane) for `key`, with a description."""
    for binding in getattr(node, "BINDINGS", []):
        if isinstance(binding, Binding) and binding.description and key in binding.key.split(","):
            return binding
    return None


@lru_cache(maxsize=1024)
def _engine_time(stamp: str) -> float | None:
    """The Unix time of the engine's RFC 3339 time to the millisecond (2026-12-07T21:30:00.123)."""
    try:
        return datetime.fromisoformat(stamp + "+00:00").timestamp()
    except ValueError:
        return None


def _engine_timed(line: str) -> tuple[float | None, str]:
    """A line of `docker logs --timestamps` as (its time, its text); (None, line) without one.
    The engine's times are RFC 3339 with up to nine digits of a second, trailing zeros left out."""
    stamp, space, text = line.partition(" ")
    if not space or not stamp.endswith("Z"):
        return None, line
    seconds, _, fraction = stamp[:-1].partition(".")
    at = _engine_time(f"{seconds}.{fraction[:3]:0<3}")
    return (at, text) if at is not None else (None, line)


def run_tui(plan: Path | None = None) -> int:
    return GlmtuiApp(plan=plan).run() or 0
