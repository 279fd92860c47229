"""Energy plots: power against the cap (throttling shaded on a colour scale), energy and budget use per period,
carbon and cost by class. Each is ``(summary, timeseries, jobs) -> PNG bytes``, or ``None`` when the run has
nothing to show.

Built on :class:`matplotlib.figure.Figure` (no pyplot, no global state) with the report's common look
(:mod:`gigafactory_sim.report.plot_style`); the report writer saves the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize

from gigafactory_sim.report import plot_style as style
from gigafactory_sim.report.format import sig

__all__ = ["ENERGY_PLOTS", "plot_carbon_cost_by_class", "plot_energy_budget", "plot_power_vs_cap"]

_THROTTLE_CMAP = "Purples"
_SHADE_ALPHA = 0.55


def plot_power_vs_cap(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Facility power, grid import and the cap over time; intervals with throttled GPUs shaded by the share of
    GPUs throttled, read on the colour scale beside the plot."""
    ts = timeseries
    edges = style.time_edges(ts)
    if "grid_import_mw" not in ts or ts.empty or edges is None:
        return None
    fig = style.new_figure(4.4)
    ax = fig.add_subplot()
    throttled = "throttled_fraction" in ts and bool((ts["throttled_fraction"] > 0).any())
    if throttled:
        frac = ts["throttled_fraction"].to_numpy(dtype=float)
        cmap = ListedColormap(colormaps[_THROTTLE_CMAP](np.linspace(0.15, 1.0, 256)))
        norm = Normalize(0.0, 100.0 * max(float(frac.max()), 1e-9))
        style.spans(ax, edges, 100.0 * frac, cmap, norm, alpha=_SHADE_ALPHA, zorder=0)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, fraction=0.04, alpha=_SHADE_ALPHA)
        bar.set_label("GPUs throttled (%): the shading")
    style.steps(ax, edges, ts["facility_power_mw"], lw=0.8, color="tab:gray", label="facility power")
    style.steps(ax, edges, ts["grid_import_mw"], lw=0.9, color="tab:blue", label="grid draw")
    if "renewable_used_mw" in ts:
        style.steps(ax, edges, ts["renewable_used_mw"], lw=0.7, color="tab:olive", label="on-site renewables used")
    if "hard_cap_mw" in ts:
        style.steps(ax, edges, ts["hard_cap_mw"], lw=1.4, color="tab:red", label="hard cap")
    if "cap_mw" in ts and ("hard_cap_mw" not in ts or not np.allclose(ts["cap_mw"], ts["hard_cap_mw"])):
        style.steps(ax, edges, ts["cap_mw"], lw=1.0, ls="--", color="tab:orange", label="effective cap (budgets)")
    ax.set_ylabel("power (MW)")
    ax.set_ylim(bottom=0)
    capped = "hard_cap_mw" in ts
    ax.set_title("Grid draw against the cap" if capped else "Facility power, grid draw and on-site renewables")
    ax.grid(alpha=0.3)
    style.shade_warmup(ax, summary, edges)
    style.time_axis(ax, edges)
    style.thousands(ax)
    style.legend_below(fig, ax, ncols=5)
    return style.png(fig)


