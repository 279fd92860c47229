"""gigafactory-sim: a discrete-event simulator of AI compute facilities (GPUs, jobs, power and energy).

The public API is imported lazily (PEP 562), so ``import gigafactory_sim.units`` or the schema does not pay for
SimPy, pandas or matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from gigafactory_sim.version import __version__

_API = {
    "compare": "gigafactory_sim.analysis",
    "sweep": "gigafactory_sim.analysis",
    "run": "gigafactory_sim.api",
    "execute": "gigafactory_sim.api",
    "load_scenario": "gigafactory_sim.config.loader",
    "Scenario": "gigafactory_sim.config.scenario",
    "InputProblem": "gigafactory_sim.errors",
    "ScenarioError": "gigafactory_sim.errors",
    "prepare": "gigafactory_sim.preparation",
    "Prepared": "gigafactory_sim.preparation",
    "RunData": "gigafactory_sim.report",
    "load_run": "gigafactory_sim.report",
    "RunResult": "gigafactory_sim.result",
}

__all__ = [
    "InputProblem",
    "Prepared",
    "RunData",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "__version__",
    "compare",
    "execute",
    "load_run",
    "load_scenario",
    "prepare",
    "run",
    "sweep",
]

if TYPE_CHECKING:
    from gigafactory_sim.analysis import compare, sweep
    from gigafactory_sim.api import execute, run
    from gigafactory_sim.config.loader import load_scenario
    from gigafactory_sim.config.scenario import Scenario
    from gigafactory_sim.errors import InputProblem, ScenarioError
    from gigafactory_sim.preparation import Prepared, prepare
    from gigafactory_sim.report import RunData, load_run
    from gigafactory_sim.result import RunResult


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'gigafactory_sim' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
