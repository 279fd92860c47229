"""Inference services inside the engine: one SimPy process per service (its control loop), GPU allocation
through
:class:`~gigafactory_sim.sim.cluster.ClusterState`, preemption of training, and meter channels.

Per cluster the meter gains ``gpu_infer_w``, ``node_infer_w`` (IT power of GPUs held by replicas, serving or
loading weights) and ``infer_gpus``; per service ``infer_demand_rps``, ``infer_capacity_rps``,
``infer_served_rps``
and ``infer_replicas``. Training channels keep their meaning: the engine subtracts GPUs held by inference from
``allocated_gpus`` and counts reserved-but-unused partition GPUs as unallocated (idle).

Static partitions are taken out of the training pool at t=0 by allocating their whole nodes in the cluster
state;
replicas are then placed in a private pool of the same shape. Under ``inference_first`` a replica that
finds no
free GPUs preempts running training jobs of lower priority, choosing the node whose jobs lose the fewest
GPU-seconds;
a preempted job is requeued with all its work (progress since its start is lost, counted as lost GPU-hours).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gigafactory_sim.sim.cluster import ClusterState
from gigafactory_sim.sim.state import QUEUED, Job

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Scenario
    from gigafactory_sim.sim.engine import Simulation

__all__ = ["INFER_CLUSTER_CHANNELS", "INFER_POWER_CHANNELS", "InferenceRuntime", "inference_channel_names"]

INFER_CLUSTER_CHANNELS = ("gpu_infer_w", "node_infer_w", "infer_gpus")
INFER_POWER_CHANNELS = ("gpu_infer_w", "node_infer_w")
INFER_SERVICE_CHANNELS = ("infer_demand_rps", "infer_capacity_rps", "infer_served_rps", "infer_replicas")


def inference_channel_names(scenario: Scenario) -> tuple[list[str], list[str]]:
    """(all inference meter channels, those that are IT power); empty without services."""
    if not scenario.workload.inference:
        return [], []
    clusters = [c.name for c in scenario.facility.clusters]
    names = [f"{ch}.{c}" for c in clusters for ch in INFER_CLUSTER_CHANNELS]
    names += [f"{ch}.{s.name}" for s in scenario.workload.inference for ch in INFER_SERVICE_CHANNELS]
    return names, [f"{ch}.{c}" for c in clusters for ch in INFER_POWER_CHANNELS]


class InferenceRuntime:
    """All services of a run and the facility-side bookkeeping they share."""

    def __init__(self, sim: Simulation) -> None:
        from gigafactory_sim.inference.service import ServiceRuntime

        self.sim = sim
        n = len(sim.clusters)
        self.ch = [
            {ch: sim.meter.index[f"{ch}.{c}"] for ch in INFER_CLUSTER_CHANNELS} for c in sim.cluster_names
        ]
        self.gpu_w = [0.0] * n
        self.preemptions = 0
        self.lost_gpu_s = 0.0
        self.job_preemptions = np.zeros(len(sim.jobs), dtype=np.int64)
        self.job_lost_gpu_s = np.zeros(len(sim.jobs))
        self.services = [
            ServiceRuntime(self, svc, i) for i, svc in enumerate(sim.scenario.workload.inference)
        ]

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        for s in self.services:
            self.sim.env.process(s.run())

    def finish(self, now: float) -> None:
        for s in self.services:
            s.finish(now)

    # -- meter ---------------------------------------------------------------------------------------------
    def refresh(self, c: int) -> None:
        """Set cluster ``c``'s inference and training channels (call after ``meter.advance(now)``)."""
        sim = self.sim
        v = sim.meter.values
        ch = self.ch[c]
        v[ch["gpu_infer_w"]] = sum(s.gpu_w.get(c, 0.0) for s in self.services)
        v[ch["node_infer_w"]] = sim.infer_active[c] * sim.node_busy_w_per_gpu[c]
        v[ch["infer_gpus"]] = sim.infer_active[c]
        sim._refresh(c)

    # -- allocation ----------------------------------------------------------------------------------------
    def reserve_nodes(self, c: int, nodes: int) -> ClusterState:
        """Take ``nodes`` whole nodes of cluster ``c`` out of the training pool; return the private pool."""
        st = self.sim.clusters[c]
        st.allocate(nodes * st.gpus_per_node)
        self.sim.infer_held[c] += nodes * st.gpus_per_node
        return ClusterState(f"{st.name}-reserved", c, nodes, st.gpus_per_node)

    def allocate(self, c: int, gpus: int) -> list[tuple[int, int]] | None:
        st = self.sim.clusters[c]
        if not st.fits(gpus):
            return None
        alloc = st.allocate(gpus)
        held = sum(k for _, k in alloc)
        self.sim.infer_held[c] += held
        return alloc

    def release(self, c: int, alloc: list[tuple[int, int]]) -> None:
        self.sim.clusters[c].release(alloc)
        self.sim.infer_held[c] -= sum(k for _, k in alloc)
        self.sim._request_pass(c)

    def preempt_for(self, c: int, gpus: int, priority: int, now: float) -> bool:
        """Preempt training jobs of priority < ``priority`` on cluster ``c`` until ``gpus`` fit; False if they
        cannot be made to fit (nothing is preempted then beyond what was needed on the way)."""
        sim = self.sim
        st = sim.clusters[c]
        gpn = st.gpus_per_node
        while not st.fits(gpus):
            on_node: dict[int, list[Job]] = {}
            for group in sim.groups[c].values():
                for _, _, job in group.running:
                    for node, _k in job.alloc:
                        on_node.setdefault(node, []).append(job)
            need_free = gpus if gpus <= gpn else gpn
            best: tuple[float, list[Job]] | None = None
            for node, jobs in on_node.items():
                if not st.node_up[node]:
                    continue
                lacking = need_free - st.node_free[node]
                if lacking <= 0:
                    continue
                if sum(k for j in jobs if j.priority < priority for n_, k in j.alloc if n_ == node) < lacking:
                    continue
                chosen: list[Job] = []
                freed = 0
                cost = 0.0
                for job in sorted(
                    (j for j in jobs if j.priority < priority), key=lambda j: j.gpus * (now - j.start_s)
                ):
                    chosen.append(job)
                    freed += sum(k for n_, k in job.alloc if n_ == node)
                    cost += job.gpus * (now - job.start_s)
                    if freed >= lacking:
                        break
                if freed >= lacking and (best is None or cost < best[0]):
                    best = (cost, chosen)
            if best is None:
                return False
            for job in best[1]:
                self._preempt(job, c, now)
        return True

    def _preempt(self, job: Job, c: int, now: float) -> None:
        sim = self.sim
        if sim.reliability is not None:  # with checkpointing, the job restarts from its last checkpoint
            records = sim.reliability.records
            lost_before = float(records.lost_s[job.idx])
            sim.reliability.preempt(job, "inference")
            lost = job.gpus * (float(records.lost_s[job.idx]) - lost_before)
            self.lost_gpu_s += lost
            self.preemptions += 1
            self.job_preemptions[job.idx] += 1
            self.job_lost_gpu_s[job.idx] += lost
            sim._request_pass(c)
            return
        group = job.group
        assert group is not None
        group.advance(now)
        sim.rec_energy_j[job.idx] += sim.job_energy_j(job, now)
        sim.views[c].disruptions += 1  # a running job left early: schedulers' reservations are stale
        group.remove(job)
        lost = job.gpus * (now - job.start_s)
        self.lost_gpu_s += lost
        self.preemptions += 1
        self.job_preemptions[job.idx] += 1
        self.job_lost_gpu_s[job.idx] += lost
        sim.clusters[c].release(job.alloc)
        job.alloc = []
        job.gpus_held = 0
        job.group = None
        sim.n_running -= 1
        sim.rec_state[job.idx] = QUEUED
        sim._schedule_completion(group)
        sim._enqueue(job, c)
