"""Capacity planning (issue 13): the planner against queueing theory (M/M/c, Erlang C) and against the replica
model (rate / capacity per replica, rounded up); resuming and executors give the same trials; bad plan files
report every problem with file, line and field, exit 2 and write nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gigafactory_sim.analysis.executors import LocalExecutor
from gigafactory_sim.api import run
from gigafactory_sim.cli import app
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.planning import capital_recovery_factor, prepare_plan, run_plan

ROOT = Path(__file__).resolve().parents[1]


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a = λ/μ`` (Erlang-B recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho + rho * b) if rho < 1 else 1.0


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- M/M/c: the fewest GPUs whose probability of waiting is below a bound ------------------------------------------
MMC_A = 4.0  # offered load: λ = 4 jobs/h, mean service 1 h
MMC_BOUND = 0.2  # Erlang C: 0.285 at c = 6, 0.135 at c = 7 -> the answer is 7, far from the bound either side

MMC_SCENARIO = f"""
seed: 5
horizon: 1200h
facility:
  pue: 1.0
  clusters:
    - {{name: q, gpu: H200-SXM, nodes: 4, gpus_per_node: 1}}
workload:
  training:
    - kind: synthetic
      name: mm
      arrivals: {{kind: poisson, rate_per_hour: {MMC_A}}}
      classes:
        - {{name: one, share: 1, sizes: {{kind: choice, gpus: [1]}}, duration: {{kind: exponential, mean: 1h}}}}
scheduler: {{kind: fifo}}
report: {{interval: 4h}}
"""


def test_mmc_planner_finds_the_erlang_c_answer(tmp_path: Path) -> None:
    write(tmp_path / "mmc.yaml", MMC_SCENARIO)
    plan_file = write(
        tmp_path / "plan.yaml",
        f"""
scenario: mmc.yaml
warmup: 40h
variables:
  facility.clusters.0.nodes: {{low: 4, high: 10, step: 1}}
constraints:
  - jobs.waited_fraction <= {MMC_BOUND}
objective: cost
search: {{sampler: grid, trials: 7, replications: 2, seed: 0}}
""",
    )
    result = run_plan(prepare_plan(plan_file), tmp_path / "out", best_run=False)
    expected = min(c for c in range(1, 30) if erlang_c(c, MMC_A) <= MMC_BOUND)
    assert expected == 7
    assert result.best is not None
    assert result.best.params["facility.clusters.0.nodes"] == expected
    measured = {r.params["facility.clusters.0.nodes"]: r.kpis["jobs.waited_fraction"] for r in result.records}
    for c, p_wait in measured.items():  # the estimate itself is close to Erlang C (the margin above is ~0.07)
        assert p_wait == pytest.approx(erlang_c(c, MMC_A), abs=0.04), (c, p_wait)
    assert len(result.records) == 7
    frame = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert set(frame["facility.clusters.0.nodes"]) == set(range(4, 11))
    assert (tmp_path / "out" / "best.yaml").is_file() and (tmp_path / "out" / "plan.html").is_file()


# --- inference: replicas = rate / capacity per replica, rounded up -------------------------------------------------
def inference_scenario(rate: float) -> str:
    return f"""
seed: 3
horizon: 2h
facility:
  pue: 1.0
  clusters:
    - {{name: g, gpu: H200-SXM, nodes: 20, gpus_per_node: 1}}
workload:
  inference:
    - name: svc
      model: {{name: llama-3-8b, params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}}
      gpus_per_replica: 1
      demand: {{kind: constant, rate_per_s: {rate!r}}}
      prompt_tokens: {{kind: lognormal, median: 500, sigma: 0.5, max: 4000}}
      output_tokens: {{kind: lognormal, median: 100, sigma: 0.5, max: 1000}}
      autoscaler: {{min_replicas: 1, max_replicas: 100, target_utilisation: 1.0, scale_up_delay: 1m}}
      control_interval: 1m
report: {{interval: 15m}}
"""


def test_inference_planner_sizes_replicas_to_rate_over_capacity(tmp_path: Path) -> None:
    probe = run(parse_scenario_text(inference_scenario(10.0), "probe.yaml"))
    capacity = probe.summary["inference"]["services"]["svc"]["capacity_per_replica_rps"]
    rate = 4.5 * capacity  # half-way between 4 and 5 replicas' worth
    write(tmp_path / "inf.yaml", inference_scenario(rate))
    plan_file = write(
        tmp_path / "plan.yaml",
        """
scenario: inf.yaml
variables:
  facility.clusters.0.nodes: {low: 1, high: 10, step: 1}
constraints:
  - inference.services.svc.requests.not_served_fraction <= 0.001
  - inference.services.svc.slo.met == true
