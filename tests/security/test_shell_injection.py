"""User values reach shell tasks as argv items or environment variables, never as shell code:
payloads sent through the API come out of a real run as the same text."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.security.conftest import wait_run

PAYLOADS = [
    "$(id)",
    "`id`",
    "; rm -rf {marker}",
    "| cat /etc/passwd",
    "&& touch {marker}",
    "$(touch {marker})",
    "${{IFS}}touch${{IFS}}{marker}",
    "a\ntouch {marker}",
    "'; touch {marker}; echo '",
    '"; touch {marker}; echo "',
    "--output={marker}",
]


async def test_payloads_stay_literal_text(api: httpx.AsyncClient, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    values = [p.format(marker=marker) for p in PAYLOADS]
    reader = (
        "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'env': os.environ['V']}))"
    )
    definition = {
        "name": "injection",
        "inputs": {"v": {"type": "string", "required": True}},
        "tasks": [
            {  # argv: the value is one argv item
                "name": "argv",
                "kind": "shell",
                "command": ["python3", "-c", reader, "--", "{{ inputs.v }}"],
                "env": {"V": "{{ inputs.v }}"},
            },
            {  # a shell script: the template becomes a variable reference
                "name": "script",
                "kind": "shell",
                "shell": True,
                "command": "printf '%s' \"{{ inputs.v }}\"",
                "depends_on": [],
            },
            {  # even unquoted in the script it is never parsed as commands
                "name": "unquoted",
                "kind": "shell",
                "shell": True,
                "command": "printf '[%s]' {{ inputs.v }}",
                "depends_on": [],
            },
        ],
    }
    created = await api.post("/api/v1/definitions", json=definition)
    assert created.status_code == 201, created.text
    for value in values:
        response = await api.post(
            "/api/v1/runs", json={"definition": "injection", "inputs": {"v": value}}
        )
        assert response.status_code == 201, response.text
        run = await wait_run(api, response.json()["id"])
        tasks = {t["name"]: t for t in run["tasks"]}
        assert run["status"] == "completed", (value, run)
        seen = json.loads(tasks["argv"]["output"]["stdout"])
        assert seen == {"argv": ["--", value], "env": value}, value
        assert tasks["script"]["output"]["stdout"] == value
        unquoted = tasks["unquoted"]["output"]["stdout"]
        for word in value.split():  # split into words at most: never run
            assert f"[{word}]" in unquoted, (value, unquoted)
        assert "uid=" not in json.dumps(tasks)
        assert not marker.exists(), value