def plot_energy_budget(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Use against budget per period for each budget; without budgets, grid energy per day."""
    budgets = summary.get("budgets") or []
    ts = timeseries
    if not budgets:
        if "grid_import_mw" not in ts or ts.empty or "time" not in ts:
            return None
        hours = (ts["t_end_s"] - ts["t_start_s"]) / 3600.0
        times = pd.DatetimeIndex(ts["time"])
        times = times.tz_convert("UTC").tz_localize(None) if times.tz is not None else times
        daily = (ts["grid_import_mw"] * hours).groupby(times.floor("D")).sum()
        fig = style.new_figure(3.8)
        ax = fig.add_subplot()
        centres = pd.DatetimeIndex(daily.index) + pd.Timedelta(hours=12)
        bars = ax.bar(centres, daily.to_numpy(), width=0.8, color="tab:blue")
        if len(daily) <= 16:
            style.bar_labels(ax, bars, daily.to_numpy(dtype=float).tolist())
        ax.set_ylabel("grid energy (MWh)")
        ax.set_title("Energy drawn from the grid per day (UTC days)")
        ax.grid(alpha=0.3, axis="y")
        start = daily.index[0]
        end = daily.index[-1] + pd.Timedelta(days=1)
        style.time_axis(ax, np.array([start.to_datetime64(), end.to_datetime64()]))
        style.thousands(ax)
        return style.png(fig)
    fig = style.new_figure(3.4 * len(budgets))
    axes = fig.subplots(len(budgets), 1, squeeze=False)[:, 0]
    for ax, b in zip(axes, budgets, strict=True):
        unit = b["unit"].lower()
        periods = b["periods"]
        labels = [p["start"][:10] for p in periods]
        used = np.array([p[f"used_{unit}"] for p in periods], dtype=float)
        budget = np.array([p[f"budget_{unit}"] for p in periods], dtype=float)
        pos = np.arange(len(periods))
        ax.bar(pos, budget, color="none", edgecolor="tab:red", lw=1.2, label="budget")
        ax.bar(pos, used, width=0.6, color="tab:blue", label="used")
        for i, p in enumerate(periods):
            ax.annotate(
                f"{sig(used[i])} ({p['used_fraction']:.0%})",
                (pos[i], used[i]),
                ha="center",
                va="bottom",
                fontsize="small",
                xytext=(0, 2),
                textcoords="offset points",
            )
        ax.set_xticks(pos, [f"from {lab}" for lab in labels], rotation=30 if len(periods) > 6 else 0, fontsize="small")
        ax.set_ylabel({"t": "t CO2", "mwh": "MWh", "eur": "EUR"}.get(unit, b["unit"]))
        ax.set_title(f"{str(b['kind']).capitalize()} budget per {b['per']} ({b['pacing']} pacing)")
        ax.set_ylim(0, max(float(budget.max()), float(used.max())) * 1.15 or 1.0)
        ax.grid(alpha=0.3, axis="y")
        style.thousands(ax)
    style.legend_below(fig, list(axes))
    return style.png(fig)


_PALETTE = {"training": "tab:blue", "inference": "tab:purple", "idle": "tab:gray"}


def plot_carbon_cost_by_class(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Carbon (t CO2) and electricity cost (EUR) by workload class: training, inference, idle capacity; each
    bar labelled with its value, so a small class still reads."""
    wanted = (
        ("carbon", "by_class_t", "total_t", "Carbon", "t CO2"),
        ("cost", "by_class_eur", "total_eur", "Electricity cost", "EUR"),
    )
    panels = [w for w in wanted if isinstance(summary.get(w[0]), Mapping) and summary[w[0]].get(w[1])]
    if not panels:
        return None
    fig = style.new_figure(3.8, 4.5 * len(panels))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, by, total_key, title, unit) in zip(axes, panels, strict=True):
        classes = summary[key][by]
        names = list(classes)
        values = [float(classes[n]) for n in names]
        bars = ax.bar(names, values, color=[_PALETTE.get(n, "tab:green") for n in names])
        style.bar_labels(ax, bars, values)
        total = summary[key].get(total_key)
        ax.set_title(f"{title}: {sig(float(total))} {unit}" if total is not None else title)
        ax.set_ylabel(unit)
        ax.set_ylim(0, max(values) * 1.18 or 1.0)
        ax.grid(alpha=0.3, axis="y")
        style.thousands(ax)
    return style.png(fig)


ENERGY_PLOTS = {
    "power_vs_cap": plot_power_vs_cap,
    "energy_budget": plot_energy_budget,
    "carbon_cost_by_class": plot_carbon_cost_by_class,
}