search: {sampler: grid, trials: 10}
""",
    )
    result = run_plan(prepare_plan(plan_file), tmp_path / "out", best_run=False)
    assert result.best is not None
    assert result.best.params["facility.clusters.0.nodes"] == math.ceil(rate / capacity) == 5


# --- resume and executors ------------------------------------------------------------------------------------------
QUICK_PLAN = """
scenario: ../scenarios/quickstart.yaml
horizon: 12h
warmup: 3h
overrides: [grid.zone=FR, grid.loop_year=true]
variables:
  facility.clusters.0.nodes: {low: 32, high: 256, step: 8}
  grid.renewables.solar_mw: {low: 0.0, high: 2.0}
constraints:
  - wait_s.p95 <= 2h
objective: cost
search: {sampler: tpe, trials: 6, replications: 1, seed: 7, startup_trials: 3}
"""


def _table(out: Path) -> pd.DataFrame:
    frame = pd.read_csv(out / "trials.csv")
    return frame.drop(columns=[c for c in frame.columns if c == "error"])


@pytest.fixture
def quick_plan(tmp_path: Path) -> Path:
    plans = tmp_path / "plans"
    plans.mkdir()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "quickstart.yaml").write_text(
        (ROOT / "scenarios" / "quickstart.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return write(plans / "quick.yaml", QUICK_PLAN)


def test_resumed_plan_gives_the_same_trials(quick_plan: Path, tmp_path: Path) -> None:
    plan = prepare_plan(quick_plan)
    whole = run_plan(plan, tmp_path / "whole", best_run=False)
    run_plan(plan, tmp_path / "parts", trials=2, best_run=False)
    resumed = run_plan(plan, tmp_path / "parts", best_run=False)
    assert [r.number for r in resumed.records] == list(range(6))
    pd.testing.assert_frame_equal(_table(tmp_path / "whole"), _table(tmp_path / "parts"))
    assert whole.best is not None and resumed.best is not None
    assert whole.best.params == resumed.best.params


def test_executors_give_identical_trials(quick_plan: Path, tmp_path: Path) -> None:
    plan = prepare_plan(quick_plan)
    run_plan(plan, tmp_path / "inline", LocalExecutor(1), trials=4, batch=2, best_run=False)
    run_plan(plan, tmp_path / "procs", LocalExecutor(2), trials=4, batch=2, best_run=False)
    pd.testing.assert_frame_equal(_table(tmp_path / "inline"), _table(tmp_path / "procs"))


# --- bad plan files ------------------------------------------------------------------------------------------------
BAD_PLAN = """scenario: ../scenarios/quickstart.yaml
horizon: 6h
variables:
  facility.clusters.0.nodez: {low: 32, high: 64, step: 8}
  facility.clusters.0.gpus_per_node: {low: 8, high: 4, step: 1}
constraints:
  - wait_s.p95 <= 4h
  - wait_s.p97 <= 4h
