"""Inference services as an engine feature: one SimPy process per service (its control loop), GPU allocation
through the shared :class:`~gigafactory_sim.sim.cluster.ClusterState`, preemption of training, meter channels.

Per cluster the meter gains ``gpu_infer_w``, ``node_infer_w`` (IT power of GPUs held by replicas, serving or
loading weights) and ``infer_gpus``; per service ``infer_demand_rps``, ``infer_capacity_rps``,
``infer_served_rps`` and ``infer_replicas``. Training channels keep their meaning: the facility subtracts GPUs
held by inference from ``allocated_gpus`` and counts reserved-but-unused partition GPUs as unallocated (idle).

Static partitions are taken out of the training pool at t=0 by allocating their whole nodes in the cluster state;
replicas are then placed in a private pool of the same shape (:mod:`.sharing`). Under ``inference_first`` a
replica that finds no free GPUs preempts running training jobs of lower priority, choosing the node whose jobs
lose the fewest GPU-seconds; a preempted job is stopped through the engine (it restarts from its last checkpoint
with reliability configured, from its start without).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gigafactory_sim.inference import results
from gigafactory_sim.inference.disagg_config import POOLS
from gigafactory_sim.inference.disagg_service import DisaggServiceRuntime
from gigafactory_sim.inference.prepare import PreparedService
from gigafactory_sim.inference.service import ServiceRuntime
from gigafactory_sim.sim import channels
from gigafactory_sim.sim.cluster import Allocation, ClusterState
from gigafactory_sim.sim.ops import EngineOps, RunView
from gigafactory_sim.sim.state import Job

__all__ = ["InferenceRuntime", "inference_channels", "preemption_victims"]


def inference_channels(cluster_names: list[str], services: list[PreparedService]) -> tuple[list[str], list[list[str]]]:
    """(every inference meter channel, the IT power channels of each cluster)."""
    names = channels.per(channels.INFER_CLUSTER, cluster_names)
    names += channels.per(channels.INFER_SERVICE, [s.svc.name for s in services])
    pools = [f"{s.svc.name}.{pool}" for s in services if s.svc.disaggregation is not None for pool in POOLS]
    names += channels.per(channels.INFER_POOL, pools)
    return names, [[f"{ch}.{c}" for ch in channels.INFER_POWER] for c in cluster_names]


class InferenceRuntime:
    """All services of a run and the facility-side bookkeeping they share (a
    :class:`~gigafactory_sim.inference.sharing.GpuPool`)."""

    def __init__(self, ops: EngineOps, services: list[PreparedService]) -> None:
        self.ops = ops
        f = ops.facility
        self.facility = f
        n_jobs = len(f.jobs)
        self.ch = [{ch: ops.meter.index[f"{ch}.{c}"] for ch in channels.INFER_CLUSTER} for c in f.cluster_names]
        self.preemptions = 0
        self.lost_gpu_s = 0.0
        self.job_preemptions = np.zeros(n_jobs, dtype=np.int64)
        self.job_lost_gpu_s = np.zeros(n_jobs)
        self.services: list[ServiceRuntime | DisaggServiceRuntime] = [
            DisaggServiceRuntime(ops, self, p) if p.pools is not None else ServiceRuntime(ops, self, p)
            for p in services
        ]

    # -- Process ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        for s in self.services:
            self.ops.env.process(s.run())

    def finish(self, now_s: float) -> None:
        for s in self.services:
            s.finish(now_s)

    # -- meter -----------------------------------------------------------------------------------------------
    def refresh(self, c: int) -> None:
        """Set cluster ``c``'s inference channels, then its training ones (call after ``meter.advance(now)``)."""
        f = self.facility
        v = self.ops.meter.values
        ch = self.ch[c]
        v[ch["gpu_infer_w"]] = sum(s.gpu_w.get(c, 0.0) for s in self.services)
        v[ch["node_infer_w"]] = f.infer_active[c] * f.node_busy_w_per_gpu[c]
        v[ch["infer_gpus"]] = f.infer_active[c]
        self.ops.refresh(c)

    # -- GpuPool ---------------------------------------------------------------------------------------------
    def reserve_nodes(self, c: int, nodes: int) -> ClusterState:
        """Take ``nodes`` whole nodes of cluster ``c`` out of the training pool; return the private pool."""
        st = self.facility.clusters[c]
        st.allocate(nodes * st.gpus_per_node)
        self.facility.infer_held[c] += nodes * st.gpus_per_node
        return ClusterState(f"{st.name}-reserved", c, nodes, st.gpus_per_node)

    def allocate(self, c: int, gpus: int) -> Allocation | None:
        st = self.facility.clusters[c]
        if not st.fits(gpus):
            return None
        alloc = st.allocate(gpus)
        self.facility.infer_held[c] += sum(k for _, k in alloc)
        return alloc

    def release(self, c: int, alloc: Allocation) -> None:
        self.facility.clusters[c].release(alloc)
        self.facility.infer_held[c] -= sum(k for _, k in alloc)
        self.ops.request_pass(c)

    def preempt_for(self, c: int, gpus: int, priority: int, now: float) -> bool:
        """Preempt training jobs of priority < ``priority`` on cluster ``c`` until ``gpus`` fit; False if they
        cannot be made to fit (nothing is preempted then beyond what was needed on the way)."""
        st = self.facility.clusters[c]
        while not st.fits(gpus):
            victims = preemption_victims(list(self.facility.running(c)), st, gpus, priority, now)
            if victims is None:
                return False
            for job in victims:
                self._preempt(job, c)
        return True

    def _preempt(self, job: Job, c: int) -> None:
        lost = job.gpus * self.ops.stop(job, "interrupted", "inference")
        self.lost_gpu_s += lost
        self.preemptions += 1
        self.job_preemptions[job.idx] += 1
        self.job_lost_gpu_s[job.idx] += lost
        self.ops.refresh(c)

    # -- ItContributor and ResultContributor -----------------------------------------------------------------
    def it_channels(self, c: int) -> list[str]:
        name = self.facility.cluster_names[c]
        return [f"{ch}.{name}" for ch in channels.INFER_POWER]

    def gpu_channels(self, c: int) -> list[str]:
        return [f"infer_gpus.{self.facility.cluster_names[c]}"]

    def timeseries_columns(self, run: RunView, times: np.ndarray, means: np.ndarray) -> dict[str, Any]:
        return results.timeseries_columns(self, run, means)

    def job_columns(self, run: RunView) -> dict[str, np.ndarray]:
        n = run.n_submitted
        return {"preemptions": self.job_preemptions[:n], "preemption_lost_gpu_h": self.job_lost_gpu_s[:n] / 3600.0}

    def summary_sections(self, run: RunView, jobs: pd.DataFrame, summary: dict[str, Any]) -> None:
        results.summary_sections(self, run, summary)


