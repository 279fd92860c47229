"""The read-only, live :class:`~gigafactory_sim.scheduling.base.ClusterView` the engine hands to schedulers."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from gigafactory_sim.scheduling.base import JobView
from gigafactory_sim.sim.cluster import ClusterState
from gigafactory_sim.sim.state import Job, SpeedGroup

__all__ = ["EngineClusterView"]


class EngineClusterView:
    """Live view of one cluster: its queue, node occupancy, and running jobs' expected ends."""

    def __init__(self, state: ClusterState, queue: list[Job], groups: dict[float, SpeedGroup]) -> None:
        self._state = state
        self._queue = queue
        self._groups = groups
        self.now_s = 0.0
        self.gpus_per_node = state.gpus_per_node
        self.disruptions = 0  # bumped by the engine when running jobs' expected ends move (speed, interruption)
        self.fits = state.fits  # the cluster's own method: schedulers call it in their inner loops

    @property
    def queue(self) -> Sequence[Job]:
        return self._queue

    @property
    def node_free(self) -> Sequence[int]:
        return self._state.node_free

    @property
    def node_up(self) -> Sequence[bool]:
        return self._state.node_up

    @property
    def free_gpus(self) -> int:
        return self._state.free_gpus

    @property
    def capacity_version(self) -> int:
        return self._state.capacity_version

    @property
    def occupancy_version(self) -> int:
        return self._state.occupancy_version

    @property
    def ends_keep_order(self) -> bool:
        return sum(1 for g in self._groups.values() if g.running) <= 1

    @property
    def whole_free_nodes(self) -> int:
        return len(self._state.buckets[self._state.gpus_per_node])

    def expected_duration_s(self, job: JobView) -> float:
        speed = self._groups[job.load].speed
        return (job.work_s + job.extra_s) / speed if speed > 0 else float("inf")

    def running_by_end(self) -> Iterator[tuple[float, JobView]]:
        def ends(group: SpeedGroup) -> Iterator[tuple[float, JobView]]:
            for v_finish, _, job in group.running:
                yield group.expected_end_s(v_finish), job

        groups = [g for g in self._groups.values() if g.running]
        if len(groups) == 1:
            return ends(groups[0])
        return heapq.merge(*(ends(g) for g in groups), key=lambda e: e[0])

    def jobs_by_end(self) -> Iterable[JobView]:
        groups = [g for g in self._groups.values() if g.running]
        if len(groups) == 1:  # one group's own order (v_finish, idx): the order of its end times
            return (job for _, _, job in groups[0].running)
        return (job for _, job in self.running_by_end())

    def end_s(self, job: JobView) -> float:
        j = cast(Job, job)
        assert j.group is not None
        return j.group.expected_end_s(j.v_finish)
