"""GPU power models (after OpenDC's ``power(utilisation)`` models), extended with a power limit and DVFS speed.

Sign and unit conventions: ``load`` is the *offered* compute load as a fraction of the GPU's unthrottled burst
speed (0 = idle with a context open, 1 = compute-bound at full clocks); powers are watts drawn by one GPU board;
``speed`` is the fraction of the unthrottled speed the GPU sustains (1.0 = not throttled).

The default model, :class:`DvfsPowerModel`, is fitted to the H200 measured in
``../shared/data/gpu_power/h200/`` (README there): idle with a context ~122 W, ~800 W per unit of offered load
above idle (unthrottled demand ~922 W at full load), capped at the 700 W board limit, where clocks drop and the
sustained speed is ((P_cap - P_idle) / (P_demand - P_idle)) ** (1 / 1.9) ~= 0.84.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["DvfsPowerModel", "GpuPowerModel", "InterpolatedPowerModel", "LinearPowerModel"]


@runtime_checkable
class GpuPowerModel(Protocol):
    """Power of one GPU board against offered load, under a power limit."""

    @property
    def idle_w(self) -> float:
        """Idle power with a context open (W)."""
        ...

    @property
    def limit_w(self) -> float:
        """Board power limit (W)."""
        ...

    def demand_w(self, load: float) -> float:
        """Unthrottled power at ``load`` (may exceed the limit)."""
        ...

    def power_w(self, load: float, limit_w: float | None = None) -> float:
        """Power actually drawn at ``load`` under ``limit_w`` (default: the board limit)."""
        ...

    def speed(self, load: float, limit_w: float | None = None) -> float:
        """Sustained speed as a fraction of the unthrottled speed at ``load`` under ``limit_w``."""
        ...


def _clip_load(load: float) -> float:
    return 0.0 if load < 0.0 else (1.0 if load > 1.0 else load)


def _capped(limit_w: float, cap_w: float | None) -> float:
    return limit_w if cap_w is None else min(cap_w, limit_w)


def clipped_power_w(demand_w: float, cap_w: float, idle_w: float) -> float:
    """Power of work demanding ``demand_w`` under ``cap_w``: the demand, clipped at the cap (never below idle)."""
    return min(demand_w, max(cap_w, idle_w))


def dvfs_speed(demand_w: float, cap_w: float, idle_w: float, alpha: float) -> float:
    """Sustained speed under ``cap_w`` of work demanding ``demand_w``: ((cap - idle) / (demand - idle))^(1/alpha)."""
    if demand_w <= cap_w or demand_w <= idle_w:
        return 1.0
    if cap_w <= idle_w:
        return 0.0
    return float(((cap_w - idle_w) / (demand_w - idle_w)) ** (1.0 / alpha))


@dataclass(frozen=True)
class DvfsPowerModel:
    """Linear demand ``idle + slope * load``, clipped at the limit; DVFS speed penalty above it.

    ``alpha`` is the exponent of power against speed when the limit bites (power falls faster than speed):
    ``speed = ((limit - idle) / (demand - idle)) ** (1 / alpha)``; 1.9 fits the measured H200 full-load point.
    ``memory_slope_w`` is the rise for memory-bound work (HBM streaming), which the H200 reached at 641 W at full
    bandwidth without throttling.
    """

    idle_w: float
    slope_w: float
    limit_w: float
    alpha: float = 1.9
    memory_slope_w: float = 0.0

    def demand_w(self, load: float) -> float:
        return self.idle_w + self.slope_w * _clip_load(load)

    def power_w(self, load: float, limit_w: float | None = None) -> float:
        return clipped_power_w(self.demand_w(load), _capped(self.limit_w, limit_w), self.idle_w)

    def speed(self, load: float, limit_w: float | None = None) -> float:
        return dvfs_speed(self.demand_w(load), _capped(self.limit_w, limit_w), self.idle_w, self.alpha)

    def memory_power_w(self, load: float) -> float:
        """Power of memory-bound work streaming HBM at ``load`` of peak bandwidth (no throttling)."""
        return min(self.idle_w + self.memory_slope_w * _clip_load(load), self.limit_w)

    def limit_for_speed(self, load: float, speed: float) -> float:
        """The power limit under which work at ``load`` sustains ``speed`` (inverse of :meth:`speed`)."""
        demand = self.demand_w(load)
        if speed >= 1.0:
            return min(demand, self.limit_w) if demand <= self.limit_w else self.limit_w
        return self.idle_w + (demand - self.idle_w) * speed**self.alpha


@dataclass(frozen=True)
class LinearPowerModel:
    """OpenDC's linear model: ``idle + (max - idle) * load``; a limit clips power and slows work linearly."""

    idle_w: float
    max_w: float
    limit_w: float

    def demand_w(self, load: float) -> float:
        return self.idle_w + (self.max_w - self.idle_w) * _clip_load(load)

    def power_w(self, load: float, limit_w: float | None = None) -> float:
        return clipped_power_w(self.demand_w(load), _capped(self.limit_w, limit_w), self.idle_w)

    def speed(self, load: float, limit_w: float | None = None) -> float:
        cap = _capped(self.limit_w, limit_w)
        demand = self.demand_w(load)
        if demand <= cap or demand <= self.idle_w:
            return 1.0
        return max(0.0, (cap - self.idle_w) / (demand - self.idle_w))


@dataclass(frozen=True)
class InterpolatedPowerModel:
    """Piecewise-linear power through measured ``(load, power_w)`` points (OpenDC's interpolation model).

    Speed under a limit below the demand follows the DVFS law with exponent ``alpha``.
    """

    loads: tuple[float, ...]
    powers_w: tuple[float, ...]
    limit_w: float
    alpha: float = 1.9

    def __post_init__(self) -> None:
        if len(self.loads) != len(self.powers_w) or len(self.loads) < 2:
            raise ValueError("an interpolated power model needs at least two (load, power) points")
        if list(self.loads) != sorted(self.loads):
            raise ValueError("interpolation loads must be increasing")

    @property
    def idle_w(self) -> float:
        return self.powers_w[0]

    def demand_w(self, load: float) -> float:
        x = _clip_load(load)
        i = bisect.bisect_right(self.loads, x)
        if i <= 0:
            return self.powers_w[0]
        if i >= len(self.loads):
            return self.powers_w[-1]
        x0, x1 = self.loads[i - 1], self.loads[i]
        y0, y1 = self.powers_w[i - 1], self.powers_w[i]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    def power_w(self, load: float, limit_w: float | None = None) -> float:
        return clipped_power_w(self.demand_w(load), _capped(self.limit_w, limit_w), self.idle_w)

    def speed(self, load: float, limit_w: float | None = None) -> float:
        return dvfs_speed(self.demand_w(load), _capped(self.limit_w, limit_w), self.idle_w, self.alpha)