def preemption_victims(running: list[Job], st: ClusterState, gpus: int, priority: int, now: float) -> list[Job] | None:
    """The running training jobs of lower priority than ``priority`` to preempt so that a replica of ``gpus``
    GPUs gains room on one node of ``st``: of the nodes (up, lacking free GPUs) where that is possible, the one
    whose jobs lose the fewest GPU-seconds (``gpus x (now - start)``; the first such node in the order the
    running jobs, in ``running``'s order, first hold them); on a node of several jobs, its lowest-cost ones
    first (ties in running order) until enough GPUs are free. None if no node will do.

    Nodes and their jobs are kept as integers in flat lists (the jobs of each node held by several are grouped
    by one stable sort of their positions), not as a map of per-node lists of pairs: a call over thousands of
    running jobs then makes a handful of objects for the garbage collector to follow, not tens of thousands."""
    gpn = st.gpus_per_node
    node_free, node_up = st.node_free, st.node_up
    need_free = gpus if gpus <= gpn else gpn
    first = [-1] * st.nodes  # position in `running` of the node's first job
    first_k = [0] * st.nodes  # its GPUs there
    shared = [False] * st.nodes  # more than one job on the node
    order: list[int] = []  # nodes in order of first appearance
    for pos, job in enumerate(running):
        for node, k in job.alloc:
            if first[node] < 0:
                first[node] = pos
                first_k[node] = k
                order.append(node)
            else:
                shared[node] = True
    cost = [job.gpus * (now - job.start_s) for job in running]
    # the jobs of shared nodes, node by node, in running order: (node, position, GPUs) flat, then a stable sort
    s_node: list[int] = []
    s_pos: list[int] = []
    s_k: list[int] = []
    for pos, job in enumerate(running):
        for node, k in job.alloc:
            if shared[node]:
                s_node.append(node)
                s_pos.append(pos)
                s_k.append(k)
    by_node = sorted(range(len(s_node)), key=s_node.__getitem__)
    begin = [0] * st.nodes  # node -> its slice of by_node
    end = [0] * st.nodes
    for i, e in enumerate(by_node):
        node = s_node[e]
        if end[node] == 0:
            begin[node] = i
        end[node] = i + 1

    def lowest(node: int, lacking: int) -> tuple[float, list[int]] | None:
        """(cost, positions) of a shared node's cheapest lower-priority jobs freeing ``lacking``, or None."""
        lower = [e for e in by_node[begin[node] : end[node]] if running[s_pos[e]].priority < priority]
        total = 0
        for e in lower:
            total += s_k[e]
        if total < lacking:
            return None
        chosen: list[int] = []
        freed = 0
        c = 0.0
        for e in sorted(lower, key=lambda e: cost[s_pos[e]]):
            chosen.append(s_pos[e])
            freed += s_k[e]
            c += cost[s_pos[e]]
            if freed >= lacking:
                break
        return (c, chosen) if freed >= lacking else None

    best_cost = 0.0
    best_node = -1
    for node in order:
        if not node_up[node]:
            continue
        lacking = need_free - node_free[node]
        if lacking <= 0:
            continue
        if not shared[node]:  # (most nodes: one job, or one node of a gang)
            pos = first[node]
            if (
                running[pos].priority < priority
                and first_k[node] >= lacking
                and (best_node < 0 or cost[pos] < best_cost)
            ):
                best_cost, best_node = cost[pos], node
            continue
        found = lowest(node, lacking)
        if found is not None and (best_node < 0 or found[0] < best_cost):
            best_cost, best_node = found[0], node
    if best_node < 0:
        return None
    if not shared[best_node]:
        return [running[first[best_node]]]
    found = lowest(best_node, need_free - node_free[best_node])
    assert found is not None
    return [running[pos] for pos in found[1]]
