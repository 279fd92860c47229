"""Node failures, repairs, planned maintenance and hot spares of one cluster: no process per node.

Every up node carries its next failure time in one heap per cluster; one SimPy timeout waits for the heap's
head. A node's clock runs only while it is up: a failure takes it down for a repair drawn from the failure's
cause, and the repair (or the end of a maintenance window) draws its next time to failure, as good as new.
With exponential times this is exactly a Poisson process of rate ``up nodes x r``; with Weibull times, a
renewal process per node. Entries of a node that went down another way (maintenance) are dropped lazily by a
per-node generation count.

The failure history (times, nodes, causes, repairs) is drawn from the cluster's own stream
``failures.<cluster>`` and depends only on the seed and this cluster's failure config, never on the workload
or the scheduler: two policies compared under one seed see the same failures (common random numbers).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import simpy

from gigafactory_sim.reliability.config import FailureConfig, MaintenanceWindow
from gigafactory_sim.sim.timer import Timer

if TYPE_CHECKING:
    from gigafactory_sim.sim.ops import EngineOps


class Outages(Protocol):
    """What a cluster's failure process reports to (the reliability feature)."""

    failure_log: list[tuple[float, int, int]]

    def cause_index(self, name: str) -> int: ...

    def take_down(self, c: int, nodes: list[int], now: float, cause: int, failure: bool) -> None: ...


__all__ = ["ClusterFailures"]


class ClusterFailures:
    """The failure, repair and maintenance process of cluster ``c``."""

    def __init__(self, ops: EngineOps, rel: Outages, c: int, cfg: FailureConfig) -> None:
        self.rel = rel
        self.ops = ops
        self.c = c
        self.cfg = cfg
        self.state = ops.facility.clusters[c]
        self.rng = ops.streams.get(f"failures.{self.state.name}")
        self.rate_per_node_s = cfg.rate_per_node_s(self.state.gpus_per_node)
        self.mean_s = 1.0 / self.rate_per_node_s if self.rate_per_node_s > 0 else math.inf
        self.cause_idx = [rel.cause_index(cause.name) for cause in cfg.causes]
        shares = np.array([cause.share for cause in cfg.causes], dtype=float)
        self.cum_shares = np.cumsum(shares / shares.sum())
        self.heap: list[tuple[float, int, int]] = []  # (failure time, node, node generation)
        self.gen = [0] * self.state.nodes
        self.timer = Timer(ops.env, self._fire)
        self.armed_s = math.inf
        self.spares_target = cfg.hot_spares
        self.down_s_by_cause: dict[int, float] = {}  # node-seconds down within the horizon, by cause index
        for node in range(self.state.nodes - cfg.hot_spares, self.state.nodes):
            self.state.reserve(node)

    # -- start -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        env = self.ops.env
        if math.isfinite(self.mean_s):
            first = self.cfg.distribution.sample_initial_s(self.rng, self.mean_s, self.state.nodes)
            self.heap = [(float(t), node, 0) for node, t in enumerate(first.tolist())]
            heapq.heapify(self.heap)
            self._arm()
        for window in self.cfg.maintenance:
            env.process(self._maintenance(window))

    # -- the failure heap ------------------------------------------------------------------------------------
    def _arm(self) -> None:
        heap = self.heap
        while heap and heap[0][2] != self.gen[heap[0][1]]:
            heapq.heappop(heap)
        if not heap or heap[0][0] >= self.armed_s:
            return
        self.armed_s = heap[0][0]
        self.timer.arm(max(self.armed_s - self.ops.env.now, 0.0))

    def _push(self, node: int, now: float) -> None:
        ttf = float(self.cfg.distribution.sample_s(self.rng, self.mean_s, 1)[0])
        heapq.heappush(self.heap, (now + ttf, node, self.gen[node]))
        self._arm()

    def _fire(self) -> None:
        self.armed_s = math.inf
        now = self.ops.env.now
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, node, gen = heapq.heappop(heap)
            if gen == self.gen[node]:
                self._fail(node, now)
        self._arm()

    def _fail(self, node: int, now: float) -> None:
        ops = self.ops
        ops.begin_event()
        k = int(np.searchsorted(self.cum_shares, self.rng.random(), side="right"))
        k = min(k, len(self.cause_idx) - 1)
        cause = self.cause_idx[k]
        repair_s = float(self.cfg.causes[k].repair.sample(self.rng, 1)[0])
        self.gen[node] += 1
        self.rel.failure_log.append((now, self.c, cause))
        self.down_s_by_cause[cause] = self.down_s_by_cause.get(cause, 0.0) + min(now + repair_s, ops.horizon_s) - now
        self.rel.take_down(self.c, [node], now, cause, failure=True)
        ops.env.timeout(repair_s).callbacks.append(lambda _e: self._repair(node))
        self._after_change()

    def _repair(self, node: int) -> None:
        now = self.ops.begin_event()
        self._bring_up(node)
        self._push(node, now)
        self._after_change()

    def _bring_up(self, node: int) -> None:
        """A repaired node refills the spare pool first, then returns to scheduling."""
        st = self.state
        st.set_up(node, reserve=len(st.reserved) < self.spares_target)

    def _after_change(self) -> None:
        self.ops.refresh(self.c)
        self.ops.request_pass(self.c)

    # -- planned maintenance ---------------------------------------------------------------------------------
    def _maintenance(self, window: MaintenanceWindow) -> Generator[simpy.Event, Any, None]:
        ops = self.ops
        env = ops.env
        st = self.state
        cause = self.rel.cause_index("maintenance")
        size = min(window.nodes, st.nodes)
        t = float(window.first)
        k = 0
        while t < ops.horizon_s:
            if t > env.now:
                yield env.timeout(t - env.now)
            now = ops.begin_event()
            block = [(k * size + j) % st.nodes for j in range(size)]
            taken = [node for node in block if st.node_up[node]]
            for node in taken:
                self.gen[node] += 1
            self.down_s_by_cause[cause] = self.down_s_by_cause.get(cause, 0.0) + len(taken) * (
                min(now + window.duration, ops.horizon_s) - now
            )
            self.rel.take_down(self.c, taken, now, cause, failure=False)
            self._after_change()
            self._schedule_end(window.duration, taken)
            k += 1
            if window.every is None:
                return
            t += window.every

    def _schedule_end(self, duration_s: float, nodes: list[int]) -> None:
        self.ops.env.timeout(duration_s).callbacks.append(lambda _e: self._end_maintenance(nodes))

    def _end_maintenance(self, nodes: list[int]) -> None:
        now = self.ops.begin_event()
        for node in nodes:
            self._bring_up(node)
            if math.isfinite(self.mean_s):
                self._push(node, now)
        self._after_change()
