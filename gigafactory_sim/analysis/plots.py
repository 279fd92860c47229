"""Figures for comparisons and sweeps. Each function returns a :class:`matplotlib.figure.Figure` (no pyplot,
no global state, nothing written); :func:`png_bytes` renders one."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = [
    "carbon_over_time",
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


def _same(frames: Sequence[pd.DataFrame], column: str) -> bool:
    """Whether every frame has ``column`` and all of them hold the same values."""
    if not frames or any(column not in df or len(df) != len(frames[0]) for df in frames):
        return False
    first = frames[0][column].to_numpy(dtype=float)
    return all(np.allclose(df[column].to_numpy(dtype=float), first, rtol=1e-9, atol=1e-9) for df in frames[1:])


def _legend_below(fig: Figure, ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=4, fontsize="small", frameon=False)


def _thousands(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _pos=None: f"{x:,.0f}" if abs(x) >= 1000 else f"{x:g}"))


def power_over_time(runs: Sequence[Series]) -> Figure:
    """Facility power (MW, interval means) against elapsed time, one line per run; the grid draw instead when
    every run has one and their facility power is the same (two grids under one facility: the lines would
    coincide)."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    frames = [df for _, df in runs if len(df)]
    unit_s, unit = _time_axis(frames)
    column, what = "facility_power_mw", "facility power"
    if len(frames) > 1 and _same(frames, "facility_power_mw") and all("grid_import_mw" in df for df in frames):
        column, what = "grid_import_mw", "grid draw"
    for label, df in runs:
        if len(df) and column in df:
            _step(ax, df, column, 1.0, unit_s, label)
    title = (
        "Grid draw over time (facility power is the same in every run)"
        if column == "grid_import_mw"
        else "Facility power over time"
    )
    ax.set(xlabel=f"elapsed time ({unit})", ylabel=f"{what} (MW)", title=title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _thousands(ax)
    _legend_below(fig, ax)
    return fig


def carbon_over_time(runs: Sequence[Series]) -> Figure | None:
    """Cumulative carbon emitted (t CO2) against elapsed time, one line per run; None when no run has carbon
    accounting."""
    frames = [(label, df) for label, df in runs if len(df) and "carbon_t" in df]
    if not frames:
        return None
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    unit_s, unit = _time_axis([df for _, df in frames])
    for label, df in frames:
        x = np.append(df["t_start_s"].to_numpy()[:1], df["t_end_s"].to_numpy()) / unit_s
        y = np.append([0.0], np.cumsum(df["carbon_t"].to_numpy(dtype=float)))
        ax.plot(x, y, label=f"{label}: {y[-1]:,.0f} t", linewidth=1.4)
    ax.set(xlabel=f"elapsed time ({unit})", ylabel="carbon emitted (t CO2)", title="Cumulative carbon emitted")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _thousands(ax)
    _legend_below(fig, ax)
    return fig


def utilisation_over_time(runs: Sequence[tuple[str, pd.DataFrame, int]]) -> Figure:
    """Allocated GPUs as a share of the facility's GPUs (``(label, timeseries, gpus_total)`` per run)."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    unit_s, unit = _time_axis([df for _, df, _ in runs])
    for label, df, gpus in runs:
        if len(df) and gpus > 0:
            _step(ax, df, "allocated_gpus", 100.0 / gpus, unit_s, label)
    ax.set(xlabel=f"elapsed time ({unit})", ylabel="GPUs allocated (%)", title="Utilisation over time")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return fig


def wait_cdf(runs: Sequence[Series]) -> Figure:
    """Empirical CDF of the wait of started jobs (hours, symmetric-log axis: zero waits stay visible)."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for label, jobs in runs:
        waits = np.sort(jobs.loc[jobs["start_s"].notna(), "wait_s"].to_numpy(dtype=float)) / 3600.0
        if len(waits) == 0:
            continue
        frac = np.arange(1, len(waits) + 1) / len(waits)
        ax.step(np.concatenate([[0.0], waits]), np.concatenate([[0.0], frac]), where="post", label=label, linewidth=1.4)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set(xlabel="wait before start (hours)", ylabel="share of started jobs", title="Wait-time CDF")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
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
            bars = ax.bar(x + (i - (len(labels) - 1) / 2) * width, heights, width, label=run)
            ax.bar_label(
                bars,
                labels=[f"{h:,.0f}" if abs(h) >= 100 else f"{h:.3g}" if np.isfinite(h) else "" for h in heights],
                fontsize=6,
                rotation=90,
                padding=2,
            )
        ax.set_xticks(x, list(classes), rotation=20, ha="right")
        ax.set_title(title)
        ax.margins(y=0.25)
        ax.grid(axis="y", alpha=0.3)
        _thousands(ax)
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
