"""A re-armable one-shot timer on a SimPy environment: the one way features wait for a time that may move.

Arming again (or cancelling) invalidates the pending wake-up without touching SimPy's heap: a wake-up that is not
the latest armed one does nothing. Speed groups' completions, checkpoint phase clocks and node failures each keep
one.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

__all__ = ["Timer"]


class Timer:
    """Calls ``fn()`` at the time of the latest :meth:`arm`, unless re-armed or cancelled before."""

    __slots__ = ("_env", "_event", "_fire_cb", "_fn")

    def __init__(self, env: simpy.Environment, fn: Callable[[], None]) -> None:
        self._env = env
        self._fn = fn
        self._event: simpy.Event | None = None
        self._fire_cb = self._fire  # bound once: arming creates no callable

    def arm(self, delay_s: float) -> None:
        event = self._env.timeout(delay_s)
        event.callbacks.append(self._fire_cb)
        self._event = event

    def cancel(self) -> None:
        self._event = None

    @property
    def armed(self) -> bool:
        return self._event is not None

    def _fire(self, event: simpy.Event) -> None:
        if event is self._event:
            self._event = None
            self._fn()
