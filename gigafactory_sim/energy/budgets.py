"""Energy, carbon and cost budgets per period, enforced as an effective power cap (budget pacing).

A budget limits a quantity ``q`` of grid electricity per period (``day`` / ``week`` / ``month`` in UTC
calendar periods, or the whole ``horizon``; a period cut by the horizon gets its pro-rata share). Spending
``q`` at grid power ``P`` costs ``P x u(t)`` per second: ``u = 1`` for energy, the carbon intensity for
carbon, the price (when positive) for cost.

Pacing turns the remaining budget into a power cap at every breakpoint ``t_k`` (the signals are constant
between breakpoints). First the energy of idling until the period ends is reserved: ``reserve = P_floor x
U(t)`` with ``U(t)`` the integral of ``u`` to the period's end and ``P_floor`` the facility's power with every
job suspended. What is left, ``R'``, is spread in proportion to ``u x f``: the cap is ``P_floor + R' f_k /
W(t_k)`` with ``W`` the integral of ``u x f`` to the period's end. ``f = 1`` spends evenly in power;
``weighted`` pacing takes ``f = (mean / x) ** strength`` for ``x`` the price or carbon intensity, so cheap or
clean hours get more. Holding power under this cap over ``[t_k, t_k+1)`` gives ``R'(t_k+1) >= R'(t_k) W(t_k+1)
/ W(t_k) >= 0``: the budget is never exceeded, as long as the power policies can always bring the facility
under the cap (preemption can, down to ``P_floor``). A budget below the idle spending ``P_floor x U`` of a
period is rejected."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from gigafactory_sim.config.base import StrictModel

__all__ = [
    "Budget",
    "BudgetConfig",
    "CarbonBudget",
    "CostBudget",
    "EnergyBudget",
    "EvenPacing",
    "PacingConfig",
    "WeightedPacing",
    "period_edges",
]


class EvenPacing(StrictModel):
    """``kind: even``: spend the budget at an even power over the period."""

    kind: Literal["even"] = "even"


class WeightedPacing(StrictModel):
    """``kind: weighted``: give cheap (``by: price``) or low-carbon (``by: carbon``) hours more of the
    budget."""

    kind: Literal["weighted"] = "weighted"
    by: Literal["price", "carbon"] = "carbon"
    strength: float = Field(default=1.0, gt=0, description="f = (mean / x) ** strength")


PacingConfig = Annotated[EvenPacing | WeightedPacing, Field(discriminator="kind")]
Period = Literal["day", "week", "month", "horizon"]


class _BudgetBase(StrictModel):
    per: Period = "horizon"
    pacing: PacingConfig = Field(default_factory=EvenPacing)


class EnergyBudget(_BudgetBase):
    """``kind: energy``: at most ``mwh`` of grid energy per period."""

    kind: Literal["energy"] = "energy"
    mwh: float = Field(gt=0)

    def amount(self) -> float:
        return self.mwh * 3.6e9  # J


class CarbonBudget(_BudgetBase):
    """``kind: carbon``: at most ``t_co2`` of location-based emissions per period (needs grid.carbon)."""

    kind: Literal["carbon"] = "carbon"
    t_co2: float = Field(gt=0)

    def amount(self) -> float:
        return self.t_co2 * 1e6  # g


class CostBudget(_BudgetBase):
    """``kind: cost``: at most ``eur`` of electricity per period (needs grid.price)."""

    kind: Literal["cost"] = "cost"
    eur: float = Field(gt=0)

    def amount(self) -> float:
        return self.eur


BudgetConfig = Annotated[EnergyBudget | CarbonBudget | CostBudget, Field(discriminator="kind")]
CHANNEL = {"energy": "grid_import_w", "carbon": "carbon_g_per_s", "cost": "cost_eur_per_s"}
UNIT = {"energy": ("MWh", 3.6e9), "carbon": ("t", 1e6), "cost": ("EUR", 1.0)}


def period_edges(per: Period, start: datetime, horizon_s: float) -> np.ndarray:
    """Period boundaries in seconds from ``start``: 0, calendar boundaries inside the horizon, horizon."""
    if per == "horizon":
        return np.array([0.0, horizon_s])
    freq = {"day": "D", "week": "W-MON", "month": "MS"}[per]
    t0 = pd.Timestamp(start)
    inner = pd.date_range(t0, t0 + pd.Timedelta(seconds=horizon_s), freq=freq, inclusive="neither")
    secs = [(t - t0).total_seconds() for t in inner]
    return np.array([0.0, *[s for s in secs if 0.0 < s < horizon_s], horizon_s])


def full_period_s(per: Period, start: datetime, t_s: float, horizon_s: float) -> float:
    """Length of the calendar period that contains ``t_s`` (for pro-rata budgets of cut periods)."""
    if per == "horizon":
        return horizon_s
    t = pd.Timestamp(start) + pd.Timedelta(seconds=t_s)
    if per == "day":
        return 86400.0
    if per == "week":
        return 7 * 86400.0
    return float(t.days_in_month) * 86400.0


@dataclass
class Budget:
    """A budget at run time: its periods on the breakpoint grid and the pacing cap."""

    config: EnergyBudget | CarbonBudget | CostBudget
    edges: np.ndarray  # period boundaries (s)
    amounts: np.ndarray  # budget of each period (J, g or EUR)
    floor_w: float
    seg_u: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per breakpoint segment
    seg_f: np.ndarray = field(default_factory=lambda: np.zeros(0))
    suffix_u: np.ndarray = field(default_factory=lambda: np.zeros(0))  # integral of u to the period end
    suffix_w: np.ndarray = field(default_factory=lambda: np.zeros(0))  # integral of u f to the period end
    period_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    spent_at_start: float = 0.0
    period: int = -1

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def channel(self) -> str:
        return CHANNEL[self.config.kind]

    def prepare(self, times: np.ndarray, u: np.ndarray, f: np.ndarray) -> None:
        """Precompute the suffix integrals over the breakpoint grid ``times`` (0 .. horizon)."""
        dt = np.diff(times)
        self.seg_u, self.seg_f = u, f
        self.period_of = np.searchsorted(self.edges, times[:-1], side="right") - 1
        uw = u * dt
        fw = u * f * dt
        self.suffix_u = np.zeros(len(dt))
        self.suffix_w = np.zeros(len(dt))
        for p in range(len(self.edges) - 1):
            idx = np.flatnonzero(self.period_of == p)
            if len(idx):
                self.suffix_u[idx] = np.cumsum(uw[idx][::-1])[::-1]
                self.suffix_w[idx] = np.cumsum(fw[idx][::-1])[::-1]

    def idle_need(self, p: int) -> float:
        """Spending of the facility at its floor power over period ``p``."""
        idx = np.flatnonzero(self.period_of == p)
        return self.floor_w * float(self.suffix_u[idx[0]]) if len(idx) else 0.0

    def cap_w(self, k: int, spent: float) -> float:
        """The pacing cap on grid power for breakpoint segment ``k``, given the total spent so far."""
        p = int(self.period_of[k])
        if p != self.period:
            self.period = p
            self.spent_at_start = spent
        if self.seg_u[k] <= 0.0:
            return math.inf  # nothing is spent in this segment
        remaining = self.amounts[p] - (spent - self.spent_at_start)
        dynamic = remaining - self.floor_w * float(self.suffix_u[k])
        w = float(self.suffix_w[k])
        if w <= 0.0:
            return math.inf
        return self.floor_w + max(dynamic, 0.0) * float(self.seg_f[k]) / w
