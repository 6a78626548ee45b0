"""Chaos scenarios 4, 7, 13 and 14: the broker restarted, its connections cut or slowed, and a
task that outlives every broker-side ack timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.chaos.harness import chain, extended, prepare, single, spread
from tests.chaos.proxy import ChaosProxy
from tests.integration.cluster import (
    FULL,
    REDIS_URL,
    Cluster,
    broker_url,
    rabbitmq_queues,
    rabbitmqctl,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600 if FULL else 180)]

RUNS = 200 if FULL else 12


@pytest.mark.exclusive
def test_rabbitmq_restarted_twice_during_a_run(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """4. ``rabbitmqctl stop_app`` / ``start_app`` twice while runs are in flight."""
    chaos = prepare(make_cluster, tmp_path, request, "4 RabbitMQ restarted x2", "rabbitmq")
    chaos.start(workers=2, concurrency=4)
    chaos.post(chain("bounced", chaos.ledger, seconds=0.1), RUNS)
    for threshold in spread(RUNS * 4, 2):
        wait_for(lambda t=threshold: chaos.count_tasks("completed") >= t, 180, f"{threshold}")
        rabbitmqctl("stop_app")
        try:
            time.sleep(1)  # the outage's length
        finally:
            rabbitmqctl("start_app")
        rabbitmqctl("await_startup", timeout=120)
    chaos.fault("stop_app/start_app x2")
    fig = chaos.check(tasks_per_run=4)
    assert fig.completed == RUNS * 4
    for proc in chaos.cluster.procs:
        assert proc.alive(), f"{proc.role} died:\n{proc.text()[-2000:]}"


def test_redis_clients_killed_twice_during_a_run(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """4 (Redis). ``CLIENT KILL`` of every connection of this cluster's processes, twice
    (restarting the shared Redis server would break other test runs)."""
    chaos = prepare(make_cluster, tmp_path, request, "4 Redis clients killed x2", "redis")
    chaos.start(workers=2, concurrency=4)
    chaos.post(chain("cut", chaos.ledger, seconds=0.1), RUNS)
    killed = 0
    for threshold in spread(RUNS * 4, 2):
        wait_for(lambda t=threshold: chaos.count_tasks("completed") >= t, 180, f"{threshold}")
        killed += chaos.kill_redis_clients(chaos.cluster.procs)
    chaos.fault(f"CLIENT KILL x2 ({killed} connections)")
    fig = chaos.check(tasks_per_run=4)
    assert killed > 0
    assert fig.completed == RUNS * 4


def test_long_task_outlives_broker_ack_timeouts(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """7. A task running for more than twice its lease, on Redis with a 1 s visibility timeout
    (its message would be handed to another consumer after 1 s if still unacked) and on
    RabbitMQ (where a message held unacked past ``consumer_timeout`` closes the channel; 3.10
    has no per-queue timeout, so the test shows no message stays unacked while the task runs).
    The lease lives in the store and is renewed by heartbeats: one attempt, one body run."""
    redis_chaos = prepare(
        make_cluster,
        tmp_path / "redis",
        request,
        "7 long task (Redis vt=1s, RabbitMQ)",
        "redis",
        broker_extra="visibility_timeout=1",
    )
    rabbit = make_cluster("rabbitmq", env=redis_chaos.cluster.env)
    rabbit.db_override = redis_chaos.cluster.db_override.replace(redis_chaos.ns, rabbit.namespace)
    redis_chaos.start(workers=2, concurrency=2)
    rabbit.start(
        workers=1, worker_args=["--import", "tests.chaos.handlers", "--queue", "default:2"]
    )
    redis_chaos.post(single("long", redis_chaos.ledger, seconds=4.0), 2)
    rabbit_ledger = tmp_path / "rabbit-ledger.txt"
    (rabbit_run,) = rabbit.post_runs(single("long", rabbit_ledger, seconds=4.0), 1)
    wait_for(
        lambda: rabbit.sql("SELECT 1 FROM treadle_attempts WHERE status = 'running'"),
        60,
        "the RabbitMQ task to start",
    )
    unacked = rabbitmqctl(
        "list_queues", "-q", "--no-table-headers", "name", "messages_unacknowledged"
    )
    mine = [
        line.split()
        for line in unacked.splitlines()
        if line.split() and line.split()[0] in rabbitmq_queues(rabbit.namespace)
    ]
    assert mine and all(int(n) == 0 for _, n in mine), mine
    redis_chaos.fault("4s task, lease 3s, Redis visibility 1s, RabbitMQ unacked: 0")
    fig = redis_chaos.check(tasks_per_run=1)
    assert rabbit.wait_runs_finished(1, timeout=60) == {"completed": 1}
    attempts = rabbit.sql("SELECT status FROM treadle_attempts")
    assert [a["status"] for a in attempts] == ["completed"], (rabbit_run, attempts)
    assert [line.split()[0] for line in rabbit_ledger.read_text().splitlines()] == [
        "start",
        "end",
    ]
    assert fig.duplicated == 0 and fig.completed == 2
    assert redis_chaos.cluster.sql("SELECT count(*) AS n FROM treadle_attempts")[0]["n"] == 2


@extended
def test_slow_and_reset_broker_links(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """13 + 14. Workers reach Redis and PostgreSQL through proxies adding 20 ms per chunk each
    way; their broker connections are reset (RST) three times mid-load, so acks and deliveries
    in flight are lost: redelivered doorbells must not run a finished task again."""
    chaos = prepare(make_cluster, tmp_path, request, "13/14 slow links + broker RSTs", "redis")
    c = chaos.cluster
    redis_target = urlsplit(REDIS_URL)
    with (
        ChaosProxy(redis_target.hostname or "127.0.0.1", redis_target.port or 6379) as bproxy,
        ChaosProxy("127.0.0.1", 5432) as dproxy,
    ):
        bproxy.set_latency(0.02)
        dproxy.set_latency(0.02)
        slow_broker = broker_url("redis", c.namespace).replace(
            f":{redis_target.port or 6379}/", f":{bproxy.port}/"
        )
        slow_db = c.db_override.replace(":5432/", f":{dproxy.port}/")
        assert slow_broker != c.broker and slow_db != c.db_override
        env = {"TREADLE_BROKER": slow_broker, "TREADLE_DB": slow_db}
        c.api(wait=False)
        c.coordinator(wait=False)
        workers = [chaos.worker("--queue", "default:4", env=env, wait=False) for _ in range(2)]
        c.wait_ready(*c.procs, timeout=180)
        chaos.post(chain("slow", chaos.ledger, seconds=0.05), RUNS)
        resets = 0
        for threshold in spread(RUNS * 4, 3):
            wait_for(lambda t=threshold: chaos.count_tasks("completed") >= t, 180, f"{threshold}")
            resets += bproxy.reset()
        chaos.fault(f"20ms/chunk latency, {resets} broker connections reset")
        fig = chaos.check(tasks_per_run=4)
    assert resets > 0
    assert fig.completed == RUNS * 4
    assert all(w.alive() for w in workers)


@extended
def test_doorbells_lost_from_the_broker(
    make_cluster: Callable[..., Cluster], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """12. Every queued doorbell is deleted from Redis before any worker reads it (as a broker
    that lost its data would): the store rings them again, every run completes."""
    import redis

    chaos = prepare(make_cluster, tmp_path, request, "12 broker messages lost", "redis")
    c = chaos.cluster
    c.api(wait=False)
    c.coordinator(wait=False)
    c.wait_ready(*c.procs, timeout=180)
    runs = RUNS // 2
    chaos.post(chain("forgotten", chaos.ledger, seconds=0.05), runs)
    wait_for(
        lambda: (
            c.sql(
                "SELECT count(*) AS n FROM treadle_tasks WHERE status = 'queued' "
                "AND published_at IS NOT NULL"
            )[0]["n"]
            == runs
        ),
        60,
        "every first task's doorbell to be rung",
    )
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{c.namespace}:*", count=1000))
        deleted = int(client.delete(*keys)) if keys else 0
    finally:
        client.close()
    chaos.fault(f"{deleted} Redis keys deleted")
    chaos.worker("--queue", "default:4")
    fig = chaos.check(tasks_per_run=4)
    assert deleted > 0
    assert fig.completed == runs * 4
