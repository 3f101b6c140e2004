"""An assistant message drawn as Markdown, cheaply enough to redraw at every piece of a stream."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from rich.text import Text
from textual.strip import Strip
from textual.style import Style
from textual.visual import Visual, visualize
from textual.widget import Widget


@cache
def _blank_markdown() -> Any:
    """An empty rich Markdown and a markdown-it parser set up as rich sets up its own: made once,
    where rich makes a parser (and its linkify) per Markdown, a quarter of the time of a redraw."""
    # markdown-it (about 50 ms): imported with the first answer
    from markdown_it import MarkdownIt
    from rich.markdown import Markdown

    return Markdown(""), MarkdownIt().enable("strikethrough").enable("table")


def markdown(text: str) -> Any:
    """rich's Markdown of `text`, parsed by the parser made once."""
    blank, parser = _blank_markdown()
    document = copy.copy(blank)
    document.markup, document.parsed = text, parser.parse(text)
    return document


FIT_AFTER = 0.05  # seconds: the spare line goes this long after the whole text was drawn


class AnswerText(Widget):
    """An assistant message, drawn as Markdown by rich: parsed and drawn in the same call, so the
    text given to `show` is on screen at the next frame. The blocks before the last one are done
    (a streaming reply only adds to its last block or starts a new one): they are drawn once per
    width and kept, and only the last block is drawn again as the text grows."""

    DEFAULT_CSS = "AnswerText { height: auto; }"

    def __init__(self, text: str = "", *, pending: bool = False) -> None:
        super().__init__(classes="chat-answer")
        # Before its first words, a pending answer holds their line with a dim "…": the first
        # words then take its place in a repaint of that line, not a layout of the screen.
        self.pending = pending
        self.text = ""
        self._done = ""  # the text of the blocks that are done
        self._done_lines: list[Strip] = []  # ... drawn at self._width
        self._rule_last = False  # the last block that is done is a rule
        self._lines: list[Strip] = []  # all of it, drawn at self._width, in self._style
        self._width = 0
        self._style: Any = None
        self._height = 0  # given to the layout: the lines, and a spare one while more text comes
        self._more = False
        if text:
            self.show(text)

    def show(self, text: str, *, more: bool = False) -> None:
        """Draw `text`. `more`: it streams, more is coming: the widget keeps a spare line below the
        text, so words that start a line are a repaint of it, not a layout (which redraws the whole
        transcript). Once it is whole, the spare line goes FIT_AFTER later, not in the frame that
        draws the last words."""
        self.text = text
        self._more = more
        if not self._width:
            self.refresh(layout=True)
            return
        self._draw(self._width)
        lines = len(self._lines)
        if lines > self._height:
            self._height = lines + more
            self.refresh(layout=True)
            return
        self.refresh()
        if not more and lines < self._height:
            self.set_timer(FIT_AFTER, self._fit)

    def _fit(self) -> None:
        if not self._more and self._height != len(self._lines):
            self._height = len(self._lines)
            self.refresh(layout=True)

    def _draw(self, width: int) -> None:
        if width != self._width or self.visual_style != self._style or not self.text.startswith(self._done):
            self._width, self._style, self._done, self._done_lines = width, self.visual_style, "", []
        if not self.text and self.pending:
            self._lines = self._render_markdown(Text("…", style="dim"), width)
            return
        tail = self.text[len(self._done):]
        last = markdown(tail)
        starts = [(token.map[0], index) for index, token in enumerate(last.parsed)
                  if token.level == 0 and token.nesting >= 0 and token.map]
        if len(starts) > 1:  # the blocks before the last one are done
            line, index = starts[-1]
            cut = 0
            for _ in range(line):
                cut = tail.index("\n", cut) + 1
            self._done_lines = self._after_done(self._render_markdown(markdown(tail[:cut]), width))
            self._done += tail[:cut]
            self._rule_last = last.parsed[index - 1].type == "hr"
            last = markdown(tail[cut:])
        self._lines = self._after_done(self._render_markdown(last, width))

    def _after_done(self, lines: list[Strip]) -> list[Strip]:
        """`lines` after those of the blocks that are done, with the blank line rich puts between
        two blocks: none after a rule, and some blocks (lists, quotes) start with their own."""
        if self._done_lines and lines and lines[0].text and not self._rule_last:
            return [*self._done_lines, Strip([]), *lines]
        return self._done_lines + lines

    def _render_markdown(self, document: Any, width: int) -> list[Strip]:
        return Visual.to_strips(self, visualize(self, document), width, None, self.visual_style)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        if width and width != self._width:
            self._draw(width)
            self._height = len(self._lines) + self._more
        return self._height

    def render_lines(self, crop: Any) -> list[Strip]:
        if self._width and self.visual_style != self._style:
            self._draw(self._width)  # the colours changed (the theme)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        line = self._lines[y] if y < len(self._lines) else Strip([])
        span = self.text_selection.get_span(y) if self.text_selection is not None else None
        if span is not None:  # the part of the line the mouse selected, in the selection's colours
            start, end = span
            end = line.cell_length if end == -1 else end
            left, middle, right = line.divide([start, end, line.cell_length])
            selected = Style.from_styles(self.screen.get_component_styles("screen--selection")).rich_style
            line = Strip.join([left, middle.apply_style(selected), right])
        return line

    def get_selection(self, selection: Any) -> tuple[str, str] | None:
        return selection.extract("\n".join(line.text for line in self._lines)), "\n"
