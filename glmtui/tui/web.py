"""The TUI of one browser tab of the web dashboard: `python -m glmtui.tui.web`.

`glmtui serve` starts it for each tab (glmtui.server.dashboard), under Textual's web driver,
with the address of its API in GLMTUI_SERVE_URL (and, under TLS, its certificate in
GLMTUI_SERVE_CERT). It is the TUI with a RemoteBackend (glmtui.service.remote): the runs it
starts are serve's, and go on when the tab closes. The token is read from the token file,
as serve's own user may. It quits with its tab, when serve stops, and when serve is gone.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


def main() -> int:
    from glmtui import paths
    from glmtui.service.remote import RemoteBackend
    from glmtui.tui.app import GlmtuiApp

    url = os.environ.get("GLMTUI_SERVE_URL")
    if not url:
        print("glmtui.tui.web: GLMTUI_SERVE_URL is not set: glmtui serve starts this for a browser tab",
              file=sys.stderr)
        return 2
    cert = os.environ.get("GLMTUI_SERVE_CERT")
    token_file = paths.serve_token_file()  # read for each request: `serve token --rotate` takes effect

    def token() -> str:
        return token_file.read_text(encoding="utf-8").strip()

    backend = RemoteBackend(url, token, cert=Path(cert) if cert else None)
    app = GlmtuiApp(backend_factory=lambda: backend)
    threading.Thread(target=_quit_without_serve, args=(app, os.getppid()), daemon=True).start()
    return app.run() or 0


def _quit_without_serve(app: Any, serve: int) -> None:
    """Serve stops its tabs' TUIs; one that died without doing so (killed) leaves this TUI with
    nobody to talk to, which then quits."""
    while os.getppid() == serve:
        time.sleep(1.0)
    try:
        app.call_from_thread(app.exit)
    except RuntimeError:  # it is not running (any more)
        pass


if __name__ == "__main__":
    sys.exit(main())
