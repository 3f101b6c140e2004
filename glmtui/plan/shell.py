"""Rendering `run` scripts so that substituted values are never read as shell code.

Each expression's value goes into an environment variable, and the script gets
a reference to that variable written for the quoting context at that spot. A
small shell lexer follows the script text to know that context: unquoted,
single or double quotes, `$'...'`, `$(...)`, backticks, `${...}`, arithmetic,
comments and here-documents.

Quoting is not enough where a shell reads a value as arithmetic or as a variable
name: bash, zsh and mksh then expand what stands inside an array subscript of the
value, so `a[$(cmd)]` runs `cmd` (in `[[ $v -eq 1 ]]`, `let`, `${a[$v]}`,
`declare -i`, `(( v ))`, `${!v}`, `printf -v "$v"` ...). So a value may hold no
expansion inside a subscript, wherever it goes (also after the script stored it
in a variable); a value that the script puts inside a subscript may hold no
expansion at all; and a value the script puts straight into arithmetic must be a
whole number. docs/plan-format.md ("Values in run scripts") says why.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePosixPath
from typing import Any

from glmtui.plan.expressions import Expression, ExpressionError, Template, parse, to_text

ENV_PREFIX = "GLMTUI_EXPR_"
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"}
_INTEGER = re.compile(r"[+-]?\d+")
_SPECIAL_PARAMETERS = set("#?$!@*-0123456789")
_WORD_END = set(" \t\n;&|()<>")
_COMMAND_WORDS = {"then", "do", "else", "elif", "if", "while", "until", "!", "{", "time"}
_ASSIGNMENT = re.compile(r"([A-Za-z_]\w*)(\[[^\]]*\])?\+?=", re.ASCII)  # at a word's start
_SUBSCRIPTED = re.compile(r"([A-Za-z_]\w*)\[", re.ASCII)  # at a word's start
_NAME = re.compile(r"[A-Za-z_]\w*", re.ASCII)
_TEST_COMMANDS = {"[[", "[", "test"}
_ARITHMETIC_TESTS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
_DECLARATIONS = {"declare", "typeset", "local", "readonly", "export", "integer", "float"}
_INDEX = "an index of array"  # an indexed array's subscript: arithmetic
_WORD_TEXT_LIMIT = 200  # enough for `name[subscript]=`, `-eq` or `-ai`; words can be long
_IN_SUBSCRIPT = re.compile(r"[\[\]'\"\\$`]")
_PLAIN_IN_WORD = re.compile(r"[^ \t\n;&|()<>'\"`$\\]+")  # characters _cmd takes as they are
_PLAIN_IN_DOUBLE_QUOTES = re.compile(r"[^\"`$\\]+")


def _ends_name(c: str) -> bool:
    return c.isalnum() or c == "_"


def _opening(text: str, start: int) -> int:
    """The index of the next `[` after a name in `text` from `start`, or -1."""
    i = text.find("[", start)
    while i >= 0 and not (i > 0 and _ends_name(text[i - 1])):
        i = text.find("[", i + 1)
    return i


def shell_argv(shell: str | tuple[str, ...] | list[str] | None) -> list[str]:
    """`sh -e -c` by default; a known shell's name gets `-e -c`; anything else is an argv prefix."""
    if shell is None:
        return ["sh", "-e", "-c"]
    if isinstance(shell, str):
        return [shell, "-e", "-c"] if shell in SHELLS else shlex.split(shell)
    return list(shell)


def is_shell(shell: str | tuple[str, ...] | list[str] | None) -> bool:
    """Whether a step's `shell:` runs its script with a shell (the program's name, with or without a path)."""
    argv = shell_argv(shell)
    return bool(argv) and PurePosixPath(argv[0]).name in SHELLS


