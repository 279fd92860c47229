"""The power state the policies read and act on: facility power as a function of per-cluster GPU power limits.

Each cluster ``c`` runs its GPUs under a common power limit ``theta_c x board_limit_c`` (``theta = 1``: the
board limit, nothing throttled). A speed group at offered load ``l`` then draws ``min(demand(l), theta B)``
per busy GPU and runs at the DVFS speed ``((theta B - idle) / (demand - idle)) ** (1 / alpha)`` relative to
its unthrottled speed (power models, :mod:`gigafactory_sim.power.models`). Everything else a cluster draws
(stranded and unallocated GPUs, node power) does not depend on ``theta``. Facility power is ``a x IT + b``
(:mod:`.pue`), and the grid draw is facility power less on-site renewables. IT power is piecewise linear and
non-decreasing in each ``theta``, so the largest ``theta`` that fits a limit is found exactly
(:func:`max_theta`).

Changing a cluster's limit is exact: every group is advanced to now, gets its new power and speed, and its
next completion is rescheduled (end times of all its jobs move at once). """

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gigafactory_sim.sim.state import QUEUED, Job, SpeedGroup

if TYPE_CHECKING:
    from gigafactory_sim.sim.engine import Simulation

__all__ = ["PowerControl", "max_theta"]

MARGIN_W = 1e-3  # solve to a milliwatt under a limit, so float rounding never lands above it


def max_theta(pieces: list[tuple[float, float, float]], budget_w: float, theta_min: float) -> float | None:
    """Largest ``theta`` in ``[theta_min, 1]`` with ``sum(n * min(d, theta * B)) <= budget_w``; None if none.

    ``pieces`` are ``(n busy GPUs, demand d W, board limit B W)``.
    """
    def total(theta: float) -> float:
        return sum(n * min(d, theta * b) for n, d, b in pieces)

    if total(1.0) <= budget_w:
        return 1.0
    if total(theta_min) > budget_w:
        return None
    kinks = sorted({theta_min, 1.0, *(d / b for _, d, b in pieces if theta_min < d / b < 1.0)})
    lo = theta_min
    for hi in kinks[1:]:
        if total(hi) > budget_w:
            # linear on [lo, hi]: slope = sum of n * B over pieces not yet at their demand
            slope = sum(n * b for n, d, b in pieces if d > lo * b)
            if slope <= 0.0:
                return lo
            return min(hi, lo + (budget_w - total(lo)) / slope)
        lo = hi
    return 1.0


