"""A node: one process's store, broker and the roles it runs (coordinator, worker).

``treadle standalone`` runs every role in one node; ``treadle api|coordinator|worker`` run one
each. The API's lifespan starts and stops the node it serves.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from treadle.broker.factory import open_broker
from treadle.config import Settings
from treadle.engine.coordinator import Coordinator, CoordinatorSettings
from treadle.engine.service import EngineService
from treadle.errors import ServiceUnavailable, TreadleError
from treadle.observability import tracing
from treadle.secrets.attempt import store_source
from treadle.secrets.vault import Vault, open_vault
from treadle.store.factory import open_store
from treadle.worker.handlers import import_modules
from treadle.worker.worker import Worker, WorkerSettings

log = logging.getLogger(__name__)

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")


class _GcTuning:
    """How many running nodes set the collector's thresholds, and what the first of them
    found: the process gets those back when the last of them stops, in whatever order."""

    def __init__(self) -> None:
        self.nodes = 0
        self.found = gc.get_threshold()

    def take(self, wanted: Sequence[int]) -> None:
        if self.nodes == 0:
            self.found = gc.get_threshold()
        self.nodes += 1
        gc.set_threshold(*wanted)

    def give_back(self) -> None:
        self.nodes -= 1
        if self.nodes == 0:
            gc.set_threshold(*self.found)


_GC_TUNING = _GcTuning()


class Node:
    """Owns the connections and roles of one treadle process."""

    def __init__(self, settings: Settings, roles: Sequence[str]) -> None:
        self.settings = settings
        self.roles = set(roles)
        self.service: EngineService | None = None
        self.vault: Vault | None = None
        self._advancer: Coordinator | None = None  # a worker-only node's own coordinator
        self._gc_tuned = False

    def _tune_gc(self) -> None:
        """Collect young objects less often than Python's default: a task's records live from
        its claim to its report, long enough to survive several collections at 700
        allocations, so each one was traced again and again, and promoted objects brought on
        full collections of the whole heap (14% of an embedded 100,000-task run's time)."""
        wanted = self.settings.gc_threshold
        if wanted and not self._gc_tuned:
            self._gc_tuned = True
            _GC_TUNING.take(wanted)

    def _untune_gc(self) -> None:
        """Give the process its thresholds back once the last node that set them stops."""
        if self._gc_tuned:
            self._gc_tuned = False
            _GC_TUNING.give_back()

    async def start(self) -> EngineService:
        import_modules(self.settings.imports)
        # Before connecting: a malformed secret_key fails at start, in one line.
        self.vault = open_vault(self.settings.secret_key, self.settings.db)
        tracing.configure(self.settings.tracing)
        store = open_store(self.settings.db)
        broker = open_broker(self.settings.broker)
        try:
            # Ping before migrating: an unreachable store then fails with a line naming it.
            await store.ping()
            if self.settings.automigrate:
                await store.migrate()
            await broker.connect()
        except TreadleError:
            await store.close()
            raise
        except Exception as exc:
            await store.close()
            raise ServiceUnavailable(f"cannot start: {exc}") from exc
        self._tune_gc()
        service = EngineService(store, broker, self.settings.queue_rates)
        self.service = service
        coordinator_settings = CoordinatorSettings(
            delivery_limit=self.settings.delivery_limit, queue_rates=self.settings.queue_rates
        )
        if "coordinator" in self.roles:
            service.coordinator = Coordinator(store, broker, coordinator_settings)
            service.coordinator.extensions.set_start_run(service.start_run)
            await service.coordinator.start()
        if "worker" in self.roles:
            runtime_settings = {
                "output_limit": self.settings.output_limit,
                "container_host": self.settings.container_host,
                "container_bind_allow": self.settings.container_bind_allow,
                "container_network": self.settings.container_network,
                "container_result_limit": self.settings.container_result_limit,
                "container_stop_grace": self.settings.container_stop_grace,
                "http_allow_networks": self.settings.http_allow_networks,
                "http_deny_private": self.settings.http_deny_private,
            }
            capabilities = {"kinds": _kinds(), **await _container_capability(runtime_settings)}
            worker = Worker(
                store,
                broker,
                WorkerSettings(
                    queues=self.settings.queues,
                    lease_seconds=self.settings.lease_seconds,
                    heartbeat_seconds=self.settings.heartbeat_seconds,
                    grace_seconds=self.settings.grace_seconds,
                    runtime_settings=runtime_settings,
                ),
                capabilities=capabilities,
                secret_source=store_source(store, self.vault),
            )
            if self.settings.worker_advances_runs:
                # Without loops: it only advances the runs this worker reports (worker.py).
                advancer = service.coordinator
                if advancer is None:
                    advancer = self._advancer = Coordinator(store, broker, coordinator_settings)
                    advancer.kill_hooks.append(worker.cancel_tasks)
                advancer.local_worker = worker
                worker.advancer = advancer
            await worker.start()
            service.workers.append(worker)
            if service.coordinator is not None:
                service.coordinator.kill_hooks.append(worker.cancel_tasks)
        for folder in self.settings.definitions:
            await load_definitions_dir(service, Path(folder))
        return service

    async def stop(self) -> None:
        self._untune_gc()
        service = self.service
        if service is None:
            return
        for worker in service.workers:
            await worker.stop()  # within settings.grace_seconds
        if self._advancer is not None:
            await self._advancer.stop()
            self._advancer = None
        if service.coordinator is not None:
            await service.coordinator.stop()
        await service.broker.close()
        await service.store.close()
        tracing.shutdown()
        self.service = None


async def _container_capability(settings: dict[str, Any]) -> dict[str, Any]:
    """Register the container runtime when the docker SDK is installed; report the engine."""
    try:
        from treadle.runtime.container import ContainerRuntime
    except ImportError as exc:
        reason = f"the docker SDK is not installed ({exc}); pip install 'treadle[containers]'"
        _register_missing_container_runtime(reason)
        return {"containers": False, "container_reason": reason}
    from treadle.runtime.registry import register_runtime

    runtime = ContainerRuntime({k: v for k, v in settings.items() if v is not None})
    register_runtime("container", runtime.run)
    unavailable = await runtime.available()
    return {
        "containers": unavailable is None,
        "container_host": runtime.host,
        **({"container_reason": unavailable} if unavailable else {}),
    }


def _register_missing_container_runtime(reason: str) -> None:
    from treadle.runtime.base import AttemptContext, TaskFailed
    from treadle.runtime.registry import register_runtime

    async def refuse(spec: Any, ctx: AttemptContext) -> Any:
        raise TaskFailed(
            f"no container runtime configured: {reason}",
            retryable=False,
            error_type="ContainerRuntimeUnavailable",
        )

    register_runtime("container", refuse)


def _kinds() -> list[str]:
    from treadle.runtime.registry import known_kinds

    return known_kinds()


async def load_definitions_dir(service: EngineService, folder: Path) -> list[tuple[str, Any]]:
    """Load every definition file of ``folder``; a bad file is reported and skipped."""
    from treadle.api.definitions_io import import_definition_text

    results: list[tuple[str, Any]] = []
    if not folder.is_dir():
        log.error("definitions folder %s does not exist", folder)
        return results
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in DEFINITION_SUFFIXES:
            continue
        try:
            record = await import_definition_text(service, path.read_text(), None, None)
            results.append((path.name, record))
            log.info("loaded definition %s v%s from %s", record.name, record.version, path)
        except TreadleError as exc:
            log.error("skipped %s: %s", path, exc.message)
            results.append((path.name, exc))
    return results
