"""The chat pane: a conversation with an agent that works in the environment the user picked.

Each message is a chat turn, work of the service (glmtui.service.chat: it owns the conversation's
session and the agent's task): the pane sends it through the app's backend (glmtui.service.backend)
and follows the turn's events in its worker, whose sink gathers them in order and posts one
ChatEvents message for all those that arrive before the pane handles it (a burst of 200 pieces is
a few messages, not 200); only the pane's handlers change its widgets. esc stops the turn through
its handle. A reply streams in as Markdown (AnswerText: rich's Markdown, parsed and drawn
in the same call, in a widget mounted when the message is sent, holding a dim "…" on the line
its first words will take). The first pieces are drawn once the stream has been quiet for
FIRST_WORDS_QUIET (a burst the client reads at once is drawn once, after it), a piece after a
quiet spell longer than FLUSH_SECONDS at once, the rest of a fast stream at most about every
FLUSH_SECONDS, and always once more at the end; the title and the status line change apart from
the frames that draw words. (Textual's Markdown widget parses in a thread and mounts a widget
per block: it put a piece on screen tens of milliseconds after it came.) The model's thinking
goes to a collapsed section of its own, each tool call to a card. When the approval policy
asks (an ApprovalAsked event), a prompt appears inline and takes the focus; its answer goes to the
turn's handle, and the agent goes on.

The model SDK takes about 0.4 s to import: the service imports glmtui.agent.session (and with it
the client) when the first message is sent, never at start-up. rich.markdown (about
50 ms, markdown-it) is imported when the first answer's widget is drawn.

The pane has no environment until the user picks one (c on a row of the environments pane, or
ctrl+l here), and keeps it: moving the environments pane's cursor does not change it, and when
the environment is stopped or removed the pane says so and sends nothing (a reply under way is
stopped if it is removed); it never moves on to another environment by itself. Conversations are
saved by their session as they go; the pane shows the environment's latest one (or the one picked
with ctrl+o) when the environment is picked, from the stored messages.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Collapsible, Input, Static
from textual.widgets._collapsible import CollapsibleTitle
from textual.worker import Worker, WorkerState

from glmtui.errors import GlmtuiError
from glmtui.events import (
    ApprovalAnswered,
    ApprovalAsked,
    ModelRetry,
    Token,
    ToolCall,
    ToolResult,
    TurnFinished,
    TurnStarted,
    Usage,
)
from glmtui.service.backend import Backend, ChatRequest, WorkHandle
from glmtui.render import tokens_text
from glmtui.transcript import retry_line
from glmtui.tui.messages import ChatEvent, PromptAnswered, SaveAsAgent
from glmtui.tui.widgets.answer import AnswerText
from glmtui.units import counted

if TYPE_CHECKING:
    from glmtui.config import Config
    from glmtui.masking import Masker
    from glmtui.store import Store

FLUSH_SECONDS = 0.05  # a streaming reply is redrawn at most this often
# An answer's first words are drawn once its stream has been quiet this long: a burst (the client
# reading many pieces at once) is drawn once after it, not part-way while the client still reads.
FIRST_WORDS_QUIET = 0.001
# The title and the status line change this long after a reply's last words, so the frame with
# those words is not also a repaint of the whole pane (call_after_refresh can run before it).
AFTER_WORDS = 0.05
SHORT_OUTPUT_LINES = 6  # tool output up to this many lines is shown open; longer output is collapsed
SHORT_OUTPUT_CHARS = 600
HISTORY_SHOWN = 200  # messages of a reopened conversation drawn (the export has them all)
PREVIEW_LINES = 12  # lines of a command or a file's content shown in an approval prompt
STATUS_GLYPHS = {
    "running": ("▶", "yellow"), "waiting": ("?", "yellow"), "ok": ("✔", "green"), "done": ("✔", "green"),
    "error": ("✘", "red"), "denied": ("⊘", "magenta"), "cancelled": ("■", "magenta"),
}
_EXIT_CODE = re.compile(r"(?:^|\n)exit code (-?\d+)(?: \([^)]*\))?\s*$")
_PASTED = re.compile(r"\[pasted text #\d+, \d+ lines\]")


# --- text helpers ---------------------------------------------------------------------------------


def one_line(error: BaseException) -> str:
    """What the user reads of an error: a GlmtuiError's line, else the type and the first line."""
    if isinstance(error, GlmtuiError):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def subject_of(tool: str, arguments: dict[str, Any]) -> str:
    """The one line a card shows of a call: the command, the path, the pattern, else the JSON."""
    if "raw" in arguments and len(arguments) == 1:
        return str(arguments["raw"])
    if tool == "bash":
        return "$ " + str(arguments.get("command", ""))
    if tool in ("read_file", "write_file", "edit_file", "list_files"):
        path = str(arguments.get("path", "."))
        if tool == "read_file" and ("start_line" in arguments or "end_line" in arguments):
            path += f"  lines {arguments.get('start_line', 1)}-{arguments.get('end_line', 'end')}"
        if tool == "write_file":
            path += f"  ({counted(len(str(arguments.get('content', '')).splitlines()), 'line')})"
        return path
    if tool == "grep":
        where = arguments.get("path", ".")
        glob = f" ({arguments['glob']})" if arguments.get("glob") else ""
        return f"/{arguments.get('pattern', '')}/ in {where}{glob}"
    text = json.dumps(arguments, ensure_ascii=False)
    return text if len(text) <= 200 else text[:199] + "…"


def stored_result(tool: str, content: str) -> tuple[str, int | None]:
    """The status (and exit code) of a saved tool answer: the saved messages keep only its text."""
    if content.startswith("refused:"):
        return "denied", None
    if content.startswith("cancelled by the user"):
        return "cancelled", None
    if content.startswith("error:"):
        return "error", None
    match = _EXIT_CODE.search(content) if tool == "bash" else None
    if match:
        code = int(match.group(1))
        return ("ok" if code == 0 else "error"), code
    return "done", None


