"""Exact integration of piecewise-constant quantities (power, allocated GPUs, queue length) between events.

Every state change first calls :meth:`Meter.advance` with the current time, which adds ``value x elapsed`` for
every channel, then sets new values. Energy is therefore the exact integral of power, never a sum of samples.
The peak of the IT power is taken over segments of positive length, so same-instant transients (a job ending
and another starting at the same time) never count."""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["Meter", "SegmentProbe"]

_sum = np.add.reduce  # what ndarray.sum calls, without its Python wrapper (the same sum)


class SegmentProbe(Protocol):
    """Derives quantities that are not linear in the channels (e.g. renewable self-consumption, cap excess).

    :meth:`segment` sees every segment of positive length ``[t0_s, t0_s + dt_s)`` with its IT power;
    :meth:`flush` writes what the probe accumulated into ``integral`` (called before every snapshot).
    """

    def segment(self, it_w: float, t0_s: float, dt_s: float) -> None: ...

    def flush(self, integral: np.ndarray, now_s: float) -> None: ...


class Meter:
    """Channels of piecewise-constant values and their running integrals (value x seconds)."""

    def __init__(self, names: list[str], it_power_names: list[str]) -> None:
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.values = np.zeros(len(names))
        self.integral = np.zeros(len(names))
        self.it_power_names = list(it_power_names)
        self._it_idx = np.array([self.index[n] for n in it_power_names], dtype=np.int64)
        self._it: slice | np.ndarray = self._it_idx  # a slice when the channels are adjacent: the same sum, no copy
        if len(self._it_idx) and np.array_equal(
            self._it_idx, np.arange(self._it_idx[0], self._it_idx[0] + len(self._it_idx))
        ):
            self._it = slice(int(self._it_idx[0]), int(self._it_idx[0]) + len(self._it_idx))
        self.t_s = 0.0
        self.peak_it_w = 0.0
        self.peak_it_at_s = 0.0
        self.probe: SegmentProbe | None = None

    def add_channels(self, names: list[str]) -> list[int]:
        """Append channels (value 0, integral 0); returns their indices. Call before the first snapshot."""
        first = len(self.names)
        self.names += names
        self.index.update({n: first + i for i, n in enumerate(names)})
        self.values = np.concatenate([self.values, np.zeros(len(names))])
        self.integral = np.concatenate([self.integral, np.zeros(len(names))])
        return list(range(first, first + len(names)))

    def advance(self, now_s: float) -> None:
        dt = now_s - self.t_s
        if dt > 0.0:
            values = self.values
            self.integral += values * dt
            it_w = float(_sum(values[self._it]))
            if self.probe is not None:
                self.probe.segment(it_w, self.t_s, dt)
            if it_w > self.peak_it_w:
                self.peak_it_w = it_w
                self.peak_it_at_s = self.t_s
            self.t_s = now_s

    def it_power_w(self) -> float:
        return float(_sum(self.values[self._it]))

    def snapshot(self) -> np.ndarray:
        if self.probe is not None:
            self.probe.flush(self.integral, self.t_s)
        return self.integral.copy()
