"""The log pane's widget, through a Pilot: what the user sees, after what the user does."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.message import Message

from glmtui.tui.widgets.log_view import FRAME_INTERVAL, WRAP_MAX_ROWS, LogView

SIZE = (80, 24)  # the view: 78 x 22 inside its border, 77 columns beside the scrollbar
CLOCK = re.compile(r"^\d\d:\d\d:\d\d\.\d\d\d ")


class LogApp(App[None]):
    def __init__(self, max_lines: int = 50_000) -> None:
        super().__init__()
        self.max_lines = max_lines
        self.messages: list[Message] = []

    def compose(self) -> ComposeResult:
        yield LogView(max_lines=self.max_lines, id="log")

    def on_mount(self) -> None:
        self.query_one(LogView).focus()

    def on_log_view_follow_changed(self, message: LogView.FollowChanged) -> None:
        self.messages.append(message)

    def on_log_view_saved(self, message: LogView.Saved) -> None:
        self.messages.append(message)


async def frame(pilot) -> None:
    """Let the view's batched update run (it redraws at a frame rate, not per write)."""
    await pilot.pause(FRAME_INTERVAL * 2.5)


def rows(view: LogView) -> list[str]:
    """The text of every row the view shows now, as a user sees it."""
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


def numbered(count: int, start: int = 0) -> list[str]:
    return [f"line {i}" for i in range(start, start + count)]


@pytest.fixture
def app() -> LogApp:
    return LogApp()


async def test_writes_appear_at_the_bottom_while_following(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(100))
        assert view.virtual_size.height == 0, "a write only marks the view dirty; the frame does the rest"
        await frame(pilot)
        shown = rows(view)
        assert shown[-1] == "line 99"
        assert shown[0] == f"line {100 - len(shown)}"
        assert view.following
        assert view.line_count == 100
        assert "following" in view.border_subtitle and "100 lines" in view.border_subtitle

        view.write_lines(numbered(5, 100))
        await frame(pilot)
        assert rows(view)[-1] == "line 104"


async def test_scrolling_up_stops_following_and_end_follows_again(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(200))
        await frame(pilot)
        await pilot.press("pageup")
        await frame(pilot)
        assert not view.following
        assert "paused" in view.border_subtitle
        before = rows(view)
        assert before[-1] != "line 199"

        view.write_lines(numbered(300, 200))
        await frame(pilot)
        assert rows(view) == before, "new lines must not move the view while the user reads"
        assert view.line_count == 500

        await pilot.press("end")
        await frame(pilot)
        assert view.following
        assert rows(view)[-1] == "line 499"
        view.write_lines(["line 500"])
        await frame(pilot)
        assert rows(view)[-1] == "line 500"
        assert [m.following for m in app.messages if isinstance(m, LogView.FollowChanged)] == [False, True]


async def test_up_and_home_stop_following_and_f_follows(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(200))
        await frame(pilot)
        await pilot.press("up")
        await frame(pilot)
        assert not view.following
        await pilot.press("f")
        await frame(pilot)
        assert view.following and rows(view)[-1] == "line 199"
        await pilot.press("home")
        await frame(pilot)
        assert not view.following
        assert rows(view)[0] == "line 0"
        view.write_lines(numbered(10, 200))
        await frame(pilot)
        assert rows(view)[0] == "line 0"


