"""Energy plots: power against the cap (throttling shaded), energy and budget use per period, carbon and cost
by class. Each is ``(summary, timeseries, jobs) -> PNG bytes``, or ``None`` when the run has nothing to show.

Built on :class:`matplotlib.figure.Figure` (no pyplot, no global state); the report writer saves the bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["ENERGY_PLOTS", "plot_carbon_cost_by_class", "plot_energy_budget", "plot_power_vs_cap"]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _days(ts: pd.DataFrame) -> np.ndarray:
    return ts["t_start_s"].to_numpy() / 86400.0


def plot_power_vs_cap(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Facility power, grid import and the cap over time; intervals with throttled GPUs shaded by how many."""
    ts = timeseries
    if "grid_import_mw" not in ts or ts.empty:
        return None
    x = np.append(_days(ts), ts["t_end_s"].iloc[-1] / 86400.0)

    def steps(col: str) -> np.ndarray:
        v = ts[col].to_numpy()
        return np.append(v, v[-1])

    fig = Figure(figsize=(10, 4.2))
    ax = fig.add_subplot()
    ax.step(x, steps("facility_power_mw"), where="post", lw=0.8, color="tab:gray", label="facility power")
    ax.step(x, steps("grid_import_mw"), where="post", lw=0.9, color="tab:blue", label="grid import")
    if "renewable_used_mw" in ts:
        ax.step(x, steps("renewable_used_mw"), where="post", lw=0.7, color="tab:olive",
                label="on-site renewables used")
    if "hard_cap_mw" in ts:
        ax.step(x, steps("hard_cap_mw"), where="post", lw=1.4, color="tab:red", label="hard cap")
    if "cap_mw" in ts and ("hard_cap_mw" not in ts or not np.allclose(ts["cap_mw"], ts["hard_cap_mw"])):
        ax.step(x, steps("cap_mw"), where="post", lw=1.0, ls="--", color="tab:orange",
                label="effective cap (budgets)")
    if "throttled_fraction" in ts and (ts["throttled_fraction"] > 0).any():
        top = float(np.nanmax(ts["facility_power_mw"])) * 1.05
        frac = ts["throttled_fraction"].to_numpy()
        for i in np.flatnonzero(frac > 0):
            ax.axvspan(x[i], x[i + 1], color="tab:purple", alpha=0.08 + 0.3 * float(frac[i]), lw=0)
        ax.plot([], [], color="tab:purple", alpha=0.3, lw=6, label="GPUs throttled (shade: share)")
        ax.set_ylim(top=max(ax.get_ylim()[1], top))
    ax.set_xlabel("day")
    ax.set_ylabel("MW")
    capped = "hard_cap_mw" in ts or "cap_mw" in ts
    what = "power against the cap" if capped else "facility power, grid import and on-site renewables"
    ax.set_title(f"{summary.get('scenario') or 'run'}: {what}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_energy_budget(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame) -> bytes | None:
    """Use against budget per period for each budget; without budgets, grid energy per day."""
    budgets = summary.get("budgets") or []
    ts = timeseries
    if not budgets:
        if "grid_import_mw" not in ts or ts.empty:
            return None
        hours = (ts["t_end_s"] - ts["t_start_s"]) / 3600.0
        daily = (ts["grid_import_mw"] * hours).groupby((ts["t_start_s"] // 86400).astype(int)).sum()
        fig = Figure(figsize=(8, 3.6))
        ax = fig.add_subplot()
        ax.bar(daily.index.to_numpy(), daily.to_numpy(), color="tab:blue")
        ax.set_xlabel("day")
        ax.set_ylabel("grid energy, MWh")
        ax.set_title("grid energy per day")
        ax.grid(alpha=0.3, axis="y")
        return _png(fig)
    fig = Figure(figsize=(8, 3.2 * len(budgets)))
    for k, b in enumerate(budgets):
        ax = fig.add_subplot(len(budgets), 1, k + 1)
        unit = b["unit"].lower()
        periods = b["periods"]
        labels = [p["start"][:10] for p in periods]
        used = np.array([p[f"used_{unit}"] for p in periods])
        budget = np.array([p[f"budget_{unit}"] for p in periods])
        pos = np.arange(len(periods))
        ax.bar(pos, budget, color="none", edgecolor="tab:red", lw=1.2, label="budget")
        ax.bar(pos, used, width=0.6, color="tab:blue", label="used")
        for i, p in enumerate(periods):
            ax.text(pos[i], used[i], f"{p['used_fraction']:.0%}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(pos, labels, rotation=30, fontsize=8)
        ax.set_ylabel(b["unit"])
        ax.set_title(f"{b['kind']} budget per {b['per']} ({b['pacing']} pacing)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


def plot_carbon_cost_by_class(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame
                              ) -> bytes | None:
    """Carbon (t CO2) and electricity cost (EUR) by workload class: training, inference, idle capacity."""
    wanted = (("carbon", "by_class_t", "t CO2"), ("cost", "by_class_eur", "EUR"))
    panels = [(key, by, unit) for key, by, unit in wanted if key in summary]
    if not panels:
        return None
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    for k, (key, by, unit) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        classes = summary[key][by]
        names = list(classes)
        values = [classes[n] for n in names]
        palette = {"training": "tab:green", "inference": "tab:purple", "idle": "tab:gray"}
        ax.bar(names, values, color=[palette.get(n, "tab:blue") for n in names])
        total = summary[key]["total_t" if key == "carbon" else "total_eur"]
        ax.set_title(f"{key}: {total:,.1f} {unit}")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


ENERGY_PLOTS = {
    "power_vs_cap": plot_power_vs_cap,
    "energy_budget": plot_energy_budget,
    "carbon_cost_by_class": plot_carbon_cost_by_class,
}
