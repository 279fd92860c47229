"""Read a run directory back (:func:`load_run`) and rebuild its report from its data (:func:`rerender`).

A federation's run directory also holds each site's own data and report under ``sites/<name>/`` (no
``run.json`` or scenario of their own): :func:`load_run` reads them into :attr:`RunData.sites`, and
:func:`rerender` rebuilds the federation's report and each site's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gigafactory_sim.report.files import (
    JOBS,
    PLOTS_DIR,
    REPORT_MD,
    RUN,
    SCENARIO,
    SITES_DIR,
    SUMMARY,
    TIMESERIES,
    atomic_write,
    is_federation,
    report_files,
    site_reports,
)

__all__ = ["RunData", "load_run", "rerender"]


@dataclass
class RunData:
    """A completed run as stored on disk; a federation's also has each site's own data in ``sites`` (by site
    name, as :attr:`gigafactory_sim.result.RunResult.sites`), each with the federation's ``meta`` and
    scenario."""

    path: Path
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    jobs: pd.DataFrame
    meta: dict[str, Any]
    scenario_yaml: str
    sites: dict[str, RunData] = field(default_factory=dict)


def _require(run_dir: Path, name: str) -> Path:
    path = run_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a complete run directory: {name} is missing")
    return path


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object, not {type(data).__name__}")
    return data


def load_run(path: str | Path) -> RunData:
    """Load the run directory at ``path``.

    Raises :class:`FileNotFoundError` naming the missing directory or file, and :class:`ValueError` when
    ``run.json`` says the run did not complete (quoting its error) or a file cannot be parsed.
    """
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}")
    meta = _read_json_object(_require(run_dir, RUN))
    status = meta.get("status")
    if status != "completed":
        detail = f"; error: {meta['error']}" if meta.get("error") else ""
        raise ValueError(f"{run_dir} is not a completed run ({RUN} status: {status!r}{detail})")
    summary, timeseries, jobs = _read_tables(run_dir)
    scenario_yaml = _require(run_dir, SCENARIO).read_text(encoding="utf-8")
    sites = {}
    for name in _site_names(summary):
        site_dir = run_dir / SITES_DIR / name
        site_summary, site_timeseries, site_jobs = _read_tables(site_dir)
        sites[name] = RunData(site_dir, site_summary, site_timeseries, site_jobs, meta, scenario_yaml)
    return RunData(
        path=run_dir,
        summary=summary,
        timeseries=timeseries,
        jobs=jobs,
        meta=meta,
        scenario_yaml=scenario_yaml,
        sites=sites,
    )


def _read_tables(folder: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``summary.json`` and the two Parquet tables of a run directory (or of a site's folder in one)."""
    summary = _read_json_object(_require(folder, SUMMARY))
    frames = {}
    for name in (TIMESERIES, JOBS):
        file = _require(folder, name)
        try:
            frames[name] = pd.read_parquet(file, engine="pyarrow")
        except Exception as exc:  # pyarrow raises its own error types for a damaged file
            raise ValueError(f"{file} is not a readable Parquet file: {exc}") from exc
    return summary, frames[TIMESERIES], frames[JOBS]


def _site_names(summary: dict[str, Any]) -> list[str]:
    """The sites whose folders a federation's run directory holds (none for a single site's run)."""
    return list(site_reports(summary)) if is_federation(summary) else []


def rerender(path: str | Path) -> None:
    """Rebuild ``plots/*.png``, ``report.md`` and ``report.html`` of a completed run from its stored data.

    Each file is replaced atomically. Plots are redrawn when the run has a ``plots/`` folder (runs written
    with ``report.plots: false`` have none and stay without). A run written without its report (``run
    --no-report``: no ``report.md`` yet) gets plots when its scenario's ``report.plots`` is true. Plot files no
    longer drawn are left in place. A federation's sites (``sites/<name>/``) are rebuilt the same way.
    """
    run = load_run(path)
    with_plots = _with_plots(run, _scenario_plots(run.scenario_yaml))
    _write_report(run, with_plots)
    for site in run.sites.values():  # a federation: each site's own report too
        _write_report(site, _with_plots(site, with_plots))


def _with_plots(run: RunData, default: bool) -> bool:
    """Plots for a rendered report when it has a ``plots/`` folder; ``default`` when it was never rendered."""
    return (run.path / PLOTS_DIR).is_dir() if (run.path / REPORT_MD).exists() else default


def _write_report(run: RunData, with_plots: bool) -> None:
    for rel, data in report_files(run.summary, run.timeseries, run.jobs, plots=with_plots).items():
        target = run.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)


def _scenario_plots(scenario_yaml: str) -> bool:
    """``report.plots`` of a stored ``scenario.resolved.yaml`` (true when absent, as in the schema)."""
    try:
        scenario = yaml.safe_load(scenario_yaml)
    except yaml.YAMLError:
        return True
    report = scenario.get("report") if isinstance(scenario, dict) else None
    plots = report.get("plots", True) if isinstance(report, dict) else True
    return plots is not False
