"""The Python API: load a scenario, run it, get tables back."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gigafactory_sim.config.scenario import Scenario, ScenarioBase
from gigafactory_sim.preparation import Prepared, prepare
from gigafactory_sim.result import RunResult
from gigafactory_sim.sim.collect import collect
from gigafactory_sim.sim.engine import ProgressFn, Simulation
from gigafactory_sim.sim.ops import EngineOps

if TYPE_CHECKING:  # (a federation's modules are imported when one is run: a single site does not pay for them)
    from gigafactory_sim.federation.config import Federation
    from gigafactory_sim.federation.prepare import PreparedFederation
    from gigafactory_sim.federation.runtime import FederationRun

__all__ = ["build", "execute", "prepare_any", "run"]


def run(
    scenario: Scenario | Prepared | Federation | PreparedFederation,
    progress: ProgressFn | None = None,
    probes: Sequence[Callable[[EngineOps], object]] = (),
) -> RunResult:
    """Simulate ``scenario`` and return its results. No files are touched (beyond reading the scenario's inputs).

    ``scenario`` may be already prepared (:func:`gigafactory_sim.preparation.prepare`: the CLI prepares first, so
    that input problems surface before anything is written). ``probes`` are extra hook objects, built from the
    engine's API (:class:`~gigafactory_sim.sim.ops.EngineOps`), that observe the run.
    """
    t0 = time.perf_counter()
    if isinstance(scenario, ScenarioBase):  # a scenario or a federation, not yet prepared
        return execute(build(prepare_any(scenario), progress, probes), t0)
    return execute(build(scenario, progress, probes), t0)


def build(
    prepared: Prepared | PreparedFederation,
    progress: ProgressFn | None = None,
    probes: Sequence[Callable[[EngineOps], object]] = (),
) -> Simulation | FederationRun:
    """The engine of a prepared scenario: one :class:`Simulation`, or a federation's :class:`FederationRun`."""
    if isinstance(prepared, Prepared):
        return Simulation(prepared, progress, probes)
    from gigafactory_sim.federation.runtime import FederationRun

    return FederationRun(prepared, progress, probes)


def prepare_any(scenario: Scenario | Federation) -> Prepared | PreparedFederation:
    """:func:`~gigafactory_sim.preparation.prepare` a single site, or prepare a federation."""
    if isinstance(scenario, Scenario):
        return prepare(scenario)
    from gigafactory_sim.federation.prepare import prepare_federation

    return prepare_federation(scenario)


def execute(sim: Simulation | FederationRun, t0: float | None = None) -> RunResult:
    """Run a built :class:`Simulation` (or :class:`FederationRun`) and collect its results (keep ``sim`` to
    inspect its state after)."""
    t0 = time.perf_counter() if t0 is None else t0
    t_build = time.perf_counter() - t0
    sim.run()
    t_run = time.perf_counter() - t0 - t_build
    if not isinstance(sim, Simulation):
        from gigafactory_sim.federation.collect import collect_federation

        result = collect_federation(sim)
        result.meta["performance"] = _performance(sim, t0, t_build, t_run)
        return result
    jobs, timeseries, summary = collect(sim)
    return RunResult(
        scenario=sim.scenario,
        summary=summary,
        timeseries=timeseries,
        jobs=jobs,
        meta={"performance": _performance(sim, t0, t_build, t_run)},
    )


def _performance(sim: Simulation | FederationRun, t0: float, t_build: float, t_run: float) -> dict[str, Any]:
    """Wall-clock figures: they live beside the results, not in the deterministic summary."""
    return {
        "wall_s": time.perf_counter() - t0,
        "build_s": t_build,
        "simulate_s": t_run,
        "events": sim.n_events,
        "events_per_s": sim.n_events / t_run if t_run > 0 else None,
    }
