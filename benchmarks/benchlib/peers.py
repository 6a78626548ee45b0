"""Celery, Dramatiq and RQ as systems under test: real worker processes, probe-timed tasks.

Every system runs ``WORKER_PROCESSES`` worker processes with ``CONCURRENCY`` slots each where the
peer has slots (Celery thread pool, Dramatiq threads); an RQ worker runs one job at a time by
design, so RQ gets the same process count with one slot each. Task bodies call
:func:`benchlib.probe.send`; the harness times completions from those datagrams.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from benchlib.common import (
    CONCURRENCY,
    PEER_REDIS_DB,
    RABBIT,
    REDIS,
    WORKER_PROCESSES,
    Procs,
    child_env,
    new_prefix,
    python,
)
from benchlib.probe import ProbeServer


def redis_url() -> str:
    return f"{REDIS}/{PEER_REDIS_DB}"


def drop_redis_prefix(prefix: str) -> int:
    """Delete every key of the peer database that carries ``prefix``; returns the count."""
    client = redis.Redis.from_url(redis_url())
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    for shared in ("rq:queues", "rq:workers"):
        for member in client.smembers(shared):
            if prefix.encode() in member:
                client.srem(shared, member)
    client.close()
    return len(keys)


class PeerSystem:
    """Common lifecycle: a prefix, a probe socket, worker processes, cleanup."""

    name = "peer"

    def __init__(self, folder: Path, probe: ProbeServer, vhost: str | None) -> None:
        self.folder = folder
        self.probe = probe
        self.vhost = vhost
        self.prefix = new_prefix()
        self.procs = Procs(folder)
        self.settings = ""
        self.cells = 0

    def env(self, broker_url: str) -> dict[str, str]:
        return child_env(
            BENCH_PREFIX=self.prefix,
            BENCH_BROKER_URL=broker_url,
            BENCH_BACKEND_URL=redis_url(),
            BENCH_PROBE=self.probe.path,
        )

    def rabbit_url(self) -> str:
        return f"{RABBIT}/{self.vhost}"

    # -- the workloads: each returns seconds, or latencies in ms ---------------------------
    def _next_cell(self) -> str:
        """A fresh tag prefix: only this cell's tasks count towards its completion."""
        self.cells += 1
        self.probe.reset()
        return f"k{self.cells}-"

    def _run(self, count: int, cap: float, submit: Any) -> float:
        cell = self._next_cell()
        started = time.time()
        submit(cell)
        hits = self.probe.wait(count, cap, cell)
        return max(h.at for h in hits) - started

    def throughput(self, n: int, cap: float) -> float:
        return self._run(n, cap, lambda cell: self.submit_many(n, cell))

    def chain(self, steps: int, cap: float) -> float:
        return self._run(steps, cap, lambda cell: self.submit_chain(f"{cell}c", steps))

    def chains(self, runs: int, steps: int, cap: float) -> float:
        def submit(cell: str) -> None:
            for r in range(runs):
                self.submit_chain(f"{cell}r{r}", steps)

        return self._run(runs * steps, cap, submit)

    def fanout(self, width: int, cap: float) -> float:
        return self._run(width + 2, cap, lambda cell: self.submit_fanout(width, cell))

    def latency(self, rate: float, seconds: float, cap: float) -> list[float]:
        count = int(rate * seconds)
        cell = self._next_cell()
        origin = time.time() + 0.05
        for i in range(count):
            intended = origin + i / rate
            pause = intended - time.time()
            if pause > 0:
                time.sleep(pause)
            self.submit_one(f"{cell}l{i}", time.time())  # measured from the call, as treadle
        hits = self.probe.wait(count, cap, cell)
        return [(h.at - h.submitted) * 1000 for h in hits]

    def warmup(self, cap: float = 60.0) -> None:
        """Run small batches until every worker process has executed something."""
        seen: set[int] = set()
        deadline = time.monotonic() + cap
        while len(seen) < WORKER_PROCESSES and time.monotonic() < deadline:
            self.procs.check()
            cell = self._next_cell()
            self.submit_many(200, cell)
            seen |= {h.pid for h in self.probe.wait(200, cap, cell)}
        self.chain(5, cap)

    # -- per peer -------------------------------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.procs.stop()

    def submit_many(self, n: int, cell: str) -> None:
        raise NotImplementedError

    def submit_one(self, tag: str, submitted: float) -> None:
        raise NotImplementedError

    def submit_chain(self, tag: str, steps: int) -> None:
        raise NotImplementedError

    def submit_fanout(self, width: int, cell: str) -> None:
        raise NotImplementedError


