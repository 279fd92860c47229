"""Run a plan: an Optuna study in ``<out>/study.db`` (SQLite), trials asked in batches and run as sweep tasks.

Determinism. Trials are asked in order, ``batch`` at a time, each with a sampler seeded from the plan's seed and
the trial's number, and told in order once the batch's runs are back; a trial's runs are sweep tasks (scenario
text + overrides + seed -> summary), so results do not depend on the executor or on the order runs finish in. A
plan stopped part-way resumes from the database: trials asked but not told are run again with the parameters
they were given (as new trials: the old ones are closed as failed), then the study goes on. A plan stopped
between batches (always, with one worker, when stopped by ``--trials``) resumes with the same trials as an
uninterrupted one; one killed inside a batch draws differently afterwards.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from gigafactory_sim.analysis.executors import Executor, LocalExecutor
from gigafactory_sim.analysis.worker import RunOutcome, RunTask, execute
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.planning.check import DERIVED, Plan, override_of
from gigafactory_sim.planning.constraints import flat_metrics, resolve
from gigafactory_sim.planning.costs import annual_cost, design_size
from gigafactory_sim.planning.spec import ChoiceVar, IntVar

__all__ = ["PlanMismatch", "PlanProgress", "TrialRecord", "run_trials", "study_path"]

PlanProgress = Callable[[int, int, float | None], None]
"""Called as ``progress(finished_trials, total_trials, best_cost_so_far)``."""

KPIS = (
    "utilisation.allocated_fraction",
    "wait_s.mean",
    "wait_s.p95",
    "jobs.waited_fraction",
    "power.peak_facility_mw",
    "energy.facility_mwh",
    "carbon.total_t",
    "cost.total_eur",
)
"""Headline figures kept for every trial beside what its constraints read (steady-state where there is one)."""


class PlanMismatch(ValueError):
    """The output folder holds another plan's study (scenario, variables, constraints or costs differ)."""


def study_path(out_dir: Path) -> Path:
    return out_dir / "study.db"


@dataclass
class TrialRecord:
    """One evaluated design."""

    number: int
    params: dict[str, Any]
    overrides: list[str]
    values: list[float] | None
    feasible: bool
    failed: list[str] = field(default_factory=list)
    constraints: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, float] = field(default_factory=dict)
    kpis: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def from_trial(cls, t: FrozenTrial) -> TrialRecord:
        a = t.user_attrs
        values = list(t.values) if t.state == TrialState.COMPLETE and t.values is not None else None
        return cls(
            t.number,
            dict(a.get("params", t.params)),
            list(a.get("overrides", [])),
            values,
            bool(a.get("feasible", False)),
            list(a.get("failed", [])),
            list(a.get("constraints", [])),
            dict(a.get("cost", {})),
            dict(a.get("kpis", {})),
            a.get("error"),
        )


def _sampler(plan: Plan, number: int) -> optuna.samplers.BaseSampler:
    """The sampler for trial ``number``: seeded from the plan's seed and the number, so a resumed study draws
    what the uninterrupted one would have."""
    s = plan.spec.file.search
    seed = (s.seed * 1_000_003 + number) % 2**32
    with warnings.catch_warnings():  # constraints_func: deprecated in Optuna 5 (for Trial.set_constraint), kept for 4
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _make_sampler(s.sampler, seed, s.trials, s.startup_trials, plan)


