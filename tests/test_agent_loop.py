"""The agent loop: a scripted model (real HTTP) drives the real tools in a real container."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from glmtui.agent.approval import ApprovalRequest, Policy, Rule
from glmtui.agent.client import ModelClient, ModelError, Usage
from glmtui.agent.loop import Agent, system_prompt
from glmtui.agent.providers import Provider
from glmtui.agent.session import ChatSession
from glmtui.agent.tools import Toolbox
from glmtui.config import Config
from glmtui.conversations import Conversations
from glmtui.docker.spec import EnvSpec
from glmtui.events import Event, Token, ToolCall, ToolResult
from glmtui.events import Usage as UsageEvent
from glmtui.store import Store
import helpers
from helpers import processes, ps_has, unique_name
from model_server import ModelServer, drip, error, text, tool_calls

pytestmark = pytest.mark.docker  # every test's agent works in a real environment

KEY = "sk-test-SECRET123"
KEY_ENV = "GLMTUI_TEST_KEY"
CANCELLED = "cancelled by the user before it finished"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def environment(engine: Any, busybox_image: str) -> AsyncIterator[str]:
    """One throw-away busybox environment for the module (make_env is per test), removed at the end."""
    name = unique_name()
    await engine.create_environment(EnvSpec(name=name, image=busybox_image))
    yield name
    await engine.remove_environment(name, volume=True)


@pytest.fixture
def folder() -> str:
    """A folder of the container no other test uses (not created: write_file makes it)."""
    return f"/tmp/work-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def client(model_server: ModelServer) -> AsyncIterator[ModelClient]:
    provider = Provider(name="test", base_url=model_server.base_url, model="glm-test", api_key_env=KEY_ENV)
    made = ModelClient(provider, api_key=KEY)

    async def no_pause(seconds: float) -> None:
        raise AssertionError(f"a retry was not expected (it would wait {seconds}s)")

    made.sleep = no_pause
    yield made
    await made.close()


@pytest.fixture
def toolbox(engine: Any, environment: str) -> Toolbox:
    return Toolbox(engine, environment)


def make_agent(client: ModelClient, toolbox: Toolbox, events: list[Event], environment: str, *,
               policy: Policy | None = None, **options: Any) -> Agent:
    system = system_prompt(toolbox, environment=environment, image="glmtui/busybox:latest", workdir="/workspace")
    return Agent(client, toolbox, system=system, policy=policy or Policy("auto"), sink=events.append, **options)


class Approver:
    """Answers approval requests from a script and remembers what it was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> str:
        self.asked.append(request)
        return self.answers.pop(0)


