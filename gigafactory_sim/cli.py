"""The ``gigafactory-sim`` command line. The only place (with the report writer) that touches files.

This module has the commands on scenarios (run, validate, clean, gpus, schema, compare, sweep);
:mod:`.cli_reports` those on finished runs (report, eed), :mod:`.cli_plan` capacity planning, :mod:`.cli_app` what
they share.

Exit codes: 0 success; 2 bad input (every problem listed, nothing written), including a run whose estimated cost
is beyond its limits and an unusable ``--out``; 1 unexpected error (``run.json`` kept with status ``failed``);
130/143 stopped by SIGINT/SIGTERM (``run.json`` status ``interrupted``, with the tables so far).
"""

from __future__ import annotations

import gc
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from gigafactory_sim.api import build, execute, prepare_any
from gigafactory_sim.cli_app import SetOption, app, err_console, fail, out_console, progress_bar, report_problems
from gigafactory_sim.cli_support import OutProblem, Stopper, check_out_dir, exit_code_for
from gigafactory_sim.cli_tables import kpi_table, rows_table
from gigafactory_sim.config.loader import load_scenario
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.preparation import Prepared
from gigafactory_sim.result import RunResult
from gigafactory_sim.runmeta import base_meta
from gigafactory_sim.sim.engine import Simulation

if TYPE_CHECKING:
    from gigafactory_sim.federation.config import Federation
    from gigafactory_sim.federation.prepare import PreparedFederation
    from gigafactory_sim.federation.runtime import FederationRun


def load_or_exit(path: Path, overrides: list[str]) -> Scenario | Federation:
    try:
        return load_scenario(path, overrides)
    except ScenarioError as exc:
        report_problems(exc)
        raise typer.Exit(2) from None


MaxMemory = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        help="Refuse runs estimated to need more memory, e.g. 16GB (default: the scenario's limits, else 8GiB)",
    ),
]
MaxEvents = Annotated[
    float | None,
    typer.Option(
        "--max-events",
        min=1,
        help="Refuse runs estimated to handle more events (default: the scenario's limits, else 5e8)",
    ),
]


def check_cost_or_exit(sc: Scenario | Federation, max_memory: str | None, max_events: float | None) -> None:
    """Refuse (exit 2, the estimate and how to raise the limit) a run beyond its limits."""
    from gigafactory_sim.estimate import Limits, check_limits

    try:
        limits = Limits.resolve(sc, max_memory, max_events)
    except ValueError as exc:
        raise fail(f"--max-memory: {exc}") from None
    try:
        check_limits(sc, limits)
    except ScenarioError as exc:
        report_problems(exc)
        raise typer.Exit(2) from None


def prepare_or_exit(sc: Scenario | Federation) -> Prepared | PreparedFederation:
    """Prepare the run (traces and series are read, every build-time check made); input problems exit 2 with
    their lines."""
    from gigafactory_sim.config.loader import locate_problems

    try:
        return prepare_any(sc)
    except ScenarioError as exc:
        report_problems(locate_problems(exc, sc))
        raise typer.Exit(2) from None


def _partial(result: RunResult, stopper: Stopper, horizon_s: float) -> RunResult:
    """Mark the tables of a stopped run as covering ``[0, time reached]`` of ``horizon_s``."""
    reached = stopper.stopped_at_s or 0.0
    summary = {
        **result.summary,
        "partial": {"simulated_s": reached, "horizon_s": horizon_s, "signal": signal_name(stopper.signum)},
    }
    return RunResult(
        scenario=result.scenario, summary=summary, timeseries=result.timeseries, jobs=result.jobs, meta=result.meta
    )


def _record_failure(out_dir: Path, meta: dict[str, Any], error: str, status: str) -> bool:
    """Write ``run.json`` alone with ``status``, replacing a failed or interrupted run but never a completed one
    (kept: a run that did not finish never costs a finished result). Returns whether it was written."""
    from gigafactory_sim.report.writer import run_status, write_failure

    if run_status(out_dir) == "completed":
        err_console.print(f"the completed run at {out_dir} was kept", highlight=False)
        return False
    try:
        write_failure(out_dir, meta, error, status=status, replace=True)
    except OSError as exc:
        err_console.print(f"cannot record the failure in {out_dir}: {exc}", highlight=False)
        return False
    return True


