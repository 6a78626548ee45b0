"""Handlers on the embedded engine through ``treadle.testing.run_local``: fakes, typed inputs,
heartbeats and cooperative cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import treadle
from treadle.testing import arun_local, run_local
from treadle.worker.handlers import current_attempt, get_handler, unregister


class Order(BaseModel):
    sku: str
    quantity: int


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unregister(name)


def test_fake_replaces_a_handler_for_the_run_only(cleanup: list[str]) -> None:
    cleanup.append("send_report")

    @treadle.handler("send_report")
    def real(channel: str) -> str:
        raise AssertionError("the real handler must not run in this test")

    definition = {
        "name": "notify",
        "tasks": [
            {
                "name": "notify",
                "kind": "python",
                "handler": "send_report",
                "args": {"channel": "ops"},
            }
        ],
    }
    seen: list[str] = []

    def fake(channel: str) -> str:
        seen.append(channel)
        return f"sent to {channel}"

    run = run_local(definition, handlers={"send_report": fake})
    assert run.status == "completed"
    assert run.task("notify").output == "sent to ops"
    assert seen == ["ops"]
    assert get_handler("send_report").func is real


def test_code_first_workflow_runs_with_data_flow(cleanup: list[str]) -> None:
    cleanup.extend(["total_of", "scale"])

    @treadle.task(name="total_of")
    def total(values: list[int]) -> int:
        return sum(values)

    @treadle.task(name="scale")
    def scale(value: int, factor: int) -> int:
        return value * factor

    @treadle.workflow
    def pipeline(values: list[int], factor: int = 3) -> None:
        t = total(values=values)
        scale(value=t, factor=factor)

    run = run_local(pipeline, {"values": [1, 2, 4]})
    assert run.status == "completed", run.error
    assert run.task("total_of").output == 7
    assert run.task("scale").output == 21


def test_typed_inputs_are_converted(cleanup: list[str]) -> None:
    cleanup.append("place_order")
    received: list[object] = []

    @treadle.handler("place_order")
    def place(order: Order, express: bool = False) -> dict[str, object]:
        received.append(order)
        return {"sku": order.sku, "total": order.quantity * 2, "express": express}

    doc = {
        "name": "orders",
        "tasks": [
            {
                "name": "place",
                "kind": "python",
                "handler": "place_order",
                "args": {"order": {"sku": "A1", "quantity": "3"}, "express": "true"},
            }
        ],
    }
    run = run_local(doc)
    assert run.status == "completed", run.error
    assert run.task("place").output == {"sku": "A1", "total": 6, "express": True}
    assert isinstance(received[0], Order)


def test_bad_typed_inputs_fail_the_task_naming_each_field(cleanup: list[str]) -> None:
    cleanup.append("place_order_strict")
    calls: list[object] = []

    @treadle.handler("place_order_strict")
    def place(order: Order, count: int) -> None:
        calls.append(order)

    doc = {
        "name": "orders-bad",
        "tasks": [
            {
                "name": "place",
                "kind": "python",
                "handler": "place_order_strict",
                "retry": {"max_attempts": 3, "initial": 0},
                "args": {"order": {"sku": "A1"}, "count": "many", "colour": "red"},
            }
        ],
    }
    run = run_local(doc)
    task = run.task("place")
    assert run.status == "failed" and task.status == "failed"
    assert task.error is not None
    assert "handler 'place_order_strict' got invalid arguments" in task.error
    assert "order.quantity: Field required" in task.error
    assert "count: Input should be a valid integer" in task.error and "'many'" in task.error
    assert "colour: unexpected argument" in task.error
    assert len(task.attempts) == 1  # bad input is not retried
    assert calls == []


def test_heartbeat_keeps_a_long_handler_alive(cleanup: list[str]) -> None:
    cleanup.append("beating")

    @treadle.handler("beating")
    def beating() -> str:
        for _ in range(14):
            time.sleep(0.2)
            current_attempt().heartbeat()
        return "done"

    # Leases of 1s, swept every second, and an automatic heartbeat far too rare to renew them:
    # only the handler's own heartbeats keep this 2.8s attempt alive (delivery_limit 1: a lost
    # lease would fail the task). The control without heartbeats is left out: the engine's
    # Node.stop() hangs after a running attempt loses its lease (reported to the lead).
    settings = {"lease_seconds": 1.0, "heartbeat_seconds": 60.0, "delivery_limit": 1}
    doc = {"name": "beating", "tasks": [{"name": "t", "kind": "python", "handler": "beating"}]}
    kept = run_local(doc, settings=settings, timeout=30)
    assert kept.status == "completed", kept.task("t").error
    assert len(kept.task("t").attempts) == 1


def test_sync_handler_sees_cancellation_on_timeout(cleanup: list[str]) -> None:
    cleanup.append("polling")
    stopped = threading.Event()

    @treadle.handler("polling")
    def polling() -> str:
        attempt = current_attempt()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if attempt.cancelled.wait(0.05):
                stopped.set()
                return "stopped early"
        return "ran to the end"

    doc = {
        "name": "slow",
        "tasks": [{"name": "t", "kind": "python", "handler": "polling", "timeout": 0.4}],
    }
    run = run_local(doc)
    assert run.task("t").status == "failed"
    assert "timed out" in (run.task("t").error or "")
    assert stopped.wait(5), "the sync handler never saw the cancellation"


async def test_async_handler_gets_cancelled_error(cleanup: list[str]) -> None:
    cleanup.append("waiting")
    cancelled = asyncio.Event()

    @treadle.handler("waiting")
    async def waiting() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "slept"

    doc = {
        "name": "slow-async",
        "tasks": [{"name": "t", "kind": "python", "handler": "waiting", "timeout": 0.3}],
    }
    run = await arun_local(doc)
    assert run.task("t").status == "failed"
    assert cancelled.is_set()


async def test_run_local_refuses_inside_an_event_loop() -> None:
    with pytest.raises(RuntimeError, match="arun_local"):
        run_local({"name": "x", "tasks": []})
