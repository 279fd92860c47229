"""One inference service in the engine: its control loop (one SimPy process), its replicas and its serving
fidelity (:mod:`.fidelity`: fluid or discrete).

At t=0 the service starts warm with the replicas its first interval needs. At every control tick (fluid: also
when a replica finishes loading) the fidelity closes its segment and plans the next; the autoscaler compares the
demand seen over the last interval (plus the backlog) with its replicas and scales: new replicas hold their GPUs
(from the sharing policy, :mod:`.sharing`) and draw idle-with-context power for ``scale_up_delay`` before
serving; removed replicas release their GPUs (discrete: after finishing their requests).
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from gigafactory_sim.inference.autoscaler import AutoscalerPolicy
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.discrete import DiscreteReplica
from gigafactory_sim.inference.fidelity import build_serving
from gigafactory_sim.inference.prepare import PreparedService
from gigafactory_sim.inference.sharing import GpuPool, build_sharing
from gigafactory_sim.sim import channels
from gigafactory_sim.sim.cluster import Allocation
from gigafactory_sim.sim.meter import Meter

if TYPE_CHECKING:
    from gigafactory_sim.sim.ops import EngineOps


class InferencePool(GpuPool, Protocol):
    """The inference runtime as a service sees it: GPUs, and the refresh of a cluster's inference channels."""

    ch: list[dict[str, int]]

    def refresh(self, c: int) -> None: ...


__all__ = ["ServiceRuntime"]

SERVICE_CHANNELS = ["gpu_w", "node_w", "gpus", "serving", "loading"]


class _Replica:
    __slots__ = ("alloc", "cluster", "drep", "held", "live", "serving")

    def __init__(self, cluster: int, alloc: list[tuple[int, int]], held: int) -> None:
        self.cluster = cluster
        self.alloc = alloc
        self.held = held
        self.serving = False
        self.live = True
        self.drep: DiscreteReplica | None = None


