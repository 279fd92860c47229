"""Schedulers. To add one: write a module with a config class (``kind: Literal[...]``, ``build()``) and a plain
scheduler object implementing :class:`Scheduler`, then add the config class to ``SchedulerConfig`` below."""

from typing import Annotated

from pydantic import Field

from gigafactory_sim.scheduling.base import ClusterView, JobView, Scheduler
from gigafactory_sim.scheduling.easy import EasyBackfillConfig, EasyBackfillScheduler
from gigafactory_sim.scheduling.fifo import FifoConfig, FifoScheduler
from gigafactory_sim.scheduling.priority import PriorityConfig, PriorityScheduler

SchedulerConfig = Annotated[FifoConfig | PriorityConfig | EasyBackfillConfig, Field(discriminator="kind")]

__all__ = [
    "ClusterView",
    "EasyBackfillConfig",
    "EasyBackfillScheduler",
    "FifoConfig",
    "FifoScheduler",
    "JobView",
    "PriorityConfig",
    "PriorityScheduler",
    "Scheduler",
    "SchedulerConfig",
]
