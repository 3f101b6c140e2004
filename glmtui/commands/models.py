"""glmtui models list|check: the model providers, and whether one answers.

The openai SDK and the agent modules are imported inside the commands: `glmtui --help` must
not pay for them. An API key is read from its variable only to make a call, and never printed.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from glmtui.commands.common import print_json, run, state

CHECK_PROMPT = "ping"  # one word; the answer's content does not matter, only that there is one
CHECK_MAX_TOKENS = 5
CHECK_TIMEOUT = "60s"


@click.group("models")
def models_group() -> None:
    """Model providers: OpenAI-compatible endpoints by name (presets and config)."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def list_(as_json: bool) -> None:
    """Every provider (presets and configured): endpoint, model, key variable, the default."""
    rows = _providers(state().config)
    if as_json:
        print_json(rows)
        return
    from glmtui.render import table

    def key_text(row: dict[str, Any]) -> str:
        if not row["api_key_env"]:
            return "(none needed)"
        return f"{row['api_key_env']} ({'set' if row['key_set'] else 'not set'})"

    table(
        ["", "PROVIDER", "BASE URL", "MODEL", "KEY", "FROM"],
        [["*" if row["default"] else "", row["name"], row["base_url"] or "-", row["model"] or "-", key_text(row),
          row["source"]] for row in rows],
    )
    default = state().config.get("default_provider")
    names = [row["name"] for row in rows]
    if default and default not in names:
        click.echo(f"default_provider {default!r} is not a provider above", err=True)
    elif not default:
        click.echo("no default provider (glmtui config set default_provider NAME)")
    else:
        click.echo(f"* the default provider ({default})")
    for row in rows:
        if row["problem"]:
            click.echo(f"note: {row['problem']}", err=True)


def _providers(config: Any) -> list[dict[str, Any]]:
    """What `models list` shows: each provider's settings as resolved, never a key's value."""
    import os

    from glmtui.agent.providers import PRESETS, known, resolve
    from glmtui.errors import BadInput

    configured = config.providers()
    default = config.get("default_provider")
    rows = []
    for name in known(configured):
        settings = {**PRESETS.get(name, {}), **(configured.get(name) or {})}
        problem = None
        try:
            provider = resolve(config, name)
            base_url, model, key_env = provider.base_url, provider.model, provider.api_key_env
        except BadInput as err:  # shown with what is known, and why it cannot be used as it is
            problem = str(err)
            base_url, model = settings.get("base_url") or None, settings.get("model") or None
            key_env = settings.get("api_key_env") or None
        source = "preset" if name not in configured else ("preset + config" if name in PRESETS else "config")
        rows.append({
            "name": name,
            "base_url": base_url,
            "model": model,
            "api_key_env": key_env,
            "key_set": bool(os.environ.get(key_env)) if key_env else None,
            "default": name == default,
            "source": source,
            "problem": problem,
        })
    return rows


@models_group.command("check")
@click.argument("provider", required=False)
@click.option("--model", "-m", help="Check this model instead of the provider's.")
@click.option("--all", "check_all", is_flag=True,
              help="Every provider whose key variable is set (or that needs none).")
@click.option("--timeout", default=CHECK_TIMEOUT, show_default=True, help="Give up after this long.")
@click.option("--json", "as_json", is_flag=True, help="As JSON (an array with --all).")
def check(provider: str | None, model: str | None, check_all: bool, timeout: str, as_json: bool) -> None:
    """Make one tiny call (a one-word prompt, a few tokens) and say in one line whether it works.

    Without PROVIDER: the default provider. Not retried: it says what happened the first time.
    Exit status 1 when the call failed, 2 when it could not be made (no key, unknown provider).
    """
    from glmtui.errors import BadInput
    from glmtui.units import parse_duration

    seconds = parse_duration(timeout, what="--timeout")
    if seconds <= 0:
        raise BadInput("--timeout must be above 0")
    config = state().config
    if check_all:
        if provider or model:
            raise BadInput("--all checks every provider with its own model: no PROVIDER or --model with it")
        _check_all(config, seconds, as_json)
        return

    from glmtui.agent.providers import resolve

    chosen = resolve(config, provider, model)
    api_key = chosen.api_key()  # BadInput naming the variable when it is not set: exit 2, nothing done
    result = run(lambda: _check_one(chosen, api_key, seconds))
    error = result.pop("_error", None)
    if as_json:
        print_json(result)
    elif error is not None:
        raise error  # its one line, exit status 1
    else:
        click.echo(_line(result))
    if error is not None:
        sys.exit(1)


