"""Smoke test of benchmarks/run.py: one tiny workload yields well-formed rows (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_embedded_chain_gives_well_formed_rows(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--tiny",
            "--only",
            "treadle:embedded:chain40",
            "--only",
            "baseline:python",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    keys = {"system", "workload", "value", "unit", "higher_is_better"}
    assert rows, "no rows written"
    for row in rows:
        assert keys <= set(row), row
        assert isinstance(row["value"], float) and row["value"] > 0, row
        assert isinstance(row["higher_is_better"], bool)
        assert row["unit"] in {"s", "ms", "tasks/s"}
    got = {(r["system"], r["workload"]) for r in rows}
    # Exactly what was asked for: the chain (total and per step) and the one baseline.
    assert got == {
        ("treadle:embedded", "chain40"),
        ("treadle:embedded", "chain40_per_step"),
        ("baseline:python", "throughput"),
    }
    table = proc.stdout
    assert "| treadle:embedded |" in table and "chain40 ms/step" in table
