"""The DAG layout: ranks by longest path, layers as bands, fewer crossings, stable output."""

from __future__ import annotations

import itertools

from treadle.ui.graph_svg import NodeState, render_graph
from treadle.ui.layout import GraphTask, _crossings, layout_graph


def _ranks(tasks: list[GraphTask], layers: list[str] | None = None) -> dict[str, int]:
    return {n.name: n.rank for n in layout_graph(tasks, layers or []).nodes}


def test_rank_is_the_longest_path_from_a_root() -> None:
    tasks = [
        GraphTask("a"),
        GraphTask("b", ("a",)),
        GraphTask("c", ("b",)),
        GraphTask("d", ("a", "c")),  # the long way round wins
        GraphTask("e"),
    ]
    assert _ranks(tasks) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


def test_edges_go_left_to_right_through_waypoints() -> None:
    layout = layout_graph([GraphTask("a"), GraphTask("b", ("a",)), GraphTask("c", ("a", "b"))])
    edge = next(e for e in layout.edges if (e.source, e.target) == ("a", "c"))
    xs = [x for x, _ in edge.points]
    assert xs == sorted(xs)
    assert len(edge.points) == 3  # start, one waypoint in b's column, end
    a, c = layout.node("a"), layout.node("c")
    assert edge.points[0][0] > a.x and edge.points[-1][0] == c.x


def test_layers_occupy_their_own_columns_in_order() -> None:
    # "late" is declared first in the graph but its layer comes second.
    tasks = [
        GraphTask("late", (), "render"),
        GraphTask("early1", (), "prepare"),
        GraphTask("early2", ("early1",), "prepare"),
        GraphTask("free"),
    ]
    layout = layout_graph(tasks, ["prepare", "render"])
    ranks = {n.name: n.rank for n in layout.nodes}
    assert ranks["early1"] == 0 and ranks["early2"] == 1
    assert ranks["late"] == 2  # after every task of the layer before
    assert ranks["free"] == 0
    bands = {b.name: b for b in layout.bands}
    assert [b.name for b in layout.bands] == ["prepare", "render"]
    assert (bands["prepare"].first_rank, bands["prepare"].last_rank) == (0, 1)
    assert bands["prepare"].x + bands["prepare"].width <= bands["render"].x


def test_layer_order_falls_back_to_first_appearance() -> None:
    tasks = [GraphTask("x", (), "one"), GraphTask("y", (), "two")]
    assert _ranks(tasks) == {"x": 0, "y": 1}


def test_crossing_reduction_untangles_a_swapped_pair() -> None:
    # Input order makes a1->b2 and a2->b1 cross; the barycentre sweep uncrosses them.
    tasks = [
        GraphTask("a1", ()),
        GraphTask("a2", ()),
        GraphTask("b2", ("a2",)),
        GraphTask("b1", ("a1",)),
        GraphTask("c", ("b1", "b2")),
    ]
    layout = layout_graph(tasks)
    ys = {n.name: n.y for n in layout.nodes}
    assert (ys["a1"] < ys["a2"]) == (ys["b1"] < ys["b2"])


def test_no_more_crossings_than_the_input_order() -> None:
    names = [f"r{i}" for i in range(4)] + [f"m{i}" for i in range(4)]
    deps = {"m0": ("r3",), "m1": ("r1", "r2"), "m2": ("r0",), "m3": ("r2", "r0")}
    tasks = [GraphTask(n, deps.get(n, ())) for n in names]
    layout = layout_graph(tasks)
    columns: list[list[str]] = [[], []]
    for node in sorted(layout.nodes, key=lambda n: (n.rank, n.y)):
        columns[node.rank].append(node.name)
    links = [(d, n) for n, ds in deps.items() for d in ds]
    naive = [[f"r{i}" for i in range(4)], [f"m{i}" for i in range(4)]]
    assert _crossings(columns, links) <= _crossings(naive, links)
    assert _crossings(columns, links) == 0  # this graph has a crossing-free drawing


def test_no_two_nodes_overlap() -> None:
    tasks = [
        GraphTask(f"t{i}", tuple(f"t{j}" for j in range(i) if (i + j) % 3 == 0)) for i in range(25)
    ]
    layout = layout_graph(tasks)
    for a, b in itertools.combinations(layout.nodes, 2):
        assert (a.x, a.y) != (b.x, b.y)
        if a.x == b.x:
            assert abs(a.y - b.y) >= 44


def test_layout_is_deterministic_and_survives_cycles_and_unknown_deps() -> None:
    tasks = [GraphTask("a", ("c",)), GraphTask("b", ("a",)), GraphTask("c", ("b", "ghost"))]
    first = layout_graph(tasks)
    assert first == layout_graph(tasks)
    assert {n.name for n in first.nodes} == {"a", "b", "c"}


def test_empty_graph() -> None:
    layout = layout_graph([])
    assert layout.nodes == () and layout.width > 0


def test_svg_names_every_task_with_its_status_and_escapes() -> None:
    layout = layout_graph([GraphTask("<fetch>"), GraphTask("b&c", ("<fetch>",))])
    svg = render_graph(
        layout,
        {"<fetch>": NodeState("failed", "2 attempts"), "b&c": NodeState("pending")},
        href=lambda name: f"/t?task={name}",
        selected="b&c",
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "&lt;fetch&gt;" in svg and "<fetch>" not in svg
    assert 'aria-label="&lt;fetch&gt;: failed (2 attempts)"' in svg
    assert 'class="node st-pending selected"' in svg
    assert svg.count('<path class="edge"') == 1
