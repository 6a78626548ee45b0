"""API tokens over real HTTP: a `treadle standalone --auth token` process and the CLI.

Each scope is tried on a representative route of each class (native API and every dialect):
it must get past authentication exactly where its scope reaches, and get 403 elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import Server, start_server, treadle_cmd
from treadle import Client
from treadle.cli.main import app as cli
from treadle.sdk import Forbidden, Unauthorized
from treadle.store.factory import connect_store
from treadle.tokens.scopes import SCOPES, Scope
from treadle.tokens.service import issue_token

INLINE = {"name": "auth-smoke", "tasks": [{"name": "hello", "kind": "log", "message": "hi"}]}


@dataclass
class Secured:
    server: Server
    tokens: dict[Scope, str]
    tmp: Path

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30.0)


def cli_token(db: Path, name: str, scope: str) -> str:
    result = CliRunner().invoke(
        cli, ["token", "create", "--name", name, "--scope", scope, "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


async def _issue_all(db: Path) -> dict[Scope, str]:
    store = await connect_store(f"sqlite:///{db}", migrate=True)
    try:
        now = await store.now()
        return {s: (await issue_token(store, f"{s.value}-token", s, now))[0] for s in SCOPES}
    finally:
        await store.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    tmp = tmp_path_factory.mktemp("auth")
    db = tmp / "treadle.db"
    tokens = asyncio.run(_issue_all(db))  # the CLI's own test is below
    server = start_server(tmp, "--auth", "token", db=db)
    try:
        yield Secured(server, tokens, tmp)
    finally:
        server.stop()


# (what, method, path, JSON body, the scope it needs)
ROUTES: list[tuple[str, str, str, Any, Scope]] = [
    ("native: list runs", "GET", "/api/v1/runs", None, Scope.READ),
    ("native: workers", "GET", "/api/v1/workers", None, Scope.READ),
    ("metrics", "GET", "/metrics", None, Scope.READ),
    ("gin: a runner", "GET", "/wf/0b5b5c4e-0000-0000-0000-000000000000", None, Scope.READ),
    ("tork: list jobs", "GET", "/jobs", None, Scope.READ),
    ("mender: workflows", "GET", "/api/v1/metadata/workflows", None, Scope.READ),
    ("flower: a flow", "GET", "/flower/flows/1", None, Scope.READ),
    ("igor: list jobs", "GET", "/api/v1/jobs", None, Scope.READ),
    ("native: start a run", "POST", "/api/v1/runs", {"definition": INLINE}, Scope.SUBMIT),
    ("native: store a definition", "POST", "/api/v1/definitions", INLINE, Scope.SUBMIT),
    ("gin: start", "POST", "/wf/", {"workflow": "no-such-flow"}, Scope.SUBMIT),
    ("tork: submit a job", "POST", "/jobs", {}, Scope.SUBMIT),
    ("mender: start", "POST", "/api/workflow/no-such-flow", {}, Scope.SUBMIT),
    ("flower: register", "POST", "/register/999999", {}, Scope.SUBMIT),
    ("igor: create a job", "POST", "/api/v1/jobs", {}, Scope.SUBMIT),
    ("native: pause a run", "POST", "/api/v1/runs/no-such-run/pause", None, Scope.OPERATE),
    ("native/igor: bulk kill", "PATCH", "/api/v1/kill", [], Scope.OPERATE),
    ("native: create a schedule", "POST", "/api/v1/schedules", {}, Scope.OPERATE),
    ("tork: cancel a job", "PUT", "/jobs/no-such-job/cancel", None, Scope.OPERATE),
    ("flower: rerun a flow", "POST", "/flower/flows/999999/rerun", None, Scope.OPERATE),
    ("native: list tokens", "GET", "/api/v1/tokens", None, Scope.ADMIN),
    (
        "native: create a token",
        "POST",
        "/api/v1/tokens",
        {"name": "x", "scope": "bad"},
        Scope.ADMIN,
    ),
]


@pytest.mark.parametrize(
    ("what", "method", "path", "body", "needed"), ROUTES, ids=[r[0] for r in ROUTES]
)
def test_each_scope_reaches_exactly_its_routes(
    secured: Secured, what: str, method: str, path: str, body: Any, needed: Scope
) -> None:
    for held in SCOPES:
        with secured.http(secured.tokens[held]) as client:
            response = client.request(method, path, json=body)
        if held.allows(needed):
            assert response.status_code not in (401, 403), (held, response.text)
        else:
            assert response.status_code == 403, (held, response.text)
            message = response.json()["error"]["message"]
            assert f"needs scope {needed.value!r}" in message
            assert f"has scope {held.value!r}" in message
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_missing_or_bad_tokens_get_401(secured: Secured) -> None:
    cases = [
        ({}, "authentication required"),
        ({"Authorization": "Bearer garbage"}, "not valid"),
        ({"Authorization": "Bearer trd_" + "x" * 43}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer"}, "must be 'Bearer <token>'"),
    ]
    paths = ("/api/v1/runs", "/jobs", "/api/v1/jobs", "/wf/x", "/api/v1/metadata/workflows")
    with secured.http() as client:
        answers = [(p, h, m, client.get(p, headers=h)) for p in paths for h, m in cases]
    for path, headers, problem, response in answers:
        assert response.status_code == 401, (path, headers, response.text)
        assert problem in response.json()["error"]["message"]
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_health_checks_stay_open(secured: Secured) -> None:
    for path in ("/healthz", "/readyz", "/health", "/status"):
        assert httpx.get(secured.server.url + path, timeout=30).status_code == 200, path
    started = secured.server.log.read_text()
    assert "authentication is on: every API request needs a bearer token" in started
    assert "authentication is OFF" not in started


def test_a_revoked_token_is_refused_at_once(secured: Secured) -> None:
    db = secured.server.db
    doomed = cli_token(db, "doomed", "read")
    api_made = cli_token(db, "doomed-too", "read")
    with secured.http(doomed) as client:
        assert client.get("/api/v1/runs").status_code == 200
    revoked = CliRunner().invoke(cli, ["token", "revoke", "doomed", "--db", str(db)])
    assert revoked.exit_code == 0 and "revoked token 'doomed'" in revoked.output
    with secured.http(doomed) as client:
        response = client.get("/api/v1/runs")
    assert response.status_code == 401 and "not valid" in response.text
    # and through the API, by an admin
    with secured.http(secured.tokens[Scope.ADMIN]) as admin:
        assert admin.delete("/api/v1/tokens/doomed-too").status_code == 204
        assert admin.delete("/api/v1/tokens/doomed-too").status_code == 404
    with secured.http(api_made) as client:
        assert client.get("/api/v1/runs").status_code == 401
    again = CliRunner().invoke(cli, ["token", "revoke", "doomed", "--db", str(db)])
    assert again.exit_code == 1 and "no token named 'doomed'" in again.output


def test_sdk_and_cli_send_the_token(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    url = secured.server.url
    with Client(url, token=secured.tokens[Scope.SUBMIT]) as client:
        run = client.runs.wait(client.runs.create(INLINE), timeout=60)
        assert run.status == "completed"
    with Client(url, token=secured.tokens[Scope.READ]) as client, pytest.raises(Forbidden):
        client.runs.create(INLINE)
    monkeypatch.delenv("TREADLE_TOKEN", raising=False)
    with Client(url) as client, pytest.raises(Unauthorized):
        client.runs.list()
    monkeypatch.setenv("TREADLE_TOKEN", secured.tokens[Scope.READ])
    with Client(url) as client:
        assert run.id in [r.id for r in client.runs.list().items]

    runner = CliRunner()
    monkeypatch.delenv("TREADLE_TOKEN")
    refused = runner.invoke(cli, ["runs", "get", run.id, "--server", url])
    assert refused.exit_code != 0 and "401" in refused.output
    token = secured.tokens[Scope.READ]
    shown = runner.invoke(cli, ["--token", token, "runs", "get", run.id, "--server", url])
    assert shown.exit_code == 0, shown.output
    assert run.id in shown.output
    logs = runner.invoke(cli, ["--token", token, "logs", run.id, "hello", "--server", url])
    assert logs.exit_code == 0 and "hi" in logs.output


def test_token_create_prints_the_token_once_and_stores_only_its_hash(secured: Secured) -> None:
    db = secured.server.db
    made = subprocess.run(
        [
            *treadle_cmd(),
            "token",
            "create",
            "--name",
            "printed",
            "--scope",
            "operate",
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=secured.server.env,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("trd_")
    assert token not in made.stderr and "shown only now" in made.stderr
    assert "scope operate" in made.stderr

    listed = CliRunner().invoke(cli, ["token", "list", "--db", str(db), "-o", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["printed"]["scope"] == "operate" and token.startswith(rows["printed"]["prefix"])
    assert token not in listed.output
    with secured.http(token) as client:
        assert client.get("/api/v1/runs").status_code == 200

    # every token in use is nowhere in the database files (only the SHA-256 and a prefix)
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert len(stored) > 0
    for raw in [token, *secured.tokens.values()]:
        assert raw.encode() not in stored
        assert raw[12:].encode() not in stored  # not even the secret part without its prefix
    bad = CliRunner().invoke(
        cli, ["token", "create", "--name", "x", "--scope", "root", "--db", str(db)]
    )
    assert bad.exit_code == 2 and "unknown scope 'root'" in bad.output


def test_flower_import_sends_the_token(
    secured: Secured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from treadle.compat.flower.cli import flower_main

    rows = (
        Path(__file__).parent.parent / "compat" / "flower" / "examples" / "ms_task_definition.csv"
    )
    args = ["import", "--from", str(rows), "--server", secured.server.url]
    monkeypatch.delenv("TREADLE_TOKEN", raising=False)
    assert flower_main(args) != 0  # 401 without a token
    monkeypatch.setenv("TREADLE_TOKEN", secured.tokens[Scope.SUBMIT])
    assert flower_main(args) == 0


def test_control_events_name_the_token_not_just_what_the_client_claims(secured: Secured) -> None:
    slow = {"name": "auth-slow", "tasks": [{"name": "nap", "kind": "sleep", "seconds": 30}]}
    with secured.http(secured.tokens[Scope.OPERATE]) as client:
        started = client.post("/api/v1/runs", json={"definition": slow})
        assert started.status_code == 201, started.text
        run = started.json()
        killed = client.post(
            f"/api/v1/runs/{run['id']}/kill",
            headers={"X-Treadle-Actor": "mallory"},
        )
        assert killed.status_code == 200, killed.text
        events = client.get(f"/api/v1/runs/{run['id']}/events").json()["items"]
    actors = {e["actor"] for e in events if "kill" in e["kind"]}
    assert actors == {"token:operate-token (mallory)"}, events
