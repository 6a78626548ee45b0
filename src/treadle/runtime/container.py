"""The ``container`` kind: run a task in a container through the Docker Engine API.

Works against a Docker daemon or Podman's Docker-compatible service. One attempt runs its ``pre``
containers in order, then the main container, then its ``post`` containers (even when the main
one failed; they see ``TREADLE_MAIN_STATUS``). The paths listed in ``volumes`` are backed by named
volumes that live exactly as long as the attempt, so pre, main and post share files through them.

Output: ``exit_code``, ``stdout``, ``stderr`` (capped), ``result`` (stdout, capped by
``container_result_limit``), ``json`` (the file ``$TREADLE_OUTPUTS`` = /treadle/output.json when
the task writes it, else the last stdout line when it parses) and ``oom_killed``.

Every container and volume carries the labels ``treadle.run``, ``treadle.task``,
``treadle.attempt`` and ``treadle.owner``, so :meth:`ContainerRuntime.cleanup_run` and
:meth:`ContainerRuntime.cleanup_all` can find whatever a crash left behind.

Settings read (from the constructor, overridden by ``AttemptContext.settings``):
``container_host``, ``container_bind_allow`` (host paths bind mounts may come from),
``container_network`` (default network, ``none``), ``container_result_limit``,
``container_stop_grace`` (seconds between SIGTERM and SIGKILL on cancel), ``output_limit``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import hashlib
import io
import json
import math
import os
import re
import tarfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container
from docker.types import Mount as DockerMount
from pydantic import ValidationError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout, RequestException

from treadle.model.container import ContainerStep, Mount
from treadle.runtime.base import OUTPUT_TEXT_LIMIT, AttemptContext, TaskFailed, cap_text
from treadle.runtime.container_engine import (
    LABEL_ATTEMPT,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_TASK,
    Engine,
    engine_error_reason,
    is_gone,
    resolve_host,
)

OUTPUT_DIR = "/treadle"
OUTPUT_FILE = f"{OUTPUT_DIR}/output.json"
OUTPUT_FILE_LIMIT = 1024 * 1024
DEFAULT_STOP_GRACE = 2.0
SIGKILL_EXIT = 128 + 9
STEP_FIELDS = frozenset(ContainerStep.model_fields) | {"name"}
_NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")

T = TypeVar("T")


# --- small helpers -------------------------------------------------------------------------------


async def _to_completion(fn: Callable[[], T]) -> T:
    """Run blocking cleanup in a thread to the end even if the caller is cancelled meanwhile.

    A cancellation that arrives during it is re-raised once it is done, so nothing is lost.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn))
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _setting_list(value: Any) -> list[str]:
    """A list setting given as a list, or as one string separated by commas or colons."""
    if not value:
        return []
    if isinstance(value, str):
        return [part for part in re.split(r"[,:]", value) if part.strip()]
    return [str(part) for part in value]


