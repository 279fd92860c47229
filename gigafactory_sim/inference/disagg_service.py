"""A disaggregated inference service in the engine: one control loop (one SimPy process), two pools of replicas.

Each pool (``prefill``, ``decode``) holds its own replicas, placed on GPUs through the service's sharing policy
(:mod:`.sharing`; under a static partition both pools draw on the same reserved nodes), and its own autoscaler
(:class:`~gigafactory_sim.inference.autoscaler.AutoscalerPolicy`, with the pool's capacity per replica). At every
control tick its fidelity (:mod:`.disagg_fidelity`: fluid or discrete) closes its segment and plans the next;
each autoscaler sees the demand of the last interval plus the backlog before its pool (the decode pool also counts
the prefill backlog, which is coming its way). New replicas hold their GPUs at idle-with-context power for their pool's
``scale_up_delay``; a replica finishing its load cuts the segment. Removed replicas release their GPUs at once
(discrete: once they have finished their requests).

Power: each pool has its own meter (GPU and node power, GPUs held, replicas serving and loading); the service's
meter carries their sums, and the facility's inference channels the service's, so every joule is metered once
(energy = power x time, integrated exactly between events).
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import simpy

from gigafactory_sim.inference.autoscaler import AutoscalerPolicy
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.disagg_config import POOLS, PoolSpec
from gigafactory_sim.inference.disagg_fidelity import build_pool_serving
from gigafactory_sim.inference.prepare import PreparedService
from gigafactory_sim.inference.sharing import GpuPool, build_sharing
from gigafactory_sim.sim import channels
from gigafactory_sim.sim.cluster import Allocation
from gigafactory_sim.sim.meter import Meter

if TYPE_CHECKING:
    from gigafactory_sim.inference.service import InferencePool
    from gigafactory_sim.sim.ops import EngineOps

__all__ = ["DisaggServiceRuntime", "PoolReplica", "ReplicaPool"]

POOL_METER = ["gpu_w", "node_w", "gpus", "serving", "loading"]
"""Channels of each pool's meter and of the service's (their sums); the names of :mod:`.service`'s meter."""


class PoolReplica:
    """One replica of a pool: where its GPUs are, and whether it serves (False while loading weights)."""

    __slots__ = ("alloc", "cluster", "handle", "held", "live", "serving")

    def __init__(self, cluster: int, alloc: Allocation, held: int) -> None:
        self.handle: Any = None  # the fidelity's replica (discrete), None in fluid
        self.cluster = cluster
        self.alloc = alloc
        self.held = held
        self.serving = False
        self.live = True


class ReplicaPool:
    """One pool's replicas, autoscaler and meter."""

    def __init__(self, name: str, spec: PoolSpec, capacity_per_replica_per_s: float) -> None:
        self.name = name
        self.spec = spec
        self.gpus_per_replica = spec.gpus_per_replica
        self.policy = AutoscalerPolicy(spec.autoscaler, capacity_per_replica_per_s)
        self.replicas: list[PoolReplica] = []
        self.meter = Meter(POOL_METER, ["gpu_w", "node_w"])
        self.unmet_replica_s = 0.0

    def live(self) -> list[PoolReplica]:
        return [r for r in self.replicas if r.live]

    def serving_counts(self, clusters: list[int]) -> dict[int, int]:
        counts = dict.fromkeys(clusters, 0)
        for r in self.replicas:
            if r.serving and r.live:
                counts[r.cluster] += 1
        return counts


