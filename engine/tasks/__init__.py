"""The task registry: a run spec's `task` setting names one of these."""

from __future__ import annotations

from engine.core.errors import SpecError
from engine.core.spec import DEFAULT_REASONING
from engine.tasks.base import Task
from engine.tasks.unit_conversion import UnitConversionTask

TASKS: dict[str, type] = {"unit_conversion": UnitConversionTask}


def get_task(name: str, reasoning: str = DEFAULT_REASONING) -> Task:
    """The task `name`, writing its reference reasoning (cot training targets, worked examples)
    in the format `reasoning` (the spec's setting of that name)."""
    if name not in TASKS:
        raise SpecError("task", f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name](reasoning)
