"""Comparing runs: flattened metrics, deltas, what is not comparable, the written files and the CLI."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import gigafactory_sim as g
from gigafactory_sim.analysis import compare, flatten_summary, scales_with, write_comparison
from gigafactory_sim.analysis.compare import class_panels
from gigafactory_sim.analysis.compare_output import NOT_COMPARABLE, comparison_rows
from gigafactory_sim.analysis.metrics import HORIZON, SIZE
from gigafactory_sim.analysis.pages import fmt, fmt_delta
from gigafactory_sim.analysis.plots import carbon_over_time, power_over_time
from gigafactory_sim.cli import app
from gigafactory_sim.report.writer import write_run
from gigafactory_sim.result import RunResult

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"


def quick(*overrides: str) -> RunResult:
    return g.run(g.load_scenario(SCENARIO, ["horizon=3h", *overrides]))


@pytest.fixture(scope="module")
def base() -> RunResult:
    return quick()


@pytest.fixture(scope="module")
def high_pue() -> RunResult:
    return quick("facility.pue=1.5")


@pytest.fixture(scope="module")
def other_shape() -> RunResult:
    """Twice the horizon on half the GPUs: totals and powers are not comparable with ``base``."""
    return quick("horizon=6h", "facility.clusters.0.nodes=32")


def row(table: pd.DataFrame, metric: str, run: str) -> pd.Series:
    match = table[(table["metric"] == metric) & (table["run"] == run)]
    assert len(match) == 1, (metric, run)
    return match.iloc[0]


# --- metrics ----------------------------------------------------------------------------------------------


def test_flatten_summary_uses_dotted_keys_and_skips_performance_and_strings() -> None:
    summary = {
        "scenario": "x",
        "seed": 3,
        "gpus_total": 8,
        "energy": {"it_mwh": 1.5, "pue": 1.2},
        "wait_s": {"p50": None},
        "performance": {"wall_s": 0.1},
        "flag": True,
    }
    flat = flatten_summary(summary)
    assert list(flat) == ["gpus_total", "energy.it_mwh", "energy.pue", "wait_s.p50"]
    assert flat["energy.it_mwh"] == 1.5
    assert math.isnan(flat["wait_s.p50"])


@pytest.mark.parametrize(
    ("metric", "scales"),
    [
        ("gpus_total", set()),
        ("horizon_s", set()),
        ("utilisation.allocated_fraction", set()),
        ("energy.pue", set()),
        ("wait_s.p99", set()),
        ("sources.research.wait_s.p95", set()),
        ("statistics.steady.sources.pretraining.wait_s.mean", set()),
        ("sources.research.queued_at_end", {HORIZON, SIZE}),
        ("clusters.h200.gpus", set()),
        ("carbon.intensity_g_per_kwh", set()),
        ("power.peak_facility_mw", {SIZE}),
        ("jobs.mean_queued", {SIZE}),
        ("power.peak_at_s", {HORIZON}),
        ("energy.it_mwh", {HORIZON, SIZE}),
        ("utilisation.busy_gpu_h", {HORIZON, SIZE}),
        ("jobs.completed", {HORIZON, SIZE}),
        ("cost.total_eur", {HORIZON, SIZE}),
        ("something.unknown", {HORIZON, SIZE}),
    ],
)
def test_scales_with(metric: str, scales: set[str]) -> None:
    assert scales_with(metric) == scales


# --- compare ----------------------------------------------------------------------------------------------


def test_identical_runs_have_zero_deltas(base: RunResult) -> None:
    comparison = compare([base, base])
    assert [r.label for r in comparison.runs] == ["quickstart", "quickstart (2)"]
    other = comparison.table[comparison.table["run"] == "quickstart (2)"]
    other = other[other["metric"] != "power.peak_at_s"]  # a moment: shown, never differenced
    assert other["comparable"].all()
    assert (other["delta"].fillna(0) == 0).all()
    assert comparison.notes == []


def test_deltas_follow_the_pue(base: RunResult, high_pue: RunResult) -> None:
    comparison = compare([base, high_pue], labels=["pue 1.2", "pue 1.5"])
    table = comparison.table
    assert row(table, "energy.it_mwh", "pue 1.5")["delta"] == 0.0
    facility = row(table, "energy.facility_mwh", "pue 1.5")
    assert facility["delta"] == pytest.approx(base.summary["energy"]["it_mwh"] * 0.3, rel=1e-12)
    assert facility["delta_pct"] == pytest.approx(25.0, rel=1e-12)
    assert row(table, "energy.pue", "pue 1.5")["value"] == 1.5
    wide = comparison.wide()
    assert list(wide.columns) == ["pue 1.2", "pue 1.5", "Δ pue 1.5", "Δ% pue 1.5"]
    assert wide.loc["energy.pue", "Δ pue 1.5"] == pytest.approx(0.3)
    assert "performance.wall_s" not in wide.index


def test_different_horizon_and_size_are_stated_not_divided(base: RunResult, other_shape: RunResult) -> None:
    comparison = compare([base, other_shape], labels=["base", "other"])
    table = comparison.table
    energy = row(table, "energy.it_mwh", "other")
    assert not energy["comparable"]
    assert math.isnan(energy["delta"]) and math.isnan(energy["delta_pct"])
    assert energy["note"] == "horizon and facility size differ"
    assert energy["value"] == other_shape.summary["energy"]["it_mwh"]  # the value itself is still shown
    assert row(table, "power.peak_it_mw", "other")["note"] == "facility size differ"
    fraction = row(table, "utilisation.allocated_fraction", "other")
    assert fraction["comparable"]
    assert fraction["delta"] == (
        other_shape.summary["utilisation"]["allocated_fraction"] - base.summary["utilisation"]["allocated_fraction"]
    )
    assert len(comparison.notes) == 2
    assert "horizon 6 h against 3 h" in comparison.notes[0]
    assert "256 GPUs against 512" in comparison.notes[1]
    rows = {r[0]: r for r in comparison_rows(comparison)}
    assert rows["energy.it_mwh"][3:] == [NOT_COMPARABLE, NOT_COMPARABLE]
    assert rows["utilisation.allocated_fraction"][3] != NOT_COMPARABLE


def test_sections_only_some_runs_have_are_marked_missing_and_plotted(base: RunResult) -> None:
    summary = {**base.summary, "carbon": {"total_t": 12.0, "intensity_g_per_kwh": 30.0}, "cost": {"energy_eur": 1000.0}}
    with_carbon = dataclasses.replace(base, summary=summary)
    comparison = compare([base, with_carbon], labels=["a", "b"])
    carbon = row(comparison.table, "carbon.total_t", "b")
    assert not carbon["comparable"]
    assert carbon["note"] == "missing in the baseline"
    panels = class_panels(comparison.runs)
    assert panels["carbon (t CO2)"] == {"total_t": {"b": 12.0}}  # totals only: the intensity is no bar
    assert panels["cost (EUR)"] == {"energy_eur": {"b": 1000.0}}
    energy = panels["energy (MWh)"]
    assert energy["training: research"]["a"] == pytest.approx(base.summary["energy"]["training_it_mwh"])
    assert energy["idle GPUs and nodes"]["a"] == base.summary["energy"]["idle_it_mwh"]


def test_write_comparison_files(base: RunResult, high_pue: RunResult, tmp_path: Path) -> None:
    comparison = compare([base, high_pue], labels=["low", "high"])
    out = write_comparison(comparison, tmp_path / "cmp")
    names = {p.name for p in out.iterdir()}
    assert {
        "comparison.md",
        "comparison.html",
        "comparison.csv",
        "power.png",
        "utilisation.png",
        "wait_cdf.png",
        "by_class.png",
    } <= names
    html = (out / "comparison.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "energy.facility_mwh" in html and "<link" not in html
    md = (out / "comparison.md").read_text(encoding="utf-8")
    assert "![power.png](power.png)" in md and "| energy.pue |" in md
    stored = pd.read_csv(out / "comparison.csv")
    pd.testing.assert_frame_equal(stored.drop(columns="note"), comparison.table.drop(columns="note"), check_dtype=False)
    with pytest.raises(FileExistsError):
        write_comparison(comparison, out)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


# --- CLI --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(base: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    no_plots = dataclasses.replace(
        base,
        scenario=base.scenario.model_copy(update={"report": base.scenario.report.model_copy(update={"plots": False})}),
    )
    return write_run(no_plots, tmp_path_factory.mktemp("runs") / "base-run", meta={"scenario": "quickstart"})


def test_cli_compare_run_dir_with_scenario_file(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(
        app,
        ["compare", str(run_dir), str(SCENARIO), "--set", "horizon=3h", "--set", "facility.pue=1.5", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert "baseline: base-run" in res.output
    assert "comparison written to" in res.output
    table = pd.read_csv(out / "comparison.csv")
    pue = table[(table["metric"] == "energy.pue") & (table["run"] == "quickstart")].iloc[0]
    assert pue["value"] == 1.5 and pue["delta"] == pytest.approx(0.3)


def test_cli_compare_bad_input_exits_2_and_writes_nothing(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["compare", str(run_dir), str(tmp_path / "missing.yaml"), "--out", str(out)])
    assert res.exit_code == 2
    assert "file not found" in res.output
    res = CliRunner().invoke(app, ["compare", str(run_dir), str(tmp_path), "--out", str(out)])
    assert res.exit_code == 2
    assert not out.exists()


def test_cli_report_rerenders_from_stored_results(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "report.html").unlink()
    res = CliRunner().invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "report.html").is_file()
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a complete run directory" in res.output


# --- what an analyst reads first ----------------------------------------------------------------------------


def test_the_figures_that_changed_most_come_first(base: RunResult, high_pue: RunResult) -> None:
    comparison = compare([base, high_pue], labels=["low", "high"])
    metrics = list(dict.fromkeys(comparison.table["metric"]))
    changes = comparison.table[comparison.table["run"] == "high"].set_index("metric")["delta_pct"].abs()
    changed = [m for m in metrics if changes.get(m, 0) > 0]
    assert metrics[: len(changed)] == changed  # every changed metric before every unchanged one
    assert [changes[m] for m in changed] == sorted((changes[m] for m in changed), reverse=True)
    assert changes[metrics[0]] == pytest.approx(25.0)  # facility energy and PUE: +25 %
    assert metrics.index("energy.facility_mwh") < metrics.index("energy.it_mwh")  # IT energy did not change
    rows = comparison_rows(comparison)
    assert [r[0] for r in rows[1:]] == metrics


def test_moments_are_shown_but_not_differenced(base: RunResult, high_pue: RunResult) -> None:
    comparison = compare([base, high_pue], labels=["low", "high"])
    peak_at = row(comparison.table, "power.peak_at_s", "high")
    assert not peak_at["comparable"] and math.isnan(peak_at["delta"])
    assert peak_at["note"] == "a moment in the run, not a quantity"
    rows = {r[0]: r for r in comparison_rows(comparison)}
    assert rows["power.peak_at_s"][3:] == ["–", "–"]


def test_one_number_format_for_values_and_deltas() -> None:
    assert [fmt(x) for x in (1234.6, 12345.6, 0.25, 0.000305, 1.5e-9, 0.0)] == [
        "1,235",
        "12,346",
        "0.25",
        "0.000305",
        "1.500e-09",
        "0",
    ]
    assert [fmt_delta(x) for x in (1234.6, -0.25, 0.0)] == ["+1,235", "-0.25", "0"]


def test_two_grids_plot_grid_draw_and_carbon_not_two_facility_lines(base: RunResult) -> None:
    ts = base.timeseries.assign(grid_import_mw=base.timeseries["facility_power_mw"] * 0.9, carbon_t=0.01)
    other = ts.assign(grid_import_mw=ts["grid_import_mw"] * 0.8, carbon_t=0.07)
    fig = power_over_time([("fr", ts), ("de", other)])
    ax = fig.axes[0]
    assert ax.get_ylabel() == "grid draw (MW)" and "same in every run" in ax.get_title()
    assert (
        power_over_time([("a", ts), ("b", ts.assign(facility_power_mw=ts["facility_power_mw"] * 2))])
        .axes[0]
        .get_ylabel()
        == "facility power (MW)"
    )
    carbon = carbon_over_time([("fr", ts), ("de", other)])
    assert carbon is not None
    lines = carbon.axes[0].get_lines()
    assert [ln.get_ydata()[-1] for ln in lines] == pytest.approx([0.01 * len(ts), 0.07 * len(ts)])
    assert carbon_over_time([("a", base.timeseries)]) is None


def test_compare_reports_progress_while_running_scenario_files(run_dir: Path) -> None:
    ticks: list[tuple[str, float, float]] = []
    compare([run_dir, SCENARIO], overrides=["horizon=3h"], progress=lambda p, now, h: ticks.append((p, now, h)))
    assert ticks and all(p == str(SCENARIO) and h == 3 * 3600.0 for p, _, h in ticks)
    assert ticks[-1][1] == pytest.approx(3 * 3600.0)