class DisaggServiceRuntime:
    def __init__(self, ops: EngineOps, rt: InferencePool, prepared: PreparedService) -> None:
        svc = prepared.svc
        assert prepared.pools is not None and svc.disaggregation is not None
        d = svc.disaggregation
        assert d.prefill is not None and d.decode is not None
        f = ops.facility
        self.ops, self.rt, self.svc, self.facility = ops, rt, svc, f
        self.env = ops.env
        self.horizon_s = ops.horizon_s
        self.start = ops.scenario.start
        self.interval_s = svc.control_interval
        self.clusters = prepared.clusters
        self.trace = prepared.trace
        self.mix = prepared.mix
        self.pool_models = prepared.pools
        self.models = prepared.pools.decode  # the replica a request stays on longest (service-level figures)
        first = self.clusters[0]
        self.pools = {
            "prefill": ReplicaPool("prefill", d.prefill, prepared.pools.prefill[first].rate_per_s),
            "decode": ReplicaPool("decode", d.decode, prepared.pools.decode[first].rate_per_s),
        }
        pool: GpuPool = rt
        self.sharing = build_sharing(svc.sharing, pool, self.clusters, f.cluster_names, svc)
        self.gpu_w: dict[int, float] = {}
        self.meter = Meter(POOL_METER, ["gpu_w", "node_w"])
        self.ch = {ch: ops.meter.index[f"{ch}.{svc.name}"] for ch in channels.INFER_SERVICE}
        self.pool_ch = {
            (name, ch): ops.meter.index[f"{ch}.{svc.name}.{name}"] for name in POOLS for ch in channels.INFER_POOL
        }
        rng = ops.streams.get(f"inference.{svc.name}")
        self.serving = build_pool_serving(
            self.env, prepared, self.expected_requests, self._on_power, rng, self.horizon_s, self.start
        )

    @property
    def unmet_replica_s(self) -> float:
        return sum(p.unmet_replica_s for p in self.pools.values())

    # -- demand --------------------------------------------------------------------------------------------
    def expected_requests(self, t0: float, t1: float) -> float:
        if self.trace is not None:
            return self.trace.expected_requests(t0, t1)
        demand = self.svc.demand
        assert not isinstance(demand, TraceDemand)
        return demand.expected_requests(t0, t1, self.start)

    # -- the control loop ----------------------------------------------------------------------------------
    def run(self) -> Generator[simpy.Event, Any, None]:
        now = self.env.now
        rate = self.expected_requests(now, now + self.interval_s) / self.interval_s
        self._advance(now)
        for p in self.pools.values():
            self._scale(p, now, p.policy.needed(rate), warm=True)
        self._replan(now)
        k = 1
        while k * self.interval_s < self.horizon_s:
            yield self.env.timeout(k * self.interval_s - self.env.now)
            self._tick(self.env.now)
            k += 1

    def _tick(self, now: float) -> None:
        self._advance(now)
        seen, served_rps = self.serving.tick(now, self.interval_s)
        if served_rps is not None:
            self.ops.meter.values[self.ch["infer_served_rps"]] = served_rps
        wait_p, wait_d = self.serving.backlog("prefill"), self.serving.backlog("decode")
        demand = {"prefill": (seen + wait_p) / self.interval_s, "decode": (seen + wait_p + wait_d) / self.interval_s}
        for name, p in self.pools.items():
            self._scale(p, now, p.policy.decide(now, demand[name], len(p.live())), warm=False)
        self._replan(now)

    def _scale(self, pool: ReplicaPool, now: float, wanted: int, warm: bool) -> None:
        live = pool.live()
        delay = pool.spec.autoscaler.scale_up_delay
        if wanted > len(live):
            for _ in range(wanted - len(live)):
                got = self.sharing.acquire(pool.gpus_per_replica, now)
                if got is None:
                    pool.unmet_replica_s += (wanted - len(pool.live())) * self.interval_s
                    break
                rep = PoolReplica(got[0], got[1], sum(k for _, k in got[1]))
                self.facility.infer_active[rep.cluster] += rep.held
                pool.replicas.append(rep)
                if warm or delay <= 0:
                    self._ready(pool, rep)
                else:
                    self.env.timeout(delay).callbacks.append(partial(self._on_ready, pool, rep))
        elif wanted < len(live):
            order = sorted(live, key=lambda r: (r.serving, -self.clusters.index(r.cluster)))
            for rep in order[: len(live) - wanted]:
                rep.live = False
                if not self.serving.retire(pool.name, rep.handle):
                    self._release(pool, rep)  # else released when drained
        self._refresh_all()

    def _ready(self, pool: ReplicaPool, rep: PoolReplica) -> None:
        rep.serving = True
        rep.handle = self.serving.add_replica(pool.name, rep.cluster, partial(self._on_drained, pool, rep))

    def _on_ready(self, pool: ReplicaPool, rep: PoolReplica, _event: simpy.Event) -> None:
        if not rep.live:
            return
        now = self.env.now
        self._advance(now)
        self.serving.segment_break(now)
        self._ready(pool, rep)
        self._replan(now)

    def _on_drained(self, pool: ReplicaPool, rep: PoolReplica, _handle: Any) -> None:
        self._advance(self.env.now)
        self._release(pool, rep)
        self._refresh_all()

    def _release(self, pool: ReplicaPool, rep: PoolReplica) -> None:
        rep.serving = False
        pool.replicas.remove(rep)
        self.facility.infer_active[rep.cluster] -= rep.held
        self.sharing.release(rep.cluster, rep.alloc)

    # -- segments and power --------------------------------------------------------------------------------
    def _replan(self, now: float) -> None:
        end = min(now + self.interval_s, self.horizon_s)
        span = max(end - now, 1e-9)
        rate = self.expected_requests(now, end) / span if end > now else 0.0
        counts = {name: p.serving_counts(self.clusters) for name, p in self.pools.items()}
        pm = self.pool_models
        cap_p = sum(n * pm.prefill[c].rate_per_s for c, n in counts["prefill"].items())
        cap_d = sum(n * pm.decode[c].rate_per_s for c, n in counts["decode"].items())
        v = self.ops.meter.values
        v[self.ch["infer_demand_rps"]] = rate
        v[self.ch["infer_capacity_rps"]] = min(cap_p, cap_d)
        served_rps = self.serving.replan(now, rate, counts, span)
        if served_rps is not None:
            v[self.ch["infer_served_rps"]] = served_rps
        self._refresh_all()

    def _on_power(self, pool: str, c: int, delta_w: float) -> None:
        """A discrete replica's power changed (every step): the cheapest exact update of every meter."""
        self._advance(self.env.now)
        self.gpu_w[c] = self.gpu_w.get(c, 0.0) + delta_w
        self.ops.meter.values[self.rt.ch[c]["gpu_infer_w"]] += delta_w
        self.meter.values[0] += delta_w  # gpu_w
        self.pools[pool].meter.values[0] += delta_w

    def _refresh_all(self) -> None:
        """Recompute each pool's power per cluster, the service's sums, and push every channel (meters advanced
        by the caller)."""
        sums = [0.0] * len(POOL_METER)
        gpu_w = dict.fromkeys(self.clusters, 0.0)
        for name, p in self.pools.items():
            g = p.gpus_per_replica
            total_w = node_w = 0.0
            held = serving = loading = 0
            n_serving = dict.fromkeys(self.clusters, 0)
            for r in p.replicas:
                if r.serving:
                    n_serving[r.cluster] += 1
                else:
                    w = g * self.pool_models.prefill[r.cluster].power.idle_w
                    gpu_w[r.cluster] += w
                    total_w += w
                node_w += r.held * self.facility.node_busy_w_per_gpu[r.cluster]
                held += r.held
                serving += r.serving
                loading += not r.serving
            for c, n in n_serving.items():
                w = self.serving.serving_gpu_w(name, c, n, g)
                gpu_w[c] += w
                total_w += w
            row = [total_w, node_w, held, serving, loading]
            p.meter.values[:] = row
            sums = [a + b for a, b in zip(sums, row, strict=True)]
            v = self.ops.meter.values
            v[self.pool_ch[(name, "infer_pool_replicas")]] = serving + loading
            v[self.pool_ch[(name, "infer_pool_gpus")]] = held
        self.meter.values[:] = sums
        self.gpu_w = gpu_w
        for c in self.clusters:
            self.rt.refresh(c)
            self.ops.changed(c)
        self.ops.meter.values[self.ch["infer_replicas"]] = sums[3] + sums[4]

    def _advance(self, now: float) -> None:
        self.ops.meter.advance(now)
        self.meter.advance(now)
        for p in self.pools.values():
            p.meter.advance(now)

    def finish(self, now: float) -> None:
        self._advance(now)
        self.serving.segment_break(now)
        self.serving.finish()
