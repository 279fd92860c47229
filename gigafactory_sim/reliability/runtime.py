"""Reliability in the engine: what a failure, a maintenance window or a preemption does to running jobs.

The :class:`Reliability` object is built by the engine when the scenario has ``failures`` (facility or
cluster) or ``checkpointing``; the engine calls its hooks at enqueue, start, completion and meter refresh. An
interrupted job loses the work since its last checkpoint, releases its GPUs, and is requeued (with its
original submit time, so it keeps its place) to restart after ``restart_overhead``; a multi-node job hit by a
node failure restarts at once when its cluster has a hot spare. A job interrupted by failures more than
``max_retries`` times ends ``failed``.

Other policies (inference preemption, power capping) interrupt a job with :meth:`Reliability.preempt`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gigafactory_sim.reliability.config import CheckpointConfig, NoCheckpoints
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.reliability.checkpoints import PhaseEngine, RunRecords, checkpoint_count
from gigafactory_sim.reliability.failures import ClusterFailures
from gigafactory_sim.sim.state import FAILED, QUEUED, Job, SpeedGroup

if TYPE_CHECKING:
    from gigafactory_sim.sim.engine import Simulation

__all__ = ["RELIABILITY_CHANNELS", "Reliability", "reliability_enabled"]

RELIABILITY_CHANNELS = ("down_nodes", "ckpt_gpus")
"""Per-cluster meter channels: nodes down (failed or in maintenance), GPUs in checkpoint stalls or
restarts."""


def reliability_enabled(scenario: Scenario) -> bool:
    facility = scenario.facility
    has_failures = any(facility.failures_of(c) is not None for c in facility.clusters)
    return scenario.checkpointing is not None or has_failures


class Reliability:
    """Failures, checkpoints and restarts of one run (see the module docstring)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        scenario = sim.scenario
        self.policy: CheckpointConfig = scenario.checkpointing or NoCheckpoints()
        self.records = RunRecords(len(sim.jobs))
        self.cause_names: list[str] = []
        self.failure_log: list[tuple[float, int, int]] = []  # (time, cluster, cause) of node failures
        self.interruption_log: list[tuple[float, int, int, int]] = []  # (time, cluster, cause, job gpus)
        p_low = [self.policy.power_fraction * p.board_limit_w for p in sim.gpu_profiles]
        self.phases = PhaseEngine(sim, self.records, p_low)
        self.failures: list[ClusterFailures | None] = []
        for c, cluster in enumerate(scenario.facility.clusters):
            cfg = scenario.facility.failures_of(cluster)
            self.failures.append(ClusterFailures(self, c, cfg) if cfg is not None else None)
        self.rate_per_node_s = [f.rate_per_node_s if f is not None else 0.0 for f in self.failures]
        # Jobs on each node, for clusters that fail: single-node jobs in lists, multi-node jobs in a dict.
        self.node_jobs: list[list[list[Job]] | None] = [
            [[] for _ in range(st.nodes)] if f is not None else None
            for st, f in zip(sim.clusters, self.failures, strict=True)]
        self.gang_jobs: list[dict[int, Job]] = [{} for _ in sim.clusters]
        self._tau_s: dict[tuple[int, int], float] = {}  # by (cluster, job GPUs)
        self.ch = [(sim.meter.index[f"down_nodes.{name}"], sim.meter.index[f"ckpt_gpus.{name}"])
                   for name in sim.cluster_names]

    def cause_index(self, name: str) -> int:
        if name not in self.cause_names:
            self.cause_names.append(name)
        return self.cause_names.index(name)

    def start(self) -> None:
        for f in self.failures:
            if f is not None:
                f.start()

    # -- planning --------------------------------------------------------------------------------------------
    def mtbf_s(self, c: int, nodes: int) -> float:
        """Mean time between failures of a job holding ``nodes`` nodes of cluster ``c``: 1 / (nodes x r)."""
        rate = self.rate_per_node_s[c]
        return 1.0 / (nodes * rate) if rate > 0 else math.inf

    def interval_s(self, c: int, gpus: int) -> float:
        """Checkpoint interval (wall seconds) of a job of ``gpus`` GPUs on cluster ``c``."""
        key = (c, gpus)
        tau = self._tau_s.get(key)
        if tau is None:
            nodes = self.sim.clusters[c].nodes_for(gpus)
            tau = self._tau_s[key] = self.policy.interval_s(self.mtbf_s(c, nodes))
        return tau

    def _plan(self, job: Job, speed: float) -> tuple[float, float, float, int] | None:
        """(restart_v, tau_v, delta_v, n) of the job's next run at ``speed``, None if it has neither a restart
        nor a checkpoint; sets ``job.extra_s``."""
        tau_v = self.interval_s(job.cluster, job.gpus) * speed
        restarting = self.records.interruptions[job.idx] > 0
        if not restarting and job.work_s <= tau_v:  # the common case: a short job's first run
            job.extra_s = 0.0
            return None
        restart_v = self.policy.restart_overhead * speed if restarting else 0.0
        n = checkpoint_count(job.work_s, tau_v)
        delta_v = self.policy.cost_s * speed
        job.extra_s = restart_v + n * delta_v
        return restart_v, tau_v, delta_v, n

    # -- engine hooks ----------------------------------------------------------------------------------------
    def plan_queued(self, job: Job, c: int) -> None:
        """Set the job's planned overhead when it joins cluster ``c``'s queue (schedulers see its true
        length)."""
        self._plan(job, self.sim.groups[c][job.load].speed)

    def on_start(self, job: Job, group: SpeedGroup, now: float) -> None:
        """A job starts on ``group`` (advanced to ``now``), before ``group.add``."""
        plan = self._plan(job, group.speed)
        if plan is not None and (plan[0] > 0.0 or plan[3] > 0):
            self.phases.begin(job, group, now, *plan)
        node_jobs = self.node_jobs[job.cluster]
        if node_jobs is not None:
            alloc = job.alloc
            if len(alloc) == 1:
                node_jobs[alloc[0][0]].append(job)
            else:
                self.gang_jobs[job.cluster].update(dict.fromkeys([node for node, _ in alloc], job))

    def on_finish(self, job: Job, now: float) -> None:
        """A job completed (its energy is booked)."""
        self.records.run_s[job.idx] += now - job.start_s
        if job.run is not None:
            assert job.group is not None
            self.phases.close(job, job.group, now, self.sim.job_energy_j(job, now), interrupted=False)
        self._untrack(job)
        job.extra_s = 0.0

    def refresh(self, c: int) -> float:
        """Set cluster ``c``'s reliability channels; return the GPU power its low-power phases save (W)."""
        saving_w, low_gpus = self.phases.saving_w(c)
        values = self.sim.meter.values
        down_ch, low_ch = self.ch[c]
        values[down_ch] = self.sim.clusters[c].down_nodes
        values[low_ch] = low_gpus
        return saving_w

    def finalize(self, now: float) -> None:
        """Book the runs still going at the horizon (after the engine booked their energy)."""
        for groups in self.sim.groups:
            for group in groups.values():
                for _, _, job in group.running:
                    self.records.run_s[job.idx] += now - job.start_s
                    if job.run is not None:
                        self.phases.close(job, group, now, self.sim.job_energy_j(job, now), interrupted=False)
        self.records.freeze()

    def _untrack(self, job: Job) -> None:
        node_jobs = self.node_jobs[job.cluster]
        if node_jobs is not None:
            alloc = job.alloc
            if len(alloc) == 1:
                node_jobs[alloc[0][0]].remove(job)
            else:
                gang = self.gang_jobs[job.cluster]
                for node, _ in alloc:
                    del gang[node]

    # -- interruptions ---------------------------------------------------------------------------------------
    def take_down(self, c: int, nodes: list[int], now: float, cause: int, failure: bool) -> None:
        """Nodes of cluster ``c`` go down (meter advanced); every job on them is interrupted. A multi-node job
        restarts at once on hot spares if enough are left. The caller refreshes the meter and requests a
        pass."""
        st = self.sim.clusters[c]
        node_jobs = self.node_jobs[c]
        assert node_jobs is not None
        gang = self.gang_jobs[c]
        hit: dict[int, Job] = {}
        lost_nodes: dict[int, int] = {}
        for node in nodes:
            owner = gang.get(node)
            for job in node_jobs[node] if owner is None else (owner,):
                hit[job.idx] = job
                lost_nodes[job.idx] = lost_nodes.get(job.idx, 0) + 1
            st.set_down(node)
        for job in hit.values():
            lost = lost_nodes[job.idx]
            spare = job.gpus > st.gpus_per_node and len(st.reserved) >= lost
            if spare:
                for node in sorted(st.reserved)[:lost]:
                    st.unreserve(node)
            self.interrupt(job, now, cause, failure, restart_now=spare)

    def preempt(self, job: Job, cause: str = "preemption") -> None:
        """Interrupt a running job for a policy (inference, power): it restarts from its last checkpoint.
        Preemptions do not count toward ``max_retries``."""
        sim = self.sim
        now = sim.env.now
        sim.meter.advance(now)
        c = job.cluster
        self.interrupt(job, now, self.cause_index(cause), failure=False)
        sim._refresh(c)
        sim._set_counts()

    def interrupt(self, job: Job, now: float, cause: int, failure: bool, restart_now: bool = False) -> None:
        """Stop a running job now (meter advanced): book its lost work and energy, free its GPUs, requeue it
        (or end it ``failed``); with ``restart_now`` start it again at once (capacity must be free)."""
        sim = self.sim
        group = job.group
        assert group is not None
        c = job.cluster
        i = job.idx
        rec = self.records
        group.advance(now)
        e_now = sim.job_energy_j(job, now)
        sim.rec_energy_j[i] += e_now
        rec.run_s[i] += now - job.start_s
        if job.run is not None:
            saved_v = self.phases.close(job, group, now, e_now, interrupted=True)
        else:
            saved_v = 0.0
            rec.lost_s[i] += now - job.start_s
            rec.e_lost_j[i] += e_now
        first = group.running[0][2] is job
        sim.views[c].disruptions += 1  # a running job left early: schedulers' reservations are stale
        group.remove(job)
        if first:
            sim._schedule_completion(group)
        self._untrack(job)
        sim.clusters[c].release(job.alloc)
        job.alloc = []
        job.group = None
        sim.n_running -= 1
        job.work_s -= saved_v
        rec.interruptions[i] += 1
        rec.failures[i] += failure
        self.interruption_log.append((now, c, cause, job.gpus))
        max_retries = self.policy.max_retries
        if failure and max_retries is not None and rec.failures[i] > max_retries:
            sim.rec_state[i] = FAILED
            sim.rec_end_s[i] = now
            job.extra_s = 0.0
            return
        sim.rec_state[i] = QUEUED
        sim._enqueue(job, c)
        if restart_now:
            sim._start(job, c, now)
