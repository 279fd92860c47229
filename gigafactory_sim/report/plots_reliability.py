"""Reliability plots (PNG bytes; matplotlib ``Figure`` objects, no pyplot, so no global state).

Each function takes a run's ``(summary, timeseries, jobs)`` and returns PNG bytes, or None when the run has no
reliability data (no ``failures``/``checkpointing`` in the scenario) or nothing to show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gigafactory_sim.report import plot_style as style

__all__ = ["goodput_vs_job_size", "interruptions_over_time"]

PARTS = ("productive", "checkpoints", "restarts", "redone work", "waiting after interruptions")


def interruptions_over_time(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Job interruptions per UTC day by cluster (bars) and the daily mean of nodes down (line)."""
    edges = style.time_edges(timeseries)
    if "interruptions" not in timeseries.columns or "reliability" not in summary or edges is None:
        return None
    clusters = [c for c in summary.get("clusters", {}) if f"interruptions.{c}" in timeseries.columns]
    times = pd.DatetimeIndex(edges[:-1])
    frame = pd.DataFrame({"day": times.floor("D")})
    for c in clusters:
        frame[c] = timeseries[f"interruptions.{c}"].to_numpy()
    dt = (timeseries["t_end_s"] - timeseries["t_start_s"]).to_numpy()
    frame["down"] = timeseries["down_nodes"].to_numpy() * dt
    frame["dt"] = dt
    daily = frame.groupby("day").sum()
    fig = style.new_figure(4.2)
    ax = fig.add_subplot()
    centres = pd.DatetimeIndex(daily.index) + pd.Timedelta(hours=12)
    bottom = np.zeros(len(daily))
    for c in clusters:
        ax.bar(centres, daily[c], bottom=bottom, width=0.8, label=f"interruptions, {c}")
        bottom += daily[c].to_numpy()
    ax.set_ylabel("job interruptions per day")
    rel = summary["reliability"]
    ax.set_title(f"{rel['interruptions']:,} job interruptions from {rel['node_failures']:,} node failures")
    ax.grid(alpha=0.3, axis="y")
    twin = ax.twinx()
    twin.plot(
        centres,
        daily["down"] / daily["dt"],
        color="black",
        lw=1.2,
        marker="o",
        markersize=3,
        label="nodes down (daily mean, right axis)",
    )
    twin.set_ylabel("nodes down (daily mean)")
    twin.set_ylim(bottom=0)
    style.counts(ax)
    style.thousands(twin)
    start, end = daily.index[0], daily.index[-1] + pd.Timedelta(days=1)
    style.time_axis(ax, np.array([start.to_datetime64(), end.to_datetime64()]))
    style.legend_below(fig, [ax, twin])
    return style.png(fig)


def goodput_vs_job_size(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Left: where the GPU-time of jobs of each size went, from first start to end (GPU-weighted):
    productive (the ETTR), checkpoints, restarts, redone work, waiting in the queue after interruptions.
    Right: job MTBF by size, measured, against the model's 1 / (nodes x rate)."""
    if "ettr" not in jobs.columns or "reliability" not in summary:
        return None
    started = jobs[jobs["start_s"].notna() & (jobs["ettr"] > 0)]
    if started.empty:
        return None
    wall = started["productive_gpu_h"] / started["ettr"]
    parts = (
        pd.DataFrame(
            {
                "gpus": started["gpus"],
                "wall": wall,
                "productive": started["productive_gpu_h"],
                "checkpoints": started["checkpoint_gpu_h"],
                "restarts": started["restart_gpu_h"],
                "redone work": started["lost_gpu_h"],
                "waiting after interruptions": wall - started["run_gpu_h"],
            }
        )
        .groupby("gpus")
        .sum()
    )
    fig = style.new_figure(4.6, 11.0)
    ax, ax2 = fig.subplots(1, 2)
    x = np.arange(len(parts))
    bottom = np.zeros(len(parts))
    colors = ("tab:green", "tab:blue", "tab:orange", "tab:red", "tab:gray")
    for name, color in zip(PARTS, colors, strict=True):
        share = (parts[name] / parts["wall"]).clip(lower=0.0).to_numpy()
        label = "productive (ETTR)" if name == "productive" else name
        ax.bar(x, share, bottom=bottom, color=color, width=0.8, label=label)
        bottom += share
    ettr = (parts["productive"] / parts["wall"]).to_numpy()
    ax.set_xticks(x, [f"{g:,}" for g in parts.index], rotation=60, fontsize=7)
    ax.set_xlabel("job size (GPUs)")
    ax.set_ylabel("share of GPU-time from first start to end")
    ax.set_ylim(max(0.0, float(ettr.min()) - 0.05), 1.0)
    ax.set_title("Goodput vs job size")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.28), ncols=2, frameon=False)
    rows = [r for r in summary["reliability"].get("job_mtbf_by_size", []) if r["mtbf_h"] is not None]
    if rows:
        for k, cluster in enumerate(sorted({r["cluster"] for r in rows})):
            color = f"C{k}"
            mine = [r for r in rows if r["cluster"] == cluster]
            ax2.loglog(
                [r["gpus"] for r in mine], [r["mtbf_h"] for r in mine], "o", color=color, label=f"measured, {cluster}"
            )
            model = [(r["gpus"], r["expected_mtbf_h"]) for r in mine if r["expected_mtbf_h"] is not None]
            if model:
                ax2.loglog(*zip(*model, strict=True), "-", lw=1, color=color, label=f"1 / (nodes x rate), {cluster}")
        ax2.set_xlabel("job size (GPUs)")
        ax2.set_ylabel("job MTBF (hours)")
        ax2.set_title("Job MTBF vs size")
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncols=2, frameon=False)
        style.log_ticks(ax2, "x")
        style.log_ticks(ax2, "y")
    else:
        ax2.set_axis_off()
    return style.png(fig)