class _Capture:
    """Keeps the first ``limit`` characters of a stream and its last non-empty line."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0
        self.last_line = ""

    def add(self, text: str) -> None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            self.last_line = lines[-1]
        if self.kept < self.limit:
            piece = text[: self.limit - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)
        self.total += len(text)

    def text(self, limit: int | None = None) -> str:
        kept = "".join(self.parts)
        limit = self.limit if limit is None else limit
        if self.total > len(kept) and len(kept) <= limit:
            return kept + f"\n... [truncated {self.total - len(kept)} characters]"
        return cap_text(kept, limit)


class _LogPump:
    """Reads a container's attach stream in its own thread and hands chunks to the event loop.

    A dedicated thread (not the default executor) because the read lasts as long as the
    container runs, and a long task must not starve other ``to_thread`` users.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._stream: Any = None  # docker's CancellableStream of (stdout, stderr) chunks
        self._thread = threading.Thread(
            target=self._read, name="treadle-container-log", daemon=True
        )

    def attach_blocking(self, engine: Engine, container_id: str) -> None:
        """Open the stream (logs since creation included); call before the container starts."""
        self._stream = engine.stream_api.attach(
            container_id, stdout=True, stderr=True, stream=True, logs=True, demux=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Close the connection (from any thread); the reader then stops."""
        if self._stream is None:
            return
        with contextlib.suppress(Exception):
            self._stream.close()  # shuts the socket down, which ends a blocked read
        with contextlib.suppress(Exception):
            # ...and the response holds the file object over it; close that too, or the
            # socket lingers until garbage collection (a ResourceWarning).
            self._stream._response.close()

    def _put(self, item: tuple[str, bytes] | None) -> None:
        # The loop may be closed already if the worker shut down mid-stream.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _read(self) -> None:
        try:
            for out, err in self._stream:
                if out:
                    self._put(("stdout", out))
                if err:
                    self._put(("stderr", err))
        except Exception as exc:  # the engine closes the stream when the container is removed
            self._put(("error", str(exc).encode()))
        finally:
            self.close()
            self._put(None)


# --- what one container produced -----------------------------------------------------------------


@dataclass(slots=True)
class StepResult:
    """The outcome of one container (pre, main or post)."""

    role: str
    name: str
    exit_code: int
    stdout: _Capture
    stderr: _Capture
    oom_killed: bool = False
    json: Any = None
    memory: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.oom_killed

    def output(self, result_limit: int) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout.text(),
            "stderr": self.stderr.text(),
            "result": self.stdout.text(result_limit),
            "json": self.json,
            "oom_killed": self.oom_killed,
        }

    def failure(self, output: Mapping[str, Any]) -> TaskFailed:
        label = "container" if self.role == "main" else f"{self.role} step {self.name!r}"
        if self.oom_killed:
            return TaskFailed(
                f"{label} exceeded its memory limit ({self.memory}) and was killed "
                f"(out of memory, exit code {self.exit_code})",
                output=output,
                exit_code=self.exit_code,
                error_type="OutOfMemory",
            )
        tail = self.stderr.last_line or self.stdout.last_line
        return TaskFailed(
            f"{label} exited with code {self.exit_code}" + (f": {tail}" if tail else ""),
            output=output,
            exit_code=self.exit_code,
            error_type="ExitCode",
        )


@dataclass
class _Attempt:
    """Everything one attempt creates on the engine, and how to run its containers."""

    engine: Engine
    ctx: AttemptContext
    settings: Mapping[str, Any]
    owner: str
    volumes: dict[str, str] = field(default_factory=dict)  # container path -> volume name
    created_volumes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        key = f"{self.ctx.run_id}\0{self.ctx.task_id}\0{self.ctx.attempt_id}"
        self.digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.output_limit = int(self.settings.get("output_limit") or OUTPUT_TEXT_LIMIT)
        self.result_limit = int(self.settings.get("container_result_limit") or self.output_limit)
        self.grace = float(self.settings.get("container_stop_grace", DEFAULT_STOP_GRACE))
        self.loop = asyncio.get_running_loop()

    def labels(self, role: str | None = None) -> dict[str, str]:
        labels = {
            LABEL_RUN: self.ctx.run_id,
            LABEL_TASK: self.ctx.task_id,
            LABEL_ATTEMPT: self.ctx.attempt_id,
            LABEL_OWNER: self.owner,
        }
        if role:
            labels[LABEL_ROLE] = role
        return labels

    def log(self, text: str) -> None:
        self.ctx.log("stderr", f"treadle: {text}\n")

    def log_from_thread(self, text: str) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.ctx.log, "stderr", f"treadle: {text}")

    # --- volumes --------------------------------------------------------------------------

    async def create_volume(self, name: str, user: str | None = None) -> None:
        labels = self.labels()

        def create() -> None:
            client = self.engine.client
            match = _NUMERIC_USER.match(user or "")
            if match:
                # Let a non-root task write its volume: Podman's local driver chowns on request.
                uid, gid = match.group(1), match.group(2) or match.group(1)
                try:
                    client.volumes.create(
                        name=name, labels=labels, driver_opts={"o": f"uid={uid},gid={gid}"}
                    )
                    return
                except APIError:
                    pass  # Docker's local driver wants a device with "o"; fall back to a plain one
            client.volumes.create(name=name, labels=labels)

        self.created_volumes.append(name)
        try:
            await _to_completion(create)  # see run_step: never abandon a create call
        except APIError as exc:
            raise TaskFailed(f"could not create volume {name}: {engine_error_reason(exc)}") from exc

    async def create_shared_volumes(self, paths: list[str]) -> None:
        for index, path in enumerate(paths):
            name = f"treadle-{self.digest}-{index}"
            await self.create_volume(name)
            self.volumes[path] = name

    async def remove_volumes(self) -> None:
        """Remove this attempt's volumes; a failure is logged, never raised over the outcome
        (``cleanup_run`` finds the leftover by its labels)."""
        names = list(self.created_volumes)
        if not names:
            return

        def remove() -> None:
            for name in names:
                try:
                    self.engine.client.volumes.get(name).remove(force=True)
                except (DockerException, RequestException) as exc:
                    if not is_gone(exc):
                        self.log_from_thread(
                            f"could not remove volume {name}: {engine_error_reason(exc)}\n"
                        )

        await _to_completion(remove)

    # --- one container --------------------------------------------------------------------

    def _mounts(self, mounts: list[Mount]) -> list[DockerMount]:
        allowed = [
            os.path.realpath(p) for p in _setting_list(self.settings.get("container_bind_allow"))
        ]
        result = []
        for mount in mounts:
            if mount.type == "tmpfs":
                result.append(
                    DockerMount(mount.target, None, type="tmpfs", read_only=mount.readonly)
                )
                continue
            source = os.path.realpath(str(mount.source))
            if not any(
                source == root or source.startswith(root.rstrip("/") + "/") for root in allowed
            ):
                where = ", ".join(allowed) if allowed else "none are configured"
                raise TaskFailed(
                    f"bind mount of {mount.source!r} is not allowed: host paths must be under the "
                    f"worker's container_bind_allow list ({where})",
                    retryable=False,
                    error_type="MountNotAllowed",
                )
            result.append(DockerMount(mount.target, source, type="bind", read_only=mount.readonly))
        return result

    def create_options(
        self, step: ContainerStep, role: str, env: dict[str, str], output_volume: str | None
    ) -> dict[str, Any]:
        """The keyword arguments of ``containers.create`` for ``step``."""
        options: dict[str, Any] = {
            "image": step.image,
            "labels": self.labels(role),
            "environment": env,
            "network_mode": step.network or self.settings.get("container_network") or "none",
            "detach": True,
            "tty": False,
            "stdin_open": False,
        }
        if step.run is not None:
            options["entrypoint"] = step.entrypoint or ["sh", "-c"]
            options["command"] = [step.run]
        else:
            if step.entrypoint is not None:
                options["entrypoint"] = step.entrypoint
            if step.cmd is not None:
                options["command"] = list(step.cmd)
        if step.workdir:
            options["working_dir"] = step.workdir
        if step.user:
            options["user"] = step.user
        if step.limits is not None:
            if step.limits.cpus is not None:
                options["nano_cpus"] = int(step.limits.cpus * 1e9)
            if step.limits.memory is not None:
                # Same swap ceiling: otherwise the task swaps instead of hitting its limit.
                options["mem_limit"] = step.limits.memory
                options["memswap_limit"] = step.limits.memory
            if step.limits.pids is not None:
                options["pids_limit"] = step.limits.pids
        binds = {name: {"bind": path, "mode": "rw"} for path, name in self.volumes.items()}
        if output_volume:
            binds[output_volume] = {"bind": OUTPUT_DIR, "mode": "rw"}
        if binds:
            options["volumes"] = binds
        if step.mounts:
            options["mounts"] = self._mounts(step.mounts)
        return options

    def environment(
        self, step: ContainerStep, role: str, extra: Mapping[str, str]
    ) -> dict[str, str]:
        env = {
            "TREADLE_RUN_ID": self.ctx.run_id,
            "TREADLE_TASK_ID": self.ctx.task_id,
            "TREADLE_TASK_NAME": self.ctx.task_name,
            "TREADLE_ATTEMPT_ID": self.ctx.attempt_id,
            "TREADLE_ATTEMPT": str(self.ctx.attempt_number),
        }
        env.update(self.ctx.env)
        env.update(step.env)
        env.update(extra)
        if role == "main":
            env["TREADLE_OUTPUTS"] = OUTPUT_FILE
        return env

    async def run_step(
        self, step: ContainerStep, role: str, name: str, extra_env: Mapping[str, str]
    ) -> StepResult:
        """Run one container to its end; always remove it, also when cancelled."""
        auth = step.registry.model_dump() if step.registry else None
        await asyncio.to_thread(
            self.engine.ensure_image_blocking, step.image, step.pull, auth, self.log_from_thread
        )
        output_volume = None
        if role == "main":
            output_volume = f"treadle-{self.digest}-out"
            await self.create_volume(output_volume, step.user)
        options = self.create_options(
            step, role, self.environment(step, role, extra_env), output_volume
        )
        created: list[Container] = []

        def create() -> Container:
            container: Container = self.engine.client.containers.create(**options)
            created.append(container)
            return container

        grace = 0.0
        try:
            try:
                # Not abandoned on cancel: a container created after we stopped looking would
                # be left behind, so the cancel waits for the call and then removes it.
                container = await _to_completion(create)
            except APIError as exc:
                raise TaskFailed(
                    f"could not create the {role} container: {engine_error_reason(exc)}",
                    retryable=False,
                    error_type="ContainerCreateFailed",
                ) from exc
            return await self._drive(container, step, role, name)
        except asyncio.CancelledError:
            grace = self.grace  # a kill or timeout: let the task handle SIGTERM first
            raise
        finally:
            for container in created:
                await _to_completion(functools.partial(_stop_and_remove, container, grace))

    async def _drive(
        self, container: Container, step: ContainerStep, role: str, name: str
    ) -> StepResult:
        pump = _LogPump()
        try:
            # Attach before start so not a byte of output is missed, however quick the
            # container; completed even on cancel so the connection is closed below.
            await _to_completion(lambda: pump.attach_blocking(self.engine, container.id))
            pump.start()
            return await self._follow(container, step, role, name, pump)
        finally:
            pump.close()

    async def _follow(
        self, container: Container, step: ContainerStep, role: str, name: str, pump: _LogPump
    ) -> StepResult:
        try:
            await asyncio.to_thread(container.start)
        except APIError as exc:
            raise TaskFailed(
                f"the {role} container did not start: {engine_error_reason(exc)}",
                exit_code=127 if "not found" in engine_error_reason(exc) else None,
                retryable=False,
                error_type="ContainerStartFailed",
            ) from exc
        out, err = _Capture(max(self.output_limit, self.result_limit)), _Capture(self.output_limit)
        decoders = {
            s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in ("stdout", "stderr")
        }
        while (item := await pump.queue.get()) is not None:
            stream_name, data = item
            if stream_name == "error":
                continue  # the exit status below says what happened
            text = decoders[stream_name].decode(data)
            if text:
                (out if stream_name == "stdout" else err).add(text)
                self.ctx.log(stream_name, text)
        try:
            state = await asyncio.to_thread(_exit_state, container)
        except APIError as exc:
            if not is_gone(exc):
                raise
            # Someone removed it under us: cleanup_all() of a stopping worker, or an operator.
            raise TaskFailed(
                f"the {role} container was removed while it ran", error_type="ContainerRemoved"
            ) from exc
        exit_code = int(state.get("ExitCode", -1))
        memory = step.limits.memory if step.limits else None
        # Podman with runc on cgroup v1 does not always learn of the OOM kill; a SIGKILL we did
        # not send, under a memory limit, is the kernel's OOM killer in practice.
        oom = bool(state.get("OOMKilled")) or (memory is not None and exit_code == SIGKILL_EXIT)
        result = StepResult(role, name, exit_code, out, err, oom_killed=oom, memory=memory)
        if role == "main":
            structured = await asyncio.to_thread(self._read_output_file, container)
            result.json = structured if structured is not None else _parse_json(out.last_line)
        return result

    def _read_output_file(self, container: Container) -> Any:
        try:
            chunks, stat = container.get_archive(OUTPUT_FILE)
        except (NotFound, APIError):
            return None
        if int(stat.get("size", 0)) > OUTPUT_FILE_LIMIT:
            self.log_from_thread(
                f"{OUTPUT_FILE} is larger than {OUTPUT_FILE_LIMIT} bytes; ignored\n"
            )
            return None
        data = b"".join(chunks)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = next((m for m in archive.getmembers() if m.isfile()), None)
            handle = archive.extractfile(member) if member else None
            content = handle.read().decode("utf-8", errors="replace") if handle else ""
        if not content.strip():
            return None
        parsed = _parse_json(content)
        if parsed is None:
            self.log_from_thread(f"{OUTPUT_FILE} does not hold valid JSON; ignored\n")
        return parsed


def _exit_state(container: Container) -> dict[str, Any]:
    """The container's final ``State`` once it has exited, however long that takes."""
    # The output stream has ended, so the process is (nearly always) gone already; inspecting
    # first saves the wait call, which Podman answers only on its next poll, ~0.5 s later.
    container.reload()
    state: dict[str, Any] = container.attrs.get("State") or {}
    while state.get("Running") or state.get("Status") in (
        "created",
        "running",
        "paused",
        "stopping",
    ):
        try:
            container.wait(timeout=60)
        except (ReadTimeout, RequestsConnectionError) as exc:
            # A quiet minute is not a failure; a broken connection is.
            if isinstance(exc, RequestsConnectionError) and "timed out" not in str(exc).lower():
                raise
        container.reload()
        state = container.attrs.get("State") or {}
    return state


def _stop_and_remove(container: Container, grace: float) -> None:
    """Stop (SIGTERM, then SIGKILL after ``grace`` seconds) and remove, with anonymous volumes."""
    if grace > 0:
        with contextlib.suppress(NotFound, APIError):
            container.stop(timeout=math.ceil(grace))
    try:
        container.remove(force=True, v=True)
    except APIError as exc:
        if not is_gone(exc):
            raise


# --- the runtime ---------------------------------------------------------------------------------


def _step(document: Mapping[str, Any], where: str) -> ContainerStep:
    fields = {key: value for key, value in document.items() if key in STEP_FIELDS}
    try:
        return ContainerStep.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or where}: {error['msg']}"
            for error in exc.errors()
        )
        raise TaskFailed(
            f"invalid container spec in {where}: {problems}",
            retryable=False,
            error_type="InvalidSpec",
        ) from exc


