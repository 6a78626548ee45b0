"""The SDK's requests, checked against a local recording server (endpoint shapes of DESIGN §1).

The control, bulk, signal and schedule endpoints are built on other branches; these tests pin
the request shape the SDK sends for them.
"""

from __future__ import annotations

import json

import pytest

import treadle
from tests.unit.sdk.recorder import Recorder
from treadle import errors
from treadle.sdk import (
    AsyncClient,
    Client,
    ConflictError,
    InvalidDefinition,
    NotFoundError,
    Run,
    Unavailable,
    WaitTimeout,
)

RUN = {
    "id": "r1",
    "definition": "d",
    "version": 2,
    "status": "running",
    "inputs": {"day": "mon"},
    "etag": "7",
    "created_at": "2024-05-01T10:00:00+00:00",
    "tasks": [
        {
            "id": "t1",
            "name": "fetch",
            "kind": "http",
            "status": "completed",
            "etag": "3",
            "output": {"status": 200},
            "depends_on": [],
            "attempts": [{"id": "a1", "number": 1, "status": "completed"}],
        }
    ],
}


@pytest.mark.parametrize("op", ["pause", "unpause", "kill", "retry", "skip", "rerun"])
@pytest.mark.parametrize("target", ["runs", "layers", "tasks"])
def test_control_operations_post_with_if_match(recorder: Recorder, target: str, op: str) -> None:
    recorder.answer(200, {"ok": True})
    with Client(recorder.url) as client:
        getattr(getattr(client, target), op)("x 1", etag=5)
    seen = recorder.seen[-1]
    assert (seen.method, seen.path) == ("POST", f"/api/v1/{target}/x%201/{op}")
    assert seen.headers["if-match"] == '"5"'


def test_control_takes_the_etag_of_a_fetched_value(recorder: Recorder) -> None:
    run = Run.from_json(RUN)
    recorder.answer(200, {})
    recorder.answer(200, {})
    with Client(recorder.url) as client:
        client.runs.pause(run)
        client.tasks.retry(run.task("fetch"))
    assert recorder.seen[0].path == "/api/v1/runs/r1/pause"
    assert recorder.seen[0].headers["if-match"] == '"7"'
    assert recorder.seen[1].path == "/api/v1/tasks/t1/retry"
    assert recorder.seen[1].headers["if-match"] == '"3"'


def test_control_without_etag_sends_no_if_match(recorder: Recorder) -> None:
    recorder.answer(200, {})
    with Client(recorder.url) as client:
        client.runs.kill("r9")
    assert "if-match" not in recorder.seen[0].headers


def test_bulk_patch_body_and_count(recorder: Recorder) -> None:
    recorder.answer(200, {"count": 2})
    run = Run.from_json(RUN)
    with Client(recorder.url) as client:
        count = client.bulk(
            "pause",
            [run, ("layer", "l1", "4"), {"kind": "Job", "id": "r2", "etag": "9"}],
        )
    assert count == 2
    seen = recorder.seen[0]
    assert (seen.method, seen.path) == ("PATCH", "/api/v1/pause")
    assert seen.json() == [
        {"kind": "run", "id": "r1", "etag": "7"},
        {"kind": "layer", "id": "l1", "etag": "4"},
        {"kind": "run", "id": "r2", "etag": "9"},
    ]


def test_unknown_operation_is_refused_before_sending(recorder: Recorder) -> None:
    with Client(recorder.url) as client, pytest.raises(ValueError, match="unknown operation"):
        client.bulk("explode", [])
    assert recorder.seen == []


def test_signal_posts_payload(recorder: Recorder) -> None:
    recorder.answer(200, {"delivered": True})
    with Client(recorder.url) as client:
        answer = client.runs.signal("r1", "approved", {"by": "ann"})
    assert answer == {"delivered": True}
    seen = recorder.seen[0]
    assert (seen.method, seen.path) == ("POST", "/api/v1/runs/r1/signals/approved")
    assert seen.json() == {"by": "ann"}


def test_schedules(recorder: Recorder) -> None:
    recorder.answer(201, {"id": "s1", "definition": "d", "cron": "0 * * * *", "timezone": "UTC"})
    recorder.answer(200, {"items": [{"id": "s1", "definition": "d", "cron": "0 * * * *"}]})
    recorder.answer(204, b"")
    with Client(recorder.url) as client:
        created = client.schedules.create("d", "0 * * * *", timezone="UTC", overlap="skip")
        listed = client.schedules.list()
        client.schedules.delete("s1")
    assert created.id == "s1" and created.timezone == "UTC"
    assert [s.id for s in listed] == ["s1"]
    assert recorder.seen[0].json() == {
        "definition": "d",
        "cron": "0 * * * *",
        "inputs": {},
        "timezone": "UTC",
        "overlap": "skip",
    }
    assert (recorder.seen[2].method, recorder.seen[2].path) == ("DELETE", "/api/v1/schedules/s1")


def test_workers_are_typed(recorder: Recorder) -> None:
    recorder.answer(
        200,
        {
            "items": [
                {
                    "id": "w1",
                    "status": "alive",
                    "host": "h",
                    "queues": {"default": 4},
                    "in_flight": 1,
                    "last_seen": "2024-05-01T10:00:00+00:00",
                }
            ]
        },
    )
    with Client(recorder.url) as client:
        (worker,) = client.workers.list()
    assert worker.id == "w1" and worker.queues == {"default": 4} and worker.in_flight == 1
    assert worker.last_seen is not None and worker.last_seen.year == 2024


