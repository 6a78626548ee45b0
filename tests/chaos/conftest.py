"""Fixtures of the chaos suite: the integration suite's clusters, plus the summary table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos.report import OUTCOMES, RESULTS, table
from tests.integration.cluster import FULL
from tests.integration.conftest import make_cluster

__all__ = ["make_cluster"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    # make_cluster prints the processes' logs when the test body failed.
    setattr(item, f"rep_{report.when}", report)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        OUTCOMES[item.nodeid] = report.outcome
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the extended scenarios out of a reduced run (deselected, so never a skip)."""
    if FULL:
        return
    kept = [i for i in items if i.get_closest_marker("chaos_extended") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.section("chaos scenarios")
        terminalreporter.write_line(table())
