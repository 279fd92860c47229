"""Cluster state as arrays: free GPUs per node and nodes bucketed by their free count (no object per GPU).

Placement rule (shared with :class:`gigafactory_sim.scheduling.base.Capacity`): a job of ``k <= gpus_per_node``
GPUs packs onto one node, the fullest node that still fits it (best fit); a larger job takes
``ceil(k / gpus_per_node)`` whole free nodes (gang, all-or-nothing). A node that is down is in no bucket, nor
is a reserved node (a hot spare: up and powered, but out of scheduling).
"""

from __future__ import annotations

__all__ = ["Allocation", "ClusterState"]

Allocation = list[tuple[int, int]]
"""(node index, GPUs taken on it) pairs."""


class ClusterState:
    """Free GPUs per node of one cluster; O(gpus_per_node) placement via free-count buckets.

    Only nodes that are up and not held as hot spares are in a bucket; ``free_gpus`` counts their free GPUs.
    ``capacity_version`` is bumped whenever schedulable capacity grows (schedulers use it to skip work);
    ``occupancy_version`` whenever anything about the nodes changes (an allocation, a release, a node going down or
    up, a spare held or let go): while it stands, free GPUs per node, nodes up and whole free nodes are as they were.
    """

    def __init__(self, name: str, index: int, nodes: int, gpus_per_node: int) -> None:
        self.name = name
        self.index = index
        self.nodes = nodes
        self.gpus_per_node = gpus_per_node
        self.total_gpus = nodes * gpus_per_node
        self.node_free: list[int] = [gpus_per_node] * nodes
        self.node_up: list[bool] = [True] * nodes
        self.buckets: list[set[int]] = [set() for _ in range(gpus_per_node + 1)]
        self.buckets[gpus_per_node] = set(range(nodes))
        self.allocated_gpus = 0
        self.down_nodes = 0
        self.reserved: set[int] = set()
        self.free_gpus = self.total_gpus  # free GPUs on schedulable nodes (up, not reserved)
        self.capacity_version = 0
        self.occupancy_version = 0

    # -- queries ---------------------------------------------------------------------------------------------
    @property
    def busy_nodes(self) -> int:
        """Nodes that are up and hold at least one allocated GPU."""
        return self.nodes - self.down_nodes - len(self.reserved) - len(self.buckets[self.gpus_per_node])

    def counts(self) -> list[int]:
        return [len(b) for b in self.buckets]

    def fits(self, gpus: int) -> bool:
        if gpus > self.free_gpus:
            return False
        gpn = self.gpus_per_node
        buckets = self.buckets
        if gpus <= gpn:
            for f in range(gpus, gpn + 1):
                if buckets[f]:
                    return True
            return False
        return len(buckets[gpn]) >= -(-gpus // gpn)

    def nodes_for(self, gpus: int) -> int:
        return 1 if gpus <= self.gpus_per_node else -(-gpus // self.gpus_per_node)

    def gpus_held(self, gpus: int) -> int:
        """GPUs a job of ``gpus`` holds: itself, or whole nodes for a multi-node job."""
        return gpus if gpus <= self.gpus_per_node else self.nodes_for(gpus) * self.gpus_per_node

    # -- changes ---------------------------------------------------------------------------------------------
    def allocate(self, gpus: int) -> Allocation:
        alloc = self.try_allocate(gpus)
        if alloc is None:
            if gpus <= self.gpus_per_node:
                raise RuntimeError(f"cluster {self.name}: no node has {gpus} free GPUs")
            whole = len(self.buckets[self.gpus_per_node])
            raise RuntimeError(f"cluster {self.name}: {self.nodes_for(gpus)} whole nodes needed, {whole} free")
        return alloc

    def try_allocate(self, gpus: int) -> Allocation | None:
        """:meth:`allocate` if the job :meth:`fits`, else None (and nothing changed): both in one walk."""
        if gpus > self.free_gpus:
            return None
        gpn = self.gpus_per_node
        if gpus <= gpn:
            buckets = self.buckets
            for f in range(gpus, gpn + 1):
                bucket = buckets[f]
                if bucket:
                    self.occupancy_version += 1
                    node = bucket.pop()
                    buckets[f - gpus].add(node)
                    self.node_free[node] = f - gpus
                    self.allocated_gpus += gpus
                    self.free_gpus -= gpus
                    return [(node, gpus)]
            return None
        n = self.nodes_for(gpus)
        whole = self.buckets[gpn]
        if len(whole) < n:
            return None
        self.occupancy_version += 1
        # Whole nodes in bulk (set operations in the same order as one at a time: identical state, C speed).
        pop = whole.pop
        nodes = [pop() for _ in range(n)]
        self.buckets[0].update(nodes)
        node_free = self.node_free
        for node in nodes:
            node_free[node] = 0
        self.allocated_gpus += n * gpn
        self.free_gpus -= n * gpn
        return [(node, gpn) for node in nodes]

    def release(self, alloc: Allocation) -> None:
        self.capacity_version += 1
        self.occupancy_version += 1
        if len(alloc) > 1:  # a gang allocation: whole nodes, each wholly held
            gpn = self.gpus_per_node
            node_free = self.node_free
            up = self.node_up
            for node, _ in alloc:
                node_free[node] = gpn
            self.allocated_gpus -= gpn * len(alloc)
            nodes = [node for node, _ in alloc if up[node]]
            self.buckets[0].difference_update(nodes)
            self.buckets[gpn].update(nodes)
            self.free_gpus += gpn * len(nodes)
            return
        for node, k in alloc:  # (one node)
            node_free = self.node_free
            f = node_free[node]
            node_free[node] = f + k
            self.allocated_gpus -= k
            if self.node_up[node]:
                buckets = self.buckets
                buckets[f].discard(node)
                buckets[f + k].add(node)
                self.free_gpus += k

    def set_down(self, node: int) -> None:
        """Take a node out of service (its jobs must have been released or be released later)."""
        if not self.node_up[node]:
            return
        self.occupancy_version += 1
        self.node_up[node] = False
        if node in self.reserved:
            self.reserved.discard(node)
        else:
            self.buckets[self.node_free[node]].discard(node)
            self.free_gpus -= self.node_free[node]
        self.down_nodes += 1

    def set_up(self, node: int, reserve: bool = False) -> None:
        """Return a node to service; with ``reserve`` it comes back as a hot spare (see :meth:`reserve`)."""
        if self.node_up[node]:
            return
        self.occupancy_version += 1
        self.node_up[node] = True
        self.down_nodes -= 1
        if reserve:
            self.reserved.add(node)
        else:
            self.buckets[self.node_free[node]].add(node)
            self.free_gpus += self.node_free[node]
            self.capacity_version += 1

    def reserve(self, node: int) -> None:
        """Hold a wholly free, up node out of scheduling (a hot spare)."""
        if not self.node_up[node] or self.node_free[node] != self.gpus_per_node or node in self.reserved:
            raise RuntimeError(f"cluster {self.name}: node {node} is not up and wholly free")
        self.occupancy_version += 1
        self.buckets[self.gpus_per_node].discard(node)
        self.reserved.add(node)
        self.free_gpus -= self.gpus_per_node

    def unreserve(self, node: int) -> None:
        """Put a hot spare back into scheduling."""
        self.occupancy_version += 1
        self.reserved.remove(node)
        self.buckets[self.node_free[node]].add(node)
        self.free_gpus += self.node_free[node]
        self.capacity_version += 1
