"""The agent's tools against the real Docker engine: they act inside the environment, and only there."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from helpers import processes, ps_has, remove_quietly, unique_name
from jsonschema import Draft202012Validator

from glmtui.agent.tools import ALL_TOOLS, READ_ONLY, Toolbox
from glmtui.docker.spec import EnvSpec
from glmtui.errors import BadInput, GlmtuiError, NotFound

pytestmark = pytest.mark.docker


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def box(engine: Any, busybox_image: str) -> AsyncIterator[str]:
    """One busybox environment for the module; each test works in a folder of its own."""
    name = unique_name()
    await engine.create_environment(EnvSpec(name=name, image=busybox_image))
    yield name
    try:
        await engine.remove_environment(name, volume=True)
    except GlmtuiError:
        remove_quietly(name)


@pytest_asyncio.fixture(loop_scope="session")
async def folder(engine: Any, box: str) -> str:
    path = f"/workspace/t-{uuid.uuid4().hex[:8]}"
    assert (await engine.exec(box, ["mkdir", "-p", path])).exit_code == 0
    return path


@pytest.fixture
def tools(engine: Any, box: str, folder: str) -> Toolbox:
    return Toolbox(engine, box, workdir=folder)


async def sh(engine: Any, env: str, script: str) -> str:
    """A setup or check command, run by the test (not by the tools)."""
    result = await engine.exec(env, ["sh", "-c", script])
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode()


async def pwned(engine: Any, env: str) -> str:
    """Files a command smuggled into a tool's argument would have made."""
    return await sh(engine, env, "find / -maxdepth 4 -name 'pwned*' 2>/dev/null; true")


# -- bash -------------------------------------------------------------------------------------


async def test_bash_runs_in_the_container_and_not_on_the_host(engine, box):
    marker = f"/tmp/glmtui-host-check-{uuid.uuid4().hex}"
    result = await Toolbox(engine, box).call("bash", {"command": f"echo inside > {marker} && cat /etc/hostname && pwd"})
    assert result.ok and result.exit_code == 0
    hostname, workdir, ended = result.output.splitlines()
    assert hostname != socket.gethostname() and workdir == "/workspace" and ended == "exit code 0"
    assert not Path(marker).exists()
    assert await engine.read_file(box, marker) == b"inside\n"


async def test_bash_in_a_working_directory_that_is_gone_says_so(engine, box, folder):
    tools = Toolbox(engine, box, workdir=f"{folder}/gone")
    result = await tools.call("bash", {"command": "true"})
    assert not result.ok
    assert result.output.endswith(f"(the working directory '{folder}/gone' does not exist in the environment)")


async def test_bash_reports_exit_code_and_stderr(tools):
    result = await tools.call("bash", {"command": "echo out; echo oops >&2; exit 3"})
    assert not result.ok and result.exit_code == 3
    *printed, ended = result.output.splitlines()
    assert sorted(printed) == ["oops", "out"] and ended == "exit code 3"  # two pipes: either may come first
    quiet = await tools.call("bash", {"command": "true"})
    assert quiet.ok and quiet.output == "(no output)\nexit code 0"


async def test_bash_timeout_kills_the_command_and_says_so(tools, box):
    result = await tools.call("bash", {"command": "echo started; sleep 300 & sleep 301", "timeout": 1})
    assert not result.ok and result.duration < 10
    assert result.output.startswith("started\n")
    assert "timed out after 1s" in result.output and "killed" in result.output
    listing = processes(box)
    assert not ps_has(listing, "sleep 30"), listing


async def test_bash_ends_what_it_started_in_the_background(tools, box):
    result = await tools.call("bash", {"command": "sleep 331 & setsid sh -c 'sleep 332 &' & echo started"})
    assert result.ok and result.output == "started\nexit code 0"
    listing = processes(box)
    assert not ps_has(listing, "sleep 33"), listing


