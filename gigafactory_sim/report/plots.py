"""The report's plots, as PNG bytes drawn from a run's summary and tables.

Every plot is a function ``(summary, timeseries, jobs) -> bytes`` listed once in :data:`PLOTS`; adding a plot
to every report is one function and one line there. Figures are :class:`matplotlib.figure.Figure` objects
rendered by the Agg canvas directly: pyplot is never imported, so no backend, figure registry or rcParams of
the caller is touched. Each function draws an explicit "no data" panel instead of raising on an empty table.

Time-series rows are interval means (exact integrals over each report interval), so they are drawn as steps
spanning each interval, from its ``time`` (start, UTC) to its end.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from gigafactory_sim.report import plots_energy as _energy
from gigafactory_sim.report import plots_inference as _infer
from gigafactory_sim.report import plots_reliability as _reliability

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
"""A plot: PNG bytes, or None when the run has nothing to show (e.g. no inference services)."""
"""``(summary, timeseries, jobs) -> PNG bytes``."""

_FIGSIZE_IN = (8.0, 3.6)
_DPI = 100
_WAIT_FLOOR_S = 1.0  # waits below this are drawn at it on the log axis (log(0) has no place)


def _new_axes(title: str, ylabel: str, xlabel: str = "time (UTC)") -> tuple[Figure, Axes]:
    fig = Figure(figsize=_FIGSIZE_IN, dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _no_data(fig: Figure, ax: Axes, message: str) -> bytes:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(fig)


def _time_edges(timeseries: pd.DataFrame) -> np.ndarray | None:
    """Interval edges (naive UTC ``datetime64``), one more than rows; None when there is nothing to draw."""
    if len(timeseries) == 0 or "time" not in timeseries.columns:
        return None
    times = pd.DatetimeIndex(timeseries["time"])
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    if {"t_start_s", "t_end_s"} <= set(timeseries.columns):
        last_s = float(timeseries["t_end_s"].iloc[-1] - timeseries["t_start_s"].iloc[-1])
    else:
        last_s = float((times[-1] - times[-2]).total_seconds()) if len(times) > 1 else 0.0
    end = times[-1] + pd.to_timedelta(last_s, unit="s")
    return np.append(times.to_numpy(), np.datetime64(end.to_datetime64()))


def _steps(ax: Axes, edges: np.ndarray, values: pd.Series | np.ndarray, **kwargs: Any) -> None:
    v = np.asarray(values, dtype=float)
    ax.step(edges, np.append(v, v[-1]), where="post", **kwargs)


def _date_axis(ax: Axes) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _clusters(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    clusters = summary.get("clusters")
    if not isinstance(clusters, Mapping):
        return {}
    return {str(k): v for k, v in clusters.items() if isinstance(v, Mapping)}


def _finish(fig: Figure, ax: Axes) -> bytes:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return _png(fig)


def power_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """IT and facility power (interval means, MW); per-cluster IT power when there are several clusters."""
    fig, ax = _new_axes("Power draw (interval means)", "power (MW)")
    edges = _time_edges(timeseries)
    if edges is None:
        return _no_data(fig, ax, "no time-series rows")
    if "facility_power_mw" in timeseries.columns:
        _steps(ax, edges, timeseries["facility_power_mw"], label="facility (IT × PUE)", color="tab:red")
    if "it_power_mw" in timeseries.columns:
        _steps(ax, edges, timeseries["it_power_mw"], label="IT", color="tab:blue")
    names = [c for c in _clusters(summary) if f"it_power_mw.{c}" in timeseries.columns]
    if len(names) > 1:
        for c in names:
            _steps(ax, edges, timeseries[f"it_power_mw.{c}"], label=f"IT {c}", linewidth=0.9, linestyle="--")
    ax.set_ylim(bottom=0)
    _date_axis(ax)
    return _finish(fig, ax)


def utilisation_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """GPUs held by training jobs or inference replicas per cluster, as a share of its GPUs (interval means, %)."""
    fig, ax = _new_axes("GPU utilisation by cluster (allocated GPUs, interval means)", "allocated GPUs (%)")
    edges = _time_edges(timeseries)
    if edges is None:
        return _no_data(fig, ax, "no time-series rows")
    drawn = False
    for name, info in _clusters(summary).items():
        gpus = info.get("gpus")
        col = f"allocated_gpus.{name}"
        if col in timeseries.columns and isinstance(gpus, int | float) and gpus > 0:
            held = timeseries[col].to_numpy(dtype=float)
            if f"infer_gpus.{name}" in timeseries.columns:  # replicas hold GPUs too, as in the summary
                held = held + timeseries[f"infer_gpus.{name}"].to_numpy(dtype=float)
            _steps(ax, edges, 100.0 * held / float(gpus), label=name)
            drawn = True
    if not drawn:
        return _no_data(fig, ax, "no per-cluster allocation columns")
    ax.set_ylim(0, 105)
    _date_axis(ax)
    return _finish(fig, ax)


def queue_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """Queued and running jobs, counted at the end of each report interval."""
    fig, ax = _new_axes("Jobs queued and running (at each interval end)", "jobs (count)")
    edges = _time_edges(timeseries)
    if edges is None:
        return _no_data(fig, ax, "no time-series rows")
    ends = edges[1:]
    drawn = False
    series = (("queued_jobs", "queued", "tab:orange"), ("running_jobs", "running", "tab:green"))
    for col, label, color in series:
        if col in timeseries.columns:
            ax.plot(ends, timeseries[col].to_numpy(dtype=float), label=label, color=color, marker=".",
                    markersize=3)
            drawn = True
    if not drawn:
        return _no_data(fig, ax, "no job-count columns")
    ax.set_ylim(bottom=0)
    _date_axis(ax)
    return _finish(fig, ax)


def wait_cdf_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """Empirical CDF of the wait (submit to start) of jobs that started, hours on a log axis.

    Waits under one second (typically zero) are drawn at one second; jobs never started are counted in the
    legend but cannot be placed on the curve (their wait is at least the time left in the run).
    """
    fig, ax = _new_axes("Wait time of started jobs (CDF)", "jobs started within wait (%)",
                        xlabel="wait from submit to start (h, log scale)")
    if len(jobs) == 0 or not {"start_s", "wait_s"} <= set(jobs.columns):
        return _no_data(fig, ax, "no jobs submitted")
    started = jobs["start_s"].notna().to_numpy()
    waits_s = np.sort(jobs.loc[started, "wait_s"].to_numpy(dtype=float))
    waits_s = waits_s[np.isfinite(waits_s)]
    if len(waits_s) == 0:
        return _no_data(fig, ax, f"none of {len(jobs):,} submitted jobs started")
    n = len(waits_s)
    n_floor = int((waits_s < _WAIT_FLOOR_S).sum())
    x_h = np.maximum(waits_s, _WAIT_FLOOR_S) / 3600.0
    y = 100.0 * np.arange(1, n + 1) / n
    label = f"{n:,} started ({n_floor:,} waited < {_WAIT_FLOOR_S:g} s, drawn at {_WAIT_FLOOR_S:g} s)"
    ax.step(np.concatenate(([x_h[0]], x_h)), np.concatenate(([0.0], y)), where="post", label=label)
    never = int((~started).sum())
    if never:
        ax.plot([], [], " ", label=f"{never:,} never started (not shown)")
    ax.set_xscale("log")
    lo, hi = float(x_h[0]), float(x_h[-1])
    if hi <= lo:
        ax.set_xlim(lo / 10.0, lo * 10.0)
    ax.set_ylim(0, 102)
    return _finish(fig, ax)


def energy_plot(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes:
    """IT energy per cluster (training and idle) and the facility overhead (PUE), over the horizon (MWh)."""
    fig, ax = _new_axes("Energy over the horizon", "energy (MWh)", xlabel="")
    names: list[str] = []
    train: list[float] = []
    idle: list[float] = []
    for name, info in _clusters(summary).items():
        it = float(info.get("it_mwh") or 0.0)
        tr = float(info.get("training_mwh") or 0.0)
        names.append(name)
        train.append(tr)
        idle.append(max(it - tr, 0.0))
    energy = summary.get("energy")
    overhead = 0.0
    if isinstance(energy, Mapping):
        it_total = float(energy.get("it_mwh") or sum(train) + sum(idle))
        if energy.get("facility_mwh") is not None:
            overhead = max(float(energy["facility_mwh"]) - it_total, 0.0)
        elif energy.get("pue") is not None:
            overhead = max((float(energy["pue"]) - 1.0) * it_total, 0.0)
    if not names and overhead == 0.0:
        return _no_data(fig, ax, "no energy figures in the summary")
    x = np.arange(len(names) + 1)
    ax.bar(x[:-1], train, label="training (IT)", color="tab:blue")
    ax.bar(x[:-1], idle, bottom=train, label="idle (IT)", color="tab:gray")
    ax.bar(x[-1:], [overhead], label="facility overhead (PUE)", color="tab:red")
    totals = [t + i for t, i in zip(train, idle, strict=True)] + [overhead]
    for xi, total in zip(x, totals, strict=True):
        ax.annotate(f"{total:.3g}", (float(xi), total), ha="center", va="bottom", fontsize="small",
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, [*(f"{n}\n(IT)" for n in names), "facility\noverhead"])
    ax.set_ylim(0, max(max(totals) * 1.15, 1e-9))
    return _finish(fig, ax)


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
    PlotSpec("wait_cdf", "Wait-time distribution", wait_cdf_plot),
    PlotSpec("energy", "Energy breakdown", energy_plot),
    PlotSpec("gpus_by_use", "GPUs by use: training, inference, idle", _infer.gpus_by_use_png),
    PlotSpec("inference_demand", "Inference demand vs capacity", _infer.demand_vs_capacity_png),
    PlotSpec("power_vs_cap", "Facility power, grid draw and any cap (throttling shaded)", _energy.plot_power_vs_cap),
    PlotSpec("energy_budget", "Energy and budget use per period", _energy.plot_energy_budget),
    PlotSpec("carbon_cost_by_class", "Carbon and cost by workload class", _energy.plot_carbon_cost_by_class),
    PlotSpec("interruptions", "Interruptions over time", _reliability.interruptions_over_time),
    PlotSpec("goodput_vs_size", "Goodput vs job size", _reliability.goodput_vs_job_size),
)
"""Every plot of the report, in page order."""


def render_plots(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame,
                 specs: tuple[PlotSpec, ...] = PLOTS) -> dict[str, bytes]:
    """Draw every plot in ``specs``: ``{name: PNG bytes}`` in page order."""
    drawn = {spec.name: spec.draw(summary, timeseries, jobs) for spec in specs}
    return {name: png for name, png in drawn.items() if png is not None}
