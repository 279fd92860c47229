"""Compare runs: every summary metric against the first run (the baseline), absolute and relative deltas.

A metric that grows with the horizon (a total) is not compared between runs of different horizons, and one
that grows with the facility (power, totals) is not compared between facilities of different sizes: the
comparison says so (``comparable`` False, a ``note``, and a run-level note) instead of dividing silently.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from gigafactory_sim.analysis.metrics import HORIZON, SIZE, flatten_summary, scales_with
from gigafactory_sim.result import RunResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ComparedRun", "Comparison", "compare", "load_compared_run"]

RunInput = RunResult | str | os.PathLike[str] | Any
"""A :class:`RunResult`, a ``RunData`` (from ``load_run``), a run directory or a scenario file."""

ScenarioProgress = Callable[[str, float, float], None]
"""``(scenario file, simulated seconds, horizon seconds)``: called while a scenario file is run."""

_NOISE = 1e-12
"""Relative differences at most this are floating-point noise and read as no change."""

_MOMENT = re.compile(r"(^|\.|_)at_s$")
"""A metric that is a moment in the run (``power.peak_at_s``): shown, never differenced."""


@dataclass
class ComparedRun:
    """One side of a comparison: a label, its summary and its tables."""

    label: str
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    jobs: pd.DataFrame
    origin: str = ""

    @property
    def metrics(self) -> dict[str, float]:
        return flatten_summary(self.summary)


def load_compared_run(
    item: RunInput, overrides: Sequence[str] = (), progress: ScenarioProgress | None = None
) -> ComparedRun:
    """Turn a result, a loaded run, a run directory or a scenario file (run now, in memory, reporting to
    ``progress``) into a side."""
    if isinstance(item, RunResult):
        return ComparedRun(
            str(item.summary.get("scenario") or item.scenario.name or "run"),
            item.summary,
            item.timeseries,
            item.jobs,
            "in memory",
        )
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        if path.is_dir():
            from gigafactory_sim.report.loader import load_run

            data = load_run(path)
            return ComparedRun(path.name, data.summary, data.timeseries, data.jobs, str(path))
        from gigafactory_sim.api import run
        from gigafactory_sim.config.loader import load_scenario

        def tick(now_s: float, horizon_s: float) -> None:
            if progress is not None:
                progress(str(path), now_s, horizon_s)

        result = run(load_scenario(path, overrides), progress=tick if progress is not None else None)
        return ComparedRun(
            str(result.scenario.name or path.stem), result.summary, result.timeseries, result.jobs, str(path)
        )
    # a RunData from gigafactory_sim.report.loader.load_run (duck-typed: it has a path and the three tables)
    return ComparedRun(Path(item.path).name, item.summary, item.timeseries, item.jobs, str(item.path))


_SCALE_NAMES = {HORIZON: "horizon", SIZE: "facility size"}


def _unique(labels: Sequence[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        candidate, k = label, 2
        while candidate in out:
            candidate, k = f"{label} ({k})", k + 1
        out.append(candidate)
    return out


def _duration(seconds: float) -> str:
    return f"{seconds / 86400:g} d" if seconds >= 86400 else f"{seconds / 3600:g} h"


@dataclass
class Comparison:
    """The result of :func:`compare`. ``table`` is long: a row per metric and run (the baseline included)."""

    runs: list[ComparedRun]
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> ComparedRun:
        return self.runs[0]

    def wide(self) -> pd.DataFrame:
        """Metrics as rows; the baseline's value, then each run's value, delta and delta %."""
        base = self.baseline.label
        wide = pd.DataFrame(index=pd.Index(list(dict.fromkeys(self.table["metric"])), name="metric"))
        for run in self.runs:
            part = self.table[self.table["run"] == run.label].set_index("metric")
            wide[run.label] = part["value"]
            if run.label != base:
                wide[f"Δ {run.label}"] = part["delta"]
                wide[f"Δ% {run.label}"] = part["delta_pct"]
        return wide

    def figures(self) -> dict[str, Figure]:
        """The plots by file stem: power (grid draw when only the grid differs), utilisation, wait-time CDF,
        energy/carbon/cost by class, and cumulative carbon when the runs have carbon accounting."""
        import gigafactory_sim.analysis.plots as plots  # matplotlib is slow to import; only plotting pays for it

        carbon = plots.carbon_over_time([(r.label, r.timeseries) for r in self.runs])
        return {
            "power": plots.power_over_time([(r.label, r.timeseries) for r in self.runs]),
            **({"carbon": carbon} if carbon is not None else {}),
            "utilisation": plots.utilisation_over_time(
                [(r.label, r.timeseries, int(r.summary.get("gpus_total", 0))) for r in self.runs]
            ),
            "wait_cdf": plots.wait_cdf([(r.label, r.jobs) for r in self.runs]),
            "by_class": plots.class_bars(class_panels(self.runs)),
        }


def _section_totals(summary: dict[str, Any], section: str) -> dict[str, float]:
    """The totals (metrics growing with the horizon) in one summary section, by key within the section."""
    flat = flatten_summary({section: summary.get(section) or {}})
    return {k.split(".", 1)[1]: v for k, v in flat.items() if HORIZON in scales_with(k)}


def _classes(summary: dict[str, Any], section: str, by_class: str) -> dict[str, float]:
    """A section's split by workload class (training, inference, idle) when it has one, else its totals."""
    split = (summary.get(section) or {}).get(by_class)
    if isinstance(split, dict) and split:
        return {str(k): float(v) for k, v in split.items()}
    return _section_totals(summary, section)


