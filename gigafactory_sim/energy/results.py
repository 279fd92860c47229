"""Summary sections and time-series columns of the energy system (called by
:mod:`gigafactory_sim.sim.collect`).

Every figure is an exact integral of the meter's channels (see :mod:`.accounting`); time-series columns are
interval means. Sections: ``grid`` (power chain, renewables), ``carbon``, ``cost``, ``power_cap`` (cap,
throttling, admission, preemption), ``budgets`` (use per period), ``deferral``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from gigafactory_sim.energy.budgets import UNIT
from gigafactory_sim.energy.policies import Preemption
from gigafactory_sim.sim import channels
from gigafactory_sim.units import J_PER_KWH, J_PER_MWH

if TYPE_CHECKING:
    from gigafactory_sim.energy.accounting import Accounting
    from gigafactory_sim.energy.budgets import Budget
    from gigafactory_sim.energy.config import EnergyConfig
    from gigafactory_sim.energy.deferral import Deferral
    from gigafactory_sim.energy.policies import Admission, PowerPolicy
    from gigafactory_sim.grid.config import GridSignals
    from gigafactory_sim.grid.signals import Signal
    from gigafactory_sim.sim.ops import RunView

__all__ = ["EnergySystem", "energy_columns", "energy_sections"]


class EnergySystem(Protocol):
    """What the results read of the energy feature (:class:`gigafactory_sim.energy.system.EnergySystem`)."""

    acc: Accounting
    admission: Admission | None
    budgets: list[Budget]
    cfg: EnergyConfig
    deadlines: dict[int, float]
    deferral: Deferral | None
    enforcers: list[PowerPolicy]
    grid: GridSignals
    hard_cap: Signal | None
    held: int
    period_snapshots: list[tuple[float, np.ndarray]]
    seg_a: np.ndarray
    seg_hard_cap_w: np.ndarray


def energy_columns(es: EnergySystem, run: RunView, means: np.ndarray, dt: np.ndarray) -> dict[str, np.ndarray]:
    """Time-series columns: power chain, signals, caps and policy activity per report interval (the core writes
    ``facility_power_mw`` from this feature's facility power)."""
    idx = run.meter.index
    names = run.facility.cluster_names

    def m(name: str) -> np.ndarray:
        return means[:, idx[name]]

    busy = sum(m(f"busy_gpus.{c}") for c in names)
    it_w = sum(m(f"{ch}.{c}") for c in names for ch in channels.POWER)
    cols: dict[str, np.ndarray] = {
        "pue": np.divide(m("facility_w"), it_w, out=np.full(len(dt), np.nan), where=np.asarray(it_w) > 0),
        "grid_import_mw": m("grid_import_w") / 1e6,
    }
    if es.grid.solar_mw or es.grid.wind_mw:
        cols["renewable_mw"] = m("renewable_w") / 1e6
        cols["renewable_used_mw"] = m("renewable_used_w") / 1e6
    if es.grid.carbon is not None:
        cols["carbon_g_per_kwh"] = m("carbon_g_per_kwh")
        cols["carbon_t"] = m("carbon_g_per_s") * dt / 1e6
    if es.grid.price is not None:
        cols["price_eur_per_mwh"] = m("price_eur_per_mwh")
        cols["cost_eur"] = m("cost_eur_per_s") * dt
    if es.hard_cap is not None or es.budgets:
        cols["cap_mw"] = m("cap_w") / 1e6
        if es.hard_cap is not None:
            cols["hard_cap_mw"] = m("hard_cap_w") / 1e6
        cols["throttled_fraction"] = np.divide(
            m("throttled_gpus"), busy, out=np.zeros(len(dt)), where=np.asarray(busy) > 0
        )
        cols["slowed_gpus"] = m("slowed_gpus")
        cols["power_blocked_gpus"] = m("power_blocked_gpus")
    if es.deferral is not None:
        cols["deferred_jobs"] = m("deferred_jobs")
    return cols


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def energy_sections(es: EnergySystem, run: RunView, jobs: pd.DataFrame) -> dict[str, Any]:
    """The summary sections of the energy system."""
    f = run.facility
    integral = run.meter.integral
    idx = run.meter.index
    h = run.horizon_s

    def total(name: str) -> float:
        return float(integral[idx[name]])

    facility_j = total("facility_w")
    grid_j = total("grid_import_w")
    it_j = sum(total(name) for name in run.meter.it_power_names)  # training, idle and inference
    busy_s = sum(total(f"busy_gpus.{c}") for c in f.cluster_names)
    out: dict[str, Any] = {}
    ren_avail = total("renewable_w")
    ren_used = total("renewable_used_w")
    out["grid"] = {
        "zone": (
            run.scenario.grid.zone if run.scenario.grid and run.scenario.grid.zone else run.scenario.facility.country
        ),
        "facility_mwh": facility_j / J_PER_MWH,
        "grid_import_mwh": grid_j / J_PER_MWH,
        "pue_effective": _ratio(facility_j, it_j),
        "peak_facility_mw": es.acc.peak_facility_w / 1e6,
        "peak_grid_import_mw": es.acc.peak_grid_w / 1e6,
        "solar_mw": es.grid.solar_mw,
        "wind_mw": es.grid.wind_mw,
        "renewable_available_mwh": ren_avail / J_PER_MWH,
        "renewable_used_mwh": ren_used / J_PER_MWH,
        "self_consumption_fraction": _ratio(ren_used, ren_avail),
        "renewable_share": _ratio(ren_used, facility_j),
    }
    if es.grid.carbon is not None:
        g = total("carbon_g_per_s")
        g_train = total("training_carbon_g_per_s")
        g_infer = total("inference_carbon_g_per_s")
        mean_ci = total("carbon_g_per_kwh") / h
        out["carbon"] = {
            "total_t": g / 1e6,
            "by_class_t": {
                "training": g_train / 1e6,
                "inference": g_infer / 1e6,
                "idle": (g - g_train - g_infer) / 1e6,
            },
            "intensity_g_per_kwh": _ratio(g, grid_j / J_PER_KWH),
            "mean_grid_intensity_g_per_kwh": mean_ci,
            "carbon_weighted_utilisation": (_ratio(total("busy_x_carbon") / busy_s, mean_ci) if busy_s else None),
        }
    if es.grid.price is not None:
        eur = total("cost_eur_per_s")
        eur_train = total("training_cost_eur_per_s")
        eur_infer = total("inference_cost_eur_per_s")
        mean_price = total("price_eur_per_mwh") / h
        busy_price = total("busy_x_price") / busy_s if busy_s else 0.0
        out["cost"] = {
            "total_eur": eur,
            "by_class_eur": {"training": eur_train, "inference": eur_infer, "idle": eur - eur_train - eur_infer},
            "price_paid_eur_per_mwh": _ratio(eur, grid_j / J_PER_MWH),
            "mean_price_eur_per_mwh": mean_price,
            "price_weighted_utilisation": _ratio(busy_price, mean_price) if busy_s else None,
            "average_eur_per_gpu_h": _ratio(eur, busy_s / 3600.0),
            "marginal_eur_per_gpu_h": _marginal(run, es, busy_price),
        }
    if es.hard_cap is not None or es.budgets:
        out["power_cap"] = _cap_section(es, total)
    if es.budgets:
        out["budgets"] = _budget_section(run, es)
    if es.deferral is not None:
        out["deferral"] = _deferral_section(run, es, jobs)
    return out


def _marginal(run: RunView, es: EnergySystem, busy_price: float) -> float | None:
    """Cost of one more busy GPU-hour: the facility power it adds over an idle GPU, at the busy-weighted
    price."""
    a = float(np.mean(es.seg_a))
    added, weight = 0.0, 0.0
    load = run.scenario.power.training_gpu_load
    f = run.facility
    for c, name in enumerate(f.cluster_names):
        busy = float(run.meter.integral[run.meter.index[f"busy_gpus.{name}"]])
        w = f.power.busy_gpu_marginal_w(c, load)
        added += busy * w
        weight += busy
    if weight <= 0:
        return None
    return a * (added / weight) / 1e6 * busy_price


def _cap_section(es: EnergySystem, total: Any) -> dict[str, Any]:
    hard = es.seg_hard_cap_w
    preempt = next((p for p in es.enforcers if isinstance(p, Preemption)), None)
    excess = es.acc.max_hard_excess_w
    return {
        "hard_cap_min_mw": float(hard.min()) / 1e6 if es.hard_cap is not None else None,
        "hard_cap_max_mw": float(hard.max()) / 1e6 if es.hard_cap is not None else None,
        "peak_grid_import_mw": es.acc.peak_grid_w / 1e6,
        "max_excess_over_hard_cap_mw": excess / 1e6 if math.isfinite(excess) else None,
        # in W: the solver aims 1 mW under the cap
        "hard_cap_kept": bool(excess <= 1e-6) if es.hard_cap is not None else None,
        "energy_over_hard_cap_mwh": total("over_cap_w") / J_PER_MWH,
        "max_excess_over_effective_cap_mw": es.acc.max_excess_w / 1e6 if math.isfinite(es.acc.max_excess_w) else None,
        "throttled_gpu_h": total("throttled_gpus") / 3600.0,
        "work_slowed_gpu_h": total("slowed_gpus") / 3600.0,
        "power_blocked_gpu_h": total("power_blocked_gpus") / 3600.0,
        "admission_refusals": es.admission.refused if es.admission is not None else 0,
        "jobs_suspended": preempt.suspended if preempt is not None else 0,
        "work_suspended_gpu_h": preempt.suspended_gpu_work_s / 3600.0 if preempt is not None else 0.0,
        "policies": [p.kind for p in es.cfg.policies],
    }


def _budget_section(run: RunView, es: EnergySystem) -> list[dict[str, Any]]:
    start = pd.Timestamp(run.scenario.start)
    snaps = [*es.period_snapshots, (run.horizon_s, run.meter.integral.copy())]
    times = np.array([t for t, _ in snaps])
    idx = run.meter.index
    out = []
    for b in es.budgets:
        unit, scale = UNIT[b.kind]
        periods: list[dict[str, Any]] = []
        for p in range(len(b.edges) - 1):
            i0 = int(np.argmin(np.abs(times - b.edges[p])))
            i1 = int(np.argmin(np.abs(times - b.edges[p + 1])))
            s0, s1 = snaps[i0][1], snaps[i1][1]

            def d(name: str, s0: np.ndarray = s0, s1: np.ndarray = s1) -> float:
                return float(s1[idx[name]] - s0[idx[name]])

            used = d(b.channel)
            periods.append(
                {
                    "start": (start + pd.Timedelta(seconds=float(b.edges[p]))).isoformat(),
                    "end": (start + pd.Timedelta(seconds=float(b.edges[p + 1]))).isoformat(),
                    f"budget_{unit.lower()}": float(b.amounts[p]) / scale,
                    f"used_{unit.lower()}": used / scale,
                    "used_fraction": used / float(b.amounts[p]),
                    "power_blocked_gpu_h": d("power_blocked_gpus") / 3600.0,
                    "work_slowed_gpu_h": d("slowed_gpus") / 3600.0,
                }
            )
        out.append(
            {
                "kind": b.kind,
                "per": b.config.per,
                "pacing": b.config.pacing.kind,
                "unit": unit,
                "max_used_fraction": max(float(p["used_fraction"]) for p in periods),
                "kept": all(float(p["used_fraction"]) <= 1.0 + 1e-9 for p in periods),
                "periods": periods,
            }
        )
    return out


def _deferral_section(run: RunView, es: EnergySystem, jobs: pd.DataFrame) -> dict[str, Any]:
    d = es.deferral
    assert d is not None
    ids = np.array(sorted(es.deadlines), dtype=np.int64)
    deadline = np.array([es.deadlines[i] for i in ids.tolist()])
    end = run.facility.rec_end_s[ids] if len(ids) else np.zeros(0)
    late = np.where(np.isnan(end), deadline < run.horizon_s, end > deadline + 1e-9)
    return {
        "signal": d.cfg.signal,
        "rule": d.cfg.rule,
        "flexible_jobs": len(ids),
        "jobs_deferred": d.deferred,
        "mean_delay_h": d.delay_s / d.deferred / 3600.0 if d.deferred else 0.0,
        "gpu_h_deferred": d.deferred_gpu_s / 3600.0,
        "deadline_misses": int(late.sum()),
        "held_at_end": es.held,
    }
