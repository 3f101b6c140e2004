"""Remembers plan documents that passed the JSON Schema, so running an unchanged plan skips
importing and running jsonschema (about 50 ms of every `glmtui --run`).

A document is known by the SHA-256 of the schema and the document's JSON; only documents with no
schema error are remembered. The meaning checks (ids, needs, expressions, inputs) always run.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from glmtui.paths import cache_dir

KEEP = 256  # documents remembered, newest last


def _file():
    return cache_dir() / "schema-valid.txt"


def key(schema: str, data: Any) -> str:
    digest = hashlib.sha256(schema.encode())
    digest.update(json.dumps(data, sort_keys=True, ensure_ascii=False, default=repr).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def known_valid(digest: str) -> bool:
    try:
        return digest in _file().read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return False


def remember_valid(digest: str) -> None:
    """Best effort: a cache that cannot be written only costs the check next time."""
    path = _file()
    try:
        try:
            known = [line for line in path.read_text(encoding="ascii").split() if line != digest]
        except (OSError, UnicodeDecodeError):
            known = []
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        partial.write_text("\n".join([*known[-(KEEP - 1):], digest]) + "\n", encoding="ascii")
        os.replace(partial, path)  # atomic: a concurrent reader sees the old or the new list
    except OSError:
        pass
