"""The tools a model uses to work inside an environment: shell, read, write, edit, list, search.

Everything runs in the container through the engine. Model values only ever travel as argv
elements or as file content; the one shell string is the `bash` tool's own command, given
whole to `sh -c` inside the container. The same tools serve outside agents over MCP
(glmtui.server.mcp), whose command tool (`Toolbox.command`) keeps stdout and stderr apart.
"""

from __future__ import annotations

import copy
import functools
import json
import posixpath
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from glmtui.agent.approval import READ_ONLY  # noqa: F401 - the tools that change nothing
from glmtui.docker.engine import STDERR, STDOUT
from glmtui.errors import BadInput, EngineUnreachable, GlmtuiError, did_you_mean
from glmtui.units import counted

if TYPE_CHECKING:
    from glmtui.docker.engine import Engine
    from glmtui.docker.types import ExecResult

ALL_TOOLS = ("bash", "read_file", "write_file", "edit_file", "list_files", "grep")

MAX_COMMAND_TIMEOUT = 600.0  # seconds; a model may ask for less or more than the default, not more than this
AGENT_TMP = "/tmp/glmtui-agent"  # whole outputs of commands, and file content on its way in
SAVE_LIMIT = 8 * 1024 * 1024  # bytes of a command's output kept whole (then only its last TAIL_KEPT)
TAIL_KEPT = 256 * 1024
READ_LIMIT = 10 * 1024 * 1024  # bytes: bigger files are looked at with bash (head, sed -n, grep)
LINE_LIMIT = 2000  # characters of one line shown by read_file
MATCH_LINE_LIMIT = 400  # characters of one line shown by grep
NOTE_ROOM = 400  # characters of the output limit left for notes and the exit code line
BINARY_SNIFF = 8192

BINARY_MATCH = "binary file matches"  # GNU grep says so on stderr; busybox prints the line
_NO_SUCH = ("No such file or directory", "Not a directory")
_ARGV_ARGUMENTS = ("command", "path", "pattern", "glob")  # values that become argv elements
_SCHEMAS: dict[str, dict[str, Any]] = {
    "bash": {
        "description": (
            "Run a shell command (sh -c) in the environment and get its output (stdout and stderr) and exit "
            "code. Each call starts afresh in the working folder: cd and variables do not carry over, and "
            "what it starts in the background ends with it. Nothing comes on stdin, so interactive programs "
            "will not work."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "minLength": 1, "description": "The shell command or script."},
                "timeout": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Seconds before the command and its children are killed (at most 600).",
                },
            },
            "required": ["command"],
        },
    },
    "read_file": {
        "description": (
            "Read a text file, with line numbers. Long files come in parts: pass start_line and end_line to read more."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "The file; relative to the working folder."},
                "start_line": {"type": "integer", "minimum": 1, "description": "First line to show (1-based)."},
                "end_line": {"type": "integer", "minimum": 1, "description": "Last line to show (inclusive)."},
            },
            "required": ["path"],
        },
    },
    "write_file": {
        "description": "Create or replace a file with the given content; missing folders are created.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "The file; relative to the working folder."},
                "content": {"type": "string", "description": "The whole new content of the file."},
            },
            "required": ["path", "content"],
        },
    },
    "edit_file": {
        "description": (
            "Replace one exact piece of text in a file. old_text must match the file exactly (spaces and "
            "indentation included) and appear only once: include surrounding lines to make it unique."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "The file; relative to the working folder."},
                "old_text": {"type": "string", "minLength": 1, "description": "The exact text to replace."},
                "new_text": {"type": "string", "description": "The text to put in its place (empty: delete it)."},
            },
            "required": ["path", "old_text", "new_text"],
        },
    },
    "list_files": {
        "description": "List files and folders (folders end with '/'), a few levels deep; .git contents are skipped.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "The folder; default: the working folder."},
                "depth": {
                    "type": "integer", "minimum": 1, "maximum": 20, "description": "Levels to descend (default 2).",
                },
            },
        },
    },
    "grep": {
        "description": (
            "Search file contents for an extended regular expression (grep -E); answers file:line:text. "
            ".git contents are skipped."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "minLength": 1, "description": "The regular expression."},
                "path": {
                    "type": "string", "minLength": 1, "description": "File or folder; default: the working folder.",
                },
                "glob": {"type": "string", "minLength": 1, "description": "Only files whose name matches, e.g. *.py."},
                "ignore_case": {"type": "boolean", "description": "Match upper and lower case alike."},
            },
            "required": ["pattern"],
        },
    },
}
for _schema in _SCHEMAS.values():
    _schema["parameters"]["additionalProperties"] = False


