"""Definition views without a server: templates rendered with given inputs, the DAG as text/SVG."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from treadle.errors import TemplateError
from treadle.model.dag import topological_order
from treadle.model.definition import Definition
from treadle.model.inputs import resolve_inputs
from treadle.model.templating import render_task_spec, render_value


def render_definition(definition: Definition, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The document with every template that depends only on inputs/vars expanded.

    Templates that read other tasks' outputs are known only at run time and are left as they
    are, so the result shows exactly what is still dynamic.
    """
    document = definition.to_document()
    resolved = resolve_inputs({k: v.model_dump() for k, v in definition.inputs.items()}, inputs)
    context: dict[str, Any] = {
        "inputs": resolved,
        "run": {"id": "<run id>", "definition": definition.name, "version": definition.version},
    }
    try:
        context["vars"] = render_value(document.get("vars") or {}, context, "vars")
    except TemplateError:
        context["vars"] = document.get("vars") or {}
    tasks = []
    for spec in document.get("tasks", []):
        rendered: dict[str, Any] = {}
        for key, value in spec.items():
            try:
                rendered.update(render_task_spec({key: value}, context))
            except TemplateError:
                rendered[key] = value  # needs an upstream output: stays a template
        tasks.append(rendered)
    return {**document, "inputs": resolved, "vars": context["vars"], "tasks": tasks}


def layers(deps: Mapping[str, list[str]]) -> dict[str, int]:
    """Depth of each task: 0 for roots, else one more than its deepest dependency."""
    depth: dict[str, int] = {}
    for name in topological_order(deps):
        depth[name] = 1 + max((depth[d] for d in deps[name]), default=-1)
    return depth


def graph_text(definition: Definition) -> str:
    """One line per task in dependency order: ``name [kind] <- deps``, indented by depth."""
    deps = definition.dependencies()
    depth = layers(deps)
    lines = [f"{definition.name} v{definition.version}"]
    for name in topological_order(deps):
        kind = definition.task(name).kind
        after = f"  <- {', '.join(deps[name])}" if deps[name] else ""
        lines.append(f"{'  ' * (depth[name] + 1)}{name} [{kind}]{after}")
    return "\n".join(lines) + "\n"


def graph_dot(definition: Definition) -> str:
    deps = definition.dependencies()
    lines = [f'digraph "{definition.name}" {{', "  rankdir=LR;"]
    for name in topological_order(deps):
        lines.append(f'  "{name}" [label="{name}\\n{definition.task(name).kind}"];')
        lines.extend(f'  "{dep}" -> "{name}";' for dep in deps[name])
    lines.append("}")
    return "\n".join(lines) + "\n"


BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 160, 44, 60, 20, 20


def graph_svg(definition: Definition) -> str:
    """A left-to-right layered drawing: one column per depth, arrows from each dependency."""
    deps = definition.dependencies()
    depth = layers(deps)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    for name in topological_order(deps):
        col = depth[name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        pos[name] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(depth.values(), default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (BOX_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="6" markerHeight="6" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for name, (x, y) in pos.items():
        for dep in deps[name]:
            dx, dy = pos[dep]
            parts.append(
                f'<line x1="{dx + BOX_W}" y1="{dy + BOX_H // 2}" x2="{x}" y2="{y + BOX_H // 2}" '
                'stroke="#555" marker-end="url(#arrow)"/>'
            )
    for name, (x, y) in pos.items():
        kind = definition.task(name).kind
        parts.append(
            f'<g class="task" data-name="{escape(name)}">'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="#eef" '
            'stroke="#446"/>'
            f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{escape(name[:22])}</text>'
            f'<text x="{x + 8}" y="{y + 34}" fill="#555">{escape(kind)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
