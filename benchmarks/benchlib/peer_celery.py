"""Celery app for the benchmark, configured from BENCH_* variables (workers) or arguments.

Settings (stated in the README): JSON serializer, early ack (Celery's default), prefetch
multiplier 4 (default), results ignored except for chord headers, which need the Redis result
backend; events, gossip, mingle and remote control off (monitoring, not execution). Every Redis
key carries the run's prefix (kombu's ``global_keyprefix``).
"""

from __future__ import annotations

import os

from celery import Celery

from benchlib import probe


def make_app(prefix: str, broker: str, backend: str) -> Celery:
    app = Celery("benchpeer", broker=broker, backend=backend)
    keyprefix = {"global_keyprefix": f"{prefix}:"}
    app.conf.update(
        task_default_queue=prefix,
        task_default_exchange=prefix,
        task_default_routing_key=prefix,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=False,
        worker_prefetch_multiplier=4,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=keyprefix if broker.startswith("redis") else {},
        result_backend_transport_options=keyprefix,
        result_expires=600,
    )

    @app.task(name="bench.noop")
    def noop(tag: str, submitted: float = 0.0) -> None:
        probe.send(tag, submitted)

    @app.task(name="bench.noop_r", ignore_result=False)
    def noop_r(tag: str, submitted: float = 0.0) -> None:
        """A chord header member: its result must be stored for the chord to count it."""
        probe.send(tag, submitted)

    return app


app = make_app(
    os.environ.get("BENCH_PREFIX", "bench"),
    os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11"),
    os.environ.get("BENCH_BACKEND_URL", "redis://127.0.0.1:6379/11"),
)
