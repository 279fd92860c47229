"""What a plan writes: ``trials.csv``, ``best.yaml`` (a runnable scenario), ``pareto.csv`` (several objectives),
``best-run/`` (the best design's run directory), and ``plan.md`` / ``plan.html`` with the best designs, their cost
breakdown, the convergence and Pareto plots, parameter importances and how tight each constraint is."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from gigafactory_sim.analysis.pages import Section, fmt, html_page, markdown_page
from gigafactory_sim.config.loader import apply_override
from gigafactory_sim.planning.check import Plan
from gigafactory_sim.planning.study import TrialRecord

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

__all__ = ["best_records", "pareto_records", "trials_frame", "write_plan"]


def trials_frame(plan: Plan, records: Sequence[TrialRecord]) -> pd.DataFrame:
    """One row per trial: parameters, objectives, feasible, the constraints that failed, costs and KPIs."""
    rows = []
    for r in records:
        row: dict[str, Any] = {"trial": r.number}
        row |= {p: v if isinstance(v, str | int | float | bool) else json.dumps(v) for p, v in r.params.items()}
        for i, name in enumerate(plan.objectives):
            row[name] = r.values[i] if r.values else math.nan
        row["feasible"] = r.feasible
        row["failed_constraints"] = "; ".join(r.failed) if not r.error else "run failed"
        row["error"] = r.error or ""
        row |= {f"cost.{k}": v for k, v in r.cost.items()}
        row |= {f"kpi.{k}": v for k, v in r.kpis.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def best_records(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Feasible trials by their first objective, cheapest first."""
    ok = [r for r in records if r.feasible and r.values]
    return sorted(ok, key=lambda r: (r.values or [math.inf])[0])


