"""Parameter sweeps: a grid of scenario overrides x replications, run on any executor, resumable.

:func:`~.plan.plan_sweep` validates every grid point before anything runs (all problems reported at
once); :func:`run_sweep` runs what is not done yet and returns the runs and their aggregate as DataFrames; with an
output folder it also writes (see :mod:`gigafactory_sim.analysis.sweep_output`)::

    sweep.json  runs.csv  aggregate.csv  sweep.md  sweep.html  <metric>_vs_<param>.png
    points/<point-id>/rep-<i>/        a run directory (or only summary.json in compact mode)

Results depend only on the plan: runs are ordered by point and replication whatever order they finish in, so
any number of workers, local or on Dask, gives the same tables. Seeds: :func:`~.grid.replication_seed`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from gigafactory_sim.analysis.executors import Executor, LocalExecutor
from gigafactory_sim.analysis.grid import DEFAULT_METRIC, axes_from_mapping, is_sweep_file, replication_seed
from gigafactory_sim.analysis.metrics import flatten_summary
from gigafactory_sim.analysis.plan import SweepPlan, plan_from_sweep_file, plan_sweep
from gigafactory_sim.analysis.stats import aggregate
from gigafactory_sim.analysis.worker import RunOutcome, RunTask, execute
from gigafactory_sim.config.scenario import Scenario

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SweepMismatch", "SweepPlan", "SweepResult", "plan_sweep", "run_sweep", "sweep"]

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(finished_runs, total_runs)``, including runs found done when resuming."""


class SweepMismatch(ValueError):
    """The output folder holds a different sweep (another scenario, grid or mode): it cannot be resumed."""


@dataclass
class SweepResult:
    """A finished sweep: ``runs`` (one row per run) and ``aggregate`` (one row per point and metric)."""

    plan: SweepPlan
    runs: pd.DataFrame
    aggregate: pd.DataFrame
    out_dir: Path | None = None
    skipped: int = 0
    failures: list[RunOutcome] = field(default_factory=list)

    def plot(self, metric: str | None = None, param: str | None = None) -> Figure:
        """``metric`` (default: the plan's) against ``param`` with its 95 % CI band; other varied axes give
        one line each."""
        from gigafactory_sim.analysis.plots import metric_vs_param

        x = param or self.plan.plot_param
        if x is None:
            raise ValueError("the sweep has no parameter to plot against")
        groups = [a.path for a in self.plan.axes if a.path != x and len(a.values) > 1]
        return metric_vs_param(self.aggregate, x, metric or self.plan.metric, groups)


def _done_summary(plan: SweepPlan, run_dir: Path) -> dict[str, Any] | None:
    """The stored summary of a finished run, or None (an unfinished or failed run's folder is removed)."""
    summary_file = run_dir / "summary.json"
    if plan.compact:
        done = summary_file.is_file()
    else:
        try:
            done = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("status") == "completed"
        except (OSError, ValueError):
            done = False
    if done:
        loaded: dict[str, Any] = json.loads(summary_file.read_text(encoding="utf-8"))
        return loaded
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return None


