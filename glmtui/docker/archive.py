"""Tar archives for files in and out of containers: the API needs no tool in the image."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path, PurePosixPath

# GNU tar headers keep names as bytes, so non-UTF-8 names survive both ways.
_FORMAT = tarfile.GNU_FORMAT
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


def pack_path(source: Path, arcname: str, uid: int = 0, gid: int = 0) -> bytes:
    """A tar of `source` (file or folder) whose top entry is `arcname`, owned by uid:gid."""

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=_FORMAT, encoding=_ENCODING, errors=_ERRORS) as tar:
        tar.add(os.fsdecode(source), arcname=arcname, recursive=True, filter=owned)
    return buffer.getvalue()


def pack_bytes(name: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=_FORMAT, encoding=_ENCODING, errors=_ERRORS) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = int(time.time())  # now, as any write; 0 would date the file 1970 and fool make
        info.uid, info.gid = uid, gid
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class UnsafeEntry(Exception):
    """An entry of an archive that must not be extracted; `name` is as the archive has it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.name, self.problem = name, problem


def unpack(data: bytes, destination: Path, *, rename_top: str | None = None) -> list[Path]:
    """Extract a tar from the engine into `destination`. Every entry is checked before anything is
    written: a link must point inside the archive's top folder, and nothing may land outside
    `destination` (through `..` or a link on the host); UnsafeEntry names the first that would."""
    destination.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding=_ENCODING, errors=_ERRORS) as tar:
        members = tar.getmembers()
        top = members[0].name.split("/", 1)[0] if members else None
        for member in members:
            _check_link(member, top)
            original = member.name
            if rename_top and top is not None:
                member.name = rename_top + member.name[len(top):]
            try:
                tarfile.data_filter(member, os.fsdecode(destination))
            except tarfile.FilterError as err:
                raise UnsafeEntry(original, _FILTER_PROBLEMS.get(type(err), "cannot be extracted safely")) from None
            written.append(destination / member.name)
        tar.extractall(os.fsdecode(destination), members=members, filter="data")
    return written


_FILTER_PROBLEMS = {
    tarfile.AbsolutePathError: "has an absolute path",
    tarfile.OutsideDestinationError: "would land outside the destination (a link on the host is in the way)",
    tarfile.SpecialFileError: "is a device or another special file",
    tarfile.AbsoluteLinkError: "is a link to an absolute path",
    tarfile.LinkOutsideDestinationError: "is a link that points outside the destination",
}


def _check_link(member: tarfile.TarInfo, top: str | None) -> None:
    """A link (symbolic or hard) must stay inside what is copied: the archive's top entry."""
    if not (member.issym() or member.islnk()):
        return
    link = member.linkname
    if member.issym():
        if link.startswith("/"):
            raise UnsafeEntry(member.name, f"is a link to {link}, outside what is copied")
        link = os.path.normpath(os.path.join(os.path.dirname(member.name), link))
    if top is None or not (link == top or link.startswith(top + "/")):
        raise UnsafeEntry(member.name, f"is a link to {member.linkname}, outside what is copied")


def read_single_file(data: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding=_ENCODING, errors=_ERRORS) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            raise IsADirectoryError("not a regular file")
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()


def owner_ids(user: str, passwd: str, group: str) -> tuple[int, int]:
    """The numeric uid and gid of a container's `User` ("", "1000", "dev", "dev:staff", "1000:1000")."""
    name, _, group_name = user.partition(":")
    uid = gid = 0
    if name.isdigit():
        uid = int(name)
    elif name:
        for line in passwd.splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[0] == name:
                uid, gid = int(fields[2]), int(fields[3])
                break
    if group_name.isdigit():
        gid = int(group_name)
    elif group_name:
        for line in group.splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == group_name:
                gid = int(fields[2])
                break
    elif name.isdigit():
        gid = uid
    return uid, gid


def split_container_path(path: str) -> tuple[str, str]:
    """'/a/b/c' -> ('/a/b', 'c')."""
    pure = PurePosixPath(path)
    return str(pure.parent), pure.name
