"""Native workflow definitions (DESIGN.md §1), validated by pydantic.

Kind-specific fields sit flat on each task; the ``kind`` field selects which model validates it,
so an unknown kind or a misspelt field is rejected with the field's path.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from treadle.model.durations import parse_duration
from treadle.model.triggers import CallbackSpec, ConcurrencySpec, HookSpec, ScheduleSpec

NAME_PATTERN = r"^[^/\s][^/]{0,199}$"
DEFINITION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}$"

Duration = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class InputSpec(_Strict):
    """One input parameter of a definition."""

    type: Literal["string", "integer", "number", "boolean", "object", "array", "any"] = "any"
    required: bool = False
    default: Any = None
    description: str | None = None
    enum: list[Any] | None = None


class RetryOn(_Strict):
    exit_codes: list[int] | None = None
    http_statuses: list[int] | None = None
    errors: list[str] | None = None


class RetryPolicy(_Strict):
    """How often and how patiently a failed task is tried again."""

    max_attempts: int = Field(default=1, ge=1, le=1000)
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial: Duration = 1.0
    max: Duration = 300.0
    jitter: bool = False
    on: RetryOn | None = None

    @field_validator("initial", "max", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class TaskBase(_Strict):
    """Fields every task has, whatever its kind."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique within the definition.")
    description: str | None = None
    depends_on: list[str] | None = Field(
        default=None,
        description="Tasks that must finish first. Absent: the previous task; [] : a root.",
    )
    env: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(
        default_factory=dict,
        description="Extra output values: name -> template rendered after the task succeeds, "
        "with `output` bound to the task's own output.",
    )
    if_: str | None = Field(default=None, alias="if")
    trigger_rule: Literal["all_success", "all_done", "one_success", "one_failed", "none_failed"] = (
        "all_success"
    )
    allow_failure: bool = False
    retry: RetryPolicy | None = None
    timeout: Duration | None = None
    queue: str = Field(default="default", pattern=r"^[A-Za-z0-9_.\-]{1,100}$")
    priority: int = 0
    each: str | list[Any] | None = Field(
        default=None,
        description="Fan-out: a list, or a template giving one; the task runs once per item "
        "with `{{ item }}` and `{{ index }}` bound. Dependants see the list of outputs.",
    )
    max_parallel: int | None = Field(default=None, ge=1, description="Fan-out children at once.")
    layer: str | None = Field(default=None, description="The layer (see `layers`) it belongs to.")
    paused: bool = Field(default=False, description="Created paused: waits for an unpause.")
    pre: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Steps run before the task in the same attempt and working directory.",
    )
    post: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Steps run after the task, also when it failed; `{{ main.status }}`, "
        "`{{ main.output }}` and `{{ main.error }}` describe the task's outcome.",
    )

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    #: Whether ``pre``/``post`` hold generic steps of any kind (False: the kind's own model).
    generic_steps: ClassVar[bool] = True

    @field_validator("pre", "post")
    @classmethod
    def _steps(cls, steps: list[dict[str, Any]], info: Any) -> list[dict[str, Any]]:
        if not cls.generic_steps:
            return steps  # e.g. containers: the kind validates its own pre/post
        checked = []
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                raise ValueError(f"step {index} must be a mapping with a kind")
            doc = {"name": f"{info.field_name}[{index}]", **step}
            for banned in ("each", "pre", "post", "layer", "depends_on"):
                if banned in doc:
                    raise ValueError(f"step {index}: `{banned}` is not allowed on a pre/post step")
            if doc.get("kind") == "subworkflow":
                raise ValueError(f"step {index}: a pre/post step cannot be a subworkflow")
            step_model = _STEP_ADAPTER.validate_python(doc)
            checked.append(step_model.model_dump(mode="json", by_alias=True, exclude_unset=True))
        return checked


class ShellTask(TaskBase):
    kind: Literal["shell"]
    command: list[str] | str
    shell: bool = Field(default=False, description="Run a string command through /bin/sh.")
    cwd: str | None = None

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: list[str] | str) -> list[str] | str:
        if not value:
            raise ValueError("command must not be empty")
        return value

    @model_validator(mode="after")
    def _string_needs_shell(self) -> ShellTask:
        if isinstance(self.command, str) and not self.shell:
            raise ValueError("a string command needs `shell: true`; give a list for argv instead")
        return self


