"""Task datasets: seeded clean/corrupted prompt sets for sequence-continuation circuits.

>>> sorted(list_corruptions()) == sorted(c.value for c in Corruption)
True
"""

from circuitgraph.tasks.build import (
    RepeatedPromptsWarning,
    list_corruptions,
    list_tasks,
    list_templates,
    make_task,
    model_family,
)
from circuitgraph.tasks.corruptions import Corruption
from circuitgraph.tasks.custom import load_task
from circuitgraph.tasks.filter import filter_task
from circuitgraph.tasks.sequences import TASKS, Context, Family, TaskSpec
from circuitgraph.tasks.task import Task
from circuitgraph.tasks.templates import TEMPLATES, Template

__all__ = [
    "TASKS",
    "TEMPLATES",
    "Context",
    "Corruption",
    "Family",
    "RepeatedPromptsWarning",
    "Task",
    "TaskSpec",
    "Template",
    "filter_task",
    "list_corruptions",
    "list_tasks",
    "list_templates",
    "load_task",
    "make_task",
    "model_family",
]
