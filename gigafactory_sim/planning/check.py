"""A plan checked against its scenario before anything runs: every variable at its ends (every choice), every
constraint and objective against the metric names of a short dry run. All problems are reported at once, each with
the plan file's line and field; nothing is written."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gigafactory_sim.analysis.grid import replication_seed
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.planning.constraints import STEADY
from gigafactory_sim.planning.spec import ChoiceVar, FloatVar, IntVar, PlanSpec, load_plan_file

__all__ = ["DERIVED", "Plan", "override_of", "prepare_plan"]

DERIVED = {
    "cost": "plan.cost_eur_per_year",
    "carbon": "plan.carbon_t_per_year",
}
"""Objective names the cost model computes, and their metric names (usable in constraints too)."""
_DERIVED_METRICS = frozenset({*DERIVED.values(), "plan.capital_eur"})


def override_of(path: str, value: Any) -> str:
    """The ``--set`` text of a variable's value (JSON, which YAML reads back)."""
    return f"{path}={json.dumps(value)}"


@dataclass
class Plan:
    """A checked plan: its spec, the scenario text every trial runs, the fixed overrides and the replication
    seeds (the same in every trial: common random numbers)."""

    spec: PlanSpec
    scenario_text: str
    scenario_file: str
    base_dir: str
    overrides: list[str]
    seeds: list[int]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def objectives(self) -> list[str]:
        return self.spec.file.objectives

    def identity(self) -> dict[str, Any]:
        """What a study folder must match to be resumed (the number of trials may grow)."""
        f = self.spec.file
        return {
            "scenario_text": self.scenario_text,
            "overrides": self.overrides,
            "variables": {k: v.model_dump(mode="json") for k, v in f.variables.items()},
            "constraints": f.constraints,
            "confidence": f.confidence,
            "objectives": self.objectives,
            "costs": f.costs.model_dump(mode="json"),
            "search": f.search.model_dump(mode="json", exclude={"trials"}),
        }


def _kinds(summary: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``dotted -> number | bool | text | section`` for every entry of a summary."""
    out: dict[str, str] = {}
    for key, value in summary.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out[dotted] = "section"
            out.update(_kinds(value, dotted + "."))
        elif isinstance(value, bool):
            out[dotted] = "bool"
        elif value is None or isinstance(value, int | float):
            out[dotted] = "number"
        else:
            out[dotted] = "text"
    return out


def _ends(var: IntVar | FloatVar | ChoiceVar) -> list[Any]:
    if isinstance(var, ChoiceVar):
        return list(var.choices)
    return [var.low] if var.low == var.high else [var.low, var.high]


def _dry_kinds(plan: Plan) -> dict[str, str] | None:
    """Metric kinds of a one-hour run of the design at the variables' first values, or None if it fails for a
    reason other than its input (a :class:`ScenarioError` found while building it is raised)."""
    from gigafactory_sim.api import run

    first = [override_of(p, _ends(v)[0]) for p, v in plan.spec.file.variables.items()]
    warm = ["statistics.warmup=0s"] if plan.spec.file.warmup is not None else []
    try:
        full = parse_scenario_text(plan.scenario_text, plan.scenario_file, [*plan.overrides, *first])
        horizon_s = min(full.horizon_s, max(3600.0, 2 * full.report.interval))
        extra = [f"horizon={horizon_s}s", *warm]
        sc = parse_scenario_text(plan.scenario_text, plan.scenario_file, [*plan.overrides, *first, *extra])
        return _kinds(run(sc).summary)
    except ScenarioError:
        raise
    except Exception:
        return None


def _metric_problem(metric: str, kinds: Mapping[str, str], numeric: bool) -> str | None:
    if metric in _DERIVED_METRICS:
        return None
    kind = kinds.get(STEADY + metric) or kinds.get(metric)
    if kind in {"number", "bool"} and not (numeric and kind == "bool"):
        return None
    if kind == "bool":
        return f"{metric} is true/false, not a number to minimise"
    if kind == "section":
        inner = sorted(k for k in kinds if k.startswith(metric + ".") and kinds[k] != "section")[:3]
        return f"{metric} is a section, not a metric (e.g. {', '.join(inner)})"
    if kind == "text":
        return f"{metric} is text, not a number"
    close = difflib.get_close_matches(metric, [k for k, v in kinds.items() if v != "section"], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see a run's summary.json)"
    return f"no metric {metric!r} in the run's summary{hint}"


def prepare_plan(path: str | Path) -> Plan:
    """Load and check a plan file; raise :class:`ScenarioError` with every problem."""
    spec = load_plan_file(path)
    f = spec.file
    scenario_path = spec.scenario_path
    try:
        text = scenario_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([spec.problem("scenario", f"cannot read {scenario_path}: {exc}")]) from None
    fixed = spec.fixed_overrides()
    file, base_dir = str(scenario_path), scenario_path.resolve().parent
    try:
        base = parse_scenario_text(text, file, fixed, base_dir=base_dir)
    except ScenarioError as exc:
        raise ScenarioError(
            [spec.problem("overrides", f"the scenario with the plan's fixed overrides: {p}") for p in exc.problems]
        ) from None
    problems: list[InputProblem] = []
    for var_path, var in f.variables.items():
        field, line = f"variables.{var_path}", spec.variable_line(var_path)
        if f.search.sampler == "grid" and isinstance(var, FloatVar) and var.step is None:
            problems.append(spec.problem(field, "the grid sampler needs a step or choices", line))
        for value in _ends(var):
            try:
                parse_scenario_text(text, file, [*fixed, override_of(var_path, value)], base_dir=base_dir)
            except ScenarioError as exc:
                for p in exc.problems:
                    where = p.field if p.field and p.field != var_path else var_path
                    problem = spec.problem(field, f"{json.dumps(value)}: {where}: {p.message}", line)
                    if problem not in problems:
                        problems.append(problem)
    for i, design in enumerate(f.search.enqueue):
        for key, value in design.items():
            given = f.variables.get(key)
            field = f"search.enqueue.{i}.{key}"
            if given is None:
                problems.append(spec.problem(field, f"{key} is not one of the variables"))
            elif isinstance(given, ChoiceVar):
                if value not in given.choices:
                    problems.append(spec.problem(field, f"{value!r} is not one of the choices"))
            elif not isinstance(value, int | float) or not given.low <= value <= given.high:
                problems.append(spec.problem(field, f"{value!r} is not a number in [{given.low}, {given.high}]"))
        missing = [k for k in f.variables if k not in design]
        if missing:
            problems.append(spec.problem(f"search.enqueue.{i}", "gives no value for " + ", ".join(missing)))
    plan = Plan(
        spec, text, file, str(base_dir), fixed, [replication_seed(base.seed, r) for r in range(f.search.replications)]
    )
    try:
        kinds = _dry_kinds(plan) if not problems else None
    except ScenarioError as exc:
        raise ScenarioError(
            [spec.problem("variables", f"the design at the variables' first values: {p}") for p in exc.problems]
        ) from None
    if kinds is not None:
        for i, c in enumerate(spec.constraints):
            for metric in c.metrics:
                message = _metric_problem(metric, kinds, numeric=False)
                if message:
                    problems.append(spec.problem(f"constraints.{i}", message))
        for i, name in enumerate(f.objectives):
            field = "objective" if isinstance(f.objective, str) else f"objective.{i}"
            message = None if name in DERIVED else _metric_problem(name, kinds, numeric=True)
            if message:
                problems.append(spec.problem(field, message))
    if problems:
        raise ScenarioError(problems)
    return plan
