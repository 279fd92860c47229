"""Reliability in the engine: what a failure, a maintenance window or a preemption does to running jobs.

The :class:`Reliability` feature is built when the scenario has ``failures`` (facility or cluster) or
``checkpointing``. It observes every job's enqueue, start and stop (planning its checkpoints, tracking which
nodes it holds) and is the run's restart rule: a stopped job keeps the work up to its last checkpoint. An
interrupted job loses the work since its last checkpoint, releases its GPUs, and is requeued (with its original
submit time, so it keeps its place) to restart after ``restart_overhead``; a multi-node job hit by a node failure
restarts at once when its cluster has a hot spare. A job interrupted by failures more than ``max_retries`` times
ends ``failed``. Other features stop jobs through the engine (``EngineOps.stop``), with their own cause.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from gigafactory_sim.reliability import results
from gigafactory_sim.reliability.checkpoints import RESTART, JobRun, PhaseEngine, RunRecords, checkpoint_count
from gigafactory_sim.reliability.config import CheckpointConfig
from gigafactory_sim.reliability.failures import ClusterFailures
from gigafactory_sim.reliability.prepare import ReliabilityInputs
from gigafactory_sim.sim.ops import EngineOps, Outcome, RunView
from gigafactory_sim.sim.state import Job, SpeedGroup

__all__ = ["Reliability"]


class Reliability:
    """Failures, checkpoints and restarts of one run (see the module docstring)."""

    def __init__(self, ops: EngineOps, inputs: ReliabilityInputs) -> None:
        self.ops = ops
        f = ops.facility
        self.facility = f
        self.policy: CheckpointConfig = inputs.policy
        self.records = RunRecords(len(f.jobs))
        self.cause_names: list[str] = []
        self.failure_log: list[tuple[float, int, int]] = []  # (time, cluster, cause) of node failures
        self.interruption_log: list[tuple[float, int, int, int]] = []  # (time, cluster, cause, job gpus)
        f.p_low_w = [self.policy.power_fraction * p.board_limit_w for p in f.gpu_profiles]
        f.tracks_outages = True
        self.phases = PhaseEngine(ops, self.records)
        self.failures: list[ClusterFailures | None] = [
            ClusterFailures(ops, self, c, cfg) if cfg is not None else None for c, cfg in enumerate(inputs.failures)
        ]
        self.rate_per_node_s = [cf.rate_per_node_s if cf is not None else 0.0 for cf in self.failures]
        # Jobs on each node, for clusters that fail: single-node jobs in lists, multi-node jobs in a dict.
        self.node_jobs: list[list[list[Job]] | None] = [
            [[] for _ in range(st.nodes)] if cf is not None else None
            for st, cf in zip(f.clusters, self.failures, strict=True)
        ]
        self.gang_jobs: list[dict[int, Job]] = [{} for _ in f.clusters]
        self._tau_s: dict[tuple[int, int], float] = {}  # by (cluster, job GPUs)
        self._failure = False  # the stop in progress is a failure (counts toward max_retries)

    def cause_index(self, name: str) -> int:
        if name not in self.cause_names:
            self.cause_names.append(name)
        return self.cause_names.index(name)

    # -- Process ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        for cf in self.failures:
            if cf is not None:
                cf.start()

    def finish(self, now_s: float) -> None:
        """Book the runs still going at the horizon (after the engine booked their energy)."""
        ops = self.ops
        for groups in self.facility.groups:
            for group in groups.values():
                for _, _, job in group.running:
                    self.records.run_s[job.idx] += now_s - job.start_s
                    if job.run is not None:
                        self.phases.close(job, group, now_s, ops.job_energy_j(job, now_s), interrupted=False)
        self.records.freeze()

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
            nodes = self.facility.clusters[c].nodes_for(gpus)
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

    # -- RunObserver -----------------------------------------------------------------------------------------
    def on_enqueue(self, job: Job, c: int) -> None:
        """Set the job's planned overhead when it joins cluster ``c``'s queue (schedulers see its true
        length)."""
        self._plan(job, self.facility.groups[c][job.load].speed)

    def on_start(self, job: Job, group: SpeedGroup, now_s: float) -> None:
        plan = self._plan(job, group.speed)
        if plan is not None and (plan[0] > 0.0 or plan[3] > 0):
            self.phases.begin(job, group, now_s, *plan)
        node_jobs = self.node_jobs[job.cluster]
        if node_jobs is not None:
            alloc = job.alloc
            if len(alloc) == 1:
                node_jobs[alloc[0][0]].append(job)
            else:
                self.gang_jobs[job.cluster].update(dict.fromkeys([node for node, _ in alloc], job))

    def on_stop(self, job: Job, outcome: Outcome, cause: str, energy_j: float) -> None:
        now = self.ops.env.now
        i = job.idx
        rec = self.records
        rec.run_s[i] += now - job.start_s
        interrupted = outcome != "completed"
        group = job.group
        assert group is not None
        if job.run is not None:
            self.phases.close(job, group, now, energy_j, interrupted=interrupted)
        elif interrupted:
            rec.lost_s[i] += now - job.start_s
            rec.e_lost_j[i] += energy_j
        self._untrack(job)
        if interrupted:
            rec.interruptions[i] += 1
            rec.failures[i] += self._failure
            self.interruption_log.append((now, job.cluster, self.cause_index(cause), job.gpus))
        else:
            job.extra_s = 0.0

    # -- RestartRule and RateObserver ------------------------------------------------------------------------
    def remaining(self, job: Job, outcome: Outcome, now_s: float) -> tuple[float, float]:
        """A stopped job restarts from its last checkpoint: it keeps the work its completed checkpoints saved,
        and loses what it did since (a restart cut short loses nothing more)."""
        run = job.run
        if run is None:
            return job.work_s, now_s - job.start_s
        assert isinstance(run, JobRun)
        saved_v = run.k * run.tau_v if run.k else 0.0  # (tau_v is inf without checkpoints: 0 x inf is nan)
        lost_s = 0.0 if run.phase == RESTART else now_s - run.t_ckpt_s
        return job.work_s - saved_v, lost_s

    def on_rate_change(self, group: SpeedGroup) -> None:
        self.phases.on_speed_change(group)

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
        st = self.facility.clusters[c]
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
            self.interrupt(job, cause, failure, restart_now=spare)

    def interrupt(self, job: Job, cause: int, failure: bool, restart_now: bool = False) -> None:
        """Stop a running job now (meter advanced) and requeue it, or end it ``failed`` past ``max_retries``;
        with ``restart_now`` start it again at once (capacity must be free)."""
        max_retries = self.policy.max_retries
        fails = failure and max_retries is not None and self.records.failures[job.idx] + 1 > max_retries
        c = job.cluster
        self._failure = failure
        try:
            self.ops.stop(job, "failed" if fails else "interrupted", self.cause_names[cause])
        finally:
            self._failure = False
        if restart_now and not fails:
            self.ops.start(job, c)

    # -- ResultContributor -----------------------------------------------------------------------------------
    def timeseries_columns(self, run: RunView, times: np.ndarray, means: np.ndarray) -> dict[str, Any]:
        return results.timeseries_columns(self, run, times, means)

    def job_columns(self, run: RunView) -> dict[str, np.ndarray]:
        return results.job_columns(self, run)

    def summary_sections(self, run: RunView, jobs: pd.DataFrame, summary: dict[str, Any]) -> None:
        results.summary_sections(self, run, jobs, summary)