class HttpTask(TaskBase):
    kind: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    connect_timeout: Duration = 10.0
    read_timeout: Duration = 30.0
    follow_redirects: bool = Field(
        default=False, description="Follow redirects (each hop's address is checked too)."
    )
    accept: list[int | str] = Field(
        default_factory=lambda: list[int | str](["2xx"]),
        description="Accepted statuses: numbers or classes such as '2xx'.",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("connect_timeout", "read_timeout", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class PythonTask(TaskBase):
    kind: Literal["python"]
    handler: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class LogTask(TaskBase):
    kind: Literal["log"]
    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"


class SleepTask(TaskBase):
    kind: Literal["sleep"]
    seconds: Duration

    @field_validator("seconds", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class NoopTask(TaskBase):
    kind: Literal["noop"]


class SubworkflowTask(TaskBase):
    """Start a run of another stored definition, wait for it, and take its output."""

    kind: Literal["subworkflow"]
    definition: str = Field(min_length=1, description="The stored definition's name.")
    version: int | None = Field(default=None, ge=1)
    inputs: dict[str, Any] = Field(default_factory=dict)


class WaitTask(TaskBase):
    """Park until a time, for a duration, or until a named signal arrives (durable).

    A wait is never handed to a worker: the coordinator stores its wake-up time or the signal
    it waits for and completes it. With ``signal``, ``timeout`` fails the task if no signal came.
    """

    kind: Literal["wait"]
    until: str | None = Field(default=None, description="ISO 8601 time (UTC if no offset).")
    seconds: float | str | None = Field(default=None, description="How long to wait.")
    duration: float | str | None = Field(default=None, description="Same as `seconds`.")
    signal: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("seconds", "duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str) and "{{" in value:
            return value  # rendered when the wait starts
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _one_trigger(self) -> WaitTask:
        given = [
            name
            for name in ("until", "seconds", "duration", "signal")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a wait needs exactly one of `until`, `seconds` (or `duration`) and `signal`"
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self


# The container kind lives in its own module, which builds on TaskBase above.
from treadle.model.container import ContainerTask  # noqa: E402

TaskSpec = Annotated[
    ShellTask
    | HttpTask
    | PythonTask
    | LogTask
    | SleepTask
    | NoopTask
    | SubworkflowTask
    | WaitTask
    | ContainerTask,
    Field(discriminator="kind"),
]
TASK_KINDS = (
    "shell",
    "http",
    "python",
    "log",
    "sleep",
    "noop",
    "subworkflow",
    "wait",
    "container",
)

_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(
    Annotated[
        ShellTask | HttpTask | PythonTask | LogTask | SleepTask | NoopTask,
        Field(discriminator="kind"),
    ]
)


class LayerSpec(_Strict):
    """An ordered stage: layers of equal priority run together, higher ones wait."""

    name: str = Field(pattern=NAME_PATTERN)
    priority: int = 0
    paused: bool = False


class Definition(_Strict):
    """A named, versioned workflow template."""

    name: str = Field(pattern=DEFINITION_NAME_PATTERN)
    version: int = Field(default=1, ge=1)
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    tasks: list[TaskSpec] = Field(default_factory=list)
    timeout: Duration | None = None
    layers: list[LayerSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _layers_known(self) -> Definition:
        names = [layer.name for layer in self.layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError("duplicate layer names: " + ", ".join(duplicates))
        unknown = sorted({t.layer for t in self.tasks if t.layer and t.layer not in names})
        if unknown:
            raise ValueError("tasks name undeclared layers: " + ", ".join(unknown))
        return self

    concurrency: ConcurrencySpec | None = None
    schedule: ScheduleSpec | None = None
    hooks: list[HookSpec] = Field(default_factory=list)
    on_success: CallbackSpec | list[CallbackSpec] | None = None
    on_failure: CallbackSpec | list[CallbackSpec] | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    def task(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def dependencies(self) -> dict[str, list[str]]:
        """Each task's dependencies, with the implicit 'previous task' filled in."""
        result: dict[str, list[str]] = {}
        previous: str | None = None
        for task in self.tasks:
            if task.depends_on is None:
                result[task.name] = [previous] if previous is not None else []
            else:
                result[task.name] = list(task.depends_on)
            previous = task.name
        return result

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready form stored and served back."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
