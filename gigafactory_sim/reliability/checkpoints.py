"""Checkpoint and restart phases of running jobs, on the speed groups' virtual work clocks.

A run of a job is a fixed sequence in virtual work (reference-seconds, the group's ``v``): an optional restart
(``restart_v``), then ``n`` cycles of ``tau_v`` of work followed by a ``delta_v`` checkpoint stall, then the
last stretch of work (at most ``tau_v``; no checkpoint at the very end). With a wall interval ``tau``, cost
``delta`` and restart overhead ``R`` on a group of speed ``s``: ``tau_v = tau*s``, ``delta_v = delta*s``,
``restart_v = R*s`` and ``n = ceil(W / tau_v) - 1`` for ``W`` of remaining work. The job's virtual length is
``W + n*delta_v + restart_v`` (``Job.extra_s`` holds the added part), so its completion stays one entry in the
group.

Restarts and checkpoint stalls are *low-power phases*: the job's GPUs draw ``power_fraction`` x board power.
Phase changes are real events: each group keeps one sorted list of its jobs' next phase change (in virtual
time) and one SimPy timeout for the earliest, like its completions. So the meter is exact at every instant
(including the dips of synchronous checkpoints), a job's energy is exact, and an interrupted job knows exactly
its last checkpoint.
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from gigafactory_sim.sim.state import Job, SpeedGroup
from gigafactory_sim.sim.timer import Timer

if TYPE_CHECKING:
    from gigafactory_sim.sim.ops import EngineOps

__all__ = ["COMPUTE", "FINAL", "RESTART", "STALL", "JobRun", "PhaseClock", "RunRecords", "checkpoint_count"]

RESTART, COMPUTE, STALL, FINAL = 0, 1, 2, 3
LOW_POWER = (RESTART, STALL)


def checkpoint_count(work_v: float, tau_v: float) -> int:
    """Checkpoints taken during ``work_v`` of work at interval ``tau_v``: multiples of tau strictly inside."""
    if not math.isfinite(tau_v) or tau_v <= 0.0:
        return 0
    return max(math.ceil(work_v / tau_v - 1e-9) - 1, 0)


class RunRecords:
    """Per-job reliability accounting, indexed by job index. Times are wall seconds, energies joules.

    Plain lists while the run goes (scalar updates are several times cheaper than on numpy arrays); numpy
    arrays after :meth:`freeze`, which the engine's run end calls."""

    FIELDS = (
        "interruptions",
        "failures",
        "run_s",
        "restart_s",
        "ckpt_s",
        "lost_s",
        "e_restart_j",
        "e_ckpt_j",
        "e_lost_j",
    )

    def __init__(self, n: int) -> None:
        self.interruptions: Any = [0] * n  # all: failures, maintenance, preemption
        self.failures: Any = [0] * n  # by unexpected failures (these count to max_retries)
        self.run_s: Any = [0.0] * n  # wall time holding GPUs
        self.restart_s: Any = [0.0] * n  # restart phases
        self.ckpt_s: Any = [0.0] * n  # completed checkpoint stalls (and one in progress at the horizon)
        self.lost_s: Any = [0.0] * n  # work and stalls since the last checkpoint, lost at interruptions
        self.e_restart_j: Any = [0.0] * n
        self.e_ckpt_j: Any = [0.0] * n
        self.e_lost_j: Any = [0.0] * n

    def freeze(self) -> None:
        """Turn the lists into numpy arrays (int64 counts, float64 times and energies)."""
        for name in self.FIELDS:
            setattr(self, name, np.asarray(getattr(self, name)))


