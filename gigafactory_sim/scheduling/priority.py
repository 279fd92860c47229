"""Strict priority: highest priority first (then submission order); the first that does not fit blocks the rest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.scheduling.base import ClusterView, JobView
from gigafactory_sim.scheduling.fifo import start_in_order

__all__ = ["PriorityConfig", "PriorityScheduler"]


class PriorityScheduler:
    starts_lone_job = True  # a lone queued job starts iff it fits (see scheduling.base.starts_lone_job)

    def order_key(self, job: JobView) -> tuple[float, ...]:
        return (-job.priority, job.submit_s, job.idx)

    def select(self, view: ClusterView) -> Iterator[JobView]:
        return start_in_order(view)


class PriorityConfig(StrictModel):
    """``kind: priority``: strict priority, no backfilling."""

    kind: Literal["priority"] = "priority"

    def build(self) -> PriorityScheduler:
        return PriorityScheduler()
