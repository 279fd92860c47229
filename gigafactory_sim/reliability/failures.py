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
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from gigafactory_sim.reliability.config import FailureConfig, MaintenanceWindow

if TYPE_CHECKING:
    from gigafactory_sim.reliability.runtime import Reliability

__all__ = ["ClusterFailures"]


class ClusterFailures:
    """The failure, repair and maintenance process of cluster ``c``."""

    def __init__(self, rel: Reliability, c: int, cfg: FailureConfig) -> None:
        sim = rel.sim
        self.rel = rel
        self.sim = sim
        self.c = c
        self.cfg = cfg
        self.state = sim.clusters[c]
        self.rng = sim.streams.get(f"failures.{self.state.name}")
        self.rate_per_node_s = cfg.rate_per_node_s(self.state.gpus_per_node)
        self.mean_s = 1.0 / self.rate_per_node_s if self.rate_per_node_s > 0 else math.inf
        self.cause_idx = [rel.cause_index(cause.name) for cause in cfg.causes]
        shares = np.array([cause.share for cause in cfg.causes], dtype=float)
        self.cum_shares = np.cumsum(shares / shares.sum())
        self.heap: list[tuple[float, int, int]] = []  # (failure time, node, node generation)
        self.gen = [0] * self.state.nodes
        self.token = 0
        self.armed_s = math.inf
        self.spares_target = cfg.hot_spares
        self.down_s_by_cause: dict[int, float] = {}  # node-seconds down within the horizon, by cause index
        for node in range(self.state.nodes - cfg.hot_spares, self.state.nodes):
            self.state.reserve(node)

    # -- start -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        env = self.sim.env
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
        self.token += 1
        self.armed_s = heap[0][0]
        token = self.token
        env = self.sim.env
        env.timeout(max(self.armed_s - env.now, 0.0)).callbacks.append(lambda _e: self._fire(token))

    def _push(self, node: int, now: float) -> None:
        ttf = float(self.cfg.distribution.sample_s(self.rng, self.mean_s, 1)[0])
        heapq.heappush(self.heap, (now + ttf, node, self.gen[node]))
        self._arm()

    def _fire(self, token: int) -> None:
        if token != self.token:
            return
        self.armed_s = math.inf
        now = self.sim.env.now
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, node, gen = heapq.heappop(heap)
            if gen == self.gen[node]:
                self._fail(node, now)
        self._arm()

    def _fail(self, node: int, now: float) -> None:
        sim = self.sim
        sim.n_events += 1
        sim.meter.advance(now)
        k = int(np.searchsorted(self.cum_shares, self.rng.random(), side="right"))
        k = min(k, len(self.cause_idx) - 1)
        cause = self.cause_idx[k]
        repair_s = float(self.cfg.causes[k].repair.sample(self.rng, 1)[0])
        self.gen[node] += 1
        self.rel.failure_log.append((now, self.c, cause))
        self.down_s_by_cause[cause] = (self.down_s_by_cause.get(cause, 0.0)
                                       + min(now + repair_s, sim.horizon_s) - now)
        self.rel.take_down(self.c, [node], now, cause, failure=True)
        sim.env.timeout(repair_s).callbacks.append(lambda _e: self._repair(node))
        self._after_change()

    def _repair(self, node: int) -> None:
        sim = self.sim
        sim.n_events += 1
        now = sim.env.now
        sim.meter.advance(now)
        self._bring_up(node)
        self._push(node, now)
        self._after_change()

    def _bring_up(self, node: int) -> None:
        """A repaired node refills the spare pool first, then returns to scheduling."""
        st = self.state
        st.set_up(node, reserve=len(st.reserved) < self.spares_target)

    def _after_change(self) -> None:
        sim = self.sim
        sim._refresh(self.c)
        sim._set_counts()
        sim._request_pass(self.c)

    # -- planned maintenance ---------------------------------------------------------------------------------
    def _maintenance(self, window: MaintenanceWindow) -> Generator[simpy.Event, Any, None]:
        sim = self.sim
        env = sim.env
        st = self.state
        cause = self.rel.cause_index("maintenance")
        size = min(window.nodes, st.nodes)
        t = float(window.first)
        k = 0
        while t < sim.horizon_s:
            if t > env.now:
                yield env.timeout(t - env.now)
            sim.n_events += 1
            now = env.now
            sim.meter.advance(now)
            block = [(k * size + j) % st.nodes for j in range(size)]
            taken = [node for node in block if st.node_up[node]]
            for node in taken:
                self.gen[node] += 1
            self.down_s_by_cause[cause] = (self.down_s_by_cause.get(cause, 0.0)
                                           + len(taken) * (min(now + window.duration, sim.horizon_s) - now))
            self.rel.take_down(self.c, taken, now, cause, failure=False)
            self._after_change()
            self._schedule_end(window.duration, taken)
            k += 1
            if window.every is None:
                return
            t += window.every

    def _schedule_end(self, duration_s: float, nodes: list[int]) -> None:
        self.sim.env.timeout(duration_s).callbacks.append(lambda _e: self._end_maintenance(nodes))

    def _end_maintenance(self, nodes: list[int]) -> None:
        sim = self.sim
        sim.n_events += 1
        now = sim.env.now
        sim.meter.advance(now)
        for node in nodes:
            self._bring_up(node)
            if math.isfinite(self.mean_s):
                self._push(node, now)
        self._after_change()
