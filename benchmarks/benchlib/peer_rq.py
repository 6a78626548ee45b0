"""The RQ job function for the benchmark (RQ imports it by dotted name in its workers)."""

from __future__ import annotations

from benchlib import probe


def noop(tag: str, submitted: float = 0.0) -> None:
    probe.send(tag, submitted)
