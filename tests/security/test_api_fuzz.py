"""Fuzz every operation of the app's own OpenAPI document with schemathesis, in process.

Checks: no 5xx, and every 4xx carries the JSON error shape with a message. Derandomized with a
bounded number of examples, so a CI run always tries the same inputs.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, settings

from treadle.api.app import create_app
from treadle.config import Settings

_DATA = Path(tempfile.mkdtemp(prefix="treadle-fuzz-"))
atexit.register(shutil.rmtree, _DATA, True)
APP = create_app(
    Settings(
        db=f"sqlite:///{_DATA / 'fuzz.db'}",
        queues={"default": 2},
        heartbeat_seconds=1.0,
        definitions=[],
        imports=[],
    ),
    ("api", "coordinator", "worker"),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
EXAMPLES = 6
IGOR_PATHS = ("/api/v1/jobs", "/api/v1/layers", "/api/v1/tasks")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_errors_are_json(case: schemathesis.Case) -> None:
    response = case.call()
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if response.status_code >= 400 and response.headers.get("content-type", [""])[0].startswith(
        "text/plain"
    ):
        # The Igor dialect answers its errors as text/plain, as Igor did (its clients parse it).
        assert case.formatted_path.startswith(IGOR_PATHS), f"{where}: {response.text[:300]!r}"
        assert response.text.strip(), f"{where}: empty error"
    elif response.status_code >= 400:
        try:
            body = json.loads(response.text)
        except ValueError as exc:
            raise AssertionError(f"{where}: not JSON: {response.text[:300]!r}") from exc
        assert isinstance(body, dict), f"{where}: {body!r}"
        error = body.get("error")
        if isinstance(error, dict):  # the native shape
            assert isinstance(error.get("message"), str), f"{where}: {body!r}"
            assert error["message"], f"{where}: empty message"
        else:  # a seed dialect's own error shape: still JSON with a message in it
            assert any(isinstance(v, str) and v for v in body.values()), f"{where}: {body!r}"