class PowerControl:
    """Facility power and the per-cluster GPU limits of a running :class:`Simulation`."""

    def __init__(self, sim: Simulation, theta_min: list[float]) -> None:
        self.sim = sim
        self.models = sim.power_models
        self.board_w = [m.limit_w for m in self.models]
        self.theta = [1.0] * len(sim.clusters)
        self.theta_min = theta_min
        # unthrottled (power, speed) of every group, and its demand
        self.full: dict[int, tuple[float, float]] = {}
        self.demand: dict[int, float] = {}
        for c, groups in enumerate(sim.groups):
            for g in groups.values():
                self.full[id(g)] = (g.gpu_power_w, g.speed)
                self.demand[id(g)] = self.models[c].demand_w(g.load)
        self.a = 1.0  # facility = a * IT + b
        self.b_w = 0.0
        self.renewable_w = 0.0
        self.cap_w = math.inf  # the effective limit on grid draw (hard cap and budget pacing)
        self.suspended = 0

    # -- power -----------------------------------------------------------------------------------------------
    def facility_limit_w(self) -> float:
        return self.cap_w + self.renewable_w

    def it_limit_w(self) -> float:
        """Largest IT power under the cap."""
        return (self.facility_limit_w() - self.b_w - MARGIN_W) / self.a

    def cluster_it_w(self, c: int) -> float:
        """Cluster ``c``'s IT power now: training, idle and (not controlled by the limits) inference."""
        v = self.sim.meter.values
        ch = self.sim.ch[c]
        it = float(v[ch["gpu_train_w"]] + v[ch["gpu_idle_w"]] + v[ch["node_train_w"]] + v[ch["node_idle_w"]])
        if self.sim.inference is not None:
            index = self.sim.meter.index
            name = self.sim.cluster_names[c]
            it += float(v[index[f"gpu_infer_w.{name}"]] + v[index[f"node_infer_w.{name}"]])
        return it

    def active_gpus(self, g: SpeedGroup) -> int:
        """GPUs of ``g`` drawing its group power: not in a checkpoint stall or restart (those draw their low
        power whatever the limit)."""
        phases = self.sim.reliability.phases if self.sim.reliability is not None else None
        return g.busy_gpus - (phases.clocks[id(g)].low_gpus if phases is not None else 0)

    def fixed_w(self, c: int) -> float:
        """Cluster ``c``'s IT power that does not depend on its GPU limit."""
        busy = sum(self.active_gpus(g) * g.gpu_power_w for g in self.sim.groups[c].values())
        return self.cluster_it_w(c) - busy

    def pieces(self, c: int) -> list[tuple[float, float, float]]:
        model = self.models[c]
        return [(float(n), model.demand_w(g.load), self.board_w[c])
                for g in self.sim.groups[c].values() if (n := self.active_gpus(g))]

    def gpu_power_at(self, c: int, load: float, theta: float) -> float:
        return self.models[c].power_w(load, theta * self.board_w[c])

    def it_at(self, thetas: list[float]) -> float:
        """IT power if every cluster ran at ``thetas`` (current occupancy; meter channels must be current)."""
        total = self.sim.meter.it_power_w()
        for c, theta in enumerate(thetas):
            if theta == self.theta[c]:
                continue
            limit = max(theta * self.board_w[c], self.models[c].idle_w)
            for g in self.sim.groups[c].values():
                active = self.active_gpus(g)
                if active:
                    total += active * (min(self.demand[id(g)], limit) - g.gpu_power_w)
        return total

    def job_delta_w(self, job: Job, c: int, theta: float) -> float:
        """IT power added by starting ``job`` on cluster ``c`` with its GPUs at ``theta``."""
        sim = self.sim
        held = sim.clusters[c].gpus_held(job.gpus)
        gpu = job.gpus * self.gpu_power_at(c, job.load, theta) + (held - job.gpus) * sim.context_idle_w[c]
        node = held * (sim.node_busy_w_per_gpu[c] - sim.node_idle_w_per_gpu[c])
        return gpu + node - held * sim.unallocated_w[c]

    # -- limits ----------------------------------------------------------------------------------------------
    def set_theta(self, c: int, theta: float, now: float) -> None:
        """Put cluster ``c``'s GPUs under ``theta x`` their board limit; move every end time accordingly."""
        if abs(theta - self.theta[c]) <= 1e-12:
            return
        sim = self.sim
        self.theta[c] = theta
        model = self.models[c]
        limit = theta * self.board_w[c]
        for g in sim.groups[c].values():
            full_w, full_speed = self.full[id(g)]
            g.advance(now)
            if theta >= 1.0:
                g.gpu_power_w, g.speed = full_w, full_speed
            else:
                g.gpu_power_w = model.power_w(g.load, limit)
                base = model.speed(g.load)
                g.speed = full_speed * (model.speed(g.load, limit) / base if base > 0 else 0.0)
            sim._schedule_completion(g)
            if sim.reliability is not None:
                sim.reliability.phases.on_speed_change(g)
        sim.views[c].disruptions += 1  # expected ends moved: schedulers' reservations are stale
        sim._refresh(c)

    def throttle_stats(self) -> tuple[float, float]:
        """(busy GPUs running below their unthrottled power, GPU-equivalents of speed lost)."""
        throttled = slowed = 0.0
        for c, groups in enumerate(self.sim.groups):
            if self.theta[c] >= 1.0:
                continue
            for g in groups.values():
                if not g.busy_gpus:
                    continue
                full_w, full_speed = self.full[id(g)]
                if g.gpu_power_w < full_w - 1e-9:
                    throttled += g.busy_gpus
                if full_speed > 0:
                    slowed += g.busy_gpus * (1.0 - g.speed / full_speed)
        return throttled, slowed

    # -- suspension ------------------------------------------------------------------------------------------
    def running_jobs(self) -> list[tuple[int, Job, SpeedGroup]]:
        return [(g.cluster, job, g) for groups in self.sim.groups for g in groups.values()
                for _, _, job in g.running]

    def suspend(self, job: Job, now: float) -> None:
        """Stop ``job`` now and put it back in its queue. Without checkpointing configured it keeps its progress
        (an instant checkpoint); with it, it restarts from its last checkpoint like any preempted job."""
        sim = self.sim
        if sim.reliability is not None:
            sim.reliability.preempt(job, "power")
            return
        g = job.group
        assert g is not None
        c = job.cluster
        g.advance(now)
        remaining = max(job.v_finish - g.v, 0.0)
        sim.rec_energy_j[job.idx] += sim.job_energy_j(job, now)
        g.remove(job)
        sim.clusters[c].release(job.alloc)
        job.alloc = []
        job.group = None
        job.work_s = remaining
        sim.n_running -= 1
        sim.rec_state[job.idx] = QUEUED
        sim._enqueue(job, c)
        sim.views[c].disruptions += 1
        sim._schedule_completion(g)
        sim._refresh(c)
        sim._set_counts()
        self.suspended += 1
