"""Exact facility, grid, carbon and cost accounting: a meter probe.

Between two events every meter value is constant, and the engine puts an event at every breakpoint of every
grid signal, so between breakpoints the carbon intensity, price, PUE coefficients ``a, b``, renewable output
and caps are constant too. Facility power ``a x IT + b`` is then linear in the metered IT power, and its
integral over an interval is ``a x (IT energy) + b x (length)``: it is computed at *flush* points (every
breakpoint, before the signals change, and every snapshot) from the meter's own integrals. What is not linear
is taken per segment: renewable self-consumption ``min(facility, renewable available)`` (the rest of the
facility power is grid import; no export), energy drawn above the hard cap, and the peaks.

Derived channels (integrals written at each flush; sign conventions: power drawn by the site >= 0):
``facility_w``, ``grid_import_w``, ``renewable_used_w``, ``carbon_g_per_s`` (grid import x intensity:
location-based, only grid electricity carries carbon), ``cost_eur_per_s`` (grid import x price; negative
prices pay the site), their training shares (pro rata of IT energy over each flush interval: overheads and
renewables are shared in proportion), busy GPUs x intensity and x price (for weighted utilisation), and
``over_cap_w``."""

from __future__ import annotations

import math

import numpy as np

from gigafactory_sim.eed.probe import EedProbe
from gigafactory_sim.sim import channels
from gigafactory_sim.units import J_PER_KWH, J_PER_MWH

__all__ = ["DERIVED", "SIGNALS", "Accounting"]

DERIVED = channels.ENERGY_DERIVED
SIGNALS = channels.ENERGY_SIGNALS


class Accounting:
    """The :class:`~gigafactory_sim.sim.meter.SegmentProbe` of the energy system."""

    def __init__(
        self,
        index: dict[str, int],
        it_channels: list[str],
        train_channels: list[str],
        busy_channels: list[str],
        infer_channels: list[str] | None = None,
    ) -> None:
        self._it = np.array([index[n] for n in it_channels], dtype=np.int64)
        self._train = np.array([index[n] for n in train_channels], dtype=np.int64)
        self._infer = np.array([index[n] for n in infer_channels or []], dtype=np.int64)
        self._busy = np.array([index[n] for n in busy_channels], dtype=np.int64)
        self._out = [index[n] for n in DERIVED]
        self.a = 1.0
        self.b_w = 0.0
        self.renewable_w = 0.0
        self.carbon_g_per_kwh = 0.0
        self.price_eur_per_mwh = 0.0
        self.cap_w = math.inf
        self.hard_cap_w = math.inf
        self.peak_facility_w = 0.0
        self.peak_facility_at_s = 0.0
        self.peak_grid_w = 0.0
        self.max_excess_w = -math.inf  # largest grid import - effective cap on any segment
        self.max_excess_at_s = 0.0
        self.max_hard_excess_w = -math.inf
        self._used_j = 0.0
        self._over_j = 0.0
        self._last = (0.0, 0.0, 0.0, 0.0, 0.0)  # (t, IT J, training IT J, busy GPU-s, inference IT J)
        self.eed: EedProbe | None = None  # the EED figures, when the scenario models them

    def segment(self, it_w: float, t0_s: float, dt_s: float) -> None:
        fac = self.a * it_w + self.b_w
        if self.eed is not None:
            self.eed.segment(it_w, fac, dt_s)
        ren = self.renewable_w
        if fac < ren:
            self._used_j += fac * dt_s
            grid = 0.0
        else:
            self._used_j += ren * dt_s
            grid = fac - ren
        if fac > self.peak_facility_w:
            self.peak_facility_w = fac
            self.peak_facility_at_s = t0_s
        if grid > self.peak_grid_w:
            self.peak_grid_w = grid
        if grid - self.cap_w > self.max_excess_w:
            self.max_excess_w = grid - self.cap_w
            self.max_excess_at_s = t0_s
        over = grid - self.hard_cap_w
        if over > self.max_hard_excess_w:
            self.max_hard_excess_w = over
        if over > 0.0:
            self._over_j += over * dt_s

    def flush(self, integral: np.ndarray, now_s: float) -> None:
        """Add the derived integrals since the last flush (signals must not have changed since)."""
        t0, it0, train0, busy0, infer0 = self._last
        it = float(integral[self._it].sum())
        train = float(integral[self._train].sum())
        busy = float(integral[self._busy].sum())
        infer = float(integral[self._infer].sum()) if len(self._infer) else 0.0
        self._last = (now_s, it, train, busy, infer)
        d_it = it - it0
        fac = self.a * d_it + self.b_w * (now_s - t0)
        grid = fac - self._used_j
        share = (train - train0) / d_it if d_it > 0.0 else 0.0
        infer_share = (infer - infer0) / d_it if d_it > 0.0 else 0.0
        carbon = grid * self.carbon_g_per_kwh / J_PER_KWH
        cost = grid * self.price_eur_per_mwh / J_PER_MWH
        d_busy = busy - busy0
        for k, x in zip(
            self._out,
            (
                fac,
                grid,
                self._used_j,
                carbon,
                cost,
                carbon * share,
                cost * share,
                d_busy * self.carbon_g_per_kwh,
                d_busy * self.price_eur_per_mwh,
                self._over_j,
                carbon * infer_share,
                cost * infer_share,
            ),
            strict=True,
        ):
            integral[k] += x
        self._used_j = 0.0
        self._over_j = 0.0
        if self.eed is not None:
            self.eed.flush(integral)