def _check_all(config: Any, seconds: float, as_json: bool) -> None:
    import asyncio

    from glmtui.agent.providers import known, resolve
    from glmtui.errors import BadInput

    candidates, skipped = [], []
    for name in known(config.providers()):
        try:
            chosen = resolve(config, name)
        except BadInput as err:  # e.g. the vllm preset without a model: nothing to call
            skipped.append((name, err.message))
            continue
        try:
            candidates.append((chosen, chosen.api_key()))
        except BadInput:
            skipped.append((name, f"{chosen.api_key_env} is not set"))
    if not candidates:
        raise BadInput("no provider to check: none has its key variable set",
                       hint="export the variable `glmtui models list` names")

    async def work() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(_check_one(chosen, key, seconds) for chosen, key in candidates)))

    results = run(work)
    for r in results:
        r.pop("_error", None)
    failed = any(not r["ok"] for r in results)
    if as_json:
        print_json(results + [{"provider": name, "ok": None, "skipped": why} for name, why in skipped])
    else:
        for r in results:
            click.echo(_line(r) if r["ok"] else _failed_line(r))
        if skipped:
            click.echo("not checked: " + "; ".join(f"{name} ({why})" for name, why in skipped))
    if failed:
        sys.exit(1)


async def _check_one(provider: Any, api_key: str, seconds: float) -> dict[str, Any]:
    """One tiny streamed call: its time, first token, usage; or the ModelError, never retried."""
    import time

    from glmtui.agent.client import ModelClient, ModelError

    result: dict[str, Any] = {"provider": provider.name, "model": provider.model, "base_url": provider.base_url}
    first: list[float] = []

    def mark(_piece: str) -> None:
        if not first:
            first.append(time.perf_counter())

    client = ModelClient(provider, api_key=api_key, timeout=seconds, retries=0)
    started = time.perf_counter()
    try:
        reply = await client.stream([{"role": "user", "content": CHECK_PROMPT}], max_tokens=CHECK_MAX_TOKENS,
                                    on_text=mark, on_reasoning=mark)
    except ModelError as err:
        result.update(ok=False, seconds=round(time.perf_counter() - started, 3),
                      error={"kind": err.kind, "message": str(err)}, _error=err)
        return result
    finally:
        await client.close()
    elapsed = time.perf_counter() - started
    result.update(
        ok=True,
        seconds=round(elapsed, 3),
        first_token_seconds=round(first[0] - started, 3) if first else None,
        input_tokens=reply.usage.input_tokens if reply.usage else None,
        output_tokens=reply.usage.output_tokens if reply.usage else None,
        finish_reason=reply.finish_reason,
        reply=(reply.content or reply.reasoning)[:200],
    )
    return result


def _line(result: dict[str, Any]) -> str:
    if result["input_tokens"] is None:
        usage = "no token usage reported"
    else:
        usage = f"{result['input_tokens']} tokens in, {result['output_tokens']} out"
    return f"{result['provider']}: ok — {result['model']} answered in {result['seconds']:.2f} s ({usage})"


def _failed_line(result: dict[str, Any]) -> str:
    name, message = result["provider"], result["error"]["message"]
    return f"{name}: failed — {message.removeprefix(f'{name}: ')}"
