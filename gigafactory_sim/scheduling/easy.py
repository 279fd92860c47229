"""EASY backfilling (Lifka 1995; Slurm's ``sched/backfill`` with a bounded window).

Jobs start in queue order while they fit. The first job that does not fit (the head) gets a reservation: the
earliest time (shadow time) at which, if running jobs end when expected, enough capacity is free for it. Later
jobs, looking at most ``lookahead`` deep, may start now if they fit and either end by the shadow time or use only
whole nodes that the head will not need (the extra nodes). Expected run times are exact in the model (no user
over-estimates), so a backfilled job never delays the head.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal

from pydantic import Field

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.scheduling.base import ClusterView, JobView

__all__ = ["EasyBackfillConfig", "EasyBackfillScheduler", "reservation", "reservation_stop", "shadow_s"]


def reservation(view: ClusterView, head: JobView) -> tuple[float, int]:
    """Shadow time for ``head`` and the whole nodes spare at that time (``extra``).

    Replays expected ends of running jobs at node level (free GPUs per touched node) until the head fits.
    Returns ``(inf, 0)`` if it never fits with the nodes now up.
    """
    stop, extra = reservation_stop(view, head)
    return shadow_s(view, head, stop), extra


def shadow_s(view: ClusterView, head: JobView, stop: JobView | None) -> float:
    """The shadow time of ``head`` whose replay stopped at ``stop`` (:func:`reservation_stop`): its expected end,
    or inf if the head never fits."""
    return math.inf if stop is None else view.end_s(stop)


def reservation_stop(view: ClusterView, head: JobView) -> tuple[JobView | None, int]:
    """The running job at whose expected end ``head`` fits (None: never, with the nodes now up) and the whole
    nodes spare then: :func:`reservation` without the time. It depends only on the node occupancy and the end
    order of the running jobs, not on when they end (the shadow time is the stop's expected end)."""
    gpn = view.gpus_per_node
    need = head.gpus
    node_free = view.node_free
    node_up = view.node_up
    touched: dict[int, int] = {}
    if need <= gpn:
        for job in view.jobs_by_end():
            for node, k in job.alloc:
                if not node_up[node]:
                    continue
                f = touched.get(node, node_free[node]) + k
                touched[node] = f
                if f >= need:
                    return job, 0
        return None, 0
    nodes_needed = -(-need // gpn)
    whole = view.whole_free_nodes
    for job in view.jobs_by_end():
        for node, k in job.alloc:
            if not node_up[node]:
                continue
            f = touched.get(node, node_free[node]) + k
            touched[node] = f
            if f == gpn:
                whole += 1
        if whole >= nodes_needed:
            return job, whole - nodes_needed
    return None, 0


@dataclass
class _Memo:
    """Per-cluster memory between passes: the head's reservation and the jobs already turned down.

    The reservation of an unchanged head stays valid while running jobs end when expected (a backfilled job ends
    before the shadow time or uses extra nodes, which are deducted), so it is recomputed only when the head
    changes or the view reports a disruption. A job that did not fit stays turned down until capacity grows (free
    capacity only shrank since); a job that fit but would end after the shadow time, without extra nodes enough,
    stays turned down while the reservation holds (time only moves on, and the extra nodes only shrink).

    When a disruption leaves the node occupancy as it was and every running job shares one speed (a power cap
    moved the cluster's speed: the end order stands), the reservation a fresh replay would find ends at the same
    job (:func:`reservation_stop`) with the same extra nodes: only its time is re-read.
    """

    head_idx: int = -1
    disruptions: int = -1
    shadow_s: float = math.inf
    extra_nodes: int = 0
    capacity_version: int = -1
    no_fit: set[int] = field(default_factory=set)
    too_late: set[int] = field(default_factory=set)
    # the last replay: the occupancy it saw (-1: none to reuse), where it stopped and its extra nodes
    replay_version: int = -1
    stop: JobView | None = None
    replay_extra: int = 0


class EasyBackfillScheduler:
    starts_lone_job = True  # a lone queued job starts iff it fits (see scheduling.base.starts_lone_job)

    def __init__(self, lookahead: int, order: str) -> None:
        self.lookahead = lookahead
        self.by_priority = order == "priority"
        self._memos: dict[int, _Memo] = {}

    def order_key(self, job: JobView) -> tuple[float, ...]:
        if self.by_priority:
            return (-job.priority, job.submit_s, job.idx)
        return (job.submit_s, job.idx)

    def select(self, view: ClusterView) -> Iterator[JobView]:
        queue = view.queue
        while queue:  # start from the head while jobs fit (the engine dequeues each started job)
            job = queue[0]
            if not view.fits(job.gpus):
                break
            yield job
        if len(queue) < 2:
            return
        head = queue[0]
        memo = self._memos.get(id(view))
        if memo is None:  # (not setdefault: that would build a memo on every pass)
            memo = self._memos[id(view)] = _Memo()
        if memo.head_idx != head.idx or memo.disruptions != view.disruptions:
            if memo.head_idx != head.idx or memo.replay_version != view.occupancy_version or not view.ends_keep_order:
                memo.stop, memo.replay_extra = reservation_stop(view, head)
                memo.replay_version = view.occupancy_version if view.ends_keep_order else -1
            # (else the same replay as the last: only the stop's end time moved)
            memo.shadow_s, memo.extra_nodes = shadow_s(view, head, memo.stop), memo.replay_extra
            memo.head_idx, memo.disruptions = head.idx, view.disruptions
            memo.no_fit.clear()
            memo.too_late.clear()
        if memo.capacity_version != view.capacity_version:
            memo.capacity_version = view.capacity_version
            memo.no_fit.clear()
        gpn = view.gpus_per_node
        now_s = view.now_s
        no_fit, too_late = memo.no_fit, memo.too_late
        # Fitting is monotone in size (best fit on one node, or whole free nodes), so once a job of `too_big`
        # GPUs does not fit, no larger one does until capacity grows.
        too_big = view.free_gpus + 1
        # The jobs this pass may look at, those already turned down left out at once (too_big only falls and the
        # sets only grow as the pass goes, each by the job it looks at: the loop below would skip them too).
        window = [
            job
            for job in islice(queue, 1, self.lookahead + 1)
            if job.gpus < too_big and job.idx not in too_late and job.idx not in no_fit
        ]
        for job in window:  # (none of them in the sets: a job joins one only once looked at)
            gpus = job.gpus
            if gpus >= too_big:
                continue
            # A job that would end after the shadow time without extra nodes enough is too late whether or not it
            # fits: turned down before the fit is tried (the same decisions, and a reservation's disruption, which
            # re-opens every too-late job, costs no walk of the nodes for those still too late).
            in_time = now_s + view.expected_duration_s(job) <= memo.shadow_s
            if not in_time and (gpus <= gpn or -(-gpus // gpn) > memo.extra_nodes):
                too_late.add(job.idx)
                continue
            if not view.fits(gpus):
                too_big = gpus
                no_fit.add(job.idx)
                continue
            if not in_time:  # (it fits on the extra nodes)
                memo.extra_nodes -= -(-gpus // gpn)
            yield job
            free = view.free_gpus
            if free == 0:
                return
            too_big = min(too_big, free + 1)


class EasyBackfillConfig(StrictModel):
    """``kind: easy_backfill``: EASY backfilling with a bounded look-ahead (like Slurm's ``bf_window``)."""

    kind: Literal["easy_backfill"] = "easy_backfill"
    lookahead: int = Field(default=100, ge=1, description="queued jobs examined for backfill per pass")
    order: Literal["fifo", "priority"] = "fifo"

    def build(self) -> EasyBackfillScheduler:
        return EasyBackfillScheduler(self.lookahead, self.order)
