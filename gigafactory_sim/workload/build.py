"""Build the run's job table from the scenario's workload sources, checking every job can ever run."""

from __future__ import annotations

import numpy as np

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.workload.jobs import JobBatch, JobTable
from gigafactory_sim.workload.traces import TraceTraining, resolve_data_path
from gigafactory_sim.workload.warm_start import warm_start_batches

__all__ = ["build_jobs", "reference_peak_tflops"]


def reference_peak_tflops(scenario: Scenario) -> float:
    """Peak dense bf16 of the GPU that job work is measured on (first cluster's GPU if none is named)."""
    catalogue = scenario.gpu_catalogue()
    name = scenario.workload.reference_gpu or scenario.facility.clusters[0].gpu
    return catalogue[name].dense_bf16_tflops


def build_jobs(scenario: Scenario, streams: RandomStreams) -> JobTable:
    horizon_s = scenario.horizon_s
    default_load = scenario.power.training_gpu_load
    clusters = {c.name: c for c in scenario.facility.clusters}
    batches: list[JobBatch] = []
    problems: list[InputProblem] = []
    for i, source in enumerate(scenario.workload.training):
        rng = streams.get(f"workload.training.{source.name}")
        field_path = f"workload.training.{i}"
        if isinstance(source, TraceTraining):
            batch = source.build(
                rng,
                horizon_s,
                scenario.start,
                default_load,
                base_dir=scenario.base_dir,
                field_path=field_path,
                reference_peak_tflops=reference_peak_tflops(scenario),
            )
        else:
            batch = source.build(rng, horizon_s, scenario.start, default_load)
        allowed = batch.clusters or tuple(clusters)
        largest = max(clusters[n].gpus for n in allowed)
        too_big = np.flatnonzero(batch.gpus > largest)
        if len(too_big):
            k = int(too_big[0])
            lines = batch.extra.get("line")
            line = int(lines[k]) if lines is not None else None
            file = (
                str(resolve_data_path(source.path, scenario.base_dir))
                if isinstance(source, TraceTraining)
                else scenario.source_file
            )
            problems.append(
                InputProblem(
                    file=file,
                    line=line,
                    field=f"{field_path} (gpus)",
                    message=f"{len(too_big)} job(s) larger than any cluster they may use; the first asks "
                    f"{int(batch.gpus[k])} GPUs, the largest cluster has {largest}",
                )
            )
        batches.append(batch)
    if problems:
        raise ScenarioError(problems)
    # initial_state: steady puts the jobs in progress at t = 0 first (job ids 0..k-1), so they start at once
    return JobTable(warm_start_batches(scenario, streams) + batches)
