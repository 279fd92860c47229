"""A re-armable one-shot timer on a SimPy environment: the one way features wait for a time that may move.

Arming again (or cancelling) invalidates the pending wake-up without touching SimPy's heap: a wake-up that is not
the latest armed one does nothing. Speed groups' completions, checkpoint phase clocks and node failures each keep
one.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

__all__ = ["Timer", "Wake", "call_later"]


class Wake(simpy.Event):
    """A wake-up ``delay_s`` from now that calls ``callback(event)``: a :class:`simpy.Timeout` without its
    generality (no value, no check of the delay, created already processed-ready), for the engine's own events.

    SimPy puts it on its heap through the public :meth:`simpy.Environment.schedule` exactly as a timeout (the same
    time ``now + delay_s``, priority and event-id order), so swapping one for the other changes no result."""

    _ok = True  # (SimPy's step reads these of a processed event: a timeout's values, fixed)
    _value = None

    def __init__(self, env: simpy.Environment, delay_s: float, callback: Callable[[simpy.Event], None]) -> None:
        self.env = env
        self.callbacks = [callback]
        env.schedule(self, simpy.events.NORMAL, delay_s)


def call_later(env: simpy.Environment, delay_s: float, callback: Callable[[simpy.Event], None]) -> None:
    """Call ``callback(event)`` ``delay_s`` (>= 0) from now, in the order a timeout made now would be."""
    Wake(env, delay_s, callback)


class Timer:
    """Calls ``fn()`` at the time of the latest :meth:`arm`, unless re-armed or cancelled before."""

    __slots__ = ("_env", "_event", "_fire_cb", "_fn")

    def __init__(self, env: simpy.Environment, fn: Callable[[], None]) -> None:
        self._env = env
        self._fn = fn
        self._event: simpy.Event | None = None
        self._fire_cb = self._fire  # bound once: arming creates no callable

    def arm(self, delay_s: float) -> None:
        self._event = Wake(self._env, delay_s, self._fire_cb)

    def cancel(self) -> None:
        self._event = None

    @property
    def armed(self) -> bool:
        return self._event is not None

    def _fire(self, event: simpy.Event) -> None:
        if event is self._event:
            self._event = None
            self._fn()
