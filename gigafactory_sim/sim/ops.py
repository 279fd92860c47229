"""The engine's published API (:class:`EngineOps`) and the hooks features plug in through.

A feature (energy, reliability, inference, or one of your own) is built by its registry entry
(:mod:`gigafactory_sim.features`) with the engine's API and its prepared inputs; it acts on the run only through
:class:`EngineOps` and the shared :class:`~gigafactory_sim.sim.facility.Facility`, and the engine calls it back
through the hooks below, each a Protocol of at most three methods. The engine finds which hooks a feature
implements by their method names, and calls hooks of the same kind in the registry's fixed order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import simpy

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Scenario
    from gigafactory_sim.random_streams import RandomStreams
    from gigafactory_sim.sim.facility import Facility
    from gigafactory_sim.sim.meter import Meter
    from gigafactory_sim.sim.state import Job, SpeedGroup

__all__ = [
    "ArrivalGate",
    "EngineOps",
    "FacilityPower",
    "ItContributor",
    "Outcome",
    "PowerWatcher",
    "Process",
    "RateObserver",
    "RestartRule",
    "ResultContributor",
    "RunObserver",
    "RunView",
    "StartGate",
]

Outcome = Literal["completed", "failed", "suspended", "interrupted", "migrated"]
"""How a running job stops: it ``completed`` its work; it ``failed`` for good; it was ``suspended`` (keeps its
progress unless a restart rule says otherwise) or ``interrupted`` (loses the work since its last restore point);
the last two are requeued on their cluster at their old place. ``migrated``: it leaves the site with its
progress (as ``suspended``) to go on elsewhere (a federation moves it); its remaining work is in ``job.work_s``."""


class EngineOps(Protocol):
    """What a feature may do to a running simulation. Everything else of the engine is private."""

    env: simpy.Environment
    facility: Facility
    meter: Meter
    streams: RandomStreams
    scenario: Scenario
    horizon_s: float

    def begin_event(self) -> float:
        """Count one handled event and advance the meter to now; returns now (s)."""
        ...

    def enqueue(self, job: Job, c: int) -> None:
        """Put a new or stopped job in cluster ``c``'s queue and ask for a scheduling pass."""
        ...

    def route_and_enqueue(self, job: Job, allowed: tuple[int, ...]) -> None:
        """Route a job to the least committed of ``allowed`` clusters and enqueue it there."""
        ...

    def start(self, job: Job, c: int) -> None:
        """Start a queued job on cluster ``c`` now (it must fit)."""
        ...

    def stop(self, job: Job, outcome: Outcome, cause: str = "") -> float:
        """Stop a running job now: book its energy, free its GPUs, and end or requeue it; ``cause`` names why
        (a failure cause, ``"power"``, ``"inference"``). Returns the wall seconds of its run whose work is lost.
        The caller refreshes the cluster's meter channels."""
        ...

    def set_group_rate(self, group: SpeedGroup, power_w: float, speed: float) -> None:
        """Give a speed group a new per-GPU power and speed now; every end time in it moves."""
        ...

    def refresh(self, c: int) -> None:
        """Recompute cluster ``c``'s meter channels and the queue counts from the state (meter advanced)."""
        ...

    def changed(self, c: int) -> None:
        """Cluster ``c``'s power changed outside a scheduling pass: refresh it and tell the power watchers."""
        ...

    def request_pass(self, c: int) -> None:
        """Ask for a scheduling pass of cluster ``c`` at this instant (coalesced with others)."""
        ...

    def begin_submissions(self) -> None:
        """A handler of a feature's own event begins now (after :meth:`begin_event`): a scheduling pass it asks
        for runs at its end, in :meth:`end_submissions`, as the engine's own handlers run theirs (without a
        zero-delay event when no other event is due now: the same order)."""
        ...

    def end_submissions(self) -> None:
        """The handler begun with :meth:`begin_submissions` ends: run the scheduling pass it made due."""
        ...

    def job_energy_j(self, job: Job, now_s: float) -> float:
        """IT energy of a running job since its (re)start."""
        ...


