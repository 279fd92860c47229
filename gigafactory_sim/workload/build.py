"""Build the run's job table from the scenario's workload sources, checking every job can ever run."""

from __future__ import annotations

import numpy as np

from gigafactory_sim.config.scenario import Scenario, ScenarioBase
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.workload.jobs import JobBatch, JobTable
from gigafactory_sim.workload.synthetic import SyntheticTraining
from gigafactory_sim.workload.traces import TraceTraining, resolve_data_path
from gigafactory_sim.workload.warm_start import warm_start_batches

__all__ = ["build_batch", "build_jobs", "reference_peak_tflops", "too_big_problem"]


def reference_peak_tflops(scenario: Scenario) -> float:
    """Peak dense bf16 of the GPU that job work is measured on (first cluster's GPU if none is named)."""
    catalogue = scenario.gpu_catalogue()
    name = scenario.workload.reference_gpu or scenario.facility.clusters[0].gpu
    return catalogue[name].dense_bf16_tflops


def build_batch(
    source: SyntheticTraining | TraceTraining,
    i: int,
    scenario: ScenarioBase,
    streams: RandomStreams,
    reference_peak_tflops: float,
) -> JobBatch:
    """The jobs of training source ``i`` (its own named random stream)."""
    rng = streams.get(f"workload.training.{source.name}")
    default_load = scenario.power.training_gpu_load
    if isinstance(source, TraceTraining):
        return source.build(
            rng,
            scenario.horizon_s,
            scenario.start,
            default_load,
            base_dir=scenario.base_dir,
            field_path=f"workload.training.{i}",
            reference_peak_tflops=reference_peak_tflops,
        )
    return source.build(rng, scenario.horizon_s, scenario.start, default_load)


def too_big_problem(
    source: SyntheticTraining | TraceTraining, i: int, batch: JobBatch, largest: int, scenario: ScenarioBase
) -> InputProblem | None:
    """The problem of the jobs of ``batch`` larger than ``largest`` GPUs (None: every job fits)."""
    too_big = np.flatnonzero(batch.gpus > largest)
    if not len(too_big):
        return None
    k = int(too_big[0])
    lines = batch.extra.get("line")
    line = int(lines[k]) if lines is not None else None
    file = (
        str(resolve_data_path(source.path, scenario.base_dir))
        if isinstance(source, TraceTraining)
        else scenario.source_file
    )
    return InputProblem(
        file=file,
        line=line,
        field=f"workload.training.{i} (gpus)",
        message=f"{len(too_big)} job(s) larger than any cluster they may use; the first asks "
        f"{int(batch.gpus[k])} GPUs, the largest cluster has {largest}",
    )


def build_jobs(scenario: Scenario, streams: RandomStreams) -> JobTable:
    clusters = {c.name: c for c in scenario.facility.clusters}
    batches: list[JobBatch] = []
    problems: list[InputProblem] = []
    ref_tflops = reference_peak_tflops(scenario)
    for i, source in enumerate(scenario.workload.training):
        batch = build_batch(source, i, scenario, streams, ref_tflops)
        allowed = batch.clusters or tuple(clusters)
        largest = max(clusters[n].gpus for n in allowed)
        if (problem := too_big_problem(source, i, batch, largest, scenario)) is not None:
            problems.append(problem)
        batches.append(batch)
    if problems:
        raise ScenarioError(problems)
    # initial_state: steady puts the jobs in progress at t = 0 first (job ids 0..k-1), so they start at once
    return JobTable(warm_start_batches(scenario, streams) + batches)
