"""Carbon- and price-aware deferral: flexible training jobs wait for low-carbon or cheap hours.

A job is *flexible* if it comes from one of ``sources`` (default: all) and its priority is at most
``max_priority``. On arrival it is held out of the queue until its release time, decided at once from the
signal (the day-ahead price and the carbon forecast are taken as known):

- ``threshold``: the first time within ``max_delay`` at which the signal is at or below ``threshold``;
- ``window``: the start, within ``max_delay``, that minimises the mean signal over the job's run (its work at
  reference speed, at most ``run_window``), a forecast-window rule;

and at the latest ``submit + max_delay``. Its deadline is ``submit + max_delay + work`` (its work at reference
speed): a job that ends later (it still had to queue, or ran throttled) is a deadline miss.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.grid.signals import Signal
from gigafactory_sim.units import Duration

__all__ = ["Deferral", "DeferralConfig"]

_MAX_CELLS = 1 << 18  # candidate starts release_many tables at once (a few MB)


class DeferralConfig(StrictModel):
    """``kind: deferral``: flexible training jobs wait for low-carbon or low-price hours."""

    kind: Literal["deferral"] = "deferral"
    signal: Literal["carbon", "price"] = "carbon"
    rule: Literal["threshold", "window"] = "threshold"
    threshold: float | None = Field(default=None, description="gCO2/kWh or EUR/MWh; for rule: threshold")
    max_delay: Duration = Field(default=12 * 3600.0, description="longest hold (deadline: submit + max_delay + work)")
    run_window: Duration = Field(default=24 * 3600.0, description="rule window: longest run time considered")
    sources: list[str] | None = Field(default=None, description="workload sources whose jobs are flexible")
    max_priority: int = Field(default=0, description="jobs of this priority or lower are flexible")

    @model_validator(mode="after")
    def _threshold(self) -> DeferralConfig:
        if self.rule == "threshold" and self.threshold is None:
            raise ValueError("rule: threshold needs a threshold")
        return self


class Deferral:
    """Decides release times; holds no SimPy (the energy system schedules the releases)."""

    def __init__(self, cfg: DeferralConfig, signal: Signal, flexible_sources: set[int], horizon_s: float) -> None:
        self.cfg = cfg
        self.signal = signal
        self.flexible_sources = flexible_sources
        self.horizon_s = horizon_s
        t = signal.times_s
        self._t = np.concatenate((t, [max(t[-1], 0.0) + 10 * horizon_s + 1.0]))
        seg = np.diff(self._t) * signal.values
        self._cum = np.concatenate(([0.0], np.cumsum(seg)))
        self._t_list: list[float] = self._t.tolist()
        self._cum_list: list[float] = self._cum.tolist()
        self._times_list: list[float] = t.tolist()
        self.held = 0
        self.deferred = 0
        self.delay_s = 0.0
        self.deferred_gpu_s = 0.0

    def is_flexible(self, source: int, priority: int) -> bool:
        return source in self.flexible_sources and priority <= self.cfg.max_priority

    def _cumulative(self, t: np.ndarray) -> np.ndarray:
        """Integral of the signal from its first breakpoint to ``t`` (vectorised, exact)."""
        return np.interp(t, self._t, self._cum)

    def _cumulative_at(self, x: float) -> float:
        """:meth:`_cumulative` of one time, in plain floats: ``np.interp``'s own steps (the breakpoint at or below
        ``x``, its value at a breakpoint, else ``slope x (x - t_j) + c_j``), the same result for a few hundred
        nanoseconds instead of microseconds (a deferral decision evaluates a handful)."""
        t, cum = self._t_list, self._cum_list
        j = bisect_right(t, x) - 1
        if j < 0:
            return cum[0]
        if j >= len(t) - 1 or t[j] == x:
            return cum[j]
        slope = (cum[j + 1] - cum[j]) / (t[j + 1] - t[j])
        return slope * (x - t[j]) + cum[j]

    def release_s(self, now_s: float, work_s: float) -> float:
        """When a flexible job arriving now should join the queue."""
        deadline = now_s + self.cfg.max_delay
        times = self._times_list
        i0, i1 = bisect_right(times, now_s), bisect_right(times, deadline)  # breakpoints in (now, deadline]
        if self.cfg.rule == "threshold":
            cands = np.concatenate(([now_s], self.signal.times_s[i0:i1]))
            assert self.cfg.threshold is not None
            ok = np.flatnonzero(np.array([self.signal.at(c) for c in cands]) <= self.cfg.threshold)
            return float(cands[ok[0]]) if len(ok) else deadline
        run = max(min(work_s, self.cfg.run_window), 1.0)
        cum = self._cumulative_at
        at = self._cum_list  # the integral at breakpoint i (each candidate after now is one: np.interp's dy[j])
        best_s, best = now_s, (cum(now_s + run) - cum(now_s)) / run
        for i in range(i0, i1):  # the first start of the least mean (np.argmin's choice)
            c = times[i]
            mean = (cum(c + run) - at[i]) / run
            if mean < best:
                best_s, best = c, mean
        return best_s

    def _cumulative_many(self, x: np.ndarray) -> np.ndarray:
        """:meth:`_cumulative_at` of many times: its very steps as elementwise numpy (each a correctly rounded
        IEEE operation, as in plain floats), so each result is the same float."""
        t, cum = self._t, self._cum
        last = len(t) - 1
        j = np.searchsorted(t, x, side="right") - 1  # bisect_right - 1
        jc = np.clip(j, 0, last)
        lo = np.minimum(jc, last - 1)  # (the segment's left end; where jc is last the result is cum[jc] below)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (cum[lo + 1] - cum[lo]) / (t[lo + 1] - t[lo])
            out = slope * (x - t[lo]) + cum[lo]
        out = np.where((j >= last) | (t[jc] == x), cum[jc], out)
        return np.where(j < 0, cum[0], out)

    def release_many(self, now_s: np.ndarray, work_s: np.ndarray) -> np.ndarray:
        """:meth:`release_s` of many arrivals at once (arrays of their times and work): the same floats. The
        window rule is evaluated as one table of candidate starts per arrival (each row: now, then the
        breakpoints in ``(now, now + max_delay]``), with :meth:`release_s`'s own operations; its first least
        mean is np.argmin's choice, as the strict ``<`` scan's. Rows with a NaN mean (never with a finite signal)
        and the threshold rule take :meth:`release_s` itself."""
        now_s = np.asarray(now_s, dtype=float)
        work_s = np.asarray(work_s, dtype=float)
        n = len(now_s)
        if self.cfg.rule != "window" or n == 0:
            return np.array([self.release_s(a, w) for a, w in zip(now_s.tolist(), work_s.tolist(), strict=True)])
        times = self.signal.times_s
        deadline = now_s + self.cfg.max_delay
        i0 = np.searchsorted(times, now_s, side="right")
        i1 = np.searchsorted(times, deadline, side="right")
        count = i1 - i0
        k = int(count.max())
        if n > 1 and n * (k + 1) > _MAX_CELLS:  # (many breakpoints within max_delay: fewer rows at a time)
            h = n // 2
            return np.concatenate((self.release_many(now_s[:h], work_s[:h]), self.release_many(now_s[h:], work_s[h:])))
        run = np.maximum(np.minimum(work_s, self.cfg.run_window), 1.0)
        means = np.empty((n, k + 1))
        starts = np.empty((n, k + 1))
        starts[:, 0] = now_s
        means[:, 0] = (self._cumulative_many(now_s + run) - self._cumulative_many(now_s)) / run
        if k:
            cols = np.arange(k)
            idx = np.minimum(i0[:, None] + cols[None, :], len(times) - 1)
            c = times[idx]
            starts[:, 1:] = c
            means[:, 1:] = (self._cumulative_many(c + run[:, None]) - self._cum[idx]) / run[:, None]
            means[:, 1:][cols[None, :] >= count[:, None]] = np.inf  # past the row's last candidate
        out = starts[np.arange(n), np.argmin(means, axis=1)]
        odd = np.flatnonzero(np.isnan(means).any(axis=1))
        for r in odd.tolist():
            out[r] = self.release_s(float(now_s[r]), float(work_s[r]))
        return out
