"""aiodocker, imported without loading the system's CA store.

aiohttp builds two TLS contexts when it is imported, and loading the CA store into them costs
about 35 ms: a tenth of a short `glmtui --run`, and of every command that talks to the engine.
glmtui reaches the engine over a unix socket, or over TLS with the engine's own certificates
(DOCKER_CERT_PATH), so those contexts go unused; the `http` step kind makes its own context for
https. OpenSSL is pointed at no store while the import runs, then the variables are restored.
"""

from __future__ import annotations

import os
import sys

_STORE_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")

if "aiohttp" not in sys.modules:
    _saved = {name: os.environ.get(name) for name in _STORE_VARIABLES}
    os.environ.update(dict.fromkeys(_STORE_VARIABLES, os.devnull))
    try:
        import aiohttp  # noqa: F401
    finally:
        for _name, _value in _saved.items():
            if _value is None:
                os.environ.pop(_name, None)
            else:
                os.environ[_name] = _value

import aiodocker  # noqa: E402
import aiohttp  # noqa: E402,F811
from aiodocker.exceptions import DockerError  # noqa: E402
from aiodocker.volumes import DockerVolume  # noqa: E402

__all__ = ["DockerError", "DockerVolume", "aiodocker", "aiohttp"]
