"""Where each training source of a federation may run: its plan, read by placement, migration and collection."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SourcePlan"]


@dataclass(frozen=True)
class SourcePlan:
    """Where a training source's jobs may go: the ``source`` whose residency they answer to, the ``allowed``
    sites (indices), its ``home``, the clusters each site lets it use (None: all; absent: none there), the
    largest of them, the dataset it must move to run away from home and the checkpoint it moves when it
    migrates."""

    source: str
    allowed: tuple[int, ...]
    home: int
    clusters: dict[int, tuple[str, ...] | None]
    largest_gpus: dict[int, int]
    dataset_gb: float
    checkpoint_gb: float
    warm: bool = False
    """A batch of jobs in progress at t = 0 (``initial_state: steady``): placed at once where they fit, with
    no data to move."""