async def test_long_output_is_cut_for_the_model_and_saved_whole_in_the_environment(engine, box, folder):
    tools = Toolbox(engine, box, workdir=folder, output_limit=2000)
    result = await tools.call("bash", {"command": "seq 1 50000"})
    assert result.ok and len(result.output) <= 2000
    assert re.fullmatch(r"/tmp/glmtui-agent/\w+\.log", result.saved_to or "")
    assert result.output.startswith("1\n2\n3\n") and result.output.endswith("\n49999\n50000\nexit code 0")
    note = re.search(
        r"\.\.\. (\d+) characters omitted; the whole output is in (\S+), read it with read_file",
        result.output,
    )
    assert note and note.group(2) == result.saved_to
    expected = "".join(f"{n}\n" for n in range(1, 50001))
    shown = result.output.replace(note.group(0) + "\n", "").removesuffix("exit code 0")
    assert len(shown) + int(note.group(1)) == len(expected)
    assert await engine.read_file(box, result.saved_to) == expected.encode()
    # and the model can read it back with its own tool
    tail = await tools.call("read_file", {"path": result.saved_to, "start_line": 49999})
    assert tail.ok
    assert tail.output == f" 49999\t49999\n 50000\t50000\n[lines 49999-50000 of 50000 in {result.saved_to}]"


async def test_bash_in_the_workspace_image_as_its_user(engine, make_env, workspace_image):
    env = await make_env(image=workspace_image)
    tools = Toolbox(engine, env.name)
    result = await tools.call("bash", {"command": "id -un; pwd; python3 -c 'print(6*7)'"})
    assert result.output == "dev\n/workspace\n42\nexit code 0"
    # write, run, edit, run again: an edited script keeps its mode and looks changed to make-like tools
    script = "#!/usr/bin/env python3\nprint('hello')\n"
    assert (await tools.call("write_file", {"path": "app/hello.py", "content": script})).ok
    ran = await tools.call("bash", {"command": "chmod 755 app/hello.py && touch app/before && app/hello.py"})
    assert ran.output == "hello\nexit code 0"
    edited = await tools.call("edit_file", {"path": "app/hello.py", "old_text": "'hello'", "new_text": "'bye'"})
    assert edited.ok, edited.output
    check = await tools.call(
        "bash", {"command": "app/hello.py && stat -c '%a %U' app/hello.py && [ app/hello.py -nt app/before ]"}
    )
    assert check.output == "bye\n755 dev\nexit code 0"
    # the file tools have the permissions of the tools' user, like its commands
    denied = await tools.call("write_file", {"path": "/etc/agent-was-here", "content": "x"})
    assert not denied.ok and denied.output == "cannot write /etc/agent-was-here: Permission denied"
    assert not (await tools.call("bash", {"command": "test -e /etc/agent-was-here"})).ok
    secret = await tools.call("read_file", {"path": "/etc/shadow"})
    assert not secret.ok and secret.output == "cannot read /etc/shadow: Permission denied"
    as_root = Toolbox(engine, env.name, user="root")
    assert (await as_root.call("read_file", {"path": "/etc/shadow", "end_line": 1})).output.startswith("     1\troot:")


# -- read_file --------------------------------------------------------------------------------


async def test_read_file_numbers_lines_and_reads_ranges(engine, box, folder, tools):
    await engine.write_file(box, f"{folder}/notes.txt", "".join(f"line {n}\n" for n in range(1, 31)).encode())
    whole = await tools.call("read_file", {"path": "notes.txt"})
    assert whole.ok and whole.output.splitlines()[0] == "     1\tline 1"
    assert len(whole.output.splitlines()) == 30 and whole.output.endswith("    30\tline 30")
    part = await tools.call("read_file", {"path": f"{folder}/notes.txt", "start_line": 10, "end_line": 12})
    assert part.output == (
        "    10\tline 10\n    11\tline 11\n    12\tline 12\n"
        f"[lines 10-12 of 30 in {folder}/notes.txt; read more with start_line=13]"
    )
    past = await tools.call("read_file", {"path": "notes.txt", "start_line": 31})
    assert not past.ok and "has 30 lines" in past.output