def keys_masker(config: Config) -> Masker:
    """Every provider key that is set on this host (presets and configured providers alike)."""
    from glmtui.agent import providers
    from glmtui.masking import Masker

    keys = []
    for name in providers.known(config.providers()):
        try:
            provider = providers.resolve(config, name)
            if provider.api_key_env:
                keys.append(provider.api_key())
        except GlmtuiError:
            continue
    return Masker(key for key in keys if len(key) >= 4)


# --- the pieces of a conversation -----------------------------------------------------------------


class Transcript(VerticalScroll, can_focus=False, can_focus_children=False):
    """The conversation, oldest first; it follows new content until the user scrolls up.
    Its pieces are out of the tab order: tab moves between panes (the mouse still opens them)."""


class UserMessage(Static):
    def __init__(self, text: str) -> None:
        super().__init__(Text(text), classes="chat-user")


class Note(Static):
    """One line of the pane's own: a stop, a new conversation, an error (class chat-error)."""

    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__(Text(text), classes="chat-error" if error else "chat-note")


class ThinkingBlock(Collapsible):
    """The model's thinking (the reasoning channel), collapsed, apart from its answer."""

    def __init__(self, masker: Masker) -> None:
        body = Static(classes="thinking-text")
        super().__init__(body, title="thinking…", collapsed=True, classes="thinking")
        self.body = body
        self.text = ""
        self._masker = masker.stream()

    def add(self, pieces: list[str]) -> None:
        self.text += self._masker.feed("".join(pieces))
        self.body.update(Text(self.text))

    def done(self) -> None:
        self.text += self._masker.flush()
        self.body.update(Text(self.text))
        words = len(self.text.split())
        self.title = f"thinking · {words} word{'s' if words != 1 else ''}"


class ChatEvents(Message):
    """The agent's events (glmtui.events Token, ToolCall, ToolResult, Usage, ModelRetry) in the order
    the sink got them: `events` is the sink's list, which keeps growing until the pane handles it."""

    def __init__(self, events: list[Any]) -> None:
        super().__init__()
        self.events = events


class AnswerStream:
    """An assistant message as it streams: its text shows as it comes, in batches (`add`, then
    `flush`), and whole at the end (`finish`). `masker`: the message's masking stream (a key cut
    between two pieces is still masked)."""

    def __init__(self, widget: AnswerText, masker: Any) -> None:
        self.widget = widget
        self._masker = masker
        self._buffer: list[str] = []

    def add(self, pieces: list[str]) -> None:
        self._buffer.extend(pieces)

    def flush(self) -> bool:
        """Show what is buffered; True when something new was drawn."""
        if not self._buffer:
            return False
        chunk = self._masker.feed("".join(self._buffer))
        self._buffer.clear()
        if not chunk:
            return False
        self.widget.show(self.widget.text + chunk, more=True)
        return True

    def finish(self) -> None:
        """Everything shown, the held back end of the text too."""
        rest = self._masker.feed("".join(self._buffer)) + self._masker.flush()
        self._buffer.clear()
        self.widget.show(self.widget.text + rest)


class ToolCard(Vertical):
    """One tool call: its tool and arguments, its status, time and exit code, and its output
    (collapsed when long)."""

    def __init__(self, call_id: str, tool: str, arguments: dict[str, Any], masker: Masker) -> None:
        super().__init__(classes="tool-card -running")
        self.call_id = call_id
        self.tool = tool
        self.arguments = arguments
        self.masker = masker
        self.status = "running"
        self.subject = masker.mask(subject_of(tool, arguments))
        self.exit_code: int | None = None
        self.duration: float | None = None
        self.output: str | None = None
        self.answer: str | None = None  # what the user said to its approval prompt
        self._head = Static(classes="tool-head")
        self._composed = False
        self._output_shown = False
        self._prompt: Widget | None = None  # an approval prompt waiting for compose

    def compose(self) -> ComposeResult:
        self._head.update(self._head_text())
        yield self._head
        yield Static(Text(self.subject), classes="tool-subject")
        self._composed = True
        output = self._output_widget()
        if output is not None:
            self._output_shown = True
            yield output
        if self._prompt is not None:
            yield self._prompt
            self._prompt = None

    def ask(self, prompt: Widget) -> None:
        """Show an approval prompt at the card's end (once the card is composed)."""
        self.set_status("waiting")
        if self._composed:
            self.mount(prompt)
        else:
            self._prompt = prompt

    def _head_text(self) -> Text:
        glyph, color = STATUS_GLYPHS.get(self.status, ("·", "white"))
        text = Text.assemble((glyph, color), " ", (self.tool, "bold"), "  ")
        status = {"running": "running…", "waiting": "waiting for your approval"}.get(self.status, self.status)
        facts = [status]
        if self.exit_code is not None:
            facts.append(f"exit {self.exit_code}")
        if self.duration is not None and self.status != "denied":
            facts.append(f"{self.duration:.1f}s" if self.duration >= 0.1 else f"{self.duration * 1000:.0f}ms")
        if self.answer:
            facts.append(self.answer)
        text.append(" · ".join(facts), style=color if self.status in ("error", "denied") else "dim")
        return text

    def _output_widget(self) -> Widget | None:
        text = (self.output or "").rstrip("\n")
        if not text:
            return None
        lines = text.count("\n") + 1
        body = Static(Text(text), classes="tool-output")
        if lines <= SHORT_OUTPUT_LINES and len(text) <= SHORT_OUTPUT_CHARS:
            return body
        return Collapsible(body, title=f"output · {lines} lines", collapsed=True, classes="tool-output-more")

    def set_status(self, status: str) -> None:
        self.remove_class(f"-{self.status}")
        self.status = status
        self.add_class(f"-{status}")
        self._head.update(self._head_text())

    def note_answer(self, answer: str) -> None:
        self.answer = answer
        self._head.update(self._head_text())

    def finish(self, status: str, output: str, exit_code: int | None, duration: float | None) -> None:
        """Its result: its output is drawn now if the card is composed already, else by compose."""
        self.exit_code, self.duration = exit_code, duration
        self.output = self.masker.mask(output)
        self.set_status(status)
        if self._composed and not self._output_shown:
            widget = self._output_widget()
            if widget is not None:
                self._output_shown = True
                self.mount(widget)


