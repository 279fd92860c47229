"""A re-armable one-shot timer on a SimPy environment: the one way features wait for a time that may move.

Arming again (or cancelling) invalidates the pending wake-up without touching SimPy's heap: a wake-up that is not
the latest armed one does nothing. Speed groups' completions, checkpoint phase clocks, node failures and a
federation's links each keep one, and a power cap re-arms the first two at every change of a GPU limit.

A wake-up is scheduled as a ``Timeout`` of the same delay would be (``Environment.schedule``: the same time, the
same place among events of that time), but it is not made anew at every arm: a wake-up that has fired is
scheduled again for the next arm, and all of a timer's wake-ups share one callback list.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy
from simpy.events import NORMAL

__all__ = ["Timer", "Wake", "call_later"]


class Wake(simpy.Event):
    """A wake-up that calls its ``callbacks`` with itself: a :class:`simpy.Timeout` without its generality (no
    value, no check of the delay), for the engine's own events. ``Wake(env, callbacks)`` is not yet scheduled;
    :func:`call_later` makes and schedules one.

    SimPy puts it on its heap through the public :meth:`simpy.Environment.schedule` exactly as a timeout (the same
    time ``now + delay_s``, priority and event-id order), so swapping one for the other changes no result."""

    _ok = True  # (SimPy's step reads these of a processed event: a timeout's values, fixed)
    _value = None

    def __init__(self, env: simpy.Environment, callbacks: list[Callable[[simpy.Event], None]]) -> None:
        self.env = env
        self.callbacks = callbacks


def call_later(env: simpy.Environment, delay_s: float, callback: Callable[[simpy.Event], None]) -> None:
    """Call ``callback(event)`` ``delay_s`` (>= 0) from now, in the order a timeout made now would be."""
    env.schedule(Wake(env, [callback]), NORMAL, delay_s)


class Timer:
    """Calls ``fn()`` at the time of the latest :meth:`arm`, unless re-armed or cancelled before."""

    __slots__ = ("_cbs", "_env", "_event", "_fn", "_spare")

    def __init__(self, env: simpy.Environment, fn: Callable[[], None]) -> None:
        self._env = env
        self._fn = fn
        self._event: simpy.Event | None = None  # the latest armed wake-up
        self._spare: simpy.Event | None = None  # a wake-up that has fired (off SimPy's heap), to schedule again
        # the wake-ups' callbacks: SimPy takes an event's list and only iterates it, so they all share this one
        self._cbs: list[Callable[[simpy.Event], None]] = [self._fire]

    def arm(self, delay_s: float) -> None:
        if delay_s < 0:
            raise ValueError(f"Negative delay {delay_s}")
        wake = self._spare
        if wake is None:
            wake = Wake(self._env, self._cbs)
        else:
            self._spare = None
            wake.callbacks = self._cbs
        self._env.schedule(wake, NORMAL, delay_s)
        self._event = wake

    def cancel(self) -> None:
        self._event = None

    @property
    def armed(self) -> bool:
        return self._event is not None

    def _fire(self, event: simpy.Event) -> None:
        self._spare = event  # (off the heap now: free to schedule again)
        if event is self._event:
            self._event = None
            self._fn()
