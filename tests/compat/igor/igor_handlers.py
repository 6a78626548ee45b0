"""Batch handlers the Igor tests' server imports (``--import igor_handlers``)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from treadle import handler
from treadle.runtime.batch import BatchItem


@handler("igor_batch", batch_size=3, batch_wait=1.0)
def igor_batch(work: list[BatchItem]) -> None:
    """Records each batch's task names; args 'fail'/'skip' set those statuses."""
    with Path(os.environ["IGOR_TEST_LOG"]).open("a") as log:
        log.write(json.dumps(sorted(item.task.name for item in work)) + "\n")
    for item in work:
        word = base64.b64decode(item.task.args.get("args") or "").decode()
        if word == "fail":
            item.set_error(f"{item.task.name} failed on purpose")
        elif word == "skip":
            item.set_skip("not needed")
        elif word:
            item.message = f"done {word}"