class CelerySystem(PeerSystem):
    def __init__(self, folder: Path, probe: ProbeServer, vhost: str | None, broker: str) -> None:
        super().__init__(folder, probe, vhost)
        self.kind = broker
        self.name = f"celery:{broker}"
        self.broker_url = redis_url() if broker == "redis" else self.rabbit_url()
        self.settings = (
            f"{WORKER_PROCESSES} x `celery worker -P threads -c {CONCURRENCY}`, prefetch "
            "multiplier 4, early ack, JSON, result backend Redis (chord only)"
        )

    def start(self) -> None:
        from benchlib.peer_celery import make_app

        self.app = make_app(self.prefix, self.broker_url, redis_url())
        env = self.env(self.broker_url)
        for i in range(WORKER_PROCESSES):
            self.procs.start(
                "celery",
                [
                    python(),
                    "-m",
                    "celery",
                    "-A",
                    "benchlib.peer_celery",
                    "worker",
                    "-P",
                    "threads",
                    "-c",
                    str(CONCURRENCY),
                    "-Q",
                    self.prefix,
                    "-n",
                    f"{self.prefix}-{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "WARNING",
                ],
                env,
            )
        self.producer = self.app.producer_pool.acquire(block=True)

    def stop(self) -> None:
        super().stop()
        import gc

        gc.collect()  # chord results unsubscribe while the connection still exists
        self.producer.release()
        if self.kind == "rabbitmq":
            with self.app.connection_for_write() as conn:
                channel = conn.default_channel
                channel.queue_delete(self.prefix)
                channel.exchange_delete(self.prefix)
        self.app.close()
        drop_redis_prefix(self.prefix)

    def sig(self, tag: str, submitted: float = 0.0, name: str = "bench.noop") -> Any:
        return self.app.signature(name, args=(tag, submitted), immutable=True)

    def submit_many(self, n: int, cell: str) -> None:
        for i in range(n):
            self.sig(f"{cell}t{i}").apply_async(producer=self.producer)

    def submit_one(self, tag: str, submitted: float) -> None:
        self.sig(tag, submitted).apply_async(producer=self.producer)

    def submit_chain(self, tag: str, steps: int) -> None:
        from celery import chain

        chain(*[self.sig(f"{tag}.{j}") for j in range(steps)]).apply_async(producer=self.producer)

    def submit_fanout(self, width: int, cell: str) -> None:
        from celery import chain, chord

        header = [self.sig(f"{cell}f.{i}", name="bench.noop_r") for i in range(width)]
        chain(self.sig(f"{cell}f.root"), chord(header, self.sig(f"{cell}f.join"))).apply_async(
            producer=self.producer
        )