async def test_read_file_stays_within_the_output_limit_and_says_how_to_go_on(engine, box, folder):
    await engine.write_file(box, f"{folder}/long.txt", "".join(f"{'x' * 90} {n}\n" for n in range(1, 201)).encode())
    result = await Toolbox(engine, box, workdir=folder, output_limit=1000).call("read_file", {"path": "long.txt"})
    assert result.ok and len(result.output) < 1000
    last = int(re.search(r"\[lines 1-(\d+) of 200 in \S+; read more with start_line=(\d+)\]$", result.output).group(2))
    assert result.output.splitlines()[-2].endswith(f" {last - 1}")


async def test_read_file_missing_binary_folder_and_symbolic_link(engine, box, folder, tools):
    missing = await tools.call("read_file", {"path": "nope.txt"})
    assert not missing.ok and missing.output == f"no such file: {folder}/nope.txt"
    await engine.write_file(box, f"{folder}/blob.bin", bytes(range(256)) * 4)
    binary = await tools.call("read_file", {"path": "blob.bin"})
    assert not binary.ok and "binary file (1024 bytes)" in binary.output and "\x00" not in binary.output
    folder_read = await tools.call("read_file", {"path": "."})
    assert not folder_read.ok and "is a folder" in folder_read.output
    await sh(engine, box, f"cd {folder} && echo target > real.txt && ln -s real.txt link.txt")
    linked = await tools.call("read_file", {"path": "link.txt"})
    assert linked.ok and linked.output == "     1\ttarget"


# -- write_file and edit_file -----------------------------------------------------------------


