"""A plan from file to outputs: check it, run the trials not yet in its study, write the tables, pages and the
best design's run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gigafactory_sim.analysis.executors import Executor, LocalExecutor
from gigafactory_sim.planning.check import Plan, prepare_plan
from gigafactory_sim.planning.output import write_best_run, write_plan
from gigafactory_sim.planning.study import PlanProgress, TrialRecord, run_trials

__all__ = ["PlanResult", "plan_capacity", "run_plan"]


@dataclass
class PlanResult:
    """A finished plan: every trial, the best feasible design (None if none) and where it was written."""

    plan: Plan
    records: list[TrialRecord]
    best: TrialRecord | None
    out_dir: Path


def run_plan(
    plan: Plan,
    out_dir: Path,
    executor: Executor | None = None,
    *,
    trials: int | None = None,
    batch: int | None = None,
    progress: PlanProgress | None = None,
    best_run: bool = True,
) -> PlanResult:
    """Run ``plan`` into ``out_dir`` (resuming its ``study.db``) and write its outputs. ``batch`` (trials asked
    at a time; default: the executor's workers, else 1) changes which trials are drawn, never their results."""
    executor = executor or LocalExecutor(1)
    size: int = batch or int(getattr(executor, "workers", 1) or 1)
    study, records = run_trials(plan, out_dir, executor, trials=trials, batch=size, progress=progress)
    best = write_plan(plan, study, records, out_dir)
    if best is not None and best_run:
        write_best_run(plan, best, out_dir)
    return PlanResult(plan, records, best, out_dir)


def plan_capacity(
    plan_file: str | Path, out_dir: str | Path, *, trials: int | None = None, workers: int = 1
) -> PlanResult:
    """Check the plan file and run it on ``workers`` local processes into ``out_dir``."""
    plan = prepare_plan(plan_file)
    return run_plan(plan, Path(out_dir), LocalExecutor(workers), trials=trials)