class ApprovalPrompt(Static, can_focus=True):
    """Run this? y yes, n no, a always (for the suggested pattern). Inline, in the call's card.
    `request`: the turn's ApprovalAsked event."""

    BINDINGS = [
        Binding("y", "answer('yes')", "Yes, run it", id="chat.approve.yes"),
        Binding("n", "answer('no')", "No", id="chat.approve.no"),
        Binding("a", "answer('always')", "Always (this pattern)", id="chat.approve.always"),
    ]

    def __init__(self, request: ApprovalAsked, masker: Masker) -> None:
        self.request = request
        super().__init__(self._text(masker), classes="approval")
        self.border_title = "Approve?"

    def _text(self, masker: Masker) -> Text:
        """What the call would do (the card above says the command or path in one line; here the
        whole command, or the content written), then the keys."""
        request = self.request
        arguments = dict(request.arguments)
        text = Text()
        text.append(f"Allow this {request.tool} call?", style="bold")
        if request.tool == "bash":
            command = str(arguments.get("command", ""))
            preview = command if "\n" in command.strip() or len(command) > 100 else ""
        elif request.tool == "write_file":
            preview = str(arguments.get("content", ""))
        elif request.tool == "edit_file":
            old = "".join(f"- {line}\n" for line in str(arguments.get("old_text", "")).splitlines())
            new = "".join(f"+ {line}\n" for line in str(arguments.get("new_text", "")).splitlines())
            preview = (old + new).rstrip("\n")
        else:
            preview = ""
        if preview:
            lines = masker.mask(preview).splitlines()
            if len(lines) > PREVIEW_LINES:
                lines = lines[:PREVIEW_LINES] + [f"… {counted(len(lines) - PREVIEW_LINES, 'more line')}"]
            text.append("\n" + "\n".join(lines))
        text.append("\n")
        text.append_text(Text.assemble(
            (" y ", "reverse"), " yes   ", (" n ", "reverse"), " no   ", (" a ", "reverse"),
            f" always for {request.tool} ", (masker.mask(request.pattern), "bold"), "   ",
            ("esc stops the reply", "dim"),
        ))
        return text

    def on_mount(self) -> None:
        """The focus comes here, so y, n and a answer at once."""
        self.focus()
        self.call_after_refresh(self.scroll_visible, animate=False)

    def action_answer(self, answer: str) -> None:
        self.post_message(PromptAnswered(self, answer))


