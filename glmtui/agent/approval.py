"""Which tool calls run, which are asked about, which are refused.

A policy has a default mode and rules for a tool and, optionally, a pattern (shell-style, `*`)
matched against the call's subject: the command for `bash`, the path for the file tools. Of the
rules that match, `deny` wins over `ask`, and `ask` over `auto`. With no rule matching, tools
that change nothing (read_file, list_files, grep) run; the others follow the default: `auto`
runs them, `ask` asks, `deny` refuses them.
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from glmtui.errors import BadInput

MODES = ("auto", "ask", "deny")
READ_ONLY = frozenset({"read_file", "list_files", "grep"})
_STRENGTH = {"auto": 0, "ask": 1, "deny": 2}


@dataclass(frozen=True)
class Rule:
    mode: str
    tool: str | None = None  # None: every tool
    pattern: str | None = None  # None: every call of the tool

    def matches(self, tool: str, subject: str) -> bool:
        if self.tool not in (None, "*", tool):
            return False
        return self.pattern is None or fnmatch.fnmatchcase(subject, self.pattern)


@dataclass(frozen=True)
class ApprovalRequest:
    tool: str
    arguments: Mapping[str, Any]
    subject: str  # what the rules look at: the command, or the path
    pattern: str  # what "always" would allow from now on
    step: str = ""  # the plan step (or "chat") whose agent asks

    def describe(self) -> str:
        return f"{self.tool}: {self.subject}" if self.subject else self.tool


Answer = str  # yes | no | always
Approver = Callable[[ApprovalRequest], Awaitable[Answer]]


@dataclass
class Policy:
    default: str = "ask"
    rules: list[Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_mode(self.default, "approval")

    @classmethod
    def from_config(cls, default: str, rules: Iterable[Mapping[str, Any]] = ()) -> Policy:
        return cls(default, [parse_rule(rule) for rule in rules])

    def decide(self, tool: str, arguments: Mapping[str, Any]) -> str:
        subject = subject_of(tool, arguments)
        matched = [rule.mode for rule in self.rules if rule.matches(tool, subject)]
        if matched:
            return max(matched, key=_STRENGTH.__getitem__)
        return "auto" if tool in READ_ONLY else self.default

    def may_ask(self) -> bool:
        """Whether a call could need a person (a headless run must then have --yes)."""
        return self.default == "ask" or any(rule.mode == "ask" for rule in self.rules)

    def allow_always(self, request: ApprovalRequest) -> None:
        """The person said "always": calls like this one run from now on (a deny still wins)."""
        self.rules.append(Rule("auto", request.tool, request.pattern))

    def request(self, tool: str, arguments: Mapping[str, Any], step: str = "") -> ApprovalRequest:
        subject = subject_of(tool, arguments)
        return ApprovalRequest(tool, dict(arguments), subject, suggest_pattern(tool, subject), step)


def subject_of(tool: str, arguments: Mapping[str, Any]) -> str:
    if tool == "bash":
        return str(arguments.get("command", ""))
    return str(arguments.get("path", ""))


def suggest_pattern(tool: str, subject: str) -> str:
    """`pytest -q tests/` -> `pytest *`: the same program with any arguments; a path as itself."""
    if tool != "bash":
        return subject
    try:
        words = shlex.split(subject)
    except ValueError:
        return subject
    if len(words) <= 1 or any(char in subject for char in ";&|`$<>(){}\n"):
        return subject  # a compound command is allowed only exactly as it was
    return f"{words[0]} *"


def check_mode(mode: Any, where: str) -> str:
    if mode not in MODES:
        raise BadInput(f"{where}: {mode!r} is not one of {', '.join(MODES)}")
    return str(mode)


def parse_rule(rule: Any) -> Rule:
    if not isinstance(rule, Mapping) or "mode" not in rule:
        raise BadInput(f"approval_rules: {rule!r} is not a rule like {{tool: bash, pattern: 'rm *', mode: deny}}")
    unknown = set(rule) - {"mode", "tool", "pattern"}
    if unknown:
        raise BadInput(f"approval_rules: unknown key {sorted(unknown)[0]!r} (a rule has tool, pattern, mode)")
    return Rule(check_mode(rule["mode"], "approval_rules"), rule.get("tool"), rule.get("pattern"))
