"""Secrets shown as *** in every sink: terminal, TUI, logs, records, events.

Every character covered by an occurrence of any secret is hidden, and each run
of overlapping occurrences becomes one MASK, so no part of a secret shows even
where two secrets overlap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "***"


class Masker:
    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret that holds a shorter one is tried whole first
        self.secrets: tuple[str, ...] = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def mask(self, text: str) -> str:
        spans = self._spans(text)
        if not spans:
            return text
        out: list[str] = []
        end = 0
        for start, stop in spans:
            out.append(text[end:start])
            out.append(MASK)
            end = stop
        out.append(text[end:])
        return "".join(out)

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

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Merged (start, stop) of every occurrence of every secret, in order."""
        found: list[tuple[int, int]] = []
        for secret in self.secrets:
            i = text.find(secret)
            while i >= 0:
                found.append((i, i + len(secret)))
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


class StreamMasker:
    """Masks text that arrives in chunks, where a secret may be split between two."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self._held = ""

    def feed(self, text: str) -> str:
        """The masked text that is safe to emit now; a possible start of a secret waits."""
        buffer = self._held + text if self._held else text
        secrets = self.masker.secrets
        if not secrets:
            return buffer
        cut = len(buffer) - self._partial_tail(buffer)
        spans = self.masker._spans(buffer)
        # A match reaching past the cut could overlap one completed later, so it waits too.
        for start, stop in reversed(spans):
            if stop <= cut:
                break
            cut = min(cut, start)
        if cut == len(buffer):
            self._held = ""
            return self.masker.mask(buffer) if spans else buffer
        self._held = buffer[cut:]
        head = buffer[:cut]
        return self.masker.mask(head) if spans else head

    def flush(self) -> str:
        rest, self._held = self._held, ""
        return self.masker.mask(rest)

    def _partial_tail(self, buffer: str) -> int:
        """Length of the longest end of `buffer` that is a proper start of a secret."""
        best = 0
        for secret in self.masker.secrets:
            first = secret[0]
            longest = min(len(secret) - 1, len(buffer))
            i = buffer.find(first, len(buffer) - longest)
            while 0 <= i and len(buffer) - i > best:
                if secret.startswith(buffer[i:]):
                    best = len(buffer) - i
                    break
                i = buffer.find(first, i + 1)
        return best
