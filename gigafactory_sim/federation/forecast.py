"""Perfect forecasts of a site's grid signals: the exact mean of a piecewise-constant signal over any window."""

from __future__ import annotations

import bisect

from gigafactory_sim.grid.signals import Signal

__all__ = ["Forecast", "forecast_of"]


class Forecast:
    """A signal's exact mean over any window, from its running integral (a perfect forecast): O(log n)."""

    __slots__ = ("_cum", "_times", "_values")

    def __init__(self, signal: Signal) -> None:
        self._times: list[float] = signal.times_s.tolist()
        self._values: list[float] = signal.values.tolist()
        cum = [0.0]
        for k in range(1, len(self._times)):
            cum.append(cum[-1] + self._values[k - 1] * (self._times[k] - self._times[k - 1]))
        self._cum = cum

    def _integral_to(self, t: float) -> float:
        k = max(bisect.bisect_right(self._times, t) - 1, 0)
        return self._cum[k] + self._values[k] * (t - self._times[k])

    def mean(self, t0: float, t1: float) -> float:
        if t1 <= t0:
            return self._values[max(bisect.bisect_right(self._times, t0) - 1, 0)]
        return (self._integral_to(t1) - self._integral_to(t0)) / (t1 - t0)


def forecast_of(signal: Signal | None) -> Forecast | None:
    return None if signal is None else Forecast(signal)
