"""The Flower dialect over real HTTP against a running `treadle standalone`."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import json_of, poll
from tests.conftest import Server, start_server
from treadle.compat.flower.cli import flower_main

EXAMPLE_CSV = Path(__file__).parent / "examples" / "ms_task_definition.csv"
SEED_URL = "https://postman-echo.com/post"
HEADER = EXAMPLE_CSV.read_text().splitlines()[0]


@dataclass
class Receiver:
    """A local HTTP server standing in for postman-echo; `/flaky` fails until `healed`."""

    url: str
    bodies: list[tuple[str, str, str]] = field(default_factory=list)
    healed: threading.Event = field(default_factory=threading.Event)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            state.bodies.append((self.path, body, self.headers.get("Content-Type", "")))
            ok = self.path != "/flaky" or state.healed.is_set()
            self.send_response(200 if ok else 500)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("flower"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def import_csv(tmp_path: Path, server: Server, text: str, name: str = "rows.csv") -> int:
    path = tmp_path / name
    path.write_text(text)
    return flower_main(["import", "--from", str(path), "--server", server.url])


def flow(client: httpx.Client, flow_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/flower/flows/{flow_id}")
    assert response.status_code == 200, response.text
    return list(response.json())


def settled(rows: list[dict[str, Any]]) -> bool:
    return all(r["exec_status"] in (2, 3, 9) for r in rows) or any(
        r["exec_status"] == 2 for r in rows
    )


def test_seed_example_rows_run_end_to_end(
    tmp_path: Path, server: Server, client: httpx.Client, receiver: Receiver
) -> None:
    text = EXAMPLE_CSV.read_text().replace(SEED_URL, f"{receiver.url}/post")
    assert import_csv(tmp_path, server, text) == 0
    response = client.post("/register/example")
    assert response.status_code == 200
    body = json_of(response)
    assert body["status"] == "succeeded" and body["taskId"] == "example"
    flow_id = body["taskFlowId"]
    rows = poll(lambda: flow(client, flow_id), settled, timeout=30)
    assert [r["exec_status"] for r in rows] == [3, 3, 3]
    assert [(r["task_exec_seq"], r["depends_task_exec_seq"]) for r in rows] == [
        (1, -1),
        (2, 1),
        (3, 2),
    ]
    assert [r["task_seq"] for r in rows] == [1, 2, 3]
    assert {r["task_flow_id"] for r in rows} == {flow_id}
    assert {r["task_priority"] for r in rows} == {10}
    assert rows[1]["parameters"] == {"SLEEP_TIME_SECOND": "3"}
    assert rows[2]["parameters"] == {"URL": f"{receiver.url}/post", "BODY": '{"id": "test"}'}
    # The tasks ran one after the other, the second for its 3 seconds.
    assert rows[0]["finished_ts"] <= rows[1]["started_ts"]
    assert rows[1]["finished_ts"] <= rows[2]["started_ts"]
    assert ("/post", '{"id": "test"}', "application/json") in receiver.bodies
    run = client.get(f"/api/v1/runs/{flow_id}").json()
    assert run["dialect"] == "flower" and run["status"] == "completed"
    assert run["tasks"][1]["output"] == {"program": "EchoParamTimeSleep", "slept": 3}


def test_failed_program_suspends_and_rerun_recovers(
    tmp_path: Path, server: Server, client: httpx.Client, receiver: Receiver
) -> None:
    text = "\n".join(
        [
            HEADER,
            "recover,1,EchoParamTimeSleep,0,SLEEP_TIME_SECOND,0,,,,,,,,",
            f'recover,2,HTTPPostRequest,0,URL,{receiver.url}/flaky,BODY,"{{""n"": 1}}",,,,,,',
            "recover,3,EchoParamTimeSleep,0,SLEEP_TIME_SECOND,0,,,,,,,,",
        ]
    )
    assert import_csv(tmp_path, server, text) == 0
    flow_id = client.post("/register/recover").json()["taskFlowId"]
    rows = poll(lambda: flow(client, flow_id), settled)
    # Flower marked failed programs finished (3); treadle suspends them (2).
    assert [r["exec_status"] for r in rows] == [3, 2, 0]
    assert rows[1]["suspended_ts"] and rows[1]["finished_ts"] is None
    first_started = rows[0]["started_ts"]
    receiver.healed.set()
    response = client.post(f"/flower/flows/{flow_id}/rerun", params={"from": 2})
    assert response.status_code == 200, response.text
    rows = poll(lambda: flow(client, flow_id), lambda rs: all(r["exec_status"] == 3 for r in rs))
    assert rows[0]["started_ts"] == first_started  # task 1 was not run again
    assert rows[1]["suspended_ts"] is None


def test_bad_input(tmp_path: Path, server: Server, client: httpx.Client) -> None:
    unknown = client.post("/register/no-such-workflow")
    assert unknown.status_code == 404
    assert json_of(unknown)["status"] == "failed"
    assert "no-such-workflow" in unknown.json()["error"]
    missing = client.get("/flower/flows/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert json_of(missing)["error"]["code"] == "not_found"
    rerun_missing = client.post("/flower/flows/nope/rerun?from=1")
    assert rerun_missing.status_code == 404
    assert client.post("/flower/flows/nope/rerun?from=0").status_code == 422
    assert client.get("/register/example").status_code == 405
    # Malformed rows through the native definitions API, with the dialect named.
    bad = client.post(
        "/api/v1/definitions?dialect=flower",
        json=[{"task_id": "broken", "task_seq": "one", "program": "P"}],
    )
    assert bad.status_code == 422
    assert "broken.task_seq: not a number" in bad.json()["error"]["message"]
    malformed = client.post(
        "/api/v1/definitions?dialect=flower",
        content=b'[{"task_id": ',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert "malformed JSON" in malformed.json()["error"]["message"]
    # A CSV without the needed columns, and a file that is not there.
    assert import_csv(tmp_path, server, "a,b\n1,2\n", "bad.csv") == 1
    assert flower_main(["import", "--from", str(tmp_path / "none.csv"), "--server", server.url])
    assert flower_main(["export"]) == 2


def test_rerun_rules(tmp_path: Path, server: Server, client: httpx.Client) -> None:
    text = "\n".join([HEADER, "slowflow,1,EchoParamTimeSleep,0,SLEEP_TIME_SECOND,2,,,,,,,,"])
    assert import_csv(tmp_path, server, text) == 0
    flow_id = client.post("/register/slowflow").json()["taskFlowId"]
    busy = client.post(f"/flower/flows/{flow_id}/rerun?from=1")
    assert busy.status_code == 409
    assert "still" in busy.json()["error"]["message"]
    poll(lambda: flow(client, flow_id), lambda rs: rs[0]["exec_status"] == 3)
    poll(lambda: client.get(f"/api/v1/runs/{flow_id}").json(), lambda r: r["status"] == "completed")
    beyond = client.post(f"/flower/flows/{flow_id}/rerun?from=5")
    assert beyond.status_code == 404


def test_rows_posted_as_a_definition_are_detected(client: httpx.Client) -> None:
    rows = [
        {
            "task_id": "detected",
            "task_seq": 1,
            "program": "EchoParamTimeSleep",
            "task_priority": 0,
            "param1_key": "SLEEP_TIME_SECOND",
            "param1_value": "0",
        }
    ]
    response = client.post("/api/v1/definitions", json=rows)
    assert response.status_code == 201, response.text
    assert response.json() == {"name": "detected", "version": 1, "dialect": "flower"}


def test_flow_control_limits_running_flows(tmp_path: Path, receiver: Receiver) -> None:
    srv = start_server(tmp_path, env={"TREADLE_FLOWER_MAX_FLOWS": "1"})
    try:
        text = "\n".join(
            [HEADER, "one-at-a-time,1,EchoParamTimeSleep,0,SLEEP_TIME_SECOND,1,,,,,,,,"]
        )
        assert import_csv(tmp_path, srv, text) == 0
        with srv.client() as client:
            ids = [client.post("/register/one-at-a-time").json()["taskFlowId"] for _ in range(3)]
            statuses = [client.get(f"/api/v1/runs/{i}").json()["status"] for i in ids]
            assert statuses[1:] == ["paused", "paused"]  # waiting for a slot
            finals = [srv.wait_run(i, timeout=30) for i in ids]
            assert [f["status"] for f in finals] == ["completed"] * 3
            spans = [(f["started_at"], f["finished_at"]) for f in finals]
            # Admitted in registration order, and never two at once.
            assert spans == sorted(spans)
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert end <= start
    finally:
        srv.stop()


GATE_PROGRAM = """
import asyncio, os
import treadle

