"""What a step kind gets to do its work, and what it hands back."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmtui.docker.engine import STDERR
from glmtui.docker.interface import ContainerEngine
from glmtui.events import Output, Sink
from glmtui.masking import Masker
from glmtui.plan.expressions import parse
from glmtui.plan.model import LoadedPlan, Step
from glmtui.steplog import StepLog

TAIL_BYTES = 1024 * 1024  # ${steps.X.stdout} and .stderr keep the last 1 MiB


def render(value: Any, values: Mapping[str, Any]) -> Any:
    """Expressions rendered in a value and everything nested in it."""
    if isinstance(value, str):
        return parse(value).render(values)
    if isinstance(value, dict):
        return {key: render(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, values) for item in value]
    return value


@dataclass
class StepOutcome:
    """What a step kind hands back to the runner."""

    status: str  # success | failure
    exit_code: int | None = None
    reason: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)  # from $GLMTUI_OUTPUT or the kind itself
    response: dict[str, Any] | None = None  # http: ${response...} for the step's outputs
    usage: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific results (turns, ...)


class OutputCapture:
    """A step's output: masked, written to its log file (capped, timed, on disk as it comes, so
    `logs --run` sees it during the run and after a kill), sent as line events, tails kept."""

    def __init__(self, step: str, sink: Sink, masker: Masker, log: StepLog) -> None:
        self.step = step
        self._sink = sink
        self._log = log
        self._streams = {name: _Stream(masker) for name in ("stdout", "stderr")}
        self._record = masker.stream()  # what record() writes: the log only

    def feed(self, fd: int, data: bytes) -> None:
        name = "stderr" if fd == STDERR else "stdout"
        stream = self._streams[name]
        stream.keep(data)
        text = stream.masker.feed(stream.decoder.decode(data))
        self._write(name, stream, text)

    def write_text(self, text: str, name: str = "stdout") -> None:
        """Output a step kind produces itself (an HTTP body, a note)."""
        stream = self._streams[name]
        stream.keep(text.encode())
        self._write(name, stream, stream.masker.feed(text))

    def record(self, text: str) -> None:
        """Text for the log file only (an llm or agent step's transcript, shown on the console
        by its own events): masked, and kept, masked, as the step's stdout."""
        masked = self._record.feed(text)
        if masked:
            self._log.write(masked.encode("utf-8", "surrogateescape"))
            self._streams["stdout"].keep(masked.encode("utf-8", "surrogateescape"))

    def _write(self, name: str, stream: _Stream, text: str) -> None:
        if not text:
            return
        self._log.write(text.encode("utf-8", "surrogateescape"))  # unbuffered: on disk as it comes
        buffered = stream.partial + text
        cut = buffered.rfind("\n")
        if cut < 0:
            stream.partial = buffered
            return
        stream.partial = buffered[cut + 1 :]
        self._sink(Output(self.step, name, buffered[:cut]))

    def close(self) -> None:
        held = self._record.flush()
        if held:
            self._log.write(held.encode("utf-8", "surrogateescape"))
            self._streams["stdout"].keep(held.encode("utf-8", "surrogateescape"))
        for name, stream in self._streams.items():
            rest = stream.masker.feed(stream.decoder.decode(b"", final=True)) + stream.masker.flush()
            if rest:
                self._log.write(rest.encode("utf-8", "surrogateescape"))
            last = stream.partial + rest
            stream.partial = ""
            if last:
                self._sink(Output(self.step, name, last))

    def tail(self, name: str) -> bytes:
        return bytes(self._streams[name].tail[-TAIL_BYTES:])


class _Stream:
    def __init__(self, masker: Masker) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.masker = masker.stream()
        self.partial = ""
        self.tail = bytearray()

    def keep(self, data: bytes) -> None:
        self.tail += data
        if len(self.tail) > 2 * TAIL_BYTES:
            del self.tail[:-TAIL_BYTES]


@dataclass
class StepContext:
    """Everything a kind needs. `values` is the expression context for this step."""

    engine: ContainerEngine
    loaded: LoadedPlan
    step: Step
    environment: str  # the environment's name
    workdir: str
    user: str | None
    env_vars: dict[str, str]  # the environment's and the step's variables, rendered
    values: Mapping[str, Any]
    output: OutputCapture
    run_id: str
    attempt: int
    timeout: float | None
    sink: Sink
    host_path: Callable[..., Path]  # HostAccess.path: resolved, or HostAccessRefused beyond what the run may reach
    host_network: bool = False  # the run may reach the host's own services (permissions: network_host)
    run_workflow: Callable[..., Any] | None = None  # for the `workflow` kind
    auto_approve: bool = False
    leftovers: set[str] = field(default_factory=set)  # files in the environment the run removes at its end
    config: Any = None  # the run's glmtui.config.Config (llm and agent: providers, approval, max_turns)
    masker: Masker | None = None  # the run's: what every sink hides (add_secret() adds an API key)
    approver: Callable[..., Any] | None = None  # asks a person about an agent's tool call; None: nobody
    egress: bool = False  # the environment has an egress allowlist: what its proxy refused goes in the output


def add_secret(masker: Masker | None, value: str | None) -> None:
    """Hide `value` too, from now on, wherever `masker` (and every stream made from it) masks."""
    if masker is not None and value:
        masker.add(value)
