"""Side-by-side benchmark: treadle against Celery, Dramatiq and RQ on the same local services.

    python benchmarks/run.py [--quick] [--tiny] [--json FILE] [--only SYSTEM[:WORKLOAD]]...

Workloads (issue 9): throughput (10,000 independent no-op tasks), chain40, chains100x10,
fanout1000, latency (50/s for 20 s, submit-to-start p50/p99) and scale (treadle only: embedded
and the best distributed mode at 1k/10k/100k tasks). Baselines measured in the same run: a bare
Python loop, a Redis LPUSH/BRPOP round trip, PostgreSQL and SQLite INSERT + 2 UPDATEs with a
commit each. Every system runs real worker processes against PostgreSQL 5432, Redis 6379,
RabbitMQ 5672 and NATS 4222, in its own database / key prefix / vhost, removed at the end.

Prints a Markdown table; ``--json`` writes rows {system, workload, value, unit,
higher_is_better}. ``--quick`` (smaller sizes, one repetition) stays within 10 minutes;
``--tiny`` is for the smoke test. ``--only`` takes shell patterns such as
``treadle:embedded:chain40`` or ``celery:*`` and may be repeated.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "src"))

from benchlib.baselines import BASELINES
from benchlib.common import CONCURRENCY, WORKER_PROCESSES, Row, Sizes, new_prefix
from benchlib.probe import ProbeServer

TREADLE_DISTRIBUTED = [
    "treadle:pg+redis",
    "treadle:pg+rabbitmq",
    "treadle:pg+pg",
    "treadle:pg+nats",
    "treadle:redis+redis",
]
SYSTEMS = [
    "treadle:embedded",
    *TREADLE_DISTRIBUTED,
    "celery:redis",
    "celery:rabbitmq",
    "dramatiq:redis",
    "dramatiq:rabbitmq",
    "rq",
]
PEER_WORKLOADS = ["throughput", "chain40", "chains100x10", "fanout1000", "latency"]
COLUMNS = [
    ("throughput", "throughput tasks/s"),
    ("chain40", "chain40 s"),
    ("chain40_per_step", "chain40 ms/step"),
    ("chains100x10", "chains100x10 s"),
    ("fanout1000", "fanout1000 s"),
    ("latency_p50", "latency p50 ms"),
    ("latency_p99", "latency p99 ms"),
]


def selected(only: list[str], system: str, workload: str | None = None) -> bool:
    if not only:
        return True
    for pattern in only:
        if workload is None:
            # A system is wanted if any pattern could name one of its workloads.
            head = pattern.rsplit(":", 1)[0]
            if fnmatch.fnmatch(system, pattern) or fnmatch.fnmatch(system, head):
                return True
        elif fnmatch.fnmatch(f"{system}:{workload}", pattern) or fnmatch.fnmatch(system, pattern):
            return True
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def make_system(name: str, folder: Path, probe: ProbeServer, vhost: str) -> Any:
    if name.startswith("treadle:"):
        from benchlib.treadle_sut import TreadleSystem

        return TreadleSystem(folder, name.split(":", 1)[1], vhost)
    from benchlib import peers

    if name.startswith("celery:"):
        return peers.CelerySystem(folder, probe, vhost, name.split(":", 1)[1])
    if name.startswith("dramatiq:"):
        return peers.DramatiqSystem(folder, probe, vhost, name.split(":", 1)[1])
    if name == "rq":
        return peers.RqSystem(folder, probe, vhost)
    raise SystemExit(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")


@contextlib.contextmanager
def rabbit_vhost(needed: bool) -> Iterator[str]:
    """A throw-away RabbitMQ vhost for the whole run (rabbitmqctl), removed at the end."""
    name = new_prefix()
    if not needed:
        yield name
        return
    subprocess.run(["rabbitmqctl", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True)


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = Sizes.for_mode(args.quick, args.tiny)
        if args.repeat:
            self.sizes = Sizes(**{**self.sizes.__dict__, "repeat": args.repeat})
        self.samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.errors: dict[tuple[str, str], str] = {}
        self.settings: dict[str, str] = {}
        self.only: list[str] = args.only or []

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def cell(self, system: str, workload: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # one failed cell must not stop the suite
            self.errors[(system, workload)] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            self.log(f"{system} {workload} FAILED: {self.errors[(system, workload)]}")
            if os.environ.get("BENCH_DEBUG"):
                traceback.print_exc()

    # -- one system -----------------------------------------------------------------------
    def run_system(self, name: str, folder: Path, probe: ProbeServer, vhost: str) -> None:
        s = self.sizes
        workloads = [w for w in PEER_WORKLOADS if selected(self.only, name, w)]
        if not workloads:
            return
        sub = folder / name.replace(":", "_").replace("+", "_")
        sub.mkdir()
        system = make_system(name, sub, probe, vhost)
        self.settings[name] = system.settings
        self.log(f"{name}: starting")
        try:
            system.start()
            system.warmup()
        except Exception as exc:
            for w in workloads:
                self.errors[(name, w)] = f"did not start: {exc}".splitlines()[0][:200]
            self.log(f"{name}: did not start: {exc}")
            with contextlib.suppress(Exception):
                system.stop()
            return
        try:
            for rep in range(s.repeat):
                self.log(f"{name}: repetition {rep + 1}/{s.repeat}")
                for workload in workloads:
                    self.cell(name, workload, lambda w=workload: self.measure(system, name, w))
        finally:
            system.stop()
            self.log(f"{name}: stopped and cleaned up")

    def measure(self, system: Any, name: str, workload: str) -> None:
        s = self.sizes
        add = self.samples[(name, workload)].append
        if workload == "throughput":
            add(s.throughput / system.throughput(s.throughput, s.cap))
        elif workload == "chain40":
            seconds = system.chain(s.chain, s.cap)
            add(seconds)
            self.samples[(name, "chain40_per_step")].append(seconds / s.chain * 1000)
        elif workload == "chains100x10":
            add(system.chains(*s.chains, s.cap))
        elif workload == "fanout1000":
            add(system.fanout(s.fanout, s.cap))
        elif workload == "latency":
            values = system.latency(s.latency_rate, s.latency_seconds, s.cap)
            self.samples[(name, "latency_p50")].append(percentile(values, 50))
            self.samples[(name, "latency_p99")].append(percentile(values, 99))

    def run_scale(self, folder: Path, probe: ProbeServer, vhost: str) -> None:
        candidates = ["treadle:embedded"]
        distributed = [
            (statistics.median(self.samples[(n, "throughput")]), n)
            for n in TREADLE_DISTRIBUTED
            if self.samples.get((n, "throughput"))
        ]
        if distributed:
            candidates.append(max(distributed)[1])
        elif self.only:
            candidates += [n for n in TREADLE_DISTRIBUTED if selected(self.only, n, "scale")]
        for name in candidates:
            if not selected(self.only, name, "scale"):
                continue
            sub = folder / f"scale_{name.replace(':', '_').replace('+', '_')}"
            sub.mkdir()
            system = make_system(name, sub, probe, vhost)
            self.log(f"{name}: scale {self.sizes.scale}")
            try:
                system.start()
                system.warmup()
                for _rep in range(self.sizes.repeat):
                    for n in self.sizes.scale:
                        self.cell(
                            name, f"scale_{n}", lambda n=n, s=system, m=name: self.scale(s, m, n)
                        )
            except Exception as exc:
                self.errors[(name, "scale")] = f"did not start: {exc}".splitlines()[0][:200]
            finally:
                system.stop()

    def scale(self, system: Any, name: str, n: int) -> None:
        seconds = system.throughput(n, max(self.sizes.cap, n / 100))
        self.samples[(name, f"scale_{n}")].append(n / seconds)

    def run_baselines(self, folder: Path) -> None:
        n = {
            "baseline:python": 10_000,
            "baseline:redis": 5_000,
            "baseline:pg": 1_000,
            "baseline:sqlite": 5_000,
        }
        scale = 0.2 if self.args.tiny else (0.5 if self.args.quick else 1.0)
        for name, (_, fn) in BASELINES.items():
            if not selected(self.only, name, "throughput"):
                continue
            for _ in range(self.sizes.repeat):
                self.cell(
                    name,
                    "throughput",
                    lambda fn=fn, name=name: self.samples[(name, "throughput")].append(
                        fn(int(n[name] * scale), folder)
                    ),
                )

    def run(self) -> list[Row]:
        names = [n for n in SYSTEMS if selected(self.only, n)]
        with tempfile.TemporaryDirectory(prefix="treadle-bench-") as scratch:
            folder = Path(scratch)
            probe = ProbeServer(str(folder / "probe.sock"))
            needs_rabbit = any("rabbitmq" in n for n in names)
            try:
                with rabbit_vhost(needs_rabbit) as vhost:
                    self.log("baselines")
                    self.run_baselines(folder)
                    for name in names:
                        self.run_system(name, folder, probe, vhost)
                    self.run_scale(folder, probe, vhost)
            finally:
                probe.close()
        return self.rows()

    # -- output ---------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        units = {
            "throughput": ("tasks/s", True),
            "chain40": ("s", False),
            "chain40_per_step": ("ms", False),
            "chains100x10": ("s", False),
            "fanout1000": ("s", False),
            "latency_p50": ("ms", False),
            "latency_p99": ("ms", False),
        }
        out = []
        for (system, workload), values in self.samples.items():
            if not values:
                continue
            unit, higher = units.get(workload, ("tasks/s", True))
            out.append(Row(system, workload, statistics.median(values), unit, higher))
        for (system, workload), error in self.errors.items():
            out.append(Row(system, workload, None, "", False, error))
        return out


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.2g}"


def versions() -> str:
    parts = []
    for package in ("celery", "kombu", "dramatiq", "rq", "redis", "SQLAlchemy", "asyncpg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{package} {metadata.version(package)}")
    return ", ".join(parts)


def render(rows: list[Row], suite: Suite) -> str:
    s = suite.sizes
    by = {(r.system, r.workload): r for r in rows}
    systems = [n for n in SYSTEMS if any(k[0] == n for k in by)]
    lines = [
        f"# Side by side — {datetime.date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "",
        f"Worker processes: {WORKER_PROCESSES} per system, {CONCURRENCY} slots each (RQ: 1 by "
        f"design; treadle embedded: one process, {2 * CONCURRENCY} slots). Median of {s.repeat} "
        f"repetition(s) after a warm-up. Sizes: throughput {s.throughput}, chain {s.chain}, "
        f"chains {s.chains[0]}x{s.chains[1]}, fan-out {s.fanout}, latency {s.latency_rate:g}/s "
        f"for {s.latency_seconds:g} s. Versions: {versions()}.",
        "",
        "| system | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for system in systems:
        cells = []
        for key, _ in COLUMNS:
            row = by.get((system, key))
            if row is None and key in ("latency_p50", "latency_p99"):
                row = by.get((system, "latency"))
            if row is None and key == "chain40_per_step":
                row = by.get((system, "chain40"))
                row = row if row is not None and row.value is None else None
            cells.append(
                "fail" if row is not None and row.value is None else fmt(row.value if row else None)
            )
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines += render_baselines(rows, by, systems)
    lines += render_scale(rows, by, systems)
    if suite.settings:
        lines += ["", "Settings:"]
        lines += [f"- {name}: {text}" for name, text in suite.settings.items()]
    failures = [r for r in rows if r.value is None]
    if failures:
        lines += ["", "Failures:"]
        lines += [f"- {r.system} {r.workload}: {r.note}" for r in failures]
    return "\n".join(lines)


def render_baselines(
    rows: list[Row], by: dict[tuple[str, str], Row], systems: list[str]
) -> list[str]:
    lines: list[str] = []
    baselines = [r for r in rows if r.system.startswith("baseline:") and r.value is not None]
    if baselines:
        lines += ["", "| baseline | ops (tasks)/s |", "|---|---|"]
        for r in sorted(baselines, key=lambda r: r.system):
            lines.append(f"| {r.system} — {BASELINES[r.system][0]} | {fmt(r.value)} |")
        floor = {r.system: r.value for r in baselines}
        ratios = []
        for system in systems:
            row = by.get((system, "throughput"))
            if row is None or row.value is None:
                continue
            ref = (
                "baseline:sqlite"
                if system == "treadle:embedded"
                else ("baseline:pg" if system.startswith("treadle:pg") else "baseline:redis")
            )
            if ref in floor:
                ratios.append(f"| {system} | {row.value / floor[ref]:.3f} x {ref} |")
        if ratios:
            lines += ["", "| system | throughput as a share of its floor |", "|---|---|", *ratios]
    return lines


def render_scale(rows: list[Row], by: dict[tuple[str, str], Row], systems: list[str]) -> list[str]:
    lines: list[str] = []
    scale = sorted(
        {r.workload for r in rows if r.workload.startswith("scale_")},
        key=lambda w: int(w.split("_")[1]),
    )
    if scale:
        lines += [
            "",
            "| system | "
            + " | ".join(f"{w[6:]} tasks/s" for w in scale)
            + " | change first -> last |",
            "|---|" + "---|" * (len(scale) + 1),
        ]
        for system in systems:
            values = [by.get((system, w)) for w in scale]
            if not any(v is not None and v.value for v in values):
                continue
            first, last = values[0], values[-1]
            change = (
                f"{(last.value / first.value - 1) * 100:+.0f}%"
                if first and last and first.value and last.value
                else "—"
            )
            lines.append(
                f"| {system} | "
                + " | ".join(fmt(v.value if v else None) for v in values)
                + f" | {change} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repetition")
    parser.add_argument("--tiny", action="store_true", help="seconds-long sizes (smoke test)")
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SYSTEM[:WORKLOAD]",
        help="shell pattern; repeatable (e.g. treadle:embedded:chain40)",
    )
    parser.add_argument("--repeat", type=int, help="repetitions per cell (default 3, quick 1)")
    args = parser.parse_args()
    suite = Suite(args)
    rows = suite.run()
    print(render(rows, suite))
    if args.json:
        args.json.write_text(json.dumps([r.as_json() for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