def _steps(spec: Mapping[str, Any], key: str) -> list[ContainerStep]:
    items = spec.get(key) or []
    if not isinstance(items, list):
        raise TaskFailed(
            f"`{key}` must be a list of containers", retryable=False, error_type="InvalidSpec"
        )
    return [
        _step(item if isinstance(item, Mapping) else {}, f"{key}[{i}]")
        for i, item in enumerate(items)
    ]


def _volume_paths(spec: Mapping[str, Any]) -> list[str]:
    paths = spec.get("volumes") or []
    if not isinstance(paths, list) or not all(
        isinstance(p, str) and p.startswith("/") for p in paths
    ):
        raise TaskFailed(
            "`volumes` must be a list of absolute container paths",
            retryable=False,
            error_type="InvalidSpec",
        )
    if OUTPUT_DIR in paths:
        raise TaskFailed(
            f"{OUTPUT_DIR} is reserved for the task's output file",
            retryable=False,
            error_type="InvalidSpec",
        )
    return list(dict.fromkeys(paths))


class ContainerRuntime:
    """Runs ``container`` tasks on a Docker-API engine; one instance per worker process."""

    kinds: tuple[str, ...] = ("container",)

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = dict(settings or {})
        # Marks what this process created, so a stopping worker removes its own containers only.
        self.owner = uuid.uuid4().hex[:12]
        self._engines: dict[str, Engine] = {}

    def engine(self, settings: Mapping[str, Any] | None = None) -> Engine:
        host = resolve_host({**self.settings, **(settings or {})})
        if host not in self._engines:
            self._engines[host] = Engine(host)
        return self._engines[host]

    @property
    def host(self) -> str:
        return self.engine().host

    async def available(self) -> str | None:
        """None when the engine answers; otherwise the reason it cannot be used."""
        return await self.engine().ping()

    async def run(self, spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
        """Run pre, main and post containers of one attempt; return the main one's output."""
        settings = {**self.settings, **ctx.settings}
        engine = self.engine(settings)
        reason = await engine.ping()
        if reason is not None:
            raise TaskFailed(
                f"no container runtime reachable at {engine.host}: {reason}",
                retryable=False,
                error_type="ContainerRuntimeUnavailable",
            )
        main = _step(spec, "the task")
        pre, post = _steps(spec, "pre"), _steps(spec, "post")
        attempt = _Attempt(engine, ctx, settings, self.owner)
        try:
            await attempt.create_shared_volumes(_volume_paths(spec))
            return await self._run_all(attempt, main, pre, post)
        except (DockerException, RequestException) as exc:
            # An engine hiccup mid-run (restart, broken connection): a failure worth a retry,
            # not a crash of the runtime.
            raise TaskFailed(
                f"container engine error at {engine.host}: {engine_error_reason(exc)}",
                error_type="ContainerEngineError",
            ) from exc
        finally:
            await attempt.remove_volumes()

    async def _run_all(
        self,
        attempt: _Attempt,
        main: ContainerStep,
        pre: list[ContainerStep],
        post: list[ContainerStep],
    ) -> dict[str, Any]:
        steps: list[dict[str, Any]] = []
        announce = bool(pre or post)
        for index, step in enumerate(pre):
            name = step.name or f"pre[{index}]"
            if announce:
                attempt.log(f"pre step {name!r} ({step.image})")
            result = await attempt.run_step(step, "pre", name, {})
            steps.append({"role": "pre", "name": name, "exit_code": result.exit_code})
            if not result.ok:
                raise result.failure({"steps": steps, **result.output(attempt.result_limit)})
        if announce:
            attempt.log(f"main container ({main.image})")
        failure: TaskFailed | None = None
        output: dict[str, Any] = {}
        try:
            outcome = await attempt.run_step(main, "main", "main", {})
            output = outcome.output(attempt.result_limit)
            if not outcome.ok:
                failure = outcome.failure(output)
        except TaskFailed as exc:
            failure = exc
        status = "failed" if failure else "completed"
        for index, step in enumerate(post):
            name = step.name or f"post[{index}]"
            attempt.log(f"post step {name!r} ({step.image}), main {status}")
            try:
                result = await attempt.run_step(step, "post", name, {"TREADLE_MAIN_STATUS": status})
            except TaskFailed as exc:
                failure = failure or exc
                continue
            steps.append({"role": "post", "name": name, "exit_code": result.exit_code})
            if not result.ok and failure is None:
                failure = result.failure(output)
        if steps:
            output["steps"] = steps
        if failure is not None:
            failure.output = {**failure.output, **output}
            raise failure
        return output

    async def cleanup_run(self, run_id: str) -> tuple[int, int]:
        """Remove every container and volume of ``run_id`` (any worker's); (containers, volumes)."""
        engine = self.engine()
        return await asyncio.to_thread(engine.remove_labelled_blocking, {LABEL_RUN: run_id})

    async def cleanup_all(self) -> tuple[int, int]:
        """Remove every container and volume this runtime created; for a stopping worker."""
        engine = self.engine()
        if await engine.ping() is not None:
            return 0, 0
        return await asyncio.to_thread(engine.remove_labelled_blocking, {LABEL_OWNER: self.owner})

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
