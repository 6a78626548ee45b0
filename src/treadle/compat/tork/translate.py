"""Tork tasks and jobs -> native definitions (pure; no I/O).

Two Tork document shapes are understood:

- a single task, as posted to Tork's ``POST /task`` (``name, image, cmd, entrypoint, run, env,
  queue, volumes, pre, post, retry, timeout``...), and
- a job, as posted to ``POST /jobs`` (``name, description, inputs, tasks: [...]``).

A task with an ``image`` becomes one native ``container`` task (its ``pre``/``post`` containers
and ``volumes`` ride along, as the container kind shares volumes between them). A task without
an image runs its ``run`` script or ``cmd`` argv as a native ``shell`` task. While the server has
no ``container`` kind, an image task becomes a task that fails with "no container runtime
configured" so the client sees a clear error in the task's state rather than a 500.
"""

from __future__ import annotations

import re
from typing import Any

from treadle.errors import DefinitionError
from treadle.model.definition import DEFINITION_NAME_PATTERN
from treadle.model.durations import parse_duration

NO_CONTAINER_HANDLER = "tork.no_container_runtime"

# Queues the Tork coordinator keeps for itself (sic: "hearbeat" is Tork's spelling).
RESERVED_QUEUES = frozenset({"pending", "started", "completed", "error", "hearbeat", "heartbeat"})

_TASK_KEYS = frozenset(
    {
        "name",
        "description",
        "cmd",
        "entrypoint",
        "run",
        "image",
        "env",
        "queue",
        "pre",
        "post",
        "volumes",
        "networks",
        "retry",
        "limits",
        "timeout",
        "var",
        "if",
        "priority",
        "workdir",
        "registry",
        "parallel",
        "each",
        "subjob",
        # Read-only fields a client may echo back from a GET; ignored.
        "id",
        "state",
        "createdAt",
        "scheduledAt",
        "startedAt",
        "completedAt",
        "failedAt",
        "result",
        "error",
        "node",
        "position",
    }
)
_AUX_KEYS = frozenset({"name", "description", "cmd", "entrypoint", "run", "image", "env"})
_JOB_KEYS = frozenset({"name", "description", "tasks", "inputs", "output", "tags", "defaults"})
_UNSUPPORTED = {
    "each": "`each` (fan-out) is not supported by the Tork dialect yet; use a native definition",
    "subjob": "`subjob` is not supported by the Tork dialect yet; use a native subworkflow",
    "registry": "`registry` credentials are not supported by the Tork dialect",
}
_TASK_NAME_BAD = re.compile(r"/")
_DEF_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\- ]")


def looks_like(doc: Any) -> bool:
    """True for a Tork job (tasks carry image/run/cmd) or a single Tork task."""
    if not isinstance(doc, dict):
        return False
    tasks = doc.get("tasks")
    if isinstance(tasks, list):
        return bool(tasks) and all(_looks_like_task(t) for t in tasks)
    return "steps" not in doc and "layers" not in doc and _looks_like_task(doc)


def _looks_like_task(task: Any) -> bool:
    if not isinstance(task, dict) or "kind" in task or "type" in task:
        return False
    return any(k in task for k in ("image", "run", "cmd", "parallel", "each", "subjob"))


def container_kind_available() -> bool:
    """Whether this treadle knows the native ``container`` task kind."""
    from treadle.model.definition import TASK_KINDS

    return "container" in TASK_KINDS


def to_native(doc: Any) -> dict[str, Any]:
    """A Tork job or single task as a native definition document."""
    if not isinstance(doc, dict):
        raise DefinitionError("a Tork document must be a mapping (a task or a job)")
    if "tasks" in doc:
        return job_to_native(doc)
    return task_to_native(doc)


def task_to_native(doc: Any) -> dict[str, Any]:
    """A single Tork task (``POST /task``) as a one-definition run."""
    if not isinstance(doc, dict):
        raise DefinitionError("a Tork task must be a mapping")
    name = str(doc.get("name") or "task")
    native: dict[str, Any] = {"name": definition_name(name), "tasks": _task(doc, "", name)}
    if doc.get("description"):
        native["description"] = str(doc["description"])
    return native


