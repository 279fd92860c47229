"""The SimPy model of a facility: arrivals, scheduling passes, completions and report ticks.

Events are per job (an arrival, a start, an end) and per report interval; no process per GPU or node. Cluster
occupancy lives in arrays (:mod:`gigafactory_sim.sim.cluster`); running jobs sit in speed groups
(:mod:`gigafactory_sim.sim.state`) whose next completion is one SimPy timeout; power is piecewise constant between
events and integrated exactly by the :class:`~gigafactory_sim.sim.meter.Meter`.

Lifecycle (after desmod): build (``__init__``), run (:meth:`Simulation.run`), collect (``RunResult``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.energy.system import EnergySystem, needs_energy_system
from gigafactory_sim.gpus.catalogue import GpuProfile
from gigafactory_sim.power.models import GpuPowerModel
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.scheduling.base import Scheduler
from gigafactory_sim.sim.cluster import ClusterState
from gigafactory_sim.inference.runtime import InferenceRuntime, inference_channel_names
from gigafactory_sim.sim.meter import Meter
from gigafactory_sim.reliability.runtime import RELIABILITY_CHANNELS, Reliability, reliability_enabled
from gigafactory_sim.sim.state import COMPLETED, QUEUED, RUNNING, Job, SpeedGroup
from gigafactory_sim.sim.view import EngineClusterView
from gigafactory_sim.workload.build import build_jobs

__all__ = ["ProgressFn", "Simulation"]

ProgressFn = Callable[[float, float], None]
"""Called as ``progress(now_s, horizon_s)`` at every report tick."""

# Deep idle (no process, 78 W) over idle with a context (122 W), measured on the H200 (shared/data/gpu_power/h200).
PARKED_OVER_CONTEXT = 78.0 / 122.0
CLUSTER_CHANNELS = ("gpu_train_w", "gpu_idle_w", "node_train_w", "node_idle_w", "allocated_gpus", "busy_gpus")
POWER_CHANNELS = ("gpu_train_w", "gpu_idle_w", "node_train_w", "node_idle_w")


class Simulation:
    """One run of one scenario. Build, then :meth:`run` once."""

    def __init__(self, scenario: Scenario, progress: ProgressFn | None = None) -> None:
        self.scenario = scenario
        self.horizon_s = scenario.horizon_s
        self.progress = progress
        self.env = simpy.Environment()
        self.streams = RandomStreams(scenario.seed)
        self.jobs = build_jobs(scenario, self.streams)
        self.scheduler: Scheduler = scenario.scheduler.build()
        catalogue = scenario.gpu_catalogue()
        self.cluster_names = [c.name for c in scenario.facility.clusters]
        self.clusters = [ClusterState(c.name, i, c.nodes, c.gpus_per_node)
                         for i, c in enumerate(scenario.facility.clusters)]
        self.gpu_profiles: list[GpuProfile] = [catalogue[c.gpu] for c in scenario.facility.clusters]
        self.power_models: list[GpuPowerModel] = [
            c.power_model.build(p) for c, p in zip(scenario.facility.clusters, self.gpu_profiles, strict=True)]
        ref = catalogue[scenario.workload.reference_gpu] if scenario.workload.reference_gpu else None
        loads = sorted({*self.jobs.source_load, scenario.power.training_gpu_load})
        self.groups: list[dict[float, SpeedGroup]] = []
        for c, (profile, model) in enumerate(zip(self.gpu_profiles, self.power_models, strict=True)):
            self.groups.append({load: SpeedGroup(c, load, self._speed(profile, model, ref, load),
                                                 model.power_w(load)) for load in loads})
        unallocated_parked = scenario.power.unallocated_gpu_state == "parked"
        self.context_idle_w = [m.idle_w for m in self.power_models]
        self.unallocated_w = [m.idle_w * (PARKED_OVER_CONTEXT if unallocated_parked else 1.0)
                              for m in self.power_models]
        self.node_busy_w_per_gpu = [c.node_power.busy_w / c.gpus_per_node for c in scenario.facility.clusters]
        self.node_idle_w_per_gpu = [c.node_power.idle_w / c.gpus_per_node for c in scenario.facility.clusters]

        names = [f"{ch}.{c}" for c in self.cluster_names for ch in CLUSTER_CHANNELS]
        names += ["queued_jobs", "running_jobs"]
        names += [f"{ch}.{c}" for c in self.cluster_names for ch in RELIABILITY_CHANNELS]
        infer_names, infer_power = inference_channel_names(scenario)
        self.meter = Meter(names + infer_names,
                           [f"{ch}.{c}" for c in self.cluster_names for ch in POWER_CHANNELS] + infer_power)
        self.ch = [{ch: self.meter.index[f"{ch}.{c}"] for ch in CLUSTER_CHANNELS} for c in self.cluster_names]
        self.ch_queued = self.meter.index["queued_jobs"]
        self.ch_running = self.meter.index["running_jobs"]

        self.queues: list[list[Job]] = [[] for _ in self.clusters]
        self.queue_keys: list[list[tuple[float, ...]]] = [[] for _ in self.clusters]
        self.queued_gpus = [0] * len(self.clusters)
        self.views = [EngineClusterView(st, self.queues[i], self.groups[i]) for i, st in enumerate(self.clusters)]
        self.n_queued = 0
        self.n_running = 0
        self._dirty: set[int] = set()
        self._pass_pending = False
        self.source_cluster_idx: list[tuple[int, ...]] = [
            tuple(self.cluster_names.index(n) for n in names_) if names_ else tuple(range(len(self.clusters)))
            for names_ in self.jobs.source_clusters]

        n = len(self.jobs)
        self.rec_start_s = np.full(n, np.nan)
        self.rec_end_s = np.full(n, np.nan)
        self.rec_cluster = np.full(n, -1, dtype=np.int32)
        self.rec_state = np.full(n, QUEUED, dtype=np.int8)
        self.rec_energy_j = np.zeros(n)
        self.n_submitted = 0
        self.n_events = 0  # handled events: arrivals, completions, scheduling passes, report ticks
        self.infer_held = [0] * len(self.clusters)  # GPUs inference holds in each cluster state (incl. reserved)
        self.infer_active = [0] * len(self.clusters)  # of which held by replicas
        # grid signals, PUE chain, caps, budgets and power policies (None: none configured)
        self.energy: EnergySystem | None = EnergySystem(self) if needs_energy_system(self) else None
        self.ticks: list[tuple[float, np.ndarray, int, int]] = [(0.0, self.meter.snapshot(), 0, 0)]
        self.reliability = Reliability(self) if reliability_enabled(scenario) else None
        for c in range(len(self.clusters)):
            self._refresh(c)
        self.inference = InferenceRuntime(self) if scenario.workload.inference else None

    # -- build helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _speed(profile: GpuProfile, model: GpuPowerModel, ref: GpuProfile | None, load: float) -> float:
        """Reference-seconds of work per second for a job at ``load`` on this GPU at its board limit."""
        if ref is None:
            return 1.0
        ref_model = ref.power_model
        return (profile.dense_bf16_tflops * model.speed(load)) / (ref.dense_bf16_tflops * ref_model.speed(load))

    # -- power and metering ----------------------------------------------------------------------------------
    def _refresh(self, c: int) -> None:
        """Set cluster ``c``'s meter channels from its state (call after ``meter.advance(now)``)."""
        st = self.clusters[c]
        v = self.meter.values
        ch = self.ch[c]
        busy = 0
        gpu_train = 0.0
        for g in self.groups[c].values():
            busy += g.busy_gpus
            gpu_train += g.busy_gpus * g.gpu_power_w
        allocated = st.allocated_gpus - self.infer_held[c]
        gpu_train += (allocated - busy) * self.context_idle_w[c]
        if self.reliability is not None:
            gpu_train -= self.reliability.refresh(c)  # GPUs in checkpoint stalls and restarts draw less
        unallocated = st.total_gpus - st.down_nodes * st.gpus_per_node - allocated - self.infer_active[c]
        v[ch["gpu_train_w"]] = gpu_train
        v[ch["gpu_idle_w"]] = unallocated * self.unallocated_w[c]
        v[ch["node_train_w"]] = allocated * self.node_busy_w_per_gpu[c]
        v[ch["node_idle_w"]] = unallocated * self.node_idle_w_per_gpu[c]
        v[ch["allocated_gpus"]] = allocated
        v[ch["busy_gpus"]] = busy

    def power_rose(self, c: int) -> None:
        """Power on cluster ``c`` changed outside a scheduling pass (a checkpoint ended, a replica started): let the
        energy policies re-check caps and budgets at this same instant."""
        if self.energy is not None and self.energy.active:
            self._request_pass(c)

    def _set_counts(self) -> None:
        self.meter.values[self.ch_queued] = self.n_queued
        self.meter.values[self.ch_running] = self.n_running

    # -- arrivals and routing --------------------------------------------------------------------------------
    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        submit = self.jobs.submit_s.tolist()
        gpus = self.jobs.gpus.tolist()
        work = self.jobs.work_s.tolist()
        prio = self.jobs.priority.tolist()
        source = self.jobs.source_idx.tolist()
        loads = self.jobs.source_load
        for i in range(len(submit)):
            t = submit[i]
            while t > env.now:  # a second step when now + (t - now) rounds below t
                yield env.timeout(t - env.now)
            job = Job(i, t, gpus[i], work[i], prio[i], loads[source[i]])
            self._submit(job, self.source_cluster_idx[source[i]])

    def _route(self, job: Job, allowed: tuple[int, ...]) -> int:
        """The allowed cluster with the least committed share (allocated + queued GPUs over its size)."""
        best, best_score = -1, float("inf")
        for c in allowed:
            st = self.clusters[c]
            if st.total_gpus < job.gpus:
                continue
            score = (st.allocated_gpus + self.queued_gpus[c]) / st.total_gpus
            if score < best_score:
                best, best_score = c, score
        return best

    def _submit(self, job: Job, allowed: tuple[int, ...]) -> None:
        self.n_events += 1
        self.meter.advance(self.env.now)
        self.n_submitted += 1
        if self.energy is not None and self.energy.hold(job, allowed):
            return
        self._route_and_enqueue(job, allowed)

    def _route_and_enqueue(self, job: Job, allowed: tuple[int, ...]) -> None:
        """Put ``job`` in the queue of its cluster (routed among ``allowed``) and ask for a pass."""
        c = allowed[0] if len(allowed) == 1 else self._route(job, allowed)
        self._enqueue(job, c)

    def _enqueue(self, job: Job, c: int) -> None:
        """Put a new or interrupted job in cluster ``c``'s queue (meter advanced)."""
        job.cluster = c
        if self.reliability is not None:
            self.reliability.plan_queued(job, c)
        key = self.scheduler.order_key(job)
        keys = self.queue_keys[c]
        pos = bisect.bisect_right(keys, key)
        keys.insert(pos, key)
        self.queues[c].insert(pos, job)
        self.queued_gpus[c] += job.gpus
        self.n_queued += 1
        self._set_counts()
        self._request_pass(c)

    # -- scheduling passes -----------------------------------------------------------------------------------
    def _request_pass(self, c: int) -> None:
        self._dirty.add(c)
        if not self._pass_pending:
            self._pass_pending = True
            self.env.timeout(0).callbacks.append(self._run_passes)

    def _run_passes(self, _event: simpy.Event) -> None:
        self._pass_pending = False
        self.n_events += 1
        now = self.env.now
        self.meter.advance(now)
        dirty = sorted(self._dirty)
        self._dirty.clear()
        for c in dirty:
            if not self.queues[c]:
                continue
            view = self.views[c]
            view.now_s = now
            started = False
            for job in self.scheduler.select(view):
                if self.energy is not None and not self.energy.admit(job, c):  # type: ignore[arg-type]
                    break  # its added power does not fit under the cap: stop this cluster's pass
                self._start(job, c, now)  # type: ignore[arg-type]
                started = True
            if started:
                self._refresh(c)
                self._set_counts()
        if self.energy is not None:
            self.energy.after_pass(now, dirty)

    def _dequeue(self, job: Job, c: int) -> None:
        queue = self.queues[c]
        keys = self.queue_keys[c]
        i = bisect.bisect_left(keys, self.scheduler.order_key(job))
        while queue[i] is not job:
            i += 1
        del queue[i]
        del keys[i]
        self.queued_gpus[c] -= job.gpus
        self.n_queued -= 1

    def _start(self, job: Job, c: int, now: float) -> None:
        self._dequeue(job, c)
        st = self.clusters[c]
        job.alloc = st.allocate(job.gpus)
        job.gpus_held = sum(k for _, k in job.alloc)
        group = self.groups[c][job.load]
        group.advance(now)
        job.group = group
        job.start_s = now
        job.e_start_j = group.e_gpu_j
        if np.isnan(self.rec_start_s[job.idx]):
            self.rec_start_s[job.idx] = now
        self.rec_cluster[job.idx] = c
        self.rec_state[job.idx] = RUNNING
        self.n_running += 1
        if self.reliability is not None:
            self.reliability.on_start(job, group, now)
        if group.add(job):
            self._schedule_completion(group)

    # -- completions -----------------------------------------------------------------------------------------
    def _schedule_completion(self, group: SpeedGroup) -> None:
        group.token += 1
        if not group.running or group.speed <= 0.0:
            return
        now = self.env.now
        group.advance(now)
        delay = max((group.running[0][0] - group.v) / group.speed, 0.0)
        token = group.token
        self.env.timeout(delay).callbacks.append(lambda _e: self._on_completion(group, token))

    def _on_completion(self, group: SpeedGroup, token: int) -> None:
        if token != group.token:
            return
        self.n_events += 1
        now = self.env.now
        self.meter.advance(now)
        group.advance(now)
        for job in group.due():
            self._finish(job, now)
            self.rec_state[job.idx] = COMPLETED
        self._schedule_completion(group)
        self._refresh(group.cluster)
        self._set_counts()
        self._request_pass(group.cluster)

    def job_energy_j(self, job: Job, now: float) -> float:
        """IT energy of ``job`` since its (re)start: its GPUs, GPUs it strands, and its share of node power."""
        assert job.group is not None
        c = job.cluster
        elapsed = now - job.start_s
        gpu_j = job.gpus * (job.group.e_gpu_j - job.e_start_j)
        if job.run is not None:
            gpu_j -= job.run.saving_j(job.gpus, job.group, now)
        stranded_j = (job.gpus_held - job.gpus) * self.context_idle_w[c] * elapsed
        node_j = job.gpus_held * self.node_busy_w_per_gpu[c] * elapsed
        return gpu_j + stranded_j + node_j

    def _finish(self, job: Job, now: float) -> None:
        self.rec_energy_j[job.idx] += self.job_energy_j(job, now)
        self.rec_end_s[job.idx] = now
        if self.reliability is not None:
            self.reliability.on_finish(job, now)
        self.clusters[job.cluster].release(job.alloc)
        job.alloc = []
        job.group = None
        self.n_running -= 1

    # -- report ticks ----------------------------------------------------------------------------------------
    def _ticks(self) -> Generator[simpy.Event, Any, None]:
        interval = self.scenario.report.interval
        last_s = self.horizon_s - 1e-9 * max(1.0, self.horizon_s)  # the final row is written at the horizon
        k = 1
        while k * interval < last_s:
            yield self.env.timeout(k * interval - self.env.now)
            self._tick()
            k += 1

    def _tick(self) -> None:
        self.n_events += 1
        now = self.env.now
        self.meter.advance(now)
        self.ticks.append((now, self.meter.snapshot(), self.n_queued, self.n_running))
        if self.progress is not None:
            self.progress(now, self.horizon_s)

    # -- run -------------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.env.process(self._arrivals())
        self.env.process(self._ticks())
        if self.inference is not None:
            self.inference.start()
        if self.energy is not None:
            self.env.process(self.energy.process())
        if self.reliability is not None:
            self.reliability.start()
        self.env.run(until=self.horizon_s)
        now = self.horizon_s
        self.meter.advance(now)
        if self.inference is not None:
            self.inference.finish(now)
        for groups in self.groups:
            for g in groups.values():
                g.advance(now)
                for _, _, job in g.running:
                    self.rec_energy_j[job.idx] += self.job_energy_j(job, now)
        if self.reliability is not None:
            self.reliability.finalize(now)
        self._tick()
