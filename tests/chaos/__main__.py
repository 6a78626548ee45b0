"""``python -m tests.chaos [--full]``: the chaos suite alone, with its summary table."""

from __future__ import annotations

import sys

from tests.chaos.run import main

sys.exit(main())
