"""Prepare the EED inputs of a scenario: the heat-demand series, the per-segment water, heat and renewable
contract figures, and the breakpoints they need (UTC hour and calendar-year edges).

Called by :func:`gigafactory_sim.energy.prepare.prepare_energy` once, before any engine exists: every file is
read and every problem reported here. Without ``cooling:``, ``heat_reuse:`` or a PPA nothing here runs, so runs
that configure none of them are unchanged (no extra breakpoints, no extra channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gigafactory_sim.eed.config import HeatReuseConfig, PpaConfig, SeasonalHeatDemand, SeriesHeatDemand
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.grid.signals import Signal, load_signal
from gigafactory_sim.workload.traces import resolve_data_path

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Scenario
    from gigafactory_sim.energy.pue import ConstantPue, TemperaturePue
    from gigafactory_sim.grid.config import GridSignals

__all__ = ["EedPlan", "eed_breakpoints", "eed_configured", "effective_pue", "heat_demand_signal", "prepare_eed"]

J_PER_KWH = 3.6e6


def ppas_of(scenario: Scenario) -> list[PpaConfig]:
    """The scenario's power-purchase agreements (``grid.renewables.ppa``)."""
    grid = scenario.grid
    return list(grid.renewables.ppa) if grid is not None and grid.renewables is not None else []


def eed_configured(scenario: Scenario) -> bool:
    """Whether the run models cooling water, heat reuse or renewable contracts (then it integrates them)."""
    return scenario.cooling is not None or scenario.heat_reuse is not None or bool(ppas_of(scenario))


def effective_pue(scenario: Scenario) -> float | ConstantPue | TemperaturePue:
    """``facility.pue`` if the scenario gives one, else the PUE curve its cooling kind implies, else the
    default."""
    fac = scenario.facility
    if scenario.cooling is not None and "pue" not in fac.model_fields_set:
        return scenario.cooling.pue_model()
    return fac.pue


def heat_demand_signal(scenario: Scenario) -> Signal | None:
    """The ``heat_reuse.demand`` series (kind series) in W, read and validated like grid series."""
    hr = scenario.heat_reuse
    if hr is None or not isinstance(hr.demand, SeriesHeatDemand):
        return None
    d = hr.demand
    sig = load_signal(
        "heat_demand",
        resolve_data_path(d.path, scenario.base_dir),
        zone=d.zone or scenario.facility.country,
        column=d.column,
        year=None,
        start=scenario.start,
        horizon_s=scenario.horizon_s,
        loop_year=d.loop_year,
        field="heat_reuse.demand",
    )
    return Signal("heat_demand", "W", sig.times_s, sig.values * 1e6)


def year_edges_s(scenario: Scenario) -> tuple[list[int], np.ndarray]:
    """The calendar years (UTC) the run touches and their edges in seconds from the start, clipped to the
    horizon: ``edges[i], edges[i + 1]`` bound year ``years[i]``'s part of the run."""
    start = pd.Timestamp(scenario.start)
    end = start + pd.Timedelta(seconds=scenario.horizon_s)
    last = (end - pd.Timedelta(microseconds=1)).year if end > start else start.year
    years = list(range(start.year, last + 1))
    inner = [(pd.Timestamp(year=y, month=1, day=1, tz="UTC") - start).total_seconds() for y in years[1:]]
    return years, np.array([0.0, *inner, scenario.horizon_s])


def hour_edges_s(scenario: Scenario) -> np.ndarray:
    """UTC hour edges in ``(0, horizon)``: hourly matching of renewables closes an hour at each."""
    t0 = pd.Timestamp(scenario.start).timestamp()
    first = math.ceil(t0 / 3600.0) * 3600.0 - t0
    return np.arange(first if first > 0 else 3600.0, scenario.horizon_s, 3600.0)


def eed_breakpoints(scenario: Scenario, demand: Signal | None) -> list[np.ndarray]:
    """The breakpoints the EED figures need (empty when nothing is configured)."""
    if not eed_configured(scenario):
        return []
    _, edges = year_edges_s(scenario)
    pieces = [edges, hour_edges_s(scenario)]
    if demand is not None:
        pieces.append(demand.breakpoints(scenario.horizon_s))
    return pieces


