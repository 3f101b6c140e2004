"""The `${ ... }` expression language of plan files.

A template is text with expressions in it. The text is cut into literal pieces
and expressions once, by `parse` (or `parse_condition` for `if:`); each
expression is tokenized and parsed by a small recursive-descent parser into a
tree that `render` evaluates against a context of plain dicts and lists. No
Python is ever evaluated, and no attribute of a host object is ever reached:
paths only look into mappings and sequences.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glmtui.errors import BadInput, did_you_mean

ROOTS = frozenset({"inputs", "secrets", "steps", "step", "with", "response", "env", "plan"})
STATUS_FUNCTIONS = frozenset({"always", "success", "failure", "cancelled"})
FILTERS: dict[str, int] = {  # name -> number of arguments
    "default": 1,
    "json": 0,
    "fromjson": 0,
    "trim": 0,
    "lower": 0,
    "upper": 0,
    "lines": 0,
    "head": 1,
    "tail": 1,
    "int": 0,
    "float": 0,
    "raw": 0,
}
MAX_DEPTH = 64
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_LITERAL_WORDS = {"true": True, "false": False, "null": None}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MEMBER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "|", "(", ")", "[", "]", ".", ",", "!", "-")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
_Status = Callable[[str], bool]


class ExpressionError(BadInput):
    """An expression that does not parse, or fails when evaluated."""

    def __init__(self, message: str, *, offset: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.offset = offset


@dataclass(frozen=True)
class Reference:
    """A `${...}` reference to a value: its path (`steps.a.stdout`) and where it stands in the text."""

    path: tuple[str | int, ...]
    offset: int


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """A token of an expression."""

    kind: str  # "name", "number", "string", "op", "end"
    value: Any
    pos: int


class _Failure(Exception):
    """Raised inside the parser and evaluator; the caller turns it into ExpressionError."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


class _Unclosed(_Failure):
    """The template ends inside `${ ...`."""


def _tokenize(text: str, start: int, *, braced: bool) -> tuple[list[_Token], int]:
    """Tokens from text[start:] up to the closing '}' (braced) or the end.

    Returns the tokens (ending with an "end" token) and the offset just after the
    expression (after the '}' when braced).
    """
    tokens: list[_Token] = []
    i, n = start, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            if braced:
                raise _Unclosed("expected '}'", n)
            tokens.append(_Token("end", None, i))
            return tokens, i
        c = text[i]
        if c == "}" and braced:
            tokens.append(_Token("end", None, i))
            return tokens, i + 1
        after_dot = bool(tokens) and tokens[-1].kind == "op" and tokens[-1].value == "."
        if after_dot and (m := _MEMBER.match(text, i)):
            tokens.append(_Token("name", m.group(), i))
            i = m.end()
        elif c in "'\"":
            value, end = _string_literal(text, i)
            tokens.append(_Token("string", value, i))
            i = end
        elif m := _NUMBER.match(text, i):
            tokens.append(_Token("number", _number(m.group(), i), i))
            i = m.end()
        elif m := _NAME.match(text, i):
            tokens.append(_Token("name", m.group(), i))
            i = m.end()
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise _Failure(f"unexpected character {c!r}", i)
            tokens.append(_Token("op", op, i))
            i += len(op)


