"""Exact integration of piecewise-constant quantities (power, allocated GPUs, queue length) between events.

Every state change first calls :meth:`Meter.advance` with the current time, which adds ``value x elapsed`` for every
channel, then sets new values. Energy is therefore the exact integral of power, never a sum of samples. The peak
of the IT power is taken over segments of positive length, so same-instant transients (a job ending and another
starting at the same time) never count.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Meter"]


class Meter:
    """Channels of piecewise-constant values and their running integrals (value x seconds)."""

    def __init__(self, names: list[str], it_power_names: list[str]) -> None:
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.values = np.zeros(len(names))
        self.integral = np.zeros(len(names))
        self._it_idx = np.array([self.index[n] for n in it_power_names], dtype=np.int64)
        self.t_s = 0.0
        self.peak_it_w = 0.0
        self.peak_it_at_s = 0.0

    def advance(self, now_s: float) -> None:
        dt = now_s - self.t_s
        if dt > 0.0:
            self.integral += self.values * dt
            it_w = float(self.values[self._it_idx].sum())
            if it_w > self.peak_it_w:
                self.peak_it_w = it_w
                self.peak_it_at_s = self.t_s
            self.t_s = now_s

    def it_power_w(self) -> float:
        return float(self.values[self._it_idx].sum())

    def snapshot(self) -> np.ndarray:
        return self.integral.copy()