def _prepare(plan: SweepPlan, out_dir: Path) -> None:
    from gigafactory_sim.report.files import atomic_write
    from gigafactory_sim.report.writer import to_json

    stored = out_dir / "sweep.json"
    if stored.is_file():
        previous = json.loads(stored.read_text(encoding="utf-8"))
        mine = plan.identity()
        if {k: previous.get(k) for k in mine} != mine:
            raise SweepMismatch(
                f"{out_dir} holds a different sweep (scenario, overrides, grid or compact "
                f"mode differ); choose another --out"
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists, is not empty and holds no sweep.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(stored, to_json(plan.to_json()).encode("utf-8"))


LOCK = ".sweep.lock"


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.sweep.lock`` (this PID) while the sweep runs: a second sweep on the same folder is
    refused while the first lives, so a resumed sweep never races one still running. A lock whose PID is dead
    (a killed sweep; its workers die with it) is taken over."""
    from gigafactory_sim.report.writer import pid_alive

    lock = out_dir / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text(encoding="utf-8").strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and pid_alive(pid):
                raise FileExistsError(
                    f"{out_dir} is being written by another sweep (pid {pid}); wait for it or stop it first"
                ) from None
            with contextlib.suppress(OSError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
        break
    else:
        raise FileExistsError(f"{out_dir}: cannot take {LOCK}")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _runs_table(plan: SweepPlan, outcomes: Sequence[RunOutcome]) -> pd.DataFrame:
    points = {p.id: p for p in plan.points}
    rows = []
    for o in sorted(outcomes, key=lambda o: (o.point_index, o.replication)):
        params = {
            k: v if v is None or isinstance(v, str | int | float | bool) else json.dumps(v)
            for k, v in points[o.point_id].params.items()
        }
        rows.append(
            {
                "point_id": o.point_id,
                **params,
                "replication": o.replication,
                "seed": o.seed,
                "status": o.status,
                "error": o.error or "",
                **flatten_summary(o.summary or {}),
            }
        )
    return pd.DataFrame(rows)


def run_sweep(
    plan: SweepPlan,
    out_dir: Path | None = None,
    executor: Executor | None = None,
    progress: ProgressFn | None = None,
    meta: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run the runs of ``plan`` not already in ``out_dir`` (all of them without one) and tabulate."""
    from gigafactory_sim.runmeta import base_meta

    executor = executor or LocalExecutor(1)
    if meta is None:
        meta = base_meta(plan.name, plan.scenario_file, None, list(plan.overrides))
    if out_dir is not None:
        out_dir = Path(out_dir)
        _prepare(plan, out_dir)
        with _locked(out_dir):
            return _run(plan, out_dir, executor, progress, meta)
    return _run(plan, None, executor, progress, meta)


def _run(
    plan: SweepPlan, out_dir: Path | None, executor: Executor, progress: ProgressFn | None, meta: Mapping[str, Any]
) -> SweepResult:
    from gigafactory_sim.analysis.sweep_output import write_sweep_tables
    from gigafactory_sim.report.files import atomic_write
    from gigafactory_sim.report.writer import to_json

    outcomes: list[RunOutcome] = []
    tasks: list[RunTask] = []
    for point, scenario_seed in zip(plan.points, plan.point_seeds, strict=True):
        for rep in range(plan.replications):
            seed = replication_seed(scenario_seed, rep)
            run_dir = plan.run_dir(out_dir, point, rep) if out_dir is not None else None
            summary = _done_summary(plan, run_dir) if run_dir is not None else None
            if summary is not None:
                outcomes.append(RunOutcome(point.id, point.index, rep, seed, "completed", summary))
                continue
            where = {"name": plan.name, "point": point.id, "params": point.params, "replication": rep}
            run_meta = {**meta, "sweep": where}
            tasks.append(
                RunTask(
                    point.id,
                    point.index,
                    rep,
                    seed,
                    plan.scenario_text,
                    plan.scenario_file,
                    plan.base_dir,
                    (*plan.overrides, *point.overrides),
                    None if plan.compact or run_dir is None else str(run_dir),
                    run_meta,
                )
            )
    skipped = len(outcomes)
    if progress:
        progress(skipped, plan.n_runs)
    for outcome in executor.run(execute, tasks):
        if out_dir is not None and plan.compact and outcome.summary is not None:
            run_dir = out_dir / "points" / outcome.point_id / f"rep-{outcome.replication}"
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(run_dir / "summary.json", to_json(outcome.summary).encode("utf-8"))
        outcomes.append(outcome)
        if progress:
            progress(len(outcomes), plan.n_runs)
    runs = _runs_table(plan, outcomes)
    metrics = [
        c
        for c in runs.columns
        if c not in {"point_id", "replication", "seed", "status", "error", *(a.path for a in plan.axes)}
    ]
    completed = runs[runs["status"] == "completed"] if len(runs) else runs
    agg = aggregate(completed, ["point_id", *(a.path for a in plan.axes)], metrics)
    result = SweepResult(plan, runs, agg, out_dir, skipped, [o for o in outcomes if o.status == "failed"])
    if out_dir is not None:
        write_sweep_tables(result, out_dir)
    return result


def sweep(
    scenario: str | Path | Scenario,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    replications: int = 1,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    compact: bool = False,
    workers: int = 1,
    executor: Executor | None = None,
    metric: str = DEFAULT_METRIC,
    param: str | None = None,
    progress: ProgressFn | None = None,
) -> SweepResult:
    """Run ``scenario`` over ``grid`` (``{"dotted.path": [values]}``) x ``replications``; return the tables.

    ``scenario`` may also be a sweep file (then ``grid`` adds to its grid). Without ``out_dir`` nothing is
    written; with one, run directories (or summaries, ``compact``) and the tables are written there, and
    calling again with the same folder resumes. ``executor`` defaults to ``LocalExecutor(workers)``.
    """
    if not isinstance(scenario, Scenario) and is_sweep_file(Path(scenario)):
        plan = plan_from_sweep_file(
            Path(scenario),
            axes_from_mapping(grid or {}),
            replications=replications if replications != 1 else None,
            compact=compact or None,
            metric=metric if metric != DEFAULT_METRIC else None,
            param=param,
            overrides=overrides,
        )
    else:
        plan = plan_sweep(
            scenario,
            grid or {},
            replications=replications,
            overrides=overrides,
            compact=compact,
            metric=metric,
            param=param,
        )
    return run_sweep(plan, Path(out_dir) if out_dir is not None else None, executor or LocalExecutor(workers), progress)
