"""What the reliability feature needs from a scenario, prepared before any engine exists (no SimPy, no pandas:
a scenario without failures or checkpoints never imports the runtime)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gigafactory_sim.reliability.config import CheckpointConfig, FailureConfig, NoCheckpoints

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Scenario

__all__ = ["ReliabilityInputs", "prepare_reliability"]


class ReliabilityInputs:
    """What the reliability feature needs, checked at prepare time: the policy and each cluster's failures."""

    def __init__(self, policy: CheckpointConfig, failures: list[FailureConfig | None]) -> None:
        self.policy = policy
        self.failures = failures


def prepare_reliability(scenario: Scenario) -> ReliabilityInputs | None:
    facility = scenario.facility
    failures = [facility.failures_of(c) for c in facility.clusters]
    if scenario.checkpointing is None and all(f is None for f in failures):
        return None
    return ReliabilityInputs(scenario.checkpointing or NoCheckpoints(), failures)
