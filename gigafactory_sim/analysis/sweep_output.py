"""Write a sweep's tables and page: ``runs.csv``, ``aggregate.csv``, ``sweep.md`` / ``sweep.html`` and the
plot of the chosen metric against a swept parameter with its 95 % confidence band."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from gigafactory_sim.analysis.pages import Section, fmt, html_page, markdown_page

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gigafactory_sim.analysis.plan import SweepPlan


class SweepResult(Protocol):
    """What the writer reads of a finished sweep (:class:`gigafactory_sim.analysis.sweep.SweepResult`)."""

    plan: SweepPlan
    runs: pd.DataFrame
    aggregate: pd.DataFrame

    def plot(self, metric: str | None = None, param: str | None = None) -> Figure: ...


__all__ = ["metric_rows", "write_sweep_tables"]


def metric_rows(result: SweepResult, metric: str) -> list[list[str]]:
    """One row per point for ``metric``: the varied parameters, n, mean, std and the 95 % CI; header first."""
    varied = [a.path for a in result.plan.axes if len(a.values) > 1]
    rows = [["point", *varied, "n", "mean", "std", "95 % CI"]]
    part = result.aggregate[result.aggregate["metric"] == metric]
    for _, r in part.iterrows():
        rows.append(
            [
                str(r["point_id"]),
                *(str(r[p]) for p in varied),
                str(int(r["n"])),
                fmt(r["mean"]),
                fmt(r["std"]),
                f"{fmt(r['ci95_low'])} … {fmt(r['ci95_high'])}",
            ]
        )
    return rows


def _csv(frame: pd.DataFrame, path: Path) -> None:
    from gigafactory_sim.report.files import atomic_write

    atomic_write(path, frame.to_csv(index=False).encode("utf-8"))


def write_sweep_tables(result: SweepResult, out_dir: Path) -> None:
    """Write (replace) the sweep's tables, plot and pages in ``out_dir``."""
    from gigafactory_sim.analysis.plots import png_bytes
    from gigafactory_sim.report.files import atomic_write

    plan = result.plan
    _csv(result.runs, out_dir / "runs.csv")
    _csv(result.aggregate, out_dir / "aggregate.csv")
    metric, param = plan.metric, plan.plot_param
    available = set(result.aggregate["metric"])
    images: list[tuple[str, bytes]] = []
    if param is not None and metric in available:
        name = re.sub(r"[^A-Za-z0-9.]+", "_", f"{metric}_vs_{param}") + ".png"
        png = png_bytes(result.plot())
        atomic_write(out_dir / name, png)
        images.append((name, png))
    grid = "\n".join(f"- {a.path}: {', '.join(a.texts)}" for a in plan.axes) or "- (no swept parameter)"
    intro = (
        f"Scenario: {plan.scenario_file}; fixed overrides: {', '.join(plan.overrides) or 'none'}.\n"
        f"Grid ({len(plan.points)} points x {plan.replications} replications = {plan.n_runs} runs):\n"
        f"{grid}\n"
        f"Replication i of a point uses seed SeedSequence(scenario seed).spawn(i+1)[i]. "
        f"Confidence intervals: mean ± t(0.975, n-1)·s/√n."
    )
    failed = result.runs[result.runs["status"] != "completed"] if len(result.runs) else result.runs
    sections: list[Section] = [("Sweep", intro, None, [])]
    if metric in available:
        sections.append((f"{metric} by point", "", metric_rows(result, metric), images))
    else:
        sections.append(
            ("Metric", f"{metric} is not in the run summaries; available: {', '.join(sorted(available))}", None, [])
        )
    if len(failed):
        rows = [["point", "replication", "error"]]
        rows += [[str(r["point_id"]), str(r["replication"]), str(r["error"])] for _, r in failed.iterrows()]
        sections.append(("Failed runs", "Rerun the sweep with the same --out to retry them.", rows, []))
    sections.append(
        (
            "Files",
            "runs.csv: a row per run (parameters, replication, seed, flattened summary).\n"
            "aggregate.csv: n, mean, std, ci95_low, ci95_high per point and metric.",
            None,
            [],
        )
    )
    title = f"Sweep: {plan.name}"
    atomic_write(out_dir / "sweep.md", markdown_page(title, sections).encode("utf-8"))
    atomic_write(out_dir / "sweep.html", html_page(title, sections).encode("utf-8"))