# -- hooks (engine -> feature), in the registry's order ----------------------------------------------------
@runtime_checkable
class ArrivalGate(Protocol):
    def hold(self, job: Job, allowed: tuple[int, ...]) -> bool:
        """On submission: True to take the job (the gate enqueues it later through the engine)."""
        ...


@runtime_checkable
class StartGate(Protocol):
    def admit(self, job: Job, c: int) -> bool:
        """Before each start the scheduler asks for: False stops this cluster's pass."""
        ...

    def after_pass(self, now_s: float, clusters: list[int]) -> None:
        """After every scheduling pass (over the clusters that asked for one)."""
        ...


@runtime_checkable
class RunObserver(Protocol):
    def on_enqueue(self, job: Job, c: int) -> None: ...

    def on_start(self, job: Job, group: SpeedGroup, now_s: float) -> None:
        """A job starts on ``group`` (advanced to now), before it joins the group."""
        ...

    def on_stop(self, job: Job, outcome: Outcome, cause: str, energy_j: float) -> None:
        """A job stops now (``energy_j``: its run's energy, booked), before its GPUs are freed."""
        ...


@runtime_checkable
class RateObserver(Protocol):
    def on_rate_change(self, group: SpeedGroup) -> None:
        """A group's speed or power changed (after its completion was re-timed)."""
        ...


@runtime_checkable
class PowerWatcher(Protocol):
    def power_changed(self, c: int) -> None:
        """Cluster ``c``'s power changed outside a scheduling pass."""
        ...


@runtime_checkable
class RestartRule(Protocol):
    def remaining(self, job: Job, outcome: Outcome, now_s: float) -> tuple[float, float]:
        """(work left in reference-seconds, wall seconds of work lost) of a job stopped now (group advanced).
        One feature at most provides it; without one, a suspended job keeps its progress and an interrupted one
        loses its whole run."""
        ...


@runtime_checkable
class Process(Protocol):
    def start(self) -> None:
        """At t = 0: start the feature's SimPy processes and timers."""
        ...

    def finish(self, now_s: float) -> None:
        """At the horizon, after the engine booked the energy of the jobs still running."""
        ...


# -- results ---------------------------------------------------------------------------------------------
class RunView(Protocol):
    """A finished run, as result contributors see it; ``totals`` holds the core's sums (``it_j``,
    ``training_j``, ``idle_j``, ``training_allocated_gs``) once its summary is made."""

    scenario: Scenario
    facility: Facility
    meter: Meter
    horizon_s: float
    totals: dict[str, float]

    @property
    def n_submitted(self) -> int: ...


@runtime_checkable
class ItContributor(Protocol):
    def it_channels(self, c: int) -> list[str]:
        """The feature's IT power channels on cluster ``c`` (added to the core's in every IT total)."""
        ...

    def gpu_channels(self, c: int) -> list[str]:
        """The feature's channels of GPUs it holds on cluster ``c`` (counted as allocated and busy)."""
        ...


@runtime_checkable
class FacilityPower(Protocol):
    """Facility power from IT power. One feature at most provides it; without one, facility = IT x PUE."""

    def facility_j(self, it_j: float) -> float: ...

    def peak_facility_w(self, peak_it_w: float) -> float: ...

    def facility_w(self, means: np.ndarray, it_w: np.ndarray) -> np.ndarray:
        """Interval means of facility power, from the meter's interval means."""
        ...


@runtime_checkable
class ResultContributor(Protocol):
    def timeseries_columns(self, run: RunView, times: np.ndarray, means: np.ndarray) -> dict[str, Any]:
        """Columns added to ``timeseries.parquet`` (interval means of the meter's channels in ``means``)."""
        ...

    def job_columns(self, run: RunView) -> dict[str, np.ndarray]:
        """Columns added to ``jobs.parquet`` (one value per submitted job)."""
        ...

    def summary_sections(self, run: RunView, jobs: pd.DataFrame, summary: dict[str, Any]) -> None:
        """Add the feature's figures and sections to ``summary`` (never overwrite another's)."""
        ...