def signal_name(signum: int | None) -> str | None:
    import signal

    return None if signum is None else signal.Signals(signum).name


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file")],
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<name>-<UTC time>)")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario seed")] = None,
    set_: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table")] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace a completed run at --out (a failed or interrupted one is always replaced)"
        ),
    ] = False,
    max_memory: MaxMemory = None,
    max_events: MaxEvents = None,
    no_report: Annotated[
        bool,
        typer.Option(
            "--no-report",
            help="Write the data and run.json only, no report.md/html or plots (`gigafactory-sim report RUN_DIR` "
            "renders them later)",
        ),
    ] = False,
) -> None:
    """Run a scenario and write its run directory (summary, tables, report).

    SIGINT (Ctrl-C) or SIGTERM stops the simulation at its next event and writes the tables so far, marked
    partial (run.json status "interrupted"); the exit code is then 130 or 143. A second signal aborts at once.
    """
    from gigafactory_sim.report.writer import write_run

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    sc = load_or_exit(scenario, overrides)
    check_cost_or_exit(sc, max_memory, max_events)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out if out is not None else Path("runs") / f"{sc.name}-{stamp}"
    try:
        replace = check_out_dir(out_dir, overwrite=overwrite)
    except OutProblem as exc:
        raise fail(str(exc)) from None
    meta = base_meta(sc.name, str(scenario), sc.seed, overrides)
    t0 = time.perf_counter()
    stopper = Stopper()
    with stopper.installed():
        prepared = prepare_or_exit(sc)  # input problems surface here, before anything is written
        sim: Simulation | FederationRun | None = None
        try:
            with progress_bar("{task.fields[sim]}", quiet) as progress:
                task = progress.add_task(f"simulating {sc.name}", total=sc.horizon_s, sim="")

                def on_tick(now_s: float, horizon_s: float) -> None:
                    progress.update(task, completed=now_s, sim=f"day {now_s / 86400:.1f} / {horizon_s / 86400:.1f}")
                    stopper.on_tick(now_s, horizon_s)

                if stopper.signum is not None:
                    raise KeyboardInterrupt  # a signal while building: nothing simulated
                sim = build(prepared, progress=on_tick)
                with stopper.simulating(sim):
                    result = execute(sim)
                what, parts = ("tables", "tables") if no_report else ("report", "tables, plots, pages")
                progress.update(task, description=f"writing the {what} of {sc.name}", sim=parts)
            meta["wall_s"] = time.perf_counter() - t0
            meta.update(result.meta)
            status = "completed"
            if stopper.stopped_at_s is not None:
                status = "interrupted"
                result = _partial(result, stopper, sc.horizon_s)
                meta["interrupted"] = {
                    "signal": signal_name(stopper.signum),
                    "simulated_s": stopper.stopped_at_s,
                    "horizon_s": sc.horizon_s,
                }
            path = write_run(result, out_dir, meta=meta, status=status, replace=replace, report=not no_report)
        except KeyboardInterrupt:  # a second signal, or one before the simulation started: no tables
            signum = stopper.signum or 2
            meta["wall_s"] = time.perf_counter() - t0
            reached = (
                stopper.stopped_at_s
                if stopper.stopped_at_s is not None
                else (float(sim.env.now) if sim is not None else 0.0)
            )
            meta["interrupted"] = {"signal": signal_name(signum), "simulated_s": reached, "horizon_s": sc.horizon_s}
            if _record_failure(out_dir, meta, "interrupted before the tables were written", "interrupted"):
                err_console.print(
                    f"interrupted at simulated time {reached:,.0f} s; {out_dir}/run.json has "
                    f"status interrupted (a rerun with the same --out replaces it)",
                    highlight=False,
                )
            raise typer.Exit(exit_code_for(signum)) from None
        except Exception as exc:  # an unexpected error: keep run.json, exit 1, no traceback
            meta["wall_s"] = time.perf_counter() - t0
            _record_failure(out_dir, meta, f"{type(exc).__name__}: {exc}", "failed")
            err_console.print(
                f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc} (see {out_dir}/run.json)", highlight=False
            )
            raise typer.Exit(1) from None
    if stopper.stopped_at_s is not None:
        err_console.print(
            f"interrupted by {signal_name(stopper.signum)} at simulated time "
            f"{stopper.stopped_at_s:,.0f} s of {sc.horizon_s:,.0f} s; partial run written to {path} "
            f"(status interrupted; a rerun with the same --out replaces it)",
            highlight=False,
        )
        raise typer.Exit(exit_code_for(stopper.signum or 2))
    if not quiet:
        out_console.print(kpi_table(result.summary, f"{sc.name} (seed {sc.seed})"))
    out_console.print(f"run written to {path}", highlight=False)
    if stopper.signum is not None:  # the signal came after the simulation: the run was still written whole
        raise typer.Exit(exit_code_for(stopper.signum))


