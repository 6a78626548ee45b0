"""Draw a laid-out task graph as inline SVG (no script; links make nodes keyboard-reachable)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape

from treadle.ui.layout import BAND_LABEL, MARGIN, NODE_H, NODE_W, Layout
from treadle.ui.palette import swatch

_NAME_CHARS = 22
_NOTE_CHARS = 26


@dataclass(frozen=True, slots=True)
class NodeState:
    """What a node shows beside its name: a status and a short note ("2 attempts")."""

    status: str | None = None
    note: str = ""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _path(points: tuple[tuple[float, float], ...]) -> str:
    """A smooth curve through the points: horizontal tangents at each one."""
    (x0, y0), rest = points[0], points[1:]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    px, py = x0, y0
    for x, y in rest:
        mid = (px + x) / 2
        parts.append(f"C{mid:.1f},{py:.1f} {mid:.1f},{y:.1f} {x:.1f},{y:.1f}")
        px, py = x, y
    return " ".join(parts)


def render_graph(
    layout: Layout,
    states: Mapping[str, NodeState],
    href: Callable[[str], str] | None = None,
    selected: str | None = None,
    title: str = "Task graph",
) -> str:
    """The SVG markup; ``href(name)`` makes each node a link, ``selected`` gets an outline."""
    w, h = layout.width, layout.height
    out = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" '
        f'viewBox="0 0 {w:.0f} {h:.0f}" role="group" aria-label="{escape(title)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#6b7280"/></marker></defs>',
    ]
    for band in layout.bands:
        out.append(
            f'<g class="band"><rect x="{band.x:.1f}" y="{MARGIN / 2:.1f}" width="{band.width:.1f}"'
            f' height="{h - MARGIN:.1f}" rx="8"/><text x="{band.x + 10:.1f}" '
            f'y="{MARGIN / 2 + BAND_LABEL - 8:.1f}">layer {escape(_clip(band.name, 30))}</text>'
            "</g>"
        )
    for edge in layout.edges:
        out.append(
            f'<path class="edge" d="{_path(edge.points)}" marker-end="url(#arrow)">'
            f"<title>{escape(edge.source)} → {escape(edge.target)}</title></path>"
        )
    for node in layout.nodes:
        state = states.get(node.name, NodeState())
        colours = swatch(state.status)
        status = state.status or ""
        label = f"{node.name}: {status}" if status else node.name
        if state.note:
            label += f" ({state.note})"
        classes = (
            "node"
            + (f" st-{status}" if status else "")
            + (" selected" if node.name == selected else "")
        )
        body = [
            f'<rect class="box" x="{node.x:.1f}" y="{node.y:.1f}" width="{NODE_W:.0f}" '
            f'height="{NODE_H:.0f}" rx="6" fill="{colours.fill}" stroke="{colours.accent}"/>',
            f'<rect class="bar" x="{node.x:.1f}" y="{node.y:.1f}" width="6" '
            f'height="{NODE_H:.0f}" rx="3" fill="{colours.accent}"/>',
            f'<text class="name" x="{node.x + 14:.1f}" y="{node.y + 18:.1f}">'
            f"{escape(_clip(node.name, _NAME_CHARS))}</text>",
        ]
        detail = " · ".join(part for part in (status, state.note) if part)
        if detail:
            body.append(
                f'<text class="detail" x="{node.x + 14:.1f}" y="{node.y + 35:.1f}" '
                f'fill="{colours.text}">{escape(_clip(detail, _NOTE_CHARS))}</text>'
            )
        inner = f"<title>{escape(label)}</title>" + "".join(body)
        if href is not None:
            current = ' aria-current="true"' if node.name == selected else ""
            out.append(
                f'<a class="{classes}" href="{escape(href(node.name))}" '
                f'aria-label="{escape(label)}" data-task="{escape(node.name)}"{current}>'
                f"{inner}</a>"
            )
        else:
            out.append(f'<g class="{classes}" data-task="{escape(node.name)}">{inner}</g>')
    out.append("</svg>")
    return "".join(out)