@treadle.handler("WaitForFile")
async def wait_for_file(PATH: str) -> dict:
    while not os.path.exists(PATH):
        await asyncio.sleep(0.05)
    return {"opened": PATH}
"""


@pytest.mark.parametrize(
    ("held_by", "extra", "env"),
    [
        ("flow control", [], {"TREADLE_FLOWER_MAX_FLOWS": "1"}),
        ("queue concurrency 1", ["--queue", "default:1"], {"TREADLE_FLOWER_MAX_FLOWS": "0"}),
    ],
)
def test_lower_task_priority_runs_first_among_held_back_flows(
    tmp_path: Path, receiver: Receiver, held_by: str, extra: list[str], env: dict[str, str]
) -> None:
    (tmp_path / "flower_gate.py").write_text(GATE_PROGRAM)
    gate = tmp_path / "gate"
    srv = start_server(tmp_path, "--import", "flower_gate", *extra, env=env)
    mark = f"/prio-{tmp_path.name}"
    # Flower's convention: task_priority -20..19, a lower number is more urgent.
    priorities = {"late": 10, "soon": -5, "normal": 0, "urgent": -20}
    rows = [HEADER, f"gate,1,WaitForFile,0,PATH,{gate},,,,,,,,"]
    rows += [
        f"p-{label},1,HTTPPostRequest,{prio},URL,{receiver.url}{mark}/{label},BODY,{label},,,,,,"
        for label, prio in priorities.items()
    ]
    try:
        assert import_csv(tmp_path, srv, "\n".join(rows)) == 0
        with srv.client() as client:
            blocker = client.post("/register/gate").json()["taskFlowId"]
            poll(lambda: flow(client, blocker), lambda r: r[0]["exec_status"] == 1)
            # Registered in an order unlike the priorities: age alone would run "late" first.
            ids = [client.post(f"/register/p-{label}").json()["taskFlowId"] for label in priorities]

            def held(flow_id: str) -> bool:
                run = client.get(f"/api/v1/runs/{flow_id}").json()
                if held_by == "flow control":
                    return bool(run["status"] == "paused")
                return bool(run["tasks"][0]["status"] == "queued")

            poll(lambda: [held(i) for i in ids], all)
            gate.write_text("")
            finals = [srv.wait_run(i, timeout=60) for i in [blocker, *ids]]
        assert [f["status"] for f in finals] == ["completed"] * 5
        order = [path.rsplit("/", 1)[1] for path, _, _ in receiver.bodies if path.startswith(mark)]
        print(f"{held_by}: ran {order}")
        assert order == ["urgent", "soon", "normal", "late"]
    finally:
        srv.stop()
