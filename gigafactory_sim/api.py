"""The Python API: load a scenario, run it, get tables back."""

from __future__ import annotations

import time

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.result import RunResult
from gigafactory_sim.sim.collect import jobs_table, summarise, timeseries_table
from gigafactory_sim.sim.engine import ProgressFn, Simulation
from gigafactory_sim.stats import statistics_section

__all__ = ["run"]


def run(scenario: Scenario, progress: ProgressFn | None = None, simulation: Simulation | None = None
        ) -> RunResult:
    """Simulate ``scenario`` and return its results. No files are touched.

    ``simulation`` may be a :class:`Simulation` already built from the same scenario (the CLI builds first so
    that input problems surface before anything is written).
    """
    t0 = time.perf_counter()
    sim = simulation if simulation is not None else Simulation(scenario)
    sim.progress = progress
    t_build = time.perf_counter() - t0
    sim.run()
    t_run = time.perf_counter() - t0 - t_build
    jobs = jobs_table(sim)
    timeseries = timeseries_table(sim)
    summary = summarise(sim, jobs)
    if section := statistics_section(scenario, timeseries, jobs):
        summary["statistics"] = section
    performance = {  # wall-clock figures live beside the results, not in the deterministic summary
        "wall_s": time.perf_counter() - t0,
        "build_s": t_build,
        "simulate_s": t_run,
        "events": sim.n_events,
        "events_per_s": sim.n_events / t_run if t_run > 0 else None,
    }
    return RunResult(scenario=scenario, summary=summary, timeseries=timeseries, jobs=jobs,
                     meta={"performance": performance})