@app.command()
def validate(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files")],
    set_: SetOption = None,
    max_memory: MaxMemory = None,
    max_events: MaxEvents = None,
) -> None:
    """Check scenario files (schema, references, trace files, estimated cost); print every problem; exit 0 or
    2."""
    from gigafactory_sim.config.loader import locate_problems
    from gigafactory_sim.estimate import Limits, check_limits

    failed = False
    for path in scenarios:
        sc: Scenario | Federation | None = None
        try:
            sc = load_scenario(path, list(set_ or []))
            try:
                limits = Limits.resolve(sc, max_memory, max_events)
            except ValueError as exc:
                raise fail(f"--max-memory: {exc}") from None
            check_limits(sc, limits)
            prepare_any(sc)  # reads traces and series and runs every build-time check; simulates nothing
        except ScenarioError as exc:
            failed = True
            report_problems(exc if sc is None else locate_problems(exc, sc))
            continue
        out_console.print(f"[green]ok[/] {path}", highlight=False)
    if failed:
        raise typer.Exit(2)


@app.command()
def clean(
    runs_dir: Annotated[Path, typer.Argument(help="A folder of runs (e.g. runs/)")],
) -> None:
    """Remove the hidden temporary folders (.NAME.tmp-PID, .NAME.old-PID) that killed runs left behind, in
    RUNS_DIR and the run and sweep folders inside it. Those of running processes are kept."""
    from gigafactory_sim.report.writer import remove_stale_temps_under

    if not runs_dir.is_dir():
        raise fail(f"{runs_dir} is not a folder")
    removed = remove_stale_temps_under(runs_dir)
    for p in removed:
        out_console.print(f"removed {p}", highlight=False)
    out_console.print(f"{len(removed)} stale temporary folder(s) removed", highlight=False)


@app.command()
def gpus() -> None:
    """List the built-in GPU profiles."""
    table = Table(title="Built-in GPU profiles", header_style="bold")
    for col in ("name", "limit W", "idle W", "bf16 TFLOP/s", "memory GB", "HBM TB/s", "source"):
        table.add_column(col)
    for p in BUILTIN_GPUS.values():
        m = p.power_model
        table.add_row(
            p.name,
            f"{p.board_limit_w:g}",
            f"{m.idle_w:.0f}",
            f"{p.dense_bf16_tflops:g}",
            f"{p.memory_gb:g}",
            f"{p.hbm_bandwidth_tbs:g}",
            p.source,
        )
    out_console.print(table)


@app.command()
def schema(
    federation: Annotated[
        bool, typer.Option("--federation", help="The schema of a federation file (`sites:`) instead of one site's")
    ] = False,
) -> None:
    """Print the JSON Schema of scenario files (for editor completion)."""
    from gigafactory_sim.federation.config import Federation

    model: type[Scenario] | type[Federation] = Federation if federation else Scenario
    typer.echo(json.dumps(model.model_json_schema(), indent=2))


# -- analysis commands (compare, sweep, report) are registered below ------------------------------------------


@app.command()
def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories or scenario files (run first); the first is the baseline")
    ],
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/compare-<UTC time>)")] = None,
    set_: SetOption = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="A label per run, in order. Repeatable.")] = None,
    set_run: Annotated[
        list[str] | None,
        typer.Option(
            "--set-run",
            help="Override a field of one run only: N:dotted.path=value (N from 1, in the order given). Repeatable.",
        ),
    ] = None,
) -> None:
    """Compare runs against the first: a KPI table with deltas, and comparison.md/.html/.csv with plots."""
    from gigafactory_sim.analysis import compare as compare_runs
    from gigafactory_sim.analysis import write_comparison
    from gigafactory_sim.analysis.compare_output import comparison_rows

    if label and len(label) != len(runs):
        raise fail(f"{len(label)} --label for {len(runs)} runs")
    own: dict[int, list[str]] = {}
    for item in set_run or []:
        index, sep, assignment = item.partition(":")
        if not sep or not index.strip().isdigit() or not 1 <= int(index) <= len(runs):
            raise fail(f"--set-run {item!r}: give N:dotted.path=value with N from 1 to {len(runs)}")
        own.setdefault(int(index) - 1, []).append(assignment)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out if out is not None else Path("runs") / f"compare-{stamp}"
    if out_dir.exists() and any(out_dir.iterdir()):
        raise fail(f"{out_dir} exists and is not empty")
    try:
        with progress_bar("{task.fields[sim]}", quiet=False) as progress:
            tasks: dict[str, Any] = {}

            def on_tick(path: str, now_s: float, horizon_s: float) -> None:
                if path not in tasks:
                    tasks[path] = progress.add_task(f"running {Path(path).name}", total=horizon_s, sim="")
                progress.update(tasks[path], completed=now_s, sim=f"day {now_s / 86400:.1f} / {horizon_s / 86400:.1f}")

            comparison = compare_runs(
                runs, labels=label, overrides=list(set_ or []), progress=on_tick, run_overrides=own
            )
    except ScenarioError as exc:
        report_problems(exc)
        raise typer.Exit(2) from None
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    out_console.print(rows_table(comparison_rows(comparison), f"baseline: {comparison.baseline.label}"))
    for note in comparison.notes:
        out_console.print(f"[yellow]not comparable:[/] {note}", highlight=False)
    path = write_comparison(comparison, out_dir)
    out_console.print(f"comparison written to {path}", highlight=False)


