"""Webhooks (HMAC-checked) and on_success / on_failure callbacks to a real HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.triggers.conftest import api_client, running_node, wait_for, wait_run
from treadle.engine.hooks import SIGNATURE_HEADER, sign, verify

DEPLOY = {
    "name": "deploy",
    "inputs": {"ref": {"type": "string", "required": True}},
    "tasks": [{"name": "say", "kind": "log", "message": "deploying {{ inputs.ref }}"}],
}


async def test_hook_starts_a_run_when_the_signature_is_right(store_url: str) -> None:
    async with api_client(store_url) as (client, service):
        await service.create_definition(DEPLOY)
        created = await client.post("/api/v1/hooks", json={"name": "gh", "definition": "deploy"})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert len(secret) >= 32
        listed = (await client.get("/api/v1/hooks")).json()["items"]
        assert listed[0]["name"] == "gh" and "secret" not in listed[0]
        assert "secret" not in (await client.get("/api/v1/hooks/gh")).json()

        body = json.dumps({"ref": "v1.2"}).encode()
        ok = await client.post(
            "/api/v1/hooks/gh", content=body, headers={SIGNATURE_HEADER: sign(secret, body)}
        )
        assert ok.status_code == 201, ok.text
        run = await wait_run(service, ok.json()["id"])
        assert run.status == "completed" and run.inputs == {"ref": "v1.2"}
        assert run.labels["treadle.hook"] == "gh"
        say = await service.task_by_name(run.id, "say")
        assert say.output == {"message": "deploying v1.2"}


async def test_hook_rejects_bad_signatures_and_unknown_names(store_url: str) -> None:
    async with api_client(store_url, roles=("api",)) as (client, service):
        await service.create_definition(DEPLOY)
        secret = "s3cret-s3cret-s3cret"
        created = await client.post(
            "/api/v1/hooks", json={"name": "gh", "definition": "deploy", "secret": secret}
        )
        assert created.json()["secret"] == secret
        body = json.dumps({"ref": "main"}).encode()
        for headers in (
            {},
            {SIGNATURE_HEADER: sign("another-secret-value", body)},
            {SIGNATURE_HEADER: sign(secret, body + b" ")},
            {SIGNATURE_HEADER: "sha256=zz"},
        ):
            refused = await client.post("/api/v1/hooks/gh", content=body, headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
        unknown = await client.post(
            "/api/v1/hooks/nope", content=body, headers={SIGNATURE_HEADER: sign(secret, body)}
        )
        assert unknown.status_code == 404
        runs, _ = await service.store.list_runs()
        assert runs == []  # nothing refused started a run
        # A signed body that is not a JSON object is a clear 422, not a crash.
        bad = b"[1, 2]"
        wrong = await client.post(
            "/api/v1/hooks/gh", content=bad, headers={SIGNATURE_HEADER: sign(secret, bad)}
        )
        assert wrong.status_code == 422 and "JSON object" in wrong.json()["error"]["message"]
        # Inputs are checked against the definition.
        empty = b"{}"
        missing = await client.post(
            "/api/v1/hooks/gh", content=empty, headers={SIGNATURE_HEADER: sign(secret, empty)}
        )
        assert missing.status_code == 422 and "ref" in missing.json()["error"]["message"]
        assert (await client.post("/api/v1/hooks", json=created.json())).status_code == 422
        dup = await client.post("/api/v1/hooks", json={"name": "gh", "definition": "deploy"})
        assert dup.status_code == 409
        assert (await client.delete("/api/v1/hooks/gh")).status_code == 204
        gone = await client.post(
            "/api/v1/hooks/gh", content=body, headers={SIGNATURE_HEADER: sign(secret, body)}
        )
        assert gone.status_code == 404


async def test_definition_hook_reads_its_secret_from_the_environment(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = {
        **DEPLOY,
        "hooks": [{"name": "ci", "secret_env": "TREADLE_TEST_HOOK_SECRET", "inputs_key": "ref"}],
        "inputs": {"ref": {"type": "any", "required": True}},
    }
    async with api_client(store_url, roles=("api",)) as (client, service):
        await service.create_definition(definition)
        body = b'"abc123"'
        headers = {SIGNATURE_HEADER: sign("env-secret-value", body)}
        unset = await client.post("/api/v1/hooks/ci", content=body, headers=headers)
        assert unset.status_code == 503  # the server lacks the secret: refuse, say why
        monkeypatch.setenv("TREADLE_TEST_HOOK_SECRET", "env-secret-value")
        ok = await client.post("/api/v1/hooks/ci", content=body, headers=headers)
        assert ok.status_code == 201, ok.text
        assert ok.json()["inputs"] == {"ref": "abc123"}
        # A new version without hooks removes the hook.
        await service.create_definition({**DEPLOY, "version": 2})
        assert (await client.get("/api/v1/hooks/ci")).status_code == 404


def test_signature_scheme() -> None:
    body = b'{"a": 1}'
    signature = sign("k" * 20, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify("k" * 20, body, signature)
    assert verify("k" * 20, body, signature.upper().replace("SHA256", "sha256"))
    assert not verify("k" * 20, body, None)
    assert not verify("k" * 21, body, signature)


# -- callbacks -----------------------------------------------------------------------------
@dataclass
class Receiver:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server recording POSTs; paths in ``fail_first`` answer 500 at first."""
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            state.requests.append(
                {"path": self.path, "body": json.loads(raw), "headers": dict(self.headers)}
            )
            remaining = state.fail_first.get(self.path, 0)
            if remaining:
                state.fail_first[self.path] = remaining - 1
            self.send_response(500 if remaining else 204)
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_callbacks_post_the_run_summary(
    store_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREADLE_TEST_CB_SECRET", "callback-secret-1")
    receiver.fail_first["/flaky"] = 2
    ok_def = {
        "name": "cb-ok",
        "on_success": [
            f"{receiver.url}/done",
            {
                "url": f"{receiver.url}/flaky",
                "headers": {"X-Team": "ops"},
                "secret_env": "TREADLE_TEST_CB_SECRET",
            },
        ],
        "on_failure": f"{receiver.url}/failed",
        "tasks": [{"name": "n", "kind": "shell", "command": ["echo", '{"n": 3}']}],
    }
    bad_def = {
        "name": "cb-bad",
        "on_success": f"{receiver.url}/done",
        "on_failure": f"{receiver.url}/failed",
        "tasks": [{"name": "boom", "kind": "shell", "command": ["false"]}],
    }
    async with running_node(store_url) as service:
        assert service.coordinator is not None
        service.coordinator.extensions.callbacks.delays = (0.1, 0.1, 0.1)
        good = await service.start_run(ok_def)
        bad = await service.start_run(bad_def)
        assert (await wait_run(service, good.id)).status == "completed"
        assert (await wait_run(service, bad.id)).status == "failed"

        async def delivered() -> bool:
            rows = await service.store.list_callbacks(good.id)
            rows += await service.store.list_callbacks(bad.id)
            return len(rows) == 3 and all(r.status == "delivered" for r in rows)

        await wait_for(delivered, timeout=20, what="callbacks to be delivered")
        flaky_rows = [
            r for r in await service.store.list_callbacks(good.id) if r.url.endswith("/flaky")
        ]
        assert flaky_rows[0].attempts == 3
    by_path: dict[str, list[dict[str, Any]]] = {}
    for request in receiver.requests:
        by_path.setdefault(request["path"], []).append(request)
    assert len(by_path["/done"]) == 1 and len(by_path["/failed"]) == 1
    assert len(by_path["/flaky"]) == 3  # two 500s, then delivered
    done = by_path["/done"][0]["body"]
    assert done["id"] == good.id and done["status"] == "completed"
    assert done["event"] == "run.completed" and done["output"]["n"]["json"] == {"n": 3}
    failed = by_path["/failed"][0]["body"]
    assert failed["id"] == bad.id and failed["status"] == "failed" and "boom" in failed["error"]
    flaky = by_path["/flaky"][-1]
    raw = json.dumps(flaky["body"]).encode()
    assert flaky["headers"]["X-Team"] == "ops"
    assert verify("callback-secret-1", raw, flaky["headers"][SIGNATURE_HEADER])


async def test_callbacks_give_up_after_the_last_attempt(store_url: str, receiver: Receiver) -> None:
    receiver.fail_first["/down"] = 100
    definition = {
        "name": "cb-down",
        "on_success": f"{receiver.url}/down",
        "tasks": [{"name": "n", "kind": "noop"}],
    }
    async with running_node(store_url) as service:
        assert service.coordinator is not None
        service.coordinator.extensions.callbacks.delays = (0.05, 0.05)
        run = await service.start_run(definition)
        await wait_run(service, run.id)

        async def given_up() -> bool:
            rows = await service.store.list_callbacks(run.id)
            return bool(rows) and rows[0].status == "failed"

        await wait_for(given_up, what="the callback to give up")
        row = (await service.store.list_callbacks(run.id))[0]
    assert row.attempts == 3 and row.last_error == "HTTP 500"
    assert len([r for r in receiver.requests if r["path"] == "/down"]) == 3


async def test_cancelled_run_calls_on_failure(store_url: str, receiver: Receiver) -> None:
    definition = {
        "name": "cb-cancel",
        "on_failure": f"{receiver.url}/failed",
        "tasks": [{"name": "gate", "kind": "wait", "signal": "never"}],
    }
    async with running_node(store_url) as service:
        run = await service.start_run(definition)
        await wait_for(lambda: service.store.list_waits(run.id), what="the wait")
        await service.cancel_run(run.id)

        async def called() -> bool:
            return len(receiver.requests) == 1

        await wait_for(called, what="the callback")
    assert receiver.requests[0]["body"]["status"] == "cancelled"
