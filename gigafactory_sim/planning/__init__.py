"""Capacity planning: search a scenario's design space (cluster sizes, GPU types, power cap, renewables, sites)
for the design that meets its constraints (waits, SLOs, carbon) at the lowest annualised cost, with Optuna.

A plan file (:mod:`~.spec`) names the scenario, the variables, the constraints (:mod:`~.constraints`), the
objective and the cost model (:mod:`~.costs`); :func:`~.check.prepare_plan` checks it against the scenario,
:func:`~.study.run_trials` runs the trials as sweep tasks on any executor, and :func:`~.output.write_plan`
writes the tables, the best design and the pages.
"""

from gigafactory_sim.planning.check import Plan, prepare_plan
from gigafactory_sim.planning.costs import Costs, annual_cost, capital_recovery_factor
from gigafactory_sim.planning.runner import PlanResult, plan_capacity, run_plan
from gigafactory_sim.planning.study import PlanMismatch, TrialRecord, run_trials

__all__ = [
    "Costs",
    "Plan",
    "PlanMismatch",
    "PlanResult",
    "TrialRecord",
    "annual_cost",
    "capital_recovery_factor",
    "plan_capacity",
    "prepare_plan",
    "run_plan",
    "run_trials",
]
