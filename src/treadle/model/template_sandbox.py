"""A Jinja2 sandbox with resource limits: templates come from users, so they are hostile input.

``ImmutableSandboxedEnvironment`` already refuses dunder attributes, unsafe ``str.format``
tricks and mutation of lists and dicts. It does not bound work: ``range`` loops nested in each
other, ``'a' * 10**9``, ``10 ** 10 ** 10``, huge ``lipsum`` or ``replace`` results and macros
that call themselves can each hang or exhaust a worker. :class:`BoundedSandbox` adds a budget per
render (loop iterations, nested calls, a size cap on every string or list an operator or filter
builds, and a wall-clock deadline), so such a template fails with a :class:`TemplateLimit` that
names the limit instead.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

#: Characters of one rendered value (a whole template or one expression's text).
MAX_RENDERED_CHARS = 1_000_000
#: Items of one ``range()`` (Jinja's own sandbox cap is the same).
MAX_RANGE = 100_000
#: Loop iterations over ``range()`` results in one render, across all loops.
MAX_ITERATIONS = 1_000_000
#: Nested calls (macros calling macros, a macro calling itself).
MAX_CALL_DEPTH = 64
#: Digits of an integer that ``**`` may produce.
MAX_POWER_DIGITS = 4_300
#: Wall-clock seconds one render may take.
MAX_RENDER_SECONDS = 5.0
#: Paragraphs ``lipsum()`` may write.
MAX_LIPSUM = 100


class TemplateLimit(Exception):
    """A template went past one of the render limits; the message names which."""


@dataclass
class _Budget:
    deadline: float
    iterations: int = 0
    depth: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def tick(self, steps: int = 1) -> None:
        self.iterations += steps
        if self.iterations > MAX_ITERATIONS:
            raise TemplateLimit(f"template loops ran more than {MAX_ITERATIONS} iterations")
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"template took longer than {MAX_RENDER_SECONDS:g}s to render")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "treadle_template_budget", default=None
)


@contextmanager
def render_budget(seconds: float = MAX_RENDER_SECONDS) -> Iterator[None]:
    """Give the renders inside the block one shared budget (the outermost block wins)."""
    if _BUDGET.get() is not None:
        yield
        return
    token = _BUDGET.set(_Budget(deadline=time.monotonic() + seconds))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # outside render_budget(): a throwaway budget (render_string has one)
        budget = _Budget(deadline=time.monotonic() + MAX_RENDER_SECONDS)
    return budget


def check_size(value: Any, what: str = "template value") -> Any:
    """Refuse a string or list longer than :data:`MAX_RENDERED_CHARS`."""
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_RENDERED_CHARS:
        raise TemplateLimit(f"{what} would be longer than {MAX_RENDERED_CHARS} characters")
    return value


class BoundedRange:
    """What ``range()`` gives a template: a range whose iteration counts against the budget."""

    __slots__ = ("_items",)

    def __init__(self, items: range) -> None:
        self._items = items

    def __iter__(self) -> Iterator[int]:
        budget = _budget()
        for n, item in enumerate(self._items):
            if n % 16 == 0:
                budget.tick(16)
            yield item

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> int:
        return self._items[index]

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __repr__(self) -> str:
        return repr(self._items)


def bounded_range(*args: int) -> BoundedRange:
    """``range()`` for templates: at most :data:`MAX_RANGE` items, counted against the budget."""
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise TemplateLimit(f"range() of {len(items)} items is over the limit of {MAX_RANGE}")
    return BoundedRange(items)


class BoundedNamespace(Namespace):
    """``namespace()`` whose attributes cannot grow past the size cap (``ns.s = ns.s ~ ns.s``)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _budget().tick()
        super().__setitem__(name, check_size(value, f"namespace attribute {name!r}"))


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's ``lipsum`` with the paragraph count capped."""
    if not isinstance(n, int) or n > MAX_LIPSUM or max > 1000:
        raise TemplateLimit(f"lipsum() is limited to {MAX_LIPSUM} paragraphs of 1000 words")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


def _width_estimate(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An upper bound of what ``|center(width)`` or ``|indent(width)`` would write."""
    values = [a for a in args if not isinstance(a, jinja2.nodes.EvalContext)]
    text = str(values[0]) if values else ""
    width = kwargs.get("width", values[1] if len(values) > 1 else 0)
    width = width if isinstance(width, int) else len(str(width))
    return len(text) + max(width, 0) * (text.count("\n") + 1)


def _sized_filter(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _budget().tick()
        if name in ("center", "indent") and _width_estimate(args, kwargs) > MAX_RENDERED_CHARS:
            raise TemplateLimit(
                f"the result of |{name} would be longer than {MAX_RENDERED_CHARS} characters"
            )
        return check_size(func(*args, **kwargs), f"the result of |{name}")

    bounded.__name__ = getattr(func, "__name__", name)
    if hasattr(func, "jinja_pass_arg"):
        bounded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _bounded_replace(func: Callable[..., Any]) -> Callable[..., Any]:
    """``|replace`` checked before it runs: its result could be quadratic in the input."""

    def replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
        _budget().tick()
        text, old_s, new_s = str(value), str(old), str(new)
        grows = len(new_s) - len(old_s)
        hits = len(text) + 1 if old_s == "" else text.count(old_s)
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        if grows > 0 and len(text) + hits * grows > MAX_RENDERED_CHARS:
            raise TemplateLimit(
                f"the result of |replace would be longer than {MAX_RENDERED_CHARS} characters"
            )
        return func(eval_ctx, value, old, new, count)

    replace.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return replace


def _product_size(left: Any, right: Any) -> int | None:
    """The length ``left * right`` would have when it repeats a sequence, else None."""
    if isinstance(left, int) and isinstance(right, str | list | tuple):
        left, right = right, left
    if isinstance(left, str | list | tuple) and isinstance(right, int) and right > 0:
        return len(left) * right
    return None


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus the render budget (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = bounded_range
        self.globals["lipsum"] = bounded_lipsum
        self.globals["namespace"] = BoundedNamespace
        self.filters["replace"] = _bounded_replace(self.filters["replace"])
        for name in ("center", "indent", "wordwrap", "join", "format", "list"):
            if name in self.filters:
                self.filters[name] = _sized_filter(self.filters[name], name)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _budget().tick()
        if operator == "*":
            size = _product_size(left, right)
            if size is not None and size > MAX_RENDERED_CHARS:
                raise TemplateLimit(
                    f"repeating a value to {size} items is over the limit of {MAX_RENDERED_CHARS}"
                )
        elif operator == "**" and _power_too_big(left, right):
            raise TemplateLimit(f"{left!r} ** {right!r} has more than {MAX_POWER_DIGITS} digits")
        result = super().call_binop(context, operator, left, right)
        return check_size(result, f"the result of {operator!r}")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        if budget.depth >= MAX_CALL_DEPTH:
            raise TemplateLimit(f"template calls are nested deeper than {MAX_CALL_DEPTH} levels")
        for arg in (*args, *kwargs.values()):
            check_size(arg, "an argument of a call")
        budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return check_size(result, "the result of a call")


def _power_too_big(left: Any, right: Any) -> bool:
    if not isinstance(left, int | float) or not isinstance(right, int | float):
        return False
    if isinstance(left, float) or isinstance(right, float):
        return False  # floats overflow to an OverflowError, which is already an error
    if right <= 0 or abs(left) <= 1:
        return False
    return right * math.log10(abs(left)) > MAX_POWER_DIGITS


def make_environment(**options: Any) -> BoundedSandbox:
    """The environment every user template renders in."""
    return BoundedSandbox(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True, **options
    )
