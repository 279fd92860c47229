"""The prepare phase: ``Scenario -> Prepared``. All file reading (traces, grid and cap series, request traces)
and every build-time check happen here, so ``validate`` never builds an engine and the engine's constructors do
no I/O. A :class:`Prepared` can be simulated any number of times; each run builds its own state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.features import prepare_features
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.workload.build import build_jobs
from gigafactory_sim.workload.jobs import JobTable

__all__ = ["Prepared", "prepare"]


@dataclass(frozen=True)
class Prepared:
    """A scenario with its job table and every enabled feature's checked inputs."""

    scenario: Scenario
    jobs: JobTable
    inputs: dict[str, Any] = field(default_factory=dict)


def prepare(scenario: Scenario) -> Prepared:
    """Read and check everything the run needs (:class:`~gigafactory_sim.errors.ScenarioError` lists every
    problem, with file, line and field)."""
    jobs = build_jobs(scenario, RandomStreams(scenario.seed))
    return Prepared(scenario, jobs, prepare_features(scenario, jobs))
