"""Shared pieces: result rows, workload sizes, service URLs, worker subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
SRC = REPO / "src"

PG = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
RABBIT = os.environ.get("BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672")
NATS = os.environ.get("BENCH_NATS", "nats://127.0.0.1:4222")
# Peers share one Redis database (isolated further by key prefixes, removed at the end).
PEER_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "11"))

WORKER_PROCESSES = 2
CONCURRENCY = 8  # execution slots per worker process (threads, coroutines)


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; --quick and --tiny shrink them."""

    throughput: int = 10_000
    chain: int = 40
    chains: tuple[int, int] = (100, 10)
    fanout: int = 1000
    latency_rate: float = 50.0
    latency_seconds: float = 20.0
    scale: tuple[int, ...] = (1_000, 10_000, 100_000)
    repeat: int = 3
    cap: float = 180.0  # seconds before a cell is given up

    @staticmethod
    def for_mode(quick: bool, tiny: bool) -> Sizes:
        if tiny:
            return Sizes(200, 5, (5, 3), 20, 20.0, 1.0, (100, 200), 1, 60.0)
        if quick:
            return Sizes(2_000, 40, (100, 10), 1000, 50.0, 5.0, (1_000, 10_000), 1, 90.0)
        return Sizes()


# Workload names as they appear in rows (issue 9); the sizes above only scale them down.
WORKLOADS = ("throughput", "chain40", "chains100x10", "fanout1000", "latency", "scale")


@dataclass
class Row:
    system: str
    workload: str
    value: float | None
    unit: str
    higher_is_better: bool
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "system": self.system,
            "workload": self.workload,
            "value": self.value,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
        }
        if self.note:
            out["note"] = self.note
        return out


def new_prefix() -> str:
    return f"bench{uuid.uuid4().hex[:8]}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(BENCH_DIR), str(SRC)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


@dataclass
class Procs:
    """Worker subprocesses of one system, with their logs."""

    folder: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.folder / f"{name}-{len(self.procs)}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            start_new_session=True,
        )
        handle.close()
        self.procs.append(proc)
        self.logs.append(log)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{proc.args[:3]} exited {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                # The whole session: Celery and Dramatiq fork children of their own.
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs = []


def python() -> str:
    return sys.executable
