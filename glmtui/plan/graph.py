"""The order steps can run in, from their `needs` (anything with `id` and `needs`: Step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar



class _Node(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def needs(self) -> tuple[str, ...]: ...


_N = TypeVar("_N", bound=_Node)


def layers(steps: Sequence[_N]) -> list[list[_N]]:
    """Layer k holds the steps whose needs are all in earlier layers, in plan order.

    Needs naming no step of `steps` are ignored; a cycle raises ValueError.
    """
    cycle = find_cycle(steps)
    if cycle:
        raise ValueError("needs form a cycle: " + " -> ".join(cycle))
    by_id = {step.id: step for step in steps}
    depth: dict[str, int] = {}
    for step_id in _topological(steps):
        needed = [depth[need] for need in by_id[step_id].needs if need in by_id]
        depth[step_id] = max(needed) + 1 if needed else 0
    result: list[list[_N]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in steps:
        result[depth[step.id]].append(step)
    return result


def find_cycle(steps: Sequence[_Node]) -> list[str] | None:
    """A cycle of needs as ids, first repeated last ("a", "b", "a": a needs b needs a), or None."""
    needs = {step.id: [need for need in step.needs if need != step.id] for step in steps}
    for step in steps:
        if step.id in step.needs:
            return [step.id, step.id]
    order = {step.id: index for index, step in enumerate(steps)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in needs:
        if root in state:
            continue
        path = [root]
        pending = [iter(needs[root])]
        state[root] = 1
        while pending:
            following = next((n for n in pending[-1] if n in needs and state.get(n) != 2), None)
            if following is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(following) == 1:
                cycle = path[path.index(following) :]
                first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                cycle = cycle[first:] + cycle[:first]
                return [*cycle, cycle[0]]
            else:
                state[following] = 1
                path.append(following)
                pending.append(iter(needs[following]))
    return None


def _topological(steps: Sequence[_Node]) -> list[str]:
    """Ids with every step after the steps it needs (the graph has no cycle)."""
    needs = {step.id: step.needs for step in steps}
    done: set[str] = set()
    order: list[str] = []
    for root in needs:
        if root in done:
            continue
        done.add(root)
        stack = [(root, iter(needs[root]))]
        while stack:
            node, children = stack[-1]
            child = next((c for c in children if c in needs and c not in done), None)
            if child is None:
                order.append(node)
                stack.pop()
            else:
                done.add(child)
                stack.append((child, iter(needs[child])))
    return order
