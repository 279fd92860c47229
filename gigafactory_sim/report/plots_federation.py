"""The federation report's plots: GPUs allocated by site, each site's grid draw against its cap, and where each
workload ran.

Drawn from the federation's summary and tables (``allocated_gpus@paris``, ``grid_import_mw@frankfurt``,
``hard_cap_mw@X``, the residency rows), in the look of every report plot
(:mod:`gigafactory_sim.report.plot_style`). Each site keeps one colour in every plot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gigafactory_sim.report import plot_style as style
from gigafactory_sim.report.plots import PlotSpec, render_plots

__all__ = [
    "FEDERATION_PLOTS",
    "allocation_by_site_plot",
    "grid_by_site_plot",
    "inference_gpu_h_by_site",
    "render_federation_plots",
    "site_names",
    "workload_by_site_plot",
]

_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def site_names(summary: Mapping[str, Any]) -> list[str]:
    """The federation's sites, in the scenario's order."""
    sites = summary.get("sites")
    return [str(name) for name in sites] if isinstance(sites, Mapping) else []


def _colours(summary: Mapping[str, Any]) -> dict[str, str]:
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(site_names(summary))}


def _column(timeseries: pd.DataFrame, name: str) -> np.ndarray:
    if name not in timeseries.columns:
        return np.zeros(len(timeseries))
    return np.nan_to_num(timeseries[name].to_numpy(dtype=float))


def _held(timeseries: pd.DataFrame, site: str) -> np.ndarray:
    """GPUs held at ``site``: by training jobs and by inference replicas (as the summary counts them)."""
    return _column(timeseries, f"allocated_gpus@{site}") + _column(timeseries, f"inference_gpus@{site}")


def _finish(fig: Figure, ax: Axes, edges: np.ndarray, ncols: int = 4) -> bytes:
    style.time_axis(ax, edges)
    style.thousands(ax)
    style.legend_below(fig, ax, ncols=ncols)
    return style.png(fig)


def allocation_by_site_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """GPUs held by training jobs and inference replicas at each site, stacked (interval means), under the
    federation's GPU count."""
    fig, ax = style.new_axes("GPUs allocated by site, stacked (interval means)", "GPUs allocated")
    edges = style.time_edges(timeseries)
    names = [s for s in site_names(summary) if f"allocated_gpus@{s}" in timeseries.columns]
    if edges is None or not names:
        return style.no_data(fig, ax, "no per-site allocation columns")
    bottom = np.zeros(len(timeseries))
    colours = _colours(summary)
    for site in names:
        top = bottom + _held(timeseries, site)
        ax.fill_between(
            edges,
            np.append(bottom, bottom[-1]),
            np.append(top, top[-1]),
            step="post",
            alpha=0.8,
            lw=0,
            color=colours[site],
            label=site,
        )
        bottom = top
    total = summary.get("gpus_total")
    if isinstance(total, int | float) and total > 0:
        ax.axhline(float(total), color="black", linestyle="--", linewidth=1.0, label="GPUs in the federation")
        ax.set_ylim(0, float(total) * 1.08)
    return _finish(fig, ax, edges, ncols=5)


def grid_by_site_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """Each site's grid draw (its facility power where the site has no grid series), interval means, and its
    hard cap as a dashed line of the same colour where it has one."""
    capped = any(f"hard_cap_mw@{site}" in timeseries.columns for site in site_names(summary))
    title = "against each site's hard cap (dashed)" if capped else "no site has a hard cap"
    fig, ax = style.new_axes(f"Grid draw by site (interval means); {title}", "power (MW)")
    edges = style.time_edges(timeseries)
    if edges is None:
        return style.no_data(fig, ax, "no time-series rows")
    colours = _colours(summary)
    drawn = 0
    for site in site_names(summary):
        grid, facility = f"grid_import_mw@{site}", f"facility_power_mw@{site}"
        col = grid if grid in timeseries.columns else facility if facility in timeseries.columns else None
        if col is None:
            continue
        label = site if col == grid else f"{site} (facility power)"
        style.steps(ax, edges, _column(timeseries, col), label=label, color=colours[site], linewidth=1.2)
        cap = f"hard_cap_mw@{site}"
        if cap in timeseries.columns:
            values = timeseries[cap].to_numpy(dtype=float)
            style.steps(ax, edges, values, label=f"{site} cap", color=colours[site], linewidth=1.0, linestyle="--")
        drawn += 1
    if not drawn:
        return style.no_data(fig, ax, "no per-site power columns")
    ax.set_ylim(bottom=0)
    return _finish(fig, ax, edges)


