"""Flower's ``ms_task_definition`` rows -> a native definition (pure; no I/O).

One Flower workflow is the set of rows sharing a ``task_id``; its tasks run one after the other
in ``task_seq`` order. Each row becomes a native ``python`` task whose ``handler`` is the row's
``program`` and whose ``args`` are the row's ``param1..5`` key/value pairs.

Flower's ``task_priority`` (-20..19) runs lower numbers first; treadle's ``priority`` runs higher
numbers first, so the sign flips. The Flower facts each task came from (task_id, task_seq,
task_priority, parameters) are kept under ``vars.flower`` so flows can be shown back as
``kr_task_stat`` rows.

Accepted documents: a list of row mappings, or ``{"ms_task_definition": [rows...]}``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from treadle.errors import DefinitionError
from treadle.model.definition import DEFINITION_NAME_PATTERN

PARAM_SLOTS = 5
COLUMNS = (
    "task_id",
    "task_seq",
    "program",
    "task_priority",
    *(f"param{i}_{part}" for i in range(1, PARAM_SLOTS + 1) for part in ("key", "value")),
)
_REQUIRED = ("task_id", "task_seq", "program")
_TEMPLATE_MARKS = ("{{", "{%")


def looks_like(doc: Any) -> bool:
    """True for a list of ``ms_task_definition`` rows (or a mapping holding one)."""
    rows = _rows_of(doc)
    return bool(rows) and all(
        isinstance(r, dict) and all(k in r for k in _REQUIRED) for r in rows or []
    )


def _rows_of(doc: Any) -> list[Any] | None:
    if isinstance(doc, dict) and set(doc) == {"ms_task_definition"}:
        doc = doc["ms_task_definition"]
    return doc if isinstance(doc, list) else None


def to_native(doc: Any) -> dict[str, Any]:
    """The rows of one Flower workflow as a native definition document."""
    rows = _rows_of(doc)
    if rows is None:
        raise DefinitionError(
            "a Flower document is a list of ms_task_definition rows "
            "(task_id, task_seq, program, task_priority, param1_key, param1_value, ...)"
        )
    groups = group_rows(rows)
    if len(groups) != 1:
        names = ", ".join(sorted(groups)) or "none"
        raise DefinitionError(
            f"one definition holds one Flower workflow, these rows have {len(groups)} task_ids "
            f"({names}); import them one task_id at a time (`treadle flower import` splits them)"
        )
    task_id, group = next(iter(groups.items()))
    return rows_to_native(task_id, group)


def group_rows(rows: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Rows by ``task_id`` (checked: each row is a mapping with the required columns)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for index, row in enumerate(rows):
        where = f"row {index + 1}"
        if not isinstance(row, dict):
            raise DefinitionError(f"{where}: must be a mapping of ms_task_definition columns")
        unknown = sorted(str(k) for k in row if k not in COLUMNS)
        if unknown:
            raise DefinitionError(f"{where}: unknown column(s) {', '.join(unknown)}")
        for column in _REQUIRED:
            if row.get(column) in (None, ""):
                raise DefinitionError(f"{where}.{column}: required")
        groups.setdefault(str(row["task_id"]), []).append(row)
    return groups


def rows_to_native(task_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One Flower workflow's rows as a native definition named after its ``task_id``."""
    if not re.match(DEFINITION_NAME_PATTERN, task_id):
        raise DefinitionError(
            f"task_id {task_id!r}: treadle names definitions with letters, digits, space, "
            "'_', '.' and '-' (at most 200 characters, starting with a letter or digit)"
        )
    parsed = sorted(((_seq(r, task_id), r) for r in rows), key=lambda pair: pair[0])
    seqs = [seq for seq, _ in parsed]
    duplicates = sorted({str(s) for s in seqs if seqs.count(s) > 1})
    if duplicates:
        raise DefinitionError(f"{task_id}: duplicate task_seq {', '.join(duplicates)}")
    tasks: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    for seq, row in parsed:
        where = f"{task_id}/{format_number(seq)}"
        program = str(row["program"]).strip()
        if not program or len(program) > 256:
            raise DefinitionError(f"{where}.program: must be 1..256 characters")
        priority = _priority(row.get("task_priority"), where)
        params = row_params(row, where)
        name = task_name(seq, program)
        tasks.append(
            {
                "name": name,
                "kind": "python",
                "handler": program,
                "args": {k: escape_template(v, f"{where}.{k}") for k, v in params.items()},
                "priority": -priority,
            }
        )
        facts[name] = {
            "task_seq": json_number(seq),
            "task_priority": priority,
            "program": program,
            "parameters": params,
        }
    return {
        "name": task_id,
        "description": f"Flower workflow {task_id} ({len(tasks)} tasks from ms_task_definition)",
        "vars": {"flower": {"task_id": task_id, "tasks": facts}},
        "tasks": tasks,
    }


def task_name(seq: Decimal, program: str) -> str:
    """The native task name of a row: ``"<task_seq>-<program>"``."""
    return f"{format_number(seq)}-{program}".replace("/", "-")[:200]


def row_params(row: dict[str, Any], where: str) -> dict[str, str]:
    """``param1..5`` key/value columns as one mapping (keys without a name are skipped)."""
    params: dict[str, str] = {}
    for slot in range(1, PARAM_SLOTS + 1):
        key = row.get(f"param{slot}_key")
        value = row.get(f"param{slot}_value")
        if key in (None, ""):
            if value not in (None, ""):
                raise DefinitionError(f"{where}.param{slot}_value: given without param{slot}_key")
            continue
        key_text = str(key)
        if key_text in params:
            raise DefinitionError(f"{where}.param{slot}_key: {key_text!r} appears twice")
        params[key_text] = "" if value is None else str(value)
    return params


def escape_template(value: str, where: str) -> str:
    """Flower parameters are literal text: keep ``{{`` away from treadle's templates."""
    if not any(mark in value for mark in _TEMPLATE_MARKS):
        return value
    if "endraw" in value:
        raise DefinitionError(f"{where}: a parameter may not contain both '{{{{' and 'endraw'")
    return "{% raw %}" + value + "{% endraw %}"


def format_number(value: Decimal) -> str:
    """``2`` for 2 and 2.0, ``2.5`` for 2.5: how Flower's numeric columns print."""
    return format(value.normalize(), "f")


def json_number(value: Decimal) -> int | float:
    """A numeric column as a JSON number (whole numbers stay integers)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _seq(row: dict[str, Any], task_id: str) -> Decimal:
    return _number(row["task_seq"], f"{task_id}.task_seq")


def _priority(value: Any, where: str) -> int:
    if value in (None, ""):
        return 0
    number = _number(value, f"{where}.task_priority")
    if number != number.to_integral_value() or not -20 <= number < 20:
        raise DefinitionError(f"{where}.task_priority: must be a whole number from -20 to 19")
    return int(number)


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool):
        raise DefinitionError(f"{where}: not a number: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise DefinitionError(f"{where}: not a number: {value!r}") from None
    if not number.is_finite():
        raise DefinitionError(f"{where}: not a number: {value!r}")
    return number
