"""Checkpoints of an environment's workspace, against the real engine: taken, listed, diffed and
rolled back, with what shell commands did compared byte for byte; a snapshot that fails."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from helpers import BUSYBOX, checkpoints_of, docker, one_error_line

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="session")]

# Files written, a folder, an empty folder, a link, a name that is not UTF-8, a private file, an
# executable, a file of another owner, a repository of the user's own, and a folder that is a
# repository inside the workspace.
SETUP = r"""
set -e
mkdir -p src/pkg empty nested/.git
printf 'print("hello")\n' > src/main.py
printf 'x = 1\n' > src/pkg/mod.py
printf 'secret\n' > private && chmod 600 private
printf '#!/bin/sh\necho run\n' > run.sh && chmod 755 run.sh
printf 'theirs\n' > owned && chown 1000:1000 owned
ln -s src/main.py link
printf 'odd\n' > "$(printf 'caf\351')"
mkdir -p .git/refs && printf 'ref: refs/heads/main\n' > .git/HEAD
printf 'inside\n' > nested/file && printf 'nested repo\n' > nested/.git/HEAD
dd if=/dev/urandom of=blob.bin bs=1024 count=64 2>/dev/null
"""

# What an agent's shell might do next: edits, deletions, chmods, new files and folders.
CHANGES = r"""
set -e
printf 'print("broken")\n' >> src/main.py
rm -rf src/pkg private
chmod 644 run.sh && chmod 777 owned && chown 0:0 owned
rmdir empty
mkdir -p build/out && printf 'artefact\n' > build/out/a.o
rm link && ln -s run.sh link
printf 'changed\n' > nested/file
dd if=/dev/urandom of=blob.bin bs=1024 count=64 conv=notrunc 2>/dev/null
printf 'ref: refs/heads/other\n' > .git/HEAD
"""


async def fingerprint(engine, name: str) -> dict[str, tuple]:
    """Every path of the workspace but the user's .git: type, mode, owner, and content (or link)."""
    result = await engine.exec(name, ["tar", "-c", "-f", "-", "."], workdir="/workspace")
    assert result.exit_code == 0, result.stderr
    found = {}
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
        for member in tar.getmembers():
            path = member.name.removeprefix("./")
            if path in (".", "") or path == ".git" or path.startswith(".git/"):
                continue
            content = hashlib.sha256(tar.extractfile(member).read()).hexdigest() if member.isfile() else member.linkname
            found[path] = (member.type, oct(member.mode), member.uid, member.gid, content)
    return found


async def user_git(engine, name: str) -> bytes:
    return (await engine.exec(name, ["cat", ".git/HEAD"], workdir="/workspace")).stdout


async def test_rollback_restores_what_shell_commands_changed_byte_for_byte(engine, make_env):
    from glmtui.docker.checkpoints import Checkpoints

    env = await make_env()
    assert (await engine.exec(env.name, ["sh", "-c", SETUP], workdir="/workspace")).exit_code == 0
    before = await fingerprint(engine, env.name)
    assert "nested/file" in before and "caf\udce9" in before
    checkpoints = Checkpoints(engine, env.name)
    taken = await checkpoints.take("before the agent")
    assert taken.message == "before the agent"

    assert (await engine.exec(env.name, ["sh", "-c", CHANGES], workdir="/workspace")).exit_code == 0
    changed = await fingerprint(engine, env.name)
    assert changed != before

    patch = await checkpoints.diff(taken.id)
    assert "+print(\"broken\")" in patch and "deleted file mode" in patch and "build/out/a.o" in patch

    done = await checkpoints.rollback(taken.id)
    assert done.checkpoint.id == taken.id
    assert await fingerprint(engine, env.name) == before
    # The user's own .git is never touched: it stays as the commands left it.
    assert await user_git(engine, env.name) == b"ref: refs/heads/other\n"

    # The rescue checkpoint undoes the rollback.
    await checkpoints.rollback(done.rescue.id)
    assert await fingerprint(engine, env.name) == changed

    listed = await checkpoints.list()
    assert [c.id for c in listed][:2] == [listed[0].id, done.rescue.id]
    assert listed[-1].id == taken.id and listed[-1].message == "before the agent"
    assert [c.time for c in listed] == sorted((c.time for c in listed), reverse=True)


