"""Write docs/reference/definition.md (from the JSON Schema) and docs/reference/api.md (OpenAPI).

Run: PYTHONPATH=src python scripts/gen_reference.py   (mkdocs builds read the written files)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reference"


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{prop['$ref'].rsplit('/', 1)[-1].lower()})"
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"])
    if "oneOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["oneOf"])
    if "enum" in prop:
        return " / ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in prop:
        extra = prop["additionalProperties"]
        return f"map of {_type(extra, defs) if isinstance(extra, dict) else 'any'}"
    return str(kind)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    props = schema.get("properties", {})
    if not props:
        return [*lines, "(no fields)", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, prop in props.items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        lines.append(
            f"| `{field}` | {_cell(_type(prop, defs))} | {'yes' if field in required else ''} "
            f"| {_cell(default)} | {_cell(prop.get('description', ''))} |"
        )
    return [*lines, ""]


def definition_reference() -> str:
    from treadle.model.definition import Definition

    schema = Definition.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    lines = [
        "# Definition reference",
        "",
        "Generated from the JSON Schema of native definitions by `scripts/gen_reference.py`;",
        "`treadle schema` prints the schema itself. Every task kind shares the fields of",
        "`TaskBase`; its `kind` selects the kind-specific fields.",
        "",
    ]
    lines += _table("Definition", schema, defs)
    for name in sorted(defs):
        lines += _table(name, defs[name], defs)
    return "\n".join(lines)


def api_reference() -> str:
    from treadle.api.app import create_app
    from treadle.config import load_settings

    app = create_app(load_settings(None, db="sqlite:///:memory:"))
    spec = app.openapi()
    lines = [
        "# REST API reference",
        "",
        "Generated from the server's OpenAPI document by `scripts/gen_reference.py`. A running",
        "server serves it at `/openapi.json` and an interactive view at `/docs`. Errors are",
        '`{"error": {"code", "message", "details"}}` with the matching status.',
        "",
    ]
    by_tag: dict[str, list[str]] = {}
    for path, methods in sorted(spec["paths"].items()):
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            entry = [f"### `{method.upper()} {path}`", "", op.get("summary", ""), ""]
            params = op.get("parameters", [])
            if params:
                entry += ["| parameter | in | required | description |", "|---|---|---|---|"]
                for p in params:
                    entry.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else ''} "
                        f"| {_cell(p.get('description', ''))} |"
                    )
                entry.append("")
            codes = ", ".join(sorted(op.get("responses", {})))
            entry += [f"Responses: {codes}", ""]
            by_tag.setdefault(tag, []).extend(entry)
    for tag in sorted(by_tag):
        lines += [f"## {tag}", "", *by_tag[tag]]
    return "\n".join(lines)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "definition.md").write_text(definition_reference())
    (OUT / "api.md").write_text(api_reference())
    print(f"wrote {OUT / 'definition.md'} and {OUT / 'api.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
