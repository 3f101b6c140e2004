"""Model providers: OpenAI-compatible endpoints by name, from presets and the config.

The API key is read from the named variable on the host when a client is made; it is never
stored in a Provider, a record, an event or a container (the `command` driver passes it to
the agent program by name, which is its purpose).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from glmtui.errors import BadInput, did_you_mean

ZAI_ANTHROPIC = "https://api.z.ai/api/anthropic"  # for coding CLIs such as Claude Code

PRESETS: dict[str, dict[str, Any]] = {
    "zai": {"base_url": "https://api.z.ai/api/paas/v4", "api_key_env": "ZAI_API_KEY", "model": "glm-4.6",
            "anthropic_base_url": ZAI_ANTHROPIC},
    "zai-coding": {"base_url": "https://api.z.ai/api/coding/paas/v4", "api_key_env": "ZAI_API_KEY",
                   "model": "glm-4.6", "anthropic_base_url": ZAI_ANTHROPIC},
    "openai": {"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY", "model": "gpt-4.1-mini"},
    "ollama": {"base_url": "http://localhost:11434/v1", "api_key_env": None, "model": "qwen2.5-coder"},
    "vllm": {"base_url": "http://localhost:8000/v1", "api_key_env": None, "model": None},
}
FIELDS = ("base_url", "api_key_env", "model", "extra_body", "headers", "anthropic_base_url")


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    model: str
    api_key_env: str | None = None  # None: the endpoint takes no key (ollama, a local vLLM)
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # e.g. GLM's {"thinking": {"type": "enabled"}}
    headers: Mapping[str, str] = field(default_factory=dict)
    anthropic_base_url: str | None = None

    def api_key(self, environ: Mapping[str, str] | None = None) -> str:
        """The key from the host's environment; a clear error naming the variable when unset."""
        if self.api_key_env is None:
            return "not-needed"
        value = (os.environ if environ is None else environ).get(self.api_key_env, "")
        if not value:
            raise BadInput(
                f"provider {self.name}: the variable {self.api_key_env} is not set",
                hint=f"export {self.api_key_env}=... in the shell that starts glmtui",
            )
        return value

    def with_model(self, model: str | None) -> Provider:
        return replace(self, model=model) if model else self


def known(config_providers: Mapping[str, Any]) -> list[str]:
    return sorted({*PRESETS, *config_providers})


def api_keys(config: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """The API keys on the host: the values of every known provider's `api_key_env` that are set."""
    environ = os.environ if environ is None else environ
    configured: dict[str, Any] = config.providers()
    variables = {
        {**PRESETS.get(name, {}), **(configured.get(name) or {})}.get("api_key_env") for name in known(configured)
    }
    return [environ[variable] for variable in sorted(filter(None, variables)) if environ.get(variable)]


def resolve(config: Any, name: str | None = None, model: str | None = None) -> Provider:
    """The provider `name` (else the config's default_provider): its preset, overridden by
    `providers.NAME.*` in the config; `model` overrides the provider's model."""
    configured: dict[str, Any] = config.providers()
    name = name or config.get("default_provider")
    if not name:
        raise BadInput(
            "no model provider chosen",
            hint=f"name one ({', '.join(known(configured))}) or run `glmtui config set default_provider zai`",
        )
    if name not in PRESETS and name not in configured:
        raise BadInput(f"unknown provider {name!r}{did_you_mean(name, known(configured))}",
                       hint=f"known: {', '.join(known(configured))}; add one with `glmtui config set providers.{name}.base_url URL`")
    settings = {**PRESETS.get(name, {}), **(configured.get(name) or {})}
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise BadInput(f"providers.{name}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], FIELDS)}")
    if not settings.get("base_url"):
        raise BadInput(f"provider {name}: no base_url", hint=f"glmtui config set providers.{name}.base_url URL")
    chosen_model = model or settings.get("model")
    if not chosen_model:
        raise BadInput(f"provider {name}: no model", hint=f"glmtui config set providers.{name}.model NAME")
    return Provider(
        name=name,
        base_url=str(settings["base_url"]).rstrip("/"),
        model=str(chosen_model),
        api_key_env=settings.get("api_key_env") or None,
        extra_body=dict(settings.get("extra_body") or {}),
        headers={str(k): str(v) for k, v in (settings.get("headers") or {}).items()},
        anthropic_base_url=settings.get("anthropic_base_url"),
    )
