"""Stopping a run before its horizon: at its next event, from anywhere (a signal handler included), once.

The engine (:class:`~gigafactory_sim.sim.engine.Simulation`) and a federation
(:class:`~gigafactory_sim.federation.runtime.FederationRun`) each keep one; after ``env.run`` they close every
figure at :meth:`StopSwitch.end_s`, the time reached.
"""

from __future__ import annotations

import simpy

__all__ = ["StopSwitch"]


class StopSwitch:
    """Raises SimPy's ``StopSimulation`` at the event after :meth:`request`, if that is before the horizon."""

    __slots__ = ("_env", "_horizon_s", "_requested", "stopped_at_s")

    def __init__(self, env: simpy.Environment, horizon_s: float) -> None:
        self._env = env
        self._horizon_s = horizon_s
        self._requested = False
        self.stopped_at_s: float | None = None  # when the run stopped, if before its horizon

    def request(self) -> None:
        if self._requested:
            return
        self._requested = True
        event = simpy.Event(self._env)
        event.callbacks.append(self._stop_now)
        event.succeed()  # on the event heap at the current time: processed before any later event

    def _stop_now(self, _event: simpy.Event) -> None:
        env = self._env
        if env.now <= 0.0:  # nothing simulated yet: stop after the first second (a table needs a positive span)
            env.timeout(min(1.0, self._horizon_s / 2)).callbacks.append(self._stop_now)
            return
        if env.now < self._horizon_s:
            self.stopped_at_s = env.now
            raise simpy.core.StopSimulation(None)

    def end_s(self) -> float:
        """The time the run reached: where it stopped, or its horizon."""
        return self._horizon_s if self.stopped_at_s is None else self.stopped_at_s
