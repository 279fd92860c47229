"""The layout of a run directory, and the report files derived from its stored tables.

A run directory holds the data (``summary.json``, ``timeseries.parquet``, ``jobs.parquet``,
``scenario.resolved.yaml``), its metadata (``run.json``) and the report derived from the data (``report.md``,
``report.html``, ``plots/*.png``). The derived files can be rebuilt at any time from the data
(:func:`gigafactory_sim.report.loader.rerender`). A federation's run directory also holds each site's own data
and report under ``sites/<name>/``; its own report is the federation's
(:mod:`gigafactory_sim.report.federation`), linking to each site's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "JOBS",
    "PLOTS_DIR",
    "REPORT_HTML",
    "REPORT_MD",
    "RUN",
    "SCENARIO",
    "SITES_DIR",
    "SUMMARY",
    "TIMESERIES",
    "atomic_write",
    "is_federation",
    "report_files",
    "site_reports",
]

SUMMARY = "summary.json"
TIMESERIES = "timeseries.parquet"
JOBS = "jobs.parquet"
SCENARIO = "scenario.resolved.yaml"
RUN = "run.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
SITES_DIR = "sites"
"""A federation's run directory holds each site's own data and report in ``sites/<name>/``."""


def is_federation(summary: Mapping[str, Any]) -> bool:
    """Whether ``summary`` is a federation's (several sites, a residency audit) rather than one site's."""
    return "residency" in summary and "sites" in summary


def site_reports(summary: Mapping[str, Any]) -> dict[str, str]:
    """Each site of a federation's summary -> the address of its own report, relative to the federation's."""
    sites = summary.get("sites")
    names = list(sites) if isinstance(sites, Mapping) else []
    return {str(name): f"{SITES_DIR}/{name}/{REPORT_HTML}" for name in names}


def report_files(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame, *, plots: bool = True
) -> dict[str, bytes]:
    """The derived files as ``{relative POSIX path: content}``: each plot as ``plots/<name>.png`` (when
    ``plots``), then ``report.md`` and ``report.html``; a federation's summary gets the federation's report."""
    if is_federation(summary):
        return _federation_files(summary, timeseries, jobs, plots)
    # Imported here, not at the top: matplotlib takes ~0.4 s to import, and ``import gigafactory_sim`` (which
    # exposes load_run) should not pay for it in every sweep worker that never draws a plot.
    from gigafactory_sim.report.render import render_html, render_markdown

    pngs: dict[str, bytes] = {}
    if plots:
        from gigafactory_sim.report.plots import render_plots

        pngs = render_plots(summary, timeseries, jobs)
    paths = {name: f"{PLOTS_DIR}/{name}.png" for name in pngs}
    files = {paths[name]: png for name, png in pngs.items()}
    files[REPORT_MD] = render_markdown(summary, timeseries, jobs, paths).encode("utf-8")
    files[REPORT_HTML] = render_html(summary, timeseries, jobs, pngs).encode("utf-8")
    return files


def _federation_files(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame, plots: bool
) -> dict[str, bytes]:
    from gigafactory_sim.report.federation import render_html, render_markdown
    from gigafactory_sim.report.plots_federation import render_federation_plots

    pngs = render_federation_plots(summary, timeseries, jobs) if plots else {}
    paths = {name: f"{PLOTS_DIR}/{name}.png" for name in pngs}
    files = {paths[name]: png for name, png in pngs.items()}
    reports = site_reports(summary)
    files[REPORT_MD] = render_markdown(summary, timeseries, jobs, paths, reports).encode("utf-8")
    files[REPORT_HTML] = render_html(summary, timeseries, jobs, pngs, reports).encode("utf-8")
    return files


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and :func:`os.replace`: readers see the old file
    or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