def _make_sampler(kind: str, seed: int, trials: int, startup: int, plan: Plan) -> optuna.samplers.BaseSampler:
    if kind == "grid":  # the points are enqueued in order (_grid_point); Optuna's GridSampler stops the study
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        population = max(2, min(20, trials // 3))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, constraints_func=_violations)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constraints_func=_violations)


def _violations(trial: FrozenTrial) -> Sequence[float]:
    """What the samplers read: one value per constraint, <= 0 when it holds (a failed run violates them all)."""
    return list(trial.user_attrs.get("violations", [1.0]))


def _choice_texts(var: ChoiceVar) -> list[Any]:
    """Choices as Optuna can store them: primitives as they are, anything else as its JSON text."""
    return [c if c is None or isinstance(c, bool | int | float | str) else json.dumps(c) for c in var.choices]


def _grid_space(plan: Plan) -> dict[str, list[Any]]:
    space: dict[str, list[Any]] = {}
    for path, var in plan.spec.file.variables.items():
        if isinstance(var, ChoiceVar):
            space[path] = _choice_texts(var)
        elif isinstance(var, IntVar):
            space[path] = list(range(var.low, var.high + 1, var.step))
        else:
            step = var.step or (var.high - var.low)
            n = math.floor((var.high - var.low) / step + 1e-9) if step else 0
            space[path] = [var.low + i * step for i in range(n + 1)]
    return space


def _grid_point(plan: Plan, number: int) -> dict[str, Any]:
    """Trial ``number``'s point of the grid: the grid's points in an order shuffled by the plan's seed."""
    space = _grid_space(plan)
    points = list(itertools.product(*space.values()))
    order = np.random.default_rng(plan.spec.file.search.seed).permutation(len(points))
    return dict(zip(space, points[int(order[number % len(points)])], strict=True))


def grid_size(plan: Plan) -> int:
    return math.prod(len(v) for v in _grid_space(plan).values())


def _distributions(plan: Plan) -> dict[str, optuna.distributions.BaseDistribution]:
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for path, var in plan.spec.file.variables.items():
        if isinstance(var, ChoiceVar):
            out[path] = optuna.distributions.CategoricalDistribution(_choice_texts(var))
        elif isinstance(var, IntVar):
            out[path] = optuna.distributions.IntDistribution(var.low, var.high, step=var.step)
        else:
            out[path] = optuna.distributions.FloatDistribution(var.low, var.high, step=var.step)
    return out


def _stored(plan: Plan, design: dict[str, Any]) -> dict[str, Any]:
    """A design's values as Optuna stores them (a choice that is not a primitive: its JSON text)."""
    out = {}
    for path, value in design.items():
        var = plan.spec.file.variables[path]
        out[path] = _choice_texts(var)[var.choices.index(value)] if isinstance(var, ChoiceVar) else value
    return out


def _value_of(plan: Plan, path: str, stored: Any) -> Any:
    var = plan.spec.file.variables[path]
    if isinstance(var, ChoiceVar):
        return var.choices[_choice_texts(var).index(stored)]
    return stored


def _open_study(plan: Plan, out_dir: Path) -> optuna.Study:
    directions: list[optuna.study.StudyDirection] = [optuna.study.StudyDirection.MINIMIZE] * len(plan.objectives)
    storage = optuna.storages.RDBStorage(f"sqlite:///{study_path(out_dir).absolute()}")
    study = optuna.create_study(
        study_name=plan.name, storage=storage, directions=directions, load_if_exists=True, sampler=_sampler(plan, 0)
    )
    identity = json.loads(json.dumps(plan.identity()))
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
    elif stored != identity:
        raise PlanMismatch(
            f"{out_dir} holds a different plan (scenario, variables, constraints, costs or search differ); "
            "choose another --out"
        )
    return study


def _tasks(plan: Plan, number: int, overrides: list[str]) -> list[RunTask]:
    return [
        RunTask(
            f"trial-{number:04d}",
            number,
            rep,
            seed,
            plan.scenario_text,
            plan.scenario_file,
            plan.base_dir,
            (*plan.overrides, *overrides),
        )
        for rep, seed in enumerate(plan.seeds)
    ]


def _evaluate(plan: Plan, overrides: list[str], outcomes: list[RunOutcome]) -> dict[str, Any]:
    """A trial's user attributes from its runs (in replication order): KPIs, constraints, costs, objectives."""
    failed_runs = [o for o in outcomes if o.status != "completed" or o.summary is None]
    if failed_runs:
        return {"error": failed_runs[0].error or "run failed", "feasible": False, "violations": [1.0]}
    flats = [flat_metrics(o.summary or {}) for o in outcomes]
    f = plan.spec.file
    scenario = parse_scenario_text(
        plan.scenario_text, plan.scenario_file, [*plan.overrides, *overrides], base_dir=Path(plan.base_dir)
    )
    breakdown = annual_cost(f.costs, design_size(scenario), flats)
    derived = {
        "plan.cost_eur_per_year": breakdown.total_eur_per_year,
        "plan.carbon_t_per_year": breakdown.carbon_t_per_year,
        "plan.capital_eur": breakdown.capital_eur,
    }
    flats = [{**fl, **derived} for fl in flats]
    results = [c.evaluate(flats, f.confidence) for c in plan.spec.constraints]
    wanted = [*KPIS, *(m for c in plan.spec.constraints for m in c.metrics)]
    kpis: dict[str, float] = {}
    for metric in dict.fromkeys(wanted):
        values = [v for v in (resolve(metric, fl) for fl in flats) if v is not None and not math.isnan(v)]
        if values:
            kpis[metric] = sum(values) / len(values)
    objectives = [derived[DERIVED[o]] if o in DERIVED else kpis.get(o, math.nan) for o in plan.objectives]
    return {
        "feasible": all(r.ok for r in results),
        "failed": [r.constraint.text for r in results if not r.ok],
        "violations": [r.violation for r in results] or [0.0],
        "constraints": [
            {
                "constraint": r.constraint.text,
                "mean": r.mean,
                "held": r.held,
                "limit": r.constraint.limit,
                "ok": r.ok,
                "slack": r.slack,
            }
            for r in results
        ],
        "cost": {
            **breakdown.items,
            "total_eur_per_year": breakdown.total_eur_per_year,
            "capital_eur": breakdown.capital_eur,
            "carbon_t_per_year": breakdown.carbon_t_per_year,
        },
        "kpis": kpis,
        "objectives": objectives,
    }


def _keep_summaries(out_dir: Path, number: int, outcomes: list[RunOutcome]) -> None:
    """``trials/<number>.json``: the trial's run summaries (or errors), in replication order."""
    from gigafactory_sim.report.files import atomic_write
    from gigafactory_sim.report.writer import to_json

    runs = [
        {"replication": o.replication, "seed": o.seed, "status": o.status, "error": o.error, "summary": o.summary}
        for o in outcomes
    ]
    (out_dir / "trials").mkdir(exist_ok=True)
    atomic_write(out_dir / "trials" / f"{number:04d}.json", to_json(runs).encode("utf-8"))


def _json_safe(x: Any) -> Any:
    """NaN and infinities as None (SQLite JSON attributes)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def _best_cost(study: optuna.Study) -> float | None:
    costs = [
        t.values[0]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("feasible") and t.values
    ]
    return min(costs) if costs else None


def run_trials(
    plan: Plan,
    out_dir: Path,
    executor: Executor | None = None,
    *,
    trials: int | None = None,
    batch: int = 1,
    progress: PlanProgress | None = None,
) -> tuple[optuna.Study, list[TrialRecord]]:
    """Run the plan's trials not in ``out_dir/study.db`` yet, up to ``trials`` (default: the plan's) in all."""
    executor = executor or LocalExecutor(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = _open_study(plan, out_dir)
    total = trials or plan.spec.file.search.trials
    if plan.spec.file.search.sampler == "grid":
        total = min(total, grid_size(plan))
    distributions = _distributions(plan)
    finished = (TrialState.COMPLETE, TrialState.FAIL)

    def evaluated() -> list[FrozenTrial]:
        return [t for t in study.get_trials(deepcopy=False, states=finished) if "params" in t.user_attrs]

    # trials asked by a plan that was stopped before telling them: closed, and asked again with their parameters
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if stale.state == TrialState.RUNNING:
            study.enqueue_trial(dict(stale.params))
            study.tell(stale.number, state=TrialState.FAIL)
    if progress:
        progress(len(evaluated()), total, _best_cost(study))
    while (n_done := len(evaluated())) < total:
        asked: list[optuna.Trial] = []
        for _ in range(min(batch, total - n_done)):
            study.sampler = _sampler(plan, len(study.trials))
            number = n_done + len(asked)
            first = plan.spec.file.search.enqueue
            if number < len(first):
                study.enqueue_trial(_stored(plan, first[number]))
            elif plan.spec.file.search.sampler == "grid":
                study.enqueue_trial(_grid_point(plan, number - len(first)))
            asked.append(study.ask(distributions))
        work = [(t, {p: _value_of(plan, p, t.params[p]) for p in distributions}) for t in asked]
        overrides = {t.number: [override_of(p, v) for p, v in params.items()] for t, params in work}
        seen = {json.dumps(t.user_attrs["params"], sort_keys=True): t for t in evaluated()}
        fresh = [(t, p) for t, p in work if json.dumps(p, sort_keys=True) not in seen]
        tasks = [task for t, _ in fresh for task in _tasks(plan, t.number, overrides[t.number])]
        outcomes = sorted(executor.run(execute, tasks), key=lambda o: (o.point_index, o.replication))
        for trial, params in work:
            earlier = seen.get(json.dumps(params, sort_keys=True))
            if earlier is not None:  # a design drawn again: its runs would give the same results
                attrs = {**earlier.user_attrs, "objectives": list(earlier.values) if earlier.values else None}
                attrs["repeat_of"] = earlier.number
            else:
                mine = [o for o in outcomes if o.point_index == trial.number]
                _keep_summaries(out_dir, trial.number, mine)
                attrs = _evaluate(plan, overrides[trial.number], mine)
            attrs |= {"params": params, "overrides": overrides[trial.number]}
            objectives = attrs.pop("objectives", None)
            for key, value in _json_safe(attrs).items():
                trial.set_user_attr(key, value)
            if objectives is None or any(math.isnan(v) for v in objectives):
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, objectives)
        if progress:
            progress(len(evaluated()), total, _best_cost(study))
    records = [TrialRecord.from_trial(t) for t in evaluated()]
    return study, sorted(records, key=lambda r: r.number)
