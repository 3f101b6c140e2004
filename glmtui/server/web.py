"""The HTTP face of `glmtui serve`: its settings from the config, the app, and its server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glmtui.server.api import PREFIX, Api
from glmtui.server.app import Face, Settings, build_app
from glmtui.server.auth import HostNames, TokenFile
from glmtui.server.hooks import hooks_of
from glmtui.server.listen import Bind, HttpServer
from glmtui.server.plans import PlanCatalog
from glmtui.server.policy import describe
from glmtui.units import parse_size


class HttpFace:
    """Everything served over HTTP, on one address: the API and the faces beside it."""

    def __init__(self, service: Any, config: Any, bind: Bind, log: Any, plans: PlanCatalog,
                 faces: Sequence[Face] = ()) -> None:
        token = TokenFile()
        _, self.token_made = token.ensure()
        hooks, secrets = hooks_of(config.get("serve.hooks"))
        self.settings = Settings(
            token=token,
            hosts=HostNames(bind.host, config.get("serve.hosts")),
            plans=plans,
            max_body=parse_size(config.get("serve.max_body"), what="serve.max_body"),
            log=log.line,
            log_path=log.path,
            cors_origins=config.get("serve.cors_origins"),
            hooks=hooks,
            hook_secrets=secrets,
            hook_window=config.get("serve.hook_window"),
        )
        self.faces = list(faces)
        self.api = Api(service, self.settings)
        self.server = HttpServer(build_app(self.api, self.settings, self.faces), bind, log.line,
                                 [face.lifespan for face in self.faces if face.lifespan is not None])
        self.url = bind.url(self.server.port)

    def describe(self) -> list[str]:
        """What it serves where, for the start line."""
        folders = ", ".join(str(folder) + ("" if folder.is_dir() else " (no such folder yet)")
                            for folder in self.settings.plans.folders)
        made = "; made now" if self.token_made else ""
        parts = [f"API at {self.url}{PREFIX} (token: `glmtui serve token`{made})"]
        parts += [f"{face.what} at {self.url}{face.path}" for face in self.faces]
        parts.append(f"plans from {folders or 'no folder'} with {describe(self.settings.plans.policy)} (serve.allow)")
        if self.settings.hooks:
            parts.append("webhooks " + ", ".join(f"{name} ({hook.target})" for name, hook in self.settings.hooks.items()))
        return parts

    async def run(self) -> None:
        await self.server.run()

    def refuse_new_work(self) -> None:
        self.api.stopping = True

    def stop(self) -> None:
        self.server.stop()