def job_to_native(doc: dict[str, Any]) -> dict[str, Any]:
    """A Tork job (``POST /jobs``) as a definition: tasks run in list order."""
    _check_keys(doc, _JOB_KEYS, "")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DefinitionError("name: a Tork job needs a name")
    raw_tasks = doc.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise DefinitionError("tasks: a Tork job needs at least one task")
    inputs = doc.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise DefinitionError("inputs: must be a mapping of names to values")
    tasks: list[dict[str, Any]] = []
    seen: set[str] = set()
    variables: dict[str, str] = {}
    for index, raw in enumerate(raw_tasks):
        where = f"tasks[{index}]"
        if not isinstance(raw, dict):
            raise DefinitionError(f"{where}: a task must be a mapping")
        if not raw.get("name"):
            raise DefinitionError(f"{where}.name: every task of a job needs a name")
        for native in _task(raw, where, str(raw["name"])):
            if native["name"] in seen:
                raise DefinitionError(f"{where}.name: duplicate task name {native['name']!r}")
            seen.add(native["name"])
            tasks.append(native)
        if raw.get("var"):
            variables[_text(raw["var"], f"{where}.var")] = task_name(str(raw["name"]))
    tasks = [rewrite_expressions(t, variables) for t in tasks]
    native_doc: dict[str, Any] = {
        "name": definition_name(name),
        "tasks": tasks,
        "inputs": {
            str(k): {"type": "string", "default": _text(v, f"inputs.{k}")}
            for k, v in inputs.items()
        },
    }
    if doc.get("description"):
        native_doc["description"] = str(doc["description"])
    return native_doc


def job_variables(doc: dict[str, Any]) -> dict[str, str]:
    """``var`` of each job task -> the native task that holds its result."""
    out: dict[str, str] = {}
    for task in doc.get("tasks") or []:
        if isinstance(task, dict) and task.get("var") and task.get("name"):
            out[str(task["var"])] = task_name(str(task["name"]))
    return out


def definition_name(name: str) -> str:
    """A Tork name made acceptable as a native definition name."""
    cleaned = _DEF_NAME_BAD.sub("-", name.strip())[:200].strip() or "task"
    if not re.match(DEFINITION_NAME_PATTERN, cleaned):
        cleaned = "t-" + cleaned[:198]
    return cleaned


def task_name(name: str) -> str:
    """A Tork task name made acceptable as a native task name."""
    return _TASK_NAME_BAD.sub("-", name.strip())[:200] or "task"


def tork_state(status: str) -> str:
    """Tork's task state for a native task status."""
    return {
        "pending": "PENDING",
        "queued": "SCHEDULED",
        "running": "RUNNING",
        "paused": "PENDING",
        "completed": "COMPLETED",
        "failed": "FAILED",
        "skipped": "SKIPPED",
        "cancelled": "CANCELLED",
    }.get(status, status.upper())


def tork_job_state(status: str) -> str:
    """Tork's job state for a native run status."""
    return {
        "pending": "PENDING",
        "running": "RUNNING",
        "paused": "PENDING",
        "completed": "COMPLETED",
        "failed": "FAILED",
        "cancelled": "CANCELLED",
    }.get(status, status.upper())


# -- expressions ------------------------------------------------------------------------------
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_TASK_REF = re.compile(r"\btasks\.([A-Za-z_][A-Za-z0-9_]*)")
_JOB_REF = re.compile(r"\bjob\.(id|name)\b")
_REWRITTEN_KEYS = ("command", "env", "if", "cmd", "run", "entrypoint", "pre", "post", "args")


