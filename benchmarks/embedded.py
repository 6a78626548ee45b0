"""Embedded-mode benchmark: per-step overhead of a chain and throughput of independent tasks.

Prints, for treadle's embedded mode (SQLite in WAL mode + in-process queue, one process):
- chain: total seconds and ms per step for one run of N sequential `noop` tasks;
- fan: tasks/s for one run of M independent `noop` tasks;
- baseline: a bare loop doing the same number of SQLite commits (WAL, synchronous=NORMAL)
  measured in the same run, so each figure is also a ratio to what the disk allows.

Usage: python benchmarks/embedded.py [--chain 40] [--fan 1000] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from treadle.config import load_settings
from treadle.engine.node import Node


def sqlite_commit_baseline(commits: int, folder: Path) -> float:
    """Seconds for ``commits`` INSERT+UPDATE transactions on a WAL SQLite file."""
    conn = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT)")
    start = time.perf_counter()
    for i in range(commits):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (id, status) VALUES (?, 'queued')", (i,))
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("UPDATE t SET status='done' WHERE id=?", (i,))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


async def run_definition(
    definition: dict[str, Any], folder: Path, label: str, args_concurrency: int = 32
) -> float:
    settings = load_settings(
        None,
        db=f"sqlite:///{folder}/{label}.db",
        broker="memory://",
        queues={"default": args_concurrency},
    )
    node = Node(settings, ("coordinator", "worker"))
    service = await node.start()
    try:
        # What a user does for repeated runs: store the definition once, start it by name.
        await service.create_definition(definition)
        start = time.perf_counter()
        run = await service.start_run(definition["name"])
        run = await service.wait_run(run.id, timeout=600)
        elapsed = time.perf_counter() - start
        if run.status != "completed":
            raise SystemExit(f"{label}: run ended {run.status}: {run.error}")
        return elapsed
    finally:
        await node.stop()


def chain(n: int) -> dict[str, Any]:
    return {"name": "chain", "tasks": [{"name": f"s{i}", "kind": "noop"} for i in range(n)]}


def fan(n: int) -> dict[str, Any]:
    return {
        "name": "fan",
        "tasks": [{"name": f"t{i}", "kind": "noop", "depends_on": []} for i in range(n)],
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    chain_times, fan_times, baseline_times = [], [], []
    with tempfile.TemporaryDirectory(prefix="treadle-bench-") as scratch:
        folder = Path(scratch)
        await run_definition(chain(5), folder, "warmup")
        for i in range(args.repeat):
            chain_times.append(
                await run_definition(chain(args.chain), folder, f"chain{i}", args.concurrency)
            )
            fan_times.append(
                await run_definition(fan(args.fan), folder, f"fan{i}", args.concurrency)
            )
            sub = folder / f"b{i}"
            sub.mkdir()
            baseline_times.append(sqlite_commit_baseline(args.fan, sub))
    chain_s = statistics.median(chain_times)
    fan_s = statistics.median(fan_times)
    base_s = statistics.median(baseline_times)
    ms_per_step = chain_s / args.chain * 1000
    tasks_per_s = args.fan / fan_s
    base_per_s = args.fan / base_s
    rows += [
        {
            "system": "treadle:embedded",
            "workload": f"chain{args.chain}",
            "value": chain_s,
            "unit": "s",
            "higher_is_better": False,
        },
        {
            "system": "treadle:embedded",
            "workload": f"chain{args.chain}_per_step",
            "value": ms_per_step,
            "unit": "ms",
            "higher_is_better": False,
        },
        {
            "system": "treadle:embedded",
            "workload": f"throughput{args.fan}",
            "value": tasks_per_s,
            "unit": "tasks/s",
            "higher_is_better": True,
        },
        {
            "system": "baseline:sqlite-wal",
            "workload": f"insert+update x{args.fan}",
            "value": base_per_s,
            "unit": "tasks/s",
            "higher_is_better": True,
        },
    ]
    print(
        f"# treadle embedded benchmark ({platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"one process, worker concurrency {args.concurrency}, "
        f"median of {args.repeat} after a warm-up)\n"
    )
    print("| workload | figure | baseline | ratio |")
    print("|---|---|---|---|")
    print(
        f"| chain of {args.chain} noop steps | {chain_s:.3f} s total, "
        f"{ms_per_step:.2f} ms/step | {1000 / base_per_s:.3f} ms per bare "
        f"insert+update | {ms_per_step / (1000 / base_per_s):.1f}x the bare commits |"
    )
    print(
        f"| {args.fan} independent noop tasks | {tasks_per_s:.0f} tasks/s | "
        f"{base_per_s:.0f} bare insert+update/s | {tasks_per_s / base_per_s:.2f} of bare |"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--fan", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=32, help="worker slots on the default queue"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
