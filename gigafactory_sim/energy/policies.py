"""Power policies that keep the facility under its effective cap: admission, power capping, preemption.

A policy is a plain object (no SimPy) with two hooks the energy system calls (template hooks, as in SimPy):
:meth:`PowerPolicy.admit` before each start the scheduler asks for (policies with ``gates_starts``), and
:meth:`PowerPolicy.enforce` after every scheduling pass and at every signal breakpoint (policies with
``enforces``). Enforcers run in ``stage`` order: preemption (make the cap reachable), then capping (set GPU
limits). Each has a config class with ``kind`` and ``build(cluster_names)`` (the registry is the tagged union in
:mod:`gigafactory_sim.energy.config`). Policies act on a :class:`PowerState` (the energy system's
:class:`~gigafactory_sim.energy.control.PowerControl`)."""

from __future__ import annotations

import math
from typing import Literal, Protocol

from pydantic import Field

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.energy.solve import max_theta
from gigafactory_sim.sim.state import Job, SpeedGroup

__all__ = [
    "Admission",
    "AdmissionConfig",
    "Capping",
    "CappingConfig",
    "PowerPolicy",
    "PowerState",
    "Preemption",
    "PreemptionConfig",
]


class PowerState(Protocol):
    """Facility power as a function of per-cluster GPU limits ``theta`` (see :mod:`.control`)."""

    theta: list[float]
    theta_min: list[float]
    cap_w: float

    def it_limit_w(self) -> float: ...

    def it_power_w(self) -> float: ...

    def it_at(self, thetas: list[float]) -> float: ...

    def job_delta_w(self, job: Job, c: int, theta: float) -> float: ...

    def fixed_w(self, c: int) -> float: ...

    def pieces(self, c: int) -> list[tuple[float, float, float]]: ...

    def capping_inputs(self) -> tuple[list[float], list[list[tuple[float, float, float]]]]:
        """(``fixed_w(c)`` for every cluster, ``pieces(c)`` for every cluster)."""
        ...

    def set_theta(self, c: int, theta: float, now: float) -> None: ...

    def running_jobs(self) -> list[tuple[int, Job, SpeedGroup]]: ...

    def suspend(self, job: Job, now: float) -> None: ...


class PowerPolicy(Protocol):
    stage: int
    gates_starts: bool
    enforces: bool
    quiet_under_cap: bool
    """``enforce`` does nothing while no GPU limit is lowered (every theta >= 1) and IT power is at or under the
    IT limit (the energy system then skips the call)."""

    def admit(self, ctrl: PowerState, job: Job, cluster: int) -> bool:
        """Whether ``job`` may start on ``cluster`` now."""
        ...

    def enforce(self, ctrl: PowerState, now_s: float) -> None:
        """Act so that the facility fits under ``ctrl.cap_w``."""
        ...


class _Hooks:
    """Defaults: admit everything, enforce nothing."""

    stage = 9
    gates_starts = False
    enforces = False
    quiet_under_cap = False

    def admit(self, ctrl: PowerState, job: Job, cluster: int) -> bool:
        return True

    def enforce(self, ctrl: PowerState, now_s: float) -> None:
        return None


class Admission(_Hooks):
    """A job starts only if the facility, with it, fits under the cap with every GPU at ``limit_fraction``."""

    gates_starts = True

    def __init__(self, limit_fraction: float) -> None:
        self.limit_fraction = limit_fraction
        self.refused = 0
        self._theta: list[float] = []  # every cluster at limit_fraction (built once)

    def admit(self, ctrl: PowerState, job: Job, cluster: int) -> bool:
        if math.isinf(ctrl.cap_w):
            return True
        theta = self._theta
        if len(theta) != len(ctrl.theta):
            theta = self._theta = [self.limit_fraction] * len(ctrl.theta)
        it_w = ctrl.it_at(theta) + ctrl.job_delta_w(job, cluster, self.limit_fraction)
        if it_w <= ctrl.it_limit_w():
            return True
        self.refused += 1
        return False


class AdmissionConfig(StrictModel):
    """``kind: admission``: start a job only if its added power fits under the cap."""

    kind: Literal["admission"] = "admission"
    limit_fraction: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="fits with every GPU at this fraction of its board limit (1: without throttling anyone; "
        "below 1 needs capping with min_limit_fraction at or below it)",
    )

    def build(self, cluster_names: list[str]) -> Admission:
        return Admission(self.limit_fraction)


