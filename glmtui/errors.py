"""The errors a user sees: one clear line each, with its exit status (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENGINE = 3
EXIT_INTERRUPTED = 130


class GlmtuiError(Exception):
    """An error meant for the user: `str(err)` is the one line to print."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInput(GlmtuiError):
    """The command line, a plan or a value is wrong; nothing was done."""

    exit_code = EXIT_BAD_INPUT


class NotFound(BadInput):
    """A named thing (environment, image, run, key) does not exist."""


class Conflict(BadInput):
    """A named thing exists already."""


class EngineUnreachable(GlmtuiError):
    """No Docker engine answered; `reason` is why, in a few words, when known."""

    exit_code = EXIT_ENGINE
    reason: str | None = None


class WorkFailed(GlmtuiError):
    """The work ran and failed."""

    exit_code = EXIT_FAILED


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a choice is close to `word`, else ''."""
    import difflib  # only when something is misspelt: every command imports this module

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
