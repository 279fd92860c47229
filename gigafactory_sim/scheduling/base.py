"""The scheduler extension point: a plain object (no SimPy) that decides which queued jobs start now.

The engine keeps one queue per cluster, ordered by the scheduler's :meth:`Scheduler.order_key`, and after every
event calls :meth:`Scheduler.select` with a read-only :class:`ClusterView`. ``select`` yields jobs one at a time;
the engine starts each yielded job before resuming the generator, so the view is always current. Every yielded job
must fit (``view.fits(job.gpus)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["ClusterView", "JobView", "Scheduler", "starts_lone_job"]


class JobView(Protocol):
    """What a scheduler may read of a job."""

    idx: int
    gpus: int
    priority: int
    submit_s: float
    work_s: float
    extra_s: float
    """Extra run time on top of the work: checkpoint stalls and restart overhead (reference seconds)."""
    load: float
    alloc: list[tuple[int, int]]


class ClusterView(Protocol):
    """Read-only, live view of one cluster and its queue."""

    now_s: float
    gpus_per_node: int
    disruptions: int
    """Bumped whenever running jobs' expected ends move other than by completing (speed change, interruption)."""

    @property
    def queue(self) -> Sequence[JobView]:
        """Waiting jobs in the scheduler's order."""
        ...

    @property
    def node_free(self) -> Sequence[int]:
        """Free GPUs per node (down nodes included; see ``node_up``)."""
        ...

    @property
    def node_up(self) -> Sequence[bool]: ...

    @property
    def free_gpus(self) -> int: ...

    @property
    def whole_free_nodes(self) -> int: ...

    @property
    def capacity_version(self) -> int:
        """Bumped whenever free capacity grows (a job ends, a node returns)."""
        ...

    @property
    def occupancy_version(self) -> int:
        """Bumped whenever node occupancy changes (an allocation, a release, a node down or up, a spare held or
        let go): while it stands, ``node_free``, ``node_up``, ``whole_free_nodes`` and the running jobs are as
        they were."""
        ...

    @property
    def ends_keep_order(self) -> bool:
        """Whether the running jobs' end order stays as it is when speeds change (they all share one speed)."""
        ...

    def fits(self, gpus: int) -> bool:
        """Whether a job of ``gpus`` GPUs can start now under the placement rule."""
        ...

    def expected_duration_s(self, job: JobView) -> float:
        """Run time of ``job`` on this cluster at the current speed."""
        ...

    def running_by_end(self) -> Iterator[tuple[float, JobView]]:
        """Running jobs with their expected end time, earliest first."""
        ...

    def jobs_by_end(self) -> Iterable[JobView]:
        """The jobs of :meth:`running_by_end`, in its order."""
        ...

    def end_s(self, job: JobView) -> float:
        """Expected end time of a running job (the time :meth:`running_by_end` gives it)."""
        ...


@runtime_checkable
class Scheduler(Protocol):
    """Decides starts; holds no SimPy code and no reference to the engine."""

    def order_key(self, job: JobView) -> tuple[float, ...]:
        """Sort key of the waiting queue (smallest first)."""
        ...

    def select(self, view: ClusterView) -> Iterator[JobView]:
        """Yield the jobs to start now, one at a time."""
        ...


def starts_lone_job(scheduler: object) -> bool:
    """Whether ``scheduler`` declares ``starts_lone_job = True``: given a queue holding one job, ``select`` yields
    it if it fits and nothing otherwise, whatever else the view says (FIFO, priority and EASY do). The engine
    then starts a job that arrives alone on an empty queue without queueing it and running a pass: the same
    start, at the same point of the same event, for less work."""
    return getattr(scheduler, "starts_lone_job", False) is True
