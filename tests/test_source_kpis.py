"""Per-workload KPIs: the summary's ``sources`` and the steady state's ``statistics.steady.sources`` add up to the
totals and reproduce each source's waits from the jobs table. (README, "What a run gives you".)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gigafactory_sim
from gigafactory_sim.planning.constraints import flat_metrics, parse_constraint
from gigafactory_sim.report.sections import build_sections
from gigafactory_sim.result import RunResult
from gigafactory_sim.workload.warm_start import WARM_START_SOURCE

BASE = Path(__file__).resolve().parents[1] / "scenarios" / "base.yaml"
COUNTS = ("submitted", "started", "completed", "running_at_end", "queued_at_end")
STEADY_COUNTS = ("submitted", "started", "completed")


@pytest.fixture(scope="module")
def warm() -> RunResult:
    """Base, started warm, 8 hours with the first 2 cut: both training sources and the warm-start jobs."""
    return gigafactory_sim.run(
        gigafactory_sim.load_scenario(BASE, ["horizon=8h", "initial_state=steady", "statistics.warmup=2h"])
    )


def test_source_counts_add_up_to_the_totals(warm: RunResult) -> None:
    sources = warm.summary["sources"]
    assert set(sources) == {"pretraining", "research", WARM_START_SOURCE}
    assert list(sources) == ["pretraining", "research", WARM_START_SOURCE]  # the scenario's order, then warm-start
    for key in COUNTS:
        assert sum(s[key] for s in sources.values()) == warm.summary["jobs"][key], key
    assert sum(s["work_gpu_h"] for s in sources.values()) == pytest.approx(warm.jobs["work_gpu_h"].sum(), rel=1e-12)
    assert sources[WARM_START_SOURCE]["submitted"] == warm.summary["statistics"]["warm_start_jobs"] > 0


def test_source_waits_are_the_percentiles_of_its_jobs(warm: RunResult) -> None:
    jobs = warm.jobs
    for name, figures in warm.summary["sources"].items():
        mine = jobs[(jobs["source"] == name) & jobs["start_s"].notna()]
        waits = mine["wait_s"].to_numpy()
        assert figures["started"] == len(waits)
        assert figures["wait_s"]["p95"] == float(np.percentile(waits, 95)), name
        assert figures["wait_s"]["p50"] == float(np.percentile(waits, 50)), name
        assert figures["wait_s"]["mean"] == pytest.approx(float(waits.mean()), rel=1e-12)
        assert figures["wait_s"]["max"] == float(waits.max())


def test_steady_source_figures_add_up_and_match_the_span(warm: RunResult) -> None:
    st = warm.summary["statistics"]
    steady = st["steady"]
    start, end = st["span_s"]
    assert start == 7200.0
    for key in STEADY_COUNTS:
        assert sum(s[key] for s in steady["sources"].values()) == steady["jobs"][key], key
    assert steady["sources"][WARM_START_SOURCE]["submitted"] == 0  # pre-filled at t = 0: not arrivals
    assert steady["sources"][WARM_START_SOURCE]["started"] == 0
    jobs = warm.jobs
    for name in ("pretraining", "research"):
        figures = steady["sources"][name]
        mine = jobs[jobs["source"] == name]
        in_span = mine[(mine["submit_s"] >= start) & (mine["submit_s"] < end)]
        assert figures["submitted"] == len(in_span) > 0
        waited = in_span[in_span["start_s"].notna()]
        waits = (waited["start_s"] - waited["submit_s"]).to_numpy()
        assert figures["wait_s"]["p95"] == float(np.percentile(waits, 95)), name
        assert figures["started"] == int(((mine["start_s"] >= start) & (mine["start_s"] <= end)).sum())
        done = mine[(mine["state"] == "completed") & (mine["end_s"] >= start) & (mine["end_s"] <= end)]
        assert figures["completed"] == len(done)
        not_started = in_span["start_s"].isna().sum()
        late = (waited["start_s"] - waited["submit_s"] > 1e-9).sum()
        assert figures["waited_fraction"] == pytest.approx((not_started + late) / len(in_span), rel=1e-12)


def test_a_plan_constraint_reads_the_steady_source_figure(warm: RunResult) -> None:
    flat = flat_metrics(warm.summary)
    steady = warm.summary["statistics"]["steady"]["sources"]["pretraining"]
    c = parse_constraint("sources.pretraining.started / sources.pretraining.submitted >= 0.5")
    assert c.value(flat) == steady["started"] / steady["submitted"]
    # a figure with no steady counterpart reads the whole run's
    q = parse_constraint("sources.pretraining.queued_at_end <= 1e9")
    assert q.value(flat) == warm.summary["sources"]["pretraining"]["queued_at_end"]


def test_report_shows_sources_once(warm: RunResult) -> None:
    sections = build_sections(warm.summary, warm.jobs)
    titles = [t.title for s in sections for t in s.tables]
    assert titles.count("Jobs by source and class") == 1
    assert titles.count("Steady state by source") == 1
    assert not any(s.id == "extra-sources" for s in sections)
    other = [t for s in sections for t in s.tables if t.title == "Other figures"]
    assert not any("sources" in str(row[0]).lower() for t in other for row in t.rows)


def test_empty_jobs_table_has_no_sources() -> None:
    from gigafactory_sim.sim.collect import source_figures

    empty = pd.DataFrame({c: [] for c in ("source", "start_s", "wait_s", "state", "work_gpu_h")})
    assert source_figures(empty) == {}
    assert source_figures(empty, ["a"])["a"]["submitted"] == 0


def test_a_source_without_jobs_is_there_with_zeros() -> None:
    """A plan's pilot run may be too short for a rare source: its figures are there, zero, so its constraint is
    known."""
    result = gigafactory_sim.run(gigafactory_sim.load_scenario(BASE, ["horizon=1h", "statistics.warmup=30m"]))
    for where in (result.summary["sources"], result.summary["statistics"]["steady"]["sources"]):
        assert set(where) >= {"pretraining", "research"}
    empty = result.summary["sources"]["pretraining"]
    if empty["submitted"] == 0:
        assert empty["started"] == empty["queued_at_end"] == 0 and empty["wait_s"]["p95"] is None
