"""Energy budgets, power capping and grid signals: the PUE chain, hard caps, budgets and the policies that
keep them.

Extension points (each a small class with a ``kind``; the tagged unions in :mod:`.config` are the registry):
power policies (:class:`~.policies.PowerPolicy`: admission, capping, preemption), deferral rules, budget
pacing, PUE models and cap shapes. See README.md ("Energy budgets, power capping and grid signals")."""

from gigafactory_sim.energy.budgets import BudgetConfig, CarbonBudget, CostBudget, EnergyBudget, PacingConfig
from gigafactory_sim.energy.config import CapConfig, EnergyConfig, PolicyConfig
from gigafactory_sim.energy.policies import PowerPolicy
from gigafactory_sim.energy.pue import ConstantPue, PueConfig, TemperaturePue, pue_coefficients

__all__ = [
    "BudgetConfig",
    "CapConfig",
    "CarbonBudget",
    "ConstantPue",
    "CostBudget",
    "EnergyBudget",
    "EnergyConfig",
    "PacingConfig",
    "PolicyConfig",
    "PowerPolicy",
    "PueConfig",
    "TemperaturePue",
    "pue_coefficients",
]
