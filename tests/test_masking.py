"""Secrets shown as *** in whole texts, nested values and streams cut anywhere: long ones wherever they
occur, short ones as whole words, each line of a multi-line one on its own."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from glmtui.masking import MASK, MIN_LENGTH, Masker, parts, short_parts


LONG = "zK9-secret-value"  # MIN_LENGTH or more: hidden wherever it occurs
PEM = """-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj
   MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu

Zm8=
-----END PRIVATE KEY-----
"""


def test_every_occurrence_is_masked() -> None:
    masker = Masker([LONG, "hunter2"])
    assert masker.mask(f"pw=hunter2 key={LONG} again hunter2") == "pw=*** key=*** again ***"
    assert masker.mask("nothing here") == "nothing here"
    assert MASK == "***"


def test_a_long_secret_is_masked_inside_other_text_too() -> None:
    assert Masker([LONG]).mask(f"url?token={LONG}&x=1 id{LONG}id") == "url?token=***&x=1 id***id"


def test_a_short_secret_is_masked_only_as_a_whole_word() -> None:
    x = Masker(["x"])
    assert x.mask("text") == "text"  # not te***t
    assert x.mask("x = 1; x, (x)") == "*** = 1; ***, (***)"
    empty = Masker(["EMPTY"])
    assert empty.mask("EMPTYING NOT_EMPTY EMPTY2 the queue is EMPTY") == "EMPTYING NOT_EMPTY EMPTY2 the queue is ***"
    assert Masker(["1234567"]).mask("pin 1234567, not 12345678 nor a1234567") == "pin ***, not 12345678 nor a1234567"
    assert short_parts("1234567") == ["1234567"] and short_parts("12345678") == [] and MIN_LENGTH == 8


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own() -> None:
    masker = Masker([PEM])
    lines = [line.strip() for line in PEM.splitlines() if line.strip()]
    assert masker.mask(PEM) == "***\n***\n   ***\n\n***\n***\n"  # the spaces around a line are no secret
    for number, line in enumerate(lines, 1):
        assert masker.mask(f"{number}: {line}\n") == f"{number}: ***\n"
    assert masker.mask("Zm8=x Zm8") == "Zm8=x Zm8"  # its short line only as a whole word
    assert masker.mask(PEM.replace("\n", "\r\n")) == "***\r\n***\r\n   ***\r\n\r\n***\r\n***\r\n"
    assert short_parts(PEM) == ["Zm8="]
    assert Masker(["\n \n", ""]).secrets == ()  # blank lines and empty values hide nothing


def test_empty_secrets_are_ignored() -> None:
    assert Masker([]).mask("text") == "text"
    assert Masker([""]).mask("") == ""


def test_longest_secret_wins_and_overlaps_hide_everything() -> None:
    assert Masker(["abcdefgh", "abcdefghijkl"]).mask("xabcdefghijklx") == "x***x"
    # two secrets sharing characters: no part of either shows
    assert Masker(["abcdefgh", "efghijkl"]).mask("xabcdefghijklx") == "x***x"
    assert Masker(["aaaaaaaa"]).mask("aaaaaaaaaaaa") == "***"
    assert Masker(["a-a"]).mask("a-a-a") == "***"
    # touching, not overlapping: masked one by one
    assert Masker(["abcdefgh", "ijklmnop"]).mask("abcdefghijklmnop") == "******"


def test_added_secrets_reach_the_streams_made_before() -> None:
    masker = Masker(["hunter2"])
    stream = masker.stream()
    masker.add(LONG, "")
    assert stream.feed(f"{LONG} hunter2\n") == "*** ***\n"
    assert masker.secrets == (LONG, "hunter2")


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
    stream = Masker(["SECRET-VALUE"]).stream()
    assert stream.feed("plain line\n") == "plain line\n"
    assert stream.feed("ends with S") == "ends with "
    assert stream.feed("omething\n") == "Something\n"
    assert stream.flush() == ""


def test_stream_waits_for_the_character_after_a_short_secret() -> None:
    stream = Masker(["EMPTY"]).stream()
    assert stream.feed("queue EMPTY") == "queue "  # EMPTY, or EMPTYING?
    assert stream.feed("ING\nEMPT") == "EMPTYING\n"
    assert stream.feed("Y") == ""
    assert stream.feed("\n") == "***\n"
    assert stream.feed("NOT_EMPTY") == "NOT_EMPTY"  # after _ it is no word of its own: nothing waits
    assert stream.feed(" EMPTY") == " "
    assert stream.flush() == "***"


def test_stream_remembers_the_character_before_a_chunk() -> None:
    stream = Masker(["x"]).stream()
    assert stream.feed("te") == "te"
    assert stream.feed("x") == "x"  # after "e": inside a word, whatever follows
    assert stream.feed("t x") == "t "
    assert stream.flush() == "***"


def test_stream_flush_masks_the_rest() -> None:
    stream = Masker(["abcdefgh", "bcdefghi"]).stream()
    assert stream.feed("xabcdefg") == "x"
    assert stream.flush() == "abcdefg"
    assert stream.feed("bcdefgh") == ""
    assert stream.feed("i") == "***"
    assert stream.flush() == ""


def test_stream_without_secrets_passes_text_through() -> None:
    stream = Masker([]).stream()
    assert stream.feed("a") == "a"
    assert stream.flush() == ""


def reference_mask(secrets: list[str], text: str) -> str:
    """The rule, spelled out by brute force: every occurrence of a long part, every occurrence of
    a short one with no letter, digit or _ on either side; overlapping occurrences make one ***."""
    def is_word(i: int) -> bool:
        return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")

    found = sorted(
        (i, i + len(part))
        for part in {p for secret in secrets for p in parts(secret)}
        for i in range(len(text))
        if text.startswith(part, i) and (len(part) >= MIN_LENGTH or not (is_word(i - 1) or is_word(i + len(part))))
    )
    merged: list[list[int]] = []
    for start, stop in found:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    out, end = [], 0
    for start, stop in merged:
        out += [text[end:start], MASK]
        end = stop
    return "".join(out) + text[end:]


_ALPHABET = "ab_- \n"
_short = st.text(_ALPHABET, min_size=1, max_size=MIN_LENGTH - 1)
_long = st.text(_ALPHABET, min_size=MIN_LENGTH, max_size=MIN_LENGTH + 3)


@st.composite
def secrets_and_text(draw: st.DrawFn) -> tuple[list[str], str]:
    """Secrets short, long and of several lines, and a text made of their parts, pieces of them and
    other characters, so that they occur in it, whole, cut and overlapping."""
    secrets = draw(st.lists(st.one_of(_short, _long, st.lists(st.one_of(_short, _long), min_size=2, max_size=3)
                                      .map("\n".join)), min_size=1, max_size=4))
    every = [part for secret in secrets for part in parts(secret)] or ["a"]
    pieces = st.one_of(st.sampled_from(every), st.sampled_from(every).flatmap(lambda p: st.sampled_from([p[:len(p) // 2], p[len(p) // 2:]])),
                       st.text(_ALPHABET, max_size=3))
    return secrets, "".join(draw(st.lists(pieces, max_size=12)))


@settings(max_examples=1500, deadline=None)
@given(secrets_and_text(), st.lists(st.integers(0, 120), max_size=10))
def test_stream_matches_whole_text_masking(case: tuple[list[str], str], cuts: list[int]) -> None:
    secrets, text = case
    masker = Masker(secrets)
    stream = masker.stream()
    bounds = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
    out = [stream.feed(text[a:b]) for a, b in zip(bounds, bounds[1:])]
    out.append(stream.flush())
    assert "".join(out) == masker.mask(text)


@settings(max_examples=1000, deadline=None)
@given(secrets_and_text())
def test_masking_follows_the_rule(case: tuple[list[str], str]) -> None:
    secrets, text = case
    masked = Masker(secrets).mask(text)
    assert masked == reference_mask(secrets, text)
    for secret in secrets:
        for part in parts(secret):
            if len(part) >= MIN_LENGTH:
                assert part not in masked


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=10), max_size=3), st.text(max_size=60))
def test_text_without_secrets_is_unchanged(secrets: list[str], text: str) -> None:
    masker = Masker(secrets)
    if not any(part in text for secret in secrets for part in parts(secret)):
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