class DramatiqSystem(PeerSystem):
    def __init__(self, folder: Path, probe: ProbeServer, vhost: str | None, broker: str) -> None:
        super().__init__(folder, probe, vhost)
        self.kind = broker
        self.name = f"dramatiq:{broker}"
        self.broker_url = redis_url() if broker == "redis" else self.rabbit_url()
        self.settings = (
            f"`dramatiq -p {WORKER_PROCESSES} -t {CONCURRENCY}`, default prefetch "
            f"(2 x threads), ack after the actor, GroupCallbacks on Redis"
        )

    def start(self) -> None:
        from benchlib.peer_dramatiq import make_broker

        self.broker = make_broker(self.prefix, self.broker_url, redis_url())
        self.broker.declare_queue(self.prefix)
        self.procs.start(
            "dramatiq",
            [
                python(),
                "-m",
                "dramatiq",
                "benchlib.peer_dramatiq",
                "-p",
                str(WORKER_PROCESSES),
                "-t",
                str(CONCURRENCY),
                "-Q",
                self.prefix,
            ],
            self.env(self.broker_url),
        )

    def stop(self) -> None:
        super().stop()
        if self.kind == "rabbitmq":
            channel = self.broker.channel
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(self.prefix + suffix)
        self.broker.close()
        drop_redis_prefix(self.prefix)

    def message(self, actor: str, *args: Any, **options: Any) -> Any:
        import dramatiq

        return dramatiq.Message(self.prefix, actor, args, {}, options)

    def submit_many(self, n: int, cell: str) -> None:
        for i in range(n):
            self.broker.enqueue(self.message("noop", f"{cell}t{i}"))

    def submit_one(self, tag: str, submitted: float) -> None:
        self.broker.enqueue(self.message("noop", tag, submitted))

    def submit_chain(self, tag: str, steps: int) -> None:
        import dramatiq

        dramatiq.pipeline(
            [self.message("noop", f"{tag}.{j}", pipe_ignore=True) for j in range(steps)],
            broker=self.broker,
        ).run()

    def submit_fanout(self, width: int, cell: str) -> None:
        self.broker.enqueue(self.message("fan_root", f"{cell}f", width))


class RqSystem(PeerSystem):
    name = "rq"

    def __init__(self, folder: Path, probe: ProbeServer, vhost: str | None) -> None:
        super().__init__(folder, probe, vhost)
        self.settings = (
            f"{WORKER_PROCESSES} x `rq worker -w rq.worker.SimpleWorker` (no fork per job; one "
            "job at a time per process by RQ's design), default result TTL"
        )
        self.ids = 0

    def start(self) -> None:
        from rq import Queue

        self.conn = redis.Redis.from_url(redis_url())
        self.queue = Queue(self.prefix, connection=self.conn)
        rq_bin = str(Path(python()).parent / "rq")
        for i in range(WORKER_PROCESSES):
            self.procs.start(
                "rq",
                [
                    rq_bin,
                    "worker",
                    "-w",
                    "rq.worker.SimpleWorker",
                    "--url",
                    redis_url(),
                    "-n",
                    f"{self.prefix}-w{i}",
                    "--logging_level",
                    "WARNING",
                    self.prefix,
                ],
                self.env(redis_url()),
            )

    def stop(self) -> None:
        super().stop()
        # RQ's registry-cleaning lock (expires by itself; this database is the suite's own).
        self.conn.delete("rq:clean_groups")
        self.conn.close()
        drop_redis_prefix(self.prefix)

    def job_id(self) -> str:
        self.ids += 1
        return f"{self.prefix}-{self.ids}"

    def submit_many(self, n: int, cell: str) -> None:
        from rq import Queue

        with self.conn.pipeline() as pipe:
            self.queue.enqueue_many(
                [
                    Queue.prepare_data(
                        "benchlib.peer_rq.noop", (f"{cell}t{i}",), job_id=self.job_id()
                    )
                    for i in range(n)
                ],
                pipeline=pipe,
            )
            pipe.execute()

    def submit_one(self, tag: str, submitted: float) -> None:
        self.queue.enqueue("benchlib.peer_rq.noop", tag, submitted, job_id=self.job_id())

    def submit_chain(self, tag: str, steps: int) -> None:
        previous = None
        for j in range(steps):
            previous = self.queue.enqueue(
                "benchlib.peer_rq.noop", f"{tag}.{j}", job_id=self.job_id(), depends_on=previous
            )

    def submit_fanout(self, width: int, cell: str) -> None:
        noop = "benchlib.peer_rq.noop"
        root = self.queue.enqueue(noop, f"{cell}f.root", job_id=self.job_id())
        children = [
            self.queue.enqueue(noop, f"{cell}f.{i}", job_id=self.job_id(), depends_on=root)
            for i in range(width)
        ]
        self.queue.enqueue(noop, f"{cell}f.join", job_id=self.job_id(), depends_on=children)
