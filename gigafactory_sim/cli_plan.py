"""The ``plan`` command: capacity planning with Optuna (README.md, "Capacity planning")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gigafactory_sim.cli_app import app, err_console, fail, out_console, progress_bar, report_problems
from gigafactory_sim.errors import ScenarioError


@app.command("plan")
def plan_command(
    plan_file: Annotated[Path, typer.Argument(help="Plan file: scenario, variables, constraints, objective, costs")],
    trials: Annotated[int | None, typer.Option(min=1, help="Trials in all (default: the plan's search.trials)")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Local processes (default 1); also the trials asked per batch, Dask too")
    ] = None,
    dask_scheduler: Annotated[
        str | None, typer.Option(help="Run on an existing Dask cluster, e.g. tcp://HOST:8786 (needs the dask extra)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default runs/plan-<name>); its study.db is resumed")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Capacity planning: search the plan's design space for the design that meets its constraints at the
    lowest annualised cost (Optuna; rerunning with the same --out resumes or extends the study)."""
    import optuna

    from gigafactory_sim.analysis import DaskExecutor, Executor, LocalExecutor
    from gigafactory_sim.planning import PlanMismatch, prepare_plan, run_plan

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        plan = prepare_plan(plan_file)
    except ScenarioError as exc:
        report_problems(exc)
        raise typer.Exit(2) from None
    out_dir = out if out is not None else Path("runs") / f"plan-{plan.name}"
    n_workers = workers or 1
    executor: Executor = DaskExecutor(dask_scheduler) if dask_scheduler else LocalExecutor(n_workers)
    err_console.print(
        f"plan {plan.name}: {len(plan.spec.file.variables)} variables, {len(plan.spec.constraints)} constraints, "
        f"{plan.spec.file.search.replications} replication(s) per trial on {executor!r}; output {out_dir}",
        highlight=False,
    )
    try:
        with progress_bar("{task.completed}/{task.total} trials  best {task.fields[best]}", quiet) as progress:
            task = progress.add_task(f"plan {plan.name}", total=trials or plan.spec.file.search.trials, best="–")

            def on_progress(done: int, total: int, best: float | None) -> None:
                shown = "–" if best is None else f"{best:,.0f}"
                progress.update(task, completed=done, total=total, best=shown)

            result = run_plan(plan, out_dir, executor, trials=trials, batch=n_workers, progress=on_progress)
    except PlanMismatch as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print(f"interrupted; rerun with --out {out_dir} to resume", highlight=False)
        raise typer.Exit(130) from None
    except Exception as exc:  # e.g. the Dask scheduler cannot be reached
        raise fail(f"{type(exc).__name__}: {exc}", 1) from None
    feasible = sum(r.feasible for r in result.records)
    out_console.print(f"{len(result.records)} trials, {feasible} feasible", highlight=False)
    if result.best is None:
        out_console.print("no feasible design found (see plan.md)", highlight=False)
    else:
        cost = result.best.cost.get("total_eur_per_year", float("nan"))
        out_console.print(
            f"best: trial {result.best.number}, {cost:,.0f} EUR/year: "
            + ", ".join(f"{p}={v}" for p, v in result.best.params.items()),
            highlight=False,
        )
    out_console.print(f"plan written to {out_dir}", highlight=False)