@dataclass
class CommandResult:
    """A command run by `Toolbox.command`: each stream within the output limit, with a note where cut."""

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    reason: str | None = None  # why it ended other than by exiting: timeout, killed, not found
    saved_to: dict[str, str] = field(default_factory=dict)  # stream -> the file in the environment with all of it

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.reason is None


@dataclass
class ToolResult:
    ok: bool  # False: bad arguments, a missing file, an edit that does not apply, a command's exit != 0 ...
    output: str  # for the model, within the output limit
    exit_code: int | None = None  # bash only
    duration: float = 0.0
    saved_to: str | None = None  # bash: the file in the environment with the whole output, when it was cut


class _Refusal(Exception):
    """A model mistake or a failed tool: its message goes back to the model as ok=False."""


@dataclass(frozen=True)
class _FileInfo:
    kind: str  # stat's %F: "regular file", "regular empty file", "directory", ...
    size: int

    @property
    def regular(self) -> bool:
        return self.kind.startswith("regular")


class Toolbox:
    """The tools of one agent in one environment."""

    def __init__(
        self,
        engine: Engine,
        environment: str,
        *,
        workdir: str | None = None,
        user: str | None = None,
        allowed: Iterable[str] | None = None,
        command_timeout: float = 120.0,
        output_limit: int = 16_000,
        shell_tool: str = "bash",
    ) -> None:
        """`shell_tool` is the name the notes give the tool that runs commands (MCP's is `exec`)."""
        self.engine = engine
        self.environment = environment
        self.user = user
        self.command_timeout = command_timeout
        self.output_limit = output_limit
        self.shell_tool = shell_tool
        self.names = _allowed_names(allowed)
        self._workdir = workdir
        self._limited: bool | None = None  # an environment with an egress allowlist (asked once)
        self._tools: dict[str, Callable[..., Awaitable[ToolResult]]] = {
            "bash": self._bash,
            "read_file": self._read_file,
            "write_file": self._write_file,
            "edit_file": self._edit_file,
            "list_files": self._list_files,
            "grep": self._grep,
        }

    def schemas(self) -> list[dict[str, Any]]:
        return [
            {"type": "function", "function": {"name": name, **copy.deepcopy(_SCHEMAS[name])}}
            for name in self.names
        ]

    def describe(self) -> str:
        tools = ", ".join(self.names) or "none"
        where = f"the working folder {self._workdir}" if self._workdir else "the working folder"
        return (
            f"Your tools ({tools}) act only inside the environment, never on the user's machine. "
            f"Relative paths are relative to {where}; absolute paths work too. "
            f"Outputs longer than about {self.output_limit} characters are cut, with a note saying how to see the rest."
        )

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> ToolResult:
        """Run one tool call; a model mistake is an ok=False result, never an exception."""
        started = time.monotonic()
        try:
            given = self._checked(name, arguments)
            result = await self._tools[name](**given)
        except _Refusal as refusal:
            result = ToolResult(False, str(refusal))
        result.duration = result.duration or time.monotonic() - started
        return result

    def _checked(self, name: str, arguments: Any) -> dict[str, Any]:
        """The call's arguments, valid for the tool; a null counts as not given (models send them)."""
        if name not in self.names:
            known = f"; the tools are {', '.join(self.names)}" if self.names else ""
            if name in ALL_TOOLS:
                raise _Refusal(f"the tool {name!r} is not allowed here{known}")
            raise _Refusal(f"there is no tool {name!r}{did_you_mean(name, self.names)}{known}")
        if arguments is not None and not isinstance(arguments, Mapping):
            raise _Refusal(f"{name}: the arguments must be a JSON object")
        given = {key: value for key, value in (arguments or {}).items() if value is not None}
        problem = argument_problem(name, _SCHEMAS[name]["parameters"], given, argv=_ARGV_ARGUMENTS)
        if problem:
            raise _Refusal(problem)
        return given

    # -- the tools --------------------------------------------------------------------------

    async def _bash(self, command: str, timeout: float | None = None) -> ToolResult:
        capture = _Capture()
        started = time.time()
        result = await self._execute(["sh", "-c", command], timeout, capture.add)
        for line in await self._blocked_since(started):
            capture.add(2, f"glmtui: {line}\n".encode())
        text, saved_to = await self._within_limit(capture, "output")
        ended = f"exit code {result.exit_code}" + (f" ({result.reason})" if result.reason else "")
        output = text.removesuffix("\n") + f"\n{ended}" if text.strip() else f"(no output)\n{ended}"
        ok = result.exit_code == 0 and not result.timed_out
        return ToolResult(ok, output, result.exit_code, result.duration, saved_to)

    async def command(self, argv: Sequence[str], *, timeout: float | None = None,
                      on_output: Callable[[int, bytes], None] | None = None) -> CommandResult:
        """Run argv as `bash` runs its command (in the working folder, within the timeout, what it
        leaves running ended), with stdout and stderr apart, each within the output limit; all of
        the output to `on_output` too, as it comes (a record's log)."""
        captures = {STDOUT: _Capture(), STDERR: _Capture()}

        def take(fd: int, data: bytes) -> None:
            captures[fd].add(fd, data)
            if on_output is not None:
                on_output(fd, data)

        result = await self._execute(argv, timeout, take)
        stdout, saved_stdout = await self._within_limit(captures[STDOUT], "stdout")
        stderr, saved_stderr = await self._within_limit(captures[STDERR], "stderr")
        saved = {name: path for name, path in (("stdout", saved_stdout), ("stderr", saved_stderr)) if path}
        return CommandResult(result.exit_code, stdout, stderr, result.duration, result.reason, saved)

    async def _execute(
        self, argv: Sequence[str], timeout: float | None, on_output: Callable[[int, bytes], None]
    ) -> ExecResult:
        limit = min(timeout, max(MAX_COMMAND_TIMEOUT, self.command_timeout)) if timeout else self.command_timeout
        return await self.engine.exec(
            self.environment, argv, workdir=await self._resolve("."), user=self.user, timeout=limit,
            on_output=on_output, reap=True,
        )

    async def _within_limit(self, capture: _Capture, what: str) -> tuple[str, str | None]:
        """A command's output (`what`: output, stdout or stderr) as text within the limit: when
        longer, its head and tail around a note, the whole of it saved in the environment."""
        text = capture.text()
        if len(text) <= self._room:
            return text, None
        saved_to = await self._save(capture.saved())
        return _head_and_tail(text, self._room, capture.dropped, saved_to, what), saved_to

    async def _blocked_since(self, started: float) -> list[str]:
        """What the egress proxy refused the command (an environment with an allowlist only)."""
        if self._limited is None:
            from glmtui.docker.spec import LABEL_EGRESS

            self._limited = LABEL_EGRESS in (await self.engine.get_environment(self.environment)).labels
        if not self._limited:
            return []
        from glmtui.docker.egress import Egress

        return await Egress(self.engine).blocked_lines(self.environment, started)

    async def _save(self, output: bytes) -> str | None:
        """The whole output of a command, in a file inside the environment; None if it cannot be written."""
        path = f"{AGENT_TMP}/{uuid.uuid4().hex[:12]}.log"
        try:
            await self.engine.write_file(self.environment, path, output)
        except EngineUnreachable:
            raise
        except GlmtuiError:
            return None
        return path

    async def _read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> ToolResult:
        target = await self._existing_file(path)
        data = await self._cat(target)
        if _is_binary(data):
            raise _Refusal(
                f"{target} is a binary file ({len(data)} bytes); look at it with {self.shell_tool} (e.g. od, file)"
            )
        lines = _lines(data.decode("utf-8", "replace"))
        if not lines:
            return ToolResult(True, f"({target} is empty)")
        first = int(start_line or 1)
        last = min(int(end_line or len(lines)), len(lines))
        if first > len(lines):
            raise _Refusal(f"{target} has {counted(len(lines), 'line')}; start_line {first} is past the end")
        if last < first:
            raise _Refusal(f"end_line {end_line} is before start_line {first}")
        return ToolResult(True, self._numbered(lines, first, last, target))

    async def _write_file(self, path: str, content: str) -> ToolResult:
        target = await self._resolve(path)
        info = await self._stat(target)
        if info is None:
            await self._make_parent(target)
        elif not info.regular:
            raise _Refusal(f"{target} is a {_kind(info)}, not a file")
        data = _encode(content, "content")
        await self._write(target, data)
        return ToolResult(True, f"wrote {counted(len(data), 'byte')} ({counted(_line_count(content), 'line')}) to {target}")

    async def _edit_file(self, path: str, old_text: str, new_text: str) -> ToolResult:
        target = await self._existing_file(path)
        data = await self._cat(target)
        try:
            text = data.decode() if not _is_binary(data) else None
        except UnicodeDecodeError:
            text = None
        if text is None:
            raise _Refusal(f"{target} is not UTF-8 text; change it with {self.shell_tool} instead")
        count = text.count(old_text)
        if count == 0:
            raise _Refusal(f"old_text was not found in {target}; read the file again to see its exact text")
        if count > 1:
            raise _Refusal(f"old_text appears {count} times in {target}; include more context to make it unique")
        if old_text == new_text:
            raise _Refusal("old_text and new_text are the same: nothing to change")
        at = text.index(old_text)
        edited = text[:at] + new_text + text[at + len(old_text):]
        await self._write(target, _encode(edited, "new_text"))
        first = text.count("\n", 0, at) + 1
        old_last, new_last = first + old_text.count("\n"), first + new_text.count("\n")
        summary = f"edited {target}: lines {_span(first, old_last)} replaced, now lines {_span(first, new_last)}"
        lines = _lines(edited)
        if not lines:
            return ToolResult(True, f"{summary}; the file is now empty")
        context_first, context_last = max(first - 2, 1), min(new_last + 2, len(lines))
        return ToolResult(True, f"{summary}:\n{self._numbered(lines, context_first, context_last, target)}")

    async def _list_files(self, path: str = ".", depth: int = 2) -> ToolResult:
        root = await self._resolve(path)
        # Folders are printed with a trailing '/' (printf's format is ours; names are its arguments).
        # "( -name .git -prune -o -type d )" holds for every folder and keeps find out of .git:
        # busybox find has no -true.
        argv = [
            "find", "-H", root, "-maxdepth", str(int(depth)),
            "-type", "d", "(", "-name", ".git", "-prune", "-o", "-type", "d", ")",
            "-exec", "printf", "%s/\\n", "{}", "+", "-o", "-print",
        ]
        result = await self._run(argv)
        found = result.stdout.decode("utf-8", "replace").splitlines()
        entries = sorted((e for e in found if e.rstrip("/") != root.rstrip("/")), key=_tree_order)
        errors = result.stderr.decode("utf-8", "replace").strip()
        if not found and any(s in errors for s in _NO_SUCH):
            raise _Refusal(f"no such folder: {root}")
        if not entries and root in found:
            raise _Refusal(f"{root} is a file, not a folder; read it with read_file")
        if not entries and errors:
            raise _Refusal(f"cannot list {root}: {_reason(result)}")
        prefix = root.rstrip("/") + "/"
        shown = [entry[len(prefix):] for entry in entries]
        body = _capped(shown, self._room, "entries", "list a subfolder or use a smaller depth")
        note = "\n(some folders could not be read)" if errors else ""
        return ToolResult(True, f"{prefix} (depth {int(depth)}):\n{body or '(empty)'}{note}")

    async def _grep(
        self, pattern: str, path: str = ".", glob: str | None = None, ignore_case: bool = False
    ) -> ToolResult:
        # busybox grep has neither --include nor --exclude-dir: find picks the files, grep reads them.
        root = await self._resolve(path)
        names = ["-name", glob] if glob else []
        options = ["-nHsE", *(["-i"] if ignore_case else [])]
        argv = [
            "find", "-H", root, "-name", ".git", "-prune", "-o", "-type", "f", *names,
            "-exec", "grep", *options, "-e", pattern, "{}", "+",
        ]
        result = await self._run(argv)
        matches = [self._relative(line) for line in result.stdout.decode("utf-8", "replace").splitlines()]
        errors = result.stderr.decode("utf-8", "replace").strip()
        said = errors.splitlines()
        binary = [self._relative(line.removeprefix("grep: ")) for line in said if line.endswith(BINARY_MATCH)]
        problems = [line for line in said if not line.endswith(BINARY_MATCH)]
        if problems and not matches and not binary:
            if any(s in errors for s in _NO_SUCH) and root in errors:
                raise _Refusal(f"no such file or folder: {root}")
            raise _Refusal("grep failed: " + "; ".join(problems[:3]))
        if not matches and not binary:
            return ToolResult(True, f"no matches for {pattern!r} in {root}")
        lines = [_cut(line, MATCH_LINE_LIMIT) for line in matches] + binary
        return ToolResult(True, _capped(lines, self._room, "matching lines", "narrow the search with path or glob"))

    # -- helpers ----------------------------------------------------------------------------

    @property
    def _room(self) -> int:
        """Characters of tool output before the notes."""
        return max(self.output_limit - NOTE_ROOM, self.output_limit // 2)

    async def _resolve(self, path: str) -> str:
        if self._workdir is None:
            self._workdir = (await self.engine.get_environment(self.environment)).workdir
        joined = posixpath.normpath(posixpath.join(self._workdir, path))
        return "/" + joined.lstrip("/")  # normpath keeps a leading '//'

    def _relative(self, line: str) -> str:
        prefix = (self._workdir or "").rstrip("/") + "/"
        return line[len(prefix):] if prefix != "/" and line.startswith(prefix) else line

    async def _run(self, argv: Sequence[str]) -> ExecResult:
        result = await self.engine.exec(self.environment, argv, user=self.user, timeout=self.command_timeout)
        if result.timed_out:
            raise _Refusal(f"{argv[0]} took longer than {self.command_timeout:g}s and was stopped; narrow it down")
        return result

    async def _stat(self, path: str) -> _FileInfo | None:
        """What is at `path` (None: nothing), symbolic links followed, as the tools' user sees it."""
        result = await self._run(["stat", "-L", "-c", "%s %F", "--", path])
        if result.exit_code != 0:
            if any(s in result.stderr.decode("utf-8", "replace") for s in _NO_SUCH):
                return None
            raise _Refusal(f"cannot use {path}: {_reason(result)}")
        size, kind = result.stdout.decode("utf-8", "replace").rstrip("\n").split(" ", 1)
        return _FileInfo(kind, int(size))

    async def _existing_file(self, path: str) -> str:
        """The resolved path of a regular file small enough to read whole."""
        target = await self._resolve(path)
        info = await self._stat(target)
        if info is None:
            raise _Refusal(f"no such file: {target}")
        if info.kind == "directory":
            raise _Refusal(f"{target} is a folder; list it with list_files")
        if not info.regular:
            raise _Refusal(f"{target} is a {_kind(info)}, not a regular file")
        if info.size > READ_LIMIT:
            raise _Refusal(
                f"{target} is {info.size} bytes, too big to read whole; look at parts of it with {self.shell_tool} "
                "(head, tail, sed -n '100,200p', grep -n)"
            )
        return target

    async def _make_parent(self, path: str) -> None:
        parent = posixpath.dirname(path)
        result = await self._run(["mkdir", "-p", "--", parent])
        if result.exit_code != 0:
            raise _Refusal(f"cannot create the folder {parent}: {_reason(result)}")

    async def _cat(self, path: str) -> bytes:
        """A file's content, read by the tools' user (the engine's archive would read it as root)."""
        result = await self._run(["cat", "--", path])
        if result.exit_code != 0:
            raise _Refusal(f"cannot read {path}: {_reason(result)}")
        return result.stdout

    async def _write(self, path: str, data: bytes) -> None:
        """Content into a file as the tools' user: the engine puts it in a staging file, `cp` copies it
        over, so permissions count and an existing file keeps its mode, owner, links and inode."""
        staged = f"{AGENT_TMP}/{uuid.uuid4().hex[:12]}.part"
        with _refused_as(f"cannot write {path}"):
            await self.engine.write_file(self.environment, staged, data)
        try:
            result = await self._run(["cp", "--", staged, path])
        finally:  # as root: the staging file may belong to another user than the tools'
            await self.engine.spawn(self.environment, ["rm", "-f", "--", staged], user="0")
        if result.exit_code != 0:
            raise _Refusal(f"cannot write {path}: {_reason(result)}")

    def _numbered(self, lines: list[str], first: int, last: int, path: str) -> str:
        """Lines first..last (1-based) like `cat -n`, within the output limit."""
        shown: list[str] = []
        size = 0
        for number in range(first, last + 1):
            line = f"{number:6}\t{_cut(lines[number - 1], LINE_LIMIT)}"
            if shown and size + len(line) + 1 > self._room:
                break
            shown.append(line)
            size += len(line) + 1
        end = first + len(shown) - 1
        if (first, end) == (1, len(lines)):
            return "\n".join(shown)
        more = f"; read more with start_line={end + 1}" if end < len(lines) else ""
        return "\n".join(shown) + f"\n[lines {first}-{end} of {len(lines)} in {path}{more}]"


class _Capture:
    """A command's output, both streams in the order they came; in memory up to a bound."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, _stream: int, data: bytes) -> None:
        room = SAVE_LIMIT - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > TAIL_KEPT:
                self.dropped += len(self.tail) - TAIL_KEPT
                del self.tail[:-TAIL_KEPT]

    def saved(self) -> bytes:
        if not self.dropped:
            return bytes(self.head + self.tail)
        return bytes(self.head) + f"\n[... {self.dropped} bytes not kept ...]\n".encode() + bytes(self.tail)

    def text(self) -> str:
        return self.saved().decode("utf-8", "replace")


@contextmanager
def _refused_as(what: str) -> Iterator[None]:
    """The engine failing to put a file (a full or read-only /tmp) is news for the model, not an error.

    A gone environment has failed earlier, in the tool's first command.
    """
    try:
        yield
    except EngineUnreachable:
        raise
    except GlmtuiError as err:
        raise _Refusal(f"{what}: {err.message.rsplit(': ', 1)[-1]}") from None


def _reason(result: ExecResult) -> str:
    """Why a file command failed: the end of its first error line ("Permission denied")."""
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0].rsplit(": ", 1)[-1] if lines else f"exit code {result.exit_code}"


def _allowed_names(allowed: Iterable[str] | None) -> tuple[str, ...]:
    if allowed is None:
        return ALL_TOOLS
    wanted = set(allowed)
    unknown = sorted(wanted - set(ALL_TOOLS))
    if unknown:
        name = unknown[0]
        raise BadInput(f"unknown tool {name!r}{did_you_mean(name, ALL_TOOLS)}", hint=f"tools: {', '.join(ALL_TOOLS)}")
    return tuple(name for name in ALL_TOOLS if name in wanted)


def tool_schema(name: str) -> dict[str, Any]:
    """A tool's description and JSON Schema of its parameters (a copy)."""
    return copy.deepcopy(_SCHEMAS[name])


@functools.lru_cache(maxsize=256)
def _validator(parameters: str) -> Any:
    from jsonschema import Draft202012Validator  # about 50 ms to import: only when a tool is called

    return Draft202012Validator(json.loads(parameters))


def argument_problem(
    name: str, parameters: Mapping[str, Any], arguments: Mapping[str, Any], *, argv: Collection[str] = ()
) -> str | None:
    """What is wrong with the arguments of a call of tool `name` (JSON Schema `parameters`), in one
    line that says what the tool takes; None when nothing is. The `argv` arguments become argv
    elements: no NUL may be in them."""
    properties = parameters.get("properties", {})
    problems = [f"missing required argument {key!r}" for key in parameters.get("required", ()) if key not in arguments]
    problems += [
        f"unknown argument {key!r}{did_you_mean(key, properties)}" for key in arguments if key not in properties
    ]
    problems += [f"argument {key!r} cannot contain a NUL character" for key in argv if _has_nul(arguments.get(key))]
    if not problems:
        validator = _validator(json.dumps(parameters, sort_keys=True))
        problems = [
            f"argument {error.path[0]!r}: {error.message}" if error.path else error.message
            for error in sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.path))
        ]
    if not problems:
        return None
    required = set(parameters.get("required", ()))
    usage = ", ".join(key if key in required else f"{key}?" for key in properties)
    return f"{name}: {'; '.join(problems)} ({name} takes {usage})"