def interpreter_problem(shell: str | tuple[str, ...] | list[str] | None, script: Any) -> str | None:
    """Why the expressions of a run script cannot reach it, when `shell` is not a shell."""
    if is_shell(shell) or not isinstance(script, str) or "${" not in script:
        return None
    try:
        template = parse(script)
    except ExpressionError:
        return None  # reported where expressions are checked
    substituted = [expr for expr in template.expressions() if not expr.raw]
    if not substituted:
        return None
    argv = shell_argv(shell)
    program = PurePosixPath(argv[0]).name if argv else "the program"
    return (
        f"expression '{substituted[0].source}' cannot reach a script for {program}: glmtui passes values to "
        "scripts as environment variables that only a shell expands (give the value to the step under "
        "environment: and read it from the process environment, or write '| raw' to put the text into the "
        "script as code)"
    )


class Context(Enum):
    BARE = "bare"  # unquoted word text, also in $(...), backticks and comments
    DOUBLE = "double"  # inside "...", ${...} within "...", an unquoted here-document body
    SINGLE = "single"  # inside '...'
    ANSI = "ansi"  # inside $'...'
    ARITHMETIC = "arithmetic"  # inside $(( ... )), (( ... )) or $[ ... ]
    LITERAL = "literal"  # the body of a quoted here-document: nothing is expanded


@dataclass
class RenderedScript:
    """A run step's script with its values outside the code: the script and the variables holding them."""

    script: str
    env: dict[str, str]


@dataclass
class _HereDoc:
    """A here-document the scanner is inside of."""

    delimiter: str
    quoted: bool
    strip_tabs: bool


@dataclass
class _Subscripts:
    """Follows text as a shell will read it later, for array subscripts: `name[...]`."""

    depth: int = 0  # subscripts opened (a `[` after a name, or inside one) and not closed
    to_end: bool = False  # a quote or backslash inside one: where it ends is not sure
    after_name: bool = False  # the last character could end a variable name

    @property
    def inside(self) -> bool:
        return self.depth > 0 or self.to_end

    def follow(self, text: str) -> None:
        """Follow text of the script's own: its `$` and backticks are not a value's."""
        self.expansion_in(text, stop=False)

    def expansion_in(self, value: str, *, stop: bool = True) -> int | None:
        """Follow `value`; the index of its first `$` or backtick inside a subscript (there
        it stops, unless `stop` is false)."""
        i, n = 0, len(value)
        while i < n:
            if not self.inside:  # on to the next `[` after a name
                if not (i == 0 and self.after_name and value[0] == "["):
                    i = _opening(value, i)
                    if i < 0:
                        break
                self.depth = 1
                i += 1
                continue
            found = _IN_SUBSCRIPT.search(value, i)
            if found is None:
                break
            i = found.start()
            c = value[i]
            if c in "$`":
                if stop:
                    return i
            elif not self.to_end:
                if c == "[":
                    self.depth += 1
                elif c == "]":
                    self.depth -= 1
                else:  # a quote or a backslash
                    self.to_end = True
            i += 1
        if value:
            self.after_name = _ends_name(value[-1])
        return None


@dataclass
class _Word:
    """The word a cmd frame is reading, as far as values in it matter."""

    started: bool = False
    text: str = ""  # its literal start, quotes removed, up to its first expansion (or the limit)
    literal: bool = True  # text is the whole word so far
    subscripts: _Subscripts = field(default_factory=_Subscripts)
    values: list[tuple[Expression, str]] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Characters of the word as the shell passes them on."""
        self.started = True
        if self.literal and len(self.text) < _WORD_TEXT_LIMIT:
            self.text += text[: _WORD_TEXT_LIMIT - len(self.text)]
        self.subscripts.follow(text)

    def add_value(self, expr: Expression, value: str) -> None:
        """A value in the word (its characters were followed already)."""
        self.started = True
        self.literal = False
        self.values.append((expr, value))

    def expansion(self) -> None:
        """An expansion of the script's own (`$x`, `$(...)` ...): text not known here."""
        self.started = True
        self.literal = False
        self.subscripts.after_name = True


