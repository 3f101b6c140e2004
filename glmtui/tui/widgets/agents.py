"""The agents pane: the saved agents (glmtui.service), their executions and transcripts.

Each agent takes two lines: its name, when it runs next, its last execution and its tokens in
the last 7 days; under them its schedule in words and, when its last execution failed, the
one-line reason. The line at the bottom says who runs the schedules. `enter` lists the
agent's executions, newest first (`esc` goes back; under them the highlighted one's whole
reason); `enter` on one shows its transcript (its run's step log) in the log pane, followed
while it runs.

The pane is kept current without polling the agents: every WATCH_SECONDS it asks SQLite
whether another connection committed (`PRAGMA data_version`: `glmtui serve`, `glmtui agents
run`, another TUI), and this process's service says when its executions start and end
(`changed_here`); it reads the store again only then, or when a next run it shows has come.
Executions started here by `x` may ask before a tool call: their approvals come as events of
the execution and are answered in the approval dialog.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from glmtui.config import Config
from glmtui.errors import GlmtuiError
from glmtui.render import COLORS, SYMBOLS, tokens_text
from glmtui.store import Store
from glmtui.tui.messages import AgentsChanged, StepOutput, TranscriptSelected

clock = time.time  # what "now" is for the next runs and the 7 days (a seam for deterministic snapshots)
WATCH_SECONDS = 1.0  # how often the pane asks the store whether anything changed
FOLLOW_SECONDS = 0.25  # how often a running execution's transcript is read for new lines
EXECUTIONS_SHOWN = 50
NAME_WIDTH = 24  # at most, of the name column (a longer name ends in …)
TRANSCRIPT_BYTES = 1 << 20  # the end of a transcript shown at first (the whole of it is on disk)
_GLYPHS = {**SYMBOLS, "queued": "…", "interrupted": "■", "budget_spent": "$"}
_COLORS = {**COLORS, "queued": "cyan", "interrupted": "magenta", "budget_spent": "yellow", "skipped": "bright_black"}
_FAILED = ("failure", "budget_spent", "cancelled", "interrupted", "skipped")  # a last execution shown with its reason
_EXECUTION_COLUMNS = (("", "mark"), ("started", "started"), ("trigger", "trigger"), ("status", "status"),
                      ("turns", "turns"), ("tokens in/out", "tokens"), ("took", "took"))


@dataclass
class AgentRow:
    """What the pane shows of one agent."""

    agent: Any  # glmtui.service.records.AgentRecord
    last: Any  # its newest ExecutionRecord, or None
    tokens: int  # input and output tokens of its executions in the last 7 days
    next_run: float | None


@dataclass
class _Follow:
    """A transcript the log pane shows while its execution runs: read on from `offset`."""

    execution_id: str
    path: Path
    offset: int = 0
    partial: bytes = b""


class AgentList(OptionList):
    """The agents, two lines each; `enter` is the pane's."""

    BINDINGS = [Binding("j", "cursor_down", show=False), Binding("k", "cursor_up", show=False)]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select":
            return False
        return super().check_action(action, parameters)


class ExecutionTable(DataTable):
    """An agent's executions; `enter` is the pane's."""

    BINDINGS = [Binding("j", "cursor_down", show=False), Binding("k", "cursor_up", show=False)]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            return False
        return super().check_action(action, parameters)