def _has_nul(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(item, str) and "\0" in item for item in values)


def _head_and_tail(text: str, room: int, dropped: int, saved_to: str | None, what: str = "output") -> str:
    """The start and the end of a long output, at line breaks, around a note saying where the rest is."""
    head, tail = text[: room // 2], text[len(text) - room // 2:]
    if "\n" in head[room // 4:]:
        head = head[: head.rindex("\n") + 1]
    if "\n" in tail[: room // 4]:
        tail = tail[tail.index("\n") + 1:]
    omitted = len(text) - len(head) - len(tail) + dropped
    if saved_to is None:
        where = f"the whole {what} could not be saved; run the command again with less output"
    elif dropped:
        kept = f"its first {SAVE_LIMIT // 2**20} MiB and last {TAIL_KEPT // 2**10} KiB"
        where = f"{kept} are in {saved_to}, read them with read_file"
    else:
        where = f"the whole {what} is in {saved_to}, read it with read_file"
    note = f"... {omitted} characters omitted; {where}"
    return head.removesuffix("\n") + f"\n{note}\n" + tail


def _capped(lines: list[str], room: int, what: str, advice: str) -> str:
    shown: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > room:
            break
        shown.append(line)
        size += len(line) + 1
    rest = len(lines) - len(shown)
    return "\n".join(shown) + (f"\n[{rest} more {what} not shown; {advice}]" if rest else "")


def _encode(text: str, what: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise _Refusal(f"{what} is not valid Unicode text (it has a lone surrogate)") from None


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _line_count(text: str) -> int:
    return len(_lines(text)) if text else 0


def _cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else f"{line[:limit]}… [{len(line) - limit} more characters]"


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _kind(info: _FileInfo) -> str:
    return info.kind.replace("directory", "folder")


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF]


def _tree_order(entry: str) -> list[str]:
    """Sort key: each folder's entries right after it."""
    return entry.rstrip("/").split("/")
