"""A re-armable one-shot timer on a SimPy environment: the one way features wait for a time that may move.

Speed groups' completions, checkpoint phase clocks, node failures and a federation's links each keep one, and a
power cap re-arms the first two at every change of a GPU limit, often to a later time than the one pending.

Arming takes the place on SimPy's event heap that a ``Timeout`` of the same delay would take: its time
(``now + delay``, the same float) and its event id (``next`` of the environment's counter, taken at the arm, as
the timeout would take it). The wake-up is pushed onto the heap only when no wake-up of this timer already there
comes before that place; otherwise the earlier wake-up, when it fires, finds the time moved and pushes the
wake-up then, under the id kept from the arm. Between events of the same time SimPy orders by that id, so every
event fires in the order, and at the time, it would have with a timeout per arm; only the wake-ups that would
have fired and done nothing are never made. A cancel leaves the wake-ups on the heap, to do nothing when they
fire (or to carry a later arm).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush

import simpy
from simpy.events import NORMAL

__all__ = ["Timer"]


class _Wake(simpy.Event):
    """A timer's wake-up on SimPy's heap: an event already triggered with no value (what a ``Timeout`` is once
    scheduled), holding only the attributes SimPy reads when it processes an event. A timer reuses its wake-ups
    once they have fired."""

    def __init__(self, env: simpy.Environment, callbacks: list[Callable[[simpy.Event], None]]) -> None:
        # (Event.__init__ would set env and callbacks; _ok and _value are what Timeout sets for a triggered event)
        self.env = env
        self.callbacks = callbacks
        self._ok = True
        self._value = None


class Timer:
    """Calls ``fn()`` at the time of the latest :meth:`arm`, unless re-armed or cancelled before."""

    __slots__ = ("_cbs", "_env", "_fn", "_id", "_spare", "_t", "_wakes")

    def __init__(self, env: simpy.Environment, fn: Callable[[], None]) -> None:
        self._env = env
        self._fn = fn
        self._t: float | None = None  # the armed time, None when not armed
        self._id = -1  # the armed time's event id (its place among events of the same time)
        # this timer's wake-ups on SimPy's heap, in the heap's order: (time, event id, event)
        self._wakes: list[tuple[float, int, _Wake]] = []
        self._spare: _Wake | None = None  # a wake-up that has fired, to push again
        # the wake-ups' callbacks: SimPy takes an event's list and only iterates it, so they all share this one
        self._cbs: list[Callable[[simpy.Event], None]] = [self._fire]

    def arm(self, delay_s: float) -> None:
        if delay_s < 0:
            raise ValueError(f"Negative delay {delay_s}")
        env = self._env
        t = env._now + delay_s  # (Environment.schedule's sum: the float a timeout would fire at)
        eid = next(env._eid)
        self._t = t
        self._id = eid
        wakes = self._wakes
        if wakes and wakes[0][0] <= t:
            return  # a wake-up of this timer comes first (its id is older): it moves on to (t, eid) when it fires
        self._push(t, eid)

    def cancel(self) -> None:
        self._t = None

    @property
    def armed(self) -> bool:
        return self._t is not None

    def _push(self, t: float, eid: int) -> None:
        """Put a wake-up on SimPy's heap at ``(t, eid)``: before every other wake-up of this timer there."""
        wake = self._spare
        if wake is None:
            wake = _Wake(self._env, self._cbs)
        else:
            self._spare = None
            wake.callbacks = self._cbs
        heappush(self._env._queue, (t, NORMAL, eid, wake))
        self._wakes.insert(0, (t, eid, wake))

    def _fire(self, event: simpy.Event) -> None:
        wakes = self._wakes
        _, eid, self._spare = wakes.pop(0)  # (this timer's wake-ups leave the heap in the order they are kept)
        t = self._t
        if t is None:
            return
        if eid == self._id:
            self._t = None
            self._fn()
            return
        # armed for later than this wake-up: the wake-up of the arm's own place, unless another comes first
        if wakes and (wakes[0][0] < t or (wakes[0][0] == t and wakes[0][1] <= self._id)):
            return  # (that one fires first and re-checks, or is the arm's own)
        self._push(t, self._id)
