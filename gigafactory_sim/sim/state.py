"""Runtime state of jobs and speed groups (plain objects with ``__slots__``; no SimPy here).

A *speed group* is the set of running training jobs on one cluster that progress at the same rate and draw the
same power per GPU (same offered load, same power limit). It keeps a virtual work clock ``v`` (reference-seconds of
work done per job since the start of the run) and an energy-per-GPU clock ``e_gpu_j``; a job finishes when ``v``
reaches its ``v_finish``. A change of speed (a power cap) moves every end time in the group at O(1) cost: only the
group's next completion event is rescheduled.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any, Protocol

from gigafactory_sim.sim.running import RunningJobs

if TYPE_CHECKING:
    from gigafactory_sim.sim.timer import Timer

__all__ = ["SORTED_FROM", "Job", "RunPhases", "SpeedGroup"]

SORTED_FROM = 4096
"""Running jobs in a group above which their sorted list becomes a :class:`~gigafactory_sim.sim.running.RunningJobs`
(blocks searched over contiguous doubles instead of a memmove of the whole list: a million-GPU facility runs
~160,000 jobs at once). Below it a plain list is faster. Both keep the same order, so results are identical either
way."""

QUEUED, RUNNING, COMPLETED, FAILED, MIGRATED = 0, 1, 2, 3, 4
STATE_NAMES = {QUEUED: "queued", RUNNING: "running", COMPLETED: "completed", FAILED: "failed", MIGRATED: "migrated"}


class RunPhases(Protocol):
    """Low-power phases of a job's current run (checkpoint stalls, restarts), kept by reliability."""

    def saving_j(self, gpus: int, group: SpeedGroup, now_s: float) -> float:
        """GPU energy the run did not draw because of its low-power phases, up to ``now_s``."""
        ...


class Job:
    """A training job while it is in the system."""

    __slots__ = (
        "alloc",
        "cluster",
        "e_start_j",
        "extra_s",
        "gpus",
        "gpus_held",
        "group",
        "idx",
        "load",
        "priority",
        "run",
        "start_s",
        "submit_s",
        "v_finish",
        "work_s",
    )

    def __init__(self, idx: int, submit_s: float, gpus: int, work_s: float, priority: int, load: float) -> None:
        self.idx = idx
        self.load = load
        self.submit_s = submit_s
        self.gpus = gpus
        self.work_s = work_s
        self.priority = priority
        self.cluster = -1
        self.alloc: list[tuple[int, int]] = []
        self.gpus_held = 0
        self.group: SpeedGroup | None = None
        self.v_finish = 0.0
        self.start_s = -1.0
        self.e_start_j = 0.0
        self.extra_s = 0.0  # virtual work added to work_s by checkpoint stalls and a restart (reliability)
        self.run: RunPhases | None = None  # checkpoint/restart phases of the current run (reliability)


class SpeedGroup:
    """Running jobs of one cluster sharing speed and per-GPU power."""

    __slots__ = (
        "busy_gpus",
        "cluster",
        "e_gpu_j",
        "gpu_power_w",
        "load",
        "low_gpus",
        "running",
        "speed",
        "t_s",
        "timer",
        "v",
    )

    def __init__(self, cluster: int, load: float, speed: float, gpu_power_w: float) -> None:
        self.cluster = cluster
        self.load = load
        self.speed = speed  # reference-seconds of work per second
        self.gpu_power_w = gpu_power_w
        self.v = 0.0
        self.e_gpu_j = 0.0
        self.t_s = 0.0
        self.running: Any = []  # (v_finish, job idx, job), sorted; a list, or a RunningJobs past SORTED_FROM
        self.busy_gpus = 0
        self.low_gpus = 0  # of which in low-power phases (checkpoint stalls, restarts): kept by reliability
        self.timer: Timer | None = None  # wakes the engine at the group's next completion

    def advance(self, now_s: float) -> None:
        dt = now_s - self.t_s
        if dt > 0.0:
            self.v += self.speed * dt
            self.e_gpu_j += self.gpu_power_w * dt
            self.t_s = now_s

    def add(self, job: Job) -> bool:
        """Insert a started job; True if it is now the first to finish."""
        job.v_finish = self.v + job.work_s + job.extra_s
        entry = (job.v_finish, job.idx, job)
        running = self.running
        self.busy_gpus += job.gpus
        if type(running) is list:
            bisect.insort(running, entry)
            if len(running) > SORTED_FROM:
                self.running = RunningJobs(running)
            return running[0] is entry
        return bool(running.add(entry))

    def remove(self, job: Job) -> None:
        running = self.running
        if type(running) is not list:
            if running.remove(job.v_finish, job):
                self.busy_gpus -= job.gpus
            return
        i = bisect.bisect_left(running, (job.v_finish, job.idx))
        if i < len(running) and running[i][2] is job:
            del running[i]
            self.busy_gpus -= job.gpus

    def due(self, eps: float = 1e-6) -> list[Job]:
        """Pop the jobs whose work is done at the current virtual time."""
        limit = self.v + eps
        running = self.running
        if type(running) is not list:
            taken = [e[2] for e in running.pop_through(limit)]
            for j in taken:
                self.busy_gpus -= j.gpus
            return taken
        if len(running) == 1 or (running and running[1][0] > limit):  # (the common case: at most one is due)
            if running[0][0] > limit:
                return []
            job: Job = running.pop(0)[2]
            self.busy_gpus -= job.gpus
            return [job]
        n = 0
        for v_finish, _, _ in running:
            if v_finish > limit:
                break
            n += 1
        done = [e[2] for e in self.running[:n]]
        del self.running[:n]
        for job in done:
            self.busy_gpus -= job.gpus
        return done

    def expected_end_s(self, v_finish: float) -> float:
        if self.speed <= 0.0:
            return float("inf")
        return self.t_s + (v_finish - self.v) / self.speed
