"""What the command line needs around a run: checking ``--out`` before anything is simulated, and stopping a
run cleanly on SIGINT or SIGTERM.

Stopping works without any engine hook beyond SimPy itself: the signal handler schedules an urgent event in the
simulation's environment whose callback raises :class:`simpy.core.StopSimulation`, so the run stops at the
next event. Before raising it sets the simulation's horizon to the time reached, so the engine's own
end-of-run bookkeeping (meter, running jobs' energy, the final report row) closes the run there, and the tables
describe the simulated interval ``[0, time reached]``. A report tick (the progress callback) checks too, in
case the event could not be scheduled.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["OutProblem", "Stopper", "check_out_dir", "exit_code_for"]


class OutProblem(Exception):
    """``--out`` cannot take the run: a bad path, an unwritable place, or a finished run in the way."""


def exit_code_for(signum: int) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM (what shells report)."""
    return 128 + signum


def check_out_dir(out_dir: Path, *, overwrite: bool) -> bool:
    """Check that a run can be published at ``out_dir``; return whether an existing run there is replaced.

    Raises :class:`OutProblem` when a parent is a file, the place cannot be written (read-only or immutable
    folder, ``/proc``), ``out_dir`` is a file, holds files that are not a run directory, or holds a completed
    run and ``overwrite`` is false. A failed or interrupted run is replaced. Creates missing parents.
    """
    from gigafactory_sim.report.writer import run_status

    target = out_dir.absolute()
    for parent in reversed(target.parents):
        if parent.exists() and not parent.is_dir():
            raise OutProblem(f"--out {out_dir}: {parent} is a file, not a folder")
    try:
        status = run_status(target)
    except OSError as exc:
        raise OutProblem(f"--out {out_dir}: cannot read it: {exc.strerror or exc}") from None
    if status == "not-a-directory":
        raise OutProblem(f"--out {out_dir}: exists and is not a directory")
    if status == "unknown":
        raise OutProblem(f"--out {out_dir}: exists, is not empty and is not a run directory (no run.json); "
                         f"choose another --out")
    if status == "completed" and not overwrite:
        raise OutProblem(f"--out {out_dir}: holds a completed run; pass --overwrite to replace it, or choose "
                         f"another --out")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{target.name}.probe-", dir=target.parent)
        os.rmdir(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutProblem(f"--out {out_dir}: cannot write in {target.parent}: {reason}") from None
    return status in ("completed", "failed", "interrupted")


@dataclass
class Stopper:
    """Turns SIGINT/SIGTERM into a clean stop of a running simulation (see the module docstring).

    ``signum`` is the first signal received (None: none). A second signal raises :class:`KeyboardInterrupt`
    at once, as without the handler, to abort whatever is running (the writer then removes its temporary).
    """

    signum: int | None = None
    stopped_at_s: float | None = None
    _sim: Any = None
    _armed: bool = False

    @contextmanager
    def installed(self) -> Iterator[Stopper]:
        """Handle SIGINT and SIGTERM inside the block; restore the previous handlers after."""
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextmanager
    def simulating(self, sim: Any) -> Iterator[None]:
        """Mark the block as the simulation of ``sim``: a signal then stops it at its next event."""
        self._sim = sim
        self._armed = True
        if self.signum is not None:  # a signal came while building: do not start
            self._schedule_stop()
        try:
            yield
        finally:
            self._armed = False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        if self._armed:
            self._schedule_stop()

    def _schedule_stop(self) -> None:
        env = getattr(self._sim, "env", None)
        if env is None:
            return
        try:
            import simpy
            from simpy.events import URGENT

            event = simpy.Event(env)
            event._ok = True
            event._value = None
            event.callbacks.append(self._stop_now)
            env.schedule(event, URGENT)
        except Exception:  # the next report tick stops the run instead
            return

    def _stop_now(self, _event: object) -> None:
        from simpy.core import StopSimulation

        sim = self._sim
        if not self._armed or sim is None or self.stopped_at_s is not None:
            return
        now = float(sim.env.now)
        if now >= float(sim.horizon_s):
            return  # the run is complete anyway
        self.stopped_at_s = now
        sim.horizon_s = now  # the engine's end-of-run bookkeeping then closes the run here
        raise StopSimulation(None)

    def on_tick(self, now_s: float, horizon_s: float) -> None:
        """Progress hook: stops at a report tick if the urgent event could not be scheduled."""
        if self.signum is not None and self._armed and self.stopped_at_s is None and now_s < horizon_s:
            ticks = getattr(self._sim, "ticks", None)
            if isinstance(ticks, list) and ticks and ticks[-1][0] == now_s:
                ticks.pop()  # the engine writes the final row at the time reached
            self._stop_now(None)