@app.command()
def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario file, or a sweep file (scenario, grid, ...)")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="A swept field: dotted.path=v1,v2,... (one value: fixed for every point). Repeatable."
        ),
    ] = None,
    replications: Annotated[int | None, typer.Option(min=1, help="Runs per point (default 1)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Local processes (default: CPU count)")] = None,
    dask_scheduler: Annotated[
        str | None, typer.Option(help="Run on an existing Dask cluster, e.g. tcp://HOST:8786 (needs the dask extra)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default runs/sweep-<name>-<UTC time>); a sweep folder is resumed"),
    ] = None,
    compact: Annotated[
        bool | None,
        typer.Option("--compact/--full", help="Keep only summary.json per run (default: full run directories)"),
    ] = None,
    metric: Annotated[str | None, typer.Option(help="Metric to plot (default utilisation.allocated_fraction)")] = None,
    param: Annotated[str | None, typer.Option(help="Swept parameter on the plot's x axis")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table")] = False,
) -> None:
    """Run a scenario over a grid of --set values x replications; write runs, aggregates (mean, std, 95 %
    CI) and a plot. Rerunning with the same --out resumes, skipping finished runs."""
    import os

    from gigafactory_sim.analysis import (
        DaskExecutor,
        Executor,
        LocalExecutor,
        SweepMismatch,
        plan_sweep,
        run_sweep,
    )
    from gigafactory_sim.analysis.grid import is_sweep_file, parse_axis
    from gigafactory_sim.analysis.plan import plan_from_sweep_file
    from gigafactory_sim.analysis.sweep_output import metric_rows

    try:
        axes = [parse_axis(a) for a in set_ or []]
        if is_sweep_file(scenario):
            plan = plan_from_sweep_file(
                scenario, axes, replications=replications, compact=compact, metric=metric, param=param
            )
        else:
            plan = plan_sweep(
                scenario,
                axes,
                replications=replications or 1,
                compact=bool(compact),
                **({"metric": metric} if metric else {}),
                param=param,
            )
    except ScenarioError as exc:
        report_problems(exc)
        raise typer.Exit(2) from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out if out is not None else Path("runs") / f"sweep-{plan.name}-{stamp}"
    executor: Executor = (
        DaskExecutor(dask_scheduler) if dask_scheduler else LocalExecutor(workers or os.cpu_count() or 1)
    )
    meta = base_meta(plan.name, str(scenario), None, [*plan.overrides, *(set_ or [])])
    err_console.print(
        f"{len(plan.points)} points x {plan.replications} replications on {executor!r}; "
        f"output {out_dir} (rerun with --out {out_dir} to resume)",
        highlight=False,
    )
    try:
        with progress_bar("{task.completed}/{task.total} runs", quiet) as progress:
            task = progress.add_task(f"sweep {plan.name}", total=plan.n_runs)
            result = run_sweep(
                plan, out_dir, executor, progress=lambda done, total: progress.update(task, completed=done), meta=meta
            )
    except (SweepMismatch, FileExistsError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print(f"interrupted; rerun with --out {out_dir} to resume", highlight=False)
        raise typer.Exit(130) from None
    except Exception as exc:  # e.g. the Dask scheduler cannot be reached
        raise fail(f"{type(exc).__name__}: {exc}", 1) from None
    if not quiet and plan.metric in set(result.aggregate["metric"]):
        out_console.print(rows_table(metric_rows(result, plan.metric), plan.metric))
    if result.skipped:
        out_console.print(f"{result.skipped} run(s) already done, skipped", highlight=False)
    out_console.print(f"sweep written to {out_dir}", highlight=False)
    if result.failures:
        raise fail(f"{len(result.failures)} run(s) failed (see {out_dir / 'sweep.md'}); rerun to retry", 1)


def main() -> None:
    try:
        app()  # (typer ends it with SystemExit and the command's exit code)
    finally:
        # The process ends here. CPython's finalisation runs full garbage collections over every object still
        # alive (pydantic's schemas, pandas, the run's tables): ~0.15 s of a Philly run's 1.9 s. Frozen objects are
        # not traversed, and nothing here needs collecting: every file is closed, and memory goes back to the
        # operating system with the process.
        gc.freeze()


# the commands of the other modules register themselves on the same app
from gigafactory_sim import cli_plan, cli_reports  # noqa: E402, F401