def rewrite_expressions(task: dict[str, Any], variables: dict[str, str]) -> dict[str, Any]:
    """Point Tork's ``{{ tasks.VAR }}`` and ``{{ job.id }}`` at treadle's template names.

    Tork keeps a task's result under its ``var``; treadle keeps the output of the task itself,
    whose text result is ``stdout``. ``inputs.X`` means the same in both.
    """

    def expression(match: re.Match[str]) -> str:
        body = _TASK_REF.sub(
            lambda m: (
                f"tasks[{variables[m.group(1)]!r}].output.stdout"
                if m.group(1) in variables
                else m.group(0)
            ),
            match.group(1),
        )
        body = _JOB_REF.sub(lambda m: "run.id" if m.group(1) == "id" else "run.definition", body)
        return "{{" + body + "}}"

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return _EXPRESSION.sub(expression, value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return {k: walk(v) if k in _REWRITTEN_KEYS else v for k, v in task.items()}


# -- one task ---------------------------------------------------------------------------------
def _task(doc: dict[str, Any], where: str, name: str) -> list[dict[str, Any]]:
    """Native tasks for one Tork task: one container task, or a chain of shell tasks."""
    _check_keys(doc, _TASK_KEYS, where)
    for key, message in _UNSUPPORTED.items():
        if doc.get(key) is not None:
            raise DefinitionError(f"{_at(where, key)}: {message}")
    if doc.get("parallel") is not None:
        raise DefinitionError(
            f"{_at(where, 'parallel')}: `parallel` is not supported by the Tork dialect yet; "
            "give the tasks `depends_on` in a native definition"
        )
    common = _common(doc, where)
    native_name = task_name(name)
    if doc.get("image"):
        return [{"name": native_name, **common, **_container(doc, where)}]
    return _shell_chain(doc, where, native_name, common)


def _common(doc: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if doc.get("description"):
        out["description"] = str(doc["description"])
    env = _env(doc.get("env"), _at(where, "env"))
    if env:
        out["env"] = env
    queue = doc.get("queue")
    if queue is not None:
        out["queue"] = _queue(queue, _at(where, "queue"))
    retry = _retry(doc.get("retry"), _at(where, "retry"))
    if retry:
        out["retry"] = retry
    if doc.get("timeout") is not None:
        out["timeout"] = _duration(doc["timeout"], _at(where, "timeout"))
    if doc.get("if") is not None:
        out["if"] = str(doc["if"])
    priority = doc.get("priority")
    if priority is not None:
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
            raise DefinitionError(f"{_at(where, 'priority')}: must be a whole number 0..9")
        out["priority"] = priority
    return out


def _container(doc: dict[str, Any], where: str) -> dict[str, Any]:
    image = _text(doc["image"], _at(where, "image"))
    if not container_kind_available():
        return {
            "kind": "python",
            "handler": NO_CONTAINER_HANDLER,
            "args": {"image": image},
        }
    out: dict[str, Any] = {"kind": "container", "image": image}
    out.update(_command_fields(doc, where))
    volumes = doc.get("volumes")
    if volumes:
        out["volumes"] = _str_list(volumes, _at(where, "volumes"))
    networks = doc.get("networks")
    if networks:
        nets = _str_list(networks, _at(where, "networks"))
        if len(nets) > 1:
            raise DefinitionError(f"{_at(where, 'networks')}: treadle attaches one network")
        out["network"] = nets[0]
    limits = doc.get("limits")
    if limits:
        if not isinstance(limits, dict) or set(limits) - {"cpus", "memory"}:
            raise DefinitionError(f"{_at(where, 'limits')}: give only cpus and memory")
        out["limits"] = _limits(limits, _at(where, "limits"))
    if doc.get("workdir"):
        out["workdir"] = str(doc["workdir"])
    for side in ("pre", "post"):
        steps = _aux_list(doc.get(side), _at(where, side))
        if steps:
            out[side] = [_aux_container(s, f"{_at(where, side)}[{i}]") for i, s in enumerate(steps)]
    return out


def _limits(limits: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if limits.get("cpus") is not None:
        try:
            out["cpus"] = float(limits["cpus"])
        except (TypeError, ValueError):
            raise DefinitionError(f"{where}.cpus: not a number: {limits['cpus']!r}") from None
    if limits.get("memory") is not None:
        out["memory"] = str(limits["memory"]).lower()
    return out


def _aux_container(step: dict[str, Any], where: str) -> dict[str, Any]:
    _check_keys(step, _AUX_KEYS, where)
    if not step.get("image"):
        raise DefinitionError(f"{where}.image: a pre/post task of a container task needs an image")
    out: dict[str, Any] = {"image": _text(step["image"], f"{where}.image")}
    if step.get("name"):
        out["name"] = str(step["name"])
    out.update(_command_fields(step, where))
    env = _env(step.get("env"), f"{where}.env")
    if env:
        out["env"] = env
    return out


def _command_fields(doc: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if doc.get("run") is not None and doc.get("cmd") is not None:
        raise DefinitionError(f"{where or 'task'}: give either `cmd` or `run`, not both")
    if doc.get("cmd") is not None:
        out["cmd"] = _str_list(doc["cmd"], _at(where, "cmd"))
    if doc.get("entrypoint") is not None:
        out["entrypoint"] = _str_list(doc["entrypoint"], _at(where, "entrypoint"))
    if doc.get("run") is not None:
        out["run"] = _text(doc["run"], _at(where, "run"))
    return out


def _shell_chain(
    doc: dict[str, Any], where: str, name: str, common: dict[str, Any]
) -> list[dict[str, Any]]:
    for key in ("volumes", "networks", "limits", "workdir"):
        if doc.get(key):
            raise DefinitionError(
                f"{_at(where, key)}: `{key}` needs an image (a container task); "
                "tasks without an image run as shell commands"
            )
    main = {"name": name, **common, **_shell(doc, where)}
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for side, target in (("pre", before), ("post", after)):
        for index, step in enumerate(_aux_list(doc.get(side), _at(where, side))):
            step_where = f"{_at(where, side)}[{index}]"
            _check_keys(step, _AUX_KEYS, step_where)
            if step.get("image"):
                raise DefinitionError(
                    f"{step_where}.image: the main task has no image, so its pre/post tasks "
                    "run as shell commands too; give the main task an image"
                )
            label = step.get("name") or side
            native = {
                "name": task_name(f"{name} ({side} {index + 1}: {label})"),
                "kind": "shell",
                **_shell(step, step_where),
            }
            env = {**common.get("env", {}), **_env(step.get("env"), f"{step_where}.env")}
            if env:
                native["env"] = env
            target.append(native)
    return [*before, main, *after]


def _shell(doc: dict[str, Any], where: str) -> dict[str, Any]:
    fields = _command_fields(doc, where)
    if "run" in fields:
        if "entrypoint" in fields:
            raise DefinitionError(f"{_at(where, 'entrypoint')}: not used with `run`")
        return {"kind": "shell", "command": fields["run"], "shell": True}
    argv = [*fields.get("entrypoint", []), *fields.get("cmd", [])]
    if not argv:
        raise DefinitionError(
            f"{where or 'task'}: a task needs an `image`, a `run` script or a `cmd`"
        )
    return {"kind": "shell", "command": argv}


# -- small field parsers ----------------------------------------------------------------------
def _retry(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: must be a mapping with `limit`")
    unknown = set(value) - {"limit", "initialDelay", "scalingFactor", "attempts"}
    if unknown:
        raise DefinitionError(f"{where}: unknown field(s) {sorted(unknown)}")
    if value.get("attempts"):
        raise DefinitionError(f"{where}.attempts: may not be set; the server counts attempts")
    limit = value.get("limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise DefinitionError(f"{where}.limit: must be a whole number")
    if limit > 10:
        raise DefinitionError(f"{where}.limit: must be at most 10")
    if limit <= 0:
        return None
    retry: dict[str, Any] = {"max_attempts": limit + 1, "backoff": "exponential"}
    delay = value.get("initialDelay")
    initial = 1.0 if delay is None else _duration(delay, f"{where}.initialDelay")
    retry["initial"] = min(initial, 300.0)
    factor = value.get("scalingFactor")
    if factor is not None and (not isinstance(factor, int | float) or factor > 5):
        raise DefinitionError(f"{where}.scalingFactor: must be a number up to 5")
    return retry


def _queue(value: Any, where: str) -> str:
    queue = _text(value, where)
    if queue in RESERVED_QUEUES or queue.startswith("x-"):
        raise DefinitionError(f"{where}: {queue!r} is a reserved queue name")
    if not re.match(r"^[A-Za-z0-9_.\-]{1,100}$", queue):
        raise DefinitionError(f"{where}: {queue!r} is not a valid queue name")
    return queue


def _duration(value: Any, where: str) -> float:
    try:
        return parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"{where}: {exc}") from None


def _env(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: must be a mapping of names to values")
    return {str(k): _text(v, f"{where}.{k}") for k, v in value.items()}


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise DefinitionError(f"{where}: must be a string, got {type(value).__name__}")


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise DefinitionError(f"{where}: must be a list of strings")
    return [_text(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _aux_list(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise DefinitionError(f"{where}: must be a list of tasks")
    return value


def _check_keys(doc: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        raise DefinitionError(f"{where or 'document'}: unknown field(s) {', '.join(unknown)}")


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
