"""Sweeps: statistics against theory, the grid, seeds, executors (local processes, Dask), resuming, the CLI."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import gigafactory_sim as g
from gigafactory_sim.analysis import (
    DaskExecutor,
    LocalExecutor,
    SweepMismatch,
    mean_ci,
    plan_sweep,
    replication_seed,
    run_sweep,
    student_t_quantile,
)
from gigafactory_sim.analysis.grid import grid_points, parse_axis, split_values
from gigafactory_sim.analysis.metrics import flatten_summary
from gigafactory_sim.cli import app
from gigafactory_sim.errors import ScenarioError

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
SHORT = ["horizon=2h", "report.plots=false"]
GRID = {"facility.clusters.0.nodes": [32, 64]}


@pytest.fixture(scope="module")
def in_memory() -> g.analysis.SweepResult:
    """The reference: 2 points x 2 replications, in this process, nothing written."""
    return g.sweep(SCENARIO, GRID, replications=2, overrides=SHORT)


# --- statistics -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "t975"), [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452), (1000, 1.9623)]
)
def test_t_quantile_matches_tables(df: int, t975: float) -> None:
    assert student_t_quantile(0.975, df) == pytest.approx(t975, abs=1e-4)
    assert student_t_quantile(0.025, df) == pytest.approx(-t975, abs=1e-4)


def test_t_quantile_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 3, 7, 30, 200):
        for p in (0.6, 0.9, 0.975, 0.995):
            assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)


def test_mean_ci_by_hand() -> None:
    n, mean, std, low, high = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (n, mean) == (5, 3.0)
    assert std == pytest.approx(math.sqrt(2.5))
    assert high - mean == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert mean - low == pytest.approx(high - mean)
    assert mean_ci([2.0, 2.0, 2.0])[3:] == (2.0, 2.0)
    single = mean_ci([4.0, float("nan")])
    assert single[:2] == (1, 4.0) and all(math.isnan(x) for x in single[2:])


def test_ci_covers_the_true_mean_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(2024)
    samples = rng.normal(10.0, 3.0, size=(4000, 4))
    covered = sum(low <= 10.0 <= high for _, _, _, low, high in map(mean_ci, samples))
    # binomial standard error at p = 0.95, n = 4000: 0.0034; allow 4 of them
    assert abs(covered / len(samples) - 0.95) < 0.014


# --- grid and seeds ---------------------------------------------------------------------------------------


def test_split_values_respects_brackets_and_quotes() -> None:
    assert split_values("1, 2,[3,4],{a: 1, b: 2},'x,y'") == ["1", "2", "[3,4]", "{a: 1, b: 2}", "'x,y'"]
    axis = parse_axis("scheduler.order=fifo,priority")
    assert axis.values == ("fifo", "priority") and axis.override(1) == "scheduler.order=priority"
    assert parse_axis("a.b=[1,2],3").values == ([1, 2], 3)
    with pytest.raises(ScenarioError):
        parse_axis("a.b")
    with pytest.raises(ScenarioError):
        parse_axis("a.b=1,,2")


def test_grid_points_are_the_product_first_axis_slowest() -> None:
    points = grid_points(
        [
            parse_axis("facility.clusters.0.nodes=8,16"),
            parse_axis("facility.pue=1.1"),
            parse_axis("scheduler.order=fifo,priority"),
        ]
    )
    assert [p.id for p in points] == [
        "p000-nodes=8-order=fifo",
        "p001-nodes=8-order=priority",
        "p002-nodes=16-order=fifo",
        "p003-nodes=16-order=priority",
    ]
    assert points[3].overrides == ("facility.clusters.0.nodes=16", "facility.pue=1.1", "scheduler.order=priority")
    assert points[3].params == {"facility.clusters.0.nodes": 16, "facility.pue": 1.1, "scheduler.order": "priority"}


def test_replication_seed_is_the_spawned_child() -> None:
    children = np.random.SeedSequence(7).spawn(4)
    assert [replication_seed(7, i) for i in range(4)] == [int(c.generate_state(1)[0]) for c in children]
    assert len({replication_seed(7, i) for i in range(100)}) == 100


def test_sweep_runs_the_grid_with_derived_seeds(in_memory: g.analysis.SweepResult) -> None:
    runs = in_memory.runs
    assert list(runs["point_id"]) == ["p000-nodes=32"] * 2 + ["p001-nodes=64"] * 2
    assert list(runs["replication"]) == [0, 1, 0, 1]
    assert list(runs["seed"]) == [replication_seed(1, 0), replication_seed(1, 1)] * 2  # quickstart: seed 1
    assert (runs["status"] == "completed").all()
    assert list(runs["gpus_total"]) == [256, 256, 512, 512]
    assert not any(c.startswith("performance.") for c in runs.columns)
    # a replication is exactly a plain run of the point with its seed
    single = g.run(
        g.load_scenario(SCENARIO, [*SHORT, "facility.clusters.0.nodes=64", f"seed={replication_seed(1, 1)}"])
    )
    expected = flatten_summary(json.loads(json.dumps(single.summary)))
    assert runs.iloc[3][list(expected)].to_dict() == expected
    # the aggregate is the t-interval of the replications
    agg = in_memory.aggregate.set_index(["point_id", "metric"])
    values = runs.loc[runs["point_id"] == "p001-nodes=64", "energy.it_mwh"].to_numpy()
    n, mean, std, low, high = mean_ci(values)
    assert tuple(agg.loc[("p001-nodes=64", "energy.it_mwh"), ["n", "mean", "std", "ci95_low", "ci95_high"]]) == (
        n,
        mean,
        std,
        low,
        high,
    )


def test_bad_values_are_all_reported_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        plan_sweep(SCENARIO, {"facility.clusters.0.nodes": [8, 0, "abc"], "facility.pue": [0.5]})
    messages = [str(p) for p in info.value.problems]
    assert len(messages) == 3
    assert any("facility.pue" in m and "(every point)" in m for m in messages)
    assert any("greater than 0" in m and "(point p001-nodes=0)" in m for m in messages)
    assert any("valid integer" in m and "(point p002-nodes=abc)" in m for m in messages)


# --- executors --------------------------------------------------------------------------------------------


def test_worker_processes_give_identical_results(in_memory: g.analysis.SweepResult) -> None:
    parallel = g.sweep(SCENARIO, GRID, replications=2, overrides=SHORT, workers=2)
    pd.testing.assert_frame_equal(parallel.runs, in_memory.runs, check_exact=True)
    pd.testing.assert_frame_equal(parallel.aggregate, in_memory.aggregate, check_exact=True)


def test_dask_cluster_gives_identical_results(in_memory: g.analysis.SweepResult, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        plan = plan_sweep(SCENARIO, GRID, replications=2, overrides=SHORT, compact=True)
        result = run_sweep(plan, tmp_path / "dask", DaskExecutor(cluster.scheduler_address))
    pd.testing.assert_frame_equal(result.aggregate, in_memory.aggregate, check_exact=True)
    stored = pd.read_csv(tmp_path / "dask" / "aggregate.csv")
    assert np.array_equal(stored["mean"].to_numpy(), in_memory.aggregate["mean"].to_numpy(), equal_nan=True)


# --- output folder and resuming ---------------------------------------------------------------------------


def test_interrupted_compact_sweep_resumes(in_memory: g.analysis.SweepResult, tmp_path: Path) -> None:
    plan = plan_sweep(SCENARIO, GRID, replications=2, overrides=SHORT, compact=True)
    out = tmp_path / "sweep"

    def interrupt_after_three(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, out, LocalExecutor(1), progress=interrupt_after_three)
    assert len(list(out.glob("points/*/rep-*/summary.json"))) == 3
    seen: list[tuple[int, int]] = []
    resumed = run_sweep(plan, out, LocalExecutor(1), progress=lambda d, t: seen.append((d, t)))
    assert resumed.skipped == 3
    assert seen == [(3, 4), (4, 4)]
    pd.testing.assert_frame_equal(resumed.aggregate, in_memory.aggregate, check_exact=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "aggregate.csv",
        "points",
        "runs.csv",
        "sweep.html",
        "sweep.json",
        "sweep.md",
        "utilisation.allocated_fraction_vs_facility.clusters.0.nodes.png",
    ]
    stored = json.loads((out / "sweep.json").read_text())
    assert stored["grid"] == {"facility.clusters.0.nodes": ["32", "64"]}
    assert stored["points"][1]["seeds"] == [replication_seed(1, 0), replication_seed(1, 1)]
    with pytest.raises(SweepMismatch):
        run_sweep(
            plan_sweep(
                SCENARIO, {"facility.clusters.0.nodes": [32, 48]}, replications=2, overrides=SHORT, compact=True
            ),
            out,
        )


def test_full_sweep_writes_run_dirs_and_retries_failed_runs(tmp_path: Path) -> None:
    plan = plan_sweep(SCENARIO, {"facility.pue": [1.3]}, replications=2, overrides=SHORT)
    out = tmp_path / "sweep"
    first = run_sweep(plan, out)
    rep0, rep1 = (out / "points" / "p000" / f"rep-{i}" for i in range(2))
    meta = json.loads((rep0 / "run.json").read_text())
    assert meta["status"] == "completed" and meta["version"] == g.__version__
    assert meta["seed"] == replication_seed(1, 0) and meta["sweep"]["replication"] == 0
    assert g.load_run(rep1).summary["seed"] == replication_seed(1, 1)
    (rep1 / "run.json").write_text(json.dumps({**meta, "status": "failed", "error": "killed"}))
    again = run_sweep(plan, out)
    assert again.skipped == 1
    assert json.loads((rep1 / "run.json").read_text())["status"] == "completed"
    pd.testing.assert_frame_equal(again.aggregate, first.aggregate, check_exact=True)


# --- CLI --------------------------------------------------------------------------------------------------


def test_cli_bad_set_values_exit_2_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    res = CliRunner().invoke(
        app,
        [
            "sweep",
            str(SCENARIO),
            "--set",
            "facility.clusters.0.nodes=16,0,abc",
            "--set",
            "horizon=2h",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 2
    assert "2 problem(s)" in res.output and "abc" in res.output
    assert not out.exists()


def test_cli_sweep_file(tmp_path: Path) -> None:
    sweep_file = tmp_path / "cap.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "scenario": os.path.relpath(SCENARIO, tmp_path),
                "overrides": SHORT,
                "grid": {"facility.clusters.0.nodes": [32, 64], "scheduler.order": ["fifo", "priority"]},
                "replications": 2,
                "compact": True,
                "metric": "wait_s.mean",
            }
        )
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["sweep", str(sweep_file), "--workers", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "wait_s.mean" in res.output and "sweep written to" in res.output
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 8 and set(runs["scheduler.order"]) == {"fifo", "priority"}
    agg = pd.read_csv(out / "aggregate.csv")
    assert list(agg.columns) == [
        "point_id",
        "facility.clusters.0.nodes",
        "scheduler.order",
        "metric",
        "n",
        "mean",
        "std",
        "ci95_low",
        "ci95_high",
    ]
    means = runs.groupby("point_id", sort=False)["energy.it_mwh"].mean()
    by_point = agg[agg["metric"] == "energy.it_mwh"].set_index("point_id")["mean"]
    assert np.allclose(by_point.loc[means.index].to_numpy(), means.to_numpy(), rtol=1e-12)
    html = (out / "sweep.html").read_text(encoding="utf-8")
    assert re.search(r'src="data:image/png;base64,', html) and "wait_s.mean by point" in html
    assert (out / "wait_s.mean_vs_facility.clusters.0.nodes.png").is_file()
    res = CliRunner().invoke(app, ["sweep", str(sweep_file), "--workers", "1", "--out", str(out), "-q"])
    assert res.exit_code == 0 and "8 run(s) already done, skipped" in res.output
