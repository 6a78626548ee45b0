"""Lay out a task graph for drawing, left to right (a small Sugiyama-style layout).

1. Ranks: each task sits one column after its latest dependency (longest path from a root).
   Tasks that name an Igor-style layer also start after every task of the layers before
   theirs, so each layer occupies a run of whole columns and can be drawn as a band.
2. Long edges get invisible waypoints in the columns they cross, so they can be ordered too.
3. Crossing reduction: a few down and up sweeps sort each column by the mean position of the
   neighbours in the previous column (barycentre); the ordering with fewest crossings wins.
4. Coordinates: columns are centred vertically; edges are polylines through their waypoints.

Pure and deterministic: the same graph always gives the same picture.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

NODE_W = 176.0
NODE_H = 44.0
GAP_X = 56.0
GAP_Y = 18.0
MARGIN = 16.0
BAND_LABEL = 26.0
#: Past this many nodes a column ordering pass costs more than it is worth.
_MAX_SWEEP_NODES = 400
_SWEEPS = 6


@dataclass(frozen=True, slots=True)
class GraphTask:
    """What the layout needs of a task: its name, dependencies and optional layer."""

    name: str
    depends_on: tuple[str, ...] = ()
    layer: str | None = None


@dataclass(frozen=True, slots=True)
class PlacedNode:
    name: str
    rank: int
    order: int
    x: float
    y: float
    layer: str | None


@dataclass(frozen=True, slots=True)
class PlacedEdge:
    source: str
    target: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Band:
    """An Igor layer drawn as a vertical band behind its tasks."""

    name: str
    x: float
    width: float
    first_rank: int
    last_rank: int


@dataclass(frozen=True, slots=True)
class Layout:
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    bands: tuple[Band, ...]
    width: float
    height: float

    def node(self, name: str) -> PlacedNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def layout_graph(tasks: Sequence[GraphTask], layer_order: Sequence[str] = ()) -> Layout:
    """Place ``tasks``; ``layer_order`` lists layer names from first to last (others follow in
    order of first appearance). Dependencies on unknown names are ignored."""
    if not tasks:
        return Layout((), (), (), 2 * MARGIN, 2 * MARGIN)
    names = [t.name for t in tasks]
    known = set(names)
    deps = {t.name: [d for d in dict.fromkeys(t.depends_on) if d in known] for t in tasks}
    layers = _layer_sequence(tasks, layer_order)
    ranks = _ranks(names, deps, {t.name: t.layer for t in tasks}, layers)
    columns, chains = _columns(names, deps, ranks)
    if sum(len(c) for c in columns) <= _MAX_SWEEP_NODES:
        columns = _reduce_crossings(columns, chains)
    return _place(tasks, deps, ranks, columns, chains, layers)


# -- ranks ---------------------------------------------------------------------------------
def _layer_sequence(tasks: Sequence[GraphTask], layer_order: Sequence[str]) -> list[str]:
    used = [t.layer for t in tasks if t.layer]
    ordered = [name for name in layer_order if name in used]
    ordered += [name for name in dict.fromkeys(used) if name and name not in ordered]
    return ordered


def _topological(names: list[str], deps: dict[str, list[str]]) -> list[str]:
    """Kahn's order, ties broken by input order; a cycle's members follow in input order."""
    waiting = {n: len(deps[n]) for n in names}
    children: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        for dep in deps[name]:
            children[dep].append(name)
    position = {n: i for i, n in enumerate(names)}
    ready = [n for n in names if waiting[n] == 0]
    result: list[str] = []
    while ready:
        ready.sort(key=position.__getitem__)
        current = ready.pop(0)
        result.append(current)
        for child in children[current]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    seen = set(result)
    return result + [n for n in names if n not in seen]


def _ranks(
    names: list[str],
    deps: dict[str, list[str]],
    layer_of: dict[str, str | None],
    layers: list[str],
) -> dict[str, int]:
    order = _topological(names, deps)
    index = {name: i for i, name in enumerate(layers)}
    rank = dict.fromkeys(names, 0)
    # Ranks only grow, and are bounded by the node count, so this settles quickly.
    for _ in range(len(names) + len(layers) + 2):
        floors = _layer_floors(rank, layer_of, layers, index)
        changed = False
        for name in order:
            layer = layer_of.get(name)
            floor = floors[index[layer]] if layer in index else 0
            best = max([floor, *(rank[d] + 1 for d in deps[name] if rank[d] + 1 <= len(names))])
            if best != rank[name]:
                rank[name] = best
                changed = True
        if not changed:
            break
    return rank


def _layer_floors(
    rank: dict[str, int],
    layer_of: dict[str, str | None],
    layers: list[str],
    index: dict[str, int],
) -> list[int]:
    """The first column each layer may use: one after the last column of earlier layers."""
    last = [-1] * len(layers)
    for name, layer in layer_of.items():
        if layer in index:
            last[index[layer]] = max(last[index[layer]], rank[name])
    floors = []
    reach = -1
    for i in range(len(layers)):
        floors.append(reach + 1)
        reach = max(reach, last[i])
    return floors


# -- columns and waypoints -------------------------------------------------------------------
def _columns(
    names: list[str], deps: dict[str, list[str]], ranks: dict[str, int]
) -> tuple[list[list[str]], dict[tuple[str, str], list[str]]]:
    """Nodes per column (waypoints included) and, per edge, its chain of nodes."""
    width = max(ranks.values()) + 1
    columns: list[list[str]] = [[] for _ in range(width)]
    for name in names:
        columns[ranks[name]].append(name)
    chains: dict[tuple[str, str], list[str]] = {}
    for target in names:
        for source in deps[target]:
            chain = [source]
            for r in range(ranks[source] + 1, ranks[target]):
                waypoint = f"\x00{source}\x00{target}\x00{r}"
                columns[r].append(waypoint)
                chain.append(waypoint)
            chain.append(target)
            chains[(source, target)] = chain
    return columns, chains


def _links(chains: dict[tuple[str, str], list[str]]) -> list[tuple[str, str]]:
    return [(a, b) for chain in chains.values() for a, b in itertools.pairwise(chain)]


def _crossings(columns: list[list[str]], links: list[tuple[str, str]]) -> int:
    position = {n: (r, i) for r, column in enumerate(columns) for i, n in enumerate(column)}
    by_gap: dict[int, list[tuple[int, int]]] = {}
    for a, b in links:
        (ra, ia), (rb, ib) = position[a], position[b]
        if rb == ra + 1:
            by_gap.setdefault(ra, []).append((ia, ib))
    total = 0
    for pairs in by_gap.values():
        pairs.sort()
        for i, (_, b1) in enumerate(pairs):
            total += sum(1 for _, b2 in pairs[i + 1 :] if b2 < b1)
    return total


def _reduce_crossings(
    columns: list[list[str]], chains: dict[tuple[str, str], list[str]]
) -> list[list[str]]:
    links = _links(chains)
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in links:
        succs.setdefault(a, []).append(b)
        preds.setdefault(b, []).append(a)
    best = [list(c) for c in columns]
    best_score = _crossings(best, links)
    current = [list(c) for c in columns]
    for sweep in range(_SWEEPS):
        if best_score == 0:
            break
        downward = sweep % 2 == 0
        span = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for r in span:
            ref = current[r - 1] if downward else current[r + 1]
            neighbours = preds if downward else succs
            current[r] = _by_barycentre(current[r], ref, neighbours)
        score = _crossings(current, links)
        if score < best_score:
            best, best_score = [list(c) for c in current], score
    return best


def _by_barycentre(
    column: list[str], ref: list[str], neighbours: dict[str, list[str]]
) -> list[str]:
    where = {n: i for i, n in enumerate(ref)}
    keyed = []
    for i, node in enumerate(column):
        spots = [where[n] for n in neighbours.get(node, []) if n in where]
        keyed.append((sum(spots) / len(spots) if spots else float(i), i, node))
    keyed.sort()
    return [node for _, _, node in keyed]


# -- coordinates -----------------------------------------------------------------------------
def _place(
    tasks: Sequence[GraphTask],
    deps: dict[str, list[str]],
    ranks: dict[str, int],
    columns: list[list[str]],
    chains: dict[tuple[str, str], list[str]],
    layers: list[str],
) -> Layout:
    top = MARGIN + (BAND_LABEL if layers else 0.0)
    pitch = NODE_H + GAP_Y
    tallest = max(len(c) for c in columns)
    point: dict[str, tuple[float, float, int]] = {}
    for r, column in enumerate(columns):
        offset = (tallest - len(column)) * pitch / 2
        for i, node in enumerate(column):
            point[node] = (MARGIN + r * (NODE_W + GAP_X), top + offset + i * pitch, i)
    layer_of = {t.name: t.layer for t in tasks}
    nodes = tuple(
        PlacedNode(
            t.name, ranks[t.name], point[t.name][2], point[t.name][0], point[t.name][1], t.layer
        )
        for t in tasks
    )
    edges = []
    for t in tasks:
        for source in deps[t.name]:
            chain = chains[(source, t.name)]
            sx, sy, _ = point[source]
            pts = [(sx + NODE_W, sy + NODE_H / 2)]
            pts += [(point[w][0] + NODE_W / 2, point[w][1] + NODE_H / 2) for w in chain[1:-1]]
            tx, ty, _ = point[t.name]
            pts.append((tx, ty + NODE_H / 2))
            edges.append(PlacedEdge(source, t.name, tuple(pts)))
    height = top + tallest * pitch - GAP_Y + MARGIN
    width = 2 * MARGIN + len(columns) * (NODE_W + GAP_X) - GAP_X
    bands = []
    for name in layers:
        member_ranks = [ranks[n] for n, layer in layer_of.items() if layer == name]
        first, last = min(member_ranks), max(member_ranks)
        x = MARGIN + first * (NODE_W + GAP_X) - 10
        span = (last - first + 1) * (NODE_W + GAP_X) - GAP_X + 20
        bands.append(Band(name, x, span, first, last))
    return Layout(nodes, tuple(edges), tuple(bands), width, height)
