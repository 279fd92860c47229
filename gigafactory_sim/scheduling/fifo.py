"""First come, first served: start jobs in submission order; the first that does not fit blocks the rest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.scheduling.base import ClusterView, JobView

__all__ = ["FifoConfig", "FifoScheduler", "start_in_order"]


def start_in_order(view: ClusterView) -> Iterator[JobView]:
    """Yield queue jobs from the head while they fit; stop at the first that does not.

    The engine removes each started job from the queue before resuming, so the head is always ``queue[0]``.
    """
    queue = view.queue
    while queue:
        job = queue[0]
        if not view.fits(job.gpus):
            return
        yield job
        if queue and queue[0] is job:
            raise RuntimeError("the engine did not start the yielded job")


class FifoScheduler:
    starts_lone_job = True  # a lone queued job starts iff it fits (see scheduling.base.starts_lone_job)

    def order_key(self, job: JobView) -> tuple[float, ...]:
        return (job.submit_s, job.idx)

    def select(self, view: ClusterView) -> Iterator[JobView]:
        return start_in_order(view)


class FifoConfig(StrictModel):
    """``kind: fifo``: strict first come, first served."""

    kind: Literal["fifo"] = "fifo"

    def build(self) -> FifoScheduler:
        return FifoScheduler()