def test_definitions_create_sends_yaml_json_and_workflows(recorder: Recorder) -> None:
    for _ in range(3):
        recorder.answer(201, {"name": "d", "version": 1, "dialect": "native"})

    @treadle.workflow(name="d")
    def flow() -> None:
        treadle.noop(name="only")

    with Client(recorder.url) as client:
        ref = client.definitions.create("name: d\ntasks: []\n")
        client.definitions.create({"name": "d", "tasks": []})
        client.definitions.create(flow)
    assert (ref.name, ref.version) == ("d", 1)
    assert recorder.seen[0].headers["content-type"] == "application/yaml"
    assert recorder.seen[1].headers["content-type"] == "application/json"
    assert json.loads(recorder.seen[2].body) == flow.to_document()


def test_runs_create_body_and_typed_run(recorder: Recorder) -> None:
    recorder.answer(201, RUN)
    with Client(recorder.url, token="s3cret") as client:
        run = client.runs.create(definition="d", inputs={"day": "mon"}, version=2)
    seen = recorder.seen[0]
    assert seen.json() == {"definition": "d", "inputs": {"day": "mon"}, "version": 2}
    assert seen.headers["authorization"] == "Bearer s3cret"
    assert run.id == "r1" and run.status == "running" and run.etag == "7"
    task = run.task("fetch")
    assert task.output == {"status": 200} and task.attempts[0].id == "a1"
    with pytest.raises(KeyError, match="fetch"):
        run.task("nope")


def test_errors_carry_the_server_code_and_message(recorder: Recorder) -> None:
    body = {"error": {"code": "not_found", "message": "no run 'zz'", "details": None}}
    recorder.answer(404, body)
    recorder.answer(409, {"error": {"code": "conflict", "message": "stale etag", "details": {}}})
    bad = {"code": "invalid_definition", "message": "tasks.0.kind: bad", "details": []}
    recorder.answer(422, {"error": bad})
    with Client(recorder.url) as client:
        with pytest.raises(errors.NotFound) as missing:
            client.runs.get("zz")
        with pytest.raises(ConflictError) as stale:
            client.runs.pause("r1", etag=1)
        with pytest.raises(errors.DefinitionError) as invalid:
            client.definitions.create({"name": "x"})
    assert isinstance(missing.value, NotFoundError)
    assert missing.value.message == "no run 'zz'" and missing.value.status == 404
    assert isinstance(stale.value, errors.Conflict) and stale.value.message == "stale etag"
    assert isinstance(invalid.value, InvalidDefinition)
    assert invalid.value.code == "invalid_definition"
    assert "tasks.0.kind: bad" in str(invalid.value)


def test_non_json_error_keeps_the_text(recorder: Recorder) -> None:
    recorder.answer(502, "bad gateway upstream", "text/plain")
    with Client(recorder.url) as client, pytest.raises(treadle.sdk.ServerError) as err:
        client.runs.get("r1")
    assert err.value.status == 502 and "bad gateway upstream" in err.value.message


def test_unreachable_server_is_unavailable() -> None:
    with Client("http://127.0.0.1:9") as client, pytest.raises(Unavailable) as err:
        client.health()
    assert isinstance(err.value, errors.ServiceUnavailable)
    assert "cannot reach http://127.0.0.1:9" in err.value.message


def test_wait_polls_until_terminal(recorder: Recorder) -> None:
    recorder.answer(200, RUN)
    recorder.answer(200, RUN)
    recorder.answer(200, {**RUN, "status": "completed"})
    with Client(recorder.url) as client:
        run = client.runs.wait("r1", timeout=10)
    assert run.status == "completed" and run.done
    assert len(recorder.seen) == 3


def test_wait_gives_up_after_timeout(recorder: Recorder) -> None:
    for _ in range(100):
        recorder.answer(200, RUN)
    with Client(recorder.url) as client, pytest.raises(WaitTimeout) as err:
        client.runs.wait("r1", timeout=0.3)
    assert isinstance(err.value, TimeoutError)
    assert "still running" in err.value.message


def test_logs_text_and_follow(recorder: Recorder) -> None:
    recorder.answer(200, "line 1\nline 2\n", "text/plain")
    recorder.answer(200, "a\nb\n", "text/plain")
    with Client(recorder.url) as client:
        text = client.runs.logs("r1", "my task")
        chunks = list(client.runs.logs("r1", "my task", follow=True))
    assert text == "line 1\nline 2\n"
    assert "".join(chunks) == "a\nb\n"
    assert recorder.seen[0].path == "/api/v1/runs/r1/tasks/my%20task/logs"
    assert recorder.seen[1].path == "/api/v1/runs/r1/tasks/my%20task/logs?follow=true"


async def test_async_client_same_shapes(recorder: Recorder) -> None:
    recorder.answer(201, RUN)
    recorder.answer(200, {"count": 1})
    recorder.answer(404, {"error": {"code": "not_found", "message": "gone", "details": None}})
    recorder.answer(200, {**RUN, "status": "failed"})
    recorder.answer(200, "x\n", "text/plain")
    async with AsyncClient(recorder.url) as client:
        run = await client.runs.create("d", {"day": "tue"})
        assert await client.bulk("kill", [run]) == 1
        with pytest.raises(errors.NotFound, match="gone"):
            await client.layers.skip("l1", etag="2")
        done = await client.runs.wait(run, timeout=5)
        chunks = [c async for c in client.runs.follow_logs(run, "fetch")]
    assert done.status == "failed"
    assert chunks == ["x\n"]
    assert recorder.seen[2].path == "/api/v1/layers/l1/skip"
    assert recorder.seen[2].headers["if-match"] == '"2"'
