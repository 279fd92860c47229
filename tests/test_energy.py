"""Energy system: exact carbon and cost, PUE chain, renewables, hard caps, DVFS capping, budgets, deferral."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from gigafactory_sim.api import run
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.sim.engine import Simulation

DATA = Path(__file__).resolve().parents[1] / "gigafactory_sim" / "data" / "grid"
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

H200_IDLE_W, H200_SLOPE_W, H200_LIMIT_W, ALPHA = 122.0, 800.0, 700.0, 1.9
PARKED_W = 78.0


def scenario(**over: Any) -> Scenario:
    doc: dict[str, Any] = {
        "name": "t", "seed": 3, "start": "2020-06-01T00:00:00Z", "horizon": "2d",
        "facility": {"pue": 1.2, "country": "FR", "clusters": [
            {"name": "h200", "gpu": "H200-SXM", "nodes": 8, "gpus_per_node": 8,
             "node_power": {"idle_w": 1000, "busy_w": 2500}}]},
        "workload": {"training": []},
        "scheduler": {"kind": "fifo"},
        "report": {"interval": "1h", "plots": False},
    }
    for key, value in over.items():
        node = doc
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = copy.deepcopy(value)
    return parse_scenario_text(yaml.safe_dump(doc), "test.yaml", base_dir=Path.cwd())


def hourly(kind: str, zone: str, column: str) -> pd.Series:
    df = pd.read_csv(DATA / f"{kind}_2020.csv.gz")
    df = df[df.zone == zone]
    return pd.Series(df[column].to_numpy(), index=pd.to_datetime(df.time_utc, utc=True))


# -- carbon and cost against the real series ----------------------------------------------------------------
@pytest.mark.parametrize("zone", ["FR", "DE"])
def test_constant_load_carbon_and_cost_equal_power_times_sum_over_the_series(zone: str) -> None:
    sc = scenario(**{"horizon": "30d", "facility.country": zone, "grid": {"carbon": {}, "price": {}}})
    res = run(sc)
    it_w = 64 * PARKED_W + 8 * 1000.0  # idle: GPUs parked, nodes idle
    p_w = 1.2 * it_w
    window = slice(pd.Timestamp("2020-06-01", tz="UTC"), pd.Timestamp("2020-06-30T23:00", tz="UTC"))
    ci = hourly("carbon", zone, "carbon_g_per_kwh")[window]
    price = hourly("price", "DE-LU" if zone == "DE" else zone, "price_eur_per_mwh")[window]
    assert len(ci) == len(price) == 720
    expected_t = p_w / 1e3 * ci.sum() / 1e6  # kW x sum(g/kWh x 1 h) -> t
    expected_eur = p_w / 1e6 * price.sum()
    assert res.summary["carbon"]["total_t"] == pytest.approx(expected_t, rel=1e-10)
    assert res.summary["cost"]["total_eur"] == pytest.approx(expected_eur, rel=1e-10)
    assert res.summary["carbon"]["by_class_t"]["training"] == 0.0
    assert res.timeseries["carbon_t"].sum() == pytest.approx(expected_t, rel=1e-10)


def test_carbon_is_exact_with_jobs_and_looped_series() -> None:
    """Busy facility, series looped from 2020: totals equal the integral of power x signal per segment."""
    sc = scenario(**{"start": "2024-06-03T00:00:00Z", "horizon": "3d",
                     "grid": {"loop_year": True, "carbon": {}, "price": {}},
                     "workload.training": [_research_source(rate=40)]})
    sim = Simulation(sc)
    res = run(sc, simulation=sim)
    ts = res.timeseries
    # hourly report rows align with the hourly signal: carbon of a row = mean grid power x intensity x 1 h
    expected = (ts["grid_import_mw"] * 1e3 * ts["carbon_g_per_kwh"]).sum() / 1e6
    assert res.summary["carbon"]["total_t"] == pytest.approx(expected, rel=1e-9)
    energy = res.summary["energy"]
    assert energy["facility_mwh"] == pytest.approx(energy["it_mwh"] * 1.2, rel=1e-12)
    # 2024-06-03 (Monday) reads 2020-06-01 (Monday)
    ci = hourly("carbon", "FR", "carbon_g_per_kwh")
    assert ts["carbon_g_per_kwh"].iloc[0] == pytest.approx(ci[pd.Timestamp("2020-06-01", tz="UTC")])
    assert res.summary["carbon"]["by_class_t"]["training"] > 0


def _research_source(rate: float = 20, **extra: Any) -> dict[str, Any]:
    return {"kind": "synthetic", "name": "research", "arrivals": {"kind": "poisson", "rate_per_hour": rate},
            "classes": [{"name": "small", "share": 0.7,
                         "sizes": {"kind": "choice", "gpus": [1, 2, 4, 8]},
                         "duration": {"kind": "lognormal", "median": "1h", "sigma": 1.0, "max": "1d"}},
                        {"name": "big", "share": 0.3, "priority": 1,
                         "sizes": {"kind": "choice", "gpus": [8, 16, 32]},
                         "duration": {"kind": "lognormal", "median": "3h", "sigma": 0.8, "max": "2d"}}],
            **extra}


def test_scenario_without_energy_sections_is_unchanged() -> None:
    sc = scenario(**{"workload.training": [_research_source()]})
    sim = Simulation(sc)
    assert sim.energy is None
    res = run(sc, simulation=sim)
    assert "carbon" not in res.summary and "grid_import_mw" not in res.timeseries
    with_grid = run(scenario(**{"workload.training": [_research_source()], "grid": {"carbon": {}}}))
    pd.testing.assert_frame_equal(res.jobs, with_grid.jobs)
    assert with_grid.summary["energy"]["it_mwh"] == pytest.approx(res.summary["energy"]["it_mwh"], rel=1e-12)