objective: [cost, scenario]
"""


def test_bad_plan_file_reports_every_problem(quick_plan: Path) -> None:
    bad = write(quick_plan.parent / "bad.yaml", BAD_PLAN)
    with pytest.raises(ScenarioError) as info:
        prepare_plan(bad)
    # the range is checked first (a schema error stops before the scenario is read)
    fields = {(p.field, p.line) for p in info.value.problems}
    assert ("variables.facility.clusters.0.gpus_per_node", 5) in fields, fields
    assert all(p.file == str(bad) for p in info.value.problems)
    fixed = write(quick_plan.parent / "bad2.yaml", BAD_PLAN.replace("{low: 8, high: 4, step: 1}", "{low: 4, high: 8}"))
    with pytest.raises(ScenarioError) as info:
        prepare_plan(fixed)
    by_field = {p.field: p for p in info.value.problems}
    assert set(by_field) == {"variables.facility.clusters.0.nodez"}, by_field  # the dry run needs valid variables
    assert by_field["variables.facility.clusters.0.nodez"].line == 4
    assert "unknown field" in by_field["variables.facility.clusters.0.nodez"].message
    metrics = write(
        quick_plan.parent / "bad3.yaml",
        BAD_PLAN.replace("nodez", "nodes").replace("{low: 8, high: 4, step: 1}", "{low: 4, high: 8, step: 4}"),
    )
    with pytest.raises(ScenarioError) as info:
        prepare_plan(metrics)
    by_field = {p.field: p for p in info.value.problems}
    assert set(by_field) == {"constraints.1", "objective.1"}, by_field
    assert by_field["constraints.1"].line == 8 and "wait_s.p95" in by_field["constraints.1"].message
    assert by_field["objective.1"].line == 9


def test_cli_bad_plan_exits_2_and_writes_nothing(quick_plan: Path, tmp_path: Path) -> None:
    bad = write(quick_plan.parent / "bad.yaml", BAD_PLAN)
    out = tmp_path / "never"
    result = CliRunner().invoke(app, ["plan", str(bad), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert not out.exists()


def test_capital_recovery_factor() -> None:
    assert capital_recovery_factor(0.0, 5) == pytest.approx(0.2)
    # r = 7 %, n = 20: 0.07 * 1.07^20 / (1.07^20 - 1) = 0.09439
    assert capital_recovery_factor(0.07, 20) == pytest.approx(0.0943929, rel=1e-5)


def test_two_objectives_give_a_pareto_front(quick_plan: Path, tmp_path: Path) -> None:
    text = QUICK_PLAN.replace("objective: cost", "objective: [cost, carbon]").replace("sampler: tpe", "sampler: nsga2")
    plan = prepare_plan(write(quick_plan.parent / "pareto.yaml", text))
    result = run_plan(plan, tmp_path / "out", trials=6, best_run=False)
    front = pd.read_csv(tmp_path / "out" / "pareto.csv")
    feasible = [r for r in result.records if r.feasible and r.values]
    assert len(front) >= 1 and bool(front["feasible"].all())
    for _, row in front.iterrows():  # no feasible trial is better in both objectives
        assert not any(
            r.values[0] < row["cost"] and r.values[1] < row["carbon"] for r in feasible if r.values is not None
        )
    assert (tmp_path / "out" / "pareto.png").is_file()


def test_constraint_confidence_bound() -> None:
    from gigafactory_sim.planning.constraints import parse_constraint

    c = parse_constraint("wait_s.p95 <= 1h")
    assert c.limit == 3600.0 and c.metrics == ("wait_s.p95",)
    flats = [{"wait_s.p95": 3000.0}, {"wait_s.p95": 3400.0}, {"wait_s.p95": 3200.0}]
    on_mean = c.evaluate(flats)
    assert on_mean.ok and on_mean.held == pytest.approx(3200.0)
    bound = c.evaluate(flats, confidence=0.95)  # 3200 + t(0.95, 2) * 200 / sqrt(3) = 3200 + 2.92 * 115.5 = 3537
    assert bound.ok and bound.held == pytest.approx(3200.0 + 2.919986 * 200.0 / math.sqrt(3), rel=1e-5)
    assert not c.evaluate(flats, confidence=0.99).ok  # t(0.99, 2) = 6.96: the bound passes 1 h
    steady = [{"wait_s.p95": 9e9, "statistics.steady.wait_s.p95": 100.0}]
    assert c.evaluate(steady).ok  # the steady-state figure is read when there is one
    ratio = parse_constraint("jobs.queued_at_end / jobs.submitted <= 5%")
    assert ratio.evaluate([{"jobs.queued_at_end": 4.0, "jobs.submitted": 100.0}]).ok
    assert not ratio.evaluate([{"jobs.queued_at_end": 6.0, "jobs.submitted": 100.0}]).ok
    with pytest.raises(ValueError):
        parse_constraint("wait_s.p95 <= soon")


def test_trials_a_killed_plan_left_running_are_run_again(quick_plan: Path, tmp_path: Path) -> None:
    import optuna

    from gigafactory_sim.planning.study import study_path

    plan = prepare_plan(quick_plan)
    out = tmp_path / "out"
    run_plan(plan, out, trials=2, best_run=False)
    study = optuna.load_study(study_name=plan.name, storage=f"sqlite:///{study_path(out)}")
    stale = study.ask(
        {
            "facility.clusters.0.nodes": optuna.distributions.IntDistribution(32, 256, step=8),
            "grid.renewables.solar_mw": optuna.distributions.FloatDistribution(0.0, 2.0),
        }
    )
    result = run_plan(plan, out, trials=4, best_run=False)
    assert len(result.records) == 4 and stale.number not in [r.number for r in result.records]
    again = [r for r in result.records if r.number == stale.number + 1]
    assert again and again[0].params == stale.params  # asked again with the parameters it was given


def test_dask_executor_gives_the_same_trials(quick_plan: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    from gigafactory_sim.analysis.executors import DaskExecutor

    plan = prepare_plan(quick_plan)
    run_plan(plan, tmp_path / "inline", LocalExecutor(1), trials=2, batch=2, best_run=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as lc:
        run_plan(plan, tmp_path / "dask", DaskExecutor(lc.scheduler_address), trials=2, batch=2, best_run=False)
    pd.testing.assert_frame_equal(_table(tmp_path / "inline"), _table(tmp_path / "dask"))
