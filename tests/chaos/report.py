"""The figures of each chaos scenario, gathered in the test process and printed as a table."""

from __future__ import annotations

from dataclasses import dataclass, field

TABLE_HEADER = (
    "scenario",
    "result",
    "tasks",
    "completed",
    "failed",
    "duplicated",
    "lost",
    "late rejected",
    "faults",
)


@dataclass
class Figures:
    """What one scenario did, counted in the store and in the execution ledger.

    ``duplicated``: tasks whose body ran more than once (allowed: at-least-once, one extra run
    per lost attempt); ``lost``: submitted tasks not in a terminal state at the end (must be 0).
    """

    scenario: str
    tasks: int = 0
    completed: int = 0
    failed: int = 0
    duplicated: int = 0
    extra_runs: int = 0
    lost: int = 0
    late_rejected: int = 0
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0


#: Every scenario of this test session, in the order they ran (keyed by test node id).
RESULTS: dict[str, Figures] = {}
#: The outcome per node id ("passed", "failed"), filled by the conftest hook.
OUTCOMES: dict[str, str] = {}


def table() -> str:
    """The summary table, one row per scenario that recorded figures."""
    rows = [TABLE_HEADER]
    for node, fig in RESULTS.items():
        rows.append(
            (
                fig.scenario,
                OUTCOMES.get(node, "?"),
                str(fig.tasks),
                str(fig.completed),
                str(fig.failed),
                f"{fig.duplicated} (+{fig.extra_runs} runs)",
                str(fig.lost),
                str(fig.late_rejected),
                ", ".join(fig.faults) + f" [{fig.seconds:.0f}s]",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