async def test_checkpoint_commands_and_the_helper_going_with_the_environment(engine, make_env, glmtui):
    env = await make_env()
    name = env.name
    await engine.exec(name, ["sh", "-c", "printf one > a; printf two > b"], workdir="/workspace")
    taken = glmtui("env", "checkpoint", name, "-m", "first", "--json")
    assert taken.returncode == 0, taken.stderr
    first = json.loads(taken.stdout)
    assert first["files_changed"] == 2 and first["message"] == "first"

    await engine.exec(name, ["sh", "-c", "rm a; printf three > c; chmod 600 b"], workdir="/workspace")
    second = glmtui("env", "checkpoint", name)
    assert second.returncode == 0 and "3 files changed" in second.stdout

    listed = json.loads(glmtui("env", "checkpoints", name, "--json").stdout)
    assert [c["id"] for c in listed][1] == first["id"] and listed[0]["files_changed"] == 3
    assert set(listed[0]) == {"id", "time", "message", "files_changed"}
    table = glmtui("env", "checkpoints", name).stdout
    assert first["id"] in table and "first" in table

    assert glmtui("env", "diff", name).stdout == ""  # nothing since the latest
    diff = glmtui("env", "diff", name, first["id"])
    assert diff.returncode == 0 and "diff --git a/a b/a" in diff.stdout and "+three" in diff.stdout

    rolled = glmtui("env", "rollback", name, first["id"])
    assert rolled.returncode == 0 and f"rolled {name} back to checkpoint {first['id']}" in rolled.stdout
    assert (await engine.exec(name, ["sh", "-c", "cat a b; ls"], workdir="/workspace")).stdout == b"onetwoa\nb\n"

    for args, status, says in (
        (("rollback", name, "nothing"), 2, "is not a checkpoint id"),
        (("rollback", name, "abcdef12"), 2, "no checkpoint 'abcdef12'"),
        (("checkpoints", "t-none-such"), 2, "no environment named"),
    ):
        failed = glmtui("env", *args)
        assert failed.returncode == status, failed.stderr
        assert says in one_error_line(failed.stderr)

    def helper_exists(kind: str) -> bool:
        return docker(kind, "inspect", checkpoints_of(name), check=False).returncode == 0

    assert helper_exists("container") and helper_exists("volume")
    assert glmtui("env", "remove", name, "--volumes").returncode == 0
    assert not helper_exists("container") and not helper_exists("volume")


async def test_a_snapshot_that_fails_fails_loudly_and_is_never_a_checkpoint(engine, make_env, glmtui):
    from glmtui.docker.checkpoints import Checkpoints

    env = await make_env()
    name = env.name
    await engine.exec(name, ["sh", "-c", "printf kept > a"], workdir="/workspace")
    first = await Checkpoints(engine, name).take("good")
    # The next file's object cannot be written: where its folder goes, the store holds a file.
    content = b"new content\n"
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    docker("run", "--rm", "-v", f"{checkpoints_of(name)}:/c", BUSYBOX, "sh", "-c",
           f"[ ! -e /c/git/objects/{blob[:2]} ] && touch /c/git/objects/{blob[:2]}")
    await engine.exec(name, ["sh", "-c", "printf 'new content\\n' > b; rm a"], workdir="/workspace")

    failed = glmtui("env", "checkpoint", name, "-m", "doomed")
    assert failed.returncode == 1
    line = one_error_line(failed.stderr)
    assert line.startswith(f"glmtui: error: checkpoint take in environment {name!r} failed: git update-index failed: "), line
    assert "Unable to process path b" in line
    listed = json.loads(glmtui("env", "checkpoints", name, "--json").stdout)
    assert [c["id"] for c in listed] == [first.id]

    # A rollback to the good one is still whole (its rescue fails as loudly, and nothing moves).
    refused = glmtui("env", "rollback", name, first.id)
    assert refused.returncode == 1
    assert (await engine.exec(name, ["ls"], workdir="/workspace")).stdout == b"b\n"

    docker("run", "--rm", "-v", f"{checkpoints_of(name)}:/c", BUSYBOX, "rm", f"/c/git/objects/{blob[:2]}")
    assert glmtui("env", "rollback", name, first.id).returncode == 0
    assert (await engine.exec(name, ["cat", "a"], workdir="/workspace")).stdout == b"kept"


