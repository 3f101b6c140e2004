"""Plan files to plain data, with the file, line and column of every node.

The YAML is read as a stream of parser events (libyaml where present) and put
together here rather than by PyYAML's composer, so that every limit holds while
reading: the node count (aliases counted as many times as they expand, so an
alias bomb stops at once), the nesting depth (no recursion, so no stack to
overflow), duplicate keys and unsafe tags.
"""

from __future__ import annotations

import copy
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from glmtui.errors import BadInput
from glmtui.plan.model import KINDS, Location, PlanError, PlanInvalid

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 100

Path_ = tuple[str | int, ...]  # a JSON path: keys and list indexes

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_SCALAR_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "null")}
_TEXT_TAGS = {_TAG + name for name in ("timestamp", "value", "merge")}  # kept as the text written
_MAP_TAGS = {None, "!", _TAG + "map"}
_SEQ_TAGS = {None, "!", _TAG + "seq"}
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()


@dataclass
class Document:
    """Plan data (one file, or several merged) and where each node was written."""

    data: Any
    files: tuple[Path, ...]
    locations: dict[Path_, Location] = field(default_factory=dict)  # path -> the value's start
    key_locations: dict[Path_, Location] = field(default_factory=dict)  # path -> its key's start

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        """Where the node at `path` (or its key) was written, else its nearest ancestor."""
        path = tuple(path)
        if key and path in self.key_locations:
            return self.key_locations[path]
        for end in range(len(path), -1, -1):
            found = self.locations.get(path[:end])
            if found is not None:
                return found
        return Location(self.files[0], 1, 1)


def load_documents(paths: Sequence[Path]) -> Document:
    """Read plan files; several are merged, later ones winning (see docs/plan-format.md)."""
    if not paths:
        raise BadInput("no plan file given")
    documents = [parse_yaml(read_text(path), path) for path in paths]
    for document in documents:
        if not isinstance(document.data, dict):
            what = "empty" if document.data is None else f"a {_type_name(document.data)}"
            raise _invalid(document.locate(()), f"a plan is a YAML mapping (key: value lines), but this file is {what}")
    merged = documents[0]
    for document in documents[1:]:
        merged = merge_documents(merged, document)
    return merged


