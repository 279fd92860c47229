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
from gigafactory_sim.reliability.prepare import prepare_reliability

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


# Reliability's and inference's runtimes (and inference's preparation) are imported only by a scenario that
# enables them: a run without them does not pay for their modules.


def _build_reliability(ops: EngineOps, inputs: Any) -> object:
    from gigafactory_sim.reliability.runtime import Reliability

    return Reliability(ops, inputs)


def _prepare_inference(scenario: Scenario, jobs: JobTable) -> Any:
    if not scenario.workload.inference:
        return None  # (prepare_inference's own first test, before its modules are imported)
    from gigafactory_sim.inference.prepare import prepare_inference

    return prepare_inference(scenario)


def _build_inference(ops: EngineOps, services: Any) -> object:
    from gigafactory_sim.inference.runtime import InferenceRuntime

    return InferenceRuntime(ops, services)


def _inference_channels(scenario: Scenario, services: Any) -> tuple[list[str], list[list[str]]]:
    from gigafactory_sim.inference.runtime import inference_channels

    return inference_channels([c.name for c in scenario.facility.clusters], services)


FEATURES: tuple[Feature, ...] = (
    Feature("energy", lambda sc, jobs: prepare_energy(sc, jobs.sources), EnergySystem),
    Feature("reliability", lambda sc, jobs: prepare_reliability(sc), _build_reliability),
    Feature("inference", _prepare_inference, _build_inference, _inference_channels),
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
