"""Run the chaos suite alone and print its summary table.

``python tests/chaos/run.py [--full] [-k EXPR] [pytest args...]`` (or ``python -m tests.chaos``):
``--full`` runs the issue's loads (same as ``TREADLE_FULL_TESTS=1``); the default loads are the
reduced ones CI runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--full" in args:
        args.remove("--full")
        os.environ["TREADLE_FULL_TESTS"] = "1"
    for path in (ROOT / "src", ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    import pytest

    # pytest imports the FULL switch when it collects, so it is set before this call.
    return int(pytest.main([str(ROOT / "tests" / "chaos"), "-p", "no:cacheprovider", *args]))


if __name__ == "__main__":
    sys.exit(main())
