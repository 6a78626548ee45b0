from __future__ import annotations

import treadle
import treadle.sdk


def test_public_names_resolve() -> None:
    for module in (treadle, treadle.sdk):
        for name in module.__all__:
            assert getattr(module, name) is not None, name
    assert {"Client", "AsyncClient", "workflow", "task", "handler"} <= set(treadle.__all__)
    assert treadle.Client is treadle.sdk.Client
    assert sorted(treadle.__all__) == treadle.__all__