class JobRun:
    """Phase state of one run (start to completion or interruption) of a checkpointing or restarting job."""

    __slots__ = (
        "delta_v",
        "e_ckpt_j",
        "e_phase_gpu_j",
        "e_phase_job_j",
        "k",
        "n",
        "next_v",
        "p_low_w",
        "phase",
        "restart_v",
        "saved_j",
        "t_ckpt_s",
        "t_phase_s",
        "tau_v",
        "v0",
    )

    def __init__(self, v0: float, restart_v: float, tau_v: float, delta_v: float, n: int, p_low_w: float) -> None:
        self.v0 = v0
        self.restart_v = restart_v
        self.tau_v = tau_v
        self.delta_v = delta_v
        self.n = n  # checkpoints planned in this run
        self.k = 0  # checkpoints completed in this run
        self.p_low_w = p_low_w  # per-GPU power in low-power phases
        self.phase = FINAL
        self.next_v = math.inf
        self.t_phase_s = 0.0  # wall start of the current low-power phase
        self.e_phase_gpu_j = 0.0  # group per-GPU energy clock at that start
        self.e_phase_job_j = 0.0  # job energy (since run start) at that start
        self.saved_j = 0.0  # GPU energy below group power over closed low-power phases of this run
        self.t_ckpt_s = 0.0  # wall time of the last restore point (run start, restart end or checkpoint end)
        self.e_ckpt_j = 0.0  # job energy at that point

    def saving_j(self, gpus: int, group: SpeedGroup, now_s: float) -> float:
        """GPU energy this run did not draw because of low-power phases, up to ``now_s`` (group advanced)."""
        if self.phase == RESTART or self.phase == STALL:
            below_j = (group.e_gpu_j - self.e_phase_gpu_j) - self.p_low_w * (now_s - self.t_phase_s)
            return self.saved_j + gpus * below_j
        return self.saved_j


class PhaseClock:
    """One speed group's pending phase changes (sorted by virtual time) and the timer of the earliest. The GPUs
    now in low-power phases are counted on the group itself (``SpeedGroup.low_gpus``)."""

    __slots__ = ("entries", "group", "timer")

    def __init__(self, group: SpeedGroup, timer: Timer) -> None:
        self.group = group
        self.entries: list[tuple[float, int, Job]] = []
        self.timer = timer

    def remove(self, job: Job, next_v: float) -> None:
        i = bisect.bisect_left(self.entries, (next_v, job.idx))
        if i < len(self.entries) and self.entries[i][2] is job:
            del self.entries[i]


