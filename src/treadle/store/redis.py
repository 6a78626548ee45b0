"""Redis store: rows as hashes, indexes as sorted sets, every state change one Lua script.

URL: ``redis://[:password@]host:6379/0?prefix=treadle:`` (``rediss://`` for TLS). Every key
starts with the prefix (default ``treadle:``), so several installations or tests can share one
server. ``max_connections=N`` sizes the connection pool (default 50). See
:mod:`treadle.store.redis_scripts` for the key layout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from treadle.errors import ConfigError, Conflict, NotFound, ServiceUnavailable
from treadle.model.states import RunStatus
from treadle.store import redis_scripts as lua
from treadle.store.claims import claimed_pairs
from treadle.store.records import (
    LIGHT_TASK_FIELDS,
    AttemptOutcome,
    AttemptRecord,
    DefinitionRecord,
    EventRecord,
    LayerChange,
    LayerRecord,
    LogChunk,
    NewLog,
    RunRecord,
    TaskChange,
    TaskRecord,
    WorkerRecord,
)
from treadle.store.redis_codec import (
    decode_fields,
    decode_record,
    encode_record,
    encode_value,
    encode_values,
    from_micros,
    pairs,
    run_key,
    time_bound,
    to_micros,
)
from treadle.store.redis_secrets import RedisSecretsMixin
from treadle.store.redis_tokens import RedisTokensMixin
from treadle.store.sql import decode_cursor, encode_cursor
from treadle.store.triggers_unsupported import UnsupportedTriggersMixin

SCHEMA_VERSION = 1
# What get_task_states reads: every task field but the JSON ones (spec, depends_on, rendered,
# output), which the scheduler does not need on each pass.
LIGHT_FIELDS = [
    name
    for name in TaskRecord.__slots__
    if name not in {"spec", "depends_on", "rendered", "output"}
]
DEFAULT_PREFIX = "treadle:"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def split_redis_url(url: str) -> tuple[str, str]:
    """The connection URL without treadle's ``prefix`` option, and the prefix."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"not a redis URL: scheme {parts.scheme!r} (use redis://...)")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    rest = [(name, value) for name, value in query if name != "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix:
        raise ConfigError("redis URL option prefix= must not be empty")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


