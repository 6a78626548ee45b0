"""MkDocs hook: regenerate the reference pages before every build, so they never go stale."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def on_pre_build(config: Any) -> None:
    for path in (ROOT / "src", ROOT / "scripts"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import gen_reference

    gen_reference.main()
