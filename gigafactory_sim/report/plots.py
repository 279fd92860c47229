"""The report's plots, as PNG bytes drawn from a run's summary and tables.

Every plot is a function ``(summary, timeseries, jobs) -> bytes`` listed once in :data:`PLOTS`; adding a plot
to every report is one function and one line there. Figures are :class:`matplotlib.figure.Figure` objects
rendered by the Agg canvas directly: pyplot is never imported, so no backend, figure registry or rcParams of
the caller is touched. Each function draws an explicit "no data" panel instead of raising on an empty table.

Time-series rows are interval means (exact integrals over each report interval), so they are drawn as steps
spanning each interval, from its ``time`` (start, UTC) to its end. The common look (time axis, legends below the
axes, thousands separators, the warm-up shaded) is :mod:`gigafactory_sim.report.plot_style`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from gigafactory_sim.report import plot_style as style
from gigafactory_sim.report import plots_energy as _energy
from gigafactory_sim.report import plots_inference as _infer
from gigafactory_sim.report import plots_reliability as _reliability
from gigafactory_sim.report.format import sig

__all__ = [
    "PLOTS",
    "PlotFn",
    "PlotSpec",
    "energy_plot",
    "power_plot",
    "queue_plot",
    "render_plots",
    "utilisation_plot",
    "wait_cdf_plot",
]

PlotFn = Callable[[Mapping[str, Any], pd.DataFrame, pd.DataFrame], bytes | None]
"""A plot ``(summary, timeseries, jobs) -> PNG bytes``, or None when the run has nothing to show (e.g. no
inference services)."""

_WAIT_FLOOR_S = 1.0  # waits below this are drawn at it on the log axis (log(0) has no place)
_WAIT_TICKS = (
    (1.0, "1 s"),
    (10.0, "10 s"),
    (60.0, "1 min"),
    (600.0, "10 min"),
    (3600.0, "1 h"),
    (6 * 3600.0, "6 h"),
    (86400.0, "1 d"),
    (7 * 86400.0, "1 w"),
    (30 * 86400.0, "30 d"),
)


def _clusters(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    clusters = summary.get("clusters")
    if not isinstance(clusters, Mapping):
        return {}
    return {str(k): v for k, v in clusters.items() if isinstance(v, Mapping)}


def _finish_time_plot(fig: Figure, ax: Axes, summary: Mapping[str, Any], edges: np.ndarray) -> bytes:
    style.shade_warmup(ax, summary, edges)
    style.time_axis(ax, edges)
    style.thousands(ax)
    style.legend_below(fig, ax)
    return style.png(fig)


def power_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """IT and facility power (interval means, MW); per-cluster IT power when there are several clusters."""
    fig, ax = style.new_axes("Power draw (interval means)", "power (MW)")
    edges = style.time_edges(timeseries)
    if edges is None:
        return style.no_data(fig, ax, "no time-series rows")
    if "facility_power_mw" in timeseries.columns:
        style.steps(ax, edges, timeseries["facility_power_mw"], label="facility (IT × PUE)", color="tab:red")
    if "it_power_mw" in timeseries.columns:
        style.steps(ax, edges, timeseries["it_power_mw"], label="IT", color="tab:blue")
    names = [c for c in _clusters(summary) if f"it_power_mw.{c}" in timeseries.columns]
    if len(names) > 1:
        for c in names:
            style.steps(ax, edges, timeseries[f"it_power_mw.{c}"], label=f"IT, {c}", linewidth=0.9, linestyle="--")
    ax.set_ylim(bottom=0)
    return _finish_time_plot(fig, ax, summary, edges)


def utilisation_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """GPUs held by training jobs or inference replicas per cluster, as a share of its GPUs (interval means, %)."""
    fig, ax = style.new_axes("GPUs allocated by cluster (interval means)", "GPUs allocated (%)")
    edges = style.time_edges(timeseries)
    if edges is None:
        return style.no_data(fig, ax, "no time-series rows")
    drawn = 0
    for name, info in _clusters(summary).items():
        gpus = info.get("gpus")
        col = f"allocated_gpus.{name}"
        if col in timeseries.columns and isinstance(gpus, int | float) and gpus > 0:
            held = timeseries[col].to_numpy(dtype=float)
            if f"infer_gpus.{name}" in timeseries.columns:  # replicas hold GPUs too, as in the summary
                held = held + timeseries[f"infer_gpus.{name}"].to_numpy(dtype=float)
            style.steps(ax, edges, 100.0 * held / float(gpus), label=name, linewidth=1.0)
            drawn += 1
    if not drawn:
        return style.no_data(fig, ax, "no per-cluster allocation columns")
    total = summary.get("gpus_total")
    if drawn > 1 and "allocated_gpus" in timeseries.columns and isinstance(total, int | float) and total > 0:
        held = timeseries["allocated_gpus"].to_numpy(dtype=float)
        if "inference_gpus" in timeseries.columns:
            held = held + timeseries["inference_gpus"].to_numpy(dtype=float)
        style.steps(ax, edges, 100.0 * held / float(total), label="all GPUs", color="black", linewidth=1.6)
    ax.set_ylim(0, 105)
    return _finish_time_plot(fig, ax, summary, edges)


def queue_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """Queued and running jobs, counted at the end of each report interval."""
    fig, ax = style.new_axes("Jobs queued and running (at each interval end)", "jobs")
    edges = style.time_edges(timeseries)
    if edges is None:
        return style.no_data(fig, ax, "no time-series rows")
    ends = edges[1:]
    drawn = False
    series = (("queued_jobs", "queued", "tab:orange"), ("running_jobs", "running", "tab:green"))
    for col, label, color in series:
        if col in timeseries.columns:
            ax.plot(ends, timeseries[col].to_numpy(dtype=float), label=label, color=color, linewidth=1.2)
            drawn = True
    if not drawn:
        return style.no_data(fig, ax, "no job-count columns")
    ax.set_ylim(bottom=0)
    return _finish_time_plot(fig, ax, summary, edges)


def _wait_groups(jobs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    for col in ("job_class", "source"):
        if col in jobs.columns and jobs[col].nunique() > 1:
            return [(str(k), g) for k, g in jobs.groupby(col, sort=True)]
    return [("all jobs", jobs)]


def wait_cdf_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """Empirical CDF of the wait (submit to start) of jobs that started, per workload class, on a log time
    axis so the long waits of large jobs show.

    Waits under one second (typically zero) are drawn at one second: a curve's height there is the share that
    started at once. Jobs never started are counted in the legend; they cannot be placed on the curve (their
    wait is at least the time left in the run).
    """
    fig, ax = style.new_axes(
        "Wait from submission to start, by job class", "jobs started within the wait (%)", height_in=4.2
    )
    ax.set_xlabel("wait (log scale)")
    if len(jobs) == 0 or not {"start_s", "wait_s"} <= set(jobs.columns):
        return style.no_data(fig, ax, "no jobs submitted")
    curves = []
    for name, group in _wait_groups(jobs):
        started = group["start_s"].notna().to_numpy()
        waits_s = np.sort(group.loc[started, "wait_s"].to_numpy(dtype=float))
        curves.append((name, len(group), int((~started).sum()), waits_s[np.isfinite(waits_s)]))
    if not any(len(w) for *_, w in curves):
        return style.no_data(fig, ax, f"none of {len(jobs):,} submitted jobs started")
    hi = max(float(w[-1]) for *_, w in curves if len(w))
    top = max(hi * 1.5, 60.0)
    for name, submitted, never, waits_s in curves:
        if len(waits_s) == 0:
            ax.plot([], [], " ", label=f"{name}: none of {submitted:,} started")
            continue
        n = len(waits_s)
        x = np.maximum(waits_s, _WAIT_FLOOR_S)
        y = 100.0 * np.arange(1, n + 1) / n
        at_once = 100.0 * float((waits_s < _WAIT_FLOOR_S).sum()) / n
        label = f"{name}: {n:,} started, {at_once:.0f} % at once" + (f", {never:,} never" if never else "")
        last = np.append(x[1:] != x[:-1], True)  # equal waits: only the top of each riser (the same steps)
        x, y = x[last], y[last]
        ax.step(np.concatenate(([x[0]], x, [top])), np.concatenate(([0.0], y, [100.0])), where="post", label=label)
    if hi < _WAIT_FLOOR_S:
        ax.text(
            0.5,
            0.5,
            "every job that started did so within a second of its submission",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.3",
        )
    ax.set_xscale("log")
    ax.set_xlim(_WAIT_FLOOR_S * 0.8, top)
    ticks = [(t, lab) for t, lab in _WAIT_TICKS if t <= top]
    ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 102)
    style.legend_below(fig, ax, ncols=2)
    return style.png(fig)


def _energy_split(summary: Mapping[str, Any]) -> list[tuple[str, float, str]]:
    energy = summary.get("energy")
    if not isinstance(energy, Mapping) or energy.get("it_mwh") is None:
        return []
    it = float(energy["it_mwh"])
    training = float(energy.get("training_it_mwh") or 0.0)
    inference = float(energy.get("inference_it_mwh") or 0.0)
    idle = float(energy["idle_it_mwh"]) if energy.get("idle_it_mwh") is not None else it - training - inference
    if energy.get("facility_mwh") is not None:
        overhead = float(energy["facility_mwh"]) - it
    else:
        overhead = (float(energy.get("pue") or 1.0) - 1.0) * it
    parts = [("training\n(IT)", training, "tab:blue")]
    if "inference_it_mwh" in energy:
        parts.append(("inference\n(IT)", inference, "tab:purple"))
    parts += [
        ("idle GPUs\nand nodes (IT)", max(idle, 0.0), "tab:gray"),
        ("facility overhead\n(PUE)", max(overhead, 0.0), "tab:red"),
    ]
    return parts


def energy_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """Facility energy over the run by use (MWh): training, inference and idle IT energy, and the facility
    overhead (PUE); each bar labelled with its value and share."""
    fig, ax = style.new_axes("Facility energy over the run, by use", "energy (MWh)")
    parts = _energy_split(summary)
    if not parts:
        return style.no_data(fig, ax, "no energy figures in the summary")
    total = sum(v for _, v, _ in parts) or 1.0
    x = np.arange(len(parts))
    bars = ax.bar(x, [v for _, v, _ in parts], color=[c for _, _, c in parts], width=0.6)
    for rect, (_, value, _) in zip(bars, parts, strict=True):
        ax.annotate(
            f"{sig(value)} MWh ({100.0 * value / total:.1f} %)",
            (rect.get_x() + rect.get_width() / 2, rect.get_height()),
            ha="center",
            va="bottom",
            fontsize="small",
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_xticks(x, [name for name, _, _ in parts])
    ax.set_ylim(0, max(v for _, v, _ in parts) * 1.18 or 1.0)
    ax.grid(True, axis="y", alpha=0.3)
    ax.grid(False, axis="x")
    style.thousands(ax)
    return style.png(fig)


@dataclass(frozen=True)
class PlotSpec:
    """One report plot: saved as ``plots/{name}.png`` and shown under ``caption``."""

    name: str
    caption: str
    draw: PlotFn


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("power", "Power over time: IT and facility", power_plot),
    PlotSpec("utilisation", "GPU utilisation by cluster", utilisation_plot),
    PlotSpec("queue", "Queue length over time", queue_plot),
    PlotSpec("wait_cdf", "Wait-time distribution by job class", wait_cdf_plot),
    PlotSpec("energy", "Energy by use: training, inference, idle, facility overhead", energy_plot),
    PlotSpec("gpus_by_use", "GPUs by use: training, inference, idle", _infer.gpus_by_use_png),
    PlotSpec("inference_demand", "Inference demand vs capacity", _infer.demand_vs_capacity_png),
    PlotSpec("power_vs_cap", "Facility power, grid draw and any cap (throttling shaded)", _energy.plot_power_vs_cap),
    PlotSpec("energy_budget", "Energy and budget use per period", _energy.plot_energy_budget),
    PlotSpec("carbon_cost_by_class", "Carbon and cost by workload class", _energy.plot_carbon_cost_by_class),
    PlotSpec("interruptions", "Interruptions over time", _reliability.interruptions_over_time),
    PlotSpec("goodput_vs_size", "Goodput vs job size", _reliability.goodput_vs_job_size),
)
"""Every plot of the report, in page order."""


def render_plots(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame, specs: tuple[PlotSpec, ...] = PLOTS
) -> dict[str, bytes]:
    """Draw every plot in ``specs``: ``{name: PNG bytes}`` in page order."""
    drawn = {spec.name: spec.draw(summary, timeseries, jobs) for spec in specs}
    return {name: png for name, png in drawn.items() if png is not None}
