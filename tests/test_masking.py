"""Secrets shown as *** in whole texts, nested values and streams cut anywhere."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from glmtui.masking import MASK, Masker


def test_every_occurrence_is_masked() -> None:
    masker = Masker(["hunter2", "s3cr3t"])
    assert masker.mask("pw=hunter2 key=s3cr3t again hunter2") == "pw=*** key=*** again ***"
    assert masker.mask("nothing here") == "nothing here"
    assert MASK == "***"


def test_empty_secrets_are_ignored_and_short_ones_kept() -> None:
    masker = Masker(["", "ab", ""])
    assert masker.mask("cab ab") == "c*** ***"
    assert Masker([]).mask("text") == "text"
    assert Masker([""]).mask("") == ""


def test_longest_secret_wins_and_overlaps_hide_everything() -> None:
    assert Masker(["abc", "abcdef"]).mask("xabcdefx") == "x***x"
    # two secrets sharing characters: no part of either shows
    assert Masker(["abcd", "cdef"]).mask("xabcdefx") == "x***x"
    assert Masker(["aa"]).mask("aaaaa") == "***"
    # touching, not overlapping: masked one by one
    assert Masker(["ab", "cd"]).mask("abcd") == "******"


def test_mask_value_is_deep() -> None:
    masker = Masker(["tok"])
    value = {"a": "tok", "b": ["x tok", 1, None, {"tok": ("tok",)}], "c": 2.5}
    assert masker.mask_value(value) == {"a": "***", "b": ["x ***", 1, None, {"***": ("***",)}], "c": 2.5}
    assert masker.mask_value("tok") == "***"
    assert masker.mask_value(7) == 7


def test_stream_masks_a_secret_split_across_chunks() -> None:
    stream = Masker(["SECRET-VALUE"]).stream()
    out = [stream.feed("line one SEC"), stream.feed("RET-VA"), stream.feed("LUE and more\n"), stream.flush()]
    assert "".join(out) == "line one *** and more\n"
    assert out[0] == "line one "  # the possible start of the secret waits


def test_stream_emits_clean_text_at_once() -> None:
    stream = Masker(["SECRET"]).stream()
    assert stream.feed("plain line\n") == "plain line\n"
    assert stream.feed("ends with S") == "ends with "
    assert stream.feed("omething\n") == "Something\n"
    assert stream.flush() == ""


def test_stream_flush_masks_the_rest() -> None:
    stream = Masker(["abc", "bc"]).stream()
    assert stream.feed("xab") == "x"
    assert stream.flush() == "ab"
    assert stream.feed("b") == ""
    assert stream.feed("c") == "***"
    assert stream.flush() == ""


def test_stream_without_secrets_passes_text_through() -> None:
    stream = Masker([]).stream()
    assert stream.feed("a") == "a"
    assert stream.flush() == ""


_secrets = st.lists(st.text("abc", min_size=1, max_size=5), max_size=4)
_texts = st.text("abcx", max_size=80)


@settings(max_examples=1500, deadline=None)
@given(_secrets, _texts, st.lists(st.integers(0, 80), max_size=10))
def test_stream_matches_whole_text_masking(secrets: list[str], text: str, cuts: list[int]) -> None:
    masker = Masker(secrets)
    stream = masker.stream()
    bounds = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
    out = [stream.feed(text[a:b]) for a, b in zip(bounds, bounds[1:])]
    out.append(stream.flush())
    assert "".join(out) == masker.mask(text)


@settings(max_examples=500, deadline=None)
@given(_secrets, _texts)
def test_no_secret_survives_masking(secrets: list[str], text: str) -> None:
    masked = Masker(secrets).mask(text)
    for secret in secrets:
        assert secret not in masked


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), max_size=3), st.text(max_size=60))
def test_text_without_secrets_is_unchanged(secrets: list[str], text: str) -> None:
    masker = Masker(secrets)
    if not any(s in text for s in secrets):
        assert masker.mask(text) == text


def test_stream_is_fast_on_clean_output() -> None:
    chunk_size = 65536
    data = "2024-01-01T00:00:00 INFO worker 7 handled request id=4242\n" * 2_000_000
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    stream = Masker(["zK9-secret-value-123"]).stream()
    start = time.perf_counter()
    out = [stream.feed(chunk) for chunk in chunks]
    out.append(stream.flush())
    elapsed = time.perf_counter() - start
    assert "".join(out) == data
    assert elapsed < 1.0, elapsed
