"""Figures for comparisons and sweeps. Each function returns a :class:`matplotlib.figure.Figure` (no pyplot,
no global state, nothing written); :func:`png_bytes` renders one."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "class_bars",
    "metric_vs_param",
    "png_bytes",
    "power_over_time",
    "utilisation_over_time",
    "wait_cdf",
]

Series = tuple[str, pd.DataFrame]


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _time_axis(frames: Sequence[pd.DataFrame]) -> tuple[float, str]:
    """Seconds per unit and the unit's name for elapsed time: hours up to three days, days beyond."""
    longest = max((float(df["t_end_s"].max()) for df in frames if len(df)), default=0.0)
    return (86400.0, "days") if longest > 3 * 86400 else (3600.0, "hours")


def _step(ax: Axes, df: pd.DataFrame, column: str, scale: float, unit_s: float, label: str) -> None:
    x = np.append(df["t_start_s"].to_numpy(), df["t_end_s"].to_numpy()[-1:]) / unit_s
    y = df[column].to_numpy() * scale
    ax.stairs(y, x, baseline=None, label=label, linewidth=1.4)


def power_over_time(runs: Sequence[Series]) -> Figure:
    """Facility power (MW, interval means) against elapsed time, one line per run."""
    fig = Figure(figsize=(9, 3.6))
    ax = fig.add_subplot()
    unit_s, unit = _time_axis([df for _, df in runs])
    for label, df in runs:
        if len(df):
            _step(ax, df, "facility_power_mw", 1.0, unit_s, label)
    ax.set(xlabel=f"elapsed time ({unit})", ylabel="facility power (MW)", title="Facility power over time")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def utilisation_over_time(runs: Sequence[tuple[str, pd.DataFrame, int]]) -> Figure:
    """Allocated GPUs as a share of the facility's GPUs (``(label, timeseries, gpus_total)`` per run)."""
    fig = Figure(figsize=(9, 3.6))
    ax = fig.add_subplot()
    unit_s, unit = _time_axis([df for _, df, _ in runs])
    for label, df, gpus in runs:
        if len(df) and gpus > 0:
            _step(ax, df, "allocated_gpus", 100.0 / gpus, unit_s, label)
    ax.set(xlabel=f"elapsed time ({unit})", ylabel="GPUs allocated (%)", title="Utilisation over time")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def wait_cdf(runs: Sequence[Series]) -> Figure:
    """Empirical CDF of the wait of started jobs (hours, symmetric-log axis: zero waits stay visible)."""
    fig = Figure(figsize=(9, 3.6))
    ax = fig.add_subplot()
    for label, jobs in runs:
        waits = np.sort(jobs.loc[jobs["start_s"].notna(), "wait_s"].to_numpy(dtype=float)) / 3600.0
        if len(waits) == 0:
            continue
        frac = np.arange(1, len(waits) + 1) / len(waits)
        ax.step(np.concatenate([[0.0], waits]), np.concatenate([[0.0], frac]), where="post", label=label,
                linewidth=1.4)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set(xlabel="wait before start (hours)", ylabel="share of started jobs", title="Wait-time CDF")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def class_bars(panels: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Figure:
    """Grouped bars, one panel per quantity: ``{panel title: {class: {run label: value}}}``."""
    n = max(len(panels), 1)
    fig = Figure(figsize=(4.2 * n + 1, 3.8))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, classes) in zip(axes, panels.items(), strict=False):
        labels = list(dict.fromkeys(run for values in classes.values() for run in values))
        x = np.arange(len(classes))
        width = 0.8 / max(len(labels), 1)
        for i, run in enumerate(labels):
            heights = [classes[c].get(run, np.nan) for c in classes]
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, heights, width, label=run)
        ax.set_xticks(x, list(classes), rotation=20, ha="right")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def metric_vs_param(aggregate: pd.DataFrame, param: str, metric: str, groups: Sequence[str] = ()) -> Figure:
    """Mean of ``metric`` against ``param`` with its 95 % confidence band; a line per ``groups`` combination.

    ``aggregate`` is a sweep's aggregate table (columns ``param``, ``metric``, ``mean``, ``ci95_low``,
    ``ci95_high``). A non-numeric parameter is plotted at evenly spaced categorical positions.
    """
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    rows = aggregate[aggregate["metric"] == metric]
    values = list(dict.fromkeys(rows[param]))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    grouped = rows.groupby(list(groups), sort=False) if groups else [((), rows)]
    for key, part in grouped:
        keys = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{g}={k}" for g, k in zip(groups, keys, strict=True)) or metric
        part = part.sort_values(param) if numeric else part
        x = part[param].to_numpy(dtype=float) if numeric else np.array([values.index(v) for v in part[param]])
        ax.plot(x, part["mean"], marker="o", label=label)
        low, high = part["ci95_low"].to_numpy(dtype=float), part["ci95_high"].to_numpy(dtype=float)
        if np.isfinite(low).any():
            ax.fill_between(x, low, high, alpha=0.2)
    if not numeric:
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.set(xlabel=param, ylabel=metric, title=f"{metric} against {param} (mean, 95 % CI)")
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(fontsize="small")
    return fig
