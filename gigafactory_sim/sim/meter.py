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
_BATCH = 512  # segments kept before they are integrated


class SegmentProbe(Protocol):
    """Derives quantities that are not linear in the channels (e.g. renewable self-consumption, cap excess).

    :meth:`segment` sees every segment of positive length ``[t0_s, t0_s + dt_s)`` with its IT power;
    :meth:`flush` writes what the probe accumulated into ``integral`` (called before every snapshot).
    """

    def segment(self, it_w: float, t0_s: float, dt_s: float) -> None: ...

    def flush(self, integral: np.ndarray, now_s: float) -> None: ...


class Meter:
    """Channels of piecewise-constant values and their running integrals (value x seconds).

    The IT power channels come first, in the order given, then the others in theirs: a channel's position is the
    meter's own layout, so read and write one through :attr:`index`.

    Without a probe, segments are kept as rows (the values and the length) and integrated in batches, with the
    very same floating-point operations as one segment at a time (each ``value x dt``, added in order), so the
    integrals and the peak are identical; :attr:`integral`, the peak and :meth:`snapshot` integrate what is kept
    first. With a probe every segment is integrated at once (the probe sees each in order)."""

    def __init__(self, names: list[str], it_power_names: list[str]) -> None:
        # the IT channels first, in their order: their sum is then over a slice of the values (a view, no gather),
        # the same elements added in the same order as over the names' own order
        it = set(it_power_names)
        missing = sorted(it - set(names))
        if missing:
            raise ValueError(f"IT power channels not among the channels: {missing}")
        self.names = list(it_power_names) + [n for n in names if n not in it]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.values = np.zeros(len(self.names))
        self._integral = np.zeros(len(self.names))
        self.it_power_names = list(it_power_names)
        self._it = slice(0, len(it_power_names))
        self._it_values = self.values[self._it]  # (a view: valid until add_channels replaces the values)
        self.t_s = 0.0
        self._peak_it_w = 0.0
        self._peak_it_at_s = 0.0
        self.probe: SegmentProbe | None = None
        self._rows = np.empty((_BATCH, len(self.names)))  # kept segments: their values and start times
        self._t0s = np.empty(_BATCH + 1)
        self._k = 0

    @property
    def integral(self) -> np.ndarray:
        """Running integrals up to :attr:`t_s` (value x seconds per channel; updated in place)."""
        if self._k:
            self._flush()
        return self._integral

    @property
    def peak_it_w(self) -> float:
        """Largest IT power over segments of positive length so far."""
        if self._k:
            self._flush()
        return self._peak_it_w

    @property
    def peak_it_at_s(self) -> float:
        """Start of the first segment at :attr:`peak_it_w`."""
        if self._k:
            self._flush()
        return self._peak_it_at_s

    def add_channels(self, names: list[str]) -> list[int]:
        """Append channels (value 0, integral 0); returns their indices. Call before the first snapshot."""
        if self._k:
            self._flush()
        first = len(self.names)
        self.names += names
        self.index.update({n: first + i for i, n in enumerate(names)})
        self.values = np.concatenate([self.values, np.zeros(len(names))])
        self._it_values = self.values[self._it]
        self._integral = np.concatenate([self._integral, np.zeros(len(names))])
        self._rows = np.empty((_BATCH, len(self.names)))
        return list(range(first, first + len(names)))

    def advance(self, now_s: float) -> None:
        dt = now_s - self.t_s
        if dt > 0.0:
            if self.probe is None:
                k = self._k
                self._rows[k] = self.values
                self._t0s[k] = self.t_s  # (its length is the next start less this one: see _flush)
                self._k = k + 1
                self.t_s = now_s
                if k + 1 == _BATCH:
                    self._flush()
                return
            if self._k:
                self._flush()
            values = self.values
            self._integral += values * dt
            it_w = float(_sum(self._it_values))
            self.probe.segment(it_w, self.t_s, dt)
            if it_w > self._peak_it_w:
                self._peak_it_w = it_w
                self._peak_it_at_s = self.t_s
            self.t_s = now_s

    def _flush(self) -> None:
        """Integrate the kept segments: the same products, added to the integrals in the same order."""
        k = self._k
        self._k = 0
        rows = self._rows[:k]
        t0s = self._t0s
        t0s[k] = self.t_s  # the last segment ends at the time reached
        dts = t0s[1 : k + 1] - t0s[:k]  # each length as advance computed it: the same subtraction
        acc = np.empty((k + 1, rows.shape[1]))
        acc[0] = self._integral
        np.multiply(rows, dts[:, None], out=acc[1:])
        np.add.accumulate(acc, axis=0, out=acc)  # sequential: ((I + p1) + p2) + ..., as one segment at a time
        self._integral[:] = acc[k]
        it_w = _sum(rows[:, self._it], axis=1)  # row by row, the same sums as one segment at a time
        j = int(np.argmax(it_w))  # the first segment at the largest power: where strict '>' in order stops
        if it_w[j] > self._peak_it_w:
            self._peak_it_w = float(it_w[j])
            self._peak_it_at_s = float(self._t0s[j])

    def it_power_w(self) -> float:
        return float(_sum(self._it_values))

    def snapshot(self) -> np.ndarray:
        integral = self.integral
        if self.probe is not None:
            self.probe.flush(integral, self.t_s)
        return integral.copy()
