"""`glmtui env exec NAME` without a command: a real shell on a real TTY, driven through a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest
from helpers import child_env, glmtui_argv, processes, ps_has, run_glmtui, wait_for

pytestmark = pytest.mark.docker


class Terminal:
    """`glmtui ARGS` attached to a pseudo-terminal of ROWS x COLUMNS: type, expect, resize."""

    def __init__(self, *args: str, rows: int = 30, columns: int = 100) -> None:
        self.master, slave = os.openpty()
        self._set_size(slave, rows, columns)
        self.process = subprocess.Popen(
            glmtui_argv(*args),
            stdin=slave, stdout=slave, stderr=slave,
            env=child_env({"TERM": "xterm"}),
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.screen = b""
        self._seen = 0

    @staticmethod
    def _set_size(fd: int, rows: int, columns: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is closed
            return False
        if not data:
            return False
        self.screen += data
        return True

    def expect(self, pattern: bytes, timeout: float = 15) -> re.Match[bytes]:
        """Wait for `pattern` (a regex) in what the terminal showed since the last match."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern).search(self.screen, self._seen)
            if match:
                self._seen = match.end()
                return match
            if time.monotonic() > deadline or not self._read(min(0.2, max(deadline - time.monotonic(), 0))):
                if match := re.compile(pattern).search(self.screen, self._seen):
                    self._seen = match.end()
                    return match
                raise AssertionError(f"{pattern!r} did not appear; the terminal showed:\n{self.screen!r}")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def resize(self, rows: int, columns: int) -> None:
        self._set_size(self.master, rows, columns)
        self.process.send_signal(signal.SIGWINCH)

    def wait(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        if self.process.poll() is None:
            raise AssertionError(f"glmtui did not end within {timeout}s; the terminal showed:\n{self.screen!r}")
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


@pytest.fixture
def terminal():
    opened: list[Terminal] = []

    def open_(*args: str, **size: int) -> Terminal:
        opened.append(Terminal(*args, **size))
        return opened[-1]

    yield open_
    for term in opened:
        term.close()


@pytest.fixture
async def busybox_env(make_env):
    return await make_env()


@pytest.fixture
async def workspace_env(make_env, workspace_image):
    return await make_env(image=workspace_image)


def test_busybox_shell(busybox_env, terminal):
    term = terminal("env", "exec", busybox_env.name)
    term.expect(rb"[#$] ")  # the prompt
    term.type("echo $((6*7))\r")
    term.expect(rb"\r\n42\r\n")
    term.type('echo "[${BASH_VERSION:-no bash}]"; [ -t 0 ] && echo "tty:$((1+1))"\r')
    term.expect(rb"\[no bash\]\r\n")
    term.expect(rb"tty:2\r\n")
    term.type("exit 3\r")
    assert term.wait() == 3
    shown = run_glmtui("logs", busybox_env.name).stdout.splitlines()  # the shell is on the record
    assert [line.split(" ", 2)[2] for line in shown] == ["| shell opened", "| shell closed with 3"], shown


def test_workspace_shell_is_bash(workspace_env, terminal):
    term = terminal("env", "exec", workspace_env.name)
    term.expect(rb"\$ ")
    term.type("echo $((6*7)) $0 $(whoami)\r")
    term.expect(rb"\r42 bash dev\r\n")  # (after bash's bracketed-paste codes)
    term.type('echo "[${BASH_VERSION:-no bash}]"\r')
    term.expect(rb"\[5\.[0-9.]+\(\d+\)-release\]")
    term.type("exit 3\r")
    assert term.wait() == 3


def test_size_resize_ctrl_c_and_terminal_restored(busybox_env, terminal):
    term = terminal("env", "exec", busybox_env.name, rows=30, columns=100)
    term.expect(rb"[#$] ")
    term.type("stty size\r")
    term.expect(rb"\r\n30 100\r\n")
    term.resize(45, 132)
    for _ in range(20):  # the resize travels asynchronously; ask until it has arrived
        term.type("stty size\r")
        if term.expect(rb"\r\n(\d+ \d+)\r\n").group(1) == b"45 132":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the new size never reached the shell")
    # ^C goes to the command inside, not to glmtui
    term.type("sleep 60\r")
    wait_for(lambda: ps_has(processes(busybox_env.name), "sleep 60"), what="sleep 60 inside")
    term.type("\x03")
    term.type("echo after-$((1+1))\r")
    term.expect(rb"after-2\r\n", timeout=10)
    assert term.process.poll() is None
    # ^D ends the shell: status 0, and the host terminal is back in cooked mode.
    # (A ^D typed while the shell switches its line editor on can be swallowed, as in any
    # terminal: wait for the prompt, and type it again if the first one went missing.)
    term.expect(rb"[#$] ")
    for _ in range(5):
        time.sleep(0.2)
        term.type("\x04")
        try:
            status = term.wait(timeout=3)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"^D did not end the shell; the terminal showed:\n{term.screen!r}")
    assert status == 0
    attrs = termios.tcgetattr(term.master)
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO, "the terminal was left raw"


def test_environment_variables_and_workdir(busybox_env, terminal):
    term = terminal("env", "exec", "-e", "GREETING=hello there", "-w", "/tmp", busybox_env.name)
    term.expect(rb"[#$] ")
    term.type('echo "$GREETING in $(pwd) as $TERM"\r')
    term.expect(rb"\r\nhello there in /tmp as xterm\r\n")
    term.type("exit\r")
    assert term.wait() == 0


def test_shell_of_an_unknown_environment(terminal, env_name):
    term = terminal("env", "exec", env_name)
    assert term.wait() == 2
    assert re.search(f"no environment (named )?'{env_name}'".encode(), term.screen), term.screen
    assert b"Traceback" not in term.screen
    assert run_glmtui("logs", env_name).returncode == 2, "a shell that never opened leaves no record"