async def test_write_file_creates_folders_and_reports_what_it_wrote(engine, box, folder, tools):
    result = await tools.call("write_file", {"path": "deep/er/new.txt", "content": "one\ntwo\nthree"})
    assert result.ok and result.output == f"wrote 13 bytes (3 lines) to {folder}/deep/er/new.txt"
    assert await engine.read_file(box, f"{folder}/deep/er/new.txt") == b"one\ntwo\nthree"
    read = await tools.call("read_file", {"path": "deep/er/new.txt"})
    assert read.output == "     1\tone\n     2\ttwo\n     3\tthree"
    # overwriting keeps the mode; writing through a link changes its target and keeps the link
    await sh(engine, box, f"cd {folder} && chmod 750 deep/er/new.txt && ln -s deep/er/new.txt shortcut")
    assert (await tools.call("write_file", {"path": "shortcut", "content": "é\n"})).ok
    kept = await sh(engine, box, f"cd {folder} && stat -c %a deep/er/new.txt && readlink shortcut")
    assert kept == "750\ndeep/er/new.txt\n"
    assert await engine.read_file(box, f"{folder}/deep/er/new.txt") == "é\n".encode()
    refused = await tools.call("write_file", {"path": "deep", "content": "x"})
    assert not refused.ok and "is a folder" in refused.output
    for _ in range(50):  # the content went in through a staging file, removed in the background
        if ".part" not in await sh(engine, box, "ls /tmp/glmtui-agent"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("staging files were left behind")


async def test_edit_file_replaces_exactly_one_occurrence(engine, box, folder, tools):
    original = b"def f():\n    return 1\n\ndef g():\n    return 1\n"
    await engine.write_file(box, f"{folder}/m.py", original)
    edited = await tools.call(
        "edit_file", {"path": "m.py", "old_text": "g():\n    return 1", "new_text": "g():\n    x = 2\n    return x"}
    )
    assert edited.ok and edited.output.startswith(f"edited {folder}/m.py: lines 4-5 replaced, now lines 4-6")
    assert "     6\t    return x" in edited.output
    expected = b"def f():\n    return 1\n\ndef g():\n    x = 2\n    return x\n"
    assert await engine.read_file(box, f"{folder}/m.py") == expected


async def test_edit_file_refuses_absent_or_repeated_text_and_leaves_the_file_alone(engine, box, folder, tools):
    original = b"a = 1\nb = 1\n"
    await engine.write_file(box, f"{folder}/c.py", original)
    absent = await tools.call("edit_file", {"path": "c.py", "old_text": "c = 1", "new_text": "c = 2"})
    assert not absent.ok and absent.output.startswith(f"old_text was not found in {folder}/c.py")
    repeated = await tools.call("edit_file", {"path": "c.py", "old_text": " = 1", "new_text": " = 2"})
    assert not repeated.ok
    assert repeated.output == f"old_text appears 2 times in {folder}/c.py; include more context to make it unique"
    missing = await tools.call("edit_file", {"path": "gone.py", "old_text": "a", "new_text": "b"})
    assert not missing.ok and missing.output == f"no such file: {folder}/gone.py"
    assert await engine.read_file(box, f"{folder}/c.py") == original


# -- list_files and grep ----------------------------------------------------------------------


async def test_list_files_marks_folders_skips_git_internals_and_stops_at_depth(engine, box, folder, tools):
    await sh(engine, box, f"cd {folder} && mkdir -p .git/objects/ab src/pkg/deep empty && touch .git/HEAD "
                          "src/main.py src/pkg/mod.py src/pkg/deep/far.py README")
    result = await tools.call("list_files", {})
    assert result.ok
    assert result.output.splitlines() == [
        f"{folder}/ (depth 2):", ".git/", "README", "empty/", "src/", "src/main.py", "src/pkg/",
    ]
    deeper = await tools.call("list_files", {"path": "src", "depth": 3})
    assert deeper.output.splitlines()[1:] == ["main.py", "pkg/", "pkg/deep/", "pkg/deep/far.py", "pkg/mod.py"]
    missing = await tools.call("list_files", {"path": "nowhere"})
    assert not missing.ok and missing.output == f"no such folder: {folder}/nowhere"
    a_file = await tools.call("list_files", {"path": "README"})
    assert not a_file.ok and "is a file" in a_file.output


async def test_grep_searches_the_pattern_as_given_never_through_a_shell(engine, box, folder, tools):
    await engine.write_file(box, f"{folder}/lib/a.py", b'x = "$(touch /tmp/pwned)"\nit\'s "quoted"\n-rf here\n')
    dangerous = ["$(touch /tmp/pwned)", "`touch /tmp/pwned`", "'; touch /tmp/pwned; echo '", '"; touch /tmp/pwned #']
    for pattern in dangerous:
        result = await tools.call("grep", {"pattern": pattern})
        assert result.ok, result.output
    escaped = await tools.call("grep", {"pattern": r"\$\(touch /tmp/pwned\)"})
    assert escaped.output == 'lib/a.py:1:x = "$(touch /tmp/pwned)"'
    assert (await tools.call("grep", {"pattern": 'it\'s "quoted"'})).output == 'lib/a.py:2:it\'s "quoted"'
    assert (await tools.call("grep", {"pattern": "-rf"})).output == "lib/a.py:3:-rf here"
    assert await pwned(engine, box) == ""


async def test_grep_glob_case_and_no_matches(engine, box, folder):
    for path, content in (("src/a.py", b"TODO: one\n"), ("src/b.txt", b"todo: two\n"), (".git/config", b"TODO: no\n")):
        await engine.write_file(box, f"{folder}/{path}", content)
    tools = Toolbox(engine, box, workdir=folder)
    found = await tools.call("grep", {"pattern": "TODO"})
    assert found.ok and found.output == "src/a.py:1:TODO: one"
    relative = await Toolbox(engine, box).call("grep", {"pattern": "TODO", "path": folder})
    assert relative.output == f"{folder[len('/workspace/'):]}/src/a.py:1:TODO: one"
    both = await tools.call("grep", {"pattern": "todo", "ignore_case": True})
    assert sorted(both.output.splitlines()) == ["src/a.py:1:TODO: one", "src/b.txt:1:todo: two"]
    only_txt = await tools.call("grep", {"pattern": "todo", "ignore_case": True, "glob": "*.txt"})
    assert only_txt.output == "src/b.txt:1:todo: two"
    none = await tools.call("grep", {"pattern": "FIXME"})
    assert none.ok and none.output == f"no matches for 'FIXME' in {folder}"
    bad = await tools.call("grep", {"pattern": "a(", "path": "src"})
    assert not bad.ok and bad.output.startswith("grep failed")
    missing = await tools.call("grep", {"pattern": "x", "path": "nowhere"})
    assert not missing.ok and missing.output == f"no such file or folder: {folder}/nowhere"


# -- hostile input ----------------------------------------------------------------------------


async def test_a_hostile_path_is_just_a_name(engine, box, folder, tools):
    name = "x; rm -rf * $(touch pwned) `touch pwned2` '\" && echo"
    wrote = await tools.call("write_file", {"path": f"odd/{name}", "content": "needle\n"})
    assert wrote.ok, wrote.output
    assert (await tools.call("read_file", {"path": f"odd/{name}"})).output == "     1\tneedle"
    assert (await tools.call("edit_file", {"path": f"odd/{name}", "old_text": "needle", "new_text": "pin"})).ok
    assert (await tools.call("list_files", {"path": "odd"})).output.splitlines()[1:] == [name]
    assert (await tools.call("grep", {"pattern": "pin", "path": f"odd/{name}"})).output == f"odd/{name}:1:pin"
    assert await engine.read_file(box, f"{folder}/odd/{name}") == b"pin\n"
    assert await sh(engine, box, f"cd {folder} && ls -A && ls /bin/sh") == "odd\n/bin/sh\n"
    assert await pwned(engine, box) == ""
    nul = await tools.call("read_file", {"path": "a\x00b"})
    assert not nul.ok and "NUL" in nul.output


# -- schemas, names, arguments ----------------------------------------------------------------


def test_schemas_are_valid_json_schema_and_list_only_the_allowed_tools(engine):
    every = Toolbox(engine, "unused")
    assert every.names == ALL_TOOLS
    for entry in json.loads(json.dumps(every.schemas())):
        assert entry["type"] == "function" and entry["function"]["description"]
        Draft202012Validator.check_schema(entry["function"]["parameters"])
    readers = Toolbox(engine, "unused", allowed=["grep", "read_file", "list_files"])
    assert readers.names == ("read_file", "list_files", "grep") and set(readers.names) == READ_ONLY
    assert [entry["function"]["name"] for entry in readers.schemas()] == list(readers.names)
    assert "grep" in readers.describe() and "bash" not in readers.describe()


def test_an_unknown_tool_name_is_bad_input(engine):
    with pytest.raises(BadInput, match=r"unknown tool 'bsh' \(did you mean 'bash'\?\)"):
        Toolbox(engine, "unused", allowed=["read_file", "bsh"])


async def test_model_mistakes_come_back_as_messages(engine, box):
    tools = Toolbox(engine, box, allowed=["bash", "read_file"])
    missing = await tools.call("read_file", {})
    assert not missing.ok and "missing required argument 'path'" in missing.output
    misspelt = await tools.call("read_file", {"pth": "x"})
    assert not misspelt.ok and "unknown argument 'pth' (did you mean 'path'?)" in misspelt.output
    wrong_type = await tools.call("bash", {"command": "true", "timeout": "soon"})
    assert not wrong_type.ok and "argument 'timeout'" in wrong_type.output
    assert not (await tools.call("read_file", {"path": "x", "start_line": 0})).ok
    unset = await tools.call("bash", {"command": "echo ok", "timeout": None})  # models send null for "not given"
    assert unset.ok and unset.output == "ok\nexit code 0"
    not_allowed = await tools.call("write_file", {"path": "x", "content": ""})
    assert not not_allowed.ok and "not allowed" in not_allowed.output
    unknown = await tools.call("run_shell", {"command": "true"})
    assert not unknown.ok and "no tool 'run_shell'" in unknown.output


async def test_a_missing_environment_is_an_engine_error_not_a_model_mistake(engine):
    with pytest.raises(NotFound):
        await Toolbox(engine, unique_name()).call("bash", {"command": "true"})