def _public(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _task_fields(task: TaskRecord) -> list[str]:
    flat: list[str] = [task.id, task.run_id, str(task.seq)]
    fields = encode_record(task)
    flat.append(str(len(fields)))
    for name, value in fields.items():
        flat += [name, value]
    return flat


def _flatten(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def _layer_fields(layer: LayerRecord) -> list[str]:
    fields = encode_record(layer)
    return [layer.id, str(len(fields)), *_flatten(fields)]


class RedisStore(RedisTokensMixin, UnsupportedTriggersMixin, RedisSecretsMixin):
    """The :class:`~treadle.store.base.Store` protocol on Redis (redis-py asyncio)."""

    def __init__(self, url: str, *, prefix: str | None = None) -> None:
        connect_url, url_prefix = split_redis_url(url)
        self.prefix = prefix or url_prefix
        self.url = _public(url)
        # Typed as Any on purpose: redis-py annotates replies as bytes | str | Awaitable for
        # sync and async clients alike; with decode_responses=True every reply here is text.
        # A blocking pool: a burst of callers waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            connect_url,
            decode_responses=True,
            socket_connect_timeout=10,
            max_connections=50,  # the URL's max_connections= wins
            timeout=30,
        )
        self.client: Any = aioredis.Redis.from_pool(pool)
        self._scripts: dict[str, AsyncScript] = {}

    # -- plumbing -------------------------------------------------------------------------
    def _k(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    @asynccontextmanager
    async def _io(self) -> AsyncIterator[None]:
        """Translate driver errors at the boundary."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            reason = (str(exc) or type(exc).__name__).strip().splitlines()[0]
            raise ServiceUnavailable(f"store {self.url} unreachable: {reason}") from exc

    async def _script(self, source: str, args: Sequence[Any]) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client.register_script(source)
        async with self._io():
            return await script(keys=[], args=[self.prefix, *args])

    async def _hashes(self, keys: Sequence[str]) -> list[dict[str, str]]:
        if not keys:
            return []
        async with self._io():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return list(await pipe.execute())

    async def migrate(self) -> None:
        """Nothing to create in Redis; records the layout version (refuses a newer one)."""
        async with self._io():
            found = await self.client.get(self._k("schema"))
            if found is not None and int(found) > SCHEMA_VERSION:
                raise ConfigError(
                    f"redis keys under {self.prefix!r} use layout {found}, newer than this "
                    f"treadle understands ({SCHEMA_VERSION}); upgrade treadle"
                )
            await self.client.set(self._k("schema"), SCHEMA_VERSION)

    async def close(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        async with self._io():
            await self.client.ping()

    async def now(self) -> datetime:
        async with self._io():
            seconds, micros = await self.client.time()
        return from_micros(int(seconds) * 1_000_000 + int(micros))

    # -- definitions ----------------------------------------------------------------------
    async def put_definition(self, record: DefinitionRecord) -> DefinitionRecord:
        created = record.created_at or await self.now()
        body = _dumps(
            {
                "document": record.document,
                "source": record.source,
                "dialect": record.dialect,
                "created_at": to_micros(created),
            }
        )
        won = await self._script(lua.PUT_DEFINITION, [record.name, record.version, body])
        if not won:
            raise Conflict(f"definition {record.name!r} version {record.version} exists already")
        return DefinitionRecord(
            record.name, record.version, record.document, record.source, record.dialect, created
        )

    @staticmethod
    def _definition(name: str, version: int, raw: str) -> DefinitionRecord:
        body = json.loads(raw)
        return DefinitionRecord(
            name,
            version,
            body["document"],
            body["source"],
            body["dialect"],
            from_micros(body["created_at"]),
        )

    async def get_definition(self, name: str, version: int | None = None) -> DefinitionRecord:
        what = repr(name) if version is None else f"{name!r} version {version}"
        raw = None
        async with self._io():
            if version is None:
                latest = await self.client.hget(self._k("deflatest"), name)
                version = int(latest) if latest is not None else None
            if version is not None:
                raw = await self.client.hget(self._k("def:", name), str(version))
        if raw is None or version is None:
            raise NotFound(f"no definition {what}")
        return self._definition(name, version, raw)

    async def list_definitions(self) -> list[DefinitionRecord]:
        async with self._io():
            latest = await self.client.hgetall(self._k("deflatest"))
            names = sorted(latest)
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hget(self._k("def:", name), latest[name])
            bodies = await pipe.execute()
        return [
            self._definition(name, int(latest[name]), raw)
            for name, raw in zip(names, bodies, strict=True)
            if raw is not None
        ]

    async def definition_versions(self, name: str) -> list[int]:
        async with self._io():
            versions = await self.client.hkeys(self._k("def:", name))
        return sorted(int(v) for v in versions)

    # -- runs -----------------------------------------------------------------------------
    async def create_run(
        self,
        run: RunRecord,
        tasks: Sequence[TaskRecord],
        layers: Sequence[LayerRecord] = (),
        events: Sequence[tuple[str, str, dict[str, Any]]] = (),
    ) -> None:
        fields = encode_record(run)
        fields["_k"] = run_key(run.created_at, run.id)
        args: list[Any] = [run.id, len(fields), *_flatten(fields), len(layers)]
        for layer in layers:
            args += _layer_fields(layer)
        for task in tasks:
            args += _task_fields(task)
        if not await self._script(lua.PUT_RUN_AND_TASKS, args):
            raise Conflict(f"run {run.id!r} or one of its tasks exists already")
        # Redis has no transaction across scripts: the events follow the run's own script.
        for kind, actor, detail in events:
            await self.add_event(run.id, kind, actor, detail)

    async def add_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        if not tasks:
            return
        args: list[Any] = ["", 0, 0]
        for task in tasks:
            args += _task_fields(task)
        if not await self._script(lua.PUT_RUN_AND_TASKS, args):
            raise Conflict("one of the tasks exists already")

    # -- layers ---------------------------------------------------------------------------
    async def get_layers(self, run_id: str) -> list[LayerRecord]:
        async with self._io():
            ids = await self.client.zrange(self._k("run:", run_id, ":layers"), 0, -1)
        rows = await self._hashes([self._k("layer:", layer_id) for layer_id in ids])
        layers = [decode_record(LayerRecord, row) for row in rows if row]
        layers.sort(key=lambda layer: (layer.priority, layer.created_at))
        return layers

    async def get_layer(self, layer_id: str) -> LayerRecord:
        async with self._io():
            fields = await self.client.hgetall(self._k("layer:", layer_id))
        if not fields:
            raise NotFound(f"no layer {layer_id!r}")
        return decode_record(LayerRecord, fields)

    async def update_layers(self, changes: Sequence[LayerChange]) -> list[str]:
        if not changes:
            return []
        args: list[Any] = []
        for change in changes:
            fields = encode_values(LayerRecord, change.values)
            args += [change.layer_id, change.expected_version, len(fields), *_flatten(fields)]
        return list(await self._script(lua.UPDATE_LAYERS, args))

    async def get_run(self, run_id: str) -> RunRecord:
        async with self._io():
            fields = await self.client.hgetall(self._k("run:", run_id))
        if not fields:
            raise NotFound(f"no run {run_id!r}")
        return decode_record(RunRecord, fields)

    async def list_runs(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        id_prefix: str | None = None,
    ) -> tuple[list[RunRecord], str | None]:
        # The narrowest index answers; the other filters are checked on the rows read.
        if status:
            index = self._k("runs:s:", _dumps(status))
        elif definition:
            index = self._k("runs:d:", _dumps(definition))
        else:
            index = self._k("runs")
        upper = "+"
        if created_before:
            upper = "(" + time_bound(created_before)
        if cursor:
            at, run_id = decode_cursor(cursor)
            member = "(" + run_key(at, run_id)
            upper = member if upper == "+" else min(upper, member)
        lower = "[" + time_bound(created_after) if created_after else "-"
        found: list[RunRecord] = []
        chunk = max(limit + 1, 100)
        while len(found) <= limit:
            async with self._io():
                members = await self.client.zrevrangebylex(index, upper, lower, 0, chunk)
            if not members:
                break
            rows = await self._hashes([self._k("run:", m.split(":", 1)[1]) for m in members])
            for fields in rows:
                if not fields:
                    continue  # pruned between the two reads
                run = decode_record(RunRecord, fields)
                if definition and run.definition_name != definition:
                    continue
                if id_prefix and not run.id.startswith(id_prefix):
                    continue
                found.append(run)
            if len(members) < chunk:
                break
            upper = "(" + members[-1]
        next_cursor = None
        if len(found) > limit:
            found = found[:limit]
            next_cursor = encode_cursor(found[-1].created_at, found[-1].id)
        return found, next_cursor

    async def count_runs(self, *, status: str | None = None) -> int:
        index = self._k("runs:s:", _dumps(status)) if status else self._k("runs")
        async with self._io():
            return int(await self.client.zcard(index))

    async def active_run_ids(self, limit: int = 1000) -> list[str]:
        members: list[str] = []
        async with self._io():
            for status in (RunStatus.PENDING, RunStatus.RUNNING):
                index = self._k("runs:s:", _dumps(status.value))
                members += await self.client.zrangebylex(index, "-", "+", 0, limit)
        return [m.split(":", 1)[1] for m in sorted(members)[:limit]]

    async def update_run(
        self, run_id: str, expected_version: int, values: dict[str, Any]
    ) -> RunRecord | None:
        fields = encode_values(RunRecord, values)
        if "created_at" in values:
            fields["_k"] = run_key(values["created_at"], run_id)
        row = await self._script(lua.UPDATE_RUN, [run_id, expected_version, *_flatten(fields)])
        return decode_record(RunRecord, pairs(row)) if row else None

    # -- tasks ----------------------------------------------------------------------------
    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        async with self._io():
            ids = await self.client.zrange(self._k("run:", run_id, ":tasks"), 0, -1)
        rows = await self._hashes([self._k("task:", task_id) for task_id in ids])
        return [decode_record(TaskRecord, row) for row in rows if row]

    async def load_run_state(
        self, run_id: str, with_outputs: bool
    ) -> tuple[RunRecord, list[dict[str, Any]], dict[str, Any] | None]:
        reply = await self._script(
            lua.LOAD_RUN_STATE, [run_id, "1" if with_outputs else "0", *LIGHT_TASK_FIELDS]
        )
        if not reply:
            raise NotFound(f"no run {run_id!r}")
        run_row, rows, flat_outputs = reply
        states = [
            decode_fields(TaskRecord, dict(zip(LIGHT_TASK_FIELDS, row, strict=True)))
            for row in rows
        ]
        outputs = None
        if with_outputs:
            outputs = {key: json.loads(raw) for key, raw in pairs(flat_outputs).items()}
        return decode_record(RunRecord, pairs(run_row)), states, outputs

    async def apply_decision(
        self,
        changes: Sequence[TaskChange],
        settled: Sequence[str],
        run_change: tuple[str, int, dict[str, Any]] | None,
        events: Sequence[tuple[str, str, str, dict[str, Any]]],
    ) -> tuple[list[str], RunRecord | None]:
        args: list[Any] = [len(changes)]
        for change in changes:
            fields = encode_values(TaskRecord, change.values)
            args += [change.task_id, change.expected_version, len(fields), *_flatten(fields)]
        args += [len(settled), *settled]
        if run_change is None:
            args += ["", 0, 0, len(events)]
        else:
            run_id, version, values = run_change
            fields = encode_values(RunRecord, values)
            if "created_at" in values:
                fields["_k"] = run_key(values["created_at"], run_id)
            args += [run_id, version, len(fields), *_flatten(fields), len(events)]
        for event_run, kind, actor, detail in events:
            args += [event_run, _dumps(kind), _dumps(actor), _dumps(detail or {})]
        won, row = await self._script(lua.APPLY_DECISION, args)
        return list(won), decode_record(RunRecord, pairs(row)) if row else None

    async def get_task_states(self, run_id: str) -> list[TaskRecord]:
        async with self._io():
            ids = await self.client.zrange(self._k("run:", run_id, ":tasks"), 0, -1)
            pipe = self.client.pipeline(transaction=False)
            for task_id in ids:
                pipe.hmget(self._k("task:", task_id), LIGHT_FIELDS)
            rows = await pipe.execute()
        states = []
        for row in rows:
            if row[0] is None:
                continue  # deleted between the two reads
            fields = dict(zip(LIGHT_FIELDS, row, strict=True))
            states.append(decode_record(TaskRecord, {**fields, "spec": "{}", "depends_on": "[]"}))
        return states

    async def task_outputs(self, run_id: str) -> dict[str, Any]:
        async with self._io():
            ids = await self.client.zrange(self._k("run:", run_id, ":tasks"), 0, -1)
            pipe = self.client.pipeline(transaction=False)
            for task_id in ids:
                pipe.hget(self._k("task:", task_id), "output")
            outputs = await pipe.execute()
        decoded = {
            task_id: json.loads(raw) for task_id, raw in zip(ids, outputs, strict=True) if raw
        }
        return {task_id: value for task_id, value in decoded.items() if value is not None}

    async def get_children(self, parent_id: str) -> list[TaskRecord]:
        async with self._io():
            ids = await self.client.zrange(self._k("children:", parent_id), 0, -1)
        rows = await self._hashes([self._k("task:", task_id) for task_id in ids])
        return [decode_record(TaskRecord, row) for row in rows if row]

    async def expand_task(self, change: TaskChange, children: Sequence[TaskRecord]) -> bool:
        fields = encode_values(TaskRecord, change.values)
        args: list[Any] = [
            change.task_id,
            change.expected_version,
            len(fields),
            *_flatten(fields),
        ]
        for child in children:
            args += _task_fields(child)
        won = int(await self._script(lua.EXPAND_TASK, args))
        if won < 0:
            raise Conflict(f"a child of task {change.task_id!r} exists already")
        return won == 1

    async def delete_tasks(self, task_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        # Batches keep each script short, so other clients are not held up for long.
        for start in range(0, len(ids), 500):
            await self._script(lua.DELETE_TASKS, ids[start : start + 500])

    async def overdue_run_ids(self, now: datetime, limit: int = 100) -> list[str]:
        async with self._io():
            return list(
                await self.client.zrangebyscore(
                    self._k("runs:deadline"), "-inf", f"({to_micros(now)}", 0, limit
                )
            )

    async def get_task(self, task_id: str) -> TaskRecord:
        async with self._io():
            fields = await self.client.hgetall(self._k("task:", task_id))
        if not fields:
            raise NotFound(f"no task {task_id!r}")
        return decode_record(TaskRecord, fields)

    async def update_tasks(self, changes: Sequence[TaskChange]) -> list[str]:
        if not changes:
            return []
        args: list[Any] = []
        for change in changes:
            fields = encode_values(TaskRecord, change.values)
            args += [change.task_id, change.expected_version, len(fields), *_flatten(fields)]
        return list(await self._script(lua.UPDATE_TASKS, args))

    # -- dispatch -------------------------------------------------------------------------
    async def due_tasks(
        self, now: datetime, redeliver_before: datetime, limit: int
    ) -> list[TaskRecord]:
        now_us, before_us = to_micros(now), to_micros(redeliver_before)
        ids: list[str] = []
        async with self._io():
            # Highest priority first; inside one priority the longest waiting first.
            for priority in await self.client.zrevrange(self._k("prios"), 0, -1):
                if len(ids) >= limit:
                    break
                ids += await self.client.zrangebyscore(
                    self._k("due:", priority), "-inf", now_us, 0, limit - len(ids)
                )
            ids += await self.client.zrangebyscore(
                self._k("redeliver"), "-inf", f"({before_us}", 0, limit
            )
        rows = await self._hashes([self._k("task:", task_id) for task_id in dict.fromkeys(ids)])
        due: list[TaskRecord] = []
        for row in rows:
            if not row:
                continue
            task = decode_record(TaskRecord, row)
            # The indexes were read without a lock: check the row itself once more.
            if task.status != "queued" or task.available_at is None or task.available_at > now:
                continue
            pub = task.published_at
            if pub is None or pub < task.available_at or pub < redeliver_before:
                due.append(task)
        due.sort(key=lambda task: (-task.priority, task.available_at or now))
        return due[:limit]

    async def mark_published(self, task_ids: Sequence[str], at: datetime) -> None:
        if task_ids:
            stamp = encode_value(TaskRecord, "published_at", at)
            await self._script(lua.MARK_PUBLISHED, [stamp, *task_ids])

    async def claim(
        self, task_ids: Sequence[str], worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        if not task_ids:
            return []
        args: list[Any] = [_dumps(worker_id), round(lease_seconds * 1_000_000)]
        for task_id in dict.fromkeys(task_ids):
            args += [task_id, uuid.uuid4().hex]
        return self._claimed(await self._script(lua.CLAIM, args), worker_id)

    async def claim_next(
        self, queue: str, limit: int, worker_id: str, lease_seconds: float
    ) -> list[tuple[TaskRecord, AttemptRecord]]:
        if limit <= 0:
            return []
        args: list[Any] = [_dumps(queue), _dumps(worker_id), round(lease_seconds * 1_000_000)]
        args += [uuid.uuid4().hex for _ in range(limit)]
        return self._claimed(await self._script(lua.CLAIM_NEXT, args), worker_id)

    async def live_attempts(self, attempt_ids: Sequence[str]) -> list[str]:
        if not attempt_ids:
            return []
        return list(await self._script(lua.LIVE_ATTEMPTS, list(dict.fromkeys(attempt_ids))))

    @staticmethod
    def _claimed(reply: list[Any], worker_id: str) -> list[tuple[TaskRecord, AttemptRecord]]:
        """Records from a claim script's reply: {now, deadline, task row, ...}."""
        started, deadline = from_micros(reply[0]), from_micros(reply[1])
        tasks = [decode_record(TaskRecord, pairs(flat)) for flat in reply[2:]]
        return claimed_pairs(tasks, worker_id, started, deadline)

    async def finish_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[str]:
        if not outcomes:
            return []
        args: list[Any] = []
        for out in outcomes:
            args += [
                out.attempt_id,
                out.task_id,
                _dumps(out.attempt_status),
                _dumps(out.task_status),
                _dumps(out.output),
                _dumps(out.error),
                encode_value(TaskRecord, "available_at", out.retry_at),
            ]
        return list(await self._script(lua.FINISH_ATTEMPTS, args))

    async def finish_and_claim(
        self,
        outcomes: Sequence[AttemptOutcome],
        queue: str,
        limit: int,
        worker_id: str,
        lease_seconds: float,
    ) -> tuple[list[str], list[tuple[TaskRecord, AttemptRecord]]]:
        # Two scripts, each atomic. If the claim fails after the report went through, the
        # worker reports again: those attempts are no longer running, so nothing changes.
        accepted = await self.finish_attempts(outcomes)
        return accepted, await self.claim_next(queue, limit, worker_id, lease_seconds)

    async def renew_leases(self, attempt_ids: Sequence[str], lease_seconds: float) -> list[str]:
        if not attempt_ids:
            return []
        args = [round(lease_seconds * 1_000_000), *dict.fromkeys(attempt_ids)]
        return list(await self._script(lua.RENEW_LEASES, args))

    async def expire_leases(self, delivery_limit: int, limit: int = 500) -> list[TaskRecord]:
        rows = await self._script(lua.EXPIRE_LEASES, [delivery_limit, limit])
        return [decode_record(TaskRecord, pairs(flat)) for flat in rows]

    async def get_attempts(self, run_id: str) -> list[AttemptRecord]:
        async with self._io():
            ids = await self.client.zrange(self._k("run:", run_id, ":attempts"), 0, -1)
        rows = await self._hashes([self._k("attempt:", attempt_id) for attempt_id in ids])
        attempts = [decode_record(AttemptRecord, row) for row in rows if row]
        attempts.sort(key=lambda a: (a.started_at, a.number))
        return attempts

    async def mark_settled(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            await self._script(lua.MARK_SETTLED, list(task_ids))

    async def unsettled_run_ids(self, limit: int = 100) -> list[str]:
        async with self._io():
            return list(await self.client.zrange(self._k("unsettled"), 0, limit - 1))

    # -- logs and events ------------------------------------------------------------------
    async def append_logs(self, logs: Sequence[NewLog]) -> None:
        args: list[Any] = []
        for entry in logs:
            args += [
                entry.run_id,
                entry.task_id,
                _dumps(entry.attempt_id),
                _dumps(entry.stream),
                _dumps(entry.text),
            ]
        if args:
            await self._script(lua.APPEND_LOGS, args)

    async def read_logs(self, task_id: str, after_id: int = 0, limit: int = 1000) -> list[LogChunk]:
        async with self._io():
            members = await self.client.zrangebyscore(
                self._k("task:", task_id, ":logs"), f"({after_id}", "+inf", 0, limit
            )
        chunks = []
        for member in members:
            body = json.loads(member)
            chunks.append(
                LogChunk(
                    body["id"],
                    task_id,
                    body["attempt_id"],
                    from_micros(body["at"]),
                    body["stream"],
                    body["text"],
                )
            )
        return chunks

    async def add_event(
        self, run_id: str, kind: str, actor: str, detail: dict[str, Any] | None = None
    ) -> None:
        await self._script(
            lua.ADD_EVENT, [run_id, _dumps(kind), _dumps(actor), _dumps(detail or {})]
        )

    async def list_events(self, run_id: str) -> list[EventRecord]:
        async with self._io():
            items = await self.client.lrange(self._k("run:", run_id, ":events"), 0, -1)
        events = []
        for item in items:
            body = json.loads(item)
            events.append(
                EventRecord(
                    body["id"],
                    run_id,
                    from_micros(body["at"]),
                    body["kind"],
                    body["actor"],
                    body["detail"],
                )
            )
        return events

    # -- workers --------------------------------------------------------------------------
    async def upsert_worker(self, worker: WorkerRecord) -> None:
        fields = encode_record(worker)
        started = fields.pop("started_at")
        key = self._k("worker:", worker.id)
        async with self._io():
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping=fields)
            pipe.hsetnx(key, "started_at", started)  # the first start stays
            pipe.sadd(self._k("workers"), worker.id)
            await pipe.execute()

    async def list_workers(self) -> list[WorkerRecord]:
        async with self._io():
            ids = sorted(await self.client.smembers(self._k("workers")))
        rows = await self._hashes([self._k("worker:", worker_id) for worker_id in ids])
        return [decode_record(WorkerRecord, row) for row in rows if row]

    # -- retention ------------------------------------------------------------------------
    async def prune_runs(
        self,
        finished_before: datetime,
        batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        total = 0
        while True:
            removed = int(await self._script(lua.PRUNE_RUNS, [to_micros(finished_before), batch]))
            total += removed
            if on_batch is not None and removed:
                on_batch(removed)
            if removed < batch:
                return total
