"""Every scenario file shipped in scenarios/ validates and runs (on a short horizon)."""

from __future__ import annotations

from pathlib import Path

import pytest

import gigafactory_sim as g
from gigafactory_sim.federation.config import Federation

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))


def test_there_are_scenarios() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"base", "quickstart", "philly-replay", "benchmark-year"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_validates_and_runs_short(path: Path) -> None:
    full = g.load_scenario(path)
    assert full.horizon_s > 0
    scenario = g.load_scenario(path, overrides=["horizon=6h", "report.interval=1h"])
    result = g.run(scenario)
    s = result.summary
    assert s["horizon_s"] == 6 * 3600
    assert s["gpus_total"] == (full.gpus if isinstance(full, Federation) else full.facility.gpus)
    assert 0.0 <= s["utilisation"]["allocated_fraction"] <= 1.0
    assert s["energy"]["facility_mwh"] >= s["energy"]["it_mwh"] > 0
    jobs = s["jobs"]
    assert jobs["submitted"] == jobs["completed"] + jobs["running_at_end"] + jobs["queued_at_end"] + jobs.get(
        "failed", 0
    )
    assert len(result.timeseries) == 6
    if isinstance(full, Federation):
        assert s["residency"]["violations"] == 0
        assert len(result.jobs) == jobs["submitted"]


def test_base_is_a_gigafactory() -> None:
    base = g.load_scenario(SCENARIOS[0].parent / "base.yaml")
    assert 90_000 <= base.facility.gpus <= 110_000
    assert base.facility.country == "FR"
    assert base.horizon_s == 30 * 86400
    assert len(base.facility.clusters) in (2, 3)


def test_philly_replay_uses_every_real_job() -> None:
    scenario = g.load_scenario(SCENARIOS[0].parent / "philly-replay.yaml")
    from gigafactory_sim.random_streams import RandomStreams
    from gigafactory_sim.workload.build import build_jobs

    jobs = build_jobs(scenario, RandomStreams(scenario.seed))
    assert len(jobs) == 82_247
    assert int(jobs.gpus.max()) == 128
    assert scenario.facility.gpus == 2048


def test_workload_is_prefix_consistent_in_the_horizon() -> None:
    """A shorter horizon's jobs are exactly the first jobs of a longer one (same seed): changing the horizon
    never reshuffles the workload."""
    path = SCENARIOS[0].parent / "base.yaml"
    from gigafactory_sim.random_streams import RandomStreams
    from gigafactory_sim.workload.build import build_jobs

    short = build_jobs(g.load_scenario(path, ["horizon=1d"]), RandomStreams(42))
    long = build_jobs(g.load_scenario(path, ["horizon=3d"]), RandomStreams(42))
    n = len(short)
    assert 0 < n < len(long)
    for column in ("submit_s", "gpus", "work_s", "priority", "source_idx"):
        assert (getattr(short, column) == getattr(long, column)[:n]).all(), column


def test_jobs_table_names_each_jobs_class() -> None:
    result = g.run(g.load_scenario(SCENARIOS[0].parent / "base.yaml", ["horizon=6h"]))
    jobs = result.jobs
    research = jobs[jobs["source"] == "research"]
    assert set(research["job_class"]) <= {"small", "medium"}
    assert (research["job_class"] == "small").mean() > 0.6  # share 0.78 in the file
    assert set(jobs.loc[jobs["source"] == "pretraining", "job_class"]) <= {"large", "frontier"}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_resolved_scenario_loads_back_the_same(path: Path, tmp_path: Path) -> None:
    """``scenario.resolved.yaml`` (every default written out) is a valid scenario equal to the one it came from:
    rerunning it reproduces the run."""
    import yaml

    scenario = g.load_scenario(path)
    resolved = tmp_path / path.name
    resolved.write_text(yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    again = g.load_scenario(resolved)
    assert again.model_dump(mode="json") == scenario.model_dump(mode="json")
