"""The power state the policies read and act on: facility power as a function of per-cluster GPU power limits.

Each cluster ``c`` runs its GPUs under a common power limit ``theta_c x board_limit_c`` (``theta = 1``: the
board limit, nothing throttled). A speed group at offered load ``l`` then draws ``min(demand(l), theta B)``
per busy GPU and runs at the DVFS speed ``((theta B - idle) / (demand - idle)) ** (1 / alpha)`` relative to
its unthrottled speed (power models, :mod:`gigafactory_sim.power.models`). Everything else a cluster draws
(stranded and unallocated GPUs, node power) does not depend on ``theta``. Facility power is ``a x IT + b``
(:mod:`.pue`), and the grid draw is facility power less on-site renewables. IT power is piecewise linear and
non-decreasing in each ``theta``, so the largest ``theta`` that fits a limit is found exactly
(:func:`~gigafactory_sim.energy.solve.max_theta`).

Changing a cluster's limit is exact: every group gets its new power and speed through the engine
(``EngineOps.set_group_rate``), which moves the end times of all its jobs at once."""

from __future__ import annotations

import math

from gigafactory_sim.energy.solve import MARGIN_W
from gigafactory_sim.power.models import DvfsPowerModel, clipped_power_w, dvfs_speed
from gigafactory_sim.sim.ops import EngineOps
from gigafactory_sim.sim.state import Job, SpeedGroup

__all__ = ["PowerControl"]

_JOB_DELTA_KEYS = 4096  # job_delta_w's (and it_at's) kept values at most (a few dozen in practice)


