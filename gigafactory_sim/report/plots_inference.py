"""Plots of inference services (PNG bytes via ``matplotlib.figure.Figure``; no pyplot, no global state).

Each function has the report's plot signature ``(summary, timeseries, jobs) -> bytes | None`` and returns
``None``
when the run has no inference services.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["demand_vs_capacity_png", "gpus_by_use_png"]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _services(summary: Mapping[str, Any], timeseries: pd.DataFrame) -> list[str]:
    inference = summary.get("inference")
    if not inference:
        return []
    return [s for s in inference["services"] if f"infer_demand_rps.{s}" in timeseries.columns]


def _hours(timeseries: pd.DataFrame) -> np.ndarray:
    return timeseries["t_start_s"].to_numpy() / 3600.0


def demand_vs_capacity_png(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame
) -> bytes | None:
    """Per service: offered demand, requests served and serving capacity (requests/s), replicas on a second
    axis."""
    services = _services(summary, timeseries)
    if not services or timeseries.empty:
        return None
    fig = Figure(figsize=(10, 2.6 * len(services) + 0.6))
    axes = fig.subplots(len(services), 1, sharex=True, squeeze=False)[:, 0]
    t = _hours(timeseries)
    for ax, name in zip(axes, services, strict=True):
        ax.fill_between(
            t,
            timeseries[f"infer_capacity_rps.{name}"],
            step="post",
            alpha=0.25,
            color="tab:green",
            label="capacity (serving replicas)",
        )
        ax.step(t, timeseries[f"infer_demand_rps.{name}"], where="post", color="tab:blue", label="demand")
        ax.step(
            t,
            timeseries[f"infer_served_rps.{name}"],
            where="post",
            color="tab:orange",
            lw=0.8,
            label="served",
        )
        ax.set_ylabel("requests/s")
        ax.set_title(name, loc="left", fontsize=10)
        twin = ax.twinx()
        twin.step(t, timeseries[f"infer_replicas.{name}"], where="post", color="grey", lw=0.6, ls="--")
        twin.set_ylabel("replicas", color="grey")
        twin.set_ylim(bottom=0, top=max(1.0, float(timeseries[f"infer_replicas.{name}"].max()) * 1.15))
        twin.ticklabel_format(useOffset=False, axis="y")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("hours from start")
    fig.suptitle("Inference demand vs capacity")
    return _png(fig)


def gpus_by_use_png(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """GPUs allocated to training, held by inference replicas, and idle (interval means), stacked."""
    if not summary.get("inference") or "inference_gpus" not in timeseries.columns or timeseries.empty:
        return None
    total = float(summary["gpus_total"])
    training = timeseries["allocated_gpus"].to_numpy()
    inference = timeseries["inference_gpus"].to_numpy()
    idle = np.maximum(total - training - inference, 0.0)
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    t = _hours(timeseries)
    ax.stackplot(
        t,
        inference,
        training,
        idle,
        labels=["inference", "training", "idle"],
        colors=["tab:orange", "tab:blue", "lightgrey"],
        step="post",
    )
    ax.set_xlim(t[0], timeseries["t_end_s"].iloc[-1] / 3600.0)
    ax.set_ylim(0, total)
    ax.set_xlabel("hours from start")
    ax.set_ylabel("GPUs")
    ax.set_title("GPUs by use")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)
