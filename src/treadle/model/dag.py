"""Checks and queries on the task graph: unknown dependencies, cycles, the ready set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from treadle.errors import GraphError


def validate_graph(deps: Mapping[str, Sequence[str]]) -> None:
    """Raise :class:`GraphError` naming duplicate-free problems: unknown deps, self deps, cycles."""
    unknown = sorted(
        {
            f"{task} -> {dep}"
            for task, task_deps in deps.items()
            for dep in task_deps
            if dep not in deps
        }
    )
    if unknown:
        raise GraphError(
            "unknown dependency: " + ", ".join(unknown),
            details=[
                {"loc": ["tasks", edge.split(" -> ")[0], "depends_on"], "msg": edge}
                for edge in unknown
            ],
        )
    cycle = find_cycle(deps)
    if cycle:
        raise GraphError(
            "cycle in the task graph: " + " -> ".join(cycle),
            details={"cycle": cycle},
        )


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return one cycle as a list of names (first repeated at the end), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(deps, white)
    for start in deps:
        if colour[start] != white:
            continue
        # Iterative DFS so a 10,000-task chain does not hit the recursion limit.
        path: list[str] = [start]
        iters = [iter(deps[start])]
        colour[start] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iters.pop()
                continue
            if colour.get(nxt, black) == grey:
                return [*path[path.index(nxt) :], nxt]
            if colour.get(nxt) == white:
                colour[nxt] = grey
                path.append(nxt)
                iters.append(iter(deps[nxt]))
    return None


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Names ordered so that each comes after its dependencies (stable on input order)."""
    remaining = {name: set(d) for name, d in deps.items()}
    dependants: dict[str, list[str]] = {name: [] for name in deps}
    for name, task_deps in deps.items():
        for dep in task_deps:
            dependants[dep].append(name)
    ready = [name for name, d in remaining.items() if not d]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in dependants[name]:
            remaining[child].discard(name)
            if not remaining[child]:
                ready.append(child)
    return order


def downstream(deps: Mapping[str, Sequence[str]], roots: Sequence[str]) -> set[str]:
    """The given tasks and everything that depends on them, directly or not."""
    dependants: dict[str, list[str]] = {name: [] for name in deps}
    for name, task_deps in deps.items():
        for dep in task_deps:
            dependants[dep].append(name)
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(dependants.get(name, ()))
    return seen
