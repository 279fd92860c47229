"""Analysis across runs: compare runs against a baseline, sweep parameters with replications and confidence
intervals, on local processes or a Dask cluster. Everything returns pandas DataFrames; files are written only
where an output folder is given (:func:`write_comparison`, ``sweep(..., out_dir=...)``)."""

from gigafactory_sim.analysis.compare import ComparedRun, Comparison, compare
from gigafactory_sim.analysis.compare_output import write_comparison
from gigafactory_sim.analysis.executors import DaskExecutor, Executor, LocalExecutor
from gigafactory_sim.analysis.grid import Axis, GridPoint, replication_seed
from gigafactory_sim.analysis.metrics import flatten_summary, scales_with
from gigafactory_sim.analysis.plan import SweepPlan, plan_sweep
from gigafactory_sim.analysis.stats import aggregate, mean_ci, student_t_quantile
from gigafactory_sim.analysis.sweep import SweepMismatch, SweepResult, run_sweep, sweep

__all__ = [
    "Axis",
    "ComparedRun",
    "Comparison",
    "DaskExecutor",
    "Executor",
    "GridPoint",
    "LocalExecutor",
    "SweepMismatch",
    "SweepPlan",
    "SweepResult",
    "aggregate",
    "compare",
    "flatten_summary",
    "mean_ci",
    "plan_sweep",
    "replication_seed",
    "run_sweep",
    "scales_with",
    "student_t_quantile",
    "sweep",
    "write_comparison",
]
