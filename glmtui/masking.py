"""Secrets shown as *** in every sink: terminal, TUI, logs, records, events.

A secret is masked line by line: each line of its value, without the spaces around it, is a
part of its own (blank lines are skipped), so a PEM key printed one line at a time is hidden
as well as one printed whole. A part of MIN_LENGTH characters or more is hidden wherever it
occurs, also inside other text. A shorter part is hidden only where it stands as a whole word
(no letter, digit or _ right before or after it): hidden inside words, a secret such as `x`
would turn "text" into "te***t". Such parts are what `short_parts` returns, for the warning a
plan gives when it is loaded.

Every character covered by an occurrence of any part is hidden, and each run of overlapping
occurrences becomes one MASK, so no part of a secret shows even where two secrets overlap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "***"
# GitLab CI's minimum for a masked variable. A value this long rarely occurs in output by
# chance; shorter ones are often words, numbers or pieces of them (EMPTY, x, 1234).
MIN_LENGTH = 8


def parts(value: str) -> list[str]:
    """What is masked of a secret's value: each of its lines, stripped, blank ones skipped."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def short_parts(value: str) -> list[str]:
    """The parts of `value` masked only as whole words."""
    return [part for part in parts(value) if len(part) < MIN_LENGTH]


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class Masker:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.anywhere: tuple[str, ...] = ()  # longest first, so a part that holds a shorter one is tried whole first
        self.words: tuple[str, ...] = ()  # the short parts, hidden only as whole words
        self.add(*secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.anywhere + self.words

    def add(self, *secrets: str) -> None:
        """Hide these secrets too, from now on (also in the streams made before)."""
        known = {*self.anywhere, *self.words}
        every = known.union(*(parts(secret) for secret in secrets))
        if every == known:
            return
        self.anywhere = tuple(sorted((part for part in every if len(part) >= MIN_LENGTH), key=len, reverse=True))
        self.words = tuple(sorted((part for part in every if len(part) < MIN_LENGTH), key=len, reverse=True))

    def mask(self, text: str) -> str:
        return _apply(text, self._spans(text, "", closed=True), len(text))

    def mask_value(self, value: Any) -> Any:
        """Strings masked inside nested dicts, lists and tuples (dict keys too)."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask_value(k): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.mask_value(v) for v in value)
        return value

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    def _spans(self, text: str, before: str, *, closed: bool) -> list[tuple[int, int]]:
        """Merged (start, stop) of every occurrence of every part, in order. `before`: the
        character before `text` ("" at the start); `closed`: the text ends there (else a short
        part at its very end is not known to be a whole word yet, and is left out)."""
        found: list[tuple[int, int]] = []
        for secret in self.anywhere:
            i = text.find(secret)
            while i >= 0:
                found.append((i, i + len(secret)))
                i = text.find(secret, i + 1)
        end = len(text)
        for secret in self.words:
            i = text.find(secret)
            while i >= 0:
                stop = i + len(secret)
                if (stop < end and not _is_word(text[stop])) or (stop == end and closed):
                    if not _is_word(text[i - 1] if i else before):
                        found.append((i, stop))
                i = text.find(secret, i + 1)
        if not found:
            return []
        found.sort()
        merged = [found[0]]
        for start, stop in found[1:]:
            last_start, last_stop = merged[-1]
            if start < last_stop:
                merged[-1] = (last_start, max(last_stop, stop))
            else:
                merged.append((start, stop))
        return merged


def _apply(text: str, spans: list[tuple[int, int]], cut: int) -> str:
    """text[:cut] with each span (all of them end by `cut`) replaced by MASK."""
    if not spans:
        return text[:cut] if cut < len(text) else text
    out: list[str] = []
    end = 0
    for start, stop in spans:
        out.append(text[end:start])
        out.append(MASK)
        end = stop
    out.append(text[end:cut])
    return "".join(out)


class StreamMasker:
    """Masks text that arrives in chunks, where a secret may be split between two; masked
    whole or in any pieces, a text comes out the same."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self._held = ""
        self._before = ""  # the last character let out: whether a short part after it starts a word

    def feed(self, text: str) -> str:
        """The masked text that is safe to emit now; a possible start of a secret waits."""
        buffer = self._held + text if self._held else text
        if not (self.masker.anywhere or self.masker.words) or not buffer:
            self._held = ""
            return buffer
        cut = len(buffer) - self._partial_tail(buffer)
        spans = self.masker._spans(buffer, self._before, closed=False)
        # A match reaching past the cut could overlap one completed later, so it waits too.
        while spans and spans[-1][1] > cut:
            cut = min(cut, spans.pop()[0])
        self._held = buffer[cut:]
        if cut:
            self._before = buffer[cut - 1]
        return _apply(buffer, spans, cut)

    def flush(self) -> str:
        rest, self._held = self._held, ""
        masked = _apply(rest, self.masker._spans(rest, self._before, closed=True), len(rest))
        if rest:
            self._before = rest[-1]
        return masked

    def _partial_tail(self, buffer: str) -> int:
        """Length of the longest end of `buffer` that may begin a match: a proper start of a
        part, or a short part whole (the next character says whether it is a word)."""
        best = 0
        end = len(buffer)
        for secret in self.masker.anywhere:
            first = secret[0]
            longest = min(len(secret) - 1, end)
            i = buffer.find(first, end - longest)
            while 0 <= i and end - i > best:
                if secret.startswith(buffer[i:]):
                    best = end - i
                    break
                i = buffer.find(first, i + 1)
        for secret in self.masker.words:
            first = secret[0]
            longest = min(len(secret), end)
            i = buffer.find(first, end - longest)
            while 0 <= i and end - i > best:
                if secret.startswith(buffer[i:]) and not _is_word(buffer[i - 1] if i else self._before):
                    best = end - i
                    break
                i = buffer.find(first, i + 1)
        return best
