"""A re-armable one-shot timer on a SimPy environment: the one way features wait for a time that may move.

Arming again (or cancelling) invalidates the pending wake-up without touching SimPy's heap: each arm bumps a
token, and a wake-up whose token is stale does nothing. Speed groups' completions, checkpoint phase changes and
node failures each keep one.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

__all__ = ["Timer"]


class Timer:
    """Calls ``fn()`` at the time of the latest :meth:`arm`, unless re-armed or cancelled before."""

    __slots__ = ("_env", "_fn", "token")

    def __init__(self, env: simpy.Environment, fn: Callable[[], None]) -> None:
        self._env = env
        self._fn = fn
        self.token = 0

    def arm(self, delay_s: float) -> None:
        self.token += 1
        token = self.token
        self._env.timeout(delay_s).callbacks.append(lambda _e: self._fire(token))

    def cancel(self) -> None:
        self.token += 1

    def _fire(self, token: int) -> None:
        if token == self.token:
            self._fn()