@dataclass
class _Frame:
    """One level of shell syntax the scanner is inside of (a command substitution, quotes, ${...})."""

    kind: str  # "cmd", "sq", "ansi", "dq", "param", "arith", "comment", "heredoc"
    closer: str = ""  # cmd: ")" for $( ), "`" for backticks, "" at the top; arith: "]" for $[ ]
    in_dq: bool = False  # param: the ${...} stands inside double quotes
    depth: int = 0  # parens of a cmd or arith frame, braces of a param frame
    escaped: bool = False  # a backslash ended the text fed so far
    # cmd frames
    word: str | None = ""  # plain text of the current word; None once it holds quotes or $
    current: _Word = field(default_factory=_Word)
    word_start: bool = True
    command_position: bool = True
    command: str | None = None  # the name of the simple command being read, once known
    integer_declaration: bool = False  # declare/typeset/local with -i (or integer, float)
    assoc_declaration: bool = False  # declare/typeset/local with -A
    arithmetic_operand: str = ""  # the -eq (or -ne, ...) whose right operand comes next
    previous_values: list[tuple[Expression, str]] = field(default_factory=list)
    case_depth: int = 0
    delimiter: list[str] | None = None  # reading a here-document delimiter
    delimiter_quoted: bool = False
    delimiter_quote: str = ""
    strip_tabs: bool = False
    # param frames: ${name[subscript]:offset:length} or ${name<operator>word}
    part: str = "name"  # "name", "subscript", "after", "arithmetic", "word"
    name: str = ""
    prefixed: bool = False  # ${#name} or ${!name}
    brackets: int = 0  # [ ] nested inside the subscript
    # heredoc frames
    heredoc: _HereDoc | None = None
    line: list[str] = field(default_factory=list)
    line_dirty: bool = False  # the current line holds an expansion: it is not the delimiter
    line_inserted: Expression | None = None  # an expression whose value is text on this line