def _string_literal(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise _Failure("a string literal is not closed", start)


def _number(digits: str, pos: int) -> int | float:
    try:
        return float(digits) if any(c in digits for c in ".eE") else int(digits)
    except ValueError:
        raise _Failure("a number is too long", pos) from None


# --- the tree -------------------------------------------------------------------------------


class _Scope:
    """What an evaluation sees: the context and, in conditions, the status answers."""

    def __init__(self, context: Mapping[str, Any], status: _Status | None) -> None:
        self.context = context
        self.status = status


class _Node:
    pos: int

    def eval(self, scope: _Scope) -> Any:
        raise NotImplementedError

    def children(self) -> Iterator[_Node]:
        return iter(())


@dataclass
class _Literal(_Node):
    """A number, string, boolean or null written in an expression."""

    value: Any
    pos: int

    def eval(self, scope: _Scope) -> Any:
        return self.value


@dataclass
class _List(_Node):
    """A list written in an expression: `[a, b]`."""

    items: list[_Node]
    pos: int

    def eval(self, scope: _Scope) -> Any:
        return [item.eval(scope) for item in self.items]

    def children(self) -> Iterator[_Node]:
        return iter(self.items)


@dataclass
class _Root(_Node):
    """A name at the start of a reference: `inputs`, `steps`, `env`..."""

    name: str
    pos: int

    def eval(self, scope: _Scope) -> Any:
        try:
            return scope.context[self.name]
        except KeyError:
            raise _Failure(f"'{self.name}' is not available here", self.pos) from None


@dataclass
class _Lookup(_Node):
    """base.key, base[0], base['key'] ...: None where a key or index is missing."""

    base: _Node
    keys: list[str | int]
    pos: int

    def eval(self, scope: _Scope) -> Any:
        value = self.base.eval(scope)
        for key in self.keys:
            value = _lookup(value, key)
        return value

    def children(self) -> Iterator[_Node]:
        yield self.base


def _lookup(value: Any, key: str | int) -> Any:
    if isinstance(value, Mapping):
        try:
            return value.get(key)
        except TypeError:
            return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and isinstance(key, int):
        try:
            return value[key]
        except IndexError:
            return None
    return None


@dataclass
class _Call(_Node):
    """A status function of a condition: `success()`, `failure()`, `always()`."""

    name: str
    pos: int

    def eval(self, scope: _Scope) -> Any:
        if scope.status is None:
            raise _Failure(f"{self.name}() is only answered in an if: condition", self.pos)
        return bool(scope.status(self.name))


@dataclass
class _Not(_Node):
    """`!x`."""

    operand: _Node
    pos: int

    def eval(self, scope: _Scope) -> Any:
        return not truthy(self.operand.eval(scope))

    def children(self) -> Iterator[_Node]:
        yield self.operand


@dataclass
class _BoolOp(_Node):
    """`a or b or c` / `a and b`: like Python, the deciding operand is the value."""

    op: str
    operands: list[_Node]
    pos: int

    def eval(self, scope: _Scope) -> Any:
        value = None
        for operand in self.operands:
            value = operand.eval(scope)
            if truthy(value) == (self.op == "or"):
                return value
        return value

    def children(self) -> Iterator[_Node]:
        return iter(self.operands)


@dataclass
class _Compare(_Node):
    """`a == b`, `a < b` and the other comparisons."""

    op: str
    left: _Node
    right: _Node
    pos: int

    def eval(self, scope: _Scope) -> Any:
        return _compare(self.op, self.left.eval(scope), self.right.eval(scope), self.pos)

    def children(self) -> Iterator[_Node]:
        yield self.left
        yield self.right


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(op: str, left: Any, right: Any, pos: int) -> bool:
    if op in ("==", "!="):
        # true is not 1 here, unlike in Python
        equal = isinstance(left, bool) == isinstance(right, bool) and left == right
        return equal if op == "==" else not equal
    if op in ("in", "not in"):
        found = _contains(right, left, pos)
        return found if op == "in" else not found
    if not (_is_number(left) and _is_number(right)) and not (isinstance(left, str) and isinstance(right, str)):
        raise _Failure(f"cannot compare {_type_name(left)} and {_type_name(right)} with '{op}'", pos)
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _contains(container: Any, item: Any, pos: int) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        if not isinstance(item, str):
            raise _Failure(f"cannot look for {_type_name(item)} in a string with 'in'", pos)
        return item in container
    if isinstance(container, Mapping):
        return isinstance(item, (str, int)) and not isinstance(item, bool) and item in container
    if isinstance(container, Sequence) and not isinstance(container, bytes):
        return any(_compare("==", element, item, pos) for element in container)
    raise _Failure(f"cannot look into {_type_name(container)} with 'in'", pos)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


@dataclass
class _FilterCall:
    """One filter of a filtered value, with its arguments: `tail(200)`."""

    name: str
    args: list[_Node]
    pos: int


@dataclass
class _Filtered(_Node):
    """A value passed through filters: `x | tail(200) | default('')`."""

    base: _Node
    filters: list[_FilterCall]
    pos: int

    def eval(self, scope: _Scope) -> Any:
        value = self.base.eval(scope)
        for f in self.filters:
            args = [arg.eval(scope) for arg in f.args]
            value = _apply_filter(f, value, args)
        return value

    def children(self) -> Iterator[_Node]:
        yield self.base
        for f in self.filters:
            yield from f.args


def _apply_filter(f: _FilterCall, value: Any, args: list[Any]) -> Any:
    name = f.name
    if name == "default":
        return args[0] if value is None else value
    if name == "json":
        return _json(value, f.pos)
    if name == "raw":
        return value
    if value is None:  # a missing value stays missing, so a later default() can fill it
        return None
    if name == "fromjson":
        text = _want_str(f, value)
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _Failure(f"fromjson: not valid JSON ({exc})", f.pos) from None
    if name == "trim":
        return _want_str(f, value).strip()
    if name == "lower":
        return _want_str(f, value).lower()
    if name == "upper":
        return _want_str(f, value).upper()
    if name == "lines":
        return _lines(_want_str(f, value))
    if name in ("head", "tail"):
        return _head_tail(f, value, args[0])
    if name == "int":
        return _to_int(f, value)
    return _to_float(f, value)


def _want_str(f: _FilterCall, value: Any) -> str:
    if not isinstance(value, str):
        raise _Failure(f"{f.name} expects a string, got {_type_name(value)}", f.pos)
    return value


def _lines(text: str) -> list[str]:
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def _head_tail(f: _FilterCall, value: Any, count: Any) -> Any:
    whole = isinstance(count, int) or (isinstance(count, float) and count.is_integer())
    if not _is_number(count) or not whole or count < 0:
        raise _Failure(f"{f.name}() needs a whole number of 0 or more, got {to_text(count)!r}", f.pos)
    count = int(count)
    if isinstance(value, str):
        lines = _lines(value)
        return "\n".join(lines[:count] if f.name == "head" else lines[len(lines) - count :])
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        items = list(value)
        return items[:count] if f.name == "head" else items[len(items) - count :]
    raise _Failure(f"{f.name} expects a string or a list, got {_type_name(value)}", f.pos)


def _to_int(f: _FilterCall, value: Any) -> int:
    try:
        if isinstance(value, str):
            text = value.strip()
            return int(text) if re.fullmatch(r"[+-]?\d+", text) else int(float(text))
        if isinstance(value, (bool, int, float)):
            return int(value)
    except (ValueError, OverflowError):
        pass
    raise _Failure(f"int cannot convert {_short(to_text(value))!r}", f.pos)


def _to_float(f: _FilterCall, value: Any) -> float:
    try:
        if isinstance(value, (str, bool, int, float)):
            return float(value)
    except (ValueError, OverflowError):
        pass
    raise _Failure(f"float cannot convert {_short(to_text(value))!r}", f.pos)


def _json(value: Any, pos: int) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Failure(f"cannot be written as JSON ({exc})", pos) from None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the parser -------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token], *, condition: bool) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.condition = condition

    @property
    def tok(self) -> _Token:
        return self.tokens[self.index]

    def at(self, kind: str) -> bool:
        return self.tok.kind == kind

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def at_word(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.value == word

    def take(self) -> _Token:
        tok = self.tok
        self.index += 1
        return tok

    def expect_op(self, op: str, after: str) -> None:
        if not self.at_op(op):
            raise _Failure(f"expected '{op}' {after}", self.tok.pos)
        self.take()

    def parse(self) -> _Node:
        if self.at("end"):
            raise _Failure("it is empty", self.tok.pos)
        node = self.expression()
        if not self.at("end"):
            tok = self.tok
            found = "a string" if tok.kind == "string" else f"'{tok.value}'"
            raise _Failure(f"unexpected {found}", tok.pos)
        return node

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Failure(f"it is nested more than {MAX_DEPTH} levels deep", self.tok.pos)

    def expression(self) -> _Node:
        self.nested()
        node = self.boolean("or")
        self.depth -= 1
        return node

    def boolean(self, op: str) -> _Node:
        symbol = "||" if op == "or" else "&&"
        operands = [self.boolean("and") if op == "or" else self.negation()]
        pos = operands[0].pos
        while self.at_word(op) or self.at_op(symbol):
            after = self.take()
            if self.at("end"):
                raise _Failure(f"expected a value after '{after.value}'", after.pos)
            operands.append(self.boolean("and") if op == "or" else self.negation())
        return operands[0] if len(operands) == 1 else _BoolOp(op, operands, pos)

    def negation(self) -> _Node:
        if self.at_word("not") or self.at_op("!"):
            tok = self.take()
            self.nested()
            operand = self.negation()
            self.depth -= 1
            return _Not(operand, tok.pos)
        return self.comparison()

    def comparison_op(self) -> str | None:
        if self.at_op(*_COMPARISONS):
            return self.tok.value
        if self.at_word("in"):
            return "in"
        nxt = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else None
        if self.at_word("not") and nxt is not None and nxt.kind == "name" and nxt.value == "in":
            return "not in"
        return None

    def comparison(self) -> _Node:
        left = self.filtered()
        op = self.comparison_op()
        if op is None:
            return left
        op_tok = self.take()
        if op == "not in":
            self.take()
        if self.at("end"):
            raise _Failure(f"expected a value after '{op}'", op_tok.pos)
        right = self.filtered()
        if self.comparison_op() is not None:
            raise _Failure("comparisons cannot be chained; join them with 'and'", self.tok.pos)
        return _Compare(op, left, right, op_tok.pos)

    def filtered(self) -> _Node:
        base = self.postfix()
        filters: list[_FilterCall] = []
        while self.at_op("|"):
            bar = self.take()
            if not self.at("name"):
                raise _Failure("expected a filter name after '|'", bar.pos if self.at("end") else self.tok.pos)
            name_tok = self.take()
            name = name_tok.value
            if name not in FILTERS:
                raise _Failure(f"unknown filter '{name}'{did_you_mean(name, FILTERS)}", name_tok.pos)
            args = self.arguments(f"filter '{name}'") if self.at_op("(") else []
            if len(args) != FILTERS[name]:
                wanted = FILTERS[name]
                raise _Failure(
                    f"filter '{name}' takes {wanted} argument{'s' if wanted != 1 else ''}, got {len(args)}",
                    name_tok.pos,
                )
            filters.append(_FilterCall(name, args, name_tok.pos))
        return _Filtered(base, filters, base.pos) if filters else base

    def arguments(self, what: str) -> list[_Node]:
        return self.sequence(")", f"the arguments of {what}")

    def sequence(self, closer: str, what: str) -> list[_Node]:
        """Comma-separated expressions after an opening '(' or '[', up to `closer`."""
        self.take()
        items: list[_Node] = []
        while not self.at_op(closer):
            items.append(self.expression())
            if self.at_op(","):
                self.take()
            elif not self.at_op(closer):
                raise _Failure(f"expected ',' or '{closer}' in {what}", self.tok.pos)
        self.take()
        return items

    def postfix(self) -> _Node:
        base = self.primary()
        keys: list[str | int] = []
        while self.at_op(".", "["):
            tok = self.take()
            if tok.value == ".":
                if not self.at("name"):
                    raise _Failure("expected a name after '.'", tok.pos)
                keys.append(self.take().value)
            else:
                keys.append(self.index_key())
                self.expect_op("]", "to close '['")
        return _Lookup(base, keys, base.pos) if keys else base

    def index_key(self) -> str | int:
        negative = self.at_op("-")
        if negative:
            self.take()
        tok = self.tok
        if tok.kind == "number" and isinstance(tok.value, int):
            self.take()
            return -tok.value if negative else tok.value
        if tok.kind == "string" and not negative:
            self.take()
            return tok.value
        raise _Failure("an index in [...] must be a whole number or a quoted string", tok.pos)

    def primary(self) -> _Node:
        tok = self.tok
        if tok.kind in ("number", "string"):
            self.take()
            return _Literal(tok.value, tok.pos)
        if tok.kind == "op":
            return self.primary_op(tok)
        if tok.kind == "name":
            return self.primary_name(tok)
        raise _Failure("expected a value", tok.pos)

    def primary_op(self, tok: _Token) -> _Node:
        if tok.value == "(":
            self.take()
            node = self.expression()
            self.expect_op(")", "to close '('")
            return node
        if tok.value == "[":
            return _List(self.sequence("]", "a list"), tok.pos)
        if tok.value == "-":
            self.take()
            number = self.tok
            if number.kind != "number":
                raise _Failure("expected a number after '-'", tok.pos)
            self.take()
            return _Literal(-number.value, tok.pos)
        previous = self.tokens[self.index - 1] if self.index else None
        if previous is not None and previous.kind == "op":
            raise _Failure(f"expected a value after '{previous.value}'", previous.pos)
        raise _Failure(f"expected a value, found '{tok.value}'", tok.pos)

    def primary_name(self, tok: _Token) -> _Node:
        name = tok.value
        self.take()
        if name in _LITERAL_WORDS:
            return _Literal(_LITERAL_WORDS[name], tok.pos)
        if self.at_op("("):
            if name not in STATUS_FUNCTIONS:
                raise _Failure(f"unknown function '{name}()'{did_you_mean(name, STATUS_FUNCTIONS)}", tok.pos)
            if not self.condition:
                raise _Failure(f"{name}() can only be used in an if: condition", tok.pos)
            if self.arguments(f"{name}()"):
                raise _Failure(f"{name}() takes no arguments", tok.pos)
            return _Call(name, tok.pos)
        if name in ROOTS:
            return _Root(name, tok.pos)
        if name in STATUS_FUNCTIONS:
            raise _Failure(f"{name} is a function: write {name}()", tok.pos)
        if name in _KEYWORDS:
            raise _Failure(f"expected a value, found '{name}'", tok.pos)
        raise _Failure(f"unknown name '{name}'{did_you_mean(name, ROOTS)}", tok.pos)


def _references(node: _Node) -> Iterator[Reference]:
    if isinstance(node, _Root):
        yield Reference((node.name,), node.pos)
        return
    if isinstance(node, _Lookup) and isinstance(node.base, _Root):
        yield Reference((node.base.name, *node.keys), node.pos)
        return
    for child in node.children():
        yield from _references(child)


def _calls(node: _Node) -> Iterator[str]:
    if isinstance(node, _Call):
        yield node.name
    for child in node.children():
        yield from _calls(child)


# --- templates -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Expression:
    """One `${ ... }` of a template (or a whole bare condition)."""

    source: str  # as written, for messages
    offset: int  # of the source in the template text
    node: _Node

    @property
    def raw(self) -> bool:
        """Whether the last filter is `raw`: the text goes into a shell script as it is."""
        node = self.node
        return isinstance(node, _Filtered) and node.filters[-1].name == "raw"

    def evaluate(self, context: Mapping[str, Any], *, status: _Status | None = None) -> Any:
        try:
            return self.node.eval(_Scope(context, status))
        except _Failure as failure:
            raise ExpressionError(f"{_label(self.source)} failed: {failure.message}", offset=failure.pos) from None
        except RecursionError:
            message = f"{_label(self.source)} failed: a value is nested too deeply"
            raise ExpressionError(message, offset=self.offset) from None


def _label(source: str) -> str:
    return f"expression '{_short(source)}'"


class Template:
    """Text with `${ ... }` expressions: literal pieces (str) and Expression parts."""

    def __init__(self, text: str, parts: Sequence[str | Expression]) -> None:
        self.text = text
        self.parts: tuple[str | Expression, ...] = tuple(parts)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def expressions(self) -> list[Expression]:
        return [part for part in self.parts if isinstance(part, Expression)]

    def references(self) -> list[Reference]:
        return [ref for expr in self.expressions() for ref in _references(expr.node)]

    def status_functions(self) -> set[str]:
        return {name for expr in self.expressions() for name in _calls(expr.node)}

    def is_literal(self) -> bool:
        return not self.expressions()

    def render(self, context: Mapping[str, Any], *, status: _Status | None = None) -> Any:
        """The value: typed when the template is one whole expression, else a string."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Expression):
            return self.parts[0].evaluate(context, status=status)
        pieces = []
        for part in self.parts:
            if isinstance(part, Expression):
                value = part.evaluate(context, status=status)
                try:
                    pieces.append(to_text(value))
                except ExpressionError as exc:
                    raise ExpressionError(f"{_label(part.source)} failed: {exc.message}", offset=part.offset) from None
            else:
                pieces.append(part)
        return "".join(pieces)


def to_text(value: Any) -> str:
    """A value as it appears inside longer text."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return str(value)
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return _json(value, 0)
        except _Failure as failure:
            raise ExpressionError(f"a value {failure.message}", offset=0) from None
    return str(value)


def truthy(value: Any) -> bool:
    """GitHub Actions truthiness: false, null, "", 0 and NaN are false; all else is true."""
    if value is None or value is False or value == "":
        return False
    if _is_number(value):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    return True


def _is_expression_start(text: str, i: int) -> bool:
    """Whether the `${` ending just before i opens an expression rather than shell text."""
    n = len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if text.startswith("not", i) and (i + 3 == n or not (text[i + 3].isalnum() or text[i + 3] in "_-")):
            i += 3
        elif i < n and text[i] == "(":
            i += 1
        else:
            break
    if i >= n:
        return False
    if text[i] in "'\"":
        return True
    if text[i].isdigit():
        # ${1} and ${10} are the shell's positional parameters
        j = i
        while j < n and text[j].isdigit():
            j += 1
        return not (j < n and text[j] == "}")
    m = _NAME.match(text, i)
    return bool(m) and (m.group() in ROOTS or m.group() in STATUS_FUNCTIONS or m.group() in _LITERAL_WORDS)


def _parse_expression(
    text: str, start: int, end: int | None, *, braced: bool, condition: bool
) -> tuple[Expression, int]:
    """Parse the expression whose content starts at `start`; returns it and where it ends."""
    try:
        tokens, stop = _tokenize(text if end is None else text[:end], start, braced=braced)
        node = _Parser(tokens, condition=condition).parse()
    except (_Failure, RecursionError) as exc:
        source = text[start - 2 : _source_end(text, start)] if braced else text[start:end].strip()
        if isinstance(exc, _Unclosed):
            raise ExpressionError(f"{_label(source)} is not closed: expected '}}'", offset=start - 2) from None
        message, pos = (exc.message, exc.pos) if isinstance(exc, _Failure) else ("it is nested too deeply", start)
        raise ExpressionError(f"{_label(source)} does not parse: {message}", offset=pos) from None
    source = text[start - 2 : stop] if braced else text[start:stop].strip()
    return Expression(source, start - 2 if braced else start, node), stop


def _source_end(text: str, start: int) -> int:
    """Best guess at the end of a broken expression, for the message."""
    close = text.find("}", start)
    newline = text.find("\n", start)
    ends = [e for e in (close + 1 if close >= 0 else -1, newline) if e >= 0]
    return min(ends) if ends else len(text)


def _parse_template(text: str, *, condition: bool) -> Template:
    parts: list[str | Expression] = []
    literal: list[str] = []

    def end_literal() -> None:
        if joined := "".join(literal):
            parts.append(joined)
        literal.clear()

    i, n = 0, len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:dollar])
        if text.startswith("$${", dollar):
            literal.append("${")
            i = dollar + 3
        elif text.startswith("${", dollar) and _is_expression_start(text, dollar + 2):
            end_literal()
            expr, i = _parse_expression(text, dollar + 2, None, braced=True, condition=condition)
            parts.append(expr)
        else:
            literal.append("$")
            i = dollar + 1
    end_literal()
    return Template(text, parts)