class Capping(_Hooks):
    """Lower GPU power limits until the facility fits: one common fraction per tier, tiers in order."""

    stage = 1
    enforces = True
    quiet_under_cap = True  # (its first test, below)

    def __init__(self, tiers: list[list[int]]) -> None:
        self.tiers = tiers
        # the last solve: its inputs (limit, floors, fixed power and pieces per cluster) and its limits
        self._solved: tuple[float, list[float], list[float], list[list[tuple[float, float, float]]]] | None = None
        self._target: list[float] = []

    def enforce(self, ctrl: PowerState, now_s: float) -> None:
        n = len(ctrl.theta)
        limit = ctrl.it_limit_w()
        if min(ctrl.theta) >= 1.0 and ctrl.it_power_w() <= limit:
            return
        fixed, pieces = ctrl.capping_inputs()
        key = (limit, ctrl.theta_min, fixed, pieces)
        if key == self._solved:  # (a pure function of them: the same limits as last time)
            target = self._target
        else:
            target = self._target = self.solve(limit, ctrl.theta_min, fixed, pieces)
            self._solved = (limit, list(ctrl.theta_min), fixed, pieces)
        for c in range(n):
            ctrl.set_theta(c, target[c], now_s)

    def solve(
        self, limit: float, theta_min: list[float], fixed: list[float], pieces: list[list[tuple[float, float, float]]]
    ) -> list[float]:
        """The GPU limit of every cluster: one common fraction per tier, tiers in order, until IT power fits
        ``limit`` (``fixed[c]``: cluster ``c``'s power that does not depend on its limit, ``pieces[c]`` its
        busy GPUs, see :func:`~gigafactory_sim.energy.solve.max_theta`)."""
        n = len(fixed)

        def it(c: int, theta: float) -> float:  # (list comprehensions: the same sums as generators, faster)
            return fixed[c] + sum([k * (d if d <= (t := theta * b) else t) for k, d, b in pieces[c]])

        target = [1.0] * n
        if sum([it(c, 1.0) for c in range(n)]) > limit:
            for tier in self.tiers:
                others = sum([it(c, target[c]) for c in range(n) if c not in tier])
                budget = limit - others - sum([fixed[c] for c in tier])
                floor = max([theta_min[c] for c in tier])
                theta = max_theta([p for c in tier for p in pieces[c]], budget, floor)
                for c in tier:
                    target[c] = floor if theta is None else theta
                if theta is not None:
                    break
        return target


class CappingConfig(StrictModel):
    """``kind: capping``: lower GPU power limits (DVFS: jobs slow down, their end events move)."""

    kind: Literal["capping"] = "capping"
    min_limit_fraction: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="lowest GPU limit as a fraction of the board limit (H200: settable 200-700 W, 0.29)",
    )
    order: Literal["uniform", "listed"] = Field(
        default="uniform",
        description="uniform: one common fraction for all clusters; listed: throttle `clusters` one after "
        "another (each to its floor before the next), the rest last",
    )
    clusters: list[str] = Field(default_factory=list, description="throttle order for order: listed")

    def build(self, cluster_names: list[str]) -> Capping:
        return Capping(self.build_tiers(cluster_names))

    def build_tiers(self, names: list[str]) -> list[list[int]]:
        if self.order == "uniform":
            return [list(range(len(names)))]
        listed = [[names.index(n)] for n in self.clusters]
        rest = [i for i, n in enumerate(names) if n not in self.clusters]
        return listed + ([rest] if rest else [])


class Preemption(_Hooks):
    """Suspend the lowest-priority running jobs (latest started first) while the cap is out of reach."""

    stage = 0
    enforces = True
    quiet_under_cap = True  # (it acts only above the limit)

    def __init__(self, protect_priority: int | None) -> None:
        self.protect_priority = protect_priority
        self.suspended = 0
        self.suspended_gpu_work_s = 0.0

    def enforce(self, ctrl: PowerState, now_s: float) -> None:
        if math.isinf(ctrl.cap_w):
            return
        limit = ctrl.it_limit_w()
        if ctrl.it_power_w() <= limit:
            return  # (IT power only falls as limits fall: at the floor it would be lower still)
        floor = ctrl.theta_min
        if ctrl.it_at(floor) <= limit:
            return
        victims = [
            (job.priority, -job.start_s, -job.idx, job)
            for _, job, _ in ctrl.running_jobs()
            if self.protect_priority is None or job.priority < self.protect_priority
        ]
        victims.sort(key=lambda v: v[:3])
        for _, _, _, job in victims:
            if ctrl.it_at(floor) <= limit:
                break
            group = job.group
            assert group is not None
            group.advance(now_s)
            self.suspended_gpu_work_s += job.gpus * max(job.v_finish - group.v, 0.0)
            ctrl.suspend(job, now_s)
            self.suspended += 1


class PreemptionConfig(StrictModel):
    """``kind: preemption``: suspend lowest-priority training when the cap drops below what running work
    needs.

    A suspended job keeps its progress (an instant checkpoint) and waits in its queue at its old place.
    """

    kind: Literal["preemption"] = "preemption"
    protect_priority: int | None = Field(default=None, description="never suspend jobs of this priority or higher")

    def build(self, cluster_names: list[str]) -> Preemption:
        return Preemption(self.protect_priority)