class ShellLexer:
    """Follows shell text fed to it piece by piece, and tells the context at the end."""

    def __init__(self) -> None:
        self.frames: list[_Frame] = [_Frame("cmd")]
        self.pending: list[_HereDoc] = []
        self.inserting: Expression | None = None  # the expression whose value is being fed
        self.quiet = False  # feeding a reference: the text it stands for was followed already
        self.integer_names: set[str] = set()  # declared with -i: assignments are arithmetic
        self.assoc_names: set[str] = set()  # declared with -A: subscripts are text

    @property
    def top(self) -> _Frame:
        return self.frames[-1]

    def context(self, expr: Expression) -> tuple[Context, bool]:
        """The quoting context where `expr` goes, and whether a backslash precedes it."""
        frame = self.top
        kind = frame.kind
        if kind == "cmd":
            if frame.delimiter is not None:
                raise ExpressionError(
                    f"expression '{expr.source}' cannot be a here-document delimiter", offset=expr.offset
                )
            return Context.BARE, frame.escaped
        if kind == "comment":
            return Context.BARE, False
        if kind == "sq":
            return Context.SINGLE, False
        if kind == "ansi":
            return Context.ANSI, frame.escaped
        if kind == "dq":
            return Context.DOUBLE, frame.escaped
        if kind == "param":
            return (Context.DOUBLE if frame.in_dq else Context.BARE), frame.escaped
        if kind == "arith":
            return Context.ARITHMETIC, False
        assert frame.heredoc is not None
        if frame.heredoc.quoted:
            return Context.LITERAL, False
        return Context.DOUBLE, frame.escaped

    def admit(self, expr: Expression, value: str) -> None:
        """Refuse `value` where the shell could run it, or part of it, as code; else follow it.

        Anywhere: no `$` or backtick inside an array subscript, since bash, zsh and
        mksh expand those where they read a value as a number or a variable name.
        Inside a subscript the script writes: no `$` or backtick at all. In
        arithmetic the script writes: a whole number only.
        """
        frame = self.top
        arithmetic = ""  # what the shell reads as arithmetic here, for the message
        subscripts = _Subscripts()
        word_frame = self._word_frame()
        if frame.kind == "arith":
            arithmetic = "inside $[ ]" if frame.closer == "]" else "inside (( )) or $(( ))"
        elif frame.kind == "param" and frame.part == "subscript":
            subscripts.depth = 1
            if frame.name not in self.assoc_names:
                arithmetic = f"{_INDEX} {frame.name!r}"
        elif frame.kind == "param" and frame.part == "arithmetic":
            arithmetic = "an offset or length in ${name:offset:length}"
        elif word_frame is not None:
            arithmetic = self._arithmetic_in_word(word_frame)
            subscripts = word_frame.current.subscripts
        if arithmetic:
            _need_whole_number(expr, value, arithmetic)
        found = subscripts.expansion_in(value)
        if found is not None:
            shown = "" if _refers_to_secrets(expr) else f" ({value[max(0, found - 30) : found + 2]!r})"
            raise ExpressionError(
                f"expression '{expr.source}' has a value with an expansion inside an array subscript{shown}, "
                f"{_WHY_REFUSED} in any script",
                offset=expr.offset,
                hint=_WHAT_INSTEAD,
            )
        if word_frame is not None:
            word_frame.current.add_value(expr, value)

    def _arithmetic_in_word(self, frame: _Frame) -> str:
        """Where in its command the current word of `frame` is read as arithmetic, if it is."""
        current, command = frame.current, frame.command
        if command == "let":
            return "an argument of let"
        if frame.command_position or command in _DECLARATIONS:
            assignment = _ASSIGNMENT.match(current.text)
            if assignment:
                name = assignment[1]
                if name in self.integer_names or (command in _DECLARATIONS and frame.integer_declaration):
                    return f"assigned to integer variable {name!r}"
            else:
                subscripted = _SUBSCRIPTED.match(current.text)
                if subscripted and current.subscripts.inside and subscripted[1] not in self.assoc_names:
                    return f"{_INDEX} {subscripted[1]!r}"
        return ""

    def feed(self, text: str, *, inserted: Expression | None = None, quiet: bool = False) -> None:
        """Follow `text`; `inserted` is the expression when the text is its value; `quiet`
        when it is a reference whose value was followed already (admit)."""
        if inserted is not None and self.top.kind == "heredoc":
            self.top.line_inserted = inserted
        self.inserting = inserted
        self.quiet = quiet
        i, n = 0, len(text)
        while i < n:
            frame = self.top
            if frame.escaped:
                frame.escaped = False
                if frame.kind == "heredoc":
                    frame.line_dirty = True
                i += 1
                continue
            i += getattr(self, "_" + frame.kind)(frame, text, i)
        self.inserting = None
        self.quiet = False

    def finish(self) -> None:
        """The end of the script: a here-document may end on its last line, a command on its last word."""
        frame = self.top
        if frame.kind == "heredoc":
            self._heredoc_line_end(frame)
        elif frame.kind == "cmd" and frame.delimiter is None:
            self._end_word(frame)

    # Words: what the shell passes on of the text, for array subscripts and arithmetic.

    def _word_frame(self) -> _Frame | None:
        """The cmd frame whose current word the text at the top is part of, if it is word text."""
        for frame in reversed(self.frames):
            if frame.kind == "cmd":
                return frame
            if frame.kind not in ("sq", "dq", "ansi"):
                return None
        return None

    def _literal(self, text: str) -> None:
        frame = self._word_frame()
        if frame is not None and not self.quiet:
            frame.current.add(text)

    def _expansion(self) -> None:
        frame = self._word_frame()
        if frame is not None and not self.quiet:
            frame.current.expansion()

    def _quoting(self) -> None:
        """A quote that the shell removes: the word goes on (it may be an empty word)."""
        frame = self._word_frame()
        if frame is not None:
            frame.current.started = True

    # Each handler looks at text[i] and returns how many characters it consumed.

    def _escape(self, frame: _Frame, text: str, i: int) -> int:
        if i + 1 < len(text):
            return 2
        frame.escaped = True
        return 1

    def _dollar(self, frame: _Frame, text: str, i: int, *, quoted: bool) -> int:
        """`$` in a context where expansions happen."""
        nxt = text[i + 1 : i + 2]
        if nxt == "'" and not quoted:
            self._quoting()
            self.frames.append(_Frame("ansi"))
            return 2
        if nxt and (nxt in "({[" or nxt in _SPECIAL_PARAMETERS or _NAME.match(nxt)):
            self._expansion()
        else:
            self._literal("$")
        if text.startswith("((", i + 1):
            self.frames.append(_Frame("arith"))
            return 3
        if nxt == "[":
            self.frames.append(_Frame("arith", closer="]"))
            return 2
        if nxt == "(":
            self.frames.append(_Frame("cmd", closer=")"))
            return 2
        if nxt == "{":
            self.frames.append(_Frame("param", in_dq=quoted))
            return 2
        if nxt and nxt in _SPECIAL_PARAMETERS:
            return 2
        return 1

    def _cmd(self, frame: _Frame, text: str, i: int) -> int:
        if frame.delimiter is not None:
            return self._delimiter(frame, text, i)
        c = text[i]
        if c in _WORD_END or (c == "`" and frame.closer == "`"):
            self._end_word(frame)
        if c == "\\":
            frame.word = None
            frame.word_start = False
            if text.startswith("\n", i + 1):  # a line continuation joins the word
                return 2
            if i + 1 < len(text):
                self._literal(text[i + 1])
            return self._escape(frame, text, i)
        if c == "#" and frame.word_start:
            self.frames.append(_Frame("comment"))
            return 1
        starts_word = frame.word_start
        frame.word_start = c in _WORD_END
        if c == "'":
            frame.word = None
            self._quoting()
            self.frames.append(_Frame("sq"))
        elif c == '"':
            frame.word = None
            self._quoting()
            self.frames.append(_Frame("dq"))
        elif c == "`":
            if frame.closer == "`":
                self.frames.pop()
            else:
                frame.word = None
                self._expansion()
                self.frames.append(_Frame("cmd", closer="`"))
        elif c == "$":
            frame.word = None
            return self._dollar(frame, text, i, quoted=False)
        elif c == "(":
            self._new_command(frame, c)
            if starts_word and text.startswith("(", i + 1):
                self.frames.append(_Frame("arith"))
                return 2
            frame.depth += 1
        elif c == ")":
            self._new_command(frame, c)
            if frame.depth > 0:
                frame.depth -= 1
            elif frame.case_depth == 0 and frame.closer == ")":
                self.frames.pop()
        elif c == "\n":
            self._new_command(frame, c)
            if self.pending:
                self._start_heredoc()
        elif c in ";&|":
            self._new_command(frame, c)
        elif c == "<":
            if text.startswith("<<<", i):
                return 3
            if text.startswith("<<", i):
                frame.strip_tabs = text.startswith("<<-", i)
                frame.delimiter = []
                frame.delimiter_quoted = False
                frame.delimiter_quote = ""
                return 3 if frame.strip_tabs else 2
        elif c not in _WORD_END:
            plain = _PLAIN_IN_WORD.match(text, i)
            run = plain[0] if plain else c
            if frame.word is not None:
                frame.word += run
            if not self.quiet:
                frame.current.add(run)
            return len(run)
        return 1

    def _new_command(self, frame: _Frame, c: str) -> None:
        """A separator: what follows is a new command (but `&&`, `||` and parentheses
        are operators inside `[[ ]]`)."""
        if frame.command == "[[" and c in "&|()":
            return
        frame.command_position = True
        frame.command = None
        frame.integer_declaration = frame.assoc_declaration = False
        frame.arithmetic_operand = ""
        frame.previous_values = []

    def _end_word(self, frame: _Frame) -> None:
        word, current = frame.word, frame.current
        frame.word, frame.current = "", _Word()
        if not current.started:
            return
        if frame.command_position:
            if word == "case":
                frame.case_depth += 1
            elif word == "esac" and frame.case_depth:
                frame.case_depth -= 1
            if word in _COMMAND_WORDS or _ASSIGNMENT.match(current.text):
                return  # the command's name is still to come
            frame.command_position = False
            frame.command = word or ""
            frame.integer_declaration = frame.command in ("integer", "float")
            return
        text = current.text
        if frame.command in _TEST_COMMANDS:
            if current.literal and text in _ARITHMETIC_TESTS:
                self._need_whole_numbers(frame.previous_values, f"an operand of {text}")
                frame.arithmetic_operand = text
            elif frame.arithmetic_operand:
                self._need_whole_numbers(current.values, f"an operand of {frame.arithmetic_operand}")
                frame.arithmetic_operand = ""
            if frame.command == "[[" and word == "]]":
                frame.command = ""
        elif frame.command in _DECLARATIONS and text:
            if text[0] in "-+":
                frame.integer_declaration |= bool(set(text[1:]) & set("iEF"))
                frame.assoc_declaration |= "A" in text[1:]
            elif name := _NAME.match(text):
                if frame.integer_declaration:
                    self.integer_names.add(name[0])
                if frame.assoc_declaration:
                    self.assoc_names.add(name[0])
        frame.previous_values = current.values

    def _need_whole_numbers(self, values: list[tuple[Expression, str]], where: str) -> None:
        for expr, value in values:
            _need_whole_number(expr, value, where)

    def _delimiter(self, frame: _Frame, text: str, i: int) -> int:
        """The word after `<<`: quoting any part of it makes the here-document literal."""
        assert frame.delimiter is not None
        c = text[i]
        quote = frame.delimiter_quote
        if quote:
            if c == quote:
                frame.delimiter_quote = ""
            elif quote == '"' and c == "\\" and text[i + 1 : i + 2] in ('"', "\\", "$", "`"):
                frame.delimiter.append(text[i + 1])
                return 2
            else:
                frame.delimiter.append(c)
            return 1
        if c in " \t" and not frame.delimiter:
            return 1
        if c in _WORD_END:
            if frame.delimiter:
                self.pending.append(_HereDoc("".join(frame.delimiter), frame.delimiter_quoted, frame.strip_tabs))
            frame.delimiter = None
            return 0  # the character is read again as ordinary text
        if c in "'\"":
            frame.delimiter_quoted = True
            frame.delimiter_quote = c
        elif c == "\\":
            frame.delimiter_quoted = True
            if i + 1 < len(text):
                frame.delimiter.append(text[i + 1])
                return 2
        else:
            frame.delimiter.append(c)
        return 1

    def _start_heredoc(self) -> None:
        self.frames.append(_Frame("heredoc", heredoc=self.pending.pop(0)))

    def _sq(self, frame: _Frame, text: str, i: int) -> int:
        end = text.find("'", i)
        if end == i:
            self.frames.pop()
            return 1
        end = len(text) if end < 0 else end
        self._literal(text[i:end])
        return end - i

    def _ansi(self, frame: _Frame, text: str, i: int) -> int:
        if text[i] == "\\":
            self._expansion()  # an escape stands for a character not known here
            return self._escape(frame, text, i)
        if text[i] == "'":
            self.frames.pop()
        else:
            self._literal(text[i])
        return 1

    def _dq(self, frame: _Frame, text: str, i: int) -> int:
        c = text[i]
        if c == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped and escaped not in '$`"\\\n':
                self._literal(c)
            if escaped and escaped != "\n":
                self._literal(escaped)
            return self._escape(frame, text, i)
        if c == '"':
            self.frames.pop()
        elif c == "`":
            self._expansion()
            self.frames.append(_Frame("cmd", closer="`"))
        elif c == "$":
            return self._dollar(frame, text, i, quoted=True)
        else:
            run = _PLAIN_IN_DOUBLE_QUOTES.match(text, i)[0]  # type: ignore[index]
            self._literal(run)
            return len(run)
        return 1

    def _param(self, frame: _Frame, text: str, i: int) -> int:
        c = text[i]
        self._param_part(frame, text, i)
        if c == "\\":
            return self._escape(frame, text, i)
        if c == "}":
            if frame.depth:
                frame.depth -= 1
            else:
                self.frames.pop()
        elif c == "{":
            frame.depth += 1
        elif c == '"':
            self.frames.append(_Frame("dq"))
        elif c == "'" and not frame.in_dq:
            self.frames.append(_Frame("sq"))
        elif c == "`":
            self.frames.append(_Frame("cmd", closer="`"))
        elif c == "$":
            return self._dollar(frame, text, i, quoted=frame.in_dq)
        return 1

    def _param_part(self, frame: _Frame, text: str, i: int) -> None:
        """Which part of ${name[subscript]:offset:length} (or ${name<op>word}) text[i] is in."""
        c = text[i]
        if frame.part == "name":
            if c == "[" and frame.name:
                frame.part = "subscript"
                return
            if c in "#!" and not frame.name and not frame.prefixed:
                frame.prefixed = True
                return
            if c.isalnum() or c == "_":
                frame.name += c
                return
            if c in _SPECIAL_PARAMETERS and not frame.name:
                frame.name = c
                frame.part = "after"
                return
            frame.part = "after"
        if frame.part == "subscript":
            if c == "[":
                frame.brackets += 1
            elif c == "]":
                if frame.brackets:
                    frame.brackets -= 1
                else:
                    frame.part = "after"
        elif frame.part == "after" and c != "}":
            frame.part = "arithmetic" if c == ":" and text[i + 1 : i + 2] not in ("-", "=", "?", "+") else "word"

    def _arith(self, frame: _Frame, text: str, i: int) -> int:
        c = text[i]
        opener, closer = ("[", "]") if frame.closer == "]" else ("(", ")")
        if c == opener:
            frame.depth += 1
        elif c == closer:
            if frame.depth:
                frame.depth -= 1
            else:
                self.frames.pop()
                return 2 if closer == ")" and text.startswith(")", i + 1) else 1
        elif c == "$":
            return self._dollar(frame, text, i, quoted=True)
        return 1

    def _comment(self, frame: _Frame, text: str, i: int) -> int:
        if text[i] == "\n":
            self.frames.pop()
            return 0  # the newline ends the command too
        return 1

    def _heredoc(self, frame: _Frame, text: str, i: int) -> int:
        assert frame.heredoc is not None
        c = text[i]
        if c == "\n":
            self._heredoc_line_end(frame)
            return 1
        if frame.heredoc.quoted:
            frame.line.append(c)
            return 1
        if c == "\\":
            frame.line_dirty = True
            if text.startswith("\n", i + 1):  # a line continuation
                return 2
            return self._escape(frame, text, i)
        if c == "`":
            frame.line_dirty = True
            self.frames.append(_Frame("cmd", closer="`"))
        elif c == "$":
            frame.line_dirty = True
            return self._dollar(frame, text, i, quoted=True)
        else:
            frame.line.append(c)
        return 1

    def _heredoc_line_end(self, frame: _Frame) -> None:
        assert frame.heredoc is not None
        line = "".join(frame.line)
        if frame.heredoc.strip_tabs:
            line = line.lstrip("\t")
        ends = not frame.line_dirty and line == frame.heredoc.delimiter
        if ends and frame.line_inserted is not None:
            raise ExpressionError(
                f"the value of expression '{frame.line_inserted.source}' would end the here-document "
                f"with a line {frame.heredoc.delimiter!r}",
                offset=frame.line_inserted.offset,
                hint="quote it differently, or use an unquoted here-document",
            )
        frame.line.clear()
        frame.line_dirty = False
        frame.line_inserted = self.inserting  # the value goes on into the next line
        if ends:
            self.frames.pop()
            if self.pending:
                self._start_heredoc()