async def test_search_highlights_matches_and_n_N_move_between_them(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines([f"line {i} ERROR {i // 50}" if i % 50 == 7 else f"line {i}" for i in range(1000)])
        await frame(pilot)
        await pilot.press("slash", *"error", "enter")
        await frame(pilot)
        # At the tail no match is on screen or below it: the search wraps to the first, line 7.
        assert "match 1/20" in view.border_subtitle
        assert not view.following, "jumping to a match stops following"
        assert "line 7 ERROR 0" in rows(view)

        await pilot.press("N")  # wraps back to the last
        assert "match 20/20" in view.border_subtitle
        assert "line 957 ERROR 19" in rows(view)
        for _ in range(11):
            await pilot.press("N")
        assert "match 9/20" in view.border_subtitle
        assert "line 407 ERROR 8" in rows(view), "the match is brought on screen"
        assert "line 957 ERROR 19" not in rows(view)
        await pilot.press("n")
        assert "match 10/20" in view.border_subtitle
        assert "line 457 ERROR 9" in rows(view)

        # The matched text is drawn in another style than the rest of the line.
        y = rows(view).index("line 457 ERROR 9")
        segments = list(view.render_line(y))
        match = [segment for segment in segments if segment.text == "ERROR"]
        plain = [segment for segment in segments if segment.text.startswith("line 457")]
        assert match and plain and match[0].style.bgcolor != plain[0].style.bgcolor

        await pilot.press("escape")
        assert "match" not in view.border_subtitle
        segments = list(view.render_line(y))
        assert not [segment for segment in segments if segment.text == "ERROR"]


async def test_a_search_starts_at_the_first_match_from_the_top_of_the_view_down(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines([f"line {i} ERROR {i // 50}" if i % 50 == 7 else f"line {i}" for i in range(1000)])
        await frame(pilot)
        view.scroll_to(y=410, animate=False)  # lines 410 to 431 on screen: 407 above, 457 below
        await frame(pilot)
        assert rows(view)[0] == "line 410"
        await pilot.press("slash", *"error", "enter")
        await frame(pilot)
        assert "match 10/20" in view.border_subtitle and "line 457 ERROR 9" in rows(view)


async def test_search_prompt_takes_every_key_and_escape_cancels(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(100))
        await frame(pilot)
        await pilot.press("slash", *"tfwn")
        assert rows(view)[-1].startswith("/tfwn"), "letters bound to actions are typed into the query"
        assert not view._timestamps and not view._wrap
        await pilot.press("escape")
        assert "match" not in view.border_subtitle
        assert rows(view)[-1] == "line 99"


async def test_filter_shows_only_matching_lines(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines([f"line {i} warn" if i % 10 == 3 else f"line {i}" for i in range(500)])
        await frame(pilot)
        await pilot.press("slash", *"WARN", "enter", "F")
        await frame(pilot)
        shown = [row for row in rows(view) if row]
        assert shown and all(row.endswith(" warn") for row in shown)
        assert "filter" in view.border_subtitle

        view.write_lines(["line 500", "line 501 warn"])
        await pilot.press("end")
        await frame(pilot)
        shown = [row for row in rows(view) if row]
        assert shown[-1] == "line 501 warn" and all(row.endswith(" warn") for row in shown)

        await pilot.press("F")
        await frame(pilot)
        assert "filter" not in view.border_subtitle
        assert rows(view)[-1] == "line 501 warn" and rows(view)[-2] == "line 500"


async def test_filter_without_a_query_asks_for_one(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["alpha", "beta", "alphabet"])
        await frame(pilot)
        await pilot.press("F", *"alpha", "enter")
        await frame(pilot)
        assert [row for row in rows(view) if row] == ["alpha", "alphabet"]


async def test_t_shows_arrival_times(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        arrived = datetime(2024, 5, 6, 7, 8, 9, 123000).timestamp()
        view.write_lines(["first", "second"], timestamp=arrived)
        view.write_lines(["now"])
        await frame(pilot)
        await pilot.press("t")
        shown = [row for row in rows(view) if row]
        assert shown[:2] == ["07:08:09.123 first", "07:08:09.123 second"]
        assert CLOCK.match(shown[2]) and shown[2].endswith(" now")
        await pilot.press("t")
        assert [row for row in rows(view) if row] == ["first", "second", "now"]


async def test_w_wraps_a_long_line(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        long = "".join(f"{i:03d}," for i in range(75))  # 300 characters
        view.write_lines(["before", long, "after"])
        await frame(pilot)
        assert [row for row in rows(view) if row][1] == long[: view.scrollable_content_region.width]
        await pilot.press("w")
        await frame(pilot)
        shown = [row for row in rows(view) if row]
        width = view.scrollable_content_region.width
        expected = -(-len(long) // width)
        assert len(shown) == 2 + expected
        assert shown[0] == "before" and shown[-1] == "after"
        assert "".join(shown[1:-1]) == long
        assert "wrap" in view.border_subtitle
        await pilot.press("w")
        await frame(pilot)
        assert [row for row in rows(view) if row] == ["before", long[:width], "after"]


async def test_wrap_caps_the_rows_of_a_huge_line_and_says_so(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["x" * 1_000_000 + "END", "tail"])
        await pilot.press("w")
        await frame(pilot)
        assert view.virtual_size.height == WRAP_MAX_ROWS + 1
        shown = rows(view)
        assert shown[-1] == "tail"
        assert "chars" in shown[-2] and "…" in shown[-2]


async def test_huge_lines_binary_and_escapes_render_safely(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        binary = bytes(range(256)).decode("utf-8", errors="replace")
        view.write_lines(["a" * 1_048_576 + "END", binary, "\x00\x1b[31mred\x1b[0m\x07 bell", "tab\there\x7f"])
        await frame(pilot)
        shown = [row for row in rows(view) if row]
        assert len(shown) == 4
        assert shown[0] == "a" * view.scrollable_content_region.width
        for row in shown:
            assert not [c for c in row if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0], repr(row)
        assert shown[2] == "␀␛[31mred␛[0m␇ bell"
        assert shown[3] == "tab     here␡"
        # Every strip of the screen, as the terminal gets it: no raw escape from the log.
        for y in range(view.size.height):
            assert "\x1b" not in view.render_line(y).text
        # Scrolled far to the right of the 1 MB line: the part there, no more.
        view.scroll_to(x=view.max_scroll_x, animate=False)
        await frame(pilot)
        assert rows(view)[0] == "a" * (view.scrollable_content_region.width - 3) + "END"


async def test_carriage_returns_show_the_last_frame(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["10%\r50%\r100%\r", "downloading  1%\rdownloading 99%", "crlf line\r\n", "done"])
        await frame(pilot)
        assert [row for row in rows(view) if row] == ["100%", "downloading 99%", "crlf line", "done"]


async def test_max_lines_bounds_the_window_not_the_count() -> None:
    app = LogApp(max_lines=10_000)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        for start in range(0, 200_000, 1000):
            view.write_lines(numbered(1000, start))
        await frame(pilot)
        assert len(view._lines) == 10_000
        assert view.line_count == 200_000
        assert "200,000 lines" in view.border_subtitle
        assert rows(view)[-1] == "line 199999"
        assert view.virtual_size.height == 10_000
        await pilot.press("home")
        await frame(pilot)
        assert rows(view)[0] == "line 190000"
        # Scrolled up, lines that leave the window do not shift what the user reads
        # (until the lines on screen themselves leave).
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown", "pagedown")
        await frame(pilot)
        before = rows(view)
        assert before[0] == f"line {190000 + 5 * len(before)}"
        view.write_lines(numbered(50, 200_000))
        await frame(pilot)
        assert rows(view) == before
        assert view.scroll_y == 5 * len(before) - 50


async def test_ctrl_s_saves_the_lines_in_memory(app: LogApp, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.show_source("build step", None)
        view.write_lines(numbered(100))
        view.write_lines(["oops"], stream="stderr")
        await frame(pilot)
        await save(pilot, app)
        saved = [m for m in app.messages if isinstance(m, LogView.Saved)]
        assert len(saved) == 1
        path = saved[0].path
        assert path.parent == tmp_path
        assert re.fullmatch(r"glmtui-log-build-step-\d{8}-\d{6}\.log", path.name)
        assert path.read_text().splitlines() == numbered(100) + ["oops"]
        assert [n.message for n in app._notifications][-1] == f"Saved to {path}"


async def test_ctrl_s_copies_the_whole_log_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    log_file = tmp_path / "step.log"
    everything = numbered(5000)
    log_file.write_text("\n".join(everything) + "\n")
    app = LogApp(max_lines=100)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.show_source("test", log_file)
        assert view.border_title == "test"
        view.write_lines(everything)
        await frame(pilot)
        await save(pilot, app)
        [saved] = [m for m in app.messages if isinstance(m, LogView.Saved)]
        assert saved.path.read_text().splitlines() == everything


async def save(pilot, app: LogApp, path: Path | None = None) -> str:
    """ctrl+s, then enter on the path offered (or `path` typed instead): the path offered."""
    from textual.widgets import Input

    from glmtui.tui.screens.save_log import SaveLog

    await pilot.press("ctrl+s")
    for _ in range(40):
        if isinstance(app.screen, SaveLog):
            break
        await pilot.pause(0.05)
    field = app.screen.query_one(Input)
    offered = field.value
    if path is not None:
        field.value = str(path)
    await pilot.press("enter")
    for _ in range(40):
        if [m for m in app.messages if isinstance(m, LogView.Saved)]:
            break
        await pilot.pause(0.05)
    return offered


async def test_ctrl_s_offers_the_save_folder_says_the_path_and_writes_the_times_shown(tmp_path: Path) -> None:
    """The app sets `save_folder` (the data folder's logs/); with `t` on, each line is saved with
    the time the view shows for it (the log file's recorded times when there is one)."""
    from glmtui.steplog import StepLog, tail

    log_file = tmp_path / "step.log"
    with StepLog.open(log_file, 1 << 20) as log:
        log.write(b"from the file\n")
    app = LogApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.save_folder = tmp_path / "data" / "logs"
        view.show_source("memory", None)
        view.write_lines(["first", "second"], timestamp=datetime(2025, 1, 2, 3, 4, 5, 678000).timestamp())
        await pilot.press("t")
        offered = await save(pilot, app)
        assert Path(offered).parent == tmp_path / "data" / "logs"
        [saved] = [m for m in app.messages if isinstance(m, LogView.Saved)]
        assert saved.path == Path(offered) and saved.path.read_text().splitlines() == [
            "03:04:05.678 first", "03:04:05.678 second"]
        assert [n.message for n in app._notifications][-1] == f"Saved to {saved.path} with the times shown"
        app.messages.clear()
        view.show_source("step", log_file)
        [(written, line)] = tail(log_file, 10)  # as the plan pane opens a recorded step
        view.write_lines([line], timestamp=written)
        await save(pilot, app, tmp_path / "step-copy.log")
        [line] = (tmp_path / "step-copy.log").read_text().splitlines()
        assert CLOCK.match(line) and line.endswith(" from the file")
        assert line == view._display_line(0)  # what the view shows for it


async def test_y_copies_the_last_line_or_the_current_match(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(50) + ["the last one"])
        await frame(pilot)
        await pilot.press("y")
        assert app.clipboard == "the last one"
        assert app._notifications and [n.message for n in app._notifications][-1] == "Copied line 51: the last one"
        await pilot.press("slash", *"line 7", "enter", "y")
        assert app.clipboard == "line 7"
        assert [n.message for n in app._notifications][-1] == "Copied line 8: line 7"


async def test_mouse_selection_is_copied(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["alpha beta gamma", "delta epsilon", "zeta eta theta"])
        await frame(pilot)
        top = rows(view).index("alpha beta gamma")
        await pilot.mouse_down(view, offset=(1 + 6, 1 + top))  # inside the border: "beta"
        await pilot.hover(view, offset=(1 + 3, 1 + top + 2))  # up to "zet"
        await pilot.mouse_up(view, offset=(1 + 3, 1 + top + 2))
        await pilot.pause()
        assert view.text_selection is not None
        await pilot.press("y")
        assert app.clipboard == "beta gamma\ndelta epsilon\nzeta"
        assert [n.message for n in app._notifications][-1] == "Copied lines 1–3 (3 lines)"
        # Textual's own copy (ctrl+c) gets the same text from the widget.
        assert app.screen.get_selected_text() == "beta gamma\ndelta epsilon\nzeta"


async def test_stderr_lines_are_styled_apart(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["out"])
        view.write_lines(["err"], stream="stderr")
        await frame(pilot)
        shown = rows(view)
        out = list(view.render_line(shown.index("out")))[0].style
        err = list(view.render_line(shown.index("err")))[0].style
        assert out.color != err.color


async def test_show_source_clears_and_titles(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(100))
        await pilot.press("up")
        await frame(pilot)
        view.show_source("env scratch", None)
        await frame(pilot)
        assert view.line_count == 0
        assert view.following
        assert view.border_title == "env scratch"
        assert not [row for row in rows(view) if row]
        view.write_lines(["fresh"])
        await frame(pilot)
        assert [row for row in rows(view) if row] == ["fresh"]


async def test_mouse_wheel_up_stops_following(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(200))
        await frame(pilot)
        # Pilot has no wheel helper; this is the path the driver's wheel events take.
        await pilot._post_mouse_events([events.MouseScrollUp], view, offset=(5, 5))
        await frame(pilot)
        assert not view.following
        before = rows(view)
        view.write_lines(numbered(10, 200))
        await frame(pilot)
        assert rows(view) == before


async def test_escape_goes_on_to_the_app_when_there_is_no_search() -> None:
    class EscapeApp(LogApp):
        BINDINGS = [("escape", "escaped", "Back")]
        escaped = 0

        def action_escaped(self) -> None:
            self.escaped += 1

    app = EscapeApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["one", "two"])
        await pilot.press("slash", "o", "enter")
        await pilot.press("escape")
        assert app.escaped == 0, "the first escape clears the search"
        await pilot.press("escape")
        assert app.escaped == 1


async def test_matches_are_counted_as_lines_arrive(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["boom", "fine"])
        await pilot.press("slash", *"boom", "enter", "end")
        await frame(pilot)
        assert view.border_subtitle.startswith("match 1/1 · following")
        view.write_lines(["boom again", "fine", "BOOM"])
        await frame(pilot)
        assert view.border_subtitle.startswith("match 1/3 · following")
        assert view.following
        await pilot.press("n", "n")
        assert view.border_subtitle.startswith("match 3/3 · paused")
        assert "BOOM" in rows(view)


async def test_wrap_follows_the_width_and_works_with_the_filter(app: LogApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(["short", "key " + "k" * 196, "other " + "o" * 194, "key short"])
        await pilot.press("w")
        await frame(pilot)
        width = view.scrollable_content_region.width
        assert len([row for row in rows(view) if row]) == 2 + 2 * -(-200 // width)

        await pilot.resize_terminal(60, 24)
        await frame(pilot)
        narrow = view.scrollable_content_region.width
        assert narrow < width
        shown = [row for row in rows(view) if row]
        assert len(shown) == 2 + 2 * -(-200 // narrow)
        assert all(len(row) <= narrow for row in shown)

        await pilot.press("slash", *"key", "enter", "F")
        await frame(pilot)
        shown = [row for row in rows(view) if row]
        assert "".join(shown[:-1]) == "key " + "k" * 196 and shown[-1] == "key short"


async def test_an_idle_view_sleeps_and_new_lines_or_a_resize_wake_it(
    app: LogApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No frames while nothing changes (an idle TUI costs no wake-ups); a write or a new width
    is on screen at the next frame as before."""
    ticks: list[int] = []
    tick = LogView._tick

    def counted(self: LogView) -> None:
        ticks.append(1)
        tick(self)

    monkeypatch.setattr(LogView, "_tick", counted)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.write_lines(numbered(100))
        await frame(pilot)
        await frame(pilot)
        settled = len(ticks)
        await pilot.pause(10 * FRAME_INTERVAL)
        assert len(ticks) == settled, "no frames while nothing changes"

        view.write_lines(["one more"])
        await frame(pilot)
        assert rows(view)[-1] == "one more"
        assert len(ticks) > settled

        await pilot.press("w")
        view.write_lines(["long " + "x" * 195])
        await frame(pilot)
        await frame(pilot)
        settled = len(ticks)
        await pilot.pause(10 * FRAME_INTERVAL)
        assert len(ticks) == settled
        await pilot.resize_terminal(60, 24)
        await frame(pilot)
        narrow = view.scrollable_content_region.width
        wrapped = -(-200 // narrow)  # rows of the 200-character line at the new width
        shown = [row for row in rows(view) if row]
        assert "".join(shown[-wrapped:]) == "long " + "x" * 195
        assert all(len(row) <= narrow for row in shown)
