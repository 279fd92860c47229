"""The run's shared state, owned by the engine: clusters, speed groups, queues, per-job records, the GPUs
inference holds, and the one power formula.

Features read it freely and change it only through the engine's API (:class:`~gigafactory_sim.sim.ops.EngineOps`),
except the few counters that are theirs by contract: ``infer_held`` / ``infer_active`` (inference), a group's
``low_gpus`` and ``p_low_w`` (reliability's checkpoint and restart phases).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.gpus.catalogue import GpuProfile
from gigafactory_sim.power.models import GpuPowerModel
from gigafactory_sim.sim import channels
from gigafactory_sim.sim.cluster import ClusterState
from gigafactory_sim.sim.meter import Meter
from gigafactory_sim.sim.state import QUEUED, Job, SpeedGroup
from gigafactory_sim.sim.view import EngineClusterView
from gigafactory_sim.workload.jobs import JobTable

__all__ = ["PARKED_OVER_CONTEXT", "Facility", "PowerTable", "group_speed"]

# Deep idle (no process, 78 W) over idle with a context (122 W), measured on the H200 (shared/data/gpu_power/h200).
PARKED_OVER_CONTEXT = 78.0 / 122.0


def group_speed(profile: GpuProfile, model: GpuPowerModel, ref: GpuProfile | None, load: float) -> float:
    """Reference-seconds of work per second for a job at ``load`` on this GPU at its board limit."""
    if ref is None:
        return 1.0
    ref_model = ref.power_model
    return (profile.dense_bf16_tflops * model.speed(load)) / (ref.dense_bf16_tflops * ref_model.speed(load))


class PowerTable:
    """Per-cluster power figures of a scenario's facility (pure: no state; built at prepare time too)."""

    def __init__(self, scenario: Scenario) -> None:
        catalogue = scenario.gpu_catalogue()
        cfgs = scenario.facility.clusters
        self.cluster_names = [c.name for c in cfgs]
        self.total_gpus = [c.nodes * c.gpus_per_node for c in cfgs]
        self.gpu_profiles: list[GpuProfile] = [catalogue[c.gpu] for c in cfgs]
        self.power_models: list[GpuPowerModel] = [
            c.power_model.build(p) for c, p in zip(cfgs, self.gpu_profiles, strict=True)
        ]
        parked = scenario.power.unallocated_gpu_state == "parked"
        self.context_idle_w = [m.idle_w for m in self.power_models]
        self.unallocated_w = [m.idle_w * (PARKED_OVER_CONTEXT if parked else 1.0) for m in self.power_models]
        self.node_busy_w_per_gpu = [c.node_power.busy_w / c.gpus_per_node for c in cfgs]
        self.node_idle_w_per_gpu = [c.node_power.idle_w / c.gpus_per_node for c in cfgs]

    def idle_floor_it_w(self) -> float:
        """IT power with every GPU unallocated (every job suspended)."""
        return sum(n * (self.unallocated_w[c] + self.node_idle_w_per_gpu[c]) for c, n in enumerate(self.total_gpus))

    def ceiling_it_w(self) -> float:
        """IT power with every GPU busy at its board limit."""
        return sum(
            n * (max(m.limit_w, self.context_idle_w[c]) + self.node_busy_w_per_gpu[c])
            for c, (n, m) in enumerate(zip(self.total_gpus, self.power_models, strict=True))
        )

    def busy_gpu_marginal_w(self, c: int, load: float) -> float:
        """IT power one GPU of cluster ``c`` adds when it goes from unallocated to busy at ``load``."""
        return (
            self.power_models[c].power_w(load)
            + self.node_busy_w_per_gpu[c]
            - self.unallocated_w[c]
            - self.node_idle_w_per_gpu[c]
        )


class _RefreshConsts(NamedTuple):
    """What :meth:`Facility.refresh` reads of one cluster that never changes (unpacked in one step)."""

    state: ClusterState
    groups: tuple[SpeedGroup, ...]
    context_idle_w: float
    unallocated_w: float
    node_busy_w_per_gpu: float
    node_idle_w_per_gpu: float
    i_train: int
    i_idle: int
    i_node_train: int
    i_node_idle: int
    i_allocated: int
    i_busy: int


