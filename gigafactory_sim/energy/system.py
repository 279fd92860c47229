"""The energy system of a run: grid signals, the PUE chain, the effective cap and the policies, wired to the
engine.

The engine calls four hooks (all no-ops for a scenario without ``grid:``/``energy:`` and a plain-number PUE,
where no energy system is built): :meth:`EnergySystem.process` (a SimPy process ticking at every signal
breakpoint and period boundary, so carbon and cost integrate exactly), :meth:`admit` before each start,
:meth:`after_pass` after each scheduling pass, and :meth:`hold` on each arrival (deferral).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from gigafactory_sim.energy.accounting import DERIVED, SIGNALS, Accounting
from gigafactory_sim.energy.budgets import UNIT, Budget, WeightedPacing, full_period_s, period_edges
from gigafactory_sim.energy.config import EnergyConfig, cap_signal
from gigafactory_sim.energy.control import PowerControl
from gigafactory_sim.energy.deferral import Deferral, DeferralConfig
from gigafactory_sim.energy.policies import (
    Admission,
    AdmissionConfig,
    Capping,
    CappingConfig,
    PowerPolicy,
    PreemptionConfig,
)
from gigafactory_sim.energy.pue import pue_coefficients
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.grid.config import GridSignals, load_grid
from gigafactory_sim.grid.signals import Signal
from gigafactory_sim.sim.state import Job

if TYPE_CHECKING:
    from gigafactory_sim.sim.engine import Simulation

__all__ = ["EnergySystem", "needs_energy_system"]

POWER_CHANNELS = ("gpu_train_w", "gpu_idle_w", "node_train_w", "node_idle_w")  # as metered by the engine


def needs_energy_system(sim: Simulation) -> bool:
    sc = sim.scenario
    return sc.grid is not None or sc.energy is not None or not isinstance(sc.facility.pue, int | float)


def _at(sig: Signal | None, t: np.ndarray, default: float) -> np.ndarray:
    if sig is None:
        return np.full(len(t), default)
    i = np.clip(np.searchsorted(sig.times_s, t, side="right") - 1, 0, None)
    return sig.values[i]


class EnergySystem:
    """Built by the engine after its meter; see the module docstring."""

    def __init__(self, sim: Simulation) -> None:
        sc = sim.scenario
        self.sim = sim
        h = sim.horizon_s
        self.cfg = sc.energy or EnergyConfig()
        self.grid = (load_grid(sc.grid, sc.facility.country, sc.start, h, sc.base_dir) if sc.grid is not None
                     else GridSignals())
        n = len(sim.clusters)
        problems: list[tuple[str, str]] = []
        capping = self.cfg.policy("capping")
        theta_min = [1.0] * n
        if isinstance(capping, CappingConfig):
            theta_min = [capping.min_limit_fraction] * n
            for c, m in enumerate(sim.power_models):
                if capping.min_limit_fraction * m.limit_w <= m.idle_w:
                    problems.append(("energy.policies", f"capping.min_limit_fraction puts "
                                     f"{sim.cluster_names[c]}'s GPUs at or below their idle power "
                                     f"({m.idle_w:.0f} W)"))
            for name in capping.clusters:
                if name not in sim.cluster_names:
                    problems.append(("energy.policies", f"capping: no cluster named {name!r}"))
        self.ctrl = PowerControl(sim, theta_min)
        self.enforcers: list[PowerPolicy] = []
        self.admission: Admission | None = None
        self.deferral: Deferral | None = None
        for p in self.cfg.policies:
            if isinstance(p, AdmissionConfig):
                self.admission = p.build()
            elif isinstance(p, CappingConfig) and not problems:
                self.enforcers.append(Capping(p.build_tiers(sim.cluster_names)))
            elif isinstance(p, PreemptionConfig):
                self.enforcers.append(p.build())
            elif isinstance(p, DeferralConfig):
                self.deferral = self._build_deferral(p, problems)
        self.enforcers.sort(key=lambda p: p.stage)

        meter = sim.meter
        meter.add_channels(list(DERIVED) + list(SIGNALS))
        self.ch = {name: meter.index[name] for name in (*DERIVED, *SIGNALS)}
        names = sim.cluster_names
        self.acc = Accounting(meter.index,
                              meter.it_power_names,  # every IT channel: training, idle and inference
                              [f"{ch}.{c}" for c in names for ch in ("gpu_train_w", "node_train_w")],
                              [f"busy_gpus.{c}" for c in names],
                              [n for n in meter.it_power_names if n.startswith(("gpu_infer_w.", "node_infer_w."))])
        meter.probe = self.acc

        # the breakpoint grid: every signal change and period boundary in (0, horizon)
        self.hard_cap = (cap_signal(self.cfg.power_cap_mw, sc.start, h, sc.base_dir)
                         if self.cfg.power_cap_mw is not None else None)
        signals = [*self.grid.all(), *([self.hard_cap] if self.hard_cap else [])]
        self.budgets = [Budget(b, period_edges(b.per, sc.start, h), np.zeros(0), 0.0)
                        for b in self.cfg.budgets]
        pieces = [np.array([0.0, h])] + [s.breakpoints(h) for s in signals] + [b.edges for b in self.budgets]
        self.times = np.unique(np.concatenate(pieces))
        starts = self.times[:-1]
        self.seg_carbon = _at(self.grid.carbon, starts, 0.0)
        self.seg_price = _at(self.grid.price, starts, 0.0)
        self.seg_renewable_w = (self.grid.solar_mw * 1e6 * _at(self.grid.solar, starts, 0.0)
                                + self.grid.wind_mw * 1e6 * _at(self.grid.wind, starts, 0.0))
        self.seg_hard_cap_w = _at(self.hard_cap, starts, math.inf)
        temps = _at(self.grid.temperature, starts, math.nan) if self.grid.temperature else None
        try:
            coeffs = [pue_coefficients(sc.facility.pue, None if temps is None else float(temps[k]))
                      for k in range(len(starts))]
        except ValueError as exc:
            raise ScenarioError.single(sc.source_file, "facility.pue", str(exc)) from None
        self.seg_a = np.array([c[0] for c in coeffs])
        self.seg_b = np.array([c[1] for c in coeffs])

        # the floor (every job suspended) and the ceiling (every GPU busy at its board limit)
        floor_it = sum(st.total_gpus * (sim.unallocated_w[c] + sim.node_idle_w_per_gpu[c])
                       for c, st in enumerate(sim.clusters))
        top_it = sum(st.total_gpus * (max(m.limit_w, sim.context_idle_w[c]) + sim.node_busy_w_per_gpu[c])
                     for c, (st, m) in enumerate(zip(sim.clusters, sim.power_models, strict=True)))
        self.floor_w = float(np.max(self.seg_a * floor_it + self.seg_b))
        self.ceiling_w = float(np.max(self.seg_a * top_it + self.seg_b))
        if self.hard_cap is not None and float(self.seg_hard_cap_w.min()) < self.floor_w:
            problems.append(("energy.power_cap_mw",
                             f"the cap ({self.seg_hard_cap_w.min() / 1e6:.3f} MW at its lowest) is below the "
                             f"facility's idle power ({self.floor_w / 1e6:.3f} MW): it can never be kept"))
        self._prepare_budgets(problems)
        if problems:
            raise ScenarioError([InputProblem(sc.source_file, None, f, m) for f, m in problems])
        limited = self.hard_cap is not None or bool(self.budgets)
        self.active = bool(self.enforcers or self.admission) and limited
        self.blocked: dict[int, float] = {}
        self._blocked_now: set[int] = set()
        self.period_snapshots: list[tuple[float, np.ndarray]] = []
        self.held = 0
        self.deadlines: dict[int, float] = {}
        self.k = 0
        self._apply(0)

    # -- build helpers ---------------------------------------------------------------------------------------
    def _build_deferral(self, p: DeferralConfig, problems: list[tuple[str, str]]) -> Deferral | None:
        sig = self.grid.carbon if p.signal == "carbon" else self.grid.price
        if sig is None:
            problems.append(("energy.policies", f"deferral on {p.signal} needs grid.{p.signal}"))
            return None
        names = self.sim.jobs.sources
        unknown = [s for s in p.sources or [] if s not in names]
        if unknown:
            problems.append(("energy.policies", f"deferral: no workload source {', '.join(unknown)}"))
        flexible = {i for i, s in enumerate(names) if p.sources is None or s in p.sources}
        return Deferral(p, sig, flexible, self.sim.horizon_s)

    def _prepare_budgets(self, problems: list[tuple[str, str]]) -> None:
        sc = self.sim.scenario
        h = self.sim.horizon_s
        for i, b in enumerate(self.budgets):
            kind = b.kind
            signal = {"energy": None, "carbon": "carbon", "cost": "price"}[kind]
            if signal is not None and getattr(self.grid, signal) is None:
                problems.append((f"energy.budgets.{i}", f"a {kind} budget needs grid.{signal}"))
                continue
            u = {"energy": np.ones(len(self.seg_a)), "carbon": self.seg_carbon / 3.6e6,
                 "cost": np.maximum(self.seg_price, 0.0) / 3.6e9}[kind]
            f = np.ones(len(u))
            pacing = b.config.pacing
            if isinstance(pacing, WeightedPacing):
                x = self.seg_carbon if pacing.by == "carbon" else self.seg_price
                if (pacing.by == "carbon" and self.grid.carbon is None) or (pacing.by == "price" and
                                                                            self.grid.price is None):
                    problems.append((f"energy.budgets.{i}.pacing", f"weighted pacing needs grid.{pacing.by}"))
                    continue
                dt = np.diff(self.times)
                ref = float(np.sum(x * dt) / np.sum(dt))
                ref = ref if ref > 0 else 1.0
                f = (ref / np.maximum(x, 0.05 * ref)) ** pacing.strength
            edges = b.edges
            b.amounts = np.array([b.config.amount() * (edges[p + 1] - edges[p])
                                  / full_period_s(b.config.per, sc.start, edges[p], h)
                                  for p in range(len(edges) - 1)])
            b.floor_w = self.floor_w
            b.prepare(self.times, u, f)
            unit, scale = UNIT[kind]
            for p in range(len(edges) - 1):
                need = b.idle_need(p)
                if b.amounts[p] < need:
                    problems.append((f"energy.budgets.{i}",
                                     f"period {p} allows {b.amounts[p] / scale:,.1f} {unit}, less than the "
                                     f"facility uses idle ({need / scale:,.1f} {unit}); raise the budget"))
                    break

    # -- signals and the effective cap ----------------------------------------------------------------------
    def _apply(self, k: int) -> None:
        """Put segment ``k``'s signals in force (call after ``meter.advance(now)``)."""
        self.k = k
        acc, ctrl = self.acc, self.ctrl
        acc.a = ctrl.a = float(self.seg_a[k])
        acc.b_w = ctrl.b_w = float(self.seg_b[k])
        acc.renewable_w = ctrl.renewable_w = float(self.seg_renewable_w[k])
        acc.carbon_g_per_kwh = float(self.seg_carbon[k])
        acc.price_eur_per_mwh = float(self.seg_price[k])
        hard = float(self.seg_hard_cap_w[k])
        cap = hard
        integral = self.sim.meter.integral
        for b in self.budgets:
            cap = min(cap, b.cap_w(k, float(integral[self.ch[b.channel]])))
        acc.hard_cap_w = hard
        acc.cap_w = ctrl.cap_w = cap
        v = self.sim.meter.values
        ch = self.ch
        v[ch["renewable_w"]] = acc.renewable_w
        v[ch["carbon_g_per_kwh"]] = acc.carbon_g_per_kwh
        v[ch["price_eur_per_mwh"]] = acc.price_eur_per_mwh
        v[ch["cap_w"]] = min(cap, self.ceiling_w)
        v[ch["hard_cap_w"]] = min(hard, self.ceiling_w)
        v[ch["pue_a"]] = acc.a

    def process(self) -> Generator[simpy.Event, Any, None]:
        env = self.sim.env
        edges = {float(t) for b in self.budgets for t in b.edges}
        self.period_snapshots.append((0.0, self.sim.meter.snapshot()))
        for k in range(1, len(self.times) - 1):
            yield env.timeout(float(self.times[k]) - env.now)
            sim = self.sim
            sim.n_events += 1
            now = env.now
            old_cap = self.ctrl.cap_w
            sim.meter.advance(now)
            snap = sim.meter.snapshot()  # flushes the accounting before the signals change
            if float(self.times[k]) in edges:
                self.period_snapshots.append((now, snap))
            self._apply(k)
            if self.active:
                self.after_pass(now, [])
                if self.ctrl.cap_w > old_cap or any(t < 1.0 for t in self.ctrl.theta) or self.blocked:
                    for c, q in enumerate(sim.queues):
                        if q:
                            sim._request_pass(c)

    # -- engine hooks ----------------------------------------------------------------------------------------
    def admit(self, job: Job, c: int) -> bool:
        if self.admission is None or not self.active:
            return True
        self.sim._refresh(c)  # the engine refreshes a cluster's meter channels only after its pass
        if self.admission.admit(self.ctrl, job, c):
            return True
        self._blocked_now.add(c)
        self.blocked[c] = self.sim.meter.it_power_w()
        return False

    def after_pass(self, now: float, dirty: list[int]) -> None:
        if not self.active:
            return
        for c in dirty:
            if c not in self._blocked_now:
                self.blocked.pop(c, None)
        self._blocked_now.clear()
        for policy in self.enforcers:
            policy.enforce(self.ctrl, now)
        sim = self.sim
        v = sim.meter.values
        ch = self.ch
        if any(t < 1.0 for t in self.ctrl.theta) or v[ch["throttled_gpus"]] or v[ch["slowed_gpus"]]:
            v[ch["throttled_gpus"]], v[ch["slowed_gpus"]] = self.ctrl.throttle_stats()
        if self.blocked:
            it_w = sim.meter.it_power_w()
            for c, at_w in list(self.blocked.items()):
                if it_w < at_w - 1.0:
                    self.blocked[c] = it_w
                    sim._request_pass(c)
        v[ch["power_blocked_gpus"]] = sum(sim.queued_gpus[c] for c in self.blocked)

    def hold(self, job: Job, allowed: tuple[int, ...]) -> bool:
        """Hold a flexible job until its release time; True if held."""
        d = self.deferral
        if d is None or not d.is_flexible(int(self.sim.jobs.source_idx[job.idx]), job.priority):
            return False
        sim = self.sim
        now = sim.env.now
        self.deadlines[job.idx] = now + d.cfg.max_delay + job.work_s  # completion, at reference speed
        release = d.release_s(now, job.work_s)
        if release <= now:
            return False
        d.deferred += 1
        d.delay_s += release - now
        d.deferred_gpu_s += job.gpus * (release - now)
        self.held += 1
        sim.meter.values[self.ch["deferred_jobs"]] = self.held
        sim.env.timeout(release - now).callbacks.append(lambda _e: self._release(job, allowed))
        return True

    def _release(self, job: Job, allowed: tuple[int, ...]) -> None:
        sim = self.sim
        sim.n_events += 1
        sim.meter.advance(sim.env.now)
        self.held -= 1
        sim.meter.values[self.ch["deferred_jobs"]] = self.held
        sim._route_and_enqueue(job, allowed)
