"""The autoscaler policy: a plain object (no SimPy) deciding how many replicas a service should have.

Reactive: at each control tick it sees the demand observed over the last interval plus the backlog, and
asks for
``ceil(demand / (target_utilisation x capacity per replica))`` replicas within [min, max]. Scale-up is
immediate
(the new replicas then load weights for the scale-up delay). Scale-down waits until every decision of the last
``scale_down_cooloff`` asked for fewer replicas than there are, then goes to the largest of those.
"""

from __future__ import annotations

import math
from collections import deque

from gigafactory_sim.inference.config import Autoscaler

__all__ = ["AutoscalerPolicy"]


class AutoscalerPolicy:
    def __init__(self, config: Autoscaler, capacity_per_replica_per_s: float) -> None:
        self.config = config
        self.capacity = capacity_per_replica_per_s
        self.history: deque[tuple[float, int]] = deque()
        self.first_s: float | None = None

    def needed(self, demand_per_s: float) -> int:
        c = self.config
        raw = 0
        if self.capacity > 0:
            x = demand_per_s / (c.target_utilisation * self.capacity) - 1e-9
            raw = math.ceil(x) if x < c.max_replicas else c.max_replicas  # (an infinite demand wants the most)
        return min(max(raw, c.min_replicas), c.max_replicas)

    def decide(self, now_s: float, demand_per_s: float, current: int) -> int:
        """Replicas wanted now, given ``current`` (serving + loading)."""
        n = self.needed(demand_per_s)
        if self.first_s is None:
            self.first_s = now_s
        self.history.append((now_s, n))
        cooloff = self.config.scale_down_cooloff
        while self.history and self.history[0][0] < now_s - cooloff:
            self.history.popleft()
        if n >= current:
            return n
        if now_s - self.first_s < cooloff:
            return current
        window_max = max(k for _, k in self.history)
        return min(current, window_max)
