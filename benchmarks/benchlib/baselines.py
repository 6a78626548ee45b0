"""The machine's limits, measured in the same run: each returns operations (tasks) per second.

- ``python``: a bare loop calling the no-op function.
- ``redis``: one client, per task an ``LPUSH`` then a ``BRPOP`` (a broker round trip).
- ``pg``: per task an ``INSERT`` and two ``UPDATE``s, each committed on its own (queued ->
  running -> done, the least a durable queue writes), ``synchronous_commit`` as configured.
- ``sqlite``: the same three commits on a WAL file with ``synchronous=NORMAL`` (treadle's
  embedded setting).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import redis

from benchlib.common import PEER_REDIS_DB, PG, REDIS, new_prefix


def _noop(i: int) -> None:
    return None


def python_loop(n: int) -> float:
    n *= 100  # too fast to time otherwise
    started = time.perf_counter()
    for i in range(n):
        _noop(i)
    return n / (time.perf_counter() - started)


def redis_roundtrip(n: int) -> float:
    client = redis.Redis.from_url(f"{REDIS}/{PEER_REDIS_DB}")
    key = f"{new_prefix()}:baseline"
    try:
        started = time.perf_counter()
        for i in range(n):
            client.lpush(key, i)
            client.brpop([key], timeout=5)
        return n / (time.perf_counter() - started)
    finally:
        client.delete(key)
        client.close()


def pg_commits(n: int) -> float:
    import psycopg

    table = new_prefix()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, status text)")
        try:
            started = time.perf_counter()
            for i in range(n):
                conn.execute(f"INSERT INTO {table} VALUES (%s, 'queued')", (i,))
                conn.execute(f"UPDATE {table} SET status='running' WHERE id=%s", (i,))
                conn.execute(f"UPDATE {table} SET status='done' WHERE id=%s", (i,))
            return n / (time.perf_counter() - started)
        finally:
            conn.execute(f"DROP TABLE {table}")


def sqlite_commits(n: int, folder: Path) -> float:
    path = folder / f"{new_prefix()}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT)")
        started = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO t VALUES (?, 'queued')", (i,))
            conn.execute("UPDATE t SET status='running' WHERE id=?", (i,))
            conn.execute("UPDATE t SET status='done' WHERE id=?", (i,))
        return n / (time.perf_counter() - started)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


BASELINES = {
    "baseline:python": ("bare Python loop calling the no-op", lambda n, f: python_loop(n)),
    "baseline:redis": ("Redis LPUSH + BRPOP round trip per task", lambda n, f: redis_roundtrip(n)),
    "baseline:pg": (
        "PostgreSQL INSERT + 2 UPDATEs, 3 commits per task",
        lambda n, f: pg_commits(n),
    ),
    "baseline:sqlite": (
        "SQLite WAL INSERT + 2 UPDATEs, 3 commits per task",
        lambda n, f: sqlite_commits(n, f),
    ),
}
