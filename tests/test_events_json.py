"""`--json` output events: written without splitting the text into lines, read back the same."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from glmtui.events import Output
from glmtui.headless import JsonRenderer

# Newlines, backslashes, quotes, control and non-ASCII characters, most often side by side.
TEXTS = st.text(alphabet=st.sampled_from(list('\n\\"nr\t\r\x00\x1fé\u2028😀 a')) | st.characters(), max_size=60)


@settings(max_examples=500, deadline=None)
@given(text=TEXTS, step=st.text(min_size=1, max_size=8))
def test_an_output_event_reads_back_as_its_lines(text: str, step: str) -> None:
    event = Output(step=step, stream="stderr", text=text)
    assert json.loads(event.json_line()) == {
        "event": "output", "ts": event.ts, "step": step, "stream": "stderr", "lines": text.split("\n"),
    }


def test_the_renderer_writes_one_object_per_line() -> None:
    out = io.StringIO()
    renderer = JsonRenderer(out)
    renderer(Output(step="a", stream="stdout", text='1\n"2"\n\\3\\n'))
    renderer(Output(step="b", stream="stdout", text=""))
    renderer.close()
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["lines"] for o in objects] == [["1", '"2"', "\\3\\n"], [""]]
