"""Checkpoints of an environment's workspace: take, list, diff, roll back.

The work is done by `checkpoint_helper.py` in a helper container of the environment's own
(`glmtui.checkpoints-NAME`: git and python3, no network, the workspace volume and a checkpoint
volume of its own), so it works whatever the environment's image has, for folders that are not
git repositories, and never touches a `.git` of the user's. The helper is made on first use
and stays (an exec is ~40 ms, a container start ~300 ms); it goes with the environment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from glmtui.docker.engine import Engine, _demux
from glmtui.docker.errors import EngineConnectionError, EngineHTTPError
from glmtui.docker.spec import LABEL_MANAGED, check_name, checkpoints_name, volume_name
from glmtui.errors import BadInput, GlmtuiError, NotFound, WorkFailed

HELPER_IMAGE = "glmtui/workspace:latest"  # has git and python3
LABEL_CHECKPOINTS = "glmtui.checkpoints"
ID_PATTERN = re.compile(r"^[0-9a-f]{4,40}$")
MISSING = 3  # the helper's exit status when there is no such checkpoint
_SOURCE = (Path(__file__).parent / "checkpoint_helper.py").read_text


@dataclass(frozen=True)
class Checkpoint:
    id: str
    time: datetime
    message: str
    files_changed: int
    unchanged: bool = False  # taken when nothing had changed since the latest: that one

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(data["id"], datetime.fromtimestamp(data["time"], tz=timezone.utc), data["message"],
                   data["files_changed"], data.get("unchanged", False))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time.isoformat(), "message": self.message,
                "files_changed": self.files_changed}


@dataclass(frozen=True)
class Rollback:
    rescue: Checkpoint  # the workspace as it was just before, so the rollback can be undone
    checkpoint: Checkpoint


def check_id(checkpoint: str) -> str:
    if not ID_PATTERN.match(checkpoint or ""):
        raise BadInput(f"{checkpoint!r} is not a checkpoint id", hint="`glmtui env checkpoints NAME` lists them")
    return checkpoint


class Checkpoints:
    """The checkpoints of one environment on one engine."""

    def __init__(self, engine: Engine, env_name: str) -> None:
        self.engine = engine
        self.env_name = check_name(env_name)
        self.container = checkpoints_name(env_name)

    async def take(self, message: str = "", *, reuse: bool = False) -> Checkpoint:
        """A checkpoint of the workspace as it is; with `reuse`, the latest one when nothing changed."""
        return Checkpoint.from_json(await self._run("take", message, "reuse" if reuse else "new"))

    async def list(self) -> list[Checkpoint]:
        """Newest first."""
        return [Checkpoint.from_json(item) for item in await self._run("list")]

    async def diff(self, checkpoint: str | None = None) -> str:
        """What changed in the workspace since `checkpoint` (the latest by default), as a patch."""
        return (await self._run("diff", *([check_id(checkpoint)] if checkpoint else [])))["patch"]

    async def rollback(self, checkpoint: str) -> Rollback:
        found = await self._run("rollback", check_id(checkpoint))
        return Rollback(Checkpoint.from_json(found["rescue"]), Checkpoint.from_json(found["checkpoint"]))

    async def _run(self, *args: str) -> Any:
        await self.engine.get_environment(self.env_name)  # no environment: NotFound, and no helper made
        await self._ensure_helper()
        stdout, stderr, code = await self._exec(["python3", "-c", _SOURCE(), *args])
        detail = stderr.decode(errors="replace").strip().splitlines()
        if code == MISSING:
            raise NotFound(f"{detail[-1]} {self.env_name!r}", hint=f"`glmtui env checkpoints {self.env_name}` lists them")
        if code != 0:
            raise WorkFailed(f"checkpoint {args[0]} in environment {self.env_name!r} failed: "
                             f"{detail[-1] if detail else f'exit status {code}'}")
        return json.loads(stdout)

    async def _ensure_helper(self) -> None:
        wire = self.engine._wire
        try:
            state = (await wire.json("GET", f"/containers/{self.container}/json"))["State"]
        except EngineHTTPError as err:
            if err.status != 404:
                raise GlmtuiError(f"checkpoint helper of {self.env_name!r}: {err.message}") from None
            await self._create_helper()
            state = {"Running": False}
        except EngineConnectionError as err:
            from glmtui.docker.errors import unreachable

            raise unreachable(self.engine.host, err, self.engine.name) from None
        if not state.get("Running"):
            async with self.engine._translate(f"checkpoint helper of {self.env_name!r}"):
                await wire.json("POST", f"/containers/{self.container}/start")

    async def _create_helper(self) -> None:
        await self.engine.ensure_image(HELPER_IMAGE)
        labels = {LABEL_MANAGED: "true", LABEL_CHECKPOINTS: self.env_name}
        async with self.engine._translate(f"checkpoint volume of {self.env_name!r}"):
            await self.engine._wire.json("POST", "/volumes/create", body={"Name": self.container, "Labels": labels})
        config = {
            "Image": HELPER_IMAGE,
            "Entrypoint": ["tail"],
            "Cmd": ["-f", "/dev/null"],
            "User": "0:0",
            "Labels": labels,
            "HostConfig": {
                "Binds": [f"{volume_name(self.env_name)}:/workspace", f"{self.container}:/checkpoints"],
                "NetworkMode": "none",
                "Memory": 512 * 1024**2,
                "PidsLimit": 256,
                "Init": True,
                "SecurityOpt": ["no-new-privileges"],
                "CapDrop": ["ALL"],
                # read every file, set owners and modes back on a rollback
                "CapAdd": ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID"],
            },
        }
        try:
            await self.engine._wire.json("POST", "/containers/create", params={"name": self.container}, body=config)
        except EngineHTTPError as err:
            if err.status != 409:  # 409: made by another glmtui at the same moment
                raise GlmtuiError(f"checkpoint helper of {self.env_name!r}: {err.message}") from None

    async def _exec(self, argv: list[str]) -> tuple[bytes, bytes, int]:
        engine = self.engine
        async with engine._translate(f"checkpoint helper of {self.env_name!r}"):
            created = await engine._wire.json("POST", f"/containers/{self.container}/exec", body={
                "Cmd": argv, "AttachStdout": True, "AttachStderr": True, "Tty": False,
            })
            engine._wire.reserve(2)
            out, err = bytearray(), bytearray()
            async with engine._wire.request("POST", f"/exec/{created['Id']}/start",
                                            body=json.dumps({"Detach": False, "Tty": False}).encode()) as response:
                async for fd, data in _demux(response.iter_any(), tty=False):
                    (err if fd == 2 else out).extend(data)
        return bytes(out), bytes(err), await engine._exec_exit_code(created["Id"])