class Facility:
    """Shared state of one run (see the module docstring). Cluster ``c`` is an index into every list."""

    def __init__(self, scenario: Scenario, jobs: JobTable, meter_extra: list[str], it_extra: list[list[str]]) -> None:
        """``meter_extra``: the features' meter channels; ``it_extra[c]``: those of them that are IT power on
        cluster ``c`` (inference's GPUs, say)."""
        catalogue = scenario.gpu_catalogue()
        cfgs = scenario.facility.clusters
        self.jobs = jobs
        self.power = power = PowerTable(scenario)
        self.cluster_names = power.cluster_names
        self.clusters = [ClusterState(c.name, i, c.nodes, c.gpus_per_node) for i, c in enumerate(cfgs)]
        self.gpu_profiles = power.gpu_profiles
        self.power_models = power.power_models
        ref = catalogue[scenario.workload.reference_gpu] if scenario.workload.reference_gpu else None
        loads = sorted({*jobs.source_load, scenario.power.training_gpu_load})
        self.groups: list[dict[float, SpeedGroup]] = [
            {load: SpeedGroup(c, load, group_speed(profile, model, ref, load), model.power_w(load)) for load in loads}
            for c, (profile, model) in enumerate(zip(self.gpu_profiles, self.power_models, strict=True))
        ]
        self.context_idle_w = power.context_idle_w
        self.unallocated_w = power.unallocated_w
        self.node_busy_w_per_gpu = power.node_busy_w_per_gpu
        self.node_idle_w_per_gpu = power.node_idle_w_per_gpu
        self.p_low_w = [0.0] * len(cfgs)  # per-GPU power of jobs in low-power phases (set by reliability)
        self.low_gpus = [0] * len(cfgs)  # GPUs in low-power phases, per cluster (kept by reliability)
        self.tracks_outages = False  # whether nodes can go down or GPUs stall (reliability sets it)

        names = channels.per(channels.CLUSTER, self.cluster_names)
        names += [channels.QUEUED_JOBS, channels.RUNNING_JOBS]
        names += channels.per(channels.RELIABILITY, self.cluster_names)
        self.meter = Meter(
            names + meter_extra,
            channels.per(channels.POWER, self.cluster_names) + [n for names_c in it_extra for n in names_c],
        )
        index = self.meter.index
        self.extra_it_idx = [[index[n] for n in names_c] for names_c in it_extra]
        self.ch = [
            {ch: index[f"{ch}.{c}"] for ch in (*channels.CLUSTER, *channels.RELIABILITY)} for c in self.cluster_names
        ]
        self._core_ch = [
            tuple(
                ch[n]
                for n in ("gpu_train_w", "gpu_idle_w", "node_train_w", "node_idle_w", "allocated_gpus", "busy_gpus")
            )
            for ch in self.ch
        ]
        # what refresh() reads of each cluster that never changes (one tuple: fewer lookups on the hot path)
        self._refresh_consts = [
            _RefreshConsts(
                st,
                tuple(self.groups[c].values()),
                self.context_idle_w[c],
                self.unallocated_w[c],
                self.node_busy_w_per_gpu[c],
                self.node_idle_w_per_gpu[c],
                *self._core_ch[c],
            )
            for c, st in enumerate(self.clusters)
        ]
        self.ch_queued = index[channels.QUEUED_JOBS]
        self.ch_running = index[channels.RUNNING_JOBS]

        n_clusters = len(self.clusters)
        self.queues: list[list[Job]] = [[] for _ in range(n_clusters)]
        self.queue_keys: list[list[tuple[float, ...]]] = [[] for _ in range(n_clusters)]
        self.queued_gpus = [0] * n_clusters
        self.views = [EngineClusterView(st, self.queues[i], self.groups[i]) for i, st in enumerate(self.clusters)]
        self.n_queued = 0
        self.n_running = 0
        self.n_submitted = 0
        self.infer_held = [0] * n_clusters  # GPUs inference holds in each cluster state (incl. reserved)
        self.infer_active = [0] * n_clusters  # of which held by replicas

        n = len(jobs)
        self.rec_start_s = np.full(n, np.nan)
        self.rec_end_s = np.full(n, np.nan)
        self.rec_cluster = np.full(n, -1, dtype=np.int32)
        self.rec_state = np.full(n, QUEUED, dtype=np.int8)
        self.rec_energy_j = np.zeros(n)

    # -- queries ---------------------------------------------------------------------------------------------
    @property
    def gpus_total(self) -> int:
        return sum(st.total_gpus for st in self.clusters)

    def running(self, c: int | None = None) -> Iterator[Job]:
        """Running training jobs (of cluster ``c``, or all), group by group in end order."""
        for groups in self.groups if c is None else [self.groups[c]]:
            for g in groups.values():
                for _, _, job in g.running:
                    yield job

    # -- the power formula -----------------------------------------------------------------------------------
    def refresh(self, c: int) -> None:
        """Set cluster ``c``'s core meter channels from its state, and the queue counts (:meth:`set_counts`); call
        after ``meter.advance(now)``.

        Busy GPUs draw their group's power (GPUs in checkpoint stalls and restarts draw ``p_low_w``); GPUs a job
        holds but does not use draw idle power with a context; GPUs nobody holds draw the unallocated idle power;
        node power is split per GPU, busy for held GPUs and idle for the others. Inference's GPUs are metered by
        the inference feature."""
        st, groups, ctx_w, unalloc_w, node_busy_w, node_idle_w, i_train, i_idle, i_nt, i_ni, i_al, i_busy = (
            self._refresh_consts[c]
        )
        v = self.meter.values
        busy = 0
        gpu_train = 0.0
        for g in groups:
            b = g.busy_gpus
            busy += b
            gpu_train += b * g.gpu_power_w
        allocated = st.allocated_gpus - self.infer_held[c]
        gpu_train += (allocated - busy) * ctx_w
        low = self.low_gpus[c]
        if low:
            saving = 0.0
            p_low = self.p_low_w[c]
            for g in groups:
                if g.low_gpus:
                    saving += g.low_gpus * (g.gpu_power_w - p_low)
            gpu_train -= saving
        unallocated = st.total_gpus - st.down_nodes * st.gpus_per_node - allocated - self.infer_active[c]
        v[i_train] = gpu_train
        v[i_idle] = unallocated * unalloc_w
        v[i_nt] = allocated * node_busy_w
        v[i_ni] = unallocated * node_idle_w
        v[i_al] = allocated
        v[i_busy] = busy
        v[self.ch_queued] = self.n_queued  # (what set_counts writes: every refresh is followed by it)
        v[self.ch_running] = self.n_running
        if self.tracks_outages:
            ch = self.ch[c]
            v[ch["down_nodes"]] = st.down_nodes
            v[ch["ckpt_gpus"]] = low

    def cluster_it_w(self, c: int) -> float:
        """Cluster ``c``'s IT power now: training, idle and the features' (inference)."""
        v = self.meter.values
        ch = self.ch[c]
        it = float(v[ch["gpu_train_w"]] + v[ch["gpu_idle_w"]] + v[ch["node_train_w"]] + v[ch["node_idle_w"]])
        extra = self.extra_it_idx[c]
        if extra:
            x = v[extra[0]]
            for i in extra[1:]:
                x = x + v[i]
            it += float(x)
        return it

    def start_delta_w(self, job: Job, c: int, gpu_w: float) -> float:
        """IT power added by starting ``job`` on cluster ``c`` with its busy GPUs at ``gpu_w`` each."""
        held = self.clusters[c].gpus_held(job.gpus)
        gpu = job.gpus * gpu_w + (held - job.gpus) * self.context_idle_w[c]
        node = held * (self.node_busy_w_per_gpu[c] - self.node_idle_w_per_gpu[c])
        return gpu + node - held * self.unallocated_w[c]

    def set_counts(self) -> None:
        self.meter.values[self.ch_queued] = self.n_queued
        self.meter.values[self.ch_running] = self.n_running
