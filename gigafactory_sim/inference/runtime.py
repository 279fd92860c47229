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

__all__ = ["InferenceRuntime", "inference_channels"]


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
        gpn = st.gpus_per_node
        while not st.fits(gpus):
            on_node: dict[int, list[tuple[Job, int]]] = {}  # node -> (job, its GPUs there), in running order
            for job in self.facility.running(c):
                for node, k in job.alloc:
                    on_node.setdefault(node, []).append((job, k))
            need_free = gpus if gpus <= gpn else gpn
            best: tuple[float, list[Job]] | None = None
            for node, held in on_node.items():
                if not st.node_up[node]:
                    continue
                lacking = need_free - st.node_free[node]
                if lacking <= 0:
                    continue
                if len(held) == 1:  # (most nodes: one job, or one node of a gang)
                    job, k = held[0]
                    if job.priority < priority and k >= lacking:
                        cost = job.gpus * (now - job.start_s)
                        if best is None or cost < best[0]:
                            best = (cost, [job])
                    continue
                lower = [(j, k) for j, k in held if j.priority < priority]
                if sum(k for _, k in lower) < lacking:
                    continue
                chosen: list[Job] = []
                freed = 0
                cost = 0.0
                for job, k in sorted(lower, key=lambda e: e[0].gpus * (now - e[0].start_s)):
                    chosen.append(job)
                    freed += k
                    cost += job.gpus * (now - job.start_s)
                    if freed >= lacking:
                        break
                if freed >= lacking and (best is None or cost < best[0]):
                    best = (cost, chosen)
            if best is None:
                return False
            for job in best[1]:
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