def parse(text: str) -> Template:
    """A template of plan text: literal text with `${ ... }` expressions in it."""
    return _parse_template(text, condition=False)


def parse_condition(text: str) -> Template:
    """An `if:` condition: `${ ... }` template, or one bare expression without `${ }`.

    Text starting with `${` (after blanks) is a template, so `${a} == ${b}` is a
    non-empty string and so true, as in GitHub Actions; anything else is one
    expression. Status functions are allowed in both.
    """
    if text.lstrip().startswith("${"):
        parts = list(_parse_template(text, condition=True).parts)
        # blanks around a lone ${...} do not turn its value into a string
        while parts and isinstance(parts[0], str) and not parts[0].strip():
            parts.pop(0)
        while parts and isinstance(parts[-1], str) and not parts[-1].strip():
            parts.pop()
        return Template(text, parts)
    expr, _ = _parse_expression(text, 0, len(text), braced=False, condition=True)
    return Template(text, [expr])


def evaluate_condition(
    text_or_template: str | Template, context: Mapping[str, Any], *, status: _Status
) -> bool:
    template = text_or_template if isinstance(text_or_template, Template) else parse_condition(text_or_template)
    return truthy(template.render(context, status=status))


def walk_strings(value: Any) -> Iterator[str]:
    """Every string inside nested dict and list values (keys are not visited)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk_strings(item)
