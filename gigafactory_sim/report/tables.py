"""What the reports show, as plain rows of formatted strings: headline KPIs, per-cluster and summary tables.

Both renderers (Markdown and HTML) draw from here, so the two pages always say the same thing. Everything is
read defensively from the summary: a missing key shows as an em dash, and summary sections this module has
never heard of (added by later features) are flattened into key/value tables rather than dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

__all__ = [
    "MISSING",
    "Table",
    "cluster_table",
    "flatten",
    "format_value",
    "headline",
    "human_duration",
    "period",
    "source_table",
    "summary_sections",
]

MISSING = "—"
_SECONDS_PER_HOUR = 3600.0
_DURATION_UNITS = ((2 * 86400.0, 86400.0, "d"), (2 * 3600.0, 3600.0, "h"), (120.0, 60.0, "min"))
"""``(show from, unit length, unit)`` in seconds, largest first."""


@dataclass(frozen=True)
class Table:
    """A titled table of already-formatted cells."""

    title: str
    headers: list[str]
    rows: list[list[str]]


def _get(summary: Mapping[str, Any], dotted: str) -> Any:
    node: Any = summary
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _number(x: float) -> str:
    """A float to about four significant figures, with thousands separators when large."""
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("∞" if x > 0 else "-∞")
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 1e9 or ax < 1e-3:
        return f"{x:.3e}"
    if ax >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def human_duration(seconds: float) -> str:
    """``90`` -> ``'90 s'``, ``86400`` -> ``'24 h'``, ``604800`` -> ``'7 d'``: at least two of the unit."""
    if not math.isfinite(seconds):
        return _number(seconds)
    ax = abs(seconds)
    for threshold_s, unit_s, unit in _DURATION_UNITS:
        if ax >= threshold_s:
            return f"{_number(seconds / unit_s)} {unit}"
    return f"{_number(seconds)} s"


def _is_seconds(key: str) -> bool:
    return any(part.endswith("_s") for part in key.split("."))


def format_value(value: Any, key: str = "") -> str:
    """Format one summary value for a reader; ``key`` (dotted) picks the unit: ``*_fraction`` -> %, ``*_s`` ->
    seconds with a human duration beside them."""
    if value is None:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        x = float(value)
        if key.endswith("fraction") and math.isfinite(x):
            return f"{100.0 * x:.1f} %"
        if _is_seconds(key) and math.isfinite(x) and abs(x) >= 120.0:
            return f"{_number(x)} s ({human_duration(x)})"
        return _number(x)
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v, key) for v in value) if value else MISSING
    return str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}, "c": 2}`` -> ``[("a.b", 1), ("c", 2)]``; lists of mappings get indices (``a.0.b``).
    """
    out: list[tuple[str, Any]] = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(flatten(v, f"{key}.") if v else [(key, None)])
        elif isinstance(v, list | tuple) and v and all(isinstance(i, Mapping) for i in v):
            for i, item in enumerate(v):
                out.extend(flatten(item, f"{key}.{i}."))
        else:
            out.append((key, v))
    return out


def _hours(summary: Mapping[str, Any], dotted: str) -> str:
    v = _get(summary, dotted)
    if not isinstance(v, int | float) or isinstance(v, bool):
        return MISSING
    return f"{_number(float(v) / _SECONDS_PER_HOUR)} h"


def _with_unit(summary: Mapping[str, Any], dotted: str, unit: str) -> str:
    v = _get(summary, dotted)
    if not isinstance(v, int | float) or isinstance(v, bool):
        return MISSING
    return f"{format_value(v, dotted)} {unit}".rstrip()