def class_panels(runs: Sequence[ComparedRun]) -> dict[str, dict[str, dict[str, float]]]:
    """``{panel: {class: {run: value}}}``: IT energy per workload source (from the jobs table) plus idle
    GPUs and the facility overhead (PUE); inference energy, carbon and cost when the summaries have them."""
    energy: dict[str, dict[str, float]] = {}
    carbon: dict[str, dict[str, float]] = {}
    cost: dict[str, dict[str, float]] = {}
    for r in runs:
        by_source: dict[str, float] = {}
        if len(r.jobs):
            sums = r.jobs.groupby("source", sort=True)["energy_kwh"].sum() / 1000.0
            by_source = {str(k): float(v) for k, v in sums.items()}
        for source, mwh in by_source.items():
            energy.setdefault(f"training: {source}", {})[r.label] = float(mwh)
        e = r.summary.get("energy", {})
        if "idle_it_mwh" in e:
            energy.setdefault("idle GPUs and nodes", {})[r.label] = float(e["idle_it_mwh"])
        if "facility_mwh" in e and "it_mwh" in e:
            energy.setdefault("overhead (PUE)", {})[r.label] = float(e["facility_mwh"]) - float(e["it_mwh"])
        for key, value in _section_totals(r.summary, "inference").items():
            if key.endswith("_mwh"):
                name = "inference" if key == "it_mwh" else f"inference: {key.removesuffix('_mwh')}"
                energy.setdefault(name, {})[r.label] = value
        for key, value in _classes(r.summary, "carbon", "by_class_t").items():
            carbon.setdefault(key, {})[r.label] = value
        for key, value in _classes(r.summary, "cost", "by_class_eur").items():
            cost.setdefault(key, {})[r.label] = value
    panels = {"energy (MWh)": energy}
    if carbon:
        panels["carbon (t CO2)"] = carbon
    if cost:
        panels["cost (EUR)"] = cost
    return panels


def _differences(base: ComparedRun, other: ComparedRun) -> tuple[set[str], list[str]]:
    """Which scales differ between ``other`` and the baseline, and the notes saying so."""
    differ: set[str] = set()
    notes: list[str] = []
    bh, oh = base.summary.get("horizon_s"), other.summary.get("horizon_s")
    if bh is not None and oh is not None and not math.isclose(float(bh), float(oh), rel_tol=1e-9):
        differ.add(HORIZON)
        notes.append(
            f"{other.label}: horizon {_duration(float(oh))} against {_duration(float(bh))} for the "
            f"baseline; totals (energy, GPU-hours, job counts, carbon, cost) are not compared, "
            f"fractions, means and percentiles are."
        )
    bg, og = base.summary.get("gpus_total"), other.summary.get("gpus_total")
    if bg is not None and og is not None and int(bg) != int(og):
        differ.add(SIZE)
        notes.append(
            f"{other.label}: {int(og):,} GPUs against {int(bg):,} for the baseline; power and "
            f"totals are not compared, fractions and percentiles are."
        )
    return differ, notes