@dataclass
class EedPlan:
    """Per breakpoint segment: what the probe needs to integrate water, reuse and matched renewables."""

    years: list[int]
    year_edges_s: np.ndarray
    seg_year: np.ndarray  # index into years
    seg_hour: np.ndarray  # UTC hour number (hourly matching closes an hour when it changes)
    seg_water_l_per_j: np.ndarray  # site water per J of heat rejected
    seg_demand_w: np.ndarray  # heat demanded by the network
    seg_onsite_w: np.ndarray  # on-site renewable output
    seg_ppa_w: np.ndarray  # contracted renewable output (all PPAs)
    recoverable_share: float
    capacity_w: float
    supply_temperature_c: float | None
    cooling_kind: str | None


def _seg_temperatures(sc: Scenario, grid: GridSignals, starts: np.ndarray) -> np.ndarray | None:
    if grid.temperature is None:
        return None
    i = np.clip(np.searchsorted(grid.temperature.times_s, starts, side="right") - 1, 0, None)
    return grid.temperature.values[i]


def _water(sc: Scenario, grid: GridSignals, temps: np.ndarray | None, starts: np.ndarray) -> np.ndarray:
    """Site water per J of heat rejected, per segment: the cooling curve at the temperature (and humidity)."""
    cooling = sc.cooling
    n = len(starts)
    if cooling is None:
        return np.zeros(n)
    scale = np.ones(n)
    if grid.humidity is not None:
        i = np.clip(np.searchsorted(grid.humidity.times_s, starts, side="right") - 1, 0, None)
        scale = np.array([cooling.humidity_factor(float(rh)) for rh in grid.humidity.values[i]])
    if temps is None:
        if cooling.temperature_c is None:
            raise ScenarioError.single(
                sc.source_file, "cooling", "cooling needs grid.temperature or cooling.temperature_c"
            )
        return scale * cooling.water_l_per_kwh(cooling.temperature_c) / J_PER_KWH
    return scale * np.array([cooling.water_l_per_kwh(float(t)) for t in temps]) / J_PER_KWH


def _demand(
    hr: HeatReuseConfig | None, temps: np.ndarray | None, sig: Signal | None, starts: np.ndarray, sc: Scenario
) -> np.ndarray:
    n = len(starts)
    if hr is None:
        return np.zeros(n)
    if sig is not None:
        i = np.clip(np.searchsorted(sig.times_s, starts, side="right") - 1, 0, None)
        return sig.values[i]
    d = hr.demand
    if isinstance(d, SeasonalHeatDemand) and temps is None and d.temperature_c is None:
        raise ScenarioError.single(
            sc.source_file, "heat_reuse.demand", "seasonal demand needs grid.temperature or temperature_c"
        )
    if temps is None:
        return np.full(n, d.demand_w(None))  # type: ignore[union-attr]
    return np.array([d.demand_w(float(t)) for t in temps])  # type: ignore[union-attr]


def _ppa(sc: Scenario, grid: GridSignals, starts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(starts))
    for p in ppas_of(sc):
        sig = {"solar": grid.solar, "wind": grid.wind, "baseload": None}[p.profile]
        if sig is None:
            cf = np.ones(len(starts))
        else:
            i = np.clip(np.searchsorted(sig.times_s, starts, side="right") - 1, 0, None)
            cf = sig.values[i]
        out += p.mw * 1e6 * cf
    return out


def prepare_eed(
    sc: Scenario, grid: GridSignals, times: np.ndarray, seg_onsite_w: np.ndarray, demand: Signal | None
) -> EedPlan | None:
    """The EED plan over the breakpoint grid ``times``; None when nothing EED is configured."""
    if not eed_configured(sc):
        return None
    starts = times[:-1]
    temps = _seg_temperatures(sc, grid, starts)
    years, edges = year_edges_s(sc)
    t0 = pd.Timestamp(sc.start).timestamp()
    hr = sc.heat_reuse
    return EedPlan(
        years=years,
        year_edges_s=edges,
        seg_year=np.clip(np.searchsorted(edges, starts, side="right") - 1, 0, len(years) - 1),
        seg_hour=np.floor((t0 + starts) / 3600.0).astype(np.int64),
        seg_water_l_per_j=_water(sc, grid, temps, starts),
        seg_demand_w=_demand(hr, temps, demand, starts, sc),
        seg_onsite_w=seg_onsite_w,
        seg_ppa_w=_ppa(sc, grid, starts),
        recoverable_share=hr.recoverable_share if hr is not None else 0.0,
        capacity_w=hr.capacity_mw * 1e6 if hr is not None else 0.0,
        supply_temperature_c=hr.supply_temperature_c if hr is not None else None,
        cooling_kind=sc.cooling.kind if sc.cooling is not None else None,
    )
