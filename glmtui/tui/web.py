"""The TUI of one browser tab of the web dashboard: `python -m glmtui.tui.web`.

`glmtui serve` starts it for each tab (glmtui.server.dashboard), under Textual's web driver,
with the address of its API in GLMTUI_SERVE_URL (and, under TLS, its certificate in
GLMTUI_SERVE_CERT). It is the TUI with a RemoteBackend (glmtui.service.remote): the runs it
starts are serve's, and go on when the tab closes. The token is read from the token file,
as serve's own user may.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    from glmtui.server.auth import TokenFile
    from glmtui.service.remote import RemoteBackend
    from glmtui.tui.app import GlmtuiApp

    url = os.environ.get("GLMTUI_SERVE_URL")
    if not url:
        print("glmtui.tui.web: GLMTUI_SERVE_URL is not set: glmtui serve starts this for a browser tab",
              file=sys.stderr)
        return 2
    cert = os.environ.get("GLMTUI_SERVE_CERT")
    token = TokenFile()
    backend = RemoteBackend(url, token.read, cert=Path(cert) if cert else None)
    return GlmtuiApp(backend_factory=lambda: backend).run() or 0


if __name__ == "__main__":
    sys.exit(main())
