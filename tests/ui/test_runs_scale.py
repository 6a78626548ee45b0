"""The runs page with many runs stored (SQLite): correct pages and printed render times.

Rows are bulk-inserted (300,000 tasks with them), then each kind of page is rendered through
the real app: first page, each filter, id search, a page deep in the cursor chain. The figures
are printed (`pytest -s`) and recorded in benchmarks/README.md.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from tests.ui.conftest import app_client
from treadle.store import schema as t
from treadle.store.sql import encode_cursor
from treadle.store.sqlite import SqliteStore

RUNS = int(os.environ.get("TREADLE_UI_SCALE_RUNS", "20000"))
TASKS_PER_RUN = 3
_DEFS = ["nightly-report", "ingest", "billing", "cleanup", "formy"]
_STATUS = ["completed"] * 16 + ["failed", "cancelled", "running", "pending"]


async def _fill(db: Path) -> list[tuple[datetime, str]]:
    store = SqliteStore(f"sqlite:///{db}")
    await store.migrate()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    keys = []
    with store.sync_engine.begin() as conn:
        for start in range(0, RUNS, 10_000):
            runs: list[dict[str, Any]] = []
            tasks: list[dict[str, Any]] = []
            for i in range(start, start + 10_000):
                run_id = str(uuid.UUID(int=(i * 2654435761) % (1 << 128), version=4))
                created = base + timedelta(seconds=30 * i)
                status = _STATUS[i % len(_STATUS)]
                ended = status in ("completed", "failed", "cancelled")
                runs.append(
                    {
                        "id": run_id,
                        "definition_name": _DEFS[i % len(_DEFS)],
                        "definition_version": 1,
                        "definition": {"name": _DEFS[i % len(_DEFS)], "tasks": []},
                        "status": status,
                        "inputs": {"n": i},
                        "created_at": created,
                        "started_at": created + timedelta(seconds=1),
                        "finished_at": created + timedelta(seconds=20) if ended else None,
                        "version": 3,
                        "dialect": "native",
                        "labels": {},
                    }
                )
                keys.append((created, run_id))
                for seq in range(TASKS_PER_RUN):
                    tasks.append(
                        {
                            "id": f"{run_id}.{seq}",
                            "run_id": run_id,
                            "name": f"step{seq}",
                            "seq": seq,
                            "status": "completed" if ended or seq == 0 else "pending",
                            "spec": {"kind": "noop", "name": f"step{seq}"},
                            "depends_on": [f"step{seq - 1}"] if seq else [],
                            "queue": "default",
                            "priority": 0,
                            "created_at": created,
                            "version": 2,
                            "settled": True,
                        }
                    )
            conn.execute(insert(t.runs), runs)
            conn.execute(insert(t.tasks), tasks)
    await store.close()
    return keys


@pytest.mark.slow
async def test_runs_page_renders_fast_with_100k_runs(tmp_path: Path) -> None:
    filled = time.perf_counter()
    keys = await _fill(tmp_path / "ui.db")
    filled = time.perf_counter() - filled
    keys.sort(reverse=True)
    deep = encode_cursor(*keys[RUNS // 2])
    probe = keys[RUNS // 3][1][:6]
    # A one-day window in the middle of the stored range, whatever RUNS is.
    middle = keys[RUNS // 2][0]
    window_start = middle.strftime("%Y-%m-%dT%H:%M")
    window_end = (middle + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    pages = {
        "first page (50)": "/ui/runs/table",
        "first page (200)": "/ui/runs/table?limit=200",
        "status=failed": "/ui/runs/table?status=failed",
        "definition=billing": "/ui/runs/table?definition=billing",
        "status+definition": "/ui/runs/table?status=cancelled&definition=billing",
        "status+definition, no match": "/ui/runs/table?status=cancelled&definition=ingest",
        "id prefix (6 chars)": f"/ui/runs/table?q={probe}",
        "time window (1 day)": f"/ui/runs/table?from={window_start}&to={window_end}",
        "page 1,000 deep (cursor)": f"/ui/runs/table?cursor={deep}",
        "full page with filters form": "/",
    }
    figures: dict[str, float] = {}
    async with app_client(tmp_path, roles=("api",)) as client:
        for url in pages.values():  # warm the page cache and the template cache once
            await client.get(url)
        for label, url in pages.items():
            samples = []
            for _ in range(7):
                began = time.perf_counter()
                response = await client.get(url)
                samples.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text
            figures[label] = statistics.median(samples)
            if "no match" not in label and "prefix" not in label:
                assert response.text.count("<tr data-run=") > 0, label
        found = (await client.get(f"/ui/runs/table?q={keys[RUNS // 3][1]}")).text
        assert found.count("<tr data-run=") == 1
    print(f"\n{RUNS:,} runs, {RUNS * TASKS_PER_RUN:,} tasks inserted in {filled:.1f}s")
    for label, seconds in figures.items():
        print(f"  {label:32s} {seconds * 1000:7.1f} ms (median of 7)")
    # Figures, not a verdict: the suite makes no timing assertions (benchmarks/README.md has
    # the 100,000-run figures; TREADLE_UI_SCALE_RUNS=100000 reproduces them).
