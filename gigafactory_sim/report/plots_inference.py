"""Plots of inference services (PNG bytes via ``matplotlib.figure.Figure``; no pyplot, no global state).

Each function has the report's plot signature ``(summary, timeseries, jobs) -> bytes | None`` and returns
``None`` when the run has no inference services. Time axes, legends and number formats follow
:mod:`gigafactory_sim.report.plot_style`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gigafactory_sim.report import plot_style as style

__all__ = ["demand_vs_capacity_png", "gpus_by_use_png"]


def _services(summary: Mapping[str, Any], timeseries: pd.DataFrame) -> list[str]:
    inference = summary.get("inference")
    if not inference:
        return []
    return [s for s in inference["services"] if f"infer_demand_rps.{s}" in timeseries.columns]


def _steps(values: pd.Series) -> np.ndarray:
    v = values.to_numpy(dtype=float)
    return np.append(v, v[-1])


def demand_vs_capacity_png(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Per service: offered demand, requests served and serving capacity (requests/s), replicas on a second
    axis."""
    services = _services(summary, timeseries)
    edges = style.time_edges(timeseries)
    if not services or timeseries.empty or edges is None:
        return None
    fig = style.new_figure(2.7 * len(services) + 0.9)
    axes = fig.subplots(len(services), 1, sharex=True, squeeze=False)[:, 0]
    twins = []
    for ax, name in zip(axes, services, strict=True):
        ax.fill_between(
            edges,
            _steps(timeseries[f"infer_capacity_rps.{name}"]),
            step="post",
            alpha=0.25,
            color="tab:green",
            label="capacity of serving replicas",
        )
        style.steps(ax, edges, timeseries[f"infer_demand_rps.{name}"], color="tab:blue", label="demand")
        style.steps(ax, edges, timeseries[f"infer_served_rps.{name}"], color="tab:orange", lw=0.8, label="served")
        ax.set_ylabel("requests/s")
        ax.set_ylim(bottom=0)
        ax.set_title(name, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        style.thousands(ax)
        twin = ax.twinx()
        twins.append(twin)
        style.steps(
            twin,
            edges,
            timeseries[f"infer_replicas.{name}"],
            color="0.35",
            lw=0.7,
            ls="--",
            label="replicas (right axis)",
        )
        twin.set_ylabel("replicas")
        twin.set_ylim(bottom=0, top=max(1.0, float(timeseries[f"infer_replicas.{name}"].max()) * 1.15))
        style.counts(twin)
        style.shade_warmup(ax, summary, edges)
    style.time_axis(axes[-1], edges)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    fig.suptitle("Inference demand against capacity")
    style.legend_below(fig, [axes[0], twins[0]])
    return style.png(fig)


def gpus_by_use_png(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """GPUs allocated to training, held by inference replicas, and idle (interval means), stacked."""
    edges = style.time_edges(timeseries)
    if not summary.get("inference") or "inference_gpus" not in timeseries.columns or edges is None:
        return None
    total = float(summary["gpus_total"])
    training = timeseries["allocated_gpus"].to_numpy(dtype=float)
    inference = timeseries["inference_gpus"].to_numpy(dtype=float)
    idle = np.maximum(total - training - inference, 0.0)
    fig = style.new_figure(4.0)
    ax = fig.add_subplot()
    ax.stackplot(
        edges,
        np.append(inference, inference[-1]),
        np.append(training, training[-1]),
        np.append(idle, idle[-1]),
        labels=["inference", "training", "idle"],
        colors=["tab:purple", "tab:blue", "lightgrey"],
        step="post",
    )
    ax.set_ylim(0, total)
    ax.set_ylabel("GPUs")
    ax.set_title("GPUs by use (interval means)")
    style.shade_warmup(ax, summary, edges)
    style.time_axis(ax, edges)
    style.thousands(ax)
    style.legend_below(fig, ax)
    return style.png(fig)
