"""Prepare the energy system of a scenario: read every series, build the breakpoint grid and check the input.

Everything here is done once, before any engine exists (so ``validate`` runs it without simulating): the grid
signals and the cap series are read, the signals are laid on one breakpoint grid (every signal change and budget
period boundary), the PUE chain is evaluated per segment, budgets are pre-integrated, and every problem of the
energy input (a cap below the facility's idle power, a budget that idling alone exceeds, a policy that names no
cluster or source, a deferral without its signal) is reported at once, with the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.eed.prepare import (
    EedPlan,
    eed_breakpoints,
    eed_configured,
    effective_pue,
    heat_demand_signal,
    prepare_eed,
)
from gigafactory_sim.energy.budgets import UNIT, Budget, WeightedPacing, full_period_s, period_edges
from gigafactory_sim.energy.config import DailyCap, EnergyConfig, cap_signal
from gigafactory_sim.energy.deferral import DeferralConfig
from gigafactory_sim.energy.policies import CappingConfig
from gigafactory_sim.energy.pue import pue_coefficients
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.grid.config import GridSignals, load_grid
from gigafactory_sim.grid.signals import Signal
from gigafactory_sim.numerics import libm
from gigafactory_sim.sim.facility import PowerTable

__all__ = ["EnergyPlan", "needs_energy_system", "prepare_energy"]


def needs_energy_system(scenario: Scenario) -> bool:
    return (
        scenario.grid is not None
        or scenario.energy is not None
        or not isinstance(scenario.facility.pue, int | float)
        or eed_configured(scenario)
    )


def _at(sig: Signal | None, t: np.ndarray, default: float) -> np.ndarray:
    if sig is None:
        return np.full(len(t), default)
    i = np.clip(np.searchsorted(sig.times_s, t, side="right") - 1, 0, None)
    return sig.values[i]


@dataclass
class EnergyPlan:
    """The energy input of a run, read and checked: signals per breakpoint segment, budgets, policies."""

    cfg: EnergyConfig
    grid: GridSignals
    hard_cap: Signal | None
    times: np.ndarray  # breakpoints 0 .. horizon
    seg_carbon: np.ndarray
    seg_price: np.ndarray
    seg_renewable_w: np.ndarray
    seg_hard_cap_w: np.ndarray
    seg_a: np.ndarray  # facility = a x IT + b, per segment
    seg_b: np.ndarray
    floor_w: float  # facility power with every job suspended (the highest over segments)
    ceiling_w: float  # facility power with every GPU busy at its board limit
    budgets: list[Budget]
    theta_min: list[float]  # per cluster: the lowest GPU limit capping may set (fraction of the board limit)
    capping_tiers: list[list[int]] | None
    deferral: DeferralConfig | None
    deferral_signal: Signal | None
    flexible_sources: set[int]
    eed: EedPlan | None = None  # cooling water, heat reuse and renewable contracts (README, EED)


def prepare_energy(scenario: Scenario, source_names: list[str]) -> EnergyPlan | None:
    """The checked energy plan of ``scenario``; None when it configures no energy system."""
    if not needs_energy_system(scenario):
        return None
    sc = scenario
    h = sc.horizon_s
    cfg = sc.energy or EnergyConfig()
    grid = load_grid(sc.grid, sc.facility.country, sc.start, h, sc.base_dir) if sc.grid is not None else GridSignals()
    power = PowerTable(sc)
    names = power.cluster_names
    n = len(names)
    problems: list[tuple[str, str]] = []
    capping = cfg.policy("capping")
    theta_min = [1.0] * n
    tiers: list[list[int]] | None = None
    if isinstance(capping, CappingConfig):
        theta_min = [capping.min_limit_fraction] * n
        for c, m in enumerate(power.power_models):
            if capping.min_limit_fraction * m.limit_w <= m.idle_w:
                problems.append(
                    (
                        "energy.policies",
                        f"capping.min_limit_fraction puts {names[c]}'s GPUs at or "
                        f"below their idle power ({m.idle_w:.0f} W)",
                    )
                )
        for name in capping.clusters:
            if name not in names:
                problems.append(("energy.policies", f"capping: no cluster named {name!r}"))
        if not problems:
            tiers = capping.build_tiers(names)
    deferral = next((p for p in cfg.policies if isinstance(p, DeferralConfig)), None)
    deferral_signal: Signal | None = None
    flexible: set[int] = set()
    if deferral is not None:
        deferral_signal = grid.carbon if deferral.signal == "carbon" else grid.price
        if deferral_signal is None:
            problems.append(("energy.policies", f"deferral on {deferral.signal} needs grid.{deferral.signal}"))
        else:
            unknown = [s for s in deferral.sources or [] if s not in source_names]
            if unknown:
                problems.append(("energy.policies", f"deferral: no workload source {', '.join(unknown)}"))
            flexible = {i for i, s in enumerate(source_names) if deferral.sources is None or s in deferral.sources}

    # the breakpoint grid: every signal change and period boundary in (0, horizon)
    hard_cap = cap_signal(cfg.power_cap_mw, sc.start, h, sc.base_dir) if cfg.power_cap_mw is not None else None
    signals = [*grid.all(), *([hard_cap] if hard_cap else [])]
    budgets = [Budget(b, period_edges(b.per, sc.start, h), np.zeros(0), 0.0) for b in cfg.budgets]
    demand = heat_demand_signal(sc)
    pieces = [np.array([0.0, h])] + [s.breakpoints(h) for s in signals] + [b.edges for b in budgets]
    pieces += eed_breakpoints(sc, demand)
    times = np.unique(np.concatenate(pieces))
    starts = times[:-1]
    seg_carbon = _at(grid.carbon, starts, 0.0)
    seg_price = _at(grid.price, starts, 0.0)
    seg_renewable_w = grid.solar_mw * 1e6 * _at(grid.solar, starts, 0.0) + grid.wind_mw * 1e6 * _at(
        grid.wind, starts, 0.0
    )
    seg_hard_cap_w = _at(hard_cap, starts, math.inf)
    temps = _at(grid.temperature, starts, math.nan) if grid.temperature else None
    pue = effective_pue(sc)
    try:
        coeffs = [pue_coefficients(pue, None if temps is None else float(temps[k])) for k in range(len(starts))]
    except ValueError as exc:
        raise ScenarioError.single(
            sc.source_file, "facility.pue" if pue is sc.facility.pue else "cooling", str(exc)
        ) from None
    seg_a = np.array([c[0] for c in coeffs])
    seg_b = np.array([c[1] for c in coeffs])

    floor_it = power.idle_floor_it_w()
    top_it = power.ceiling_it_w()
    floor_w = float(np.max(seg_a * floor_it + seg_b))
    ceiling_w = float(np.max(seg_a * top_it + seg_b))
    if hard_cap is not None:
        problems += _cap_below_floor(cfg, float(seg_hard_cap_w.min()), floor_w)
    _prepare_budgets(sc, grid, budgets, times, seg_a, seg_carbon, seg_price, floor_w, problems)
    if problems:
        raise ScenarioError([InputProblem(sc.source_file, None, f, m) for f, m in problems])
    return EnergyPlan(
        cfg,
        grid,
        hard_cap,
        times,
        seg_carbon,
        seg_price,
        seg_renewable_w,
        seg_hard_cap_w,
        seg_a,
        seg_b,
        floor_w,
        ceiling_w,
        budgets,
        theta_min,
        tiers,
        deferral,
        deferral_signal,
        flexible,
        prepare_eed(sc, grid, times, seg_renewable_w, demand),
    )


def _cap_below_floor(cfg: EnergyConfig, lowest_w: float, floor_w: float) -> list[tuple[str, str]]:
    """A hard cap below the facility's idle power (every GPU unallocated, at the PUE in force) can never be
    kept: each level of a daily cap is named on its own field."""
    cap = cfg.power_cap_mw
    levels: list[tuple[str, float]] = []
    if isinstance(cap, DailyCap):
        levels = [("energy.power_cap_mw.base_mw", cap.base_mw)]
        levels += [(f"energy.power_cap_mw.windows.{k}.mw", w.mw) for k, w in enumerate(cap.windows)]
    else:
        levels = [("energy.power_cap_mw", lowest_w / 1e6)]
    lowest = "" if isinstance(cap, DailyCap | float | int) else " at its lowest"
    return [
        (
            path,
            f"the cap ({mw:.3f} MW{lowest}) is below the facility's idle power ({floor_w / 1e6:.3f} MW): "
            f"it can never be kept",
        )
        for path, mw in levels
        if mw * 1e6 < floor_w
    ]


def _prepare_budgets(
    sc: Scenario,
    grid: GridSignals,
    budgets: list[Budget],
    times: np.ndarray,
    seg_a: np.ndarray,
    seg_carbon: np.ndarray,
    seg_price: np.ndarray,
    floor_w: float,
    problems: list[tuple[str, str]],
) -> None:
    h = sc.horizon_s
    for i, b in enumerate(budgets):
        kind = b.kind
        signal = {"energy": None, "carbon": "carbon", "cost": "price"}[kind]
        if signal is not None and getattr(grid, signal) is None:
            problems.append((f"energy.budgets.{i}", f"a {kind} budget needs grid.{signal}"))
            continue
        u = {"energy": np.ones(len(seg_a)), "carbon": seg_carbon / 3.6e6, "cost": np.maximum(seg_price, 0.0) / 3.6e9}[
            kind
        ]
        f = np.ones(len(u))
        pacing = b.config.pacing
        if isinstance(pacing, WeightedPacing):
            x = seg_carbon if pacing.by == "carbon" else seg_price
            if (pacing.by == "carbon" and grid.carbon is None) or (pacing.by == "price" and grid.price is None):
                problems.append((f"energy.budgets.{i}.pacing", f"weighted pacing needs grid.{pacing.by}"))
                continue
            dt = np.diff(times)
            ref = float(np.sum(x * dt) / np.sum(dt))
            ref = ref if ref > 0 else 1.0
            f = libm.power(ref / np.maximum(x, 0.05 * ref), pacing.strength)
        edges = b.edges
        b.amounts = np.array(
            [
                b.config.amount() * (edges[p + 1] - edges[p]) / full_period_s(b.config.per, sc.start, edges[p], h)
                for p in range(len(edges) - 1)
            ]
        )
        b.floor_w = floor_w
        b.prepare(times, u, f)
        unit, scale = UNIT[kind]
        for p in range(len(edges) - 1):
            need = b.idle_need(p)
            if b.amounts[p] < need:
                problems.append(
                    (
                        f"energy.budgets.{i}",
                        f"period {p} allows {b.amounts[p] / scale:,.1f} {unit}, less than the facility "
                        f"uses idle ({need / scale:,.1f} {unit}); raise the budget",
                    )
                )
                break
