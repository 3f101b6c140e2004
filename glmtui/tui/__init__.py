"""The Textual app: app.py, its widgets and screens."""

import os

# Textual draws at most TEXTUAL_FPS frames a second (60 by default), and a change that comes
# just after a frame waits 17 to 33 ms for the next. At 120 a streamed reply's first words and
# a key press during a log flood reach the screen about 9 ms sooner; there is no cost when
# nothing changes (no frames are drawn then). textual.constants reads it once, when imported;
# a value the user set wins. Measured in docs/performance.md ("The chat pane on screen").
os.environ.setdefault("TEXTUAL_FPS", "120")
