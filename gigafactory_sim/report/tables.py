"""Report tables as plain rows of formatted strings, and the small helpers every section uses.

Both renderers (Markdown and HTML) draw from here and from :mod:`gigafactory_sim.report.sections`, so the two
pages always say the same thing. Everything is read defensively from the summary: a missing key shows as an
em dash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gigafactory_sim.report.format import MISSING, format_value, human_duration, sig

__all__ = [
    "MISSING",
    "Table",
    "flatten",
    "format_value",
    "get",
    "human_duration",
    "period",
    "source_table",
]


@dataclass(frozen=True)
class Table:
    """A titled table of already-formatted cells; ``numeric`` marks columns to right-align; ``links`` maps a
    cell ``(row, column)`` to the address it links to (relative to the report)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)
    links: dict[tuple[int, int], str] = field(default_factory=dict)

    def aligned(self, col: int) -> bool:
        return self.numeric[col] if col < len(self.numeric) else col > 0


def get(summary: Mapping[str, Any], dotted: str) -> Any:
    """``summary["a"]["b"]`` for ``"a.b"``; None when any part is missing."""
    node: Any = summary
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}, "c": 2}`` -> ``[("a.b", 1), ("c", 2)]``; lists of mappings get indices (``a.0.b``)."""
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


def source_table(jobs: pd.DataFrame) -> Table | None:
    """Jobs per workload source and class: submitted, started, completed, running and queued at the end, wait of
    those started, work (the summary's ``sources`` figures, a row per class)."""
    needed = {"source", "start_s", "state", "wait_s", "work_gpu_h"}
    if len(jobs) == 0 or not needed <= set(jobs.columns):
        return None
    keys = ["source", "job_class"] if "job_class" in jobs.columns else ["source"]
    rows = []
    for key, g in jobs.groupby(keys, sort=True):
        names = key if isinstance(key, tuple) else (key,)
        started = g["start_s"].notna()
        waits = g.loc[started, "wait_s"]
        mean_wait = human_duration(float(waits.mean())) if len(waits) else MISSING
        p95_wait = human_duration(float(waits.quantile(0.95))) if len(waits) else MISSING
        rows.append(
            [
                *(str(n) for n in names),
                f"{len(g):,}",
                f"{int(started.sum()):,}",
                f"{int((g['state'] == 'completed').sum()):,}",
                f"{int((g['state'] == 'running').sum()):,}",
                f"{int((g['state'] == 'queued').sum()):,}",
                mean_wait,
                p95_wait,
                sig(float(g["work_gpu_h"].sum())),
            ]
        )
    headers = [
        *(["source", "class"] if len(keys) == 2 else ["source"]),
        "submitted",
        "started",
        "completed",
        "running at end",
        "queued at end",
        "mean wait",
        "p95 wait",
        "work (GPU-h)",
    ]
    return Table("Jobs by source and class", headers, rows, [False] * len(keys) + [True] * 8)


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
