"""The EU data-centre report (EED): exact identities, water against the weather, heat reuse, renewables and bad
input (README, "The EU data-centre report (EED)")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import parse_yaml
from typer.testing import CliRunner

from gigafactory_sim import load_scenario, run
from gigafactory_sim.cli import app
from gigafactory_sim.eed.cooling import Evaporative
from gigafactory_sim.eed.normals import hourly_temperature_c
from gigafactory_sim.eed.report import EED_CSV, EED_JSON, document_rows, eed_rows, run_rows, size_class
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.report.writer import write_run

ROOT = Path(__file__).resolve().parents[1]
NORMALS = "builtin:grid/temperature_normals_2020.csv.gz"


def site(extra: str, *, country: str = "FR", horizon: str = "7d", start: str = "2020-01-06T00:00:00Z") -> str:
    """A 32-GPU hall with a light training load, plus ``extra`` (top-level YAML)."""
    return f"""
name: eed-test
seed: 3
start: {start}
horizon: {horizon}
facility:
  name: hall
  country: {country}
  clusters: [{{name: c, gpu: H200-SXM, nodes: 4, gpus_per_node: 8, node_power: {{idle_w: 800, busy_w: 2000}}}}]
workload:
  training:
    - kind: synthetic
      name: t
      arrivals: {{kind: poisson, rate_per_hour: 2}}
      classes:
        - {{name: s, share: 1, sizes: {{kind: choice, gpus: [1, 4, 8]}},
           duration: {{kind: lognormal, median: 2h, sigma: 1.0, max: 1d}}}}
