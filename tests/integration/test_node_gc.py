"""A node sets the process's garbage collector thresholds while it runs (``gc_threshold``)
and gives the process back the ones it found; ``[]`` leaves them alone."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.integration.conftest import settings_for
from treadle.config import load_settings
from treadle.engine.node import Node
from treadle.errors import ConfigError


async def test_a_node_sets_the_thresholds_and_restores_them(tmp_path: Path) -> None:
    before = gc.get_threshold()
    node = Node(settings_for(f"sqlite:///{tmp_path}/t.db"), ["coordinator", "worker"])
    await node.start()
    try:
        assert gc.get_threshold() == (50_000, 20, 100)
    finally:
        await node.stop()
    assert gc.get_threshold() == before


async def test_overlapping_nodes_give_the_thresholds_back_when_the_last_stops(
    tmp_path: Path,
) -> None:
    before = gc.get_threshold()
    first = Node(settings_for(f"sqlite:///{tmp_path}/a.db"), ["coordinator", "worker"])
    second = Node(settings_for(f"sqlite:///{tmp_path}/b.db"), ["coordinator", "worker"])
    await first.start()
    await second.start()
    try:
        await first.stop()
        assert gc.get_threshold() == (50_000, 20, 100)  # the second still runs
    finally:
        await first.stop()
        await second.stop()
    assert gc.get_threshold() == before


async def test_an_empty_list_keeps_the_interpreter_thresholds(tmp_path: Path) -> None:
    before = gc.get_threshold()
    settings = settings_for(f"sqlite:///{tmp_path}/t.db", gc_threshold=[])
    node = Node(settings, ["coordinator", "worker"])
    await node.start()
    try:
        assert gc.get_threshold() == before
    finally:
        await node.stop()


def test_the_environment_sets_the_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREADLE_GC_THRESHOLD", "[700, 10, 10]")
    assert load_settings(None).gc_threshold == [700, 10, 10]
    monkeypatch.setenv("TREADLE_GC_THRESHOLD", "[]")
    assert load_settings(None).gc_threshold == []
    monkeypatch.setenv("TREADLE_GC_THRESHOLD", "[1, 2]")
    with pytest.raises(ConfigError, match="gc_threshold takes three counts"):
        load_settings(None)
