"""The plan pane: pick a plan, see what it will do, run it and watch each step live, open past runs.

Runs belong to the service (glmtui.service), not to the pane: the pane starts one through the
app's backend (glmtui.service.backend) and follows its events, cancels it and answers its
agents' approvals (ApprovalAsked events, the ApproveCall dialog) through the run's handle. A
run goes on when the pane shows something else (another plan, a past run); `p` lists the runs
still going first, and opening one follows it again from its first event.

The pane is one sink of the run's event stream (the headless renderer is another). The sink
runs in the app's event loop and only updates per-step state and bounded output buffers (the
pane's drawing state); a timer redraws the table about eight times a second, so output at any
rate never redraws per line.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from itertools import groupby
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from glmtui.config import Config
from glmtui.errors import GlmtuiError
from glmtui.events import (
    ApprovalAnswered,
    ApprovalAsked,
    Event,
    Output,
    Progress,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from glmtui.render import COLORS, SYMBOLS
from glmtui.masking import MASK
from glmtui.plan.model import LoadedPlan, PlanInvalid
from glmtui.plan.permissions import Permissions
from glmtui.plan.preview import step_facts
from glmtui.service.backend import Backend, RunRequest, WorkHandle, WorkInfo
from glmtui.service.work import error_line
from glmtui.steplog import tail
from glmtui.store import Store
from glmtui.transcript import AGENT_EVENTS, AgentLines
from glmtui.tui.screens.dialogs import ApproveCall, Confirm
from glmtui.tui.screens.permissions import AllowHostAccess
from glmtui.tui.messages import RunStateChanged, StepDeselected, StepOutput, StepSelected
from glmtui.units import counted

STEP_LINES = 5_000  # output lines kept per step (the full log is on disk)
REFRESH_SECONDS = 1 / 8
MAX_ERRORS_SHOWN = 12
MAX_DETAIL_LINES = 6
STATUS_WIDTH = 40  # a step's status cell; longer reasons end in … (the detail area has them whole)
clock = time.time  # what a running step's time is measured with (from its event's ts): a seam for snapshots
FINAL = frozenset({"success", "failure", "skipped", "cancelled", "interrupted", "notrun"})
RESUMABLE = frozenset({"failure", "cancelled", "interrupted"})
_REUSED = re.compile(r"reused from run (\S+)")
_GLYPHS = {**SYMBOLS, "interrupted": "■", "notrun": "·"}
_COLORS = {**COLORS, "interrupted": "magenta", "waiting": "bright_black", "notrun": "bright_black"}
COLUMNS = (("", "mark"), ("step", "step"), ("layer", "layer"), ("kind", "kind"), ("needs", "needs"),
           ("if", "if"), ("status", "status"), ("command", "command"))


@dataclass
class StepState:
    """What the pane knows of one step of the run it shows."""

    status: str = "waiting"
    started: float | None = None  # when it started (its StepStarted's ts)
    duration: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    attempt: int = 1
    allowed: bool = False  # failed with continue_on_error
    lines: deque[tuple[str, str, float]] = field(default_factory=lambda: deque(maxlen=STEP_LINES))  # (stream, line, time)
    buffered: bool = False  # its output came through this pane (else: read the log file)

    @property
    def reused_from(self) -> str | None:
        match = _REUSED.search(self.reason or "")
        return match.group(1) if match else None


class StepTable(DataTable):
    """The steps, one row each; `enter` is left to the pane (it runs the plan)."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="plan.down"),
        Binding("k", "cursor_up", "Up", show=False, id="plan.up"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            return False
        return super().check_action(action, parameters)


class PlanPane(Widget):
    """A plan's preview and its live (or recorded) run, as a table of steps."""

    BINDINGS = [
        Binding("r", "pick", "Pick plan", id="plan.pick"),
        Binding("enter", "run", "Run", id="plan.run"),
        Binding("C", "cancel", "Cancel run", id="plan.cancel"),
        Binding("R", "resume", "Resume run", id="plan.resume"),
        Binding("i", "inputs", "Inputs", id="plan.inputs"),
        Binding("p", "past_runs", "Past runs", id="plan.past"),
    ]

    running: reactive[bool] = reactive(False)

    def __init__(
        self,
        *,
        plan_path: Path | None = None,
        config: Config,
        store: Store,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.plan_path = plan_path
        self.config = config
        self.store = store
        self.backend: Backend | None = None  # set by the app once the engine is connected
        self.input_texts: dict[str, str] = {}  # inputs as given (text, like --input K=V)
        self.loaded: LoadedPlan | None = None
        self.description: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.order: list[str] = []  # step ids in table order
        self.infos: dict[str, dict[str, Any]] = {}  # step id -> describe_plan's step entry
        self.states: dict[str, StepState] = {}  # empty: a preview, nothing run
        self.run_id: str | None = None
        self.run_status: str | None = None  # running | success | failure | cancelled | interrupted
        self.run_plan: str | None = None
        self.run_duration: float | None = None
        self.from_record = False  # showing a past run from the store
        self.resumable: str | None = None  # the failed or cancelled run `R` resumes
        self.progress = ""
        self._follower: Worker | None = None  # follows the run shown, while it goes
        self._handle: WorkHandle | None = None  # the run shown, while it goes
        self._asking: dict[str, ApproveCall | None] = {}  # approval id -> its dialog (None: about to open)
        self._cancelling = False
        self._shown: str | None = None  # the step whose output the log pane shows
        self._pending: list[tuple[str, list[str], float]] = []  # its live lines (stream, lines, time), sent on the next tick
        self._rebuild = False
        self._dirty = False
        self._rendered: dict[str, tuple[Any, ...]] = {}
        self._status_shown: str | None = None
        self._ready = False  # composed and mounted: the children can be drawn
        self._ticker: Timer | None = None
        self.border_title = "Plan"

    # -- composition ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(Text("no plan: r picks one", style="dim"), id="plan-summary")
        yield StepTable(id="plan-steps", cursor_type="row", zebra_stripes=False)
        yield Static("", id="plan-detail")
        yield Static("", id="plan-status")

    def on_mount(self) -> None:
        self._ready = True
        table = self.query_one(StepTable)
        for label, key in COLUMNS:
            # The status changes while a run goes; a fixed width keeps the other columns still.
            table.add_column(label, key=key, width=STATUS_WIDTH if key == "status" else None)
        # It runs while a run goes (the elapsed times, what the sink buffered) and until what the
        # run left is drawn, then sleeps: an idle pane costs no wake-ups.
        self._ticker = self.set_interval(REFRESH_SECONDS, self._tick, pause=not self.running)
        if self.plan_path is not None and self.description is None and not self.errors:
            self.load(self.plan_path)
        else:
            self._show_all()

    @property
    def table(self) -> StepTable:
        return self.query_one(StepTable)

    # -- loading and previewing --------------------------------------------------------------

    def load(self, path: Path) -> None:
        """Load the plan at `path` and show what it will do (its errors, if it is invalid); a run
        shown goes on without the pane."""
        self._let_go()
        if self._shown is not None:  # the log pane shows a step of the run that goes off screen
            self.post_message(StepDeselected())
        if self.plan_path is None or Path(path).resolve() != Path(self.plan_path).resolve():
            self.input_texts = {}
            self.resumable = None
        self.plan_path = Path(path)
        self._reset_run()
        self._preview()
        if self.plan_path.is_file():
            from glmtui.tui.screens.plan_picker import remember_plan

            remember_plan(self.plan_path)

    def _load_plan(self, *, check_secrets: bool) -> LoadedPlan:
        from glmtui.plan.validate import load_plan

        assert self.plan_path is not None
        return load_plan([self.plan_path], inputs=dict(self.input_texts), check_secrets=check_secrets,
                         docker_host=self.config.get("docker_host"))

    def _preview(self) -> bool:
        """(Re)load the plan for its preview; False when it is invalid (its errors are shown)."""
        from glmtui.plan.preview import describe_plan

        self.errors = []
        try:
            loaded = self._load_plan(check_secrets=False)
            description = describe_plan(loaded, self.config)
        except PlanInvalid as err:
            self._set_plan(None, None, [str(e) for e in err.errors])
            return False
        except GlmtuiError as err:
            self._set_plan(None, None, [str(err)])
            return False
        self._set_plan(loaded, description, [])
        return True

    def _set_plan(self, loaded: LoadedPlan | None, description: dict[str, Any] | None, errors: list[str]) -> None:
        self.loaded, self.description, self.errors = loaded, description, errors
        steps = description["steps"] if description else []
        self.infos = {step["id"]: step for step in steps}
        self.order = [step["id"] for step in steps] + [s for s in self.order if s in self.states and s not in self.infos]
        self._rebuild = True
        if self.plan_path is not None:
            self.border_title = f"Plan  {self.plan_path.name}"
        self._show_all()

    def _reset_run(self) -> None:
        self.states = {}
        self.order = []
        self.run_id = self.run_status = self.run_plan = None
        self.run_duration = None
        self.from_record = False
        self.progress = ""
        self._pending = []
        self._shown = None
        self._agent_lines = AgentLines()  # llm and agent steps' events as log lines

    # -- what the user sees --------------------------------------------------------------------

    def _show_all(self) -> None:
        if not self._ready:
            return
        summary = self.query_one("#plan-summary", Static)
        summary.set_class(bool(self.errors), "-invalid")
        summary.update(self._summary())
        self._tick()
        self._show_detail()
        self.refresh_bindings()

    def _summary(self) -> Text:
        text = Text()
        if self.errors:
            text.append("the plan is invalid:\n", style="bold red")
            for line in self.errors[:MAX_ERRORS_SHOWN]:
                text.append(line + "\n", style="red")
            if len(self.errors) > MAX_ERRORS_SHOWN:
                text.append(f"… {len(self.errors) - MAX_ERRORS_SHOWN} more\n", style="red")
            text.append("i sets the inputs · r picks a plan\n", style="dim")
        d = self.description
        if d is None:
            if not self.errors:
                text.append("no plan: r picks one, p opens a past run", style="dim")
            return _strip_end(text)
        text.append(d["plan"], style="bold")
        text.append(f"  {_shown_path(self.plan_path or Path(d['file']))} · workflow {d['workflow']}\n", style="dim")
        if d["description"]:
            text.append(d["description"].strip().splitlines()[0] + "\n", style="italic")
        if d["permissions"]["asks"]:
            text.append("permissions  ", style="bold")
            text.append(" · ".join(d["permissions"]["asks"]), style="bold yellow")
            text.append("  (asked before it runs)\n", style="dim")
        env = d["environment"]
        where = "throw-away" if env["throwaway"] else f"environment {env['name']}"
        image = env["image"] or f"built from {env['build']}"
        text.append("environment  ", style="bold")
        text.append(f"{where} · {image} · workdir {env['workdir']} · network {env['network']}")
        for mount in env["mounts"]:
            text.append(f" · mount {mount}")
        for copy in env["copy"]:
            text.append(f" · copy {copy}")
        text.append("\n")
        text.append("inputs       ", style="bold")
        if d["inputs"]:
            for n, item in enumerate(d["inputs"]):
                if n:
                    text.append(" · ")
                text.append(f"{item['name']} = ")
                text.append(_value_text(item["value"]), style="cyan")
                text.append(f" ({item['type']})", style="dim")
        else:
            text.append("none", style="dim")
        text.append("\n")
        if d["secrets"]:
            text.append("secrets      ", style="bold")
            for n, item in enumerate(d["secrets"]):
                if n:
                    text.append(" · ")
                text.append(f"{item['name']} ")
                text.append("set" if item["set"] else "NOT SET", style="green" if item["set"] else "bold red")
            text.append("\n")
        return _strip_end(text)

    def _row(self, step_id: str) -> tuple[Any, ...]:
        info = self.infos.get(step_id)
        state = self.states.get(step_id)
        status = state.status if state else "waiting"
        mark = Text(_GLYPHS.get(status, "?"), style=_COLORS.get(status, "") if state else "bright_black")
        if info is None:  # a step of a nested workflow, or one the plan no longer has
            return (mark, Text(step_id), Text(""), Text(""), Text(""), Text(""), self._status_text(step_id, state),
                    Text(""))
        command = info["command"].rstrip("\n").splitlines() or [""]
        first = command[0] + (" …" if len(command) > 1 else "")
        return (
            mark,
            Text(step_id, style="bold" if status == "running" else ""),
            Text(str(info["layer"] + 1)),
            Text(info["kind"]),
            Text(", ".join(info["needs"])),
            Text(info["if"] or ""),
            self._status_text(step_id, state),
            Text(first, style="dim" if state and status in ("skipped", "notrun") else ""),
        )

    def _status_text(self, step_id: str, state: StepState | None) -> Text:
        text = self._full_status(step_id, state)
        text.truncate(STATUS_WIDTH, overflow="ellipsis")  # the whole reason is in the detail area below
        return text

    def _full_status(self, step_id: str, state: StepState | None) -> Text:
        if state is None:
            return Text("")
        status = state.status
        style = _COLORS.get(status, "")
        if status == "waiting":
            needs = self.infos.get(step_id, {}).get("needs", [])
            pending = [n for n in needs if self.states.get(n, StepState()).status not in FINAL]
            return Text(f"waits for {', '.join(pending)}" if pending else "waiting", style="bright_black")
        if status == "running":
            elapsed = clock() - state.started if state.started is not None else 0.0
            attempt = f" (attempt {state.attempt})" if state.attempt > 1 else ""
            return Text(f"running {_seconds(elapsed)} …{attempt}", style=style)
        if status == "success":
            if state.reused_from:
                return Text(f"reused from run {state.reused_from}", style=style)
            return Text(_seconds(state.duration or 0.0), style=style)
        if status == "failure":
            parts = ["failed" if state.exit_code is None else f"exit {state.exit_code}"]
            if state.allowed:
                parts.append("(allowed)")
            if state.duration:
                parts.append(_seconds(state.duration))
            if state.reason and state.reason != f"exit code {state.exit_code}":
                parts.append(state.reason)
            return Text(" · ".join(parts), style=style)
        if status == "skipped":
            return Text("skipped" + (f" · {state.reason}" if state.reason else ""), style=style)
        if status == "notrun":
            return Text("not run", style=style)
        return Text(status + (f" · {state.reason}" if state.reason else ""), style=style)

    def _tick(self) -> None:
        """The ~8 fps redraw while a run goes: rows that changed (and running ones, for their
        elapsed time); it sleeps after a tick with nothing left to do."""
        if not self._ready:
            return
        table = self.table
        if self._rebuild:
            self._rebuild = self._dirty = False
            keep = self.highlighted_step
            table.clear()
            self._rendered = {}
            for step_id in self.order:
                cells = self._row(step_id)
                self._rendered[step_id] = cells
                table.add_row(*cells, key=step_id)
            if keep in self._rendered:
                table.move_cursor(row=self.order.index(keep), animate=False)
            self._show_detail()
        elif self._dirty or any(s.status == "running" for s in self.states.values()):
            self._dirty = False
            for step_id in self.order:
                cells = self._row(step_id)
                old = self._rendered.get(step_id)
                if old == cells:
                    continue
                self._rendered[step_id] = cells
                for (_, key), value, before in zip(COLUMNS, cells, old or (None,) * len(COLUMNS)):
                    if value != before:
                        table.update_cell(step_id, key, value, update_width=key != "status")
        self._flush_output()
        self._show_status()
        if self._ticker is not None and not (self.running or self._dirty or self._rebuild or self._pending):
            self._ticker.pause()

    def _show_status(self) -> None:
        text = Text()
        if self.run_id is not None:
            status = self.run_status or "running"
            text.append(f"{_GLYPHS.get(status, '▶')} ", style=_COLORS.get(status, "cyan"))
            text.append(f"run {self.run_id} ", style="bold")
            if status == "running":
                done = sum(1 for s in self.states.values() if s.status in FINAL)
                text.append(f"running {done}/{len(self.states)} steps", style="cyan")
                if self._cancelling:
                    text.append(" · cancelling", style="magenta")
            else:
                text.append(status, style=_COLORS.get(status, ""))
                if self.run_duration is not None:
                    text.append(f" in {_seconds(self.run_duration)}")
                if self.from_record:
                    text.append(" (recorded)", style="dim")
                if self.resumable == self.run_id and self.loaded is not None:
                    text.append(" · R resumes", style="dim")
            if self.progress:
                text.append(f" · {self.progress}", style="dim")
        elif self.running:
            text.append("▶ starting the run…", style="cyan")
        elif self.description is not None:
            text.append("enter runs · i inputs · r picks a plan · p past runs", style="dim")
            if self.resumable is not None:
                text.append(f" · R resumes run {self.resumable}", style="dim")
        status_line = self.query_one("#plan-status", Static)
        if self._status_shown != text.plain:
            self._status_shown = text.plain
            status_line.update(text)
            self.border_subtitle = self.progress or (self.run_status or "")

    @property
    def highlighted_step(self) -> str | None:
        if not self._ready:
            return None
        table = self.table
        if not table.row_count:
            return None
        row = table.cursor_row
        return self.order[row] if 0 <= row < len(self.order) else None

    def _show_detail(self) -> None:
        if not self._ready:
            return
        detail = self.query_one("#plan-detail", Static)
        step_id = self.highlighted_step
        if step_id is None:
            detail.update("")
            return
        text = Text()
        info = self.infos.get(step_id)
        text.append(step_id, style="bold")
        if info is not None:
            if info["name"] != step_id:
                text.append(f" ({info['name']})")
            facts = [info["kind"]]
            if info["component"]:
                facts.append(f"component {info['component']}")
            facts += step_facts(info)
            text.append("  " + " · ".join(facts), style="dim")
        state = self.states.get(step_id)
        if state is not None and state.reason and state.status != "success":
            text.append(f"\n{state.status}: {state.reason}", style=_COLORS.get(state.status, ""))
        if info is not None:
            lines = info["command"].rstrip("\n").splitlines() or [""]
            shown = lines[:MAX_DETAIL_LINES]
            for line in shown:
                text.append("\n  " + line)
            if len(lines) > len(shown):
                text.append(f"\n  … {counted(len(lines) - len(shown), 'more line')}", style="dim")
        detail.update(text)

    # -- the run ----------------------------------------------------------------------------

    def action_run(self) -> None:
        self._start(resume=None)

    def action_resume(self) -> None:
        if self.resumable is None:
            self.notify("no failed or cancelled run to resume", severity="warning")
            return
        self._start(resume=self.resumable)

    def _start(self, *, resume: str | None) -> None:
        """Load the plan afresh; when it declares host access, ask the person first (a dialog)."""
        from glmtui.plan.preview import describe_plan
        from glmtui.plan.validate import secret_warnings

        if self.running:
            return
        if self.plan_path is None:
            self.notify("no plan: r picks one", severity="warning")
            return
        if self.backend is None:
            self.notify("no Docker engine: start Docker, then run the plan again", severity="error")
            return
        try:
            loaded = self._load_plan(check_secrets=True)
            description = describe_plan(loaded, self.config)
        except PlanInvalid as err:  # a secret not set, or the file changed since the preview
            self._set_plan(self.loaded, self.description, [str(e) for e in err.errors])
            self.notify("the plan cannot run: see its errors in the plan pane", severity="error")
            return
        except GlmtuiError as err:
            self._set_plan(self.loaded, self.description, [str(err)])
            self.notify(str(err), severity="error")
            return
        for warning in secret_warnings(loaded.secrets):
            self.notify(warning, severity="warning", timeout=10)
        asked = loaded.plan.permissions
        if not asked:
            self._begin(loaded, description, resume, grant=None)
            return

        def answered(allowed: bool | None) -> None:
            if allowed:
                self._begin(loaded, description, resume, grant=asked)
            else:
                self.notify("not run: its host access was not allowed", severity="warning")

        self.app.push_screen(AllowHostAccess(loaded.plan.name, asked.phrases()), answered)

    def _begin(self, loaded: LoadedPlan, description: dict[str, Any], resume: str | None, grant: Permissions | None) -> None:
        assert self.plan_path is not None
        request = RunRequest([str(self.plan_path)], loaded.workflow.name, dict(self.input_texts), resume,
                             grant.as_json() if grant is not None else None)
        self._reset_run()
        self._set_plan(loaded, description, [])
        self.run_status, self.run_plan = "running", loaded.plan.name
        self._follow(request=request)

    def _follow(self, *, request: RunRequest | None = None, run_id: str | None = None) -> None:
        """Start the run asked for, or follow the one with `run_id`: its steps as the plan lists
        them, waiting, until its events say more."""
        self.states = {step_id: StepState() for step_id in self.order}
        self._cancelling = False
        self._rebuild = True
        self.running = True
        self._follower = self._run(request, run_id)
        self._show_all()

    @work(exclusive=True, group="plan-run", exit_on_error=False, description="plan run")
    async def _run(self, request: RunRequest | None, run_id: str | None) -> None:
        """The run's events into the sink, from its first, until it ends."""
        assert self.backend is not None
        if request is not None:
            handle = await self.backend.start_run(request)
        else:
            handle = await self.backend.attach(run_id)  # type: ignore[arg-type]
        self._handle = handle
        self.run_id = handle.id
        self.post_message(RunStateChanged(True, run_id=handle.id))
        if self._table_focused():
            self._select(force=True)
        async for _, event in handle.events():
            self.sink(event)

    def _ask_person(self, event: ApprovalAsked) -> None:
        """An agent step asks to run a tool call: the person answers in a dialog (unless it was
        answered meanwhile, e.g. in the history of a run the pane attached to)."""
        handle = self._handle
        if handle is None or event.approval_id not in self._asking:
            return

        def answered(said: str | None) -> None:
            if self._asking.pop(event.approval_id, None) is dialog:
                self.run_worker(handle.answer(event.approval_id, said or "no"), group="plan-answer",
                                exit_on_error=False)

        dialog = self._asking[event.approval_id] = ApproveCall(event.step, event)
        self.app.push_screen(dialog, callback=answered)

    def _close_dialogs(self) -> None:
        """The run's approvals were answered elsewhere, or the pane let go of the run."""
        asking, self._asking = self._asking, {}
        for dialog in asking.values():
            if dialog is not None and self.app.screen is dialog:
                dialog.dismiss(None)

    def sink(self, event: Event) -> None:
        """The run's events, in the app's event loop: state and buffers only, no drawing."""
        if isinstance(event, (*AGENT_EVENTS, StepFinished)):
            for step, group in groupby(self._agent_lines.feed(event), key=lambda line: line[0]):
                text = "\n".join(f"~ {line}" if kind == "reasoning" else line for _, kind, line in group)
                self.sink(Output(step, "stdout", text, ts=event.ts))
            if isinstance(event, AGENT_EVENTS):
                return
        if isinstance(event, Output):
            state = self._state(event.step)
            # Split here, not event.lines: the service keeps the event a while, and it would keep
            # the list of its lines too (several times the text).
            lines = event.text.split("\n")
            state.lines.extend((event.stream, line, event.ts) for line in lines[-STEP_LINES:])  # what the buffer keeps
            state.buffered = True
            if event.step == self._shown:
                if self._pending and self._pending[-1][0] == event.stream and self._pending[-1][2] == event.ts:
                    self._pending[-1][1].extend(lines)
                else:
                    self._pending.append((event.stream, lines, event.ts))
            return
        if isinstance(event, StepStarted):
            state = self._state(event.step)
            state.status, state.started, state.attempt = "running", event.ts, event.attempt
            state.reason = state.exit_code = None
            self.progress = ""  # the preparation is over
        elif isinstance(event, StepFinished):
            state = self._state(event.step)
            state.status, state.exit_code, state.reason = event.status, event.exit_code, event.reason
            state.duration, state.attempt, state.allowed = event.duration, event.attempt, event.allowed_failure
            if event.step == self.highlighted_step:
                self._show_detail()
        elif isinstance(event, Progress):
            self.progress = event.message
        elif isinstance(event, RunStarted):
            self.run_id = event.run_id
        elif isinstance(event, RunFinished):
            self.run_status, self.run_duration = event.status, event.duration
            self.progress = f"kept environment {event.kept_environment}" if event.kept_environment else ""
        elif isinstance(event, ApprovalAsked):
            self._asking[event.approval_id] = None
            self.call_later(self._ask_person, event)
        elif isinstance(event, ApprovalAnswered):
            dialog = self._asking.pop(event.approval_id, None)
            if dialog is not None and self.app.screen is dialog:
                dialog.dismiss(None)
        self._dirty = True

    def _state(self, step_id: str) -> StepState:
        state = self.states.get(step_id)
        if state is None:
            state = self.states[step_id] = StepState()
            if step_id not in self.order:
                self._insert_row(step_id)
        return state

    def _insert_row(self, step_id: str) -> None:
        """A step the preview did not list (one of a nested workflow): after its parent's rows."""
        parent = step_id.rsplit(".", 1)[0] if "." in step_id else None
        at = len(self.order)
        if parent is not None and parent in self.order:
            at = self.order.index(parent) + 1
            while at < len(self.order) and self.order[at].startswith(parent + "."):
                at += 1
        self.order.insert(at, step_id)
        self._rebuild = True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._follower:
            return
        event.stop()
        self._run_ended(event.worker)

    def _run_ended(self, worker: Worker) -> None:
        """The one place a run's end is handled: statuses, notification, RunStateChanged."""
        if worker is not self._follower or worker.state not in (
            WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED
        ):
            return
        self._follower = None
        handle, self._handle = self._handle, None
        self._close_dialogs()
        if worker.state == WorkerState.ERROR:  # it could not start, or the backend failed
            status, error = "failure", error_line(worker.error)
        elif handle is None:
            status, error = "cancelled", None
        else:
            status, error = handle.status, handle.error
        self.run_status = status
        self.resumable = self.run_id if status in RESUMABLE else None
        for state in self.states.values():
            if state.status == "running":
                state.status = "cancelled" if status == "cancelled" else "failure"
            elif state.status == "waiting":
                state.status = "cancelled" if status == "cancelled" else "notrun"
        self._cancelling = False
        self._dirty = True
        self.running = False
        self._tick()
        self._show_detail()
        self._announce(status, error)
        self.post_message(RunStateChanged(False, run_id=self.run_id, status=status))

    def _let_go(self) -> None:
        """Stop following the run shown: it goes on in the service (`p` shows it again)."""
        follower, handle = self._follower, self._handle
        if follower is None:
            return
        self._follower = self._handle = None
        follower.cancel()
        self._close_dialogs()
        self._cancelling = False
        self.running = False
        run_id = handle.id if handle is not None else self.run_id
        self.notify(f"run {run_id} of {self.run_plan or 'the plan'} goes on: p shows it", title="Run goes on")
        self.post_message(RunStateChanged(False, run_id=run_id, status="running"))

    def _announce(self, status: str, error: str | None) -> None:
        plan = self.run_plan or "plan"
        took = f" in {_seconds(self.run_duration)}" if self.run_duration is not None else ""
        if error is not None:
            self.progress = error
            self.notify(f"{plan}: {error}", title="Run failed", severity="error", timeout=10)
        elif status == "success":
            self.notify(f"{plan}: every step succeeded{took}", title="Run finished")
        elif status == "cancelled":
            self.notify(f"{plan}: run cancelled, its throw-away environment removed", title="Run cancelled",
                        severity="warning")
        else:
            failed = [
                f"{step_id} ({'exit ' + str(s.exit_code) if s.exit_code is not None else s.reason or 'failed'})"
                for step_id, s in self.states.items() if s.status == "failure" and not s.allowed
            ]
            detail = f": {', '.join(failed)} failed" if failed else " failed"
            self.notify(f"{plan}{detail} · R resumes", title="Run failed", severity="error", timeout=10)
        self._show_status()

    def action_cancel(self) -> None:
        """`C`: cancel the run shown, once the person says yes (c is the chat's, everywhere)."""
        if self._follower is None or self._cancelling:
            return
        run = f"run {self.run_id}" if self.run_id else "the run"
        question = (f"Cancel {run} of {self.run_plan or 'the plan'}? Its steps stop and its throw-away "
                    "environment is removed (R resumes it later).")

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel()

        self.app.push_screen(Confirm(question, yes="Cancel run", no="Keep running"), answered)

    def _cancel(self) -> None:
        if self._follower is None or self._cancelling:
            return
        self._cancelling = True
        self.progress = "cancelling: stopping the steps and removing the environment"
        if self._handle is not None:
            self.run_worker(self._handle.cancel(), group="plan-cancel", exit_on_error=False)
        else:  # not started yet: it will not be
            self._follower.cancel()
        self.refresh_bindings()
        self._show_status()

    def watch_running(self, running: bool) -> None:
        if running and self._ticker is not None:
            self._ticker.resume()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run":
            return not self.running and self.loaded is not None
        if action == "cancel":
            return self.running and not self._cancelling
        if action == "resume":
            return not self.running and self.loaded is not None and self.resumable is not None
        if action == "inputs":
            return not self.running and self.plan_path is not None
        return True

    def why_not(self, action: str) -> str | None:
        """Why a key of the pane does nothing now (the app says it when the key is pressed)."""
        if action == "cancel":
            return "cancelling already" if self._cancelling else "no run is going: C cancels one while it runs"
        if action in ("run", "resume", "inputs") and self.running:
            return "a run is going: C cancels it (or r picks another plan and the run goes on)"
        if self.plan_path is None:
            return "no plan: r picks one"
        if action in ("run", "resume") and self.loaded is None:
            return "the plan cannot run: its errors are in the plan pane (i sets its inputs)"
        if action == "resume":
            return "nothing to resume: R resumes a failed or cancelled run (p opens past runs)"
        return None

    # -- step selection: the log pane ---------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()
        if self._table_focused():
            self._select()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._select(force=True)

    def on_descendant_focus(self, event: Any) -> None:
        if self._table_focused():
            self._select(force=True)

    def _table_focused(self) -> bool:
        return self._ready and self.table.has_focus

    def _select(self, *, force: bool = False) -> None:
        """Tell the log pane to show the highlighted step: its buffered lines, then its live ones."""
        step_id = self.highlighted_step
        if self.run_id is None or step_id is None or (step_id == self._shown and not force):
            return  # a preview has no output: the log pane keeps what it shows
        self._shown = step_id
        self._pending = []
        self.post_message(self.step_selected(step_id))

    def release_log(self) -> None:
        """The log pane shows something else now (an environment's logs): stop sending StepOutput."""
        self._shown = None
        self._pending = []

    def step_selected(self, step_id: str) -> StepSelected:
        """The StepSelected message for a step of the run shown (or the preview)."""
        state = self.states.get(step_id)
        if self.run_id is None or state is None:
            return StepSelected(step_id, [], None)
        log_file = self.store.log_file(self.run_id, step_id)
        title = step_id if not self.from_record else f"{step_id} · run {self.run_id}"
        if state.reused_from:  # its output is the earlier run's
            log_file = self.store.log_file(state.reused_from, step_id)
            lines = [("stdout", line, at) for at, line in tail(log_file, STEP_LINES)]
            title = f"{step_id} · reused from run {state.reused_from}"
        elif state.buffered or self.running:
            lines = list(state.lines)
        else:  # a recorded run: the log file holds both streams, its index when each line was written
            lines = [("stdout", line, at) for at, line in tail(log_file, STEP_LINES)]
        return StepSelected(title, lines, log_file if log_file.is_file() else None)

    def _flush_output(self) -> None:
        pending, self._pending = self._pending, []
        for stream, lines, at in pending:
            self.post_message(StepOutput(stream, lines, at))

    # -- modal screens: plan picker, inputs, past runs ----------------------------------------

    def action_pick(self) -> None:
        from glmtui.tui.screens.plan_picker import PlanPickerScreen, plan_candidates

        cwd = Path.cwd()
        self.app.push_screen(PlanPickerScreen(plan_candidates(cwd), cwd=cwd), self._picked)

    def _picked(self, path: Path | None) -> None:
        if path is not None:
            self.load(path)

    def action_inputs(self) -> None:
        from glmtui.tui.screens.plan_inputs import PlanInputsScreen

        if self.plan_path is None:
            self.notify("no plan: r picks one", severity="warning")
            return
        if self.loaded is not None:
            plan, workflow = self.loaded.plan, self.loaded.workflow
            secrets = [(item["name"], item["set"]) for item in (self.description or {}).get("secrets", [])]
        else:  # it does not bind (a required input is missing): the plan as built from its file
            import os

            from glmtui.plan.validate import build_plan

            try:
                plan = build_plan([self.plan_path], docker_host=self.config.get("docker_host"))
            except GlmtuiError:
                self.notify("the plan has errors (see the plan pane): fix them, then set its inputs", severity="error")
                return
            workflow = plan.workflows.get(plan.default_workflow or "")
            secrets = [(name, bool(os.environ.get(name))) for name in plan.secrets]
        screen = PlanInputsScreen(
            plan=plan, workflow=workflow, given=self.input_texts, secrets=secrets,
            title=(self.description or {}).get("plan") or self.plan_path.name,
        )
        self.app.push_screen(screen, self._inputs_given)

    def _inputs_given(self, texts: dict[str, str] | None) -> None:
        if texts is None or self.running:
            return
        self.input_texts = dict(texts)
        self._reset_run()
        self._preview()

    @work(exclusive=True, group="plan-past", exit_on_error=False)
    async def action_past_runs(self) -> None:
        """The runs still going in the service first (opened, they are followed live), then the
        run records."""
        from glmtui.tui.screens.plan_picker import PastRunsScreen

        going = [info for info in await self.backend.list_work() if info.kind == "run" and info.running] \
            if self.backend is not None else []
        records = [record for record in self.store.runs(100) if record.id not in {info.id for info in going}]
        run_id = await self.app.push_screen_wait(PastRunsScreen(records, going))
        if run_id is None:
            return
        info = next((info for info in going if info.id == run_id), None)
        if info is None:
            self.open_run(run_id)
        elif info.id != (self._handle.id if self._handle is not None else None):
            self.attach(info)

    def attach(self, info: WorkInfo) -> None:
        """Follow a run that goes on in the service, from its first event: its plan's steps (when
        the file is still there), then what its events say."""
        self._let_go()
        self._reset_run()
        self._show_plan_of(Path(info.plan_file) if info.plan_file else None, info.inputs)
        self.run_id, self.run_status, self.run_plan = info.id, "running", info.title
        self.resumable = None
        self._follow(run_id=info.id)

    def _show_plan_of(self, plan_file: Path | None, inputs: dict[str, Any]) -> None:
        """The preview of a run's plan, with the run's inputs (or the plan's own defaults when the
        plan changed since and no longer takes them)."""
        if plan_file is not None and plan_file.is_file():
            self.plan_path = plan_file
            self.input_texts = _input_texts(inputs)
            if not self._preview() and self.input_texts:
                self.input_texts = {}  # the plan changed since: its own defaults, then
                self._preview()
        else:
            self.plan_path = plan_file
            self._set_plan(None, None, [f"{plan_file}: the plan file is gone; showing the run's steps only"])

    def open_run(self, run_id: str) -> None:
        """Show a past run from its record: its plan (when the file is still there) and its steps."""
        try:
            record = self.store.run(run_id)
        except GlmtuiError as err:
            self.notify(str(err), severity="error")
            return
        self._let_go()
        self._reset_run()
        self._show_plan_of(Path(record.plan_file), record.inputs)
        self.run_id, self.run_status, self.run_plan = record.id, record.status, record.plan
        self.run_duration = None if record.finished is None else record.finished - record.started
        self.from_record = True
        self.resumable = record.id if record.status in RESUMABLE else None
        for step in record.steps:
            state = self._state(step.step)
            state.status, state.exit_code, state.reason = step.status, step.exit_code, step.reason
            state.duration, state.attempt = step.duration, step.attempt
        for step_id in self.order:
            self._state(step_id)  # steps the record never reached show as not run
        for state in self.states.values():
            if state.status == "waiting":
                state.status = "notrun"
        self._rebuild = True
        self._show_all()
        if self._table_focused():
            self._select(force=True)


# --- helpers ------------------------------------------------------------------------------------


def _input_texts(recorded: dict[str, Any]) -> dict[str, str]:
    """A run record's inputs as --input texts (masked ones left out: they would be `***`)."""
    texts = {}
    for name, value in recorded.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        if MASK not in text:
            texts[name] = text
    return texts


def _shown_path(path: Path) -> str:
    from glmtui.tui.screens.plan_picker import display_path

    return display_path(path, Path.cwd())


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value if value and value.strip() == value and "\n" not in value else json.dumps(value)
    return json.dumps(value, default=str)


def _strip_end(text: Text) -> Text:
    text.rstrip()
    return text
