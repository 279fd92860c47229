"""The feature registry: which features a scenario enables, in the fixed order their hooks run.

Each entry prepares its inputs from the scenario (all file reading and input checks, before any engine exists),
declares its meter channels, and builds the runtime object that plugs into the engine's hooks
(:mod:`gigafactory_sim.sim.ops`). A new feature is one :class:`Feature` in :data:`FEATURES`; the engine never
names one. Order matters where several features answer the same hook: energy's gates and signal process come
first, then reliability (its hot spares are taken before inference's partitions), then inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gigafactory_sim.energy.prepare import prepare_energy
from gigafactory_sim.energy.system import EnergySystem
from gigafactory_sim.inference.prepare import prepare_inference
from gigafactory_sim.inference.runtime import InferenceRuntime, inference_channels
from gigafactory_sim.reliability.runtime import Reliability, prepare_reliability

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Scenario
    from gigafactory_sim.sim.ops import EngineOps
    from gigafactory_sim.workload.jobs import JobTable

__all__ = ["FEATURES", "Feature", "FeatureBuilder", "build_features", "prepare_features"]


@dataclass(frozen=True)
class Feature:
    """One feature: ``prepare(scenario, jobs)`` -> its inputs or None (not enabled); ``channels(scenario,
    inputs)`` -> (meter channels, IT power channels per cluster); ``build(ops, inputs)`` -> the runtime object."""

    name: str
    prepare: Callable[[Scenario, JobTable], Any]
    build: Callable[[EngineOps, Any], object]
    channels: Callable[[Scenario, Any], tuple[list[str], list[list[str]]]] | None = None


def _no_channels(scenario: Scenario) -> tuple[list[str], list[list[str]]]:
    return [], [[] for _ in scenario.facility.clusters]


FEATURES: tuple[Feature, ...] = (
    Feature("energy", lambda sc, jobs: prepare_energy(sc, jobs.sources), EnergySystem),
    Feature("reliability", lambda sc, jobs: prepare_reliability(sc), Reliability),
    Feature(
        "inference",
        lambda sc, jobs: prepare_inference(sc),
        InferenceRuntime,
        lambda sc, services: inference_channels([c.name for c in sc.facility.clusters], services),
    ),
)


def prepare_features(scenario: Scenario, jobs: JobTable) -> dict[str, Any]:
    """Every enabled feature's prepared inputs, by name (problems of all features raised together)."""
    from gigafactory_sim.errors import ScenarioError

    out: dict[str, Any] = {}
    problems = []
    for feature in FEATURES:
        try:
            inputs = feature.prepare(scenario, jobs)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        if inputs is not None:
            out[feature.name] = inputs
    if problems:
        raise ScenarioError(problems)
    return out


class FeatureBuilder:
    """A prepared feature, ready to be built into an engine."""

    def __init__(self, feature: Feature, scenario: Scenario, inputs: Any) -> None:
        self.name = feature.name
        self._feature = feature
        self._scenario = scenario
        self._inputs = inputs

    def meter_channels(self) -> tuple[list[str], list[list[str]]]:
        if self._feature.channels is None:
            return _no_channels(self._scenario)
        return self._feature.channels(self._scenario, self._inputs)

    def build(self, ops: EngineOps) -> object:
        return self._feature.build(ops, self._inputs)


def build_features(scenario: Scenario, prepared_inputs: dict[str, Any]) -> list[FeatureBuilder]:
    return [FeatureBuilder(f, scenario, prepared_inputs[f.name]) for f in FEATURES if f.name in prepared_inputs]