def _by_change(table: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """``metrics`` ordered by the largest relative change against the baseline over the other runs; metrics
    with no comparable change (equal everywhere, or not comparable) keep their summary order after them."""
    pct = table.loc[table["comparable"] & table["delta_pct"].notna()].copy()
    pct["size"] = pct["delta_pct"].abs()
    biggest = pct.groupby("metric")["size"].max()
    changed = [m for m in metrics if biggest.get(m, 0.0) > 0.0]
    changed.sort(key=lambda m: -float(biggest[m]))
    return changed + [m for m in metrics if m not in set(changed)]


def compare(
    runs: Sequence[RunInput],
    labels: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    progress: ScenarioProgress | None = None,
    run_overrides: Mapping[int, Sequence[str]] | None = None,
) -> Comparison:
    """Compare ``runs`` (results, loaded runs, run directories or scenario files) against the first.

    Scenario files are run in memory first, with ``overrides`` (``--set`` syntax) and then the run's own
    ``run_overrides[i]`` (``i`` from 0), reporting to ``progress``. So one file against itself with one field
    changed is one call: ``compare([f, f], run_overrides={1: ["placement.kind=home"]})``.
    Returns a :class:`Comparison` whose ``table`` has the columns ``metric, run, value, baseline, delta,
    delta_pct, comparable, note``, its metrics ordered by how much they changed (largest relative change
    first). Moments in the run (``power.peak_at_s``) are shown but not differenced.
    """
    if not runs:
        raise ValueError("compare needs at least one run")
    own = run_overrides or {}
    sides = [load_compared_run(item, [*overrides, *own.get(i, ())], progress) for i, item in enumerate(runs)]
    names = _unique(list(labels) if labels is not None else [s.label for s in sides])
    for side, name in zip(sides, names, strict=True):
        side.label = name
    base = sides[0]
    base_metrics = base.metrics
    metric_names = list(dict.fromkeys([*base_metrics, *(m for s in sides[1:] for m in s.metrics)]))
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for side in sides:
        differ, side_notes = _differences(base, side)
        notes.extend(side_notes)
        values = side.metrics
        for metric in metric_names:
            value, ref = values.get(metric, math.nan), base_metrics.get(metric, math.nan)
            blocked = sorted(scales_with(metric) & differ)
            note = ""
            if metric not in values or metric not in base_metrics:
                note = "missing in " + ("the baseline" if metric not in base_metrics else "this run")
            elif _MOMENT.search(metric):
                note = "a moment in the run, not a quantity"
            elif blocked:
                note = " and ".join(_SCALE_NAMES[b] for b in blocked) + " differ"
            comparable = note == ""
            delta = value - ref if comparable else math.nan
            if comparable and abs(delta) <= _NOISE * max(abs(value), abs(ref)):
                delta = 0.0  # rounding noise of the same figure summed in another order, not a change
            pct = delta / abs(ref) * 100.0 if comparable and ref != 0 and math.isfinite(ref) else math.nan
            rows.append(
                {
                    "metric": metric,
                    "run": side.label,
                    "value": value,
                    "baseline": ref,
                    "delta": delta,
                    "delta_pct": pct,
                    "comparable": comparable,
                    "note": note,
                }
            )
    columns = ["metric", "run", "value", "baseline", "delta", "delta_pct", "comparable", "note"]
    table = pd.DataFrame(rows, columns=columns)
    order = {m: i for i, m in enumerate(_by_change(table, metric_names))}
    table = table.sort_values("metric", key=lambda col: col.map(order), kind="stable").reset_index(drop=True)
    return Comparison(runs=sides, table=table, notes=notes)
