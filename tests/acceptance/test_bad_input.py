"""Bad input gets a clear 4xx naming the problem; nothing stored is harmed."""

from __future__ import annotations

from tests.conftest import Server

GOOD = "name: keep\ntasks:\n  - {name: a, kind: noop}\n"


def _error(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert {"code", "message", "details"} <= set(body["error"])
    assert "Traceback" not in response.text  # type: ignore[attr-defined]
    return dict(body["error"])


def test_bad_definitions(server: Server) -> None:
    yaml = {"Content-Type": "application/yaml"}
    with server.client() as client:
        assert client.post("/api/v1/definitions", content=GOOD, headers=yaml).status_code == 201
        malformed = client.post(
            "/api/v1/definitions",
            content="name: x\ntasks:\n  - {name: a, kind: [noop\n",
            headers=yaml,
        )
        assert malformed.status_code == 422
        assert "line" in str(_error(malformed)["message"])
        bad_json = client.post(
            "/api/v1/definitions",
            content='{"name": "x", "tasks": [',
            headers={"Content-Type": "application/json"},
        )
        assert bad_json.status_code == 422
        assert "line 1" in str(_error(bad_json)["message"])
        cycle = client.post(
            "/api/v1/definitions",
            headers=yaml,
            content=(
                "name: keep\ntasks:\n  - {name: a, kind: noop, depends_on: [b]}\n"
                "  - {name: b, kind: noop, depends_on: [a]}\n"
            ),
        )
        assert cycle.status_code == 422
        assert "a -> b -> a" in str(_error(cycle)["message"]) or "b -> a -> b" in str(
            _error(cycle)["message"]
        )
        kind = client.post(
            "/api/v1/definitions",
            headers=yaml,
            content="name: keep\ntasks:\n  - {name: a, kind: warp}\n",
        )
        assert kind.status_code == 422
        assert "warp" in str(_error(kind)["message"])
        dep = client.post(
            "/api/v1/definitions",
            headers=yaml,
            content="name: keep\ntasks:\n  - {name: a, kind: noop, depends_on: [nope]}\n",
        )
        assert dep.status_code == 422
        assert "nope" in str(_error(dep)["message"])
        huge = client.post(
            "/api/v1/definitions",
            headers=yaml,
            content="name: big\nvars: {x: '" + "y" * 5_000_000 + "'}\ntasks: []\n",
        )
        assert huge.status_code == 413
        assert _error(huge)["code"] == "too_large"
        # nothing stored was harmed
        kept = client.get("/api/v1/definitions/keep").json()
        assert kept["version"] == 1
        assert kept["versions"] == [1]
        assert [d["name"] for d in client.get("/api/v1/definitions").json()["items"]].count(
            "keep"
        ) == 1


def test_unknown_things_are_404(server: Server) -> None:
    with server.client() as client:
        for path in (
            "/api/v1/definitions/ghost",
            "/api/v1/runs/ghost",
            "/api/v1/runs/ghost/tasks/a/logs",
            "/api/v1/nothing",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "ghost" in str(_error(response)["message"]) or "nothing" in path
        start = client.post("/api/v1/runs", json={"definition": "ghost"})
        assert start.status_code == 404
        assert "ghost" in str(_error(start)["message"])


def test_bad_run_requests(server: Server) -> None:
    with server.client() as client:
        client.post(
            "/api/v1/definitions",
            json={
                "name": "needs",
                "inputs": {"day": {"type": "string", "required": True}, "n": {"type": "integer"}},
                "tasks": [{"name": "a", "kind": "noop"}],
            },
        )
        missing = client.post("/api/v1/runs", json={"definition": "needs"})
        assert missing.status_code == 422
        assert "day" in str(_error(missing)["message"])
        wrong = client.post(
            "/api/v1/runs", json={"definition": "needs", "inputs": {"day": "x", "n": "many"}}
        )
        assert wrong.status_code == 422
        assert "'n'" in str(_error(wrong)["message"])
        extra = client.post("/api/v1/runs", json={"definition": "needs", "wat": 1})
        assert extra.status_code == 422
        assert "wat" in str(_error(extra)["message"])
        not_json = client.post(
            "/api/v1/runs", content="{{{", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 422
        _error(not_json)
        assert client.get("/api/v1/runs", params={"definition": "needs"}).json()["items"] == []


def test_template_error_fails_that_task_with_a_clear_message(server: Server) -> None:
    inline = {
        "name": "tmpl",
        "tasks": [
            {"name": "ok", "kind": "noop"},
            {"name": "bad", "kind": "log", "message": "{{ tasks.ok.output.missing.deeper }}"},
        ],
    }
    with server.client() as client:
        run_id = client.post("/api/v1/runs", json={"definition": inline}).json()["id"]
    run = server.wait_run(run_id)
    assert run["status"] == "failed"
    bad = next(t for t in run["tasks"] if t["name"] == "bad")
    assert bad["status"] == "failed"
    assert "template error in `message`" in bad["error"]
    assert "tasks.ok.output.missing.deeper" in bad["error"]