class PowerControl:
    """Facility power and the per-cluster GPU limits of a running simulation (a
    :class:`~gigafactory_sim.energy.policies.PowerState`)."""

    def __init__(self, ops: EngineOps, theta_min: list[float]) -> None:
        self.ops = ops
        self.facility = f = ops.facility
        self.models = f.power_models
        self.board_w = [m.limit_w for m in self.models]
        self.theta = [1.0] * len(f.clusters)
        self.theta_min = theta_min
        # unthrottled (power, speed) of every group, and its demand
        self.full: dict[int, tuple[float, float]] = {}
        self.demand: dict[int, float] = {}
        for c, groups in enumerate(f.groups):
            for g in groups.values():
                self.full[id(g)] = (g.gpu_power_w, g.speed)
                self.demand[id(g)] = self.models[c].demand_w(g.load)
        # per cluster, what the hot paths read of each group that never changes (the models are pure):
        # (group, demand, unthrottled power, unthrottled speed, model speed at the board limit)
        self._consts: list[tuple[tuple[SpeedGroup, float, float, float, float], ...]] = [
            tuple((g, self.demand[id(g)], *self.full[id(g)], self.models[c].speed(g.load)) for g in groups.values())
            for c, groups in enumerate(f.groups)
        ]
        self._demands = [tuple((g, d) for g, d, *_ in consts) for consts in self._consts]
        # a DVFS model's constants: set_theta applies its formulas to the kept demand of each group (the very
        # functions DvfsPowerModel.power_w and .speed call); None for the other models, asked through their methods
        self._dvfs: list[tuple[float, float, float] | None] = [
            (m.limit_w, m.idle_w, m.alpha) if type(m) is DvfsPowerModel else None for m in self.models
        ]
        self._it_channels: list[tuple[int, int, int, int, tuple[int, ...]]] = [
            (ch["gpu_train_w"], ch["gpu_idle_w"], ch["node_train_w"], ch["node_idle_w"], tuple(extra))
            for ch, extra in zip(f.ch, f.extra_it_idx, strict=True)
        ]
        self.a = 1.0  # facility = a * IT + b
        self.b_w = 0.0
        self.renewable_w = 0.0
        self.cap_w = math.inf  # the effective limit on grid draw (hard cap and budget pacing)
        self._it_limit_w = math.inf
        self.set_signals(self.a, self.b_w, self.renewable_w, self.cap_w)
        self.throttled = False  # some cluster's GPU limit is lowered: any theta below 1 (set by set_theta)
        self.unthrottled = True  # every theta at or above 1
        self.suspended = 0
        self._job_delta: dict[tuple[int, int, float, float], float] = {}  # (see job_delta_w)
        self._drawn_at: dict[tuple[int, float], tuple[tuple[SpeedGroup, float], ...]] = {}  # (see it_at)
        # IT power as last read (it_power_w, it_at); NaN once this object changed it (set_theta, suspend). The
        # energy system clears it before its gates and enforcers and reuses a read they made: nothing else
        # writes IT power in between.
        self.it_read_w = math.nan

    def set_signals(self, a: float, b_w: float, renewable_w: float, cap_w: float) -> None:
        """Put a segment's PUE coefficients, renewable output and effective cap in force (the only way they
        change: the IT limit is computed here, once a segment, not at every pass)."""
        self.a, self.b_w, self.renewable_w, self.cap_w = a, b_w, renewable_w, cap_w
        self._it_limit_w = (self.facility_limit_w() - self.b_w - MARGIN_W) / self.a

    # -- power -----------------------------------------------------------------------------------------------
    def facility_limit_w(self) -> float:
        return self.cap_w + self.renewable_w

    def it_limit_w(self) -> float:
        """Largest IT power under the cap (set by :meth:`set_signals`)."""
        return self._it_limit_w

    def it_power_w(self) -> float:
        self.it_read_w = w = self.ops.meter.it_power_w()
        return w

    @staticmethod
    def active_gpus(g: SpeedGroup) -> int:
        """GPUs of ``g`` drawing its group power: not in a checkpoint stall or restart (those draw their low
        power whatever the limit)."""
        return g.busy_gpus - g.low_gpus

    def fixed_w(self, c: int) -> float:
        """Cluster ``c``'s IT power that does not depend on its GPU limit."""
        busy = sum(self.active_gpus(g) * g.gpu_power_w for g in self.facility.groups[c].values())
        return self.facility.cluster_it_w(c) - busy

    def pieces(self, c: int) -> list[tuple[float, float, float]]:
        model = self.models[c]
        return [
            (float(n), model.demand_w(g.load), self.board_w[c])
            for g in self.facility.groups[c].values()
            if (n := self.active_gpus(g))
        ]

    def capping_inputs(self) -> tuple[list[float], list[list[tuple[float, float, float]]]]:
        """:meth:`fixed_w` and :meth:`pieces` of every cluster, in one walk over the groups (the same floats:
        the same sums in the same order, the demands kept from the start)."""
        v = self.ops.meter.values.tolist()  # (Python floats: the same sums as cluster_it_w's float64 ones)
        fixed: list[float] = []
        pieces: list[list[tuple[float, float, float]]] = []
        for c, demands in enumerate(self._demands):
            i_train, i_idle, i_nt, i_ni, extra = self._it_channels[c]
            it = v[i_train] + v[i_idle] + v[i_nt] + v[i_ni]  # Facility.cluster_it_w
            if extra:
                x = v[extra[0]]
                for i in extra[1:]:
                    x = x + v[i]
                it += x
            fixed.append(it - sum([(g.busy_gpus - g.low_gpus) * g.gpu_power_w for g, _ in demands]))
            board = self.board_w[c]
            pieces.append([(float(n), d, board) for g, d in demands if (n := g.busy_gpus - g.low_gpus)])
        return fixed, pieces

    def gpu_power_at(self, c: int, load: float, theta: float) -> float:
        return self.models[c].power_w(load, theta * self.board_w[c])

    def it_at(self, thetas: list[float]) -> float:
        """IT power if every cluster ran at ``thetas`` (current occupancy; meter channels must be current)."""
        self.it_read_w = total = self.ops.meter.it_power_w()
        for c, theta in enumerate(thetas):
            if theta == self.theta[c]:
                continue
            drawn = self._drawn_at.get((c, theta))
            if drawn is None:
                drawn = self._drawn(c, theta)
            for g, w in drawn:
                active = g.busy_gpus - g.low_gpus
                if active:
                    total += active * (w - g.gpu_power_w)
        return total

    def _drawn(self, c: int, theta: float) -> tuple[tuple[SpeedGroup, float], ...]:
        """Each group of cluster ``c`` with the power a busy GPU of it draws at ``theta`` (a function of the
        cluster's constants and ``theta`` only: kept per such key; the gates ask at one or two thetas)."""
        if len(self._drawn_at) >= _JOB_DELTA_KEYS:
            self._drawn_at.clear()
        limit = max(theta * self.board_w[c], self.models[c].idle_w)
        drawn = self._drawn_at[c, theta] = tuple((g, min(demand, limit)) for g, demand in self._demands[c])
        return drawn

    def job_delta_w(self, job: Job, c: int, theta: float) -> float:
        """IT power added by starting ``job`` on cluster ``c`` with its GPUs at ``theta``: a function of the
        cluster, the job's size and load and ``theta`` only (the power model and the cluster's constants), so it
        is kept per such key (the admission gate asks it before every start, for a few distinct keys)."""
        key = (c, job.gpus, job.load, theta)
        delta = self._job_delta.get(key)
        if delta is None:
            if len(self._job_delta) >= _JOB_DELTA_KEYS:
                self._job_delta.clear()
            delta = self._job_delta[key] = self.facility.start_delta_w(job, c, self.gpu_power_at(c, job.load, theta))
        return delta

    # -- limits ----------------------------------------------------------------------------------------------
    def set_theta(self, c: int, theta: float, now: float) -> None:
        """Put cluster ``c``'s GPUs under ``theta x`` their board limit; move every end time accordingly."""
        thetas = self.theta
        if abs(theta - thetas[c]) <= 1e-12:
            return
        thetas[c] = theta
        self.it_read_w = math.nan
        lowest = min(thetas)
        self.throttled = lowest < 1.0
        self.unthrottled = lowest >= 1.0
        set_group_rate = self.ops.set_group_rate
        if theta >= 1.0:
            for g, _, full_w, full_speed, _ in self._consts[c]:
                set_group_rate(g, full_w, full_speed)
            self.ops.refresh(c)
            return
        limit = theta * self.board_w[c]
        dvfs = self._dvfs[c]
        if dvfs is None:
            model = self.models[c]
            for g, _, _, full_speed, base in self._consts[c]:
                set_group_rate(
                    g,
                    model.power_w(g.load, limit),
                    full_speed * (model.speed(g.load, limit) / base if base > 0 else 0.0),
                )
        else:
            board_w, idle_w, alpha = dvfs
            cap_w = min(limit, board_w)  # (the models' _capped)
            for g, demand_w, _, full_speed, base in self._consts[c]:
                speed = dvfs_speed(demand_w, cap_w, idle_w, alpha)
                set_group_rate(
                    g, clipped_power_w(demand_w, cap_w, idle_w), full_speed * (speed / base if base > 0 else 0.0)
                )
        self.ops.refresh(c)

    def throttle_stats(self) -> tuple[float, float]:
        """(busy GPUs running below their unthrottled power, GPU-equivalents of speed lost)."""
        throttled = slowed = 0.0
        for c, consts in enumerate(self._consts):
            if self.theta[c] >= 1.0:
                continue
            for g, _, full_w, full_speed, _ in consts:
                if not g.busy_gpus:
                    continue
                if g.gpu_power_w < full_w - 1e-9:
                    throttled += g.busy_gpus
                if full_speed > 0:
                    slowed += g.busy_gpus * (1.0 - g.speed / full_speed)
        return throttled, slowed

    # -- suspension ------------------------------------------------------------------------------------------
    def running_jobs(self) -> list[tuple[int, Job, SpeedGroup]]:
        return [
            (g.cluster, job, g) for groups in self.facility.groups for g in groups.values() for _, _, job in g.running
        ]

    def suspend(self, job: Job, now: float) -> None:
        """Stop ``job`` now and put it back in its queue. Without checkpointing configured it keeps its progress
        (an instant checkpoint); with it, it restarts from its last checkpoint like any preempted job."""
        c = job.cluster
        self.it_read_w = math.nan
        self.ops.stop(job, "suspended", "power")
        self.ops.refresh(c)
        self.suspended += 1