def render_script(template: Template, context: Mapping[str, Any]) -> RenderedScript:
    """The script text and the environment variables that carry its values."""
    lexer = ShellLexer()
    script: list[str] = []
    env: dict[str, str] = {}
    for part in template.parts:
        if isinstance(part, str):
            text = part
            lexer.feed(text)
        else:
            text = _insert(part, to_text(part.evaluate(context)), lexer, env)
        script.append(text)
    lexer.finish()
    return RenderedScript("".join(script), env)


def _insert(expr: Expression, value: str, lexer: ShellLexer, env: dict[str, str]) -> str:
    """The text that stands for `value` at the lexer's position; feeds it to the lexer."""
    if "\0" in value:
        raise ExpressionError(
            f"expression '{expr.source}' has a NUL character in its value, which a shell cannot hold",
            offset=expr.offset,
        )
    if expr.raw:
        lexer.feed(value)
        return value
    context, escaped = lexer.context(expr)
    lexer.admit(expr, value)
    if context is Context.LITERAL:
        heredoc = lexer.top.heredoc
        if heredoc is not None and heredoc.strip_tabs and "\n\t" in value:
            raise ExpressionError(
                f"expression '{expr.source}' is in a quoted <<- here-document, whose lines lose their "
                "leading tabs, and its value has lines that start with a tab: use << to keep them",
                offset=expr.offset,
            )
        lexer.feed(value, inserted=expr)
        return value
    if context is Context.ARITHMETIC:
        lexer.feed(value, quiet=True)
        return value
    if context is Context.ANSI and escaped:
        raise ExpressionError(
            f"expression '{expr.source}' cannot follow a backslash inside $'...'", offset=expr.offset
        )
    name = f"{ENV_PREFIX}{len(env)}"
    env[name] = value
    reference = {
        Context.BARE: f'"${name}"',
        Context.DOUBLE: f"${{{name}}}",
        Context.SINGLE: f"'\"${name}\"'",
        Context.ANSI: f"'\"${name}\"$'",
    }[context]
    if escaped:
        # The backslash before the expression would quote the reference's first
        # character; a newline after it makes the pair a line continuation instead.
        reference = "\n" + reference
    lexer.feed(reference, quiet=True)
    return reference


