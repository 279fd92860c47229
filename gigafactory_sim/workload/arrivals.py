"""Arrival processes for synthetic job streams (tagged union on ``kind``).

Each variant generates all arrival times in ``[0, horizon_s)`` at once with numpy (vectorised; no SimPy process per
job). Times are seconds from the scenario ``start``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.numerics import libm

__all__ = ["ArrivalProcess", "DiurnalArrivals", "PoissonArrivals", "poisson_times"]

_CHUNK = 4096  # gaps are drawn in fixed-size chunks, so the draws never depend on the horizon


def poisson_times(rng: np.random.Generator, rate_per_s: float, horizon_s: float) -> np.ndarray:
    """Arrival times of a homogeneous Poisson process in ``[0, horizon_s)``, built from successive exponential gaps.

    Prefix-consistent: the arrivals of a shorter horizon are exactly the first arrivals of a longer one (same
    stream), so changing the horizon never reshuffles the workload.
    """
    chunks: list[np.ndarray] = []
    t0 = 0.0
    while True:
        times = t0 + np.cumsum(rng.exponential(1.0 / rate_per_s, _CHUNK))
        chunks.append(times)
        t0 = float(times[-1])
        if t0 >= horizon_s:
            break
    out = np.concatenate(chunks)
    return out[out < horizon_s]


class PoissonArrivals(StrictModel):
    """Homogeneous Poisson arrivals at ``rate_per_hour``."""

    kind: Literal["poisson"] = "poisson"
    rate_per_hour: float = Field(gt=0)

    def mean_rate_per_s(self) -> float:
        return self.rate_per_hour / 3600.0

    def times_s(self, rng: np.random.Generator, horizon_s: float, start: datetime) -> np.ndarray:
        return poisson_times(rng, self.mean_rate_per_s(), horizon_s)


class DiurnalArrivals(StrictModel):
    """Poisson arrivals whose rate follows the day: a cosine with its maximum at ``peak_hour`` local time.

    ``peak_to_trough`` is the ratio of the highest to the lowest hourly rate; ``weekend_factor`` scales Saturdays
    and Sundays; ``utc_offset_h`` places local time. ``mean_rate_per_hour`` is the mean over a weekday.
    Generated exactly by thinning a homogeneous process at the peak rate (candidates and acceptance draws from two
    sub-streams, so the arrivals stay prefix-consistent in the horizon).
    """

    kind: Literal["diurnal"] = "diurnal"
    mean_rate_per_hour: float = Field(gt=0)
    peak_to_trough: float = Field(default=3.0, ge=1)
    peak_hour: float = Field(default=14.0, ge=0, lt=24)
    weekend_factor: float = Field(default=1.0, ge=0)
    utc_offset_h: float = Field(default=1.0, ge=-12, le=14)

    def _amplitude(self) -> float:
        return (self.peak_to_trough - 1.0) / (self.peak_to_trough + 1.0)

    def rate_per_s(self, t_s: np.ndarray, start: datetime) -> np.ndarray:
        base = self.mean_rate_per_hour / 3600.0
        epoch_s = start.timestamp() + self.utc_offset_h * 3600.0
        local_s = epoch_s + t_s
        hour = (local_s % 86400.0) / 3600.0
        day_of_week = ((local_s // 86400.0).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
        weekend = np.where(day_of_week >= 5, self.weekend_factor, 1.0)
        return base * (1.0 + self._amplitude() * libm.cos(2 * math.pi * (hour - self.peak_hour) / 24.0)) * weekend

    def mean_rate_per_s(self) -> float:
        return self.mean_rate_per_hour / 3600.0 * (5 + 2 * self.weekend_factor) / 7

    def times_s(self, rng: np.random.Generator, horizon_s: float, start: datetime) -> np.ndarray:
        peak = self.mean_rate_per_hour / 3600.0 * (1.0 + self._amplitude()) * max(1.0, self.weekend_factor)
        candidate_rng, accept_rng = rng.spawn(2)
        candidates = poisson_times(candidate_rng, peak, horizon_s)
        keep = accept_rng.uniform(0.0, peak, len(candidates)) < self.rate_per_s(candidates, start)
        return candidates[keep]


ArrivalProcess = Annotated[PoissonArrivals | DiurnalArrivals, Field(discriminator="kind")]