def read_text(path: Path, what: str = "plan file") -> str:
    """A file glmtui reads (plan, input file, env file) as text: a regular file of at most
    MAX_FILE_BYTES, so that no FIFO, device or huge sparse file can block or fill memory."""
    start = Location(path, 1, 1)
    try:
        with open(path, "rb", opener=_open_nonblocking) as stream:
            mode = os.fstat(stream.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise _invalid(start, f"is {_special_kind(mode)}; {_a(what)} must be a regular file")
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _invalid(start, "no such file") from None
    except IsADirectoryError:
        raise _invalid(start, f"is a folder, not a {what}") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket cannot be opened
            raise _invalid(start, f"is a socket; {_a(what)} must be a regular file") from None
        raise _invalid(start, f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _invalid(start, f"the file is over the size limit of {what}s ({MAX_FILE_BYTES // 1024**2} MiB)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid(_byte_location(path, data, exc.start), "the file is not UTF-8 text") from None


def _open_nonblocking(path: str, flags: int) -> int:
    """Opening a FIFO for reading waits for a writer; without blocking it does not."""
    return os.open(path, flags | os.O_NONBLOCK)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (a named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"


def parse_yaml(text: str, path: Path) -> Document:
    """One YAML document to a Document; any YAML problem raises PlanInvalid."""
    composer = _Composer(path)
    try:
        composer.run(yaml.parse(text, Loader=_Parser))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        if context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise _invalid(location, f"not valid YAML: {exc.problem or exc.context}{context}") from None
    except yaml.reader.ReaderError as exc:
        location = _byte_location(path, text.encode(), exc.position)
        raise _invalid(location, f"not valid YAML: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise _invalid(Location(path, 1, 1), f"not valid YAML: {exc}") from None
    if composer.errors:
        raise PlanInvalid(composer.errors)
    return Document(composer.root, (path,), composer.locations, composer.key_locations)


class _Limit(Exception):
    def __init__(self, error: PlanError) -> None:
        self.error = error


_MERGE = object()  # the pending key of a mapping after `<<:`


class _Frame:
    __slots__ = ("value", "path", "anchor", "nodes_before", "key", "merge_location", "merges")

    def __init__(self, value: dict | list, path: Path_, anchor: str | None, nodes_before: int) -> None:
        self.value = value
        self.path = path
        self.anchor = anchor
        self.nodes_before = nodes_before
        self.key: Any = None  # mappings: the key whose value comes next
        self.merge_location: Location | None = None
        self.merges: list[dict] = []


class _Composer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.root: Any = None
        self.documents = 0
        self.nodes = 0
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}  # name -> (value, node count)
        self.open_anchors: set[str] = set()
        self.locations: dict[Path_, Location] = {}
        self.key_locations: dict[Path_, Location] = {}
        self.errors: list[PlanError] = []

    def run(self, events: Iterator[yaml.Event]) -> None:
        try:
            for event in events:
                self.event(event)
        except _Limit as limit:
            raise PlanInvalid([limit.error]) from None

    def here(self, event: yaml.Event) -> Location:
        return Location(self.path, event.start_mark.line + 1, event.start_mark.column + 1)

    def count(self, nodes: int, event: yaml.Event) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            message = f"the YAML expands to more than {MAX_NODES} nodes (an alias bomb?); plan files are limited to {MAX_NODES}"
            raise _Limit(PlanError.at(self.here(event), message))

    def event(self, event: yaml.Event) -> None:
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise _Limit(PlanError.at(self.here(event), "a plan file holds one YAML document, this one has several"))
        elif isinstance(event, ScalarEvent):
            self.scalar(event)
        elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            self.start(event)
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            self.end()
        elif isinstance(event, AliasEvent):
            self.alias(event)

    def value_path(self, event: yaml.Event) -> Path_ | None:
        """The path of the node starting now, or None when it is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.key is None:
            return None
        return (*top.path, top.key) if top.key is not _MERGE else (*top.path, "<<")

    def scalar(self, event: ScalarEvent) -> None:
        self.count(1, event)
        path = self.value_path(event)
        if path is None:
            self.key(event)
            return
        self.locations[path] = self.here(event)
        value = self.construct(event)
        if event.anchor:
            self.anchors[event.anchor] = (value, 1)
        self.place(value, event)

    def key(self, event: ScalarEvent) -> None:
        top = self.stack[-1]
        if event.value == "<<" and event.tag is None and event.implicit[0]:  # plain, not quoted
            top.key, top.merge_location = _MERGE, self.here(event)
            return
        key = event.value
        if key in top.value:
            first = self.key_locations[(*top.path, key)]
            self.errors.append(PlanError.at(self.here(event), f"duplicate key {key!r} (first at line {first.line})"))
        self.key_locations[(*top.path, key)] = self.here(event)
        top.key = key

    def construct(self, event: ScalarEvent) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(ScalarNode, event.value, event.implicit)
        if tag == _STR or tag in _TEXT_TAGS:
            return event.value
        if tag not in _SCALAR_TAGS:
            self.errors.append(PlanError.at(self.here(event), f"unsupported YAML tag {_short_tag(event.tag)}"))
            return event.value
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return SafeConstructor.yaml_constructors[tag](_CONSTRUCTOR, node)
        except (ValueError, yaml.YAMLError):  # e.g. `0x_`, which the int pattern lets through
            return event.value

    def start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        self.count(1, event)
        path = self.value_path(event)
        if path is None:
            raise _Limit(PlanError.at(self.here(event), "a mapping key must be a plain value, not a list or a mapping"))
        if len(self.stack) >= MAX_DEPTH:
            raise _Limit(PlanError.at(self.here(event), f"the YAML is nested deeper than {MAX_DEPTH} levels"))
        is_map = isinstance(event, MappingStartEvent)
        if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
            self.errors.append(PlanError.at(self.here(event), f"unsupported YAML tag {_short_tag(event.tag)}"))
        self.locations[path] = self.here(event)
        if event.anchor:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame({} if is_map else [], path, event.anchor, self.nodes))

    def end(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            for merged in frame.merges:
                for key, value in merged.items():
                    if key not in frame.value:
                        frame.value[key] = value
                        self.key_locations[(*frame.path, key)] = frame.merge_location
                        self.locations[(*frame.path, key)] = frame.merge_location
        if frame.anchor:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (frame.value, self.nodes - frame.nodes_before + 1)
        self.place(frame.value, None)

    def alias(self, event: AliasEvent) -> None:
        path = self.value_path(event)
        if path is None:
            raise _Limit(PlanError.at(self.here(event), "an alias cannot be a mapping key"))
        if event.anchor in self.open_anchors:
            message = f"alias *{event.anchor} refers to a node that holds it (recursive aliases are not supported)"
            raise _Limit(PlanError.at(self.here(event), message))
        if event.anchor not in self.anchors:
            raise _Limit(PlanError.at(self.here(event), f"alias *{event.anchor} has no anchor &{event.anchor} before it"))
        value, size = self.anchors[event.anchor]
        self.count(size, event)
        self.locations[path] = self.here(event)
        self.place(copy.deepcopy(value), event)

    def place(self, value: Any, event: yaml.Event | None) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                self.errors.append(PlanError.at(top.merge_location, "`<<:` merges a mapping or a list of mappings"))
            else:
                top.merges.extend(sources)
            top.key = None
        else:
            top.value[top.key] = value
            top.key = None


# --- merging several files ---------------------------------------------------------------


def merge_documents(base: Document, over: Document) -> Document:
    """`over` on top of `base`: mappings deep-merge, steps merge by id, the rest is replaced."""
    merged = Document(None, base.files + over.files)
    merged.data = _Merge(base, over, merged).merge(base.data, (), over.data, (), ())
    return merged


def _is_steps(path: Path_) -> bool:
    return path == ("steps",) or (len(path) == 3 and path[0] == "workflows" and path[2] == "steps")


class _Merge:
    def __init__(self, base: Document, over: Document, out: Document) -> None:
        self.base, self.over, self.out = base, over, out

    def take(self, value: Any, source: Document, from_path: Path_, to_path: Path_) -> Any:
        """`value` unchanged, its locations copied from `source`."""
        self.relocate(source, from_path, to_path)
        if isinstance(value, dict):
            for key, item in value.items():
                self.take(item, source, (*from_path, key), (*to_path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.take(item, source, (*from_path, index), (*to_path, index))
        return value

    def relocate(self, source: Document, from_path: Path_, to_path: Path_) -> None:
        if from_path in source.locations:
            self.out.locations[to_path] = source.locations[from_path]
        if from_path in source.key_locations:
            self.out.key_locations[to_path] = source.key_locations[from_path]

    def merge(self, a: Any, a_path: Path_, b: Any, b_path: Path_, path: Path_) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            self.relocate(self.over, b_path, path)
            result = {}
            for key, value in a.items():
                if key in b:
                    result[key] = self.merge(value, (*a_path, key), b[key], (*b_path, key), (*path, key))
                else:
                    result[key] = self.take(value, self.base, (*a_path, key), (*path, key))
            for key, value in b.items():
                if key not in a:
                    result[key] = self.take(value, self.over, (*b_path, key), (*path, key))
            return result
        if isinstance(a, list) and isinstance(b, list) and _is_steps(path):
            return self.merge_steps(a, a_path, b, b_path, path)
        return self.take(b, self.over, b_path, path)

    def merge_steps(self, a: list, a_path: Path_, b: list, b_path: Path_, path: Path_) -> list:
        self.relocate(self.over, b_path, path)
        by_id = {step["id"]: index for index, step in enumerate(b) if isinstance(step, dict) and isinstance(step.get("id"), str)}
        result = []
        for index, step in enumerate(a):
            step_id = step.get("id") if isinstance(step, dict) else None
            if step_id in by_id:
                other = by_id.pop(step_id)
                base = _without_replaced_kind(step, b[other])
                result.append(self.merge(base, (*a_path, index), b[other], (*b_path, other), (*path, len(result))))
            else:
                result.append(self.take(step, self.base, (*a_path, index), (*path, len(result))))
        remaining = set(by_id.values())
        for index, step in enumerate(b):
            if index in remaining or not (isinstance(step, dict) and isinstance(step.get("id"), str)):
                result.append(self.take(step, self.over, (*b_path, index), (*path, len(result))))
        return result


def _without_replaced_kind(base: dict, over: dict) -> dict:
    """A step whose override sets another kind loses its own kind (and with/shell)."""
    new_kinds = {kind for kind in KINDS if kind in over}
    if not new_kinds or new_kinds <= set(base):
        return base
    return {key: value for key, value in base.items() if key not in KINDS and key not in ("with", "shell")}


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _invalid(location: Location, message: str) -> PlanInvalid:
    return PlanInvalid([PlanError.at(location, message)])


def _byte_location(path: Path, data: bytes, offset: int) -> Location:
    before = data[:offset]
    line_start = before.rfind(b"\n") + 1
    return Location(path, before.count(b"\n") + 1, len(before[line_start:].decode("utf-8", "replace")) + 1)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "list" if isinstance(value, list) else "string"
