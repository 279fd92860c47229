"""Energy system: exact carbon and cost, PUE chain, renewables, hard caps, DVFS capping, budgets, deferral."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gigafactory_sim.api import execute, run
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.preparation import prepare
from gigafactory_sim.sim.engine import Simulation

DATA = Path(__file__).resolve().parents[1] / "gigafactory_sim" / "data" / "grid"
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

H200_IDLE_W, H200_SLOPE_W, H200_LIMIT_W, ALPHA = 122.0, 800.0, 700.0, 1.9
PARKED_W = 78.0


def scenario(**over: Any) -> Scenario:
    doc: dict[str, Any] = {
        "name": "t",
        "seed": 3,
        "start": "2020-06-01T00:00:00Z",
        "horizon": "2d",
        "facility": {
            "pue": 1.2,
            "country": "FR",
            "clusters": [
                {
                    "name": "h200",
                    "gpu": "H200-SXM",
                    "nodes": 8,
                    "gpus_per_node": 8,
                    "node_power": {"idle_w": 1000, "busy_w": 2500},
                }
            ],
        },
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


# -- carbon and cost against the real series -----------------------------------------------------------------
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
    sc = scenario(
        **{
            "start": "2024-06-03T00:00:00Z",
            "horizon": "3d",
            "grid": {"loop_year": True, "carbon": {}, "price": {}},
            "workload.training": [_research_source(rate=40)],
        }
    )
    sim = Simulation(prepare(sc))
    res = execute(sim)
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
    return {
        "kind": "synthetic",
        "name": "research",
        "arrivals": {"kind": "poisson", "rate_per_hour": rate},
        "classes": [
            {
                "name": "small",
                "share": 0.7,
                "sizes": {"kind": "choice", "gpus": [1, 2, 4, 8]},
                "duration": {"kind": "lognormal", "median": "1h", "sigma": 1.0, "max": "1d"},
            },
            {
                "name": "big",
                "share": 0.3,
                "priority": 1,
                "sizes": {"kind": "choice", "gpus": [8, 16]},
                "duration": {"kind": "lognormal", "median": "3h", "sigma": 0.8, "max": "2d"},
            },
        ],
        **extra,
    }


def test_scenario_without_energy_sections_is_unchanged() -> None:
    sc = scenario(**{"workload.training": [_research_source()]})
    sim = Simulation(prepare(sc))
    assert "energy" not in sim.features
    res = execute(sim)
    assert "carbon" not in res.summary and "grid_import_mw" not in res.timeseries
    with_grid = run(scenario(**{"workload.training": [_research_source()], "grid": {"carbon": {}}}))
    pd.testing.assert_frame_equal(res.jobs, with_grid.jobs)
    assert with_grid.summary["energy"]["it_mwh"] == pytest.approx(res.summary["energy"]["it_mwh"], rel=1e-12)


# -- PUE chain and renewables --------------------------------------------------------------------------------
def test_temperature_pue_integrates_exactly_and_plain_number_still_works(tmp_path: Path) -> None:
    times = pd.date_range("2020-06-01", periods=48, freq="h", tz="UTC")
    temps = 10.0 + 15.0 * np.sin(np.arange(48) / 24 * 2 * np.pi)
    pd.DataFrame({"time_utc": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "temperature_c": temps}).to_csv(
        tmp_path / "t.csv", index=False
    )
    pue = {"kind": "temperature", "base": 1.1, "per_degree_c": 0.02, "threshold_c": 15.0, "fixed_mw": 0.01}
    sc = scenario(**{"facility.pue": pue, "grid": {"temperature": {"path": str(tmp_path / "t.csv")}}})
    res = run(sc)
    it_w = 64 * PARKED_W + 8 * 1000.0
    a = 1.1 + 0.02 * np.maximum(temps - 15.0, 0.0)
    expected_mwh = float(np.sum(a * it_w + 0.01e6)) / 1e6  # 48 one-hour segments
    assert res.summary["energy"]["facility_mwh"] == pytest.approx(expected_mwh, rel=1e-12)
    assert res.timeseries["pue"].max() == pytest.approx(a.max() + 0.01e6 / it_w)
    assert run(scenario(**{"facility.pue": 1.3})).summary["energy"]["pue"] == 1.3


def test_temperature_pue_without_temperature_is_rejected() -> None:
    with pytest.raises(ScenarioError, match="temperature"):
        Simulation(prepare(scenario(**{"facility.pue": {"kind": "temperature"}})))


def test_solar_offsets_grid_import_and_self_consumption() -> None:
    sc = scenario(**{"grid": {"carbon": {}}, "grid.renewables": {"solar_mw": 0.05}})
    res = run(sc)
    g = res.summary["grid"]
    p_w = 1.2 * (64 * PARKED_W + 8 * 1000.0)
    solar = hourly("renewables", "FR", "solar_cf")[
        pd.Timestamp("2020-06-01", tz="UTC") : pd.Timestamp("2020-06-02T23:00", tz="UTC")
    ]
    used_mwh = float(np.minimum(0.05e6 * solar, p_w).sum()) / 1e6
    assert g["renewable_used_mwh"] == pytest.approx(used_mwh, rel=1e-12)
    assert g["grid_import_mwh"] == pytest.approx(g["facility_mwh"] - used_mwh, rel=1e-12)
    assert g["self_consumption_fraction"] < 1.0  # midday PV exceeds the idle facility's draw


# -- hard cap and power capping ------------------------------------------------------------------------------
def one_job(
    cap: Any, policies: list[dict[str, Any]] | None = None, work_s: float = 36000.0, tmp: Path | None = None
) -> Scenario:
    """One 8-GPU job (work 10 h at full speed) on one H200 node, under ``cap`` (MW or a cap config)."""
    import tempfile

    path = (tmp or Path(tempfile.mkdtemp())) / "one.csv"
    path.write_text(f"submit_s,gpus,duration_s\n0,8,{work_s}\n")
    return scenario(
        **{
            "facility.clusters": [
                {
                    "name": "h200",
                    "gpu": "H200-SXM",
                    "nodes": 1,
                    "gpus_per_node": 8,
                    "node_power": {"idle_w": 1000, "busy_w": 2500},
                }
            ],
            "workload.training": [{"kind": "trace", "name": "one", "path": str(path)}],
            "energy": {"power_cap_mw": cap, "policies": policies or [{"kind": "capping"}]},
        }
    )


def dvfs_speed(limit_w: float, load: float = 0.65) -> float:
    demand = H200_IDLE_W + H200_SLOPE_W * load
    return min(1.0, ((limit_w - H200_IDLE_W) / (demand - H200_IDLE_W)) ** (1 / ALPHA))


def test_power_capped_job_finishes_when_the_dvfs_model_says() -> None:
    limit_w = 500.0  # the cap leaves 500 W per GPU: 1.2 x (8 x 500 + 2500 node) = 7.8 kW
    res = run(one_job(1.2 * (8 * limit_w + 2500.0) / 1e6))
    end = float(res.jobs["end_s"].iloc[0])
    expected = 36000.0 / dvfs_speed(limit_w)
    assert expected > 36000.0 * 1.15  # throttled: ~0.85 of full speed
    assert end == pytest.approx(expected, rel=1e-6)
    assert res.summary["power_cap"]["hard_cap_kept"]
    slowed_gpu_h = 8 * (1 - dvfs_speed(limit_w)) * expected / 3600
    assert res.summary["power_cap"]["work_slowed_gpu_h"] == pytest.approx(slowed_gpu_h, rel=1e-6)


def test_cap_drop_moves_the_end_event() -> None:
    """Full speed until the daily window starts at 02:00, then capped: end = 2 h + (W - 2 h) / s."""
    limit_w = 450.0
    low = 1.2 * (8 * limit_w + 2500.0) / 1e6
    cap = {"kind": "daily", "base_mw": 1.0, "windows": [{"from_h": 2, "to_h": 24, "mw": low}]}
    res = run(one_job(cap))
    expected = 7200.0 + (36000.0 - 7200.0) / dvfs_speed(limit_w)
    assert float(res.jobs["end_s"].iloc[0]) == pytest.approx(expected, rel=1e-6)


def test_cap_below_idle_power_is_rejected() -> None:
    with pytest.raises(ScenarioError, match="below the facility's idle power"):
        Simulation(prepare(scenario(**{"energy": {"power_cap_mw": 0.001, "policies": [{"kind": "admission"}]}})))


def test_policy_combinations_are_validated() -> None:
    with pytest.raises(ScenarioError, match="preemption needs admission"):
        scenario(**{"energy": {"power_cap_mw": 1, "policies": [{"kind": "preemption"}]}})
    with pytest.raises(ScenarioError, match="needs at least one"):
        scenario(**{"energy": {"power_cap_mw": 1, "policies": []}})
    with pytest.raises(ScenarioError, match="limit_fraction below 1 needs capping"):
        scenario(**{"energy": {"power_cap_mw": 1, "policies": [{"kind": "admission", "limit_fraction": 0.5}]}})


def two_cluster_facility(nodes: int) -> list[dict[str, Any]]:
    return [
        {"name": "h200", "gpu": "H200-SXM", "nodes": nodes, "gpus_per_node": 8},
        {
            "name": "b200",
            "gpu": "B200",
            "nodes": max(nodes // 2, 1),
            "gpus_per_node": 8,
            "node_power": {"idle_w": 1500, "busy_w": 3500},
        },
    ]


POLICY_SETS = [
    [{"kind": "admission"}],
    [{"kind": "admission"}, {"kind": "preemption"}],
    [{"kind": "admission"}, {"kind": "capping"}, {"kind": "preemption"}],
    [
        {"kind": "admission", "limit_fraction": 0.6},
        {"kind": "capping", "min_limit_fraction": 0.4, "order": "listed", "clusters": ["b200"]},
        {"kind": "preemption"},
    ],
]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    nodes=st.integers(4, 8),
    rate=st.floats(5, 60),
    cap_fraction=st.floats(0.35, 1.0),
    low_fraction=st.floats(0.2, 1.0),
    daily=st.booleans(),
    solar=st.sampled_from([0.0, 0.02]),
    policies=st.integers(0, len(POLICY_SETS) - 1),
)
def test_facility_never_draws_above_a_hard_cap(
    seed: int,
    nodes: int,
    rate: float,
    cap_fraction: float,
    low_fraction: float,
    daily: bool,
    solar: float,
    policies: int,
) -> None:
    base = scenario(**{"facility.clusters": two_cluster_facility(nodes)})
    sim0 = Simulation(prepare(base))
    idle_w = 1.2 * sum(
        st_.total_gpus * (sim0.facility.unallocated_w[c] + sim0.facility.node_idle_w_per_gpu[c])
        for c, st_ in enumerate(sim0.facility.clusters)
    )
    f0 = sim0.facility
    full_w = 1.2 * sum(
        st_.total_gpus * (m.limit_w + f0.node_busy_w_per_gpu[c])
        for c, (st_, m) in enumerate(zip(f0.clusters, f0.power_models, strict=True))
    )
    high = idle_w + cap_fraction * (full_w - idle_w)
    low = idle_w + low_fraction * (high - idle_w)
    chosen = POLICY_SETS[policies]
    if policies == 0:  # admission alone keeps only a constant cap with constant renewables
        daily, solar = False, 0.0
    cap: Any = high / 1e6
    if daily:
        cap = {
            "kind": "daily",
            "base_mw": high / 1e6,
            "windows": [{"from_h": 7, "to_h": 9, "mw": low / 1e6}, {"from_h": 17, "to_h": 21, "mw": low / 1e6}],
        }
    sc = scenario(
        **{
            "seed": seed,
            "horizon": "1d",
            "facility.clusters": two_cluster_facility(nodes),
            "workload.training": [_research_source(rate)],
            "grid": {"renewables": {"solar_mw": solar}} if solar else None,
            "energy": {"power_cap_mw": cap, "policies": chosen},
        }
    )
    sim = Simulation(prepare(sc))
    res = execute(sim)
    assert sim.features["energy"] is not None
    # the largest excess of grid import over the cap on any segment of positive length
    assert sim.features["energy"].acc.max_hard_excess_w <= 1e-6
    assert res.summary["power_cap"]["hard_cap_kept"]
    assert res.summary["power_cap"]["energy_over_hard_cap_mwh"] == 0.0
    assert res.summary["jobs"]["started"] > 0
    assert (
        res.summary["jobs"]["completed"] + res.summary["jobs"]["running_at_end"] + res.summary["jobs"]["queued_at_end"]
        == res.summary["jobs"]["submitted"]
    )


# -- budgets -------------------------------------------------------------------------------------------------
POLICIES_ALL = [{"kind": "admission"}, {"kind": "capping"}, {"kind": "preemption"}]


def busy_facility(**over: Any) -> Scenario:
    doc: dict[str, Any] = {
        "horizon": "3d",
        "facility.clusters": two_cluster_facility(6),
        "workload.training": [_research_source(60)],
        "grid": {"carbon": {}, "price": {}},
    }
    doc.update(over)
    return scenario(**doc)


def unconstrained_daily_mwh() -> float:
    res = run(busy_facility())
    return float(res.summary["grid"]["grid_import_mwh"]) / 3


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fraction=st.floats(0.5, 0.95),
    kind=st.sampled_from(["energy", "carbon", "cost"]),
    pacing=st.sampled_from(
        [{"kind": "even"}, {"kind": "weighted", "by": "price", "strength": 1.5}, {"kind": "weighted", "by": "carbon"}]
    ),
    per=st.sampled_from(["day", "horizon"]),
)
def test_hard_budgets_are_never_exceeded(fraction: float, kind: str, pacing: dict[str, Any], per: str) -> None:
    free = run(busy_facility())
    days = 3 if per == "day" else 1
    total = {
        "energy": free.summary["grid"]["grid_import_mwh"],
        "carbon": free.summary["carbon"]["total_t"],
        "cost": free.summary["cost"]["total_eur"],
    }[kind]
    field = {"energy": "mwh", "carbon": "t_co2", "cost": "eur"}[kind]
    budget = {"kind": kind, field: fraction * total / days, "per": per, "pacing": pacing}
    sim = Simulation(prepare(busy_facility(energy={"budgets": [budget], "policies": POLICIES_ALL})))
    res = execute(sim)
    b = res.summary["budgets"][0]
    assert b["kept"] and b["max_used_fraction"] <= 1.0 + 1e-9
    assert len(b["periods"]) == days
    # reported use equals the integral of the metered rate, period by period (hourly rows)
    ts = res.timeseries
    hours = (ts["t_end_s"] - ts["t_start_s"]) / 3600
    per_row = {"energy": ts["grid_import_mw"] * hours, "carbon": ts["carbon_t"], "cost": ts["cost_eur"]}[kind]
    day = (ts["t_start_s"] // 86400).astype(int) if per == "day" else 0 * ts["t_start_s"]
    used = per_row.groupby(day).sum().to_numpy()
    unit = {"energy": "used_mwh", "carbon": "used_t", "cost": "used_eur"}[kind]
    assert [p[unit] for p in b["periods"]] == pytest.approx(list(used), rel=1e-9)
    assert sum(used) < total  # the budget bound


def test_energy_budget_equals_integral_of_power() -> None:
    sim = Simulation(
        prepare(
            busy_facility(energy={"budgets": [{"kind": "energy", "mwh": 2.0, "per": "day"}], "policies": POLICIES_ALL})
        )
    )
    res = execute(sim)
    ts = res.timeseries
    hours = (ts["t_end_s"] - ts["t_start_s"]) / 3600
    by_day = (ts["grid_import_mw"] * hours).groupby(ts["t_start_s"] // 86400)
    periods = res.summary["budgets"][0]["periods"]
    assert [p["used_mwh"] for p in periods] == pytest.approx(list(by_day.sum()), rel=1e-12)
    assert all(p["used_mwh"] <= 2.0 * (1 + 1e-12) for p in periods)
    total = sum(p["used_mwh"] for p in periods)
    assert res.summary["grid"]["grid_import_mwh"] == pytest.approx(total, rel=1e-12)
    assert res.summary["power_cap"]["power_blocked_gpu_h"] > 0  # the budget bit


def test_budget_below_idle_energy_is_rejected() -> None:
    with pytest.raises(ScenarioError, match="less than the facility uses idle"):
        Simulation(
            prepare(
                busy_facility(
                    energy={"budgets": [{"kind": "energy", "mwh": 0.1, "per": "day"}], "policies": POLICIES_ALL}
                )
            )
        )


# -- carbon- and price-aware deferral -----------------------------------------------------------------------
def trace_jobs(tmp: Path, rows: list[tuple[float, int, float, int]]) -> dict[str, Any]:
    path = tmp / "jobs.csv"
    body = "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows)
    path.write_text("submit_s,gpus,duration_s,priority\n" + body)
    return {"kind": "trace", "name": "flex", "path": str(path), "align": "absolute"}


def test_threshold_deferral_starts_at_the_first_clean_hour(tmp_path: Path) -> None:
    ci = hourly("carbon", "DE", "carbon_g_per_kwh")[pd.Timestamp("2020-06-01", tz="UTC") :].to_numpy()[:48]
    threshold = float(np.percentile(ci[:24], 25))
    rows = [(h * 3600.0 + 600.0, 8, 3600.0, 0) for h in range(0, 24, 3)] + [(1800.0, 8, 3600.0, 1)]
    sc = scenario(
        **{
            "facility.country": "DE",
            "grid": {"carbon": {}},
            "workload.training": [trace_jobs(tmp_path, rows)],
            "energy": {
                "policies": [{"kind": "deferral", "signal": "carbon", "threshold": threshold, "max_delay": "12h"}]
            },
        }
    )
    res = run(sc)
    jobs = res.jobs.sort_values("submit_s")
    for submit, start, prio in zip(jobs.submit_s, jobs.start_s, jobs.priority, strict=True):
        if prio > 0:
            assert start == submit  # not flexible
            continue
        h = int(submit // 3600)
        clean = [k for k in range(h, h + 13) if ci[k] <= threshold]
        expected = submit + 12 * 3600.0  # never clean: released at the longest delay
        if clean:
            expected = submit if clean[0] == h else clean[0] * 3600.0
        assert start == pytest.approx(expected)
    d = res.summary["deferral"]
    assert d["jobs_deferred"] >= 1 and d["deadline_misses"] == 0 and d["flexible_jobs"] == 8


def test_window_deferral_picks_the_cleanest_run(tmp_path: Path) -> None:
    ci = hourly("carbon", "DE", "carbon_g_per_kwh")[pd.Timestamp("2020-06-01", tz="UTC") :].to_numpy()[:48]
    sc = scenario(
        **{
            "facility.country": "DE",
            "grid": {"carbon": {}},
            "workload.training": [trace_jobs(tmp_path, [(0.0, 8, 4 * 3600.0, 0)])],
            "energy": {"policies": [{"kind": "deferral", "rule": "window", "max_delay": "18h"}]},
        }
    )
    res = run(sc)
    means = [ci[h : h + 4].mean() for h in range(0, 19)]
    assert float(res.jobs.start_s.iloc[0]) == 3600.0 * int(np.argmin(means))
    carbon_run = res.summary["carbon"]["by_class_t"]["training"]
    free = run(
        scenario(
            **{
                "facility.country": "DE",
                "grid": {"carbon": {}},
                "workload.training": [trace_jobs(tmp_path, [(0.0, 8, 4 * 3600.0, 0)])],
            }
        )
    )
    assert carbon_run < free.summary["carbon"]["by_class_t"]["training"]


# -- scenario files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["base", "base-de", "power-capped", "power-capped-de", "carbon-aware"])
def test_energy_scenarios_run(name: str) -> None:
    from gigafactory_sim.config.loader import load_scenario

    sc = load_scenario(SCENARIOS / f"{name}.yaml", ["horizon=12h"])
    res = run(sc)
    s = res.summary
    assert s["carbon"]["total_t"] > 0 and s["cost"]["total_eur"] != 0
    assert s["grid"]["renewable_used_mwh"] <= s["grid"]["renewable_available_mwh"] * (1 + 1e-12)
    if "power_cap" in s and s["power_cap"]["hard_cap_kept"] is not None:
        assert s["power_cap"]["hard_cap_kept"]
    for b in s.get("budgets", []):
        assert b["kept"]


def test_energy_plots_are_png_or_none() -> None:
    from gigafactory_sim.report.plots_energy import ENERGY_PLOTS

    sc = busy_facility(
        horizon="1d",
        energy={
            "power_cap_mw": {"kind": "daily", "base_mw": 0.2, "windows": [{"from_h": 10, "to_h": 14, "mw": 0.09}]},
            "budgets": [{"kind": "energy", "mwh": 2.5, "per": "day"}],
            "policies": POLICIES_ALL,
        },
    )
    res = run(sc)
    for plot in ENERGY_PLOTS.values():
        png = plot(res.summary, res.timeseries, res.jobs)
        assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    plain = run(scenario())
    assert all(plot(plain.summary, plain.timeseries, plain.jobs) is None for plot in ENERGY_PLOTS.values())


def test_preemption_suspends_the_lowest_priority_and_resumes_it_with_its_progress(tmp_path: Path) -> None:
    """Two 8-GPU jobs of 10 h; from 02:00 to 04:00 the cap fits only one: the priority-0 one waits 2 h."""
    rows = [(0.0, 8, 36000.0, 1), (0.0, 8, 36000.0, 0)]
    cap = {"kind": "daily", "base_mw": 0.02, "windows": [{"from_h": 2, "to_h": 4, "mw": 0.012}]}
    sc = scenario(
        **{
            "facility.clusters": [
                {
                    "name": "h200",
                    "gpu": "H200-SXM",
                    "nodes": 2,
                    "gpus_per_node": 8,
                    "node_power": {"idle_w": 1000, "busy_w": 2500},
                }
            ],
            "workload.training": [trace_jobs(tmp_path, rows)],
            "energy": {"power_cap_mw": cap, "policies": [{"kind": "admission"}, {"kind": "preemption"}]},
        }
    )
    res = run(sc)
    ends = dict(zip(res.jobs.priority, res.jobs.end_s, strict=True))
    assert ends[1] == pytest.approx(36000.0)
    assert ends[0] == pytest.approx(36000.0 + 7200.0)  # suspended at 02:00, resumed at 04:00, no work lost
    pc = res.summary["power_cap"]
    assert pc["jobs_suspended"] == 1 and pc["work_suspended_gpu_h"] == pytest.approx(8 * 8.0)
    assert pc["hard_cap_kept"]


def test_cap_shapes_daily_windows_and_csv_series(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from gigafactory_sim.energy.config import DailyCap, cap_signal

    start = datetime(2020, 6, 5, tzinfo=UTC)  # a Friday
    windows = [{"from_h": 22, "to_h": 6, "mw": 7}, {"from_h": 18, "to_h": 21, "mw": 8}]
    daily = DailyCap.model_validate({"base_mw": 10, "utc_offset_h": 2, "weekdays_only": True, "windows": windows})
    sig = cap_signal(daily, start, 3 * 86400.0, tmp_path)
    local_h = 2  # UTC midnight is 02:00 local: inside the night window
    assert sig.at(0.0) == 7e6 and sig.at((6 - local_h) * 3600.0) == 10e6
    assert sig.at((18 - local_h) * 3600.0) == 8e6 and sig.at((21 - local_h) * 3600.0) == 10e6
    assert sig.at(86400.0 + (19 - local_h) * 3600.0) == 10e6  # Saturday: no windows
    times = pd.date_range("2020-06-01", periods=48, freq="h", tz="UTC")
    mw = np.where(times.hour.isin([17, 18, 19]), 0.05, 0.08)  # the facility peaks near 0.1 MW
    pd.DataFrame({"time_utc": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "power_cap_mw": mw}).to_csv(
        tmp_path / "cap.csv", index=False
    )
    res = run(
        busy_facility(
            horizon="2d",
            grid=None,
            energy={"power_cap_mw": {"kind": "series", "path": str(tmp_path / "cap.csv")}, "policies": POLICIES_ALL},
        )
    )
    assert res.timeseries["hard_cap_mw"].to_numpy() == pytest.approx(mw)
    assert res.summary["power_cap"]["hard_cap_kept"]
