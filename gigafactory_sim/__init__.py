"""gigafactory-sim: a discrete-event simulator of AI compute facilities (GPUs, jobs, power and energy)."""

from gigafactory_sim.analysis import compare, sweep
from gigafactory_sim.api import run
from gigafactory_sim.config.loader import load_scenario
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.report import RunData, load_run
from gigafactory_sim.result import RunResult

__version__ = "0.1.0"

__all__ = ["InputProblem", "RunData", "RunResult", "Scenario", "ScenarioError", "__version__", "compare",
           "load_run", "load_scenario", "run", "sweep"]