def pareto_records(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The feasible trials no other feasible trial dominates (all objectives minimised)."""
    ok = best_records(records)

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    return [r for r in ok if not any(dominates(o.values or [], r.values or []) for o in ok if o is not r)]


def best_scenario_yaml(plan: Plan, record: TrialRecord) -> str:
    """The scenario text with the plan's fixed overrides and the design's values applied."""
    doc = yaml.safe_load(plan.scenario_text)
    for assignment in [*plan.overrides, *record.overrides]:
        apply_override(doc, assignment)
    header = (
        f"# The best design of plan {plan.name} (trial {record.number}), from {plan.scenario_file}.\n"
        f"# Annualised cost {fmt(record.cost.get('total_eur_per_year'))} EUR/year. Design:\n"
        + "".join(f"#   {a}\n" for a in record.overrides)
        + "# Relative data paths are relative to the original scenario's folder.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _plots(plan: Plan, records: Sequence[TrialRecord]) -> list[tuple[str, Figure]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out: list[tuple[str, Figure]] = []
    name = plan.objectives[0]
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    xs = [r.number for r in records if r.values]
    ys = [(r.values or [math.nan])[0] for r in records if r.values]
    colours = ["tab:green" if r.feasible else "tab:red" for r in records if r.values]
    ax.scatter(xs, ys, c=colours, s=14, label="trials (green: feasible)")
    best, line = math.inf, []
    for r in records:
        if r.feasible and r.values:
            best = min(best, r.values[0])
        line.append(best if math.isfinite(best) else math.nan)
    ax.step([r.number for r in records], line, where="post", color="black", label="best feasible so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(name + (" (EUR/year)" if name == "cost" else ""))
    ax.legend(fontsize=8)
    out.append(("convergence.png", fig))
    if len(plan.objectives) >= 2:
        fig = Figure(figsize=(5.6, 4.2))
        ax = fig.add_subplot()
        feas = [r for r in records if r.feasible and r.values]
        front = pareto_records(records)
        ax.scatter(
            [r.values[0] for r in feas if r.values],
            [r.values[1] for r in feas if r.values],
            s=12,
            color="tab:grey",
            label="feasible",
        )
        pts = sorted((r.values[0], r.values[1]) for r in front if r.values)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="tab:blue", label="Pareto front")
        ax.set_xlabel(plan.objectives[0])
        ax.set_ylabel(plan.objectives[1])
        ax.legend(fontsize=8)
        out.append(("pareto.png", fig))
    return out


def _importances(study: optuna.Study) -> tuple[str, dict[str, float]]:
    """Parameter importances for the first objective, and the method's name (empty when none can be computed).

    PED-ANOVA (Optuna's own, no extra dependency) over the trials of the best quarter; fANOVA when it fails and
    scikit-learn is installed."""
    import optuna

    def target(t: optuna.trial.FrozenTrial) -> float:
        return float(t.values[0])

    evaluators: list[tuple[str, Any]] = [
        ("PED-ANOVA", lambda: optuna.importance.PedAnovaImportanceEvaluator()),
        ("fANOVA", lambda: optuna.importance.FanovaImportanceEvaluator(seed=0)),
    ]
    for name, make in evaluators:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(study, evaluator=make(), target=target)
            return name, dict(found)
        except (ImportError, ValueError, RuntimeError, ZeroDivisionError, IndexError, AttributeError):
            continue
    return "", {}


def write_plan(plan: Plan, study: optuna.Study, records: Sequence[TrialRecord], out_dir: Path) -> TrialRecord | None:
    """Write every output of the plan in ``out_dir`` (replacing earlier ones) and return the best design."""
    from gigafactory_sim.analysis.plots import png_bytes
    from gigafactory_sim.report.files import atomic_write

    frame = trials_frame(plan, records)
    atomic_write(out_dir / "trials.csv", frame.to_csv(index=False).encode("utf-8"))
    ranked = best_records(records)
    best = ranked[0] if ranked else None
    front = pareto_records(records) if len(plan.objectives) > 1 else []
    if front:
        keep = frame[frame["trial"].isin({r.number for r in front})]
        atomic_write(out_dir / "pareto.csv", keep.to_csv(index=False).encode("utf-8"))
    if best is not None:
        atomic_write(out_dir / "best.yaml", best_scenario_yaml(plan, best).encode("utf-8"))
    images = [(name, png_bytes(fig)) for name, fig in _plots(plan, records)]
    for name, png in images:
        atomic_write(out_dir / name, png)
    sections = _sections(plan, records, best, front, _importances(study), images)
    title = f"Capacity plan: {plan.name}"
    atomic_write(out_dir / "plan.md", markdown_page(title, sections).encode("utf-8"))
    atomic_write(out_dir / "plan.html", html_page(title, sections).encode("utf-8"))
    return best


def write_best_run(plan: Plan, best: TrialRecord, out_dir: Path) -> Path:
    """Run the best design (replication 0's seed) and write its run directory to ``out_dir/best-run`` (kept when
    it is already the same trial's)."""
    from gigafactory_sim.analysis.worker import RunTask, execute

    target = out_dir / "best-run"
    marker = target / "plan-trial.txt"
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == str(best.number):
        return target
    if target.exists():
        shutil.rmtree(target)
    task = RunTask(
        f"trial-{best.number:04d}",
        best.number,
        0,
        plan.seeds[0],
        plan.scenario_text,
        plan.scenario_file,
        plan.base_dir,
        (*plan.overrides, *best.overrides),
        str(target),
        {"plan": plan.name, "trial": best.number},
    )
    outcome = execute(task)
    if outcome.status == "completed":
        marker.write_text(f"{best.number}\n", encoding="utf-8")
    return target


def _sections(
    plan: Plan,
    records: Sequence[TrialRecord],
    best: TrialRecord | None,
    front: Sequence[TrialRecord],
    importances: tuple[str, dict[str, float]],
    images: list[tuple[str, bytes]],
) -> list[Section]:
    f = plan.spec.file
    n_ok = sum(r.feasible for r in records)
    intro = (
        f"Scenario: {plan.scenario_file}; fixed overrides: {', '.join(plan.overrides) or 'none'}.\n"
        f"{len(records)} trials ({n_ok} feasible), sampler {f.search.sampler}, seed {f.search.seed}, "
        f"{f.search.replications} replication(s) per trial with the same seeds in every trial.\n"
        f"Constraints hold on the {'mean' if f.confidence is None else f'one-sided {f.confidence:.0%} t bound'} "
        f"over replications; steady-state figures where the run has them."
    )
    sections: list[Section] = [("Plan", intro, None, [])]
    if best is None:
        sections.append(
            ("Best design", "No feasible design was found: widen the ranges or relax a constraint.", None, [])
        )
    else:
        rows = [["variable", "value"], *([p, json.dumps(v)] for p, v in best.params.items())]
        sections.append(
            (
                f"Best design (trial {best.number})",
                "best.yaml is this design as a scenario file; best-run/ is its run.",
                rows,
                [],
            )
        )
        cost_rows = [["item", "EUR per year"]]
        cost_rows += [[k, fmt(v)] for k, v in best.cost.items() if k not in {"capital_eur", "carbon_t_per_year"}]
        cost_rows += [["capital (not annualised)", fmt(best.cost.get("capital_eur"))]]
        cost_rows += [["carbon, t per year", fmt(best.cost.get("carbon_t_per_year"))]]
        sections.append(
            (
                "Cost breakdown",
                "Capital annualised with the capital recovery factor; electricity and "
                "carbon scaled from the horizon to a year.",
                cost_rows,
                [],
            )
        )
        tight = [["constraint", "mean", "held (bound)", "limit", "slack", "holds"]]
        tight += [
            [
                c["constraint"],
                fmt(c["mean"]),
                fmt(c["held"]),
                fmt(c["limit"]),
                "–" if c["slack"] is None else f"{100 * c['slack']:+.1f} %",
                str(c["ok"]),
            ]
            for c in best.constraints
        ]
        sections.append(
            (
                "Constraints at the optimum",
                "slack: distance to the limit relative to it (0: tight).",
                tight if len(tight) > 1 else None,
                [],
            )
        )
        top = [["trial", *plan.objectives, *f.variables]]
        for r in best_records(records)[:5]:
            top.append(
                [str(r.number), *(fmt(v) for v in r.values or []), *(json.dumps(r.params.get(p)) for p in f.variables)]
            )
        sections.append(("Cheapest feasible designs", "", top, []))
    conv = [img for img in images if img[0] == "convergence.png"]
    sections.append(("Convergence", "Every trial (green: feasible) and the best feasible so far.", None, conv))
    if len(plan.objectives) > 1:
        rows = [["trial", *plan.objectives]] + [[str(r.number), *(fmt(v) for v in r.values or [])] for r in front]
        pareto = [img for img in images if img[0] == "pareto.png"]
        sections.append(("Pareto front", "pareto.csv holds these designs.", rows, pareto))
    method, found = importances
    if found:
        rows = [["parameter", "importance"]] + [[k, f"{v:.3f}"] for k, v in found.items()]
        sections.append(("Parameter importances", f"{method} (optuna.importance) on {plan.objectives[0]}.", rows, []))
    sections.append(
        (
            "Files",
            "trials.csv: a row per trial (parameters, objectives, feasible, failed constraints, "
            "cost items, KPIs). study.db: the Optuna study (rerun to resume or extend).",
            None,
            [],
        )
    )
    return sections
