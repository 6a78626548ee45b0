"""For stores that do not implement the trigger primitives yet (the Redis store, for now).

Every primitive raises :class:`~treadle.errors.ConfigError` naming the store and the feature,
so a wait, limit, schedule, hook or callback on such a store fails with a clear message instead
of misbehaving; the coordinator turns off the duties that need them (logged once).
"""

from __future__ import annotations

from typing import Any, NoReturn

from treadle.errors import ConfigError

FEATURES = "waits, signals, concurrency and rate limits, schedules, hooks and callbacks"


def _refuse(store: Any) -> NoReturn:
    kind = type(store).__name__
    raise ConfigError(f"{FEATURES} are not available on {kind} yet; use SQLite or PostgreSQL")


class UnsupportedTriggersMixin:
    """Satisfies the TriggerStore protocol by refusing every call (see the module docstring)."""

    triggers_supported = False

    async def park_waits(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def due_waits(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def list_waits(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def add_signal(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def list_signals(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def signal_matches(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def finish_wait(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def drop_stale_waits(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def admit_run(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def admissible_run_ids(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def reserve_task_slots(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def put_schedule(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def get_schedule(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def list_schedules(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def delete_schedule(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def update_schedule(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def due_schedules(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def put_hook(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def get_hook(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def list_hooks(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def delete_hook(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def add_callbacks(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def due_callbacks(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def update_callback(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)

    async def list_callbacks(self, *args: Any, **kwargs: Any) -> Any:
        _refuse(self)
