"""Connects the host terminal to an interactive process in an environment."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import termios
import tty

from glmtui.docker.engine import InteractiveExec


async def attach(session: InteractiveExec) -> int:
    """Raw mode, keys in, screen out, resizes forwarded; returns the process's exit status."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[bytes] = asyncio.Queue()

    def resize() -> None:
        size = shutil.get_terminal_size()
        loop.create_task(session.resize(size.lines, size.columns))

    saved = termios.tcgetattr(stdin)
    tty.setraw(stdin)
    loop.add_reader(stdin, lambda: keys.put_nowait(os.read(stdin, 65536)))
    loop.add_signal_handler(signal.SIGWINCH, resize)
    resize()

    async def forward_keys() -> None:
        while data := await keys.get():
            await session.write(data)

    typing = loop.create_task(forward_keys())
    try:
        while (data := await session.read()) is not None:
            os.write(stdout, data)
    finally:
        typing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await typing
        loop.remove_reader(stdin)
        loop.remove_signal_handler(signal.SIGWINCH)
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
    return await session.close()
