"""Webhooks: `POST /api/v1/hooks/NAME` starts the plan or agent that config `serve.hooks.NAME`
names, with the JSON body as the input `payload`. The signature is the hook's authentication
(no bearer token): an HMAC-SHA256 of the body with the hook's secret, in either form:

- GitHub's `X-Hub-Signature-256: sha256=HEX`, with its delivery id in `X-GitHub-Delivery`;
- `X-Glmtui-Signature: t=UNIX_SECONDS,v1=HEX`, the HMAC of `T.BODY` (the timestamp, a dot,
  the body), with an optional delivery id in `X-Glmtui-Delivery`.

A delivery is refused as a replay when its signature or its delivery id was seen before
(accepted deliveries are remembered for `keep_runs_days`), or when its signed timestamp is
further from now than `serve.hook_window`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from glmtui.errors import BadInput
from glmtui.server.http import ApiError

GITHUB_SIGNATURE = "x-hub-signature-256"
GITHUB_DELIVERY = "x-github-delivery"
SIGNATURE = "x-glmtui-signature"
DELIVERY = "x-glmtui-delivery"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hook_deliveries (
    hook TEXT NOT NULL,
    key TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (hook, key)
);
"""


@dataclass(frozen=True)
class Hook:
    name: str
    secret_env: str
    plan: str | None = None
    agent: str | None = None
    workflow: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"plan {self.plan}" if self.plan else f"agent {self.agent}"


def hooks_of(value: dict[str, Any], environ: Mapping[str, str] | None = None) -> tuple[dict[str, Hook], dict[str, bytes]]:
    """The configured hooks and their secrets; BadInput when a secret's variable is not set."""
    environ = os.environ if environ is None else environ
    hooks, secrets = {}, {}
    for name, raw in value.items():
        hook = Hook(name, raw["secret_env"], raw.get("plan"), raw.get("agent"), raw.get("workflow"),
                    dict(raw.get("inputs") or {}))
        secret = environ.get(hook.secret_env, "")
        if not secret:
            raise BadInput(f"serve.hooks.{name}: the variable {hook.secret_env} (its secret_env) is not set in "
                           "serve's environment", hint="set it, or remove the hook")
        hooks[name], secrets[name] = hook, secret.encode()
    return hooks, secrets


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float, window: float) -> list[str]:
    """The delivery's replay keys when its signature is good; ApiError 401 otherwise."""
    if SIGNATURE in headers:
        fields = dict(part.strip().partition("=")[::2] for part in headers[SIGNATURE].split(","))
        stamp, given = fields.get("t", ""), fields.get("v1", "")
        if not stamp.isdigit() or not given:
            raise ApiError(401, f"{SIGNATURE} is not t=UNIX_SECONDS,v1=HEX")
        expected = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise ApiError(401, "the signature does not match the body (HMAC-SHA256 of T.BODY with the hook's secret)")
        off = abs(now - int(stamp))
        if off > window:
            raise ApiError(401, f"the signed timestamp is {off:.0f}s from now, more than serve.hook_window "
                                f"({window:g}s): a replay, or a clock that is off")
        delivery = headers.get(DELIVERY)
    elif GITHUB_SIGNATURE in headers:
        scheme, _, given = headers[GITHUB_SIGNATURE].partition("=")
        if scheme != "sha256" or not given:
            raise ApiError(401, f"{GITHUB_SIGNATURE} is not sha256=HEX")
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise ApiError(401, "the signature does not match the body (HMAC-SHA256 with the hook's secret)")
        delivery = headers.get(GITHUB_DELIVERY)
    else:
        raise ApiError(401, f"the delivery is not signed: send {SIGNATURE} (t=UNIX_SECONDS,v1=HEX) "
                            f"or {GITHUB_SIGNATURE} (sha256=HEX)")
    keys = [f"signature:{expected}"]
    if delivery:
        keys.append(f"delivery:{delivery[:200]}")
    return keys


class Deliveries:
    """The deliveries accepted, by hook, in the store's database (a restart forgets none)."""

    def __init__(self, store: Any, keep_days: float) -> None:
        self._db = store.connection
        self._db.executescript(_SCHEMA)
        self.keep = keep_days * 86400

    def seen(self, hook: str, keys: list[str]) -> bool:
        marks = ",".join("?" * len(keys))
        return self._db.execute(f"SELECT 1 FROM hook_deliveries WHERE hook = ? AND key IN ({marks}) LIMIT 1",
                                (hook, *keys)).fetchone() is not None

    def remember(self, hook: str, keys: list[str]) -> None:
        now = time.time()
        self._db.execute("DELETE FROM hook_deliveries WHERE seen < ?", (now - self.keep,))
        self._db.executemany("INSERT OR REPLACE INTO hook_deliveries (hook, key, seen) VALUES (?, ?, ?)",
                             [(hook, key, now) for key in keys])

    def forget(self, hook: str, keys: list[str]) -> None:
        """A delivery that did not start anything: it may come again."""
        self._db.executemany("DELETE FROM hook_deliveries WHERE hook = ? AND key = ?", [(hook, key) for key in keys])