class AgentsPane(Widget):
    """The saved agents; `service` (set by the app once the engine answers) runs them here."""

    BINDINGS = [
        Binding("n", "new", "New agent", id="agents.new"),
        Binding("enter", "executions", "Executions", id="agents.executions"),
        Binding("enter", "transcript", "Transcript", id="agents.transcript"),
        Binding("x", "run", "Run now", id="agents.run"),
        Binding("space", "pause", "Pause/resume", id="agents.pause"),
        Binding("d", "remove", "Remove", id="agents.remove"),
        Binding("C", "cancel", "Cancel execution", id="agents.cancel"),
        Binding("escape", "back", "Back", id="agents.back"),
    ]
    KEY_HELP = {  # longer descriptions, for the help screen
        "new": "a new saved agent (a form; saved as an agent file and applied)",
        "executions": "the agent's executions, newest first",
        "transcript": "the execution's transcript in the log pane (followed while it runs)",
        "run": "run the agent now; its approvals are asked here",
        "pause": "pause or resume the agent's schedule",
        "remove": "remove the agent and its execution records (asks first)",
        "cancel": "cancel the execution (one this TUI runs; asks first)",
        "back": "back to the agents",
    }

    class ExecutionEvent(Message):
        """An event of an execution started here that the pane acts on (an approval, the end)."""

        def __init__(self, execution: Any, event: Any) -> None:
            super().__init__()
            self.execution, self.event = execution, event

    def __init__(self, *, config: Config, store: Store, schedules: Any, id: str | None = None) -> None:
        super().__init__(id=id)
        self.config = config
        self.store = store
        self.schedules = schedules  # glmtui.tui.schedules.TuiSchedules: who runs the schedules
        self.service: Any = None  # glmtui.service.service.Service, set by the app once the engine answers
        self.no_service = "the Docker engine is unreachable: agents run once it answers"  # why service is None
        self.environments: list[str] = []  # the environments listed, set by the app
        self.rows: list[AgentRow] = []
        self.executions: list[Any] = []  # of the agent shown (`showing`), newest first
        self.showing: str | None = None  # the agent whose executions are listed
        self._records: Any = None
        self._shown: tuple | None = None  # what the agents list shows now (to redraw only changes)
        self._shown_executions: tuple | None = None
        self._next_due: float | None = None  # the earliest next run shown: the list changes then
        self._dirty = True
        self._follow: _Follow | None = None
        self._asking: dict[str, Any] = {}  # approval id -> its dialog
        self.border_title = "Agents"

    # -- composition ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="agents-header")
        yield AgentList(id="agents-list")
        yield ExecutionTable(id="agents-executions", cursor_type="row", zebra_stripes=False)
        yield Static("", id="agents-detail")
        yield Static("", id="agents-schedules")

    def on_mount(self) -> None:
        for label, key in _EXECUTION_COLUMNS:
            self.execution_table.add_column(label, key=key)
        self.execution_table.display = False
        # The first look is a second after the start (the agents' records are not needed for the
        # first screen), or sooner when the app hands over its service.
        self.set_interval(WATCH_SECONDS, self._watch)
        self._follow_timer = self.set_interval(FOLLOW_SECONDS, self._follow_transcript, pause=True)

    @property
    def agent_list(self) -> AgentList:
        return self.query_one(AgentList)

    @property
    def execution_table(self) -> ExecutionTable:
        return self.query_one(ExecutionTable)

    @property
    def records(self) -> Any:
        """The agents and executions tables (glmtui.service.records.AgentStore), its own view of
        the store: its `changed()` counts what other connections committed since it last asked."""
        if self._records is None:
            from glmtui.service.records import AgentStore

            self._records = AgentStore(self.store)
        return self._records

    @property
    def up_to_date(self) -> bool:
        """Whether the pane has read the store since the last change it was told of."""
        return not self._dirty

    def changed_here(self) -> None:
        """This process changed the agents or their executions (its commits do not change the
        store's data_version for this connection): read them again soon."""
        self._dirty = True
        self.call_next(self._watch)

    # -- keeping current --------------------------------------------------------------------

    def _watch(self) -> None:
        if not self.is_mounted:
            return
        now = clock()
        changed = self.records.changed()
        running = self.showing is not None and any(e.status in ("queued", "running") for e in self.executions)
        if changed or self._dirty or running or (self._next_due is not None and now >= self._next_due):
            self._dirty = True
            try:
                self.refresh_agents(now)
            except sqlite3.OperationalError:  # another process holds the database past its timeout
                return  # the next look tries again
            self._dirty = False
        self._show_schedules()

    def refresh_agents(self, now: float | None = None) -> None:
        """Read the agents (and the executions shown) from the store and redraw what changed."""
        now = clock() if now is None else now
        records = self.records
        rows = []
        for agent in records.list():
            totals = records.totals(agent.name, now=now)["7 days"]
            try:
                nexts = agent.next_runs(1, now=now)
            except GlmtuiError:  # a time zone this machine lacks: the schedule column says so
                nexts = []
            rows.append(AgentRow(agent, records.last(agent.name), totals["input_tokens"] + totals["output_tokens"],
                                 nexts[0] if nexts else None))
        self.rows = rows
        self._next_due = min((row.next_run for row in rows if row.next_run is not None), default=None)
        self._draw_agents()
        if self.showing is not None:
            if self.showing not in {row.agent.name for row in rows}:
                self.notify(f"agent {self.showing} was removed", severity="warning")
                self.action_back()
            else:
                self.executions = records.executions(self.showing, EXECUTIONS_SHOWN)
                self._draw_executions()
        self._show_detail()

    def _draw_agents(self) -> None:
        now = clock()
        cells = [_agent_cells(row, now) for row in self.rows]
        widths = [min(max((len(row[column].plain) for row in cells), default=0), NAME_WIDTH if column == 1 else 99)
                  for column in range(len(_HEADER))]
        widths = [max(width, len(label)) for width, label in zip(widths, _HEADER)]
        prompts = [_prompt(row, cell, widths) for row, cell in zip(self.rows, cells)]
        shown = tuple(prompt.plain for prompt in prompts)  # the glyphs say the statuses the colours show
        if shown == self._shown:
            return
        self._shown = shown
        header = self.query_one("#agents-header", Static)
        header.update(_line([Text(label) for label in _HEADER], widths) if cells else "")
        header.display = bool(cells)
        agents = self.agent_list
        keep = agents.highlighted_option.id if agents.highlighted_option is not None else None
        agents.clear_options()
        agents.add_options(Option(prompt, id=row.agent.name) for row, prompt in zip(self.rows, prompts))
        names = [row.agent.name for row in self.rows]
        if names:
            agents.highlighted = names.index(keep) if keep in names else 0
        if self.showing is None:
            self.border_subtitle = f"{len(names)}" if names else ""

    def _draw_executions(self) -> None:
        table = self.execution_table
        cells = tuple((record.id, _execution_cells(record)) for record in self.executions)
        if cells == self._shown_executions:
            return
        self._shown_executions = cells
        keep = self.selected_execution.id if self.selected_execution is not None else None
        table.clear()
        for execution_id, row in cells:
            table.add_row(*row, key=execution_id)
        ids = [execution_id for execution_id, _ in cells]
        if keep in ids:
            table.move_cursor(row=ids.index(keep), animate=False)
        self.border_subtitle = f"{len(cells)} executions" if cells else "no executions yet · x runs it"

    def _show_schedules(self) -> None:
        status = self.schedules.status(engine_answers=self.service is not None)
        line = self.query_one("#agents-schedules", Static)
        if str(line.content) != status:
            line.update(status)

    def _show_detail(self) -> None:
        """Under the executions, the highlighted one's whole reason or its result's first line;
        under an empty list, how to make an agent. (Under the agents nothing: their two lines
        each are all the pane has room for.)"""
        detail = self.query_one("#agents-detail", Static)
        text = Text()
        if self.showing is None:
            if not self.rows:
                text.append("no saved agents: n makes one (or glmtui agents apply FILE)", style="dim")
        else:
            record = self.selected_execution
            if record is None:
                text.append(f"no executions of {self.showing} yet: x runs it", style="dim")
            elif record.reason:
                text.append(f"{record.status}: {record.reason}", style=_COLORS.get(record.status, ""))
            elif record.result:
                text.append(_first_line(record.result))
        detail.display = bool(text.plain)
        if detail.content != text:
            detail.update(text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A click on an agent: what enter does."""
        event.stop()
        self.action_executions()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """A click on an execution: what enter does."""
        event.stop()
        self.action_transcript()

    # -- what is selected -------------------------------------------------------------------

    def _selected_row(self) -> AgentRow | None:
        index = self.agent_list.highlighted
        return self.rows[index] if index is not None and 0 <= index < len(self.rows) else None

    @property
    def selected_agent(self) -> str | None:
        """The agent the keys act on: the one whose executions are listed, else the highlighted one."""
        if self.showing is not None:
            return self.showing
        row = self._selected_row()
        return row.agent.name if row is not None else None

    @property
    def selected_execution(self) -> Any:
        table = self.execution_table
        if self.showing is None or not table.row_count or not 0 <= table.cursor_row < len(self.executions):
            return None
        return self.executions[table.cursor_row]

    def _agent_or_say(self) -> str | None:
        name = self.selected_agent
        if name is None:
            self._cannot("no agent selected: n makes one (or glmtui agents apply FILE)")
        return name

    def _cannot(self, why: str) -> None:
        self.notify(why, severity="warning")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "executions":
            return self.showing is None
        if action in ("transcript", "back"):
            return self.showing is not None
        if action == "cancel":
            return self.showing is not None
        return True

    def why_not(self, action: str) -> str | None:
        """Why a key of the pane does nothing now (the app says it when the key is pressed)."""
        if action == "cancel":
            return "C cancels a running execution: enter lists the agent's executions first"
        return None

    # -- the executions of an agent, a transcript -------------------------------------------

    def action_executions(self) -> None:
        name = self._agent_or_say()
        if name is None:
            return
        self.showing = name
        self._shown_executions = None
        self.executions = self.records.executions(name, EXECUTIONS_SHOWN)
        self.agent_list.display = False
        self.query_one("#agents-header").display = False
        self.execution_table.display = True
        self._draw_executions()
        self.execution_table.move_cursor(row=0, animate=False)
        self.execution_table.focus()
        self.border_title = f"Agents · {name} · executions"
        self._show_detail()
        self.refresh_bindings()

    def action_back(self) -> None:
        if self.showing is None:
            return
        self.showing = None
        self.executions = []
        self.execution_table.display = False
        self.agent_list.display = True
        self.query_one("#agents-header").display = bool(self.rows)
        self.agent_list.focus()
        self.border_title = "Agents"
        self.border_subtitle = f"{len(self.rows)}" if self.rows else ""
        self._show_detail()
        self.refresh_bindings()

    def action_transcript(self) -> None:
        record = self.selected_execution
        if record is None:
            self._cannot(f"no executions of {self.showing} yet: x runs it")
            return
        from glmtui.service.definition import STEP_ID

        path = self.store.log_file(record.id, STEP_ID)
        active = record.status in ("queued", "running")
        if not active and not path.is_file():
            why = f": {record.reason}" if record.reason else ""
            self._cannot(f"execution {record.id} has no transcript: it ended before its run started ({record.status}{why})")
            return
        follow = _Follow(record.id, path)
        lines = self._read(follow, start=True, final=not active)
        self._follow = follow if active else None
        self.post_message(TranscriptSelected(f"{record.agent} · execution {record.id}", lines,
                                             path if path.is_file() else None))
        if active:
            self._follow_timer.resume()

    def release_log(self) -> None:
        """The log pane shows something else now: stop following a transcript."""
        self._follow = None
        self._follow_timer.pause()

    def _follow_transcript(self) -> None:
        follow = self._follow
        if follow is None:
            self._follow_timer.pause()
            return
        try:
            status = self.records.execution(follow.execution_id).status
        except GlmtuiError:  # removed meanwhile
            status = "removed"
        final = status not in ("queued", "running")
        lines = self._read(follow, final=final)
        if lines:
            self.post_message(StepOutput("stdout", lines))
        if final:
            self.release_log()

    @staticmethod
    def _read(follow: _Follow, *, start: bool = False, final: bool = False) -> list[str]:
        """The transcript's new whole lines (at the start: its last TRANSCRIPT_BYTES); a last line
        without its newline is held back until it has one, or the execution has ended."""
        try:
            with follow.path.open("rb") as log:
                if start:
                    size = log.seek(0, 2)
                    follow.offset = max(0, size - TRANSCRIPT_BYTES)
                log.seek(follow.offset)
                data = log.read()
        except OSError:  # not there yet (queued), or gone
            return []
        mid_line = start and follow.offset > 0
        follow.offset += len(data)
        if mid_line:
            data = data[data.find(b"\n") + 1:]
        data = follow.partial + data
        lines = data.split(b"\n")
        follow.partial = lines.pop()
        if final and follow.partial:
            lines.append(follow.partial)
            follow.partial = b""
        return [line.decode("utf-8", "replace") for line in lines]

    # -- the keys on an agent -------------------------------------------------------------

    def action_new(self) -> None:
        self.new_agent(None)

    @work(group="agents-new", exit_on_error=False)
    async def new_agent(self, draft: Any) -> None:
        """The new-agent form (prefilled with `draft`, a glmtui.tui.screens.new_agent.AgentDraft);
        the agent it gives is saved as a file in the data folder and applied."""
        from glmtui import paths
        from glmtui.tui.screens.new_agent import NewAgent

        images: list[str] = []
        if self.service is not None:
            try:
                images = sorted({tag for image in await self.service.engine.list_images()
                                 for tag in image.get("RepoTags") or []})
            except GlmtuiError:
                pass  # the configured default image is offered anyway
        folder = paths.agent_files_dir(self.store.database.parent)
        records = self.records
        screen = NewAgent(config=self.config, environments=list(self.environments), images=images, folder=folder,
                          exists=lambda name: name in records.names(), draft=draft)
        definition = await self.app.push_screen_wait(screen)
        if definition is None:
            return
        try:
            definition.file.parent.mkdir(parents=True, exist_ok=True)
            definition.file.write_text(definition.source, encoding="utf-8")
        except OSError as err:
            self.notify(f"cannot write {definition.file}: {err.strerror or err}", severity="error")
            return
        outcome = records.apply(definition)
        self.notify(f"{records.get(definition.name).applied(outcome)} · file {definition.file}", title="Agent saved")
        self._edited()
        self.action_back()
        names = [row.agent.name for row in self.rows]
        if definition.name in names:
            self.agent_list.highlighted = names.index(definition.name)

    def action_run(self) -> None:
        name = self._agent_or_say()
        if name is None:
            return
        if self.service is None:
            self._cannot(self.no_service)
            return
        try:
            execution = self.service.run_agent(name, "manual", asks=True)
        except GlmtuiError as err:  # removed meanwhile, or its last execution still runs
            self._cannot(str(err))
            return
        assert execution is not None  # by hand: what cannot start raises
        execution.subscribe(lambda _seq, event: self._execution_event(execution, event))
        self.notify(f"{name}: execution {execution.id} started")
        self.changed_here()

    def _execution_event(self, execution: Any, event: Any) -> None:
        """The subscriber of an execution started here (called in the execution's task)."""
        from glmtui.service.execution import ExecutionFinished
        from glmtui.service.work import ApprovalAsked

        if isinstance(event, (ApprovalAsked, ExecutionFinished)):
            self.post_message(self.ExecutionEvent(execution, event))

    @on(ExecutionEvent)
    def on_execution_event(self, message: ExecutionEvent) -> None:
        from glmtui.service.execution import ExecutionFinished, describe
        from glmtui.tui.screens.dialogs import ApproveCall

        execution, event = message.execution, message.event
        if isinstance(event, ExecutionFinished):
            for approval_id in [a for a in self._asking if a not in execution.approvals]:
                screen = self._asking.pop(approval_id)
                if self.app.screen is screen:  # the execution ended: its question is moot
                    screen.dismiss(None)
            severity = "information" if event.status == "success" else "warning"
            self.notify(f"{event.agent}: execution {event.execution_id} {describe(execution.record)}",
                        severity=severity, timeout=8)
            return
        approval = execution.approvals.get(event.approval_id)
        if approval is None:  # answered or ended meanwhile
            return
        screen = ApproveCall(event.step, approval.request, title=f"Agent [b]{execution.agent.name}[/b]")
        self._asking[event.approval_id] = screen

        def answered(answer: str | None) -> None:
            self._asking.pop(event.approval_id, None)
            if answer is not None and event.approval_id in execution.approvals:
                execution.answer(event.approval_id, answer)

        self.app.push_screen(screen, callback=answered)

    def action_pause(self) -> None:
        name = self._agent_or_say()
        if name is None:
            return
        try:
            agent = self.records.get(name)
        except GlmtuiError as err:
            self._cannot(str(err))
            return
        if not agent.definition.schedule_text:
            self._cannot(f"{name} has no schedule: nothing to pause (x runs it)")
            return
        if agent.status == "active":
            self.records.set_status(name, "paused")
            self.notify(f"{name}: paused (x still runs it by hand)")
        else:
            self.records.set_status(name, "active")
            nexts = self.records.get(name).next_runs()
            self.notify(f"{name}: resumed" + (f", next run {_when(nexts[0], clock())}" if nexts else ""))
        self._edited()

    def action_remove(self) -> None:
        name = self._agent_or_say()
        if name is None:
            return
        from glmtui.tui.screens.dialogs import Confirm

        active = self.records.active(name)
        if active:
            self._cannot(f"agent {name} is running (execution {active}): remove it when that has ended")
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                removed = self.records.remove(name)
            except GlmtuiError as err:
                self._cannot(str(err))
                return
            self.notify(f"{name}: removed, with {removed} execution record{'' if removed == 1 else 's'}")
            self.action_back()
            self._edited()

        self.app.push_screen(Confirm(f"Remove agent [b]{name}[/b] and its execution records? Their runs and "
                                     "logs stay.", yes="Remove"), answered)

    def action_cancel(self) -> None:
        record = self.selected_execution
        if record is None or record.status not in ("queued", "running"):
            self._cannot("no running execution selected" if record is None else
                         f"execution {record.id} is not running ({record.status})")
            return
        work = self.service.get(record.id) if self.service is not None else None
        if work is None or work.finished:
            self._cannot(f"execution {record.id} is not run by this TUI: it ends with the process that runs it")
            return
        from glmtui.tui.screens.dialogs import Confirm

        def answered(yes: bool | None) -> None:
            if yes and not work.finished:
                work.cancel()
                self.notify(f"{record.agent}: cancelling execution {record.id}")

        self.app.push_screen(Confirm(f"Cancel execution {record.id} of agent [b]{record.agent}[/b]?",
                                     yes="Cancel execution", no="Keep running"), answered)

    def _edited(self) -> None:
        """This pane saved, paused, resumed or removed an agent: the list, and the scheduler."""
        self.refresh_agents()
        self.post_message(AgentsChanged())


# --- cells -----------------------------------------------------------------------------------


_HEADER = ("", "agent", "next run", "last execution", "7 days")


def _agent_cells(row: AgentRow, now: float) -> tuple[Text, ...]:
    """The first line's cells: mark, name, next run, last execution, tokens in 7 days."""
    agent, last = row.agent, row.last
    if agent.status == "paused":
        mark = Text("◌", style="yellow")
    elif agent.definition.schedule_text:
        mark = Text("●", style="green")
    else:
        mark = Text("○", style="bright_black")
    if row.next_run is not None:
        upcoming = Text(_when(row.next_run, now))
    else:
        upcoming = Text("paused" if agent.status == "paused" else "by hand", style="dim")
    if last is None:
        ran = Text("never run", style="dim")
    else:
        ran = Text(f"{_GLYPHS.get(last.status, '?')} {last.status} {_when(last.started or last.queued, now)}",
                   style=_COLORS.get(last.status, ""))
    return mark, Text(agent.name, style="bold"), upcoming, ran, Text(tokens_text(row.tokens))


def _line(cells: list[Text], widths: list[int]) -> Text:
    """Cells in columns two spaces apart (the last, the tokens, to the right)."""
    line = Text(no_wrap=True, overflow="ellipsis")
    for index, (cell, width) in enumerate(zip(cells, widths)):
        if index:
            line.append("  " if index > 1 else " ")
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis", pad=index < len(cells) - 1)
        if index == len(cells) - 1:
            cell.pad_left(width - cell.cell_len)
        line.append_text(cell)
    return line


def _prompt(row: AgentRow, cells: tuple[Text, ...], widths: list[int]) -> Text:
    """Two lines: the cells, then the schedule in words and a failed last execution's reason."""
    text = _line(list(cells), widths)
    text.append("\n  ")
    text.append(row.agent.schedule_words(), style="dim")
    last = row.last
    if last is not None and last.status in _FAILED and last.reason:
        text.append(" · ", style="dim")
        text.append(last.reason, style=_COLORS.get(last.status, ""))
    return text


def _execution_cells(record: Any) -> tuple[Text, ...]:
    status = record.status
    style = _COLORS.get(status, "")
    took = "" if record.duration is None else f"{record.duration:.1f}s"
    return (Text(_GLYPHS.get(status, "?"), style=style), Text(_when(record.started or record.queued, clock())),
            Text(record.trigger), Text(status, style=style), Text(str(record.turns)),
            Text(f"{record.input_tokens:,}/{record.output_tokens:,}"), Text(took))


def _when(instant: float, now: float) -> str:
    """A time by how far it is from now: 14:02:11 today, Mon 08:00 within a week, else the date."""
    moment, today = datetime.fromtimestamp(instant), datetime.fromtimestamp(now)
    if moment.date() == today.date():
        return f"{moment:%H:%M:%S}"
    if abs(instant - now) < 6 * 86400:
        return f"{moment:%a %H:%M}"
    return f"{moment:%Y-%m-%d}"


def _first_line(text: Any) -> str:
    return next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")
