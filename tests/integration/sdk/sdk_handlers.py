"""Handlers and a code-first workflow the standalone server imports in the SDK tests."""

from __future__ import annotations

import treadle


@treadle.task(name="multiply")
def multiply(value: int, factor: int) -> int:
    return value * factor


@treadle.workflow(name="sdk-flow")
def flow(value: int, factor: int = 2) -> None:
    product = multiply(value=value, factor=factor)
    treadle.shell(["sh", "-c", 'echo "product $0"', product.output], name="echo")