report: {{interval: 1h}}
{extra}
"""


def rows_of(text: str) -> tuple[Any, list[dict[str, Any]]]:
    result = run(parse_yaml(text))
    return result, run_rows(result.scenario, result.summary, result.timeseries)


@pytest.fixture(scope="module")
def shipped() -> Any:
    return run(load_scenario(ROOT / "scenarios" / "eed-site.yaml"))


def test_reported_energies_are_the_time_series_integrals(shipped: Any) -> None:
    ts, summary = shipped.timeseries, shipped.summary
    rows = eed_rows(summary["eed"])
    assert [r["reporting_year"] for r in rows] == [2024, 2025]  # the run crosses New Year
    dt_h = (ts["t_end_s"] - ts["t_start_s"]) / 3600.0
    total = {k: sum(r[k] for r in rows) for k in ("e_dc_mwh", "e_it_mwh", "w_in_m3", "e_reuse_mwh")}
    assert total["e_dc_mwh"] == pytest.approx(summary["energy"]["facility_mwh"], rel=1e-12)
    assert total["e_it_mwh"] == pytest.approx(summary["energy"]["it_mwh"], rel=1e-12)
    assert total["e_dc_mwh"] == pytest.approx(float((ts["facility_power_mw"] * dt_h).sum()), rel=1e-12)
    assert total["w_in_m3"] == pytest.approx(float(ts["water_m3"].sum()), rel=1e-12)
    assert total["e_reuse_mwh"] == pytest.approx(float((ts["heat_reused_mw"] * dt_h).sum()), rel=1e-12)
    # per year too: the report intervals (1 h) end at the year edge
    first = ts["t_end_s"] <= rows[0]["period_days"] * 86400.0
    assert rows[0]["e_dc_mwh"] == pytest.approx(float((ts["facility_power_mw"] * dt_h)[first].sum()), rel=1e-12)
    for r in rows:
        assert r["pue"] == r["e_dc_mwh"] / r["e_it_mwh"]
        assert r["wue_l_per_kwh"] == r["w_in_m3"] / r["e_it_mwh"]
        assert r["erf"] == r["e_reuse_mwh"] / r["e_dc_mwh"]
        assert r["ref_annual"] == r["e_res_mwh"] / r["e_dc_mwh"]
        assert r["ref_hourly"] == r["e_res_hourly_matched_mwh"] / r["e_dc_mwh"]
        assert r["e_res_mwh"] == pytest.approx(r["e_res_onsite_mwh"] + r["e_res_ppa_mwh"] + r["e_res_goo_mwh"])
        assert r["e_res_hourly_matched_mwh"] <= r["e_dc_mwh"] + 1e-9
        assert not r["full_year"]
        year_days = 366 if r["reporting_year"] == 2024 else 365
        assert r["annualised_e_dc_mwh"] == pytest.approx(r["e_dc_mwh"] * year_days / r["period_days"])
    assert rows[0]["period_days"] == 9.0 and rows[1]["period_days"] == 5.0
    assert rows[0]["size_class"] == size_class(rows[0]["installed_it_kw"]) == "large (2-10 MW)"


def test_run_directory_files_and_cli(shipped: Any, tmp_path: Path) -> None:
    out = write_run(shipped, tmp_path / "run", meta={}, report=False)
    doc = json.loads((out / EED_JSON).read_text())
    assert doc["reports"][0]["identity"]["site"] == "paris-sud-1"
    assert document_rows(doc) == json.loads(json.dumps(eed_rows(shipped.summary["eed"])))
    csv = pd.read_csv(out / EED_CSV)
    assert list(csv["reporting_year"]) == [2024, 2025]
    assert csv["e_dc_mwh"].sum() == pytest.approx(shipped.summary["energy"]["facility_mwh"], rel=1e-12)
    res = CliRunner().invoke(app, ["eed", str(out)])
    assert res.exit_code == 0, res.output
    assert "WUE" in res.output and "paris-sud-1 2025" in res.output
    assert CliRunner().invoke(app, ["eed", str(tmp_path)]).exit_code == 2


def test_closed_loop_site_uses_no_water() -> None:
    _, rows = rows_of(site("cooling: {kind: closed_loop_liquid}\ngrid: {temperature: {path: '" + NORMALS + "'}}"))
    assert rows[0]["w_in_m3"] == 0.0 and rows[0]["wue_l_per_kwh"] == 0.0
    assert rows[0]["cooling"] == "closed_loop_liquid"


@pytest.mark.parametrize("country", ["FR", "DE"])
def test_evaporative_annual_wue_in_published_range(country: str) -> None:
    """Published annual WUE of evaporative cooling towers: 0.4-1.0 L/kWh (closed-circuit towers) to 1.2-2.0
    (open towers), typical values after ISO/IEC 30134-9; industry average ~1.8 (Shehabi et al., LBNL 2016).
    The temperature year is synthetic, from 1991-2020 monthly normals with a diurnal cycle
    (:mod:`gigafactory_sim.eed.normals`): no hourly measured temperatures ship with the project."""
    extra = "cooling: {kind: evaporative}\ngrid: {temperature: {path: '" + NORMALS + "'}}"
    _, rows = rows_of(site(extra, country=country, horizon="366d", start="2020-01-01T00:00:00Z"))
    (row,) = rows
    assert row["full_year"]
    assert 0.4 <= row["wue_l_per_kwh"] <= 2.0
    # and it is the load-weighted mean of the cooling curve over the year's temperatures, not a constant
    curve = hourly_temperature_c(country, 2020).map(Evaporative().water_l_per_kwh)
    assert curve.min() < row["wue_l_per_kwh"] < curve.max()


def test_warmer_site_uses_more_water() -> None:
    extra = "cooling: {kind: evaporative}\ngrid: {temperature: {path: '" + NORMALS + "'}}"
    fr = rows_of(site(extra, country="FR", horizon="366d", start="2020-01-01T00:00:00Z"))[1][0]
    de = rows_of(site(extra, country="DE", horizon="366d", start="2020-01-01T00:00:00Z"))[1][0]
    assert fr["wue_l_per_kwh"] > de["wue_l_per_kwh"]


def test_cooling_implies_its_pue_unless_one_is_given(parse: Any) -> None:
    extra = "cooling: {kind: chilled_water, temperature_c: 30}"
    _, implied = rows_of(site(extra))
    assert implied[0]["pue"] > 1.4  # 1.25 + 0.015 x (30 - 12) = 1.52
    given = site(extra).replace("  name: hall\n", "  name: hall\n  pue: 1.3\n")
    _, fixed = rows_of(given)
    assert fixed[0]["pue"] == pytest.approx(1.3)


def test_erf_is_zero_without_heat_reuse_and_bounded_by_the_recoverable_share() -> None:
    _, none = rows_of(site("cooling: {kind: dry_adiabatic, temperature_c: 10}"))
    assert none[0]["erf"] == 0.0 and none[0]["e_reuse_mwh"] == 0.0
    reuse = "heat_reuse: {capacity_mw: 10, recoverable_share: 0.6, demand: {kind: constant, mw: 10}}"
    _, big = rows_of(site("cooling: {kind: closed_loop_liquid, temperature_c: 10}\n" + reuse))
    r = big[0]
    assert r["e_reuse_mwh"] == pytest.approx(0.6 * r["e_it_mwh"], rel=1e-12)  # demand and capacity never bind
    assert r["erf"] <= 0.6 * r["e_it_mwh"] / r["e_dc_mwh"] + 1e-12
    small = reuse.replace("mw: 10}", "mw: 0.001}")  # 1 kW demanded, below 0.6 x idle IT: the network binds
    _, capped = rows_of(site("cooling: {kind: closed_loop_liquid, temperature_c: 10}\n" + small))
    assert capped[0]["e_reuse_mwh"] == pytest.approx(0.001 * 7 * 24, rel=1e-12)


def test_seasonal_demand_follows_heating_degree_hours() -> None:
    grid = "grid: {temperature: {path: '" + NORMALS + "'}}"
    demand = "demand: {kind: seasonal, peak_mw: 0.05, hot_water_mw: 0}"
    winter = rows_of(site(f"{grid}\nheat_reuse: {{capacity_mw: 1, {demand}}}"))[1][0]
    summer = rows_of(site(f"{grid}\nheat_reuse: {{capacity_mw: 1, {demand}}}", start="2020-07-13T00:00:00Z"))[1][0]
    assert winter["e_reuse_mwh"] > 0 and summer["e_reuse_mwh"] == 0.0  # July in Paris: above 15.5 degC


def test_ref_with_a_baseload_ppa_is_one() -> None:
    ppa = "grid: {renewables: {ppa: [{name: flat, mw: 50, profile: baseload}]}}"
    _, rows = rows_of(site(ppa))
    assert rows[0]["ref_annual"] == pytest.approx(1.0, abs=1e-12)
    assert rows[0]["ref_hourly"] == pytest.approx(1.0, abs=1e-12)
    assert rows[0]["e_res_ppa_mwh"] == pytest.approx(rows[0]["e_dc_mwh"])


def test_run_without_eed_fields_reports_from_its_time_series() -> None:
    result, rows = rows_of(site(""))
    assert "eed" not in result.summary  # unchanged summary: golden outputs do not move
    assert rows[0]["w_in_m3"] is None and rows[0]["e_reuse_mwh"] == 0.0
    assert rows[0]["e_dc_mwh"] == pytest.approx(result.summary["energy"]["facility_mwh"], rel=1e-12)
    assert rows[0]["source"] == "time-series interval integrals"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("heat_reuse: {capacity_mw: -1, demand: {kind: constant, mw: 1}}", "heat_reuse.capacity_mw"),
        (
            "heat_reuse: {capacity_mw: 1, recoverable_share: 1.5, demand: {kind: constant, mw: 1}}",
            "heat_reuse.recoverable_share",
        ),
        ("grid: {renewables: {ppa: [{mw: -5, profile: wind}]}}", "grid.renewables.ppa.0.mw"),
        ("cooling: {kind: evaporative, latent_share_warm: 1.2}", "cooling.latent_share_warm"),
        ("eed: {guarantees_of_origin_mwh: -1}", "eed.guarantees_of_origin_mwh"),
    ],
)
def test_bad_values_name_field_and_line(extra: str, field: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_yaml(site(extra))
    (problem,) = exc.value.problems
    assert problem.field == field and problem.line is not None


def test_demand_series_with_a_gap_is_reported(tmp_path: Path) -> None:
    times = pd.date_range("2020-01-06", periods=24 * 8, freq="h", tz="UTC")
    frame = pd.DataFrame({"time_utc": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "zone": "FR", "heat_demand_mw": 1.0})
    frame.drop(index=30).to_csv(tmp_path / "demand.csv", index=False)
    text = site("heat_reuse: {capacity_mw: 1, demand: {kind: series, path: demand.csv}}")
    sc = parse_yaml(text, base_dir=tmp_path)
    with pytest.raises(ScenarioError) as exc:
        run(sc)
    problem = exc.value.problems[0]
    assert problem.field is not None and problem.field.startswith("heat_reuse.demand")
    assert problem.line is not None and "demand.csv" in problem.file
    frame.to_csv(tmp_path / "demand.csv", index=False)  # without the gap the same scenario runs
    assert run(parse_yaml(text, base_dir=tmp_path)).summary["eed"]["years"][0]["e_reuse_mwh"] > 0


def test_cli_exit_2_on_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(site("heat_reuse: {capacity_mw: 1, recoverable_share: 2, demand: {kind: constant, mw: 1}}"))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    assert "heat_reuse.recoverable_share" in res.output


def test_federation_writes_each_site_and_a_combined_table(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "eu-federation.yaml").read_text()
    anchor = "    sovereignty: {operator: eu_controlled, assurance: 4}   # e.g. SecNumCloud-qualified\n"
    assert anchor in text
    cooled = text.replace(
        anchor, anchor + "    cooling: {kind: evaporative, temperature_c: 8}\n    eed: {name: paris-1}\n", 1
    )
    path = tmp_path / "fed.yaml"
    path.write_text(cooled)
    result = run(load_scenario(path, ["horizon=1d"]))
    out = write_run(result, tmp_path / "run", meta={}, report=False)
    combined = pd.read_csv(out / EED_CSV)
    assert list(combined["site"]) == ["paris-1", "frankfurt", "helsinki", "copenhagen"]
    for name in ("paris", "frankfurt", "helsinki", "copenhagen"):
        own = pd.read_csv(out / "sites" / name / EED_CSV)
        row = combined[combined["site"] == own["site"][0]]
        assert float(row["e_dc_mwh"].iloc[0]) == float(own["e_dc_mwh"][0])
        assert float(own["e_dc_mwh"][0]) == pytest.approx(result.sites[name].summary["energy"]["facility_mwh"])
    assert combined["w_in_m3"].notna().tolist() == [True, False, False, False]  # only paris models its cooling
    assert "eed" in result.sites["paris"].summary and "eed" not in result.sites["frankfurt"].summary


def test_humidity_series_scales_the_water_curve() -> None:
    base = "cooling: {kind: evaporative, temperature_c: 15}\ngrid: {humidity: {constant: RH}}"
    plain = rows_of(site("cooling: {kind: evaporative, temperature_c: 15}"))[1][0]["wue_l_per_kwh"]
    dry = rows_of(site(base.replace("RH", "0.4")))[1][0]["wue_l_per_kwh"]
    humid = rows_of(site(base.replace("RH", "0.9")))[1][0]["wue_l_per_kwh"]
    assert dry == pytest.approx(plain * (1 + 0.5 * (0.75 - 0.4)), rel=1e-12)
    assert humid == pytest.approx(plain * (1 + 0.5 * (0.75 - 0.9)), rel=1e-12)
    with pytest.raises(ScenarioError, match="out of range"):
        parse_yaml(site(base.replace("RH", "75")))  # percent, not a fraction