class ServiceRuntime:
    def __init__(self, ops: EngineOps, rt: InferencePool, prepared: PreparedService) -> None:
        svc = prepared.svc
        f = ops.facility
        self.ops, self.rt, self.svc, self.facility = ops, rt, svc, f
        self.path = prepared.path
        self.env = ops.env
        self.horizon_s = ops.horizon_s
        self.start = ops.scenario.start
        self.interval_s = svc.control_interval
        self.clusters = prepared.clusters
        rng = ops.streams.get(f"inference.{svc.name}")
        self.trace = prepared.trace
        self.mix = prepared.mix
        self.models = prepared.models
        self.policy = AutoscalerPolicy(svc.autoscaler, self.models[self.clusters[0]].rate_per_s)
        self.sharing = build_sharing(svc.sharing, rt, self.clusters, f.cluster_names, svc)
        self.replicas: list[_Replica] = []
        self.gpu_w: dict[int, float] = {}
        self.meter = Meter(SERVICE_CHANNELS, ["gpu_w", "node_w"])
        self.ch = {ch: ops.meter.index[f"{ch}.{svc.name}"] for ch in channels.INFER_SERVICE}
        self.serving = build_serving(
            self.env, prepared, self.expected_requests, self._on_power, rng, self.horizon_s, self.start
        )
        self.unmet_replica_s = 0.0

    # -- demand --------------------------------------------------------------------------------------------
    def expected_requests(self, t0: float, t1: float) -> float:
        if self.trace is not None:
            return self.trace.expected_requests(t0, t1)
        demand = self.svc.demand
        assert not isinstance(demand, TraceDemand)
        return demand.expected_requests(t0, t1, self.start)

    def backlog(self) -> float:
        return self.serving.backlog()

    # -- the control loop ----------------------------------------------------------------------------------
    def run(self) -> Generator[simpy.Event, Any, None]:
        now = self.env.now
        rate = self.expected_requests(now, now + self.interval_s) / self.interval_s
        self._advance(now)
        self._scale(now, self.policy.needed(rate), warm=True)
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
        demand = (seen + self.backlog()) / self.interval_s
        live = [r for r in self.replicas if r.live]
        self._scale(now, self.policy.decide(now, demand, len(live)), warm=False)
        self._replan(now)

    def _scale(self, now: float, wanted: int, warm: bool) -> None:
        live = [r for r in self.replicas if r.live]
        if wanted > len(live):
            for _ in range(wanted - len(live)):
                rep = self._acquire(now)
                if rep is None:
                    self.unmet_replica_s += (wanted - len([r for r in self.replicas if r.live])) * self.interval_s
                    break
                if warm or self.svc.autoscaler.scale_up_delay <= 0:
                    self._ready(rep)
                else:
                    self.env.timeout(self.svc.autoscaler.scale_up_delay).callbacks.append(
                        partial(self._on_ready_event, rep)
                    )
        elif wanted < len(live):
            order = sorted(live, key=lambda r: (r.serving, -self.clusters.index(r.cluster)))
            for rep in order[: len(live) - wanted]:
                self._remove(rep)
        self._refresh_all()

    def _acquire(self, now: float) -> _Replica | None:
        got = self.sharing.acquire(self.svc.gpus_per_replica, now)
        return None if got is None else self._add(*got)

    def _add(self, c: int, alloc: Allocation) -> _Replica:
        rep = _Replica(c, alloc, sum(k for _, k in alloc))
        self.facility.infer_active[c] += rep.held
        self.replicas.append(rep)
        return rep

    def _on_ready_event(self, rep: _Replica, _event: simpy.Event) -> None:
        self._on_ready(rep)

    def _on_ready(self, rep: _Replica) -> None:
        if not rep.live:
            return
        now = self.env.now
        self._advance(now)
        self.serving.segment_break(now)
        self._ready(rep)
        self._replan(now)
        self._refresh_all()

    def _ready(self, rep: _Replica) -> None:
        rep.serving = True
        rep.drep = self.serving.add_replica(rep.cluster, partial(self._on_drained, rep))

    def _remove(self, rep: _Replica) -> None:
        rep.live = False
        if self.serving.retire(rep.drep):
            return  # released when drained
        self._release(rep)

    def _on_drained(self, rep: _Replica, _drep: DiscreteReplica) -> None:
        self._drained(rep)

    def _drained(self, rep: _Replica) -> None:
        self._advance(self.env.now)
        self._release(rep)
        self._refresh_all()

    def _release(self, rep: _Replica) -> None:
        rep.serving = False
        self.replicas.remove(rep)
        c = rep.cluster
        self.facility.infer_active[c] -= rep.held
        self.sharing.release(c, rep.alloc)

    # -- fluid segments and power --------------------------------------------------------------------------
    def serving_counts(self) -> dict[int, int]:
        counts = dict.fromkeys(self.clusters, 0)
        for r in self.replicas:
            if r.serving and r.live:
                counts[r.cluster] += 1
        return counts

    def _replan(self, now: float) -> None:
        end = min(now + self.interval_s, self.horizon_s)
        rate = self.expected_requests(now, end) / max(end - now, 1e-9) if end > now else 0.0
        serving = self.serving_counts()
        v = self.ops.meter.values
        v[self.ch["infer_demand_rps"]] = rate
        v[self.ch["infer_capacity_rps"]] = sum(n * self.models[c].rate_per_s for c, n in serving.items())
        served_rps = self.serving.replan(now, rate, serving, max(end - now, 1e-9))
        if served_rps is not None:
            v[self.ch["infer_served_rps"]] = served_rps
        self._refresh_all()

    def _on_power(self, c: int, delta_w: float) -> None:
        """A discrete replica's power changed (every step): the cheapest exact update of both meters."""
        self._advance(self.env.now)
        self.gpu_w[c] = self.gpu_w.get(c, 0.0) + delta_w
        self.ops.meter.values[self.rt.ch[c]["gpu_infer_w"]] += delta_w
        self.meter.values[0] += delta_w  # gpu_w

    def _refresh_all(self) -> None:
        """Recompute this service's power per cluster and push every channel (meters advanced by the
        caller)."""
        gpus = self.svc.gpus_per_replica
        n_serving = dict.fromkeys(self.clusters, 0)
        n_loading = dict.fromkeys(self.clusters, 0)
        n_held = dict.fromkeys(self.clusters, 0)
        for r in self.replicas:
            if r.serving:
                n_serving[r.cluster] += 1
            else:
                n_loading[r.cluster] += 1
            n_held[r.cluster] += r.held
        total_w = node_w = 0.0
        for c in self.clusters:
            m = self.models[c]
            w = n_loading[c] * gpus * m.power.idle_w
            w += self.serving.serving_gpu_w(c, n_serving[c], gpus)
            self.gpu_w[c] = w
            total_w += w
            node_w += n_held[c] * self.facility.node_busy_w_per_gpu[c]
            self.rt.refresh(c)
            self.ops.changed(c)
        held = sum(n_held.values())
        serving = sum(n_serving.values())
        loading = sum(n_loading.values())
        mv = self.meter.values
        mv[:] = [total_w, node_w, held, serving, loading]
        self.ops.meter.values[self.ch["infer_replicas"]] = serving + loading

    def _advance(self, now: float) -> None:
        self.ops.meter.advance(now)
        self.meter.advance(now)

    def finish(self, now: float) -> None:
        self._advance(now)
        self.serving.segment_break(now)
        self.serving.finish()