class PhaseEngine:
    """Starts, advances and closes job runs' phases; owns one :class:`PhaseClock` per speed group."""

    def __init__(self, ops: EngineOps, records: RunRecords) -> None:
        self.ops = ops
        self.facility = ops.facility
        self.rec = records
        self.clocks: dict[int, PhaseClock] = {}
        for gs in self.facility.groups:
            for g in gs.values():
                clock = PhaseClock(g, Timer(ops.env, lambda g=g: self._fire(self.clocks[id(g)])))  # type: ignore[misc]
                self.clocks[id(g)] = clock

    # -- a run begins and ends -------------------------------------------------------------------------------
    def begin(
        self, job: Job, group: SpeedGroup, now: float, restart_v: float, tau_v: float, delta_v: float, n: int
    ) -> None:
        """Attach the phases of a run starting now (``group`` advanced to ``now``; before ``group.add``)."""
        run = JobRun(group.v, restart_v, tau_v, delta_v, n, self.facility.p_low_w[group.cluster])
        run.t_ckpt_s = now
        job.run = run
        if restart_v > 0.0:
            self._enter_low(run, job, group, now, RESTART, 0.0)
            run.next_v = run.v0 + restart_v
        elif n > 0:
            run.phase = COMPUTE
            run.next_v = run.v0 + tau_v
        if run.phase != FINAL:
            self._insert(self.clocks[id(group)], job)

    def close(self, job: Job, group: SpeedGroup, now: float, e_now_j: float, interrupted: bool) -> float:
        """Detach the run (completion, interruption or horizon; ``e_now_j`` is the run's energy so far) and
        book the phase it is in: at an interruption everything since the last checkpoint is lost (a restart
        cut short stays restart time); otherwise a low-power phase in progress is booked as restart or
        checkpoint time. Returns the work saved by this run's completed checkpoints."""
        run = cast(JobRun, job.run)
        assert run is not None
        rec = self.rec
        i = job.idx
        clock = self.clocks[id(group)]
        if run.phase != FINAL:
            clock.remove(job, run.next_v)
        if run.phase == RESTART:
            rec.restart_s[i] += now - run.t_phase_s
            rec.e_restart_j[i] += e_now_j - run.e_phase_job_j
        elif interrupted:
            rec.lost_s[i] += now - run.t_ckpt_s
            rec.e_lost_j[i] += e_now_j - run.e_ckpt_j
        elif run.phase == STALL:
            rec.ckpt_s[i] += now - run.t_phase_s
            rec.e_ckpt_j[i] += e_now_j - run.e_phase_job_j
        if run.phase in LOW_POWER:
            group.low_gpus -= job.gpus
            self.facility.low_gpus[group.cluster] -= job.gpus
        job.run = None
        return run.k * run.tau_v if run.k else 0.0  # (tau_v is inf without checkpoints: 0 x inf is nan)

    # -- events ----------------------------------------------------------------------------------------------
    def _insert(self, clock: PhaseClock, job: Job) -> None:
        run = cast(JobRun, job.run)
        entry = (run.next_v, job.idx, job)
        bisect.insort(clock.entries, entry)
        if clock.entries[0] is entry:
            self._arm(clock)

    def _arm(self, clock: PhaseClock) -> None:
        group = clock.group
        if not clock.entries or group.speed <= 0.0:
            clock.timer.cancel()
            return
        group.advance(self.ops.env.now)
        clock.timer.arm(max((clock.entries[0][0] - group.v) / group.speed, 0.0))

    def on_speed_change(self, group: SpeedGroup) -> None:
        """Re-time the group's next phase change after its speed changed (call like the completion
        reschedule)."""
        self._arm(self.clocks[id(group)])

    def _fire(self, clock: PhaseClock) -> None:
        ops = self.ops
        now = ops.begin_event()
        ops.begin_submissions()  # (the pass a power cap asks for at the phase change runs at the end)
        group = clock.group
        group.advance(now)
        limit = group.v + 1e-6
        entries = clock.entries
        due: list[Job] = []
        while entries and entries[0][0] <= limit:
            due.append(entries.pop(0)[2])
        for job in due:
            self._step(job, clock, now)
        self._arm(clock)
        ops.changed(group.cluster)
        ops.end_submissions()

    def _enter_low(self, run: JobRun, job: Job, group: SpeedGroup, now: float, phase: int, e_job_j: float) -> None:
        run.phase = phase
        run.t_phase_s = now
        run.e_phase_gpu_j = group.e_gpu_j
        run.e_phase_job_j = e_job_j
        group.low_gpus += job.gpus
        self.facility.low_gpus[group.cluster] += job.gpus

    def _leave_low(self, run: JobRun, job: Job, group: SpeedGroup, now: float) -> None:
        run.saved_j += job.gpus * ((group.e_gpu_j - run.e_phase_gpu_j) - run.p_low_w * (now - run.t_phase_s))
        group.low_gpus -= job.gpus
        self.facility.low_gpus[group.cluster] -= job.gpus

    def _step(self, job: Job, clock: PhaseClock, now: float) -> None:
        """The job reached its next phase change."""
        run = cast(JobRun, job.run)
        group = clock.group
        assert run is not None
        i = job.idx
        e_now = self.ops.job_energy_j(job, now)
        if run.phase == COMPUTE:
            self._enter_low(run, job, group, now, STALL, e_now)
            run.next_v += run.delta_v
        else:
            self._leave_low(run, job, group, now)
            if run.phase == RESTART:
                self.rec.restart_s[i] += now - run.t_phase_s
                self.rec.e_restart_j[i] += e_now - run.e_phase_job_j
                run.next_v = run.v0 + run.restart_v + run.tau_v
            else:
                run.k += 1
                self.rec.ckpt_s[i] += now - run.t_phase_s
                self.rec.e_ckpt_j[i] += e_now - run.e_phase_job_j
                run.next_v += run.tau_v
            run.t_ckpt_s = now
            run.e_ckpt_j = e_now
            run.phase = COMPUTE if run.k < run.n else FINAL
        if run.phase != FINAL:
            bisect.insort(clock.entries, (run.next_v, job.idx, job))