def of(events: list[Event], kind: type[Event]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def results_by_call(events: list[Event]) -> dict[str, tuple[str, str]]:
    """call id -> (status, output) of the ToolResult events."""
    return {event.call_id: (event.status, event.output) for event in of(events, ToolResult)}


def tool_answers(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(message["tool_call_id"], message["content"]) for message in messages if message["role"] == "tool"]


def sent(server: ModelServer, index: int) -> list[dict[str, Any]]:
    """The messages of the index-th request the model got."""
    return server.requests[index].body["messages"]


def assert_every_call_answered(messages: list[dict[str, Any]]) -> None:
    """A conversation the model accepts: each assistant tool call is answered by a tool message after it."""
    for position, message in enumerate(messages):
        for call in message.get("tool_calls") or []:
            later = [m.get("tool_call_id") for m in messages[position + 1:] if m["role"] == "tool"]
            assert call["id"] in later, f"tool call {call['id']} has no answer"


async def exists(engine: Any, environment: str, path: str) -> bool:
    return (await engine.exec(environment, ["test", "-e", path])).exit_code == 0


async def file_text(engine: Any, environment: str, path: str) -> str:
    return (await engine.read_file(environment, path)).decode()


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for `condition` (run in a thread: it may call the docker CLI) to hold."""
    await helpers.until(lambda: asyncio.to_thread(condition), seconds, what=str(condition))


# --------------------------------------------------------------------------- a whole task


async def test_a_task_of_four_turns_changes_the_container_and_reports_everything(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, engine: Any, environment: str, folder: str,
) -> None:
    notes = f"{folder}/notes.txt"
    model_server.script(
        tool_calls([("call_write", "write_file", {"path": notes, "content": "status: draft\nowner: nobody\n"})],
                   usage=(100, 10)),
        tool_calls([("call_cat", "bash", {"command": f"cat {notes}"})], content="Let me check it.", usage=(150, 12)),
        tool_calls([("call_edit", "edit_file", {"path": notes, "old_text": "status: draft", "new_text": "status: done"})],
                   usage=(200, 15)),
        text("The notes are marked done.", reasoning="The edit went through.", usage=(260, 8)),
    )
    events: list[Event] = []
    agent = make_agent(client, toolbox, events, environment)

    result = await agent.send("Create the notes, check them, then mark them done.")

    assert await file_text(engine, environment, notes) == "status: done\nowner: nobody\n"
    assert (result.turns, result.finished, result.text) == (4, True, "The notes are marked done.")
    assert result.usage == Usage(710, 45)
    # each tool's answer went to the model in the next request, right after the call it answers
    assert len(model_server.requests) == 4
    assert sent(model_server, 0)[0]["role"] == "system" and environment in sent(model_server, 0)[0]["content"]
    assert sent(model_server, 0)[-1] == {"role": "user", "content": "Create the notes, check them, then mark them done."}
    for index, call_id in enumerate(["call_write", "call_cat", "call_edit"], start=1):
        *_, asked, answered = sent(model_server, index)
        assert [call["id"] for call in asked["tool_calls"]] == [call_id]
        assert (answered["role"], answered["tool_call_id"]) == ("tool", call_id)
    assert tool_answers(sent(model_server, 1))[0][1].startswith(f"wrote 28 bytes (2 lines) to {notes}")
    assert "status: draft\nowner: nobody" in tool_answers(sent(model_server, 2))[1][1]
    assert "exit code 0" in tool_answers(sent(model_server, 2))[1][1]
    assert f"edited {notes}" in tool_answers(sent(model_server, 3))[2][1]
    assert "status: done" in tool_answers(sent(model_server, 3))[2][1]
    # what the user was shown
    calls, results = of(events, ToolCall), of(events, ToolResult)
    assert [(c.call_id, c.tool) for c in calls] == [("call_write", "write_file"), ("call_cat", "bash"),
                                                    ("call_edit", "edit_file")]
    assert calls[1].arguments == {"command": f"cat {notes}"}
    assert [(r.call_id, r.tool, r.status) for r in results] == [("call_write", "write_file", "ok"),
                                                                ("call_cat", "bash", "ok"),
                                                                ("call_edit", "edit_file", "ok")]
    assert results[1].exit_code == 0
    for call, answer in zip(calls, results):
        assert events.index(call) < events.index(answer)
    shown = "".join(t.text for t in of(events, Token) if t.channel == "text")
    assert shown == "Let me check it.The notes are marked done."
    assert "".join(t.text for t in of(events, Token) if t.channel == "reasoning") == "The edit went through."
    assert [(u.input_tokens, u.output_tokens, u.total_input_tokens, u.total_output_tokens)
            for u in of(events, UsageEvent)] == [(100, 10, 100, 10), (150, 12, 250, 22), (200, 15, 450, 37),
                                                 (260, 8, 710, 45)]


async def test_parallel_calls_both_run_and_are_answered_in_order(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, engine: Any, environment: str, folder: str,
) -> None:
    model_server.script(
        tool_calls([
            ("call_a", "bash", {"command": f"mkdir -p {folder}/a && echo alpha > {folder}/a/first.txt && echo made"}),
            ("call_b", "write_file", {"path": f"{folder}/b/second.txt", "content": "beta\n"}),
        ]),
        text("Both files are there."),
    )
    events: list[Event] = []

    result = await make_agent(client, toolbox, events, environment).send("Make two files at once.")

    assert await file_text(engine, environment, f"{folder}/a/first.txt") == "alpha\n"
    assert await file_text(engine, environment, f"{folder}/b/second.txt") == "beta\n"
    answers = tool_answers(sent(model_server, 1))
    assert [call_id for call_id, _ in answers] == ["call_a", "call_b"]
    assert answers[0][1].startswith("made\n") and "exit code 0" in answers[0][1]
    assert answers[1][1].startswith(f"wrote 5 bytes (1 line) to {folder}/b/second.txt")
    assert {call_id: status for call_id, (status, _) in results_by_call(events).items()} == {"call_a": "ok",
                                                                                            "call_b": "ok"}
    assert result.turns == 2


async def test_a_command_aimed_at_a_host_path_stays_in_the_container(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, engine: Any, environment: str,
) -> None:
    target = f"/tmp/glmtui-host-{uuid.uuid4().hex}"
    model_server.script(tool_calls([("call_x", "bash", {"command": f"echo x > {target}"})]), text("Written."))

    await make_agent(client, toolbox, [], environment).send(f"Write x to {target} on my machine.")

    assert not Path(target).exists()
    assert await file_text(engine, environment, target) == "x\n"


# --------------------------------------------------------------------------- approvals


async def test_deny_refuses_changes_but_reads_run(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, engine: Any, environment: str, folder: str,
) -> None:
    await engine.write_file(environment, f"{folder}/readme.txt", b"read me\n")
    model_server.script(
        tool_calls([
            ("call_bash", "bash", {"command": f"touch {folder}/by-bash"}),
            ("call_write", "write_file", {"path": f"{folder}/by-write", "content": "no"}),
            ("call_read", "read_file", {"path": f"{folder}/readme.txt"}),
        ]),
        text("I was not allowed to change anything."),
    )
    events: list[Event] = []

    await make_agent(client, toolbox, events, environment, policy=Policy("deny")).send("Change things.")

    results = results_by_call(events)
    assert [results[call][0] for call in ("call_bash", "call_write", "call_read")] == ["denied", "denied", "ok"]
    assert "read me" in results["call_read"][1]
    assert not await exists(engine, environment, f"{folder}/by-bash")
    assert not await exists(engine, environment, f"{folder}/by-write")
    answers = dict(tool_answers(sent(model_server, 1)))
    assert answers["call_bash"].startswith("refused") and answers["call_write"].startswith("refused")


async def test_ask_runs_only_what_the_user_says_yes_to(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, engine: Any, environment: str, folder: str,
) -> None:
    model_server.script(
        tool_calls([("call_no", "bash", {"command": f"mkdir -p {folder} && touch {folder}/refused"})]),
        tool_calls([("call_yes", "write_file", {"path": f"{folder}/allowed", "content": "ok\n"})]),
        text("Done what I was allowed to."),
    )
    events: list[Event] = []
    approver = Approver("no", "yes")

    await make_agent(client, toolbox, events, environment, policy=Policy("ask"), approver=approver).send("Go.")

    assert [(r.tool, r.subject) for r in approver.asked] == [
        ("bash", f"mkdir -p {folder} && touch {folder}/refused"), ("write_file", f"{folder}/allowed")]
    assert not await exists(engine, environment, f"{folder}/refused")
    assert await file_text(engine, environment, f"{folder}/allowed") == "ok\n"
    results = results_by_call(events)
    assert (results["call_no"][0], results["call_yes"][0]) == ("denied", "ok")
    assert "said no" in dict(tool_answers(sent(model_server, 1)))["call_no"]


async def test_always_is_not_asked_again_for_the_same_command(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, engine: Any, environment: str, folder: str,
) -> None:
    await engine.write_file(environment, f"{folder}/.keep", b"")
    model_server.script(
        tool_calls([("call_1", "bash", {"command": f"touch {folder}/one"})]),
        tool_calls([("call_2", "bash", {"command": f"touch {folder}/two"})]),
        tool_calls([("call_3", "bash", {"command": f"ls {folder}"})]),
        text("Three commands ran."),
    )
    events: list[Event] = []
    approver = Approver("always", "yes")

    await make_agent(client, toolbox, events, environment, policy=Policy("ask"), approver=approver).send("Go.")

    assert [r.subject for r in approver.asked] == [f"touch {folder}/one", f"ls {folder}"]
    assert approver.asked[0].pattern == "touch *"
    assert await exists(engine, environment, f"{folder}/one")
    assert await exists(engine, environment, f"{folder}/two")
    assert [r.status for r in of(events, ToolResult)] == ["ok", "ok", "ok"]


@pytest.mark.parametrize("rules", [
    [Rule("deny", "bash", "rm *")],
    [Rule("auto", "bash"), Rule("deny", "bash", "rm *")],  # what "always" for every command would add
], ids=["auto-default", "auto-rule"])
async def test_a_deny_rule_wins_over_auto(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, engine: Any, environment: str, folder: str,
    rules: list[Rule],
) -> None:
    await engine.write_file(environment, f"{folder}/precious.txt", b"keep me\n")
    model_server.script(
        tool_calls([("call_rm", "bash", {"command": f"rm -rf {folder}"}),
                    ("call_echo", "bash", {"command": f"echo hi > {folder}/hello.txt"})]),
        text("I could not remove it."),
    )
    events: list[Event] = []
    approver = Approver()

    await make_agent(client, toolbox, events, environment, policy=Policy("auto", rules), approver=approver).send(
        "Clean up.")

    results = results_by_call(events)
    assert (results["call_rm"][0], results["call_echo"][0]) == ("denied", "ok")
    assert await file_text(engine, environment, f"{folder}/precious.txt") == "keep me\n"
    assert await file_text(engine, environment, f"{folder}/hello.txt") == "hi\n"
    assert approver.asked == []


# --------------------------------------------------------------------------- model mistakes and limits


async def test_bad_arguments_and_unknown_tools_get_an_error_answer_and_the_loop_goes_on(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, environment: str,
) -> None:
    model_server.script(
        tool_calls([("call_json", "bash", '{"command": "ls'),
                    ("call_ghost", "launch_rockets", {"target": "moon"})]),
        text("Sorry, let me answer directly."),
    )
    events: list[Event] = []

    result = await make_agent(client, toolbox, events, environment).send("Do it.")

    answers = dict(tool_answers(sent(model_server, 1)))
    assert "not valid JSON" in answers["call_json"]
    assert "no tool 'launch_rockets'" in answers["call_ghost"] and "bash" in answers["call_ghost"]
    assert {status for status, _ in results_by_call(events).values()} == {"error"}
    assert (result.finished, result.turns, result.text) == (True, 2, "Sorry, let me answer directly.")


async def test_max_turns_stops_a_model_that_keeps_calling_tools(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, environment: str,
) -> None:
    model_server.script(*[tool_calls([(f"call_{n}", "bash", {"command": f"echo round {n}"})]) for n in range(3)],
                        text("never asked for"))
    agent = make_agent(client, toolbox, [], environment, max_turns=3)

    result = await agent.send("Loop forever.")

    assert (result.finished, result.turns) == (False, 3)
    assert "max_turns" in (result.reason or "") and "3" in (result.reason or "")
    assert len(model_server.requests) == 3 and model_server.pending == 1
    assert_every_call_answered(agent.messages)


# --------------------------------------------------------------------------- cancelling


async def test_cancel_mid_reply_keeps_what_was_said_and_the_chat_goes_on(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, environment: str,
) -> None:
    model_server.script(drip("I will now explain everything in great detail", interval=0.2),
                        text("Picking up again."))
    events: list[Event] = []
    agent = make_agent(client, toolbox, events, environment)

    task = asyncio.create_task(agent.send("Explain."))
    await until(lambda: len(of(events, Token)) >= 2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - started < 1.0
    shown = "".join(t.text for t in of(events, Token))
    last = agent.messages[-1]
    assert last["role"] == "assistant" and last["content"].startswith(shown)
    assert shown.startswith("I will")
    assert_every_call_answered(agent.messages)
    result = await agent.send("Go on.")
    assert result.text == "Picking up again."
    assert [m["role"] for m in sent(model_server, 1)[1:]] == ["user", "assistant", "user"]


async def test_cancel_during_a_long_command_kills_it_and_answers_the_call(
    model_server: ModelServer, client: ModelClient, toolbox: Toolbox, environment: str,
) -> None:
    model_server.script(tool_calls([("call_sleep", "bash", {"command": "sleep 30"})]))
    agent = make_agent(client, toolbox, [], environment)

    task = asyncio.create_task(agent.send("Wait a while."))
    await until(lambda: ps_has(processes(environment), "sleep 30"))
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - started < 2.0
    assert not ps_has(processes(environment), "sleep 30")
    assert agent.messages[-1] == {"role": "tool", "tool_call_id": "call_sleep", "content": CANCELLED}
    assert_every_call_answered(agent.messages)


# --------------------------------------------------------------------------- a saved chat


def chat_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str) -> Config:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    project = tmp_path / "project"
    (project / ".glmtui").mkdir(parents=True)
    (project / ".glmtui" / "config.yaml").write_text(json.dumps({
        "default_provider": "local",
        "approval": "auto",
        "providers": {"local": {"base_url": base_url, "model": "glm-test", "api_key_env": KEY_ENV}},
    }))
    return Config.load(cwd=project, environ={})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(database=tmp_path / "db.sqlite3", logs=tmp_path / "runs")
    yield opened
    opened.close()


async def open_chat(engine: Any, store: Store, config: Config, environment: str, events: list[Event]) -> ChatSession:
    return await ChatSession.open(engine=engine, store=store, config=config, environment=environment,
                                  sink=events.append, approver=None)


def database_bytes(tmp_path: Path) -> bytes:
    """The SQLite file and its journal, as they are on disk."""
    return b"".join(path.read_bytes() for path in sorted(tmp_path.glob("db.sqlite3*")))


async def test_a_chat_is_saved_and_reopens_where_it_was(
    model_server: ModelServer, engine: Any, environment: str, store: Store, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, folder: str,
) -> None:
    config = chat_config(tmp_path, monkeypatch, model_server.base_url)
    model_server.script(
        tool_calls([("call_w", "write_file", {"path": f"{folder}/hello.txt", "content": "hello\n"})], usage=(40, 5)),
        text("I wrote hello.txt.", usage=(60, 4)),
        text("It says hello.", usage=(80, 3)),
    )
    events: list[Event] = []

    first = await open_chat(engine, store, config, environment, events)
    result = await first.send("Please write hello.txt")
    await first.close()
    again = await open_chat(engine, store, config, environment, events)
    follow_up = await again.send("What does it say?")
    await again.close()

    assert result.text == "I wrote hello.txt." and follow_up.text == "It says hello."
    assert await file_text(engine, environment, f"{folder}/hello.txt") == "hello\n"
    assert again.conversation.id == first.conversation.id
    assert again.messages[:len(first.messages)] == first.messages
    assert sent(model_server, 2)[:-1] == first.messages  # the reopened chat went on from there
    assert of(events, UsageEvent)[-1].total_input_tokens == 180
    markdown = Conversations(store).markdown(first.conversation.id)
    assert "Please write hello.txt" in markdown and "I wrote hello.txt." in markdown
    assert "What does it say?" in markdown and "It says hello." in markdown
    assert_key_nowhere(events, markdown, store, tmp_path)


async def test_a_message_sent_again_after_a_model_error_is_said_once(
    model_server: ModelServer, engine: Any, environment: str, store: Store, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = chat_config(tmp_path, monkeypatch, model_server.base_url)
    model_server.script(error(400, code="1214", message="the request was refused"), text("Hello again."))
    events: list[Event] = []

    chat = await open_chat(engine, store, config, environment, events)
    with pytest.raises(ModelError):
        await chat.send("Hello?")
    result = await chat.send("Hello?")  # the user sends it again
    await chat.close()

    assert result.text == "Hello again."
    saved = Conversations(store).messages(chat.conversation.id)
    assert [m["content"] for m in saved if m["role"] == "user"] == ["Hello?"]
    assert [m["content"] for m in sent(model_server, 1) if m["role"] == "user"] == ["Hello?"]


async def test_a_conversation_continued_with_another_model_reopens_with_it(
    model_server: ModelServer, engine: Any, environment: str, store: Store, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = chat_config(tmp_path, monkeypatch, model_server.base_url)
    model_server.script(text("first"), text("second"))
    events: list[Event] = []
    first = await open_chat(engine, store, config, environment, events)
    await first.send("one")
    await first.close()

    other = await ChatSession.open(engine=engine, store=store, config=config, environment=environment,
                                   sink=events.append, approver=None, model="glm-other")
    await other.send("two")
    await other.close()
    again = await open_chat(engine, store, config, environment, events)
    await again.close()

    assert again.conversation.id == first.conversation.id
    assert again.conversation.model == "glm-other"
    assert model_server.requests[1].body["model"] == "glm-other"


async def test_a_model_echoing_the_key_does_not_get_it_saved_or_shown(
    model_server: ModelServer, engine: Any, environment: str, store: Store, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = chat_config(tmp_path, monkeypatch, model_server.base_url)
    model_server.script(
        tool_calls([("call_echo", "bash", {"command": f"echo {KEY}"})]),
        text(f"Your key is {KEY}.", pieces=["Your key is sk-test-", "SECRET123", "."]),
    )
    events: list[Event] = []

    chat = await open_chat(engine, store, config, environment, events)
    await chat.send("What is my key?")
    await chat.close()

    markdown = Conversations(store).markdown(chat.conversation.id)
    assert_key_nowhere(events, markdown, store, tmp_path)


def assert_key_nowhere(events: list[Event], markdown: str, store: Store, tmp_path: Path) -> None:
    store.close()  # everything on disk, in one file
    places = {
        "the events": repr(events),
        "the streamed text": "".join(t.text for t in of(events, Token)),
        "the Markdown export": markdown,
        "the SQLite file": database_bytes(tmp_path).decode("utf-8", "replace"),
    }
    leaks = [where for where, content in places.items() if KEY in content]
    assert not leaks, f"the key is in {', '.join(leaks)}"
