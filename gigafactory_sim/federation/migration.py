"""Migration of running training jobs between sites (off by default; ``migration:`` in a federation).

Every ``interval`` the federation looks at each long running job (at least ``min_remaining`` of work left at its
speed there) and compares its site's mean carbon intensity (or price) over the rest of its run with that of each
other site its residency allows, linked to its site, where it fits at once beside the running and queued jobs,
over the same work at that site's speed after the checkpoint's transfer. It moves to the best one if that is at
least ``min_gain`` lower. This module is the pure decision (:func:`best_move`); the check (one process for the
whole federation) and the move are :class:`~gigafactory_sim.federation.runtime.FederationRun`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gigafactory_sim.federation.config import MigrationConfig
from gigafactory_sim.federation.forecast import Forecast

__all__ = ["Destination", "best_move"]


@dataclass(frozen=True)
class Destination:
    """A site a running job could move to: its index, the checkpoint's transfer there, its run time there."""

    site: int
    transfer_s: float
    run_s: float


def best_move(
    cfg: MigrationConfig,
    now_s: float,
    here: Forecast,
    here_run_s: float,
    options: Sequence[tuple[Destination, Forecast]],
) -> Destination | None:
    """The destination whose mean signal over the job's rest is lowest and at least ``min_gain`` (of the
    magnitude of its site's mean) below its site's; None: stay."""
    current = here.mean(now_s, now_s + here_run_s)
    best: tuple[float, Destination] | None = None
    for dest, forecast in options:
        t0 = now_s + dest.transfer_s
        there = forecast.mean(t0, t0 + dest.run_s)
        if current - there >= cfg.min_gain * abs(current) and (best is None or there < best[0]):
            best = (there, dest)
    return None if best is None else best[1]