async def test_a_chat_turn_that_changes_files_is_checkpointed_and_undone(
    engine, make_env, model_server, tmp_path, monkeypatch,
):
    from glmtui.agent.session import ChatSession
    from glmtui.store import Store
    from model_server import text, tool_calls
    from test_agent_loop import chat_config

    env = await make_env()
    await engine.exec(env.name, ["sh", "-c", "printf keep > keep.txt; printf '#!/bin/sh\\n' > run.sh"],
                      workdir="/workspace")
    before = await fingerprint(engine, env.name)
    config = chat_config(tmp_path, monkeypatch, model_server.base_url)
    model_server.script(
        tool_calls([("c1", "read_file", {"path": "keep.txt"})]),  # reads: no checkpoint yet
        tool_calls([("c2", "write_file", {"path": "/workspace/notes.txt", "content": "notes\n"}),
                    ("c3", "bash", {"command": "rm keep.txt && chmod 700 run.sh"})]),
        text("Done."),
        tool_calls([("c4", "list_files", {"path": "."})]),
        text("Looked."),
    )
    store = Store(database=tmp_path / "db.sqlite3", logs=tmp_path / "runs")
    chat = await ChatSession.open(engine=engine, store=store, config=config, environment=env.name,
                                  sink=lambda event: None, approver=None)
    try:
        await chat.send("tidy up")
        changed = await fingerprint(engine, env.name)
        assert "notes.txt" in changed and "keep.txt" not in changed
        await chat.send("look around")  # changes nothing: no checkpoint for it
        assert len(chat.turn_checkpoints) == 1

        done = await chat.undo()
        assert done.checkpoint.id == (await chat.checkpoints.list())[-1].id
        assert "tidy up" in done.checkpoint.message
        assert await fingerprint(engine, env.name) == before
        assert chat.messages[-1]["role"] == "user" and "undid the changes" in chat.messages[-1]["content"]
        assert await chat.undo() is None  # nothing older of this chat to go back to
    finally:
        await chat.close()
        store.close()


async def test_a_checkpoint_under_way_is_said_and_a_lock_left_behind_long_ago_is_cleared(engine, make_env, glmtui):
    from glmtui.docker.checkpoints import Checkpoints

    env = await make_env()
    name = env.name
    await Checkpoints(engine, name).take("first")
    lock = "/c/git/index.lock"
    docker("run", "--rm", "-v", f"{checkpoints_of(name)}:/c", BUSYBOX, "touch", lock)
    busy = glmtui("env", "checkpoint", name)
    assert busy.returncode == 1
    assert one_error_line(busy.stderr).endswith(
        "failed: another checkpoint or rollback of this environment is under way: try again in a moment")
    # A helper stopped mid-way left it, eleven minutes ago: the next checkpoint clears it.
    docker("run", "--rm", "-v", f"{checkpoints_of(name)}:/c", BUSYBOX, "touch", "-d", "@1", lock)
    assert glmtui("env", "checkpoint", name).returncode == 0


async def test_a_saved_agent_in_a_named_environment_takes_a_checkpoint_its_execution_names(
    busybox_image, model_server, tmp_path, env_name,
):
    from agent_helpers import Cli, new_key, project, write_agent
    from model_server import text, tool_calls

    cli = Cli(project(tmp_path, model_server), new_key())
    agent = write_agent(tmp_path, """
        version: 1
        name: tidier
        prompt: Tidy the workspace
        env: {name: @ENV@, image: glmtui/busybox:latest}
        approval: auto
    """, ENV=env_name)
    assert cli("agents", "apply", str(agent)).returncode == 0
    model_server.script(
        tool_calls([("c1", "list_files", {"path": "."})]),
        tool_calls([("c2", "bash", {"command": "printf made > made.txt"})]),
        text("Tidied."),
    )
    ran = cli("agents", "run", "tidier", "--wait")
    assert ran.returncode == 0, ran.stderr + ran.stdout

    [execution] = cli.executions("tidier")
    [checkpoint] = json.loads(cli("env", "checkpoints", env_name, "--json").stdout)
    assert checkpoint["message"] == f"run {execution['run_id']} step agent: before the agent's changes"
    shown = cli("agents", "executions", "show", execution["id"]).stdout
    assert (f"checkpoint {checkpoint['id']} of {env_name} taken before the agent's changes "
            f"(glmtui env rollback {env_name} {checkpoint['id']} undoes them)") in shown
    assert cli("env", "rollback", env_name, checkpoint["id"]).returncode == 0
    assert docker("exec", f"glmtui-{env_name}", "ls", "/workspace").stdout == ""
