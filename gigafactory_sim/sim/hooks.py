"""The engine's hook lists: which built feature answers which hook, in the registry's order."""

from __future__ import annotations

from typing import Any

from gigafactory_sim.sim.ops import (
    ArrivalGate,
    FacilityPower,
    ItContributor,
    PowerWatcher,
    Process,
    RateObserver,
    RestartRule,
    ResultContributor,
    RunObserver,
    StartGate,
)

__all__ = ["Hooks"]


class Hooks:
    """Features of a run sorted by the hooks they implement (a feature may implement several)."""

    def __init__(self) -> None:
        self.features: list[object] = []
        self.arrival_gates: list[ArrivalGate] = []
        self.start_gates: list[StartGate] = []
        self.run_observers: list[RunObserver] = []
        self.rate_observers: list[RateObserver] = []
        self.power_watchers: list[PowerWatcher] = []
        self.processes: list[Process] = []
        self.it_contributors: list[ItContributor] = []
        self.results: list[ResultContributor] = []
        self.restart_rule: RestartRule | None = None
        self.facility_power: FacilityPower | None = None

    def add(self, feature: object) -> None:
        self.features.append(feature)
        lists: list[tuple[type, list[Any]]] = [
            (ArrivalGate, self.arrival_gates),
            (StartGate, self.start_gates),
            (RunObserver, self.run_observers),
            (RateObserver, self.rate_observers),
            (PowerWatcher, self.power_watchers),
            (Process, self.processes),
            (ItContributor, self.it_contributors),
            (ResultContributor, self.results),
        ]
        for protocol, hooks in lists:
            if isinstance(feature, protocol):
                hooks.append(feature)
        if isinstance(feature, RestartRule):
            if self.restart_rule is not None:
                raise ValueError("two features provide the restart rule")
            self.restart_rule = feature
        if isinstance(feature, FacilityPower):
            if self.facility_power is not None:
                raise ValueError("two features provide facility power")
            self.facility_power = feature
