"""Exact per-year integrals of the EED figures, taken segment by segment during the run.

:class:`EedProbe` rides on the energy system's accounting probe (:class:`~gigafactory_sim.energy.accounting.
Accounting` calls :meth:`EedProbe.segment` for every piece of constant power): between two events IT power,
facility power and every signal are constant, and calendar-year and UTC hour edges are breakpoints, so each
piece lies in one year and one hour. Per piece, with IT power ``P`` and facility power ``F``:

- reused heat ``R = min(share x P, demand, capacity)``; water ``w(T) x (P - R)`` (the heat the cooling rejects);
- on-site renewables used ``min(F, on-site output)``; PPA energy (annual matching counts all of it, up to E_DC);
- hourly matching: per UTC hour ``min(F energy, (on-site + PPA) energy)``, closed at each hour edge;
- location-based carbon: grid import ``F - on-site used`` x the intensity in force.

The same figures go into meter channels (``heat_reused_w``, ``water_l_per_s``, ``ppa_w``) so the time series
carries them as interval means whose sums equal the yearly totals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigafactory_sim.eed.prepare import EedPlan

__all__ = ["EED_CHANNELS", "FIGURES", "EedProbe", "eed_columns"]

EED_CHANNELS = ("heat_reused_w", "water_l_per_s", "ppa_w")
FIGURES = ("e_dc_j", "e_it_j", "water_l", "reuse_j", "onsite_used_j", "ppa_j", "matched_hourly_j", "carbon_g")
_J_PER_KWH = 3.6e6
_J_PER_MWH = 3.6e9


class EedProbe:
    """Per-year accumulators of one run; see the module docstring."""

    def __init__(self, plan: EedPlan, index: dict[str, int], has_carbon: bool) -> None:
        self.plan = plan
        self.has_carbon = has_carbon
        self.totals = {name: np.zeros(len(plan.years)) for name in FIGURES}
        self._ch = np.array([index[n] for n in EED_CHANNELS], dtype=np.int64)
        self._pending = np.zeros(len(EED_CHANNELS))
        self._hour = -1
        self._hour_year = 0
        self._hour_fac_j = 0.0
        self._hour_res_j = 0.0
        self._year = 0
        self._water_l_per_j = 0.0
        self._demand_w = 0.0
        self._onsite_w = 0.0
        self._ppa_w = 0.0
        self._carbon = 0.0

    def apply(self, k: int, carbon_g_per_kwh: float) -> None:
        """Put segment ``k``'s inputs in force (after the accounting flushed the pieces before it)."""
        p = self.plan
        hour = int(p.seg_hour[k])
        if hour != self._hour:
            self.close_hour()
            self._hour = hour
        self._year = self._hour_year = int(p.seg_year[k])
        self._water_l_per_j = float(p.seg_water_l_per_j[k])
        self._demand_w = float(p.seg_demand_w[k])
        self._onsite_w = float(p.seg_onsite_w[k])
        self._ppa_w = float(p.seg_ppa_w[k])
        self._carbon = carbon_g_per_kwh

    def close_hour(self) -> None:
        """Count the hour's matched renewable energy (call at each hour edge and once at the end)."""
        if self._hour_fac_j or self._hour_res_j:
            self.totals["matched_hourly_j"][self._hour_year] += min(self._hour_fac_j, self._hour_res_j)
        self._hour_fac_j = self._hour_res_j = 0.0

    def segment(self, it_w: float, fac_w: float, dt_s: float) -> None:
        """Integrate one piece of constant power (IT ``it_w``, facility ``fac_w``) of length ``dt_s``."""
        t = self.totals
        y = self._year
        reuse_w = min(self.plan.recoverable_share * it_w, self._demand_w, self.plan.capacity_w)
        water_l_per_s = self._water_l_per_j * (it_w - reuse_w)
        used_w = min(fac_w, self._onsite_w)
        t["e_dc_j"][y] += fac_w * dt_s
        t["e_it_j"][y] += it_w * dt_s
        t["reuse_j"][y] += reuse_w * dt_s
        t["water_l"][y] += water_l_per_s * dt_s
        t["onsite_used_j"][y] += used_w * dt_s
        t["ppa_j"][y] += self._ppa_w * dt_s
        t["carbon_g"][y] += (fac_w - used_w) * dt_s * self._carbon / _J_PER_KWH
        self._hour_fac_j += fac_w * dt_s
        self._hour_res_j += (self._onsite_w + self._ppa_w) * dt_s
        pend = self._pending
        pend[0] += reuse_w * dt_s
        pend[1] += water_l_per_s * dt_s
        pend[2] += self._ppa_w * dt_s

    def flush(self, integral: np.ndarray) -> None:
        """Add the channel integrals since the last flush."""
        integral[self._ch] += self._pending
        self._pending[:] = 0.0

    def section(self) -> list[dict[str, Any]]:
        """The per-year totals (``summary.json``'s ``eed.years``), in MWh, m3 and t."""
        self.close_hour()
        p, t = self.plan, self.totals
        out = []
        for i, year in enumerate(p.years):
            out.append(
                {
                    "year": year,
                    "from_s": float(p.year_edges_s[i]),
                    "to_s": float(p.year_edges_s[i + 1]),
                    "e_dc_mwh": float(t["e_dc_j"][i] / _J_PER_MWH),
                    "e_it_mwh": float(t["e_it_j"][i] / _J_PER_MWH),
                    "w_in_m3": float(t["water_l"][i] / 1000.0) if p.cooling_kind is not None else None,
                    "e_reuse_mwh": float(t["reuse_j"][i] / _J_PER_MWH),
                    "e_res_onsite_mwh": float(t["onsite_used_j"][i] / _J_PER_MWH),
                    "e_res_ppa_mwh": float(t["ppa_j"][i] / _J_PER_MWH),
                    "e_res_hourly_matched_mwh": float(t["matched_hourly_j"][i] / _J_PER_MWH),
                    "carbon_t": float(t["carbon_g"][i] / 1e6) if self.has_carbon else None,
                }
            )
        return out


def eed_columns(index: dict[str, int], means: np.ndarray, dt_s: np.ndarray) -> dict[str, np.ndarray]:
    """Time-series columns: reused heat (MW, mean), site water (m3 per interval), PPA output (MW, mean)."""
    return {
        "heat_reused_mw": means[:, index["heat_reused_w"]] / 1e6,
        "water_m3": means[:, index["water_l_per_s"]] * dt_s / 1000.0,
        "ppa_mw": means[:, index["ppa_w"]] / 1e6,
    }
