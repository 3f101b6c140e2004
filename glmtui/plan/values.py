"""Values from outside the plan: `.env` files and typed input values."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from glmtui.plan.loader import Document, parse_yaml, read_text
from glmtui.plan.model import Location, PlanError, PlanInvalid

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DOUBLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def parse_dotenv(text: str, file: Path) -> dict[str, str]:
    """KEY=VALUE lines: `#` comments, optional `export `, '...' and "..." values.

    Single quotes keep the text as it is; double quotes know \\n \\t \\r \\" \\\\ \\$;
    both may span lines. An unquoted value ends at ` #`. Nothing is expanded.
    Raises PlanInvalid naming every bad line.
    """
    values: dict[str, str] = {}
    errors: list[PlanError] = []
    i, n, line = 0, len(text), 1
    while i < n:
        end = text.find("\n", i)
        end = n if end < 0 else end
        stripped = text[i:end].strip()
        if not stripped or stripped.startswith("#"):
            i, line = end + 1, line + 1
            continue
        col = len(text[i:end]) - len(text[i:end].lstrip()) + 1
        start = i
        try:
            key, value, i = _assignment(text, i, end)
        except ValueError as exc:
            errors.append(PlanError(file, line, col, str(exc)))
            i, line = end + 1, line + 1
            continue
        values[key] = value
        line += text.count("\n", start, i)
    if errors:
        raise PlanInvalid(errors)
    return values


def _assignment(text: str, i: int, end: int) -> tuple[str, str, int]:
    """One KEY=VALUE starting on the line text[i:end]; returns key, value and the next line's start."""
    rest = text[i:end].lstrip()
    i = end - len(rest)
    if rest.startswith("export ") or rest.startswith("export\t"):
        rest = rest[7:].lstrip()
        i = end - len(rest)
    match = _KEY.match(rest)
    if not match:
        raise ValueError("expected KEY=VALUE")
    key = match.group()
    after = rest[match.end() :].lstrip(" \t")
    if not after.startswith("="):
        raise ValueError(f"expected '=' after {key}")
    value_start = end - len(after[1:].lstrip(" \t"))
    quote = text[value_start] if value_start < end else ""
    if quote not in ("'", '"'):
        raw = text[value_start:end]
        comment = re.search(r"\s#", raw)
        return key, (raw[: comment.start()] if comment else raw).strip(), end + 1
    value, close = _quoted(text, value_start, quote)
    line_end = text.find("\n", close)
    line_end = len(text) if line_end < 0 else line_end
    trailing = text[close:line_end].strip()
    if trailing and not trailing.startswith("#"):
        raise ValueError(f"unexpected text after the quoted value of {key}")
    return key, value, line_end + 1


def _quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and quote == '"' and i + 1 < len(text) and text[i + 1] in _DOUBLE_ESCAPES:
            out.append(_DOUBLE_ESCAPES[text[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    raise ValueError(f"the value's {quote} is not closed")


def read_dotenv(path: Path) -> dict[str, str]:
    return parse_dotenv(read_text(path, "env file"), path)


def read_input_file(path: Path) -> Document:
    """An --input-file: a YAML (or JSON) mapping of input name to value."""
    document = parse_yaml(read_text(path, "input file"), path)
    if document.data is None:
        document.data = {}
    if not isinstance(document.data, dict):
        raise PlanInvalid([PlanError.at(document.locate(()), "an input file is a mapping of input name to value")])
    return document


# --- typed inputs ------------------------------------------------------------------------


def coerce(value: Any, type_: str, *, where: Location) -> Any:
    """`value` as an input of `type_`; text (from --input) is parsed to the type.

    Raises ValueError with a message that names the type.
    """
    if isinstance(value, str):
        return _from_text(value, type_, where)
    if type_ == "string":
        if isinstance(value, (dict, list)):
            raise ValueError(f"must be a string, not {kind_of(value)}")
        return _plain_text(value)
    if type_ == "integer":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"must be an integer, not {kind_of(value)}")
    if type_ == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value
        raise ValueError(f"must be a number, not {kind_of(value)}")
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError(f"must be a boolean (true or false), not {kind_of(value)}")
    wanted = list if type_ == "list" else dict
    if isinstance(value, wanted):
        return value
    raise ValueError(f"must be {'a list' if type_ == 'list' else 'an object'}, not {kind_of(value)}")


def _from_text(text: str, type_: str, where: Location) -> Any:
    if type_ == "string":
        return text
    stripped = text.strip()
    if type_ == "integer":
        if re.fullmatch(r"[+-]?\d+", stripped):
            return int(stripped)
        raise ValueError(f"must be an integer, not {text!r}")
    if type_ == "number":
        try:
            number = int(stripped) if re.fullmatch(r"[+-]?\d+", stripped) else float(stripped)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        raise ValueError(f"must be a number, not {text!r}")
    if type_ == "boolean":
        if stripped.lower() in _TRUE | _FALSE:
            return stripped.lower() in _TRUE
        raise ValueError(f"must be a boolean (true/false, yes/no, 1/0), not {text!r}")
    try:
        value = json.loads(stripped)
    except ValueError:
        try:
            value = parse_yaml(text, where.file).data
        except PlanInvalid:
            value = text
    if type_ == "list" and isinstance(value, list):
        return value
    if type_ == "object" and isinstance(value, dict):
        return value
    noun = "a list (JSON or YAML, e.g. [a, b])" if type_ == "list" else "an object (JSON or YAML, e.g. {a: 1})"
    raise ValueError(f"must be {noun}, not {text!r}")


def _plain_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def kind_of(value: Any, mapping: str = "a mapping") -> str:
    """'a string', 'a list'…: what a value is, for messages (a dict is `mapping`: JSON says
    "an object")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else mapping
