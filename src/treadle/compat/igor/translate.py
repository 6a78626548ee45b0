"""Igor jobs (``{"name", "layers": [{"name", "priority", "paused_at", "tasks": [...]}]}``).

A job becomes a native definition with ``layers``; each Igor task becomes a ``python`` task
calling the handler registered under the task's ``type``, in its layer, with no dependencies
(tasks of a layer run in parallel; layers order the work). Igor's ``args`` are bytes, sent as
base64 on the wire: the handler receives them as that base64 text.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from treadle.errors import DefinitionError

_JOB_KEYS = {"name", "layers"}
_LAYER_KEYS = {"name", "priority", "paused_at", "tasks"}
TASK_KEYS = {"type", "args", "name", "paused_at", "retries"}
MAX_TEXT = 500
MAX_ARGS = 10_000


def looks_like(doc: Any) -> bool:
    """An Igor job: ``layers`` whose tasks carry ``type`` (and no native ``tasks`` list)."""
    if not isinstance(doc, dict) or "tasks" in doc or not isinstance(doc.get("layers"), list):
        return False
    layers = doc["layers"]
    return bool(layers) and all(
        isinstance(layer, dict)
        and set(layer) <= _LAYER_KEYS | {"Tasks"}
        and all(isinstance(t, dict) and "type" in t for t in _layer_tasks(layer))
        for layer in layers
    )


def _layer_tasks(layer: dict[str, Any]) -> list[Any]:
    # Upstream decodes the untagged Go field case-insensitively: `tasks` and `Tasks` both work.
    tasks = layer.get("tasks", layer.get("Tasks")) or []
    if not isinstance(tasks, list):
        raise DefinitionError(f"layer {layer.get('name')!r}: tasks must be a list")
    return tasks


def _unknown(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise DefinitionError(f"{where}: unknown field(s) {', '.join(map(repr, extra))}")


def decode_args(value: Any, where: str) -> str:
    """Check base64 ``args`` (Go ``[]byte``) and return them as the text sent."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise DefinitionError(f"{where}: args must be base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DefinitionError(f"{where}: args are not valid base64") from None
    if len(raw) > MAX_ARGS:
        raise DefinitionError(f"{where}: args are longer than {MAX_ARGS} bytes")
    return value


def task_to_native(task: Any, name: str, layer: str, where: str) -> dict[str, Any]:
    """One Igor TaskSpec as a native ``python`` task named ``name`` in ``layer``."""
    if not isinstance(task, dict):
        raise DefinitionError(f"{where} must be an object")
    _unknown(task, TASK_KEYS | {"layer_id"}, where)
    kind = task.get("type")
    if not isinstance(kind, str) or not kind:
        raise DefinitionError(f"{where}: task type is required")
    if len(kind) > MAX_TEXT or len(str(task.get("name") or "")) > MAX_TEXT:
        raise DefinitionError(f"{where}: type and name are at most {MAX_TEXT} characters")
    retries = task.get("retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise DefinitionError(f"{where}: retries must be a whole number >= 0")
    native: dict[str, Any] = {
        "name": name,
        "description": str(task.get("name") or ""),
        "kind": "python",
        "handler": kind,
        "args": {"args": decode_args(task.get("args"), where)},
        "depends_on": [],
        "layer": layer,
        "retry": {"max_attempts": retries + 1},
    }
    if (task.get("paused_at") or 0) > 0:
        native["paused"] = True
    return native


def native_name(task: dict[str, Any], taken: set[str], fallback: str) -> str:
    """Igor names need not be unique, given or slash-free; native ones must: adapt them.

    The Igor name itself is kept (a task's ``description``, the run's labels for layers).
    """
    base = str(task.get("name") or "").replace("/", "_").strip()[:190] or fallback
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}#{n}"
    taken.add(name)
    return name


def job_name(doc: dict[str, Any]) -> str:
    """A definition name for the job (Igor allows any text; the original goes to labels)."""
    name = re.sub(r"[^A-Za-z0-9_.\- ]", "_", str(doc.get("name") or "")).strip(" ._-")
    return name[:190] or "igor-job"


def to_native(doc: Any) -> dict[str, Any]:
    """The native definition of an Igor CreateJobRequest."""
    if not isinstance(doc, dict):
        raise DefinitionError("an Igor job must be an object")
    _unknown(doc, _JOB_KEYS, "job")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        raise DefinitionError("no layers specified")
    name = job_name(doc)
    native_layers: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    taken: set[str] = set()
    layer_names: set[str] = set()
    for li, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise DefinitionError(f"layer {li} must be an object")
        _unknown(layer, _LAYER_KEYS | {"Tasks"}, f"layer {li}")
        lname = native_name(layer, layer_names, f"layer-{li}")
        priority = layer.get("priority") or 0
        if not isinstance(priority, int):
            raise DefinitionError(f"layer {lname!r}: priority must be a whole number")
        spec: dict[str, Any] = {"name": lname, "priority": priority}
        if (layer.get("paused_at") or 0) > 0:
            spec["paused"] = True
        native_layers.append(spec)
        for ti, task in enumerate(_layer_tasks(layer)):
            where = f"layer {lname!r} task {ti}"
            tname = native_name(task if isinstance(task, dict) else {}, taken, f"{lname}-{ti}")
            tasks.append(task_to_native(task, tname, lname, where))
    return {"name": name, "layers": native_layers, "tasks": tasks}


def labels(doc: dict[str, Any], native: dict[str, Any]) -> dict[str, Any]:
    """What the Igor views need and the native run does not keep: the original names."""
    originals = [str(layer.get("name") or "") for layer in doc["layers"]]
    return {
        "igor": {
            "name": str(doc.get("name") or ""),
            "layers": {n["name"]: o for n, o in zip(native["layers"], originals, strict=True)},
        }
    }