def headline(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The operator's first glance, as ``(label, formatted value)`` pairs."""
    horizon = _get(summary, "horizon_s")
    horizon_txt = human_duration(float(horizon)) if isinstance(horizon, int | float) else MISSING
    return [
        ("GPUs", format_value(_get(summary, "gpus_total"))),
        ("Horizon", horizon_txt),
        ("Allocated utilisation", format_value(_get(summary, "utilisation.allocated_fraction"), "fraction")),
        ("Busy utilisation", format_value(_get(summary, "utilisation.busy_fraction"), "fraction")),
        ("IT energy", _with_unit(summary, "energy.it_mwh", "MWh")),
        ("Facility energy", _with_unit(summary, "energy.facility_mwh", "MWh")),
        ("Peak facility power", _with_unit(summary, "power.peak_facility_mw", "MW")),
        ("Mean facility power", _with_unit(summary, "power.mean_facility_mw", "MW")),
        ("Jobs submitted", format_value(_get(summary, "jobs.submitted"))),
        ("Jobs completed", format_value(_get(summary, "jobs.completed"))),
        ("Jobs running at end", format_value(_get(summary, "jobs.running_at_end"))),
        ("Jobs queued at end", format_value(_get(summary, "jobs.queued_at_end"))),
        ("Wait p50", _hours(summary, "wait_s.p50")),
        ("Wait p95", _hours(summary, "wait_s.p95")),
        ("Wait p99", _hours(summary, "wait_s.p99")),
    ]


def _is_table_of_records(value: Any) -> TypeGuard[Mapping[Any, Mapping[str, Any]]]:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, Mapping) for v in value.values())


def cluster_table(summary: Mapping[str, Any]) -> Table | None:
    """One row per cluster, one column per key any cluster reports (keys as in ``summary.json``)."""
    clusters = summary.get("clusters")
    if not _is_table_of_records(clusters):
        return None
    columns: list[str] = []
    records = {str(name): dict(flatten(rec)) for name, rec in clusters.items()}
    for rec in records.values():
        columns.extend(k for k in rec if k not in columns)
    rows = [[name, *(format_value(rec.get(c), c) for c in columns)] for name, rec in records.items()]
    return Table("Clusters", ["cluster", *columns], rows)


def summary_sections(summary: Mapping[str, Any]) -> list[Table]:
    """The whole summary as key/value tables: top-level scalars under "run", then one table per section.

    Sections are whatever the summary holds (``energy``, ``jobs``, and any later ``inference`` or ``carbon``);
    ``clusters`` is left to :func:`cluster_table` when it has the usual one-record-per-cluster shape.
    """
    scalars = [(k, v) for k, v in summary.items() if not isinstance(v, Mapping)]
    tables: list[Table] = []
    if scalars:
        tables.append(Table("run", ["key", "value"], [[str(k), format_value(v, str(k))] for k, v in scalars]))
    for name, section in summary.items():
        if not isinstance(section, Mapping) or (name == "clusters" and _is_table_of_records(section)):
            continue
        prefix = f"{name}."
        rows = [[k, format_value(v, f"{prefix}{k}")] for k, v in flatten(section)]
        tables.append(Table(str(name), ["key", "value"], rows or [[MISSING, MISSING]]))
    return tables


def source_table(jobs: pd.DataFrame) -> Table | None:
    """Jobs per workload source: submitted, started, completed, mean wait of those started, work (GPU-h)."""
    needed = {"source", "start_s", "state", "wait_s", "work_gpu_h"}
    if len(jobs) == 0 or not needed <= set(jobs.columns):
        return None
    rows = []
    for source, g in jobs.groupby("source", sort=True):
        started = g["start_s"].notna()
        waits = g.loc[started, "wait_s"]
        mean_wait = f"{_number(float(waits.mean()) / _SECONDS_PER_HOUR)}" if len(waits) else MISSING
        rows.append([str(source), f"{len(g):,}", f"{int(started.sum()):,}",
                     f"{int((g['state'] == 'completed').sum()):,}", mean_wait,
                     _number(float(g["work_gpu_h"].sum()))])
    return Table("Jobs by source",
                 ["source", "submitted", "started", "completed", "mean wait (h)", "work (GPU-h)"], rows)


def period(timeseries: pd.DataFrame) -> str | None:
    """``'2024-03-04 00:00 – 2024-03-05 00:00 UTC'`` from the time column, or None without one."""
    if len(timeseries) == 0 or "time" not in timeseries.columns:
        return None
    times = pd.DatetimeIndex(timeseries["time"])
    if times.tz is not None:
        times = times.tz_convert("UTC")
    first, last = times.min(), times.max()
    if {"t_start_s", "t_end_s"} <= set(timeseries.columns):
        last_s = float(timeseries["t_end_s"].iloc[-1] - timeseries["t_start_s"].iloc[-1])
        last = last + pd.to_timedelta(last_s, unit="s")
    return f"{first:%Y-%m-%d %H:%M} – {last:%Y-%m-%d %H:%M} UTC"