def check_value(name: str, value: str) -> None:
    """Refuse a value that reaches a shell by `name` (an `environment:` variable) and
    holds an expansion inside an array subscript (see ShellLexer.admit)."""
    if _Subscripts().expansion_in(value) is not None:
        raise ExpressionError(
            f"environment variable {name} has a value with an expansion inside an array subscript, "
            f"{_WHY_REFUSED} for a run step",
            offset=0,
            hint=_WHAT_INSTEAD,
        )


_WHY_REFUSED = (
    "which bash, zsh and mksh run as a command wherever they read a value as a number or a variable name: "
    "such a value is refused"
)
_WHAT_INSTEAD = "to hand such text to a script, write it to a file with a write step"


def _need_whole_number(expr: Expression, value: str, where: str) -> None:
    if not _INTEGER.fullmatch(value):
        shown = "a secret's value" if _refers_to_secrets(expr) else f"its value {value[:40]!r}"
        raise ExpressionError(
            f"expression '{expr.source}' is {where}, where the shell reads text as arithmetic and only a "
            f"whole number is safe, but {shown} is not one",
            offset=expr.offset,
            hint="make it a number, e.g. with '| int'"
            + (", or declare the array with declare -A in the script if its keys are text" if where.startswith(_INDEX) else ""),
        )


def _refers_to_secrets(expr: Expression) -> bool:
    return any(ref.path[0] == "secrets" for ref in Template(expr.source, [expr]).references())
