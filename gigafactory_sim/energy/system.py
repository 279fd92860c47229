"""The energy system of a run: the PUE chain, the effective cap and the power policies, as an engine feature.

Built from a prepared :class:`~gigafactory_sim.energy.prepare.EnergyPlan` when the scenario has ``grid:`` or
``energy:`` or a non-constant PUE. It plugs into the engine as: a process ticking at every signal breakpoint and
period boundary (so carbon and cost integrate exactly); a start gate (:meth:`EnergySystem.admit` before each
start, :meth:`after_pass` after each scheduling pass, where the enforcers act); an arrival gate (deferral,
:meth:`hold`); a power watcher (a power rise outside a pass re-checks the cap at once); the facility power source
of the results; and a result contributor.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator
from typing import Any, cast

import numpy as np
import pandas as pd
import simpy

from gigafactory_sim.eed.probe import EED_CHANNELS, EedProbe, eed_columns
from gigafactory_sim.eed.report import eed_section
from gigafactory_sim.energy import results
from gigafactory_sim.energy.accounting import Accounting
from gigafactory_sim.energy.control import PowerControl
from gigafactory_sim.energy.deferral import Deferral, DeferralConfig
from gigafactory_sim.energy.policies import Admission, PowerPolicy
from gigafactory_sim.energy.prepare import EnergyPlan
from gigafactory_sim.sim import channels
from gigafactory_sim.sim.ops import EngineOps, RunView
from gigafactory_sim.sim.state import Job

__all__ = ["EnergySystem"]

_AHEAD = 4096  # job rows whose deferral release times are decided at once


class EnergySystem:
    """The energy feature of one run; see the module docstring."""

    def __init__(self, ops: EngineOps, plan: EnergyPlan) -> None:
        self.ops = ops
        self.plan = plan
        self.cfg = plan.cfg
        self.grid = plan.grid
        self.hard_cap = plan.hard_cap
        self.times = plan.times
        self.seg_a = plan.seg_a
        self.seg_hard_cap_w = plan.seg_hard_cap_w
        self.floor_w = plan.floor_w
        self.ceiling_w = plan.ceiling_w
        self.budgets = [dataclasses.replace(b, spent_at_start=0.0, period=-1) for b in plan.budgets]
        f = ops.facility
        self.ctrl = PowerControl(ops, plan.theta_min)
        policies: list[PowerPolicy] = sorted(
            (p.build(f.cluster_names) for p in self.cfg.policies if not isinstance(p, DeferralConfig)),
            key=lambda p: p.stage,
        )
        self.admission = cast(Admission | None, next((p for p in policies if p.gates_starts), None))
        self.enforcers = [p for p in policies if p.enforces]
        self._quiet_under_cap = all(p.quiet_under_cap for p in self.enforcers)  # (see after_pass)
        self.deferral: Deferral | None = (
            Deferral(plan.deferral, plan.deferral_signal, plan.flexible_sources, ops.horizon_s)
            if plan.deferral is not None and plan.deferral_signal is not None
            else None
        )

        meter = ops.meter
        meter.add_channels(list(channels.ENERGY_DERIVED) + list(channels.ENERGY_SIGNALS))
        self.ch = {name: meter.index[name] for name in (*channels.ENERGY_DERIVED, *channels.ENERGY_SIGNALS)}
        self._ch_after_pass = (self.ch["throttled_gpus"], self.ch["slowed_gpus"], self.ch["power_blocked_gpus"])
        self._stats_shown = False  # whether throttled_gpus or slowed_gpus is non-zero (see after_pass)
        names = f.cluster_names
        self.acc = Accounting(
            meter.index,
            meter.it_power_names,  # every IT channel: training, idle and inference
            channels.per(channels.TRAIN_POWER, names),
            [f"busy_gpus.{c}" for c in names],
            [n for n in meter.it_power_names if n.split(".", 1)[0] in channels.INFER_POWER],
        )
        meter.probe = self.acc
        if plan.eed is not None:
            meter.add_channels(list(EED_CHANNELS))
            self.acc.eed = EedProbe(plan.eed, meter.index, self.grid.carbon is not None)
        limited = self.hard_cap is not None or bool(self.budgets)
        self.active = bool(self.enforcers or self.admission) and limited
        self.blocked: dict[int, float] = {}
        self._blocked_now: set[int] = set()
        self._admitted_on = -1  # the cluster of the job this gate admitted last in the pass now running (-1: none)
        self.period_snapshots: list[tuple[float, np.ndarray]] = []
        self.held = 0
        self.deadlines: dict[int, float] = {}
        self._release_cb = self._release  # bound once: holding a job creates no callable
        self._i_deferred = self.ch["deferred_jobs"]
        # each job row's source (hold reads one per arrival): read from the table at the arrival, since a
        # federation's site fills its rows only as jobs are placed there (a copy taken now would be blank)
        self._sources = f.jobs.source_idx
        self._ahead_lo = 0  # release times decided ahead for job rows _ahead_lo... (see _release_s)
        self._ahead_now: list[float] = []
        self._ahead_work: list[float] = []
        self._ahead_release: list[float] = []
        self.k = 0
        self._apply(0)

    # -- signals and the effective cap ----------------------------------------------------------------------
    def _apply(self, k: int) -> None:
        """Put segment ``k``'s signals in force (call after ``meter.advance(now)``)."""
        plan = self.plan
        self.k = k
        acc, ctrl = self.acc, self.ctrl
        acc.a = float(plan.seg_a[k])
        acc.b_w = float(plan.seg_b[k])
        acc.renewable_w = float(plan.seg_renewable_w[k])
        acc.carbon_g_per_kwh = float(plan.seg_carbon[k])
        acc.price_eur_per_mwh = float(plan.seg_price[k])
        if acc.eed is not None:
            acc.eed.apply(k, acc.carbon_g_per_kwh)
        hard = float(plan.seg_hard_cap_w[k])
        cap = hard
        integral = self.ops.meter.integral
        for b in self.budgets:
            cap = min(cap, b.cap_w(k, float(integral[self.ch[b.channel]])))
        acc.hard_cap_w = hard
        acc.cap_w = cap
        ctrl.set_signals(acc.a, acc.b_w, acc.renewable_w, cap)
        v = self.ops.meter.values
        ch = self.ch
        v[ch["renewable_w"]] = acc.renewable_w
        v[ch["carbon_g_per_kwh"]] = acc.carbon_g_per_kwh
        v[ch["price_eur_per_mwh"]] = acc.price_eur_per_mwh
        v[ch["cap_w"]] = min(cap, self.ceiling_w)
        v[ch["hard_cap_w"]] = min(hard, self.ceiling_w)
        v[ch["pue_a"]] = acc.a

    def _signals(self) -> Generator[simpy.Event, Any, None]:
        ops = self.ops
        env = ops.env
        edges = {float(t) for b in self.budgets for t in b.edges}
        self.period_snapshots.append((0.0, ops.meter.snapshot()))
        for k in range(1, len(self.times) - 1):
            yield env.timeout(float(self.times[k]) - env.now)
            old_cap = self.ctrl.cap_w
            now = ops.begin_event()
            snap = ops.meter.snapshot()  # flushes the accounting before the signals change
            if float(self.times[k]) in edges:
                self.period_snapshots.append((now, snap))
            self._apply(k)
            if self.active:
                self.after_pass(now, [])
                if self.ctrl.cap_w > old_cap or any(t < 1.0 for t in self.ctrl.theta) or self.blocked:
                    for c, q in enumerate(ops.facility.queues):
                        if q:
                            ops.request_pass(c)

    # -- Process ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.ops.env.process(self._signals())

    def finish(self, now_s: float) -> None:
        return None

    # -- StartGate -------------------------------------------------------------------------------------------
    def admit(self, job: Job, c: int) -> bool:
        if self.admission is None or not self.active:
            return True
        if self._admitted_on == c:
            # The engine refreshes a cluster's meter channels after its part of a pass, not after each start:
            # the job admitted last may have started since. (Outside a pass they are current: every other change
            # of state is refreshed where it is made; tests/test_fast_paths.py checks it.)
            self.ops.refresh(c)
        ctrl = self.ctrl
        ctrl.it_read_w = math.nan
        if self.admission.admit(ctrl, job, c):
            self._admitted_on = c  # (it starts now, unless another gate refuses it)
            return True
        self._admitted_on = -1
        self._blocked_now.add(c)
        it_w = ctrl.it_read_w  # (the admission's own read of IT power, if it made one: nothing changed since)
        self.blocked[c] = it_w if it_w == it_w else self.ops.meter.it_power_w()
        return False

    def after_pass(self, now_s: float, clusters: list[int]) -> None:
        self._admitted_on = -1  # (the engine has refreshed every cluster where its pass started a job)
        if not self.active:
            return
        blocked = self.blocked
        if blocked:  # (nothing to unblock otherwise)
            for c in clusters:
                if c not in self._blocked_now:
                    blocked.pop(c, None)
        self._blocked_now.clear()
        ctrl = self.ctrl
        ops = self.ops
        it_w = ops.meter.it_power_w() if self._quiet_under_cap and ctrl.unthrottled else math.nan
        if not it_w <= ctrl.it_limit_w():  # (NaN: throttled, or an enforcer that always acts)
            ctrl.it_read_w = math.nan
            for policy in self.enforcers:
                policy.enforce(ctrl, now_s)
            it_w = ctrl.it_read_w  # (NaN unless an enforcer read it and none changed it since)
        v = ops.meter.values
        i_throttled, i_slowed, i_blocked = self._ch_after_pass
        if ctrl.throttled or self._stats_shown:
            throttled, slowed = ctrl.throttle_stats()
            v[i_throttled], v[i_slowed] = throttled, slowed
            self._stats_shown = bool(throttled or slowed)  # (the truth of the two channels: only this writes them)
        if blocked:
            if it_w != it_w:
                it_w = ops.meter.it_power_w()
            for c, at_w in list(blocked.items()):
                if it_w < at_w - 1.0:
                    blocked[c] = it_w
                    ops.request_pass(c)
            queued = ops.facility.queued_gpus
            v[i_blocked] = sum([queued[c] for c in blocked])
        else:
            v[i_blocked] = 0

    # -- PowerWatcher ----------------------------------------------------------------------------------------
    def power_changed(self, c: int) -> None:
        """Power on cluster ``c`` changed outside a scheduling pass (a checkpoint ended, a replica started): let
        the policies re-check caps and budgets at this same instant."""
        if self.active:
            self.ops.request_pass(c)

    # -- ArrivalGate -----------------------------------------------------------------------------------------
    def hold(self, job: Job, allowed: tuple[int, ...]) -> bool:
        """Hold a flexible job until its release time; True if held."""
        d = self.deferral
        ops = self.ops
        if d is None or not d.is_flexible(int(self._sources[job.idx]), job.priority):
            return False
        now = ops.env.now
        self.deadlines[job.idx] = now + d.cfg.max_delay + job.work_s  # completion, at reference speed
        release = self._release_s(d, job.idx, now, job.work_s)
        if release <= now:
            return False
        d.deferred += 1
        d.delay_s += release - now
        d.deferred_gpu_s += job.gpus * (release - now)
        self.held += 1
        ops.meter.values[self._i_deferred] = self.held
        # the job rides on its release event (one tuple per held job, not a closure of five objects for the
        # garbage collector to follow while it waits)
        ops.env.timeout(release - now, (job, allowed)).callbacks.append(self._release_cb)
        return True

    def _release_s(self, d: Deferral, idx: int, now: float, work_s: float) -> float:
        """``d.release_s(now, work_s)`` for job row ``idx``: decided ahead, :data:`_AHEAD` rows of the job table at
        a time (:meth:`Deferral.release_many`, the same floats), and taken when the arrival is the one decided
        (its time and work those of its row, as every job arriving in the engine); any other is decided now."""
        i = idx - self._ahead_lo
        if i >= len(self._ahead_now):
            self._decide_ahead(d, idx)
            i = 0
        if 0 <= i < len(self._ahead_now) and self._ahead_now[i] == now and self._ahead_work[i] == work_s:
            return self._ahead_release[i]
        return d.release_s(now, work_s)

    def _decide_ahead(self, d: Deferral, lo: int) -> None:
        jobs = self.ops.facility.jobs
        hi = max(lo, min(lo + _AHEAD, len(jobs)))
        submit, work = jobs.submit_s[lo:hi], jobs.work_s[lo:hi]
        flexible = np.isin(jobs.source_idx[lo:hi], sorted(d.flexible_sources)) & (
            jobs.priority[lo:hi] <= d.cfg.max_priority
        )
        release = np.full(hi - lo, np.nan)
        release[flexible] = d.release_many(submit[flexible], work[flexible])
        self._ahead_lo = lo
        self._ahead_now = np.where(flexible, submit, np.nan).tolist()  # (NaN: not flexible, never taken)
        self._ahead_work = work.tolist()
        self._ahead_release = release.tolist()

    def _release(self, event: simpy.Event) -> None:
        job, allowed = cast(tuple[Job, tuple[int, ...]], event.value)
        ops = self.ops
        ops.begin_event()
        ops.begin_submissions()  # (the pass the released job asks for runs at the end)
        self.held -= 1
        ops.meter.values[self._i_deferred] = self.held
        ops.route_and_enqueue(job, allowed)
        ops.end_submissions()

    # -- FacilityPower ---------------------------------------------------------------------------------------
    def facility_j(self, it_j: float) -> float:
        return float(self.ops.meter.integral[self.ch["facility_w"]])

    def peak_facility_w(self, peak_it_w: float) -> float:
        return self.acc.peak_facility_w

    def facility_w(self, means: np.ndarray, it_w: np.ndarray) -> np.ndarray:
        return np.asarray(means[:, self.ch["facility_w"]])

    # -- ResultContributor -----------------------------------------------------------------------------------
    def timeseries_columns(self, run: RunView, times: np.ndarray, means: np.ndarray) -> dict[str, Any]:
        cols = results.energy_columns(self, run, means, np.diff(times))
        if self.acc.eed is not None:
            cols.update(eed_columns(run.meter.index, means, np.diff(times)))
        return cols

    def job_columns(self, run: RunView) -> dict[str, np.ndarray]:
        return {}

    def summary_sections(self, run: RunView, jobs: pd.DataFrame, summary: dict[str, Any]) -> None:
        summary.update(results.energy_sections(self, run, jobs))
        if self.acc.eed is not None:
            summary["eed"] = eed_section(run.scenario, self.acc.eed.section())
