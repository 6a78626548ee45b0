"""Fan-out benchmark: one run whose task fans out over N items (``each``), then a join.

Runs embedded (coordinator + worker in one process, the in-process queue) on SQLite, or on
PostgreSQL with ``--db postgresql://...`` (a throw-away schema, dropped at the end). Prints the
seconds from submit to the run's end, items/s, and, as the same-run baseline, the seconds for
N bare INSERT + UPDATE commits on the same kind of store.

Usage: python benchmarks/fanout.py [--items 10000] [--concurrency 64] [--db URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from embedded import sqlite_commit_baseline  # noqa: E402  (benchmarks/ is sys.path[0])

from treadle.config import load_settings  # noqa: E402
from treadle.engine.node import Node  # noqa: E402


def definition(items: int) -> dict[str, Any]:
    return {
        "name": "bench-fanout",
        "tasks": [
            {"name": "per", "kind": "noop", "each": list(range(items))},
            {"name": "count", "kind": "log", "message": "{{ tasks.per.output | length }}"},
        ],
    }


async def pg_baseline(rows: int, url: str) -> float:
    import asyncpg

    conn = await asyncpg.connect(url.split("?")[0])
    try:
        await conn.execute("CREATE TEMP TABLE bench_t (id bigint PRIMARY KEY, status text)")
        start = time.perf_counter()
        for i in range(rows):
            await conn.execute("INSERT INTO bench_t VALUES ($1, 'queued')", i)
            await conn.execute("UPDATE bench_t SET status = 'done' WHERE id = $1", i)
        return time.perf_counter() - start
    finally:
        await conn.close()


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.split("?")[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def fan_out(db: str, items: int, concurrency: int) -> float:
    settings = load_settings(None, db=db, broker="memory://", queues={"default": concurrency})
    node = Node(settings, ("coordinator", "worker"))
    service = await node.start()
    try:
        start = time.perf_counter()
        run = await service.start_run(definition(items))
        run = await service.wait_run(run.id, timeout=1800)
        elapsed = time.perf_counter() - start
        if run.status != "completed":
            raise SystemExit(f"the fan-out run ended {run.status}: {run.error}")
        return elapsed
    finally:
        await node.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="treadle-fanout-") as scratch:
        folder = Path(scratch)
        if args.db:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            url = args.db + ("&" if "?" in args.db else "?") + f"schema={schema}"
            try:
                seconds = await fan_out(url, args.items, args.concurrency)
            finally:
                await drop_schema(args.db, schema)
            base = await pg_baseline(args.items, args.db)
            store = "postgresql"
        else:
            seconds = await fan_out(f"sqlite:///{folder}/fan.db", args.items, args.concurrency)
            base = sqlite_commit_baseline(args.items, folder)
            store = "sqlite"
    load = os.getloadavg()[0]
    print(
        f"# fan-out of {args.items} noop items + join, embedded on {store} "
        f"(Python {platform.python_version()}, {os.cpu_count()} cores, load average {load:.1f}, "
        f"worker concurrency {args.concurrency})\n"
    )
    print("| workload | seconds | items/s | baseline s (bare insert+update) | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| fan-out {args.items} | {seconds:.1f} | {args.items / seconds:,.0f} | "
        f"{base:.2f} | {seconds / base:.1f}x |"
    )
    return {"store": store, "items": args.items, "seconds": seconds, "baseline_s": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--db", help="a postgresql:// URL (default: a SQLite file)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
