"""Code-first workflows: ``@treadle.workflow``, ``@treadle.task`` and the task builders."""

from __future__ import annotations

from treadle.workflows.builder import http, log, noop, python, shell, sleep
from treadle.workflows.decorators import TaskFunction, Workflow, task, workflow
from treadle.workflows.refs import Ref, TaskRef

__all__ = [
    "Ref",
    "TaskFunction",
    "TaskRef",
    "Workflow",
    "http",
    "log",
    "noop",
    "python",
    "shell",
    "sleep",
    "task",
    "workflow",
]
