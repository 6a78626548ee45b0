"""``treadle flower import --from SOURCE [--server URL]``: bring Flower workflows over.

SOURCE is a PostgreSQL URL (the ``ms_task_definition`` table is read; ``--table`` names
another, optionally schema-qualified) or a CSV file with the table's columns as its header.
Each ``task_id`` becomes one definition on the treadle at ``--server``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from treadle.compat.flower.translate import COLUMNS, group_rows
from treadle.errors import DefinitionError
from treadle.sdk.transport import default_headers

DEFAULT_TABLE = "ms_task_definition"
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class ImportFailed(Exception):
    """The rows could not be read; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="treadle flower", description="Flower compatibility.")
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="import ms_task_definition rows as definitions")
    imp.add_argument(
        "--from", dest="source", required=True, help="postgresql://... URL or a CSV file"
    )
    imp.add_argument("--server", default=None, help="treadle API URL (TREADLE_SERVER)")
    imp.add_argument("--table", default=DEFAULT_TABLE, help="table to read from PostgreSQL")
    imp.add_argument(
        "--task-id", action="append", default=[], help="import only these workflows (repeatable)"
    )
    return parser


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV export of ms_task_definition (empty cells are NULL)."""
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in ("task_id", "task_seq", "program") if c not in header]
            if missing:
                raise ImportFailed(f"{path}: the header lacks column(s) {', '.join(missing)}")
            rows = []
            for raw in reader:
                row = {str(k).strip(): (v if v != "" else None) for k, v in raw.items() if k}
                rows.append({k: v for k, v in row.items() if k in COLUMNS})
            return rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportFailed(f"{path}: not a readable CSV file: {exc}") from None


async def read_postgres(url: str, table: str) -> list[dict[str, Any]]:
    """Rows of the ms_task_definition table at ``url``."""
    if not _TABLE.match(table):
        raise ImportFailed(f"--table {table!r} is not a table name (schema.table at most)")
    import asyncpg

    dsn = re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        raise ImportFailed(f"cannot connect to {_masked(url)}: {exc}") from None
    try:
        records = await conn.fetch(f"SELECT * FROM {table} ORDER BY task_id, task_seq")
    except asyncpg.PostgresError as exc:
        raise ImportFailed(f"cannot read {table}: {exc}") from None
    finally:
        await conn.close()
    return [{k: v for k, v in dict(r).items() if k in COLUMNS} for r in records]


def _masked(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if v is None or isinstance(v, str | int | float) else str(v)) for k, v in row.items()
    }


def import_rows(rows: list[dict[str, Any]], server: str, only: list[str]) -> int:
    """Post each workflow's rows to the server; print one line each; return the failures."""
    groups = group_rows(rows)
    if only:
        unknown = sorted(set(only) - set(groups))
        if unknown:
            print(f"not in the source: {', '.join(unknown)}", file=sys.stderr)
        groups = {k: v for k, v in groups.items() if k in only}
    if not groups:
        print("no workflows to import", file=sys.stderr)
        return 1
    failures = 0 if not only or set(only) <= set(groups) else 1
    # default_headers: the bearer token of TREADLE_TOKEN, when the server asks for one
    with httpx.Client(base_url=server, headers=default_headers(None), timeout=30.0) as client:
        for task_id, group in sorted(groups.items()):
            try:
                response = client.post(
                    "/api/v1/definitions",
                    params={"dialect": "flower"},
                    json=[_json_ready(r) for r in group],
                )
            except httpx.HTTPError as exc:
                print(f"cannot reach {server}: {exc}", file=sys.stderr)
                return failures + 1
            if response.status_code >= 400:
                failures += 1
                print(f"{task_id}: {_error_text(response)}", file=sys.stderr)
                continue
            body = response.json()
            print(f"{task_id}: imported as {body['name']} v{body['version']} ({len(group)} tasks)")
    return failures


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error or response.status_code)


def flower_main(argv: list[str]) -> int:
    """Entry point of ``treadle flower``; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    server = (args.server or os.environ.get("TREADLE_SERVER") or "http://127.0.0.1:8765").rstrip(
        "/"
    )
    source = str(args.source)
    try:
        if re.match(r"^postgres(ql)?(\+asyncpg)?://", source):
            rows = asyncio.run(read_postgres(source, args.table))
        else:
            rows = read_csv(Path(source))
        return 1 if import_rows(rows, server, list(args.task_id)) else 0
    except (ImportFailed, DefinitionError) as exc:
        print(f"treadle flower import: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(flower_main(sys.argv[1:]))
