"""A re-armable one-shot timer on a SimPy environment: the one way features wait for a time that may move.

Arming again (or cancelling) withdraws the pending wake-up: it keeps its place on SimPy's heap but has no
callbacks left, so it does nothing when its time comes. Speed groups' completions, checkpoint phase clocks, node
failures and a federation's links each keep one, and a power cap re-arms the first two at every change of a GPU
limit, mostly to an earlier time: the withdrawn wake-ups, far in the future, would pile up on the heap (~10,000
at times in the carbon-aware scenario's 30 days, against ~1,500 live events, most of them deferred jobs), making
every push and pop deeper and keeping their objects alive for the garbage collector. The engine's
:class:`Environment` therefore drops them from its heap once they are more than half of it.

A wake-up is scheduled as a ``Timeout`` of the same delay would be (``Environment.schedule``: the same time, the
same place among events of that time), but it is not made anew at every arm: a wake-up that has fired is
scheduled again for the next arm, and all of a timer's wake-ups share one callback list.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import simpy
from simpy.events import NORMAL

__all__ = ["Environment", "Timer", "Wake", "call_later"]

WITHDRAWN: list[Callable[[simpy.Event], None]] = []  # a withdrawn wake-up's callbacks (never appended to)
_DROP_FROM = 256  # withdrawn wake-ups since the last drop before the heap is filtered (and more than half of it)


class Environment(simpy.Environment):
    """SimPy's environment, whose heap sheds the wake-ups timers have withdrawn.

    Dropping one changes nothing but the heap's size: a withdrawn wake-up runs no callback, and events keep
    their order, since SimPy orders them by (time, priority, event id) and every event id is distinct, whatever
    the heap's layout. What its presence would change is only ``peek()`` once its time comes, if nothing else is
    earlier: the engine reads that to run a scheduling pass inline rather than as a zero-delay event, which gives
    the same results either way (that is its design; ``tests/test_loop_paths.py`` checks whole runs with drops
    forced often against runs without). Those at the current time are kept all the same.

    It reads SimPy's heap (``_queue``) and clock (``_now``) as its own, as a subclass (SimPy 4's layout:
    ``(time, priority, event id, event)`` entries)."""

    def __init__(self, initial_time: float = 0.0) -> None:
        super().__init__(initial_time)
        self.withdrawn = 0  # withdrawn since the last drop (some may have been popped since)
        self.drops = 0

    def withdraw(self, event: simpy.Event) -> None:
        """Take a scheduled wake-up's callbacks away; drop the withdrawn ones from the heap when they are many."""
        event.callbacks = WITHDRAWN
        self.withdrawn += 1
        if self.withdrawn > _DROP_FROM and 2 * self.withdrawn > len(self._queue):
            self._drop_withdrawn()

    def _drop_withdrawn(self) -> None:
        now = self._now
        queue = self._queue
        queue[:] = [e for e in queue if e[3].callbacks is not WITHDRAWN or e[0] <= now]
        heapq.heapify(queue)
        self.withdrawn = 0
        self.drops += 1


def _withdraw(event: simpy.Event) -> None:
    """Withdraw a wake-up on a plain SimPy environment (it stays on the heap)."""
    event.callbacks = WITHDRAWN


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

    __slots__ = ("_cbs", "_env", "_event", "_fn", "_spare", "_withdraw")

    def __init__(self, env: simpy.Environment, fn: Callable[[], None]) -> None:
        self._env = env
        self._fn = fn
        self._event: simpy.Event | None = None  # the latest armed wake-up
        self._spare: simpy.Event | None = None  # a wake-up that has fired (off SimPy's heap), to schedule again
        # the wake-ups' callbacks: SimPy takes an event's list and only iterates it, so they all share this one
        self._cbs: list[Callable[[simpy.Event], None]] = [self._fire]
        self._withdraw = env.withdraw if isinstance(env, Environment) else _withdraw

    def arm(self, delay_s: float) -> None:
        if delay_s < 0:
            raise ValueError(f"Negative delay {delay_s}")
        if self._event is not None:
            self._withdraw(self._event)
        wake = self._spare
        if wake is None:
            wake = Wake(self._env, self._cbs)
        else:
            self._spare = None
            wake.callbacks = self._cbs
        self._env.schedule(wake, NORMAL, delay_s)
        self._event = wake

    def cancel(self) -> None:
        if self._event is not None:
            self._withdraw(self._event)
            self._event = None

    @property
    def armed(self) -> bool:
        return self._event is not None

    def _fire(self, event: simpy.Event) -> None:
        # (only the latest armed wake-up still has this callback: the others were withdrawn)
        self._spare = event  # (off the heap now: free to schedule again)
        self._event = None
        self._fn()
