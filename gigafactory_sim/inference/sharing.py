"""How inference replicas share GPUs with training: small policies behind one Protocol, chosen by ``kind``.

- ``static_partition``: whole nodes of each cluster are taken out of the training pool at t = 0; replicas are
  placed in that private pool only.
- ``inference_first``: replicas take free GPUs of the shared pool; with ``preempt`` a replica that finds none
  preempts running training jobs of lower priority (:meth:`GpuPool.preempt_for`).

A new policy is one class with ``acquire``/``release`` and one entry in :data:`SHARING`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gigafactory_sim.inference.config import InferenceFirst, InferenceService, SharingPolicy, StaticPartition
from gigafactory_sim.sim.cluster import Allocation, ClusterState

__all__ = ["SHARING", "GpuPool", "InferenceFirstSharing", "Sharing", "StaticPartitionSharing", "build_sharing"]


class GpuPool(Protocol):
    """The facility-side GPU bookkeeping of inference (the inference runtime)."""

    def reserve_nodes(self, c: int, nodes: int) -> ClusterState: ...

    def allocate(self, c: int, gpus: int) -> Allocation | None: ...

    def release(self, c: int, alloc: Allocation) -> None: ...

    def preempt_for(self, c: int, gpus: int, priority: int, now: float) -> bool: ...


class Sharing(Protocol):
    def acquire(self, gpus: int, now: float) -> tuple[int, Allocation] | None:
        """GPUs for one replica on one of the service's clusters (in preference order), or None."""
        ...

    def release(self, c: int, alloc: Allocation) -> None: ...


class StaticPartitionSharing:
    def __init__(
        self, cfg: StaticPartition, pool: GpuPool, clusters: list[int], names: list[str], svc: InferenceService
    ) -> None:
        self.clusters = clusters
        self.pools = {c: pool.reserve_nodes(c, cfg.nodes[names[c]]) for c in clusters}

    def acquire(self, gpus: int, now: float) -> tuple[int, Allocation] | None:
        for c in self.clusters:
            pool = self.pools[c]
            if pool.fits(gpus):
                return c, pool.allocate(gpus)
        return None

    def release(self, c: int, alloc: Allocation) -> None:
        self.pools[c].release(alloc)


class InferenceFirstSharing:
    def __init__(
        self, cfg: InferenceFirst, pool: GpuPool, clusters: list[int], names: list[str], svc: InferenceService
    ) -> None:
        self.pool = pool
        self.clusters = clusters
        self.preempt = cfg.preempt
        self.priority = svc.priority

    def acquire(self, gpus: int, now: float) -> tuple[int, Allocation] | None:
        for c in self.clusters:
            alloc = self.pool.allocate(c, gpus)
            if alloc is not None:
                return c, alloc
        if self.preempt:
            for c in self.clusters:
                if self.pool.preempt_for(c, gpus, self.priority, now):
                    alloc = self.pool.allocate(c, gpus)
                    if alloc is not None:
                        return c, alloc
        return None

    def release(self, c: int, alloc: Allocation) -> None:
        self.pool.release(c, alloc)


SHARING: dict[str, Callable[..., Sharing]] = {
    "static_partition": StaticPartitionSharing,
    "inference_first": InferenceFirstSharing,
}
"""The sharing policies by ``kind`` (the config's tagged union in :mod:`gigafactory_sim.inference.config`)."""


def build_sharing(
    cfg: SharingPolicy, pool: GpuPool, clusters: list[int], names: list[str], svc: InferenceService
) -> Sharing:
    return SHARING[cfg.kind](cfg, pool, clusters, names, svc)
