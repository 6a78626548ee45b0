"""The chaos suite's harness: a cluster wired for fault injection, and the end-of-run checker.

On top of tests/integration/cluster.py it adds, per scenario:

- an execution ledger (a file every task body appends to, loaded into ``chaos_exec`` in the
  store's schema at the end) that counts how often each body really ran;
- a trigger that logs every status change of runs, tasks and attempts in
  ``chaos_transitions``, so a reversed terminal state cannot hide;
- the cluster's store sessions named after its schema (``application_name``), so
  ``pg_terminate_backend`` cuts exactly this cluster's connections and nobody else's;
- fault helpers: terminate store sessions, kill Redis clients by address, pause points.

:meth:`Chaos.check` waits for quiescence, then asserts the reliability contract (DESIGN §4)
from the tables alone and records the figures for the summary table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.report import RESULTS, Figures
from tests.integration.cluster import (
    FULL,
    POSTGRES_URL,
    REDIS_URL,
    Cluster,
    Proc,
    sql,
    wait_for,
    with_options,
)

#: Short leases (3 s, heartbeat every 0.5 s): a dead worker's attempts are swept in seconds.
LEASES = {"TREADLE_LEASE_SECONDS": "3", "TREADLE_HEARTBEAT_SECONDS": "0.5"}
#: Scenarios that only run with --full (TREADLE_FULL_TESTS=1): CI's time budget holds the
#: default suite to the core scenarios; these repeat their mechanisms with other faults.
#: Without --full they are deselected at collection (tests/chaos/conftest.py), not skipped.
extended = pytest.mark.chaos_extended
#: How long a scenario may take to settle after its faults (generous: a loaded 2-core box).
SETTLE = 240.0 if FULL else 150.0

TASK_TERMINAL = {"completed", "failed", "skipped", "cancelled"}
RUN_TERMINAL = {"completed", "failed", "cancelled"}
ATTEMPT_TERMINAL = {"completed", "failed", "lost", "cancelled"}
_TERMINAL_BY_TABLE = {
    "treadle_tasks": TASK_TERMINAL,
    "treadle_runs": RUN_TERMINAL,
    "treadle_attempts": ATTEMPT_TERMINAL,
}

_TRIGGER_SQL = """
CREATE TABLE "{ns}".chaos_transitions (
    seq bigserial PRIMARY KEY, tbl text NOT NULL, row_id text NOT NULL,
    old_status text, new_status text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION "{ns}".chaos_log_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "{ns}".chaos_transitions (tbl, row_id, old_status, new_status)
    VALUES (TG_TABLE_NAME, NEW.id, NULL, NEW.status);
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO "{ns}".chaos_transitions (tbl, row_id, old_status, new_status)
    VALUES (TG_TABLE_NAME, NEW.id, OLD.status, NEW.status);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER chaos_runs AFTER INSERT OR UPDATE OF status ON "{ns}".treadle_runs
  FOR EACH ROW EXECUTE FUNCTION "{ns}".chaos_log_status();
CREATE TRIGGER chaos_tasks AFTER INSERT OR UPDATE OF status ON "{ns}".treadle_tasks
  FOR EACH ROW EXECUTE FUNCTION "{ns}".chaos_log_status();
CREATE TRIGGER chaos_attempts AFTER INSERT OR UPDATE OF status ON "{ns}".treadle_attempts
  FOR EACH ROW EXECUTE FUNCTION "{ns}".chaos_log_status();
CREATE TABLE "{ns}".chaos_exec (
    what text NOT NULL, task_id text NOT NULL, attempt_id text NOT NULL, pid integer NOT NULL,
    at double precision NOT NULL);
"""


async def _execute(script: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(script)
    finally:
        await conn.close()


async def _copy_ledger(schema: str, rows: list[tuple[str, str, str, int, float]]) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.copy_records_to_table("chaos_exec", records=rows, schema_name=schema)
    finally:
        await conn.close()


def chain(name: str, ledger: Path, width: int = 2, seconds: float = 0.05) -> dict[str, Any]:
    """A diamond of python bodies: ``first -> width parallel bodies -> last``."""
    args = {"ledger": str(ledger), "seconds": seconds}
    middle = [f"m{i}" for i in range(width)]
    return {
        "name": name,
        "tasks": [
            {"name": "first", "kind": "python", "handler": "chaos_body", "args": args},
            *(
                {
                    "name": m,
                    "kind": "python",
                    "handler": "chaos_body",
                    "args": args,
                    "depends_on": ["first"],
                }
                for m in middle
            ),
            {
                "name": "last",
                "kind": "python",
                "handler": "chaos_body",
                "args": args,
                "depends_on": middle,
            },
        ],
    }


def single(name: str, ledger: Path, handler: str = "chaos_body", **args: Any) -> dict[str, Any]:
    """One python task."""
    spec = {"ledger": str(ledger), **args}
    return {
        "name": name,
        "tasks": [{"name": "only", "kind": "python", "handler": handler, "args": spec}],
    }


@dataclass
class Chaos:
    """One scenario's cluster, ledger and figures."""

    cluster: Cluster
    ledger: Path
    faults_dir: Path
    figures: Figures
    run_ids: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def ns(self) -> str:
        return self.cluster.namespace

    # -- processes and load -------------------------------------------------------------------
    def worker(self, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> Proc:
        return self.cluster.worker("--import", "tests.chaos.handlers", *args, env=env, wait=wait)

    def start(self, workers: int = 2, concurrency: int = 4, coordinators: int = 1) -> list[Proc]:
        """api + coordinators + workers, started together; returns the workers."""
        c = self.cluster
        others = [c.api(wait=False), *(c.coordinator(wait=False) for _ in range(coordinators))]
        started = [
            self.worker("--queue", f"default:{concurrency}", wait=False) for _ in range(workers)
        ]
        c.wait_ready(*others, *started, timeout=180)  # slow starts on a loaded machine
        return started

    def post(self, definition: dict[str, Any], runs: int) -> list[str]:
        ids = self.cluster.post_runs(definition, runs)
        self.run_ids.extend(ids)
        return ids

    def fault(self, what: str) -> None:
        """Note an injected fault for the report."""
        self.figures.faults.append(what)

    def count_tasks(self, status: str) -> int:
        rows = self.cluster.sql("SELECT count(*) AS n FROM treadle_tasks WHERE status = $1", status)
        return int(rows[0]["n"])

    def held_by(self, proc: Proc) -> list[str]:
        """Attempts the worker process holds now (running, by its worker id)."""
        rows = self.cluster.sql(
            "SELECT id FROM treadle_attempts WHERE status = 'running' AND worker_id LIKE $1",
            f"%-{proc.pid}-%",
        )
        return [str(r["id"]) for r in rows]

    def statuses(self, attempt_ids: Iterable[str]) -> list[str]:
        rows = self.cluster.sql(
            "SELECT status FROM treadle_attempts WHERE id = ANY($1::text[])", list(attempt_ids)
        )
        return [str(r["status"]) for r in rows]

    # -- faults -----------------------------------------------------------------------------
    def terminate_store_sessions(self) -> int:
        """``pg_terminate_backend`` every store session of this cluster; return how many."""
        rows = sql(
            self.ns,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            self.ns,
        )
        return int(rows[0]["n"])

    def lock_waiters(self) -> int:
        """This cluster's store sessions waiting on a row lock now."""
        rows = sql(
            self.ns,
            "SELECT count(*) AS n FROM pg_stat_activity "
            "WHERE application_name = $1 AND wait_event_type = 'Lock'",
            self.ns,
        )
        return int(rows[0]["n"])

    def kill_redis_clients(self, procs: Sequence[Proc]) -> int:
        """``CLIENT KILL`` the Redis connections of these processes only (the server is shared
        with other test runs: restarting it, or killing every client, would break them)."""
        import redis

        port = int(REDIS_URL.split(":")[-1].split("/")[0])
        client = redis.Redis.from_url(REDIS_URL)
        killed = 0
        try:
            for proc in procs:
                for address in tcp_connections(proc.pid, port):
                    with contextlib.suppress(redis.ResponseError):  # closed meanwhile
                        killed += int(client.client_kill(address))
        finally:
            client.close()
        return killed

    def arm(self, point: str) -> None:
        (self.faults_dir / f"{point}.pause").touch()

    def reached(self, point: str) -> bool:
        return (self.faults_dir / f"{point}.reached").exists()

    def release(self, point: str) -> None:
        (self.faults_dir / f"{point}.held").unlink(missing_ok=True)
        (self.faults_dir / f"{point}.pause").unlink(missing_ok=True)

    def wait_finished(self, runs: int, timeout: float) -> None:
        """Wait until ``runs`` runs are terminal; on a timeout, say what is stuck and why."""
        c = self.cluster
        try:
            c.wait_runs_finished(runs, timeout=timeout)
        except AssertionError as exc:
            stuck = c.sql(
                "SELECT t.id, t.status, t.attempt_id, t.queued_at, t.available_at, "
                "t.published_at, (SELECT array_agg(a.status || ' ' || a.worker_id) "
                "FROM treadle_attempts a WHERE a.task_id = t.id) AS attempts "
                "FROM treadle_tasks t WHERE t.status NOT IN "
                "('completed', 'failed', 'skipped', 'cancelled')"
            )
            sessions = sql(
                self.ns,
                "SELECT pid, state, wait_event_type, left(query, 80) AS query "
                "FROM pg_stat_activity WHERE application_name = $1",
                self.ns,
            )
            raise AssertionError(f"stuck: {stuck}\nsessions: {sessions}\n{exc}") from None

    # -- the verdict ------------------------------------------------------------------------
    def check(
        self,
        tasks_per_run: int,
        may_fail: Callable[[dict[str, Any]], bool] = lambda task: False,
    ) -> Figures:
        """Wait until every run is terminal and nothing runs, then check the contract.

        ``may_fail(task_row)`` says which failed tasks the scenario expects (a poison task);
        any other failure is a defect.
        """
        fig = self.figures
        c = self.cluster
        try:
            self.wait_finished(len(self.run_ids), SETTLE)
        finally:
            self._count(tasks_per_run)
        wait_for(
            lambda: not c.sql("SELECT 1 FROM treadle_attempts WHERE status = 'running'"),
            60,
            "no attempt left running",
        )
        self._count(tasks_per_run)
        self._verify(tasks_per_run, may_fail)
        return fig

    def _count(self, tasks_per_run: int) -> None:
        fig = self.figures
        rows = self.cluster.sql(
            "SELECT status, count(*) AS n FROM treadle_tasks WHERE run_id = ANY($1::text[]) "
            "GROUP BY status",
            self.run_ids,
        )
        counts = {str(r["status"]): int(r["n"]) for r in rows}
        fig.tasks = len(self.run_ids) * tasks_per_run
        fig.completed = counts.get("completed", 0)
        fig.failed = counts.get("failed", 0)
        fig.lost = fig.tasks - sum(n for s, n in counts.items() if s in TASK_TERMINAL)
        # The worker logs one line per rejected late result, naming its attempt.
        fig.late_rejected = sum(
            len(re.findall(r"stale result\(s\) rejected by the store for attempt", p.text()))
            for p in self.cluster.procs
        )
        fig.seconds = time.monotonic() - self.started
        execs = self._ledger()
        per_task = Counter(task for what, task, *_ in execs if what == "start")
        fig.duplicated = sum(1 for n in per_task.values() if n > 1)
        fig.extra_runs = sum(n - 1 for n in per_task.values() if n > 1)

    def _ledger(self) -> list[tuple[str, str, str, int, float]]:
        if not self.ledger.exists():
            return []
        rows = []
        for line in self.ledger.read_text().splitlines():
            what, task, attempt, pid, at = line.split()
            rows.append((what, task, attempt, int(pid), float(at)))
        return rows

    def _verify(self, tasks_per_run: int, may_fail: Callable[[dict[str, Any]], bool]) -> None:
        c, fig = self.cluster, self.figures
        asyncio.run(_copy_ledger(self.ns, self._ledger()))
        tasks = c.sql(
            "SELECT id, run_id, name, status, error, attempt_id FROM treadle_tasks "
            "WHERE run_id = ANY($1::text[])",
            self.run_ids,
        )
        # Every submitted task exists, once, and reached a terminal state.
        assert len(tasks) == len(self.run_ids) * tasks_per_run, (len(tasks), fig)
        assert fig.lost == 0, [t for t in tasks if t["status"] not in TASK_TERMINAL]
        unexpected = [t for t in tasks if t["status"] != "completed" and not may_fail(t)]
        assert unexpected == [], unexpected
        # Exactly one completed attempt per completed task, and it is the one the task names.
        done = c.sql(
            "SELECT t.id, t.status, t.attempt_id, "
            "array_agg(a.id) FILTER (WHERE a.status = 'completed') AS won "
            "FROM treadle_tasks t LEFT JOIN treadle_attempts a ON a.task_id = t.id "
            "GROUP BY t.id"
        )
        for row in done:
            won = row["won"] or []
            if row["status"] == "completed":
                assert won == [row["attempt_id"]], row
            else:
                assert won == [], row
        # The ledger: no attempt's body ran twice (the broker must not re-run an attempt), every
        # executed attempt is known to the store, and each completed task's winner really ran.
        twice = c.sql(
            "SELECT attempt_id, count(*) AS n FROM chaos_exec WHERE what = 'start' "
            "GROUP BY attempt_id HAVING count(*) > 1"
        )
        assert twice == [], twice
        strangers = c.sql(
            "SELECT e.attempt_id FROM chaos_exec e LEFT JOIN treadle_attempts a "
            "ON a.id = e.attempt_id WHERE a.id IS NULL"
        )
        assert strangers == [], strangers
        unrun = c.sql(
            "SELECT t.id FROM treadle_tasks t WHERE t.status = 'completed' AND NOT EXISTS "
            "(SELECT 1 FROM chaos_exec e WHERE e.attempt_id = t.attempt_id AND e.what = 'end')"
        )
        assert unrun == [], f"completed without their body ending: {unrun}"
        # At-least-once within budget: extra body runs only come from attempts that did not win.
        over = c.sql(
            "SELECT e.task_id, count(*) AS runs, "
            "(SELECT count(*) FROM treadle_attempts a WHERE a.task_id = e.task_id) AS attempts "
            "FROM chaos_exec e WHERE e.what = 'start' GROUP BY e.task_id "
            "HAVING count(*) > (SELECT count(*) FROM treadle_attempts a "
            "WHERE a.task_id = e.task_id)"
        )
        assert over == [], over
        # No terminal state was ever left (runs, tasks, attempts), per the trigger's history.
        history = c.sql("SELECT tbl, row_id, old_status, new_status FROM chaos_transitions")
        reversed_ = [
            h
            for h in history
            if h["old_status"] in _TERMINAL_BY_TABLE[h["tbl"]]
            and h["new_status"] != h["old_status"]
        ]
        assert reversed_ == [], reversed_
        # ...nor announced twice in treadle's own event history.
        finished_twice = c.sql(
            "SELECT run_id, count(*) AS n FROM treadle_events "
            "WHERE kind IN ('run.completed', 'run.failed') GROUP BY run_id HAVING count(*) > 1"
        )
        assert finished_twice == [], finished_twice
        # No two attempts of one task held the task at the same time. Each attempt's span runs
        # from its insertion (claimed, running) to its first status change, both stamped by the
        # trigger on the server's one clock; a live lease is always inside that span.
        overlaps = c.sql(
            "WITH span AS (SELECT a.id, a.task_id, "
            "(SELECT min(at) FROM chaos_transitions h WHERE h.tbl = 'treadle_attempts' "
            " AND h.row_id = a.id) AS began, "
            "coalesce((SELECT min(at) FROM chaos_transitions h WHERE h.tbl = 'treadle_attempts' "
            " AND h.row_id = a.id AND h.old_status = 'running'), 'infinity') AS ended "
            "FROM treadle_attempts a) "
            "SELECT x.id AS a, y.id AS b FROM span x JOIN span y "
            "ON x.task_id = y.task_id AND x.id < y.id "
            "WHERE x.began < y.ended AND y.began < x.ended"
        )
        assert overlaps == [], overlaps


def prepare(
    make_cluster: Callable[..., Cluster],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    scenario: str,
    broker: str,
    broker_extra: str = "",
    env: dict[str, str] | None = None,
) -> Chaos:
    """A migrated cluster with the ledger, the transition trigger and named store sessions."""
    faults_dir = tmp_path / "faults"
    faults_dir.mkdir(parents=True, exist_ok=True)
    cluster = make_cluster(
        broker,
        broker_extra=broker_extra,
        env={**LEASES, "TREADLE_FAULT_DIR": str(faults_dir), **(env or {})},
    )
    cluster.db_override = with_options(cluster.db, f"application_name={cluster.namespace}")
    asyncio.run(_execute(_TRIGGER_SQL.format(ns=cluster.namespace)))
    figures = Figures(scenario)
    RESULTS[request.node.nodeid] = figures
    return Chaos(cluster, tmp_path / "ledger.txt", faults_dir, figures)


def tcp_connections(pid: int, remote_port: int) -> list[str]:
    """``host:port`` of each TCP connection process ``pid`` has open to ``remote_port``
    (from /proc: the socket inodes of its file descriptors, matched in /proc/net/tcp)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.exists() else []:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, inode = parts[1], parts[2], parts[9]
        if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
            ip_hex, port_hex = local.split(":")
            ip = ".".join(str(b) for b in reversed(bytes.fromhex(ip_hex)))
            found.append(f"{ip}:{int(port_hex, 16)}")
    return found


def spread(total: int, parts: int) -> list[int]:
    """Thresholds at which to inject ``parts`` faults evenly inside a load of ``total``."""
    return [total * (i + 1) // (parts + 1) for i in range(parts)]


def by_status(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[str(row["status"])] += 1
    return dict(counts)