def inference_gpu_h_by_site(timeseries: pd.DataFrame, sites: list[str]) -> dict[str, float]:
    """GPU-hours inference replicas held at each site (from ``inference_gpus@site``); sites without any
    left out."""
    if not {"t_start_s", "t_end_s"} <= set(timeseries.columns):
        return {}
    hours = (timeseries["t_end_s"] - timeseries["t_start_s"]).to_numpy(dtype=float) / 3600.0
    found = {site: float((_column(timeseries, f"inference_gpus@{site}") * hours).sum()) for site in sites}
    return {site: v for site, v in found.items() if v > 0}


def _workload_gpu_h(summary: Mapping[str, Any], timeseries: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{workload: {site: GPU-h}}``: training from the residency rows, inference from the time series (one
    bar for all services when there are several)."""
    residency = summary.get("residency")
    rows = residency.get("rows") if isinstance(residency, Mapping) else None
    out: dict[str, dict[str, float]] = {}
    services = []
    for row in rows if isinstance(rows, list) else []:
        name = str(row.get("workload", ""))
        if name.startswith("inference:"):
            services.append(name)
        elif isinstance(row.get("gpu_h"), int | float):
            out.setdefault(name, {})[str(row.get("site"))] = float(row["gpu_h"])
    inference = inference_gpu_h_by_site(timeseries, site_names(summary))
    if inference:
        distinct = list(dict.fromkeys(services))
        out[distinct[0] if len(distinct) == 1 else "inference (all services)"] = inference
    return out


def workload_by_site_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """Where each workload ran: its GPU-hours at each site, one stacked horizontal bar per workload, the total
    written at the end of each bar."""
    by_workload = _workload_gpu_h(summary, timeseries)
    fig, ax = style.new_axes(
        "Where each workload ran: GPU-hours by site", "", height_in=1.6 + 0.55 * max(len(by_workload), 1)
    )
    ax.set_xlabel("GPU-hours")
    if not by_workload:
        return style.no_data(fig, ax, "no residency rows")
    colours = _colours(summary)
    labels = list(by_workload)
    y = np.arange(len(labels))[::-1]
    left = np.zeros(len(labels))
    for site in site_names(summary):
        widths = np.array([by_workload[w].get(site, 0.0) for w in labels])
        if widths.any():
            ax.barh(y, widths, left=left, height=0.6, color=colours[site], label=site)
            left = left + widths
    for yi, total in zip(y, left, strict=True):
        ax.annotate(f" {total:,.0f}", (total, yi), va="center", fontsize="small")
    ax.set_yticks(y, [w.replace(":", ": ") for w in labels])
    ax.set_xlim(0, float(left.max()) * 1.15 or 1.0)
    ax.grid(False, axis="y")
    style.thousands(ax, "x")
    style.legend_below(fig, ax, ncols=6)
    return style.png(fig)


FEDERATION_PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec(
        "allocation_by_site", "GPUs allocated by site over time (training and inference)", allocation_by_site_plot
    ),
    PlotSpec(
        "grid_by_site", "Grid draw by site over time, and each site's hard cap where it has one", grid_by_site_plot
    ),
    PlotSpec("workload_by_site", "Where each workload ran: GPU-hours by workload and site", workload_by_site_plot),
)
"""Every plot of the federation's report, in page order."""


def render_federation_plots(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame
) -> dict[str, bytes]:
    """Draw the federation's plots: ``{name: PNG bytes}`` in page order."""
    return render_plots(summary, timeseries, jobs, FEDERATION_PLOTS)