class ChatInput(Input):
    """The message line. A paste of several lines shows as one token, sent whole."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(compact=True, select_on_focus=False, **kwargs)
        self.pasted: dict[str, str] = {}

    def _on_paste(self, event: Any) -> None:
        text = event.text.replace("\r\n", "\n").strip("\n")
        if "\n" not in text:
            return  # Input's own paste
        token = f"[pasted text #{len(self.pasted) + 1}, {text.count(chr(10)) + 1} lines]"
        self.pasted[token] = text
        self.insert_text_at_cursor(token)
        event.stop()
        event.prevent_default()

    def message(self) -> str:
        """The text to send: the value with each pasted token replaced by what was pasted."""
        return _PASTED.sub(lambda match: self.pasted.get(match.group(0), match.group(0)), self.value)

    def reset(self) -> None:
        self.value = ""
        self.pasted.clear()


# --- the pane -----------------------------------------------------------------------------------


class ChatPane(Widget, can_focus=True):
    """A chat with an agent in the environment the user picked for it (`chat_in`)."""

    # The footer shows the keys of every turn; the others are in the help (f1) and the palette.
    BINDINGS = [
        Binding("enter", "write", "Write", id="chat.write"),
        Binding("escape", "stop", "Stop reply", id="chat.stop"),
        Binding("ctrl+n", "new", "New chat", id="chat.new"),
        Binding("ctrl+o", "open", "Chats", show=False, id="chat.open"),
        Binding("ctrl+s", "export", "Export", show=False, id="chat.export"),
        Binding("ctrl+t", "model", "Model", id="chat.model"),
        Binding("ctrl+l", "environment", "Environment", show=False, id="chat.environment"),
        Binding("ctrl+g", "grow", "Enlarge", id="chat.grow"),
        Binding("ctrl+r", "details", "Expand", show=False, id="chat.details"),
        # priority: the message line's own ctrl+a (to the line's start) would take it first
        Binding("ctrl+a", "save_agent", "Save as agent", show=False, id="chat.save_agent", priority=True),
        Binding("f1", "help", "Help", id="chat.help"),  # ? types into the message
        Binding("pageup", "scroll('page_up')", "Scroll up", show=False, id="chat.page_up"),
        Binding("pagedown", "scroll('page_down')", "Scroll down", show=False, id="chat.page_down"),
        Binding("up", "scroll('up')", show=False, id="chat.up"),
        Binding("down", "scroll('down')", show=False, id="chat.down"),
    ]
    KEY_HELP = {  # longer descriptions, for the help screen and the command palette
        "write": "type a message (any key does); enter sends",
        "stop": "stop the reply (what was said stays)",
        "new": "start a new conversation",
        "open": "reopen a saved conversation of this environment",
        "export": "write the conversation as Markdown",
        "model": "pick the provider and model",
        "environment": "chat in another environment (c on a row of the environments pane does too)",
        "grow": "give the chat more room, or less",
        "details": "open or close every thinking section and tool output",
        "save_agent": "save this conversation's task as a saved agent (the new-agent form, prefilled)",
        "help": "the keys that work here (letters type into the message)",
    }

    def __init__(self, *, config: Config, store: Store, id: str | None = None) -> None:
        super().__init__(id=id)
        self.config = config
        self.store = store
        self.backend: Backend | None = None  # set by the app once the engine is connected
        self.environment: str | None = None  # where the agent works: only the user changes it
        self.engine_name: str | None = None  # the engine it is on; None: the app's own
        self.listed: dict[str, str] = {}  # every environment's status, from the app's last listing
        self.conversation_id: str | None = None
        self.busy = False
        self.last_tokens = 0  # of the last message sent (every model turn it took)
        self.total_tokens = 0  # of the whole conversation
        self.provider_name: str | None = None
        self.model_name: str | None = None
        self.guidance: str | None = None  # what is missing before a message can be sent
        self._choice: tuple[str, str] | None = None  # provider and model picked with ctrl+t
        self._picked: dict[str, str | None] = {}  # environment -> conversation picked (None: a new one)
        self._history: Any = None
        self._masker: Masker | None = None
        self._worker: Worker | None = None  # sends the message and follows its turn
        self._turn: WorkHandle | None = None  # the turn under way
        self._sending: UserMessage | None = None  # the message being sent, until the model has it
        self._sent_text = ""
        self._answer: AnswerStream | None = None
        self._ready: AnswerText | None = None  # the next answer's widget, pending, last in the transcript
        self._thinking: ThinkingBlock | None = None
        self._thinking_parts: list[str] = []
        self._events: list[Any] = []  # the agent's events not handled yet (the sink's batch)
        self._drawn_at = 0.0  # time.monotonic() of the last batch drawn (leading-edge batching)
        self._cards: dict[str, ToolCard] = {}
        self._prompts: dict[ApprovalPrompt, ToolCard | None] = {}  # waiting for the user, with their cards
        self._status_width = 0  # of the status line's text
        self._status_later: str | None = None  # the status line's next text, at the ticker's next tick
        self._first_words: asyncio.TimerHandle | None = None  # the answer's first draw, once the stream is quiet
        self.border_title = "Chat"

    # -- composition ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Transcript(id="chat-transcript")
        yield Static("", id="chat-status")
        with Horizontal(id="chat-entry"):
            yield Static("›", id="chat-prompt")
            yield ChatInput(placeholder="message the agent · enter sends", id="chat-input")

    def on_mount(self) -> None:
        self._ticker = self.set_interval(FLUSH_SECONDS, self._tick, pause=True)
        self.transcript.anchor()
        self.call_after_refresh(self._describe_provider)

    def on_unmount(self) -> None:
        self._drop_first_words()

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def input(self) -> ChatInput:
        return self.query_one(ChatInput)

    @property
    def masker(self) -> Masker:
        if self._masker is None:
            self._masker = keys_masker(self.config)
        return self._masker

    @property
    def history(self) -> Any:
        if self._history is None:
            from glmtui.conversations import Conversations

            self._history = Conversations(self.store)
        return self._history

    def focus_input(self) -> None:
        """The message line; while the agent waits for an answer, the approval prompt."""
        waiting = next(iter(self._prompts), None)
        (waiting or self.input).focus()

    # -- focus and keys ---------------------------------------------------------------------

    def allow_focus_children(self) -> bool:
        """Tab stops once at the pane; its message line joins the tab order only while the focus is
        inside the pane (then tab goes on to the next pane)."""
        focused = self.screen.focused if self.is_attached else None
        return focused is not None and focused is not self and self in focused.ancestors

    def on_focus(self) -> None:
        """Back on the pane while the agent waits for an answer: the prompt takes the focus."""
        if self._prompts:
            self.focus_input()

    def on_key(self, event: Any) -> None:
        """On the pane (or a section title in it), typing starts a message."""
        focused = self.screen.focused
        if not (focused is self or isinstance(focused, CollapsibleTitle)):
            return
        if event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            self.input.focus()
            self.input.insert_text_at_cursor(event.character)

    def action_help(self) -> None:
        self.app.action_help()

    def on_paste(self, event: Any) -> None:
        if self.screen.focused is self:
            event.stop()
            self.input.focus()
            self.input.post_message(type(event)(event.text))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("new", "open", "model", "environment") and self.busy:
            return None  # shown, dimmed: they wait for the reply
        if action == "write" and isinstance(self.screen.focused, ApprovalPrompt):
            return False
        return True

    def action_write(self) -> None:
        self.focus_input()

    def action_scroll(self, how: str) -> None:
        transcript = self.transcript
        {"page_up": transcript.scroll_page_up, "page_down": transcript.scroll_page_down,
         "up": transcript.scroll_up, "down": transcript.scroll_down}[how]()

    def action_grow(self) -> None:
        self.toggle_class("-large")
        self.call_after_refresh(self.transcript.scroll_end, animate=False)

    def action_details(self) -> None:
        sections = list(self.transcript.query(Collapsible))
        if sections:
            opening = any(section.collapsed for section in sections)
            for section in sections:
                section.collapsed = not opening

    def action_stop(self) -> None:
        if self.busy:
            self._stop_turn()
            self._set_status("stopping…")
        elif self.screen.focused is self.input:
            self.focus()

    def _stop_turn(self) -> None:
        """Stop the reply: the turn through its handle (what was said stays), or the sending."""
        if self._turn is not None:
            self.run_worker(self._turn.cancel(), group="chat-stop", exit_on_error=False)
        elif self._worker is not None:
            self._worker.cancel()

    # -- the environment and its conversation ------------------------------------------------

    def chat_in(self, environment: str, engine: str | None = None) -> bool:
        """The user's pick: the chat works in `environment` (on `engine`; None: the app's own)
        from now on, its conversation shown. Refused (False) while a reply runs."""
        if environment == self.environment and engine == self.engine_name:
            return True
        if self._refuse_while_busy():
            return False
        self.environment, self.engine_name = environment, engine
        if environment in self._picked:
            self._show_conversation(self._picked[environment])
        else:
            latest = self.history.latest(environment)
            self._show_conversation(latest.id if latest else None)
        return True

    def environments_listed(self, statuses: dict[str, str]) -> None:
        """The app's listing (name -> status): if the chat's environment was stopped or removed,
        the pane says so; a reply under way in a removed environment is stopped."""
        before = self.listed.get(self.environment or "")
        self.listed = dict(statuses)
        if self.environment is None or self.listed.get(self.environment) == before:
            return
        if self.environment not in self.listed and self.busy:
            self._stop_turn()
        if not self.busy:
            self._set_status(self._advice(), warning=True)

    def _environment_problem(self) -> str | None:
        """Why no message can go to the agent's environment now; None when it can."""
        environment = self.environment
        if environment is None:
            return "no environment: c on one in the environments pane (or ctrl+l) chats in it"
        if environment not in self.listed:
            return f"{environment} was removed: this conversation stays with it; ctrl+l chats in another environment"
        if self.listed[environment] != "running":
            return f"{environment} is {self.listed[environment]}: s in the environments pane starts it"
        return None

    def _advice(self) -> str | None:
        """The idle status line: what stands in the way of sending, the environment first."""
        return self._environment_problem() or self.guidance

    def action_environment(self) -> None:
        if self._refuse_while_busy():
            return
        from glmtui.tui.screens.chat import EnvironmentPicker

        def picked(environment: str | None) -> None:
            if environment is not None and self.chat_in(environment):
                self.input.focus()

        self.app.push_screen(EnvironmentPicker(self.listed, self.environment), picked)

    def _show_conversation(self, conversation_id: str | None) -> None:
        """Draw a saved conversation (None: an empty, new one)."""
        self._clear()
        self.last_tokens = self.total_tokens = 0
        widgets: list[Widget] = []
        conversation = None
        if conversation_id is not None:
            try:
                conversation = self.history.get(conversation_id)
                messages = [m for m in self.history.messages(conversation.id) if m.get("role") != "system"]
            except GlmtuiError as err:  # e.g. removed meanwhile with `glmtui chats remove`
                widgets.append(Note(f"✘ {one_line(err)}", error=True))
                conversation = None
        self.conversation_id = conversation.id if conversation is not None else None
        if self.environment is not None and conversation_id is not None and conversation is None:
            self._picked[self.environment] = None
        self._describe_provider(conversation)
        if conversation is None:
            if widgets:
                self.transcript.mount_all(widgets)
            return
        self.total_tokens = conversation.input_tokens + conversation.output_tokens
        self._show_title()
        if len(messages) > HISTORY_SHOWN:
            widgets.append(Note(f"… {len(messages) - HISTORY_SHOWN} earlier messages (ctrl+s exports them all)"))
            messages = messages[-HISTORY_SHOWN:]
        widgets += self._history_widgets(messages)
        if widgets:
            self.transcript.mount_all(widgets)
            self.call_after_refresh(self.transcript.scroll_end, animate=False)

    def _history_widgets(self, messages: Iterable[dict[str, Any]]) -> list[Widget]:
        masker = self.masker
        widgets: list[Widget] = []
        cards: dict[str, ToolCard] = {}
        for message in messages:
            role = message.get("role")
            content = message.get("content")
            if not isinstance(content, str):
                content = "" if content is None else json.dumps(content, ensure_ascii=False)
            content = masker.mask(content)
            if role == "user":
                widgets.append(UserMessage(content))
            elif role == "assistant":
                if content.strip():
                    widgets.append(AnswerText(content))
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {}
                    try:
                        arguments = json.loads(function.get("arguments") or "{}")
                    except ValueError:
                        arguments = None
                    if not isinstance(arguments, dict):
                        arguments = {"raw": str(function.get("arguments", ""))}
                    card = ToolCard(str(call.get("id", "")), str(function.get("name", "?")), arguments, masker)
                    cards[card.call_id] = card
                    widgets.append(card)
            elif role == "tool":
                card = cards.get(str(message.get("tool_call_id", "")))
                if card is not None:
                    status, code = stored_result(card.tool, content)
                    card.finish(status, content, code, None)
        for card in cards.values():
            if card.status == "running":  # no answer was saved: it never ran to the end
                card.set_status("cancelled")
        return widgets

    def _clear(self) -> None:
        self._answer = None
        self._ready = None
        self._thinking = None
        self._cards.clear()
        self.transcript.remove_children()

    def _describe_provider(self, conversation: Any = None) -> None:
        """The provider and model the next message goes to, in the title; what is missing, in the
        status line (one line each, as the provider module says it)."""
        from glmtui.agent import providers

        if conversation is None and self.conversation_id is not None:
            try:
                conversation = self.history.get(self.conversation_id)
            except GlmtuiError:
                conversation = None
        name, model = self._choice or (None, None)
        if conversation is not None and self._choice is None:
            name, model = conversation.provider, conversation.model
        self.guidance = None
        try:
            provider = providers.resolve(self.config, name, model)
        except GlmtuiError as err:
            self.provider_name, self.model_name = name, model
            if name is None and not self.config.get("default_provider"):
                self.guidance = ("no model provider: ctrl+t picks one, or `glmtui config set default_provider zai`"
                                 " with the key in ZAI_API_KEY")
            else:
                self.guidance = str(err)
        else:
            self.provider_name, self.model_name = provider.name, provider.model
            try:
                provider.api_key()
            except GlmtuiError as err:
                self.guidance = str(err)
        self._show_title()
        if not self.busy:
            self._set_status(self._advice(), warning=True)

    def _show_title(self) -> None:
        parts = ["Chat", self.environment or "no environment"]
        if self.provider_name:
            parts.append(self.provider_name)
        if self.model_name:
            parts.append(self.model_name)
        title = " · ".join(parts)
        if self.border_title != title:  # setting it repaints the whole pane, even with the same text
            self.border_title = title
        if self.is_mounted:
            self.input.placeholder = (f"message the agent in {self.environment} · enter sends"
                                      if self.environment else "pick an environment to chat with an agent in it")
        if self.total_tokens or self.last_tokens:
            last = f"last {tokens_text(self.last_tokens)} · " if self.last_tokens else ""
            subtitle = f"{last}total {tokens_text(self.total_tokens)} tokens"
        else:
            subtitle = ""
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle

    def _set_status(self, text: str | None, *, warning: bool = False) -> None:
        self._status_later = None
        status = self.query_one("#chat-status", Static)
        line = Text(text or "")
        # A layout (the transcript above moves) only when the line appears, goes or may wrap; a
        # new status on the line that is there is a repaint of it (e.g. with a reply's first words).
        width = status.content_size.width
        layout = bool(text) != status.has_class("-shown") or max(line.cell_len, self._status_width) >= width
        self._status_width = line.cell_len
        status.update(line, layout=layout)
        status.set_class(bool(text), "-shown")
        status.set_class(warning, "-warning")

    # -- sending ----------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-input")
    def on_chat_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._prompts:
            self.focus_input()  # the agent waits for an answer first
            return
        text = self.input.message().strip()
        if not text:
            return
        if self.busy:
            self.notify("the agent is still replying: esc stops it", severity="warning")
            return
        environment = self.environment
        if self._refuse_without_environment(removed_too=True):
            return
        if self.backend is None:
            self.notify("the Docker engine is unreachable", severity="error")
            return
        self.input.reset()
        if text == "/undo":
            self._undo(environment)
            return
        self._sent_text = text
        self._sending = UserMessage(text)
        self.transcript.mount(self._sending)
        self._make_ready()
        self.transcript.anchor()
        self.busy = True
        self.last_tokens = 0
        self._set_status(f"waiting for {self.provider_name or 'the model'}…")
        self._ticker.resume()
        self.refresh_bindings()
        provider, model = self._choice or (None, None)
        self._worker = self._reply(ChatRequest(environment, text, self.conversation_id, provider, model,
                                               self.engine_name))

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def _reply(self, request: ChatRequest) -> None:
        """Send the message (a turn of the service) and follow the turn's events until it ends."""
        assert self.backend is not None
        self._turn = await self.backend.send_chat(request)
        async for _, event in self._turn.events():
            self.sink(event)

    @work(exclusive=True, group="chat-undo", exit_on_error=False)
    async def _undo(self, environment: str) -> None:
        """/undo: the workspace back to before the last turn of this chat that changed files."""
        assert self.backend is not None
        done = await self.backend.undo_chat(self.conversation_id) if self.conversation_id else None
        if done is None:
            self.transcript.mount(Note("nothing to undo: no turn since this chat was opened changed files"))
        else:
            self.transcript.mount(Note(f"↶ undone: the files are back as they were before the last turn "
                                       f"(checkpoint {done['checkpoint']}); to redo it: "
                                       f"glmtui env rollback {environment} {done['rescue']}"))
        self.transcript.anchor()

    # -- what the agent reports -------------------------------------------------------------

    def sink(self, event: Any) -> None:
        """The turn's events become messages to the pane, one message for all the events that
        arrive before the pane handles it (in order: it is posted with the first)."""
        self._events.append(event)
        if len(self._events) == 1:
            self.post_message(ChatEvents(self._events))

    @on(ChatEvents)
    def on_chat_events(self, message: ChatEvents) -> None:
        """A batch of events, in order; consecutive pieces of one channel are shown together."""
        message.stop()
        events = message.events
        if events is self._events:
            self._events = []  # the next event starts the next batch
        pieces: list[str] = []
        channel = ""
        for event in events:
            if isinstance(event, Token):
                if pieces and event.channel != channel:
                    self._add_pieces(channel, pieces)
                    pieces = []
                channel = event.channel
                pieces.append(event.text)
                continue
            if pieces:
                self._add_pieces(channel, pieces)
                pieces = []
            self._show_event(event)
        if pieces:
            self._add_pieces(channel, pieces)

    @on(ChatEvent)
    def on_chat_event(self, message: ChatEvent) -> None:
        """One event (the sink batches them; this is for one posted on its own)."""
        message.stop()
        event = message.event
        if isinstance(event, Token):
            self._add_pieces(event.channel, [event.text])
        else:
            self._show_event(event)

    def _make_ready(self) -> None:
        """The next answer's widget at the transcript's end, mounted ahead and pending (a dim
        "…"): its first piece is drawn in a repaint of that line, not a mount and a layout."""
        if self._ready is None:
            self._ready = AnswerText(pending=True)
            self.transcript.mount(self._ready)

    def _mount(self, widget: Widget) -> None:
        """A part of the reply into the transcript, before the next answer's widget."""
        self.transcript.mount(widget, before=self._ready)

    def _add_pieces(self, channel: str, pieces: list[str]) -> None:
        self._sending = None
        if channel == "reasoning":
            self._add_thinking(pieces)
        else:
            self._add_answer(pieces)

    def _show_event(self, event: Any) -> None:
        if isinstance(event, ToolCall):
            self._close_blocks()
            card = ToolCard(event.call_id, event.tool, dict(event.arguments), self.masker)
            self._cards[event.call_id] = card
            self._mount(card)
            self._make_ready()  # for the answer after the result
            self._set_status(f"running {event.tool}…")
        elif isinstance(event, ToolResult):
            card = self._cards.get(event.call_id)
            if card is not None:
                card.finish(event.status, event.output, event.exit_code, event.duration)
            if not any(c.status in ("running", "waiting") for c in self._cards.values()):
                self._set_status(f"waiting for {self.model_name or 'the model'}…")
        elif isinstance(event, ModelRetry):
            self._set_status(retry_line(event), warning=True)
        elif isinstance(event, Usage):
            self._close_blocks()
            self.last_tokens += event.input_tokens + event.output_tokens
            self.total_tokens = event.total_input_tokens + event.total_output_tokens
            self.set_timer(AFTER_WORDS, self._show_title)
        elif isinstance(event, TurnStarted):
            self._sending = None  # from here on, the message is the conversation's
            self.conversation_id = event.conversation_id
            self._picked[event.environment] = event.conversation_id
            self.provider_name, self.model_name = event.provider, event.model
            self.total_tokens = event.input_tokens + event.output_tokens
            self._show_title()
        elif isinstance(event, TurnFinished):
            if not event.finished and event.reason:
                self._mount(Note(f"■ {event.reason}: send a message to go on"))
        elif isinstance(event, ApprovalAsked):
            self._ask(event)
        elif isinstance(event, ApprovalAnswered):  # answered here (the prompt is gone), or elsewhere
            prompt = next((p for p in self._prompts if p.request.approval_id == event.approval_id), None)
            if prompt is not None:
                self._answered(prompt, event.answer)

    def _add_thinking(self, pieces: list[str]) -> None:
        if self._thinking is None:
            self._close_answer()
            self._thinking = ThinkingBlock(self.masker)
            self._thinking_parts = []
            self._mount(self._thinking)
            self._set_status("thinking…")
        self._thinking_parts.extend(pieces)
        self._lead()

    def _add_answer(self, pieces: list[str]) -> None:
        if self._answer is None:
            # The first pieces go in the widget made ready when the message was sent, once the
            # stream is quiet; the next ones wait for the ticker, or for a quiet spell to end.
            self._close_thinking()
            widget, self._ready = self._ready, None
            if widget is None:
                widget = AnswerText()
                self.transcript.mount(widget)
            self._answer = AnswerStream(widget, self.masker.stream())
            self._answer.add(pieces)
            self._draw_when_quiet()
            # at the next tick: in the frame with the first words, a change of the status line at
            # the pane's foot would have Textual redraw every line between the two
            self._status_later = "replying…  esc stops"
            return
        self._answer.add(pieces)
        if self._first_words is not None:
            self._draw_when_quiet()
        else:
            self._lead()

    def _draw_when_quiet(self) -> None:
        self._drop_first_words()
        self._first_words = asyncio.get_running_loop().call_later(FIRST_WORDS_QUIET, self._flush)

    def _drop_first_words(self) -> None:
        """No first draw pending: it is being done, or the whole answer is."""
        if self._first_words is not None:
            self._first_words.cancel()
            self._first_words = None

    def _lead(self) -> None:
        """The leading edge: a piece after a quiet spell is drawn now, not at the next tick (the
        ticker draws the rest of a fast stream)."""
        if time.monotonic() - self._drawn_at > FLUSH_SECONDS:
            self._flush()

    def _tick(self) -> None:
        if self._status_later is not None:
            self._set_status(self._status_later)
        self._flush()

    def _flush(self) -> None:
        self._drop_first_words()
        drawn = False
        if self._thinking is not None and self._thinking_parts:
            self._thinking.add(self._thinking_parts)
            self._thinking_parts = []
            drawn = True
        if self._answer is not None and self._answer.flush():
            drawn = True
        if drawn:
            self._drawn_at = time.monotonic()

    def _close_thinking(self) -> None:
        if self._thinking is not None:
            self._flush()
            self._thinking.done()
            self._thinking = None

    def _close_answer(self) -> None:
        answer, self._answer = self._answer, None
        self._drop_first_words()
        if answer is not None:
            answer.finish()

    def _close_blocks(self) -> None:
        self._close_thinking()
        self._close_answer()

    # -- approvals --------------------------------------------------------------------------

    def _ask(self, request: ApprovalAsked) -> None:
        prompt = ApprovalPrompt(request, self.masker)
        card = self._card_for(request)
        self._prompts[prompt] = card
        if card is not None:
            card.ask(prompt)
        else:
            self._mount(prompt)
        self._set_status("the agent waits for your answer: y yes · n no · a always", warning=True)
        self.transcript.anchor()

    def _card_for(self, request: Any) -> ToolCard | None:
        from glmtui.agent.approval import subject_of as request_subject

        candidates = [card for card in self._cards.values() if card.tool == request.tool and card.status == "running"]
        for card in candidates:
            if self.masker.mask(request_subject(card.tool, card.arguments)) == self.masker.mask(request.subject):
                return card
        return candidates[0] if candidates else None

    @on(PromptAnswered)
    def on_prompt_answered(self, message: PromptAnswered) -> None:
        message.stop()
        prompt = message.prompt
        if prompt not in self._prompts:
            return
        if self._turn is not None:
            self.run_worker(self._turn.answer(prompt.request.approval_id, message.answer), group="chat-answer",
                            exit_on_error=False)
        self._answered(prompt, message.answer)

    def _answered(self, prompt: ApprovalPrompt, answer: str) -> None:
        """The prompt goes, its card says the answer, the agent goes on."""
        card = self._prompts.pop(prompt)
        had_focus = prompt.has_focus
        prompt.remove()
        if card is not None:
            card.set_status("running")
            card.note_answer({"yes": "you said yes", "no": "you said no",
                              "always": f"always: {self.masker.mask(prompt.request.pattern)}"}[answer])
        self._set_status("running…" if answer != "no" else f"waiting for {self.model_name or 'the model'}…")
        if had_focus and not self._prompts:
            self.input.focus()

    # -- the end of a reply -----------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Where a reply ends, however it ends (the turn's status, or the sending's failure): errors
        become one line in the pane."""
        worker = event.worker
        if worker is not self._worker:
            if event.state is WorkerState.ERROR:
                self.notify(one_line(worker.error), severity="error", timeout=8)
            return
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self._worker = None
        turn, self._turn = self._turn, None
        if event.state is WorkerState.SUCCESS and turn is not None:
            status, error = turn.status, turn.error
        elif event.state is WorkerState.ERROR:  # the backend did not take the message
            status, error = "failure", one_line(worker.error)
        else:
            status, error = "cancelled", None
        self._ticker.pause()
        self._status_later = None
        self._flush()
        self._close_blocks()
        if self._ready is not None:
            self._ready.remove()
            self._ready = None
        for prompt in self._prompts:
            prompt.remove()
        self._prompts.clear()
        for card in self._cards.values():
            if card.status in ("running", "waiting"):
                card.set_status("cancelled")
        unsent = self._sending
        self._sending = None
        if status == "cancelled":
            self.transcript.mount(Note("■ stopped: what was said so far is kept"))
        elif error is not None:
            if unsent is not None:  # it never reached the model: back into the message line
                unsent.remove()
                if not self.input.value:
                    self.input.value = self._sent_text
                    self.input.cursor_position = len(self._sent_text)
            self.transcript.mount(Note(f"✘ {error}", error=True))
        self.busy = False
        self._cards.clear()
        self.refresh_bindings()
        self.set_timer(AFTER_WORDS, self._show_idle)
        focused = self.screen.focused
        if focused is None or isinstance(focused, ApprovalPrompt) or focused is self:
            self.input.focus()

    def _show_idle(self) -> None:
        """The title and the status line, AFTER_WORDS after a reply ended (the title repaints the
        whole pane, the status line moves the transcript)."""
        self._show_title()
        if not self.busy:
            self._set_status(self._advice(), warning=True)

    # -- conversations, the model, export ---------------------------------------------------

    def _refuse_while_busy(self) -> bool:
        if self.busy:
            self.notify("the agent is replying: esc stops it first", severity="warning")
        return self.busy

    def _refuse_without_environment(self, *, removed_too: bool = False) -> bool:
        """No environment picked (or, with `removed_too`, the one picked was removed): say so."""
        if self.environment is not None and (not removed_too or self.environment in self.listed):
            return False
        self.notify(self._environment_problem() or "", severity="warning")
        return True

    def action_new(self) -> None:
        if self._refuse_while_busy():
            return
        if self._refuse_without_environment():
            return
        self._picked[self.environment] = None
        self._show_conversation(None)
        self.transcript.mount(Note("new conversation: your first message starts it"))
        self.input.focus()

    def action_open(self) -> None:
        if self._refuse_while_busy():
            return
        environment = self.environment
        if self._refuse_without_environment():
            return
        from glmtui.tui.screens.chat import ConversationPicker

        def picked(conversation_id: str | None) -> None:
            if conversation_id is not None and not self.busy and self.environment == environment:
                self._picked[environment] = conversation_id
                self._show_conversation(conversation_id)
                self.input.focus()

        self.app.push_screen(ConversationPicker(self.history.list(environment), environment, self.conversation_id),
                             picked)

    def action_model(self) -> None:
        if self._refuse_while_busy():
            return
        from glmtui.tui.screens.chat import ModelPicker

        def picked(choice: tuple[str, str] | None) -> None:
            if choice is None or self.busy:
                return
            self._choice = choice
            self._describe_provider()
            self.transcript.mount(Note(f"next messages go to {choice[0]} · {choice[1]}"))
            self.input.focus()

        self.app.push_screen(ModelPicker(self.config, self.provider_name, self.model_name), picked)

    def action_export(self) -> None:
        conversation_id = self.conversation_id
        if conversation_id is None:
            self.notify("nothing to export yet: send a message first", severity="warning")
            return
        from glmtui.tui.screens.chat import ExportScreen

        def chosen(target: str | None) -> None:
            if target:
                self._export(conversation_id, target)

        self.app.push_screen(ExportScreen(f"{conversation_id}.md"), chosen)

    def action_save_agent(self) -> None:
        """The conversation's task as a saved agent: its first message is the prompt."""
        first = None
        if self.conversation_id is not None:
            try:
                messages = self.history.messages(self.conversation_id)
            except GlmtuiError:
                messages = []
            first = next((m.get("content") for m in messages if m.get("role") == "user"), None)
        if not isinstance(first, str) or not first.strip():
            self.notify("nothing to save yet: the conversation's first message becomes the agent's prompt",
                        severity="warning")
            return
        self.post_message(SaveAsAgent(first, self.environment, self.provider_name, self.model_name))

    @work(group="chat-export", exit_on_error=False)
    async def _export(self, conversation_id: str, target: str) -> None:
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        if path.is_dir():
            path = path / f"{conversation_id}.md"
        text = self.masker.mask(self.history.markdown(conversation_id))
        try:
            await asyncio.to_thread(path.write_text, text, encoding="utf-8")
        except OSError as err:
            self.notify(f"cannot write {path}: {err.strerror or err}", severity="error")
            return
        self.notify(f"exported to {path}", title="Conversation exported")
