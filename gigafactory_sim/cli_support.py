"""What the command line needs around a run: checking ``--out`` before anything is simulated, and stopping a
run cleanly on SIGINT or SIGTERM.

Stopping uses the engine's :meth:`~gigafactory_sim.sim.engine.Simulation.request_stop`: the run stops at its
next event and the engine's own end-of-run bookkeeping (meter, running jobs' energy, the final report row) closes
it at the time reached, so the tables describe the simulated interval ``[0, time reached]``.
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
        raise OutProblem(
            f"--out {out_dir}: exists, is not empty and is not a run directory (no run.json); choose another --out"
        )
    if status == "completed" and not overwrite:
        raise OutProblem(
            f"--out {out_dir}: holds a completed run; pass --overwrite to replace it, or choose another --out"
        )
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
        if self._sim is not None:
            self._sim.request_stop()

    @property
    def stopped_at_s(self) -> float | None:
        """The simulated time the run stopped at, if a signal stopped it before its horizon."""
        return getattr(self._sim, "stopped_at_s", None)

    def on_tick(self, now_s: float, horizon_s: float) -> None:
        """Progress hook: a signal that came before the simulation was marked stops it at this tick."""
        if self.signum is not None and self._armed and self._sim is not None:
            self._sim.request_stop()
