"""The Python API: load a scenario, run it, get tables back."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.prepare import Prepared, prepare
from gigafactory_sim.result import RunResult
from gigafactory_sim.sim.collect import collect
from gigafactory_sim.sim.engine import ProgressFn, Simulation
from gigafactory_sim.sim.ops import EngineOps

__all__ = ["execute", "run"]


def run(
    scenario: Scenario | Prepared,
    progress: ProgressFn | None = None,
    probes: Sequence[Callable[[EngineOps], object]] = (),
) -> RunResult:
    """Simulate ``scenario`` and return its results. No files are touched (beyond reading the scenario's inputs).

    ``scenario`` may be already prepared (:func:`gigafactory_sim.prepare.prepare`: the CLI prepares first, so
    that input problems surface before anything is written). ``probes`` are extra hook objects, built from the
    engine's API (:class:`~gigafactory_sim.sim.ops.EngineOps`), that observe the run.
    """
    t0 = time.perf_counter()
    prepared = scenario if isinstance(scenario, Prepared) else prepare(scenario)
    return execute(Simulation(prepared, progress, probes), t0)


def execute(sim: Simulation, t0: float | None = None) -> RunResult:
    """Run a built :class:`Simulation` and collect its results (keep ``sim`` to inspect its state after)."""
    t0 = time.perf_counter() if t0 is None else t0
    t_build = time.perf_counter() - t0
    sim.run()
    t_run = time.perf_counter() - t0 - t_build
    jobs, timeseries, summary = collect(sim)
    performance = {  # wall-clock figures live beside the results, not in the deterministic summary
        "wall_s": time.perf_counter() - t0,
        "build_s": t_build,
        "simulate_s": t_run,
        "events": sim.n_events,
        "events_per_s": sim.n_events / t_run if t_run > 0 else None,
    }
    return RunResult(
        scenario=sim.scenario, summary=summary, timeseries=timeseries, jobs=jobs, meta={"performance": performance}
    )
