from __future__ import annotations

import json
import logging

import pytest

from treadle.cli.common import configure_logging


def test_json_log_lines_carry_run_task_attempt_ids(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("info", "json")
        ids = {"run_id": "r1", "task_id": "t1", "attempt_id": "a1"}
        logging.getLogger("treadle.worker").warning("attempt %s lost", "a1", extra=ids)
        logging.getLogger("treadle.api").info("no ids here")
    finally:
        root.handlers[:], root.level = saved
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "attempt a1 lost"
    assert lines[0]["level"] == "warning" and lines[0]["logger"] == "treadle.worker"
    assert {k: lines[0][k] for k in ids} == ids
    assert "run_id" not in lines[1]
