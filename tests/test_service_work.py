"""The service layer's running work: numbered events kept for subscribers that come late or come
back (as an SSE client with Last-Event-ID will), live fan-out, approvals answered from outside,
cancel, and execution slots taken in order."""

from __future__ import annotations

import asyncio

import pytest

from glmtui.agent.approval import Policy
from glmtui.errors import BadInput
from glmtui.events import Output, Progress, StepStarted
from glmtui.service.work import ApprovalAnswered, ApprovalAsked, Slots, Work


class Steps(Work):
    """Work that emits `count` events, waiting for `go` after the first `pause_after`."""

    kind = "test"

    def __init__(self, count: int, pause_after: int = 0) -> None:
        super().__init__("w1")
        self.count, self.pause_after = count, pause_after
        self.go = asyncio.Event()

    async def _work(self) -> str:
        for n in range(1, self.count + 1):
            if n == self.pause_after + 1 and self.pause_after:
                await self.go.wait()
            self.emit(Progress(f"event {n}"))
            await asyncio.sleep(0)
        return "done"


async def messages(work: Work, after: int = 0) -> list[tuple[int, str]]:
    return [(seq, event.message) async for seq, event in work.follow(after)]


async def test_followers_get_every_event_numbered_and_can_resume():
    work = Steps(5, pause_after=2).start()
    early = asyncio.create_task(messages(work))
    while work.last_seq < 2:
        await asyncio.sleep(0)
    seen: list[tuple[int, str]] = []
    unsubscribe = work.subscribe(lambda seq, event: seen.append((seq, event.message)), after=1)
    work.go.set()
    assert await work.wait() == "done"
    expected = [(n, f"event {n}") for n in range(1, 6)]
    assert await early == expected
    assert seen == expected[1:], "the kept events after 1, then the live ones"
    assert await messages(work, after=3) == expected[3:], "a follower that comes back continues after its last"
    assert await messages(work, after=5) == []
    unsubscribe()


class Chatty(Work):
    """Work of 30 steps, each announced and printing 9 characters."""

    async def _work(self) -> None:
        for n in range(1, 31):
            self.emit(StepStarted(f"s{n}"))
            self.emit(Output(f"s{n}", "stdout", "x" * 9))


def kept_output(work: Work) -> list[int]:
    """The seqs of the Output events kept, checking that every step start is kept too."""
    kept = work.history()
    assert [seq for seq, _ in kept] == sorted(seq for seq, _ in kept)
    assert [event.step for _, event in kept if isinstance(event, StepStarted)] == [f"s{n}" for n in range(1, 31)]
    return [seq for seq, event in kept if isinstance(event, Output)]


async def test_the_history_drops_the_oldest_output_and_keeps_every_other_event(monkeypatch):
    """However much a run prints, a follower that comes late still sees every step start."""
    from glmtui.service import work as module

    monkeypatch.setattr(module, "HISTORY_TEXT", 100)
    work = Chatty("w3").start()
    await work.wait()
    outputs = kept_output(work)
    assert 9 * len(outputs) <= 100
    assert outputs == list(range(62 - 2 * len(outputs), 61, 2)), "the newest kept, in order"
    dropped = outputs[0] - 2  # the output before the first kept one
    assert work.history(after=dropped)[0][0] == dropped + 1, "a follower continues with the next kept"
    assert await messages_of(work, after=58) == [(59, "s30"), (60, "s30")]


async def test_work_nobody_follows_late_keeps_no_output_but_hands_all_of_it_on():
    """The headless run's service: its renderer, a subscriber, gets everything; nothing is kept."""
    work = Chatty("w5")
    work.kept_output = 0
    seen: list[int] = []
    work.subscribe(lambda seq, event: seen.append(seq))
    await work.start().wait()
    assert seen == list(range(1, 61)) and kept_output(work) == []


async def test_ended_work_keeps_less_of_its_output(monkeypatch):
    from glmtui.service import work as module

    monkeypatch.setattr(module, "ENDED_TEXT", 30)
    work = Chatty("w4").start()
    await work.wait()
    assert kept_output(work) == [56, 58, 60]


async def messages_of(work: Work, after: int) -> list[tuple[int, str]]:
    return [(seq, event.step) async for seq, event in work.follow(after)]


async def test_an_approval_is_asked_as_an_event_and_answered_from_outside():
    policy = Policy("ask")

    class Asking(Work):
        async def _work(self) -> str:
            return await self.ask(policy.request("bash", {"command": "pytest -q tests"}, "fix"))

    work = Asking("w2")
    asked: list[ApprovalAsked] = []
    work.subscribe(lambda seq, event: asked.append(event) if isinstance(event, ApprovalAsked) else None)
    work.start()
    while not asked:
        await asyncio.sleep(0)
    [request] = asked
    assert (request.step, request.tool, request.subject, request.pattern) == ("fix", "bash", "pytest -q tests", "pytest *")
    with pytest.raises(BadInput, match="answer 'maybe' is not one of yes, no, always"):
        work.answer(request.approval_id, "maybe")
    work.answer(request.approval_id, "always")
    assert await work.wait() == "always"
    assert isinstance(work.history()[-1][1], ApprovalAnswered)
    with pytest.raises(BadInput, match="has no open approval"):
        work.answer(request.approval_id, "yes")


async def test_cancel_ends_the_work_and_its_followers():
    work = Steps(3, pause_after=1).start()
    follower = asyncio.create_task(messages(work))
    while work.last_seq < 1:
        await asyncio.sleep(0)
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work.wait()
    assert work.status == "cancelled"
    assert await follower == [(1, "event 1")]


async def test_slots_are_taken_in_the_order_asked():
    slots = Slots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str) -> None:
        async with slots:
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("a"))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(hold(name)) for name in "bcd"]
    await asyncio.sleep(0)
    assert order == ["a"] and slots.waiting == 3
    waiters[1].cancel()  # "c" gives up its place
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, waiters[0], waiters[2])
    assert order == ["a", "b", "d"] and slots.busy == 0 and slots.waiting == 0
