"""Secrets end to end on a real `treadle standalone`: a canary never comes back out.

The canary is set as a secret, then a run echoes it plainly, base64-encoded at each byte
offset, URL-encoded, in its JSON output and in a failing task's error. Every API route of the
run, the UI pages, the stored database files and the server's own log are searched for it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx

from tests.conftest import Server, start_server, treadle_cmd

LEAKY = """
name: leaky
tasks:
  - name: leak
    kind: shell
    env: {X: "{{ secrets.CANARY }}"}
    shell: true
    command: |
      printf 'plain %s\\n' "$X"
      printf %s "$X" | base64
      printf 'a%s' "$X" | base64
      printf 'ab%s' "$X" | base64
      printf 'user:%s@host' "$X" | base64
      python3 -c 'import os, urllib.parse as u; print(u.quote(os.environ["X"], safe=""))'
      python3 -c 'import os, urllib.parse as u; print(u.quote_plus(os.environ["X"]))'
      printf '{"token": "%s"}\\n' "$X"
  - name: fail
    kind: shell
    command: ["sh", "-c", "echo \\"bad token $0\\" >&2; exit 3", "{{ secrets.CANARY }}"]
"""

UNKNOWN = """
name: unknown-secret
tasks:
  - name: use
    kind: shell
    command: ["echo", "{{ secrets.NOT_SET }}"]
"""


def _forms(canary: str) -> list[str]:
    """The canary and encodings a leak would show, computed here independently of the masker."""
    raw = canary.encode()
    whole = base64.b64encode(raw).decode()
    full_groups = whole[: 4 * (len(raw) // 3)]
    return [canary, full_groups, quote(canary, safe=""), quote_plus(canary)]


def _assert_clean(where: str, text: str, canary: str) -> None:
    for form in _forms(canary):
        assert form not in text, f"{where} leaks {form!r}"


def _set_secret(server: Server, name: str, value: str) -> None:
    with server.client() as client:
        answer = client.put(f"/api/v1/secrets/{name}", json={"value": value})
        assert answer.status_code == 200, answer.text
        assert value not in answer.text
        assert set(answer.json()) == {"name", "created_at", "updated_at"}


def _run(server: Server, doc: str) -> dict[str, object]:
    with server.client() as client:
        created = client.post(
            "/api/v1/runs",
            json={"definition": _yaml(doc), "inputs": {}},
        )
        assert created.status_code == 201, created.text
        return server.wait_run(created.json()["id"])


def _yaml(doc: str) -> object:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(doc)


def _stream_head(client: httpx.Client, path: str, limit: int = 200_000) -> str:
    """The first bytes of a streaming page (SSE), without waiting for it to end."""
    got = b""
    try:
        with client.stream("GET", path, timeout=5.0) as response:
            for chunk in response.iter_bytes():
                got += chunk
                if len(got) > limit:
                    break
    except httpx.ReadTimeout:
        pass
    return got.decode(errors="replace")


def test_canary_never_leaves_the_worker(tmp_path: Path) -> None:
    canary = f"Cn{uuid.uuid4().hex[:24]}/+ &=?z"
    server = start_server(tmp_path)
    try:
        _set_secret(server, "CANARY", canary)
        run = _run(server, LEAKY)
        assert run["status"] == "failed", run
        tasks = {t["name"]: t for t in run["tasks"]}  # type: ignore[attr-defined]
        leak, fail = tasks["leak"], tasks["fail"]
        assert leak["status"] == "completed", leak
        # The task really had the value: every line that carried it is masked, not empty.
        assert leak["output"]["stdout"].splitlines()[0] == "plain ***"
        assert leak["output"]["json"] == {"token": "***"}
        assert fail["status"] == "failed"
        assert fail["error"] == "command exited with code 3: bad token ***"

        responses: dict[str, str] = {}
        with server.client() as client:
            run_id = run["id"]
            paths = [
                f"/api/v1/runs/{run_id}",
                f"/api/v1/runs/{run_id}/events",
                f"/api/v1/runs/{run_id}/signals",
                "/api/v1/runs",
                "/api/v1/secrets",
                f"/ui/runs/{run_id}",
                "/ui/runs",
            ]
            for name in tasks:
                paths.append(f"/api/v1/runs/{run_id}/tasks/{name}/logs")
            for path in paths:
                answer = client.get(path)
                assert answer.status_code == 200, (path, answer.text[:300])
                responses[path] = answer.text
            for name in tasks:
                path = f"/ui/runs/{run_id}/tasks/{name}/logs/stream"
                responses[path] = _stream_head(client, path)
        logs = responses[f"/api/v1/runs/{run_id}/tasks/leak/logs"]
        assert "plain ***" in logs
        assert "bad token ***" in responses[f"/api/v1/runs/{run_id}/tasks/fail/logs"]
        for path, text in responses.items():
            _assert_clean(path, text, canary)
        _assert_clean("run JSON", json.dumps(run), canary)
    finally:
        server.stop()
    # At rest: the database (and its WAL) holds ciphertext and masked logs only.
    for file in tmp_path.iterdir():
        if file.name.startswith("treadle.db") or file.suffix == ".log":
            _assert_clean(file.name, file.read_bytes().decode("latin-1"), canary)
    assert (tmp_path / "treadle.db.secret-key").stat().st_mode & 0o077 == 0


def test_unknown_secret_fails_the_task_naming_it(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        run = _run(server, UNKNOWN)
        task = run["tasks"][0]  # type: ignore[index]
        assert task["status"] == "failed"
        assert "secret 'NOT_SET' is not set" in task["error"]
    finally:
        server.stop()


def test_cli_set_list_rm(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    cli = [*treadle_cmd()]
    env = {**server.env, "TREADLE_SERVER": server.url}

    def treadle(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
        )

    try:
        value = f"v-{uuid.uuid4().hex}"
        done = treadle("secret", "set", "db_password", stdin=value + "\n")
        assert done.returncode == 0, done.stderr
        assert value not in done.stdout + done.stderr
        listed = treadle("secret", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert [i["name"] for i in json.loads(listed.stdout)["items"]] == ["db_password"]
        assert value not in listed.stdout
        # The stored value has no trailing newline: a task echoing it shows exactly "***".
        _run_doc = LEAKY.replace("CANARY", "db_password")
        run = _run(server, _run_doc)
        leak = run["tasks"][0]  # type: ignore[index]
        assert leak["output"]["stdout"].splitlines()[0] == "plain ***"
        bad = treadle("secret", "set", "bad name!", stdin="x")
        assert bad.returncode == 1
        assert "bad secret name" in bad.stderr
        removed = treadle("secret", "rm", "db_password")
        assert removed.returncode == 0, removed.stderr
        again = treadle("secret", "rm", "db_password")
        assert again.returncode == 1
        assert "no secret 'db_password'" in again.stderr
    finally:
        server.stop()
