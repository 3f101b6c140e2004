"""AnswerText draws a streamed reply block by block; what it shows must be what a one-shot
Markdown render of the same text shows, wherever the stream was cut."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from glmtui.tui.widgets.answer import AnswerText

ROOT = Path(__file__).resolve().parent.parent
REPLY = """# Fixing the test

The failure comes from `parse()`: it **drops** the last field.

1. read the file
2. split it
   - on commas
   - *and* on tabs

> a quote
> over two lines

```python
def parse(line):
    return line.split(",")

# a blank line inside the fence, above
```

---

| file | change |
|---|---|
| parse.py | split on tabs |

Setext heading
--------------

Done: see [the docs](https://example.com/docs) and run `pytest -q`.
"""


class Two(App):
    def compose(self) -> ComposeResult:
        yield AnswerText()
        yield AnswerText()


def shown(widget: AnswerText) -> list[str]:
    return [widget.render_line(y).text for y in range(widget.get_content_height(None, None, 60))]


# The README's first 6,000 characters, up to a blank line: a cut inside a **bold** pair would leave its ** as text
README_START = (ROOT / "README.md").read_text()[:6000].rsplit("\n\n", 1)[0]


@pytest.mark.parametrize("text", [REPLY, README_START], ids=["reply", "readme"])
async def test_a_streamed_reply_looks_like_the_whole_reply(text: str) -> None:
    app = Two()
    async with app.run_test(size=(62, 40)) as pilot:
        streamed, whole = app.query(AnswerText)
        for seed in range(3):
            cuts = sorted(random.Random(seed).sample(range(1, len(text)), 40))
            for cut in [*cuts, len(text)]:
                streamed.show(text[:cut])
                await pilot.pause()
            whole.show(text)
            await pilot.pause()
            assert shown(streamed) == shown(whole)
            assert "**" not in "\n".join(shown(whole)) and "parse()" in "\n".join(shown(whole))
            streamed.show("")  # the next round starts a new reply in the same widget


async def test_a_reply_is_drawn_as_rich_draws_its_markdown() -> None:
    """AnswerText parses with one markdown-it parser it makes once: what it draws must be what
    rich's own Markdown (a parser per document) draws."""
    from rich.console import Console
    from rich.markdown import Markdown

    app = Two()
    async with app.run_test(size=(62, 40)) as pilot:
        widget = app.query(AnswerText).first()
        widget.show(REPLY)
        await pilot.pause()
        console = Console(width=60, color_system=None)
        expected = ["".join(segment.text for segment in line).rstrip()
                    for line in console.render_lines(Markdown(REPLY), console.options)]
        assert [line.rstrip() for line in shown(widget)] == expected
        assert any(line.startswith("┃ a quote") or "a quote" in line for line in expected)
