"""Rendering `run` scripts so that substituted values are never read as shell code.

Each expression's value goes into an environment variable, and the script gets
a reference to that variable written for the quoting context at that spot. A
small shell lexer follows the script text to know that context: unquoted,
single or double quotes, `$'...'`, `$(...)`, backticks, `${...}`, arithmetic,
comments and here-documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from glmtui.plan.expressions import Expression, ExpressionError, Template, to_text

ENV_PREFIX = "GLMTUI_EXPR_"
_INTEGER = re.compile(r"[+-]?\d+")
_SPECIAL_PARAMETERS = set("#?$!@*-0123456789")
_WORD_END = set(" \t\n;&|()<>")
_COMMAND_WORDS = {"then", "do", "else", "elif", "if", "while", "until", "!", "{", "time"}


class Context(Enum):
    BARE = "bare"  # unquoted word text, also in $(...), backticks and comments
    DOUBLE = "double"  # inside "...", ${...} within "...", an unquoted here-document body
    SINGLE = "single"  # inside '...'
    ANSI = "ansi"  # inside $'...'
    ARITHMETIC = "arithmetic"  # inside $(( ... )) or (( ... ))
    LITERAL = "literal"  # the body of a quoted here-document: nothing is expanded


@dataclass
class RenderedScript:
    script: str
    env: dict[str, str]


@dataclass
class _HereDoc:
    delimiter: str
    quoted: bool
    strip_tabs: bool


@dataclass
class _Frame:
    kind: str  # "cmd", "sq", "ansi", "dq", "param", "arith", "comment", "heredoc"
    closer: str = ""  # cmd: ")" for $( ), "`" for backticks, "" at the top
    in_dq: bool = False  # param: the ${...} stands inside double quotes
    depth: int = 0  # parens of a cmd or arith frame, braces of a param frame
    escaped: bool = False  # a backslash ended the text fed so far
    # cmd frames
    word: str | None = ""  # plain text of the current word; None once it holds quotes or $
    word_start: bool = True
    command_position: bool = True
    case_depth: int = 0
    delimiter: list[str] | None = None  # reading a here-document delimiter
    delimiter_quoted: bool = False
    delimiter_quote: str = ""
    strip_tabs: bool = False
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

    def feed(self, text: str, *, inserted: Expression | None = None) -> None:
        """Follow `text`; `inserted` is the expression when the text is its value."""
        if inserted is not None and self.top.kind == "heredoc":
            self.top.line_inserted = inserted
        self.inserting = inserted
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

    def finish(self) -> None:
        """The end of the script: a here-document may end on its last line."""
        frame = self.top
        if frame.kind == "heredoc":
            self._heredoc_line_end(frame)

    # Each handler looks at text[i] and returns how many characters it consumed.

    def _escape(self, frame: _Frame, text: str, i: int) -> int:
        if i + 1 < len(text):
            return 2
        frame.escaped = True
        return 1

    def _dollar(self, frame: _Frame, text: str, i: int, *, quoted: bool) -> int:
        """`$` in a context where expansions happen."""
        nxt = text[i + 1 : i + 2]
        if text.startswith("((", i + 1):
            self.frames.append(_Frame("arith"))
            return 3
        if nxt == "(":
            self.frames.append(_Frame("cmd", closer=")"))
            return 2
        if nxt == "{":
            self.frames.append(_Frame("param", in_dq=quoted))
            return 2
        if nxt == "'" and not quoted:
            self.frames.append(_Frame("ansi"))
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
            return self._escape(frame, text, i)
        if c == "#" and frame.word_start:
            self.frames.append(_Frame("comment"))
            return 1
        starts_word = frame.word_start
        frame.word_start = c in _WORD_END
        if c == "'":
            frame.word = None
            self.frames.append(_Frame("sq"))
        elif c == '"':
            frame.word = None
            self.frames.append(_Frame("dq"))
        elif c == "`":
            if frame.closer == "`":
                self.frames.pop()
            else:
                frame.word = None
                self.frames.append(_Frame("cmd", closer="`"))
        elif c == "$":
            frame.word = None
            return self._dollar(frame, text, i, quoted=False)
        elif c == "(":
            frame.command_position = True
            if starts_word and text.startswith("(", i + 1):
                self.frames.append(_Frame("arith"))
                return 2
            frame.depth += 1
        elif c == ")":
            frame.command_position = True
            if frame.depth > 0:
                frame.depth -= 1
            elif frame.case_depth == 0 and frame.closer == ")":
                self.frames.pop()
        elif c == "\n":
            frame.command_position = True
            if self.pending:
                self._start_heredoc()
        elif c in ";&|":
            frame.command_position = True
        elif c == "<":
            if text.startswith("<<<", i):
                return 3
            if text.startswith("<<", i):
                frame.strip_tabs = text.startswith("<<-", i)
                frame.delimiter = []
                frame.delimiter_quoted = False
                frame.delimiter_quote = ""
                return 3 if frame.strip_tabs else 2
        elif c not in _WORD_END and frame.word is not None:
            frame.word += c
        return 1

    def _end_word(self, frame: _Frame) -> None:
        word = frame.word
        if word:
            if frame.command_position:
                if word == "case":
                    frame.case_depth += 1
                elif word == "esac" and frame.case_depth:
                    frame.case_depth -= 1
            frame.command_position = word in _COMMAND_WORDS
        elif word is None:
            frame.command_position = False
        frame.word = ""

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
        if text[i] == "'":
            self.frames.pop()
        return 1

    def _ansi(self, frame: _Frame, text: str, i: int) -> int:
        if text[i] == "\\":
            return self._escape(frame, text, i)
        if text[i] == "'":
            self.frames.pop()
        return 1

    def _dq(self, frame: _Frame, text: str, i: int) -> int:
        c = text[i]
        if c == "\\":
            return self._escape(frame, text, i)
        if c == '"':
            self.frames.pop()
        elif c == "`":
            self.frames.append(_Frame("cmd", closer="`"))
        elif c == "$":
            return self._dollar(frame, text, i, quoted=True)
        return 1

    def _param(self, frame: _Frame, text: str, i: int) -> int:
        c = text[i]
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

    def _arith(self, frame: _Frame, text: str, i: int) -> int:
        c = text[i]
        if c == "(":
            frame.depth += 1
        elif c == ")":
            if frame.depth:
                frame.depth -= 1
            else:
                self.frames.pop()
                return 2 if text.startswith(")", i + 1) else 1
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
        if not _INTEGER.fullmatch(value):
            raise ExpressionError(
                f"expression '{expr.source}' is inside shell arithmetic, where only a whole number "
                f"is safe, but its value is {value[:40]!r}",
                offset=expr.offset,
            )
        lexer.feed(value)
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
    lexer.feed(reference)
    return reference
