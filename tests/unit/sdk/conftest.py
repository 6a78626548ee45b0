from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.sdk.recorder import Recorder, serve


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from serve()
