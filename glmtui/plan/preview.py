"""What a plan will do, before it runs: for `glmtui plan inspect` and the TUI's plan pane.

Values known before the run (inputs, secrets, env, plan facts, component parameters)
are filled in, secrets masked; references to other steps stay as written.
"""

from __future__ import annotations

from typing import Any

from glmtui.config import Config
from glmtui.masking import Masker
from glmtui.plan.expressions import Expression, ExpressionError, Template, parse, to_text
from glmtui.plan.graph import layers
from glmtui.plan.model import LoadedPlan, Step

KNOWN_BEFORE = {"inputs", "secrets", "env", "plan", "with"}


def fill(text: Any, values: dict[str, Any], masker: Masker) -> str:
    if not isinstance(text, str):
        return masker.mask(to_text(text))
    pieces = []
    for part in parse(text).parts:
        if isinstance(part, Expression):
            roots = {ref.path[0] for ref in Template(part.source, [part]).references()}
            if roots <= KNOWN_BEFORE:
                try:
                    value = part.evaluate(values)
                except ExpressionError:
                    value = None
                if value is not None or "secrets" not in roots:  # an unset secret stays as written
                    pieces.append(to_text(value))
                    continue
            pieces.append(part.source)
        else:
            pieces.append(part)
    return masker.mask("".join(pieces))


def command_of(step: Step, values: dict[str, Any], masker: Masker) -> str:
    spec = step.spec

    def f(value: Any) -> str:
        return fill(value, values, masker)

    if step.kind == "run":
        return f(spec)
    if step.kind == "write":
        return f"write {f(spec.get('path'))} ({len(f(spec.get('content', '')))} chars)"
    if step.kind == "copy":
        return f"copy {f(spec.get('from'))} -> {f(spec.get('to'))}"
    if step.kind == "http":
        return f"{str(spec.get('method', 'GET')).upper()} {f(spec.get('url'))}"
    if step.kind == "workflow":
        return f"workflow {spec}"
    if isinstance(spec, dict) and "prompt" in spec:
        return f"{step.kind}: {f(spec['prompt']).strip()}"
    return f"{step.kind}: {f(to_text(spec))}"


def describe_plan(loaded: LoadedPlan, config: Config) -> dict[str, Any]:
    plan, env = loaded.plan, loaded.plan.env
    masker = Masker(loaded.secrets.values())
    values: dict[str, Any] = {
        "inputs": loaded.inputs,
        "secrets": loaded.secrets,
        "env": loaded.env,
        "plan": {"name": plan.name, "dir": str(plan.dir), "run_id": "<run id>"},
    }
    inputs = {**plan.inputs, **loaded.workflow.inputs}
    steps = []
    for depth, layer in enumerate(layers(loaded.workflow.steps)):
        for step in layer:
            step_values = {**values, "with": {k: _try_fill(v, values, masker) for k, v in step.with_.items()}}
            steps.append(
                {
                    "id": step.id,
                    "name": step.title,
                    "layer": depth,
                    "kind": step.kind,
                    "needs": list(step.needs),
                    "if": step.condition,
                    "timeout": step.timeout,
                    "retries": step.retry.attempts,
                    "continue_on_error": step.continue_on_error,
                    "component": step.component,
                    "command": command_of(step, step_values, masker),
                }
            )
    return {
        "permissions": {**plan.permissions.as_json(), "asks": plan.permissions.phrases()},
        "plan": plan.name,
        "file": str(plan.file),
        "description": plan.description,
        "workflow": loaded.workflow.name,
        "environment": {
            "name": env.name,
            "engine": env.engine,
            "throwaway": env.name is None,
            "image": env.image or (None if env.build else config.get("default_image")),
            "build": env.build.context if env.build else None,
            "workdir": env.workdir,
            "network": {"allow": list(env.allow)} if env.allow else env.network,
            "user": env.user,
            "mounts": [f"{m.host}:{m.container}{':ro' if m.read_only else ''}" for m in env.mounts],
            "copy": [f"{c.host}:{c.container}" for c in env.copy],
        },
        "inputs": [
            {
                "name": name,
                "type": spec.type,
                "value": masker.mask_value(loaded.inputs.get(name)),
                "default": spec.default,
                "description": spec.description,
            }
            for name, spec in inputs.items()
        ],
        "secrets": [{"name": name, "set": bool(loaded.secrets.get(name))} for name in plan.secrets],
        "steps": steps,
    }


def _try_fill(value: Any, values: dict[str, Any], masker: Masker) -> Any:
    return fill(value, values, masker) if isinstance(value, str) else value


def step_facts(step: dict[str, Any]) -> list[str]:
    """A described step's needs, condition, timeout, retries and leniency, as short phrases."""
    facts = []
    if step["needs"]:
        facts.append(f"needs {', '.join(step['needs'])}")
    if step["if"]:
        facts.append(f"if {step['if']}")
    if step["timeout"]:
        facts.append(f"timeout {step['timeout']:g}s")
    if step["retries"]:
        facts.append(f"retries {step['retries']}")
    if step["continue_on_error"]:
        facts.append("may fail")
    return facts


def print_description(description: dict[str, Any]) -> None:
    env = description["environment"]
    asks = description["permissions"]["asks"]
    if asks:
        print("permissions (host access; run it with --allow to agree):")
        for phrase in asks:
            print(f"  {phrase}")
        print()
    else:
        print("permissions: none (nothing on the host beyond the plan's folder)\n")
    print(f"plan {description['plan']} ({description['file']}), workflow {description['workflow']}")
    if description["description"]:
        print(f"  {description['description'].strip()}")
    where = "throw-away environment" if env["throwaway"] else f"environment {env['name']}"
    where += f" on engine {env['engine']}" if env["engine"] else ""
    image = env["image"] or f"built from {env['build']}"
    network = env["network"]
    network = f"only {', '.join(network['allow'])} (egress allowlist)" if isinstance(network, dict) else network
    print(f"\n{where}: {image}, workdir {env['workdir']}, network {network}")
    for mount in env["mounts"]:
        print(f"  mount {mount}")
    for copy in env["copy"]:
        print(f"  copy  {copy}")
    if description["inputs"]:
        print("\ninputs:")
        for item in description["inputs"]:
            print(f"  {item['name']} ({item['type']}) = {item['value']!r}")
    if description["secrets"]:
        print("\nsecrets:")
        for item in description["secrets"]:
            print(f"  {item['name']}: {'set' if item['set'] else 'NOT SET'}")
    print("\nsteps:")
    current = -1
    for step in description["steps"]:
        if step["layer"] != current:
            current = step["layer"]
            print(f"  layer {current + 1}")
        extra = step_facts(step)
        print(f"    {step['id']} [{step['kind']}]" + (f"  ({'; '.join(extra)})" if extra else ""))
        for line in step["command"].rstrip("\n").splitlines() or [""]:
            print(f"      {line}")
