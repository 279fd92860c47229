"""Prepare a scenario's inference services: read request traces and size each service's replicas.

Done once before the engine is built (``validate`` runs it too): every trace file is read and checked (its rows
carry line numbers), every service's token mix is fixed, and the replica model of each usable cluster is built,
so an objective that no batch size can meet is an input error, with its field.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gigafactory_sim.config.base import MAX_INT
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.inference.checks import service_token_mix, usable_clusters
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.demand import DemandProfile, DiurnalDemand, TraceDemand
from gigafactory_sim.inference.disagg_fluid import PoolModels
from gigafactory_sim.inference.disagg_prepare import prepare_pools
from gigafactory_sim.inference.fluid import ClusterModel, cluster_model
from gigafactory_sim.inference.perf import InfeasibleObjective, TokenMix
from gigafactory_sim.inference.prefix import computed_mix
from gigafactory_sim.inference.prefix_plan import PrefixPlan, plan_blocks
from gigafactory_sim.inference.tokens import mix_samples
from gigafactory_sim.inference.trace import RequestTrace, load_request_trace
from gigafactory_sim.sim.facility import PowerTable
from gigafactory_sim.workload.traces import resolve_data_path

__all__ = ["PreparedService", "prepare_inference"]


@dataclass
class PreparedService:
    """One service, ready to run: its trace (if any), token mix and the replica model per usable cluster."""

    svc: InferenceService
    index: int
    path: str  # its field path, for messages
    clusters: list[int]  # usable cluster indices, in preference order
    trace: RequestTrace | None
    mix: TokenMix
    prompt: np.ndarray  # token samples the fluid model integrates over
    output: np.ndarray
    models: dict[int, ClusterModel]
    raw_prompt_mean: float = 0.0  # mean prompt tokens, cached part included (the mix's is what prefill computes)
    blocks: PrefixPlan | None = None  # block-hash prefix cache (``prefix_cache.from_trace``)
    pools: PoolModels | None = None  # prefill and decode pools of a disaggregated service


def prepare_inference(scenario: Scenario) -> list[PreparedService] | None:
    """The prepared services of ``scenario`` (None without any); every problem is raised at once."""
    services = scenario.workload.inference
    if not services:
        return None
    power = PowerTable(scenario)
    names = power.cluster_names
    problems: list[InputProblem] = []
    out: list[PreparedService] = []
    for index, svc in enumerate(services):
        path = f"workload.inference.{index}"
        clusters = [names.index(n) for n in usable_clusters(svc, scenario.facility.clusters)]
        trace: RequestTrace | None = None
        blocks: PrefixPlan | None = None
        from_trace = svc.prefix_cache is not None and svc.prefix_cache.from_trace
        try:
            if isinstance(svc.demand, TraceDemand):
                trace = load_request_trace(svc.demand, scenario.base_dir, scenario.horizon_s, path, from_trace)
                if trace.n_requests == 0:
                    raise ScenarioError.single(scenario.source_file, f"{path}.demand", "the trace is empty")
                _check_countable(svc.demand, trace.n_requests, scenario.source_file, path)
                prompt, output = trace.base_prompt, trace.base_output
                mix = TokenMix.from_samples(prompt, output, svc.slo.quantile)
            else:
                assert svc.prompt_tokens is not None and svc.output_tokens is not None
                _check_countable(
                    svc.demand, _expected_count(svc.demand, scenario.horizon_s), scenario.source_file, path
                )
                mix = service_token_mix(svc)
                prompt, output = mix_samples(svc.prompt_tokens, 1), mix_samples(svc.output_tokens, 2)
            raw_prompt_mean, whole_prompt, whole_q = mix.prompt_mean, prompt, mix.prompt_q
            if svc.prefix_cache is not None and not from_trace:  # prefill sees the uncached part of each prompt
                mix = computed_mix(mix, svc.prefix_cache.hit_rate or 0.0)
                prompt = prompt * (1.0 - (svc.prefix_cache.hit_rate or 0.0))
            pools = None
            if svc.disaggregation is not None:  # (no block-hash cache with pools: checks.py)
                src = scenario.source_file
                pools = prepare_pools(svc, path, src, power, clusters, mix, prompt, whole_prompt, whole_q)
                models = pools.decode
            else:
                models = _models(svc, clusters, power, mix, path, scenario.source_file)
            if from_trace and trace is not None and pools is None:  # the hit rate a replay measures (prefix_plan)
                blocks = plan_blocks(svc, trace, models, str(resolve_trace_path(svc, scenario)), path)
                hit = blocks.replay.hit_rate
                mix, prompt = computed_mix(mix, hit), prompt * (1.0 - hit)
                models = _models(svc, clusters, power, mix, path, scenario.source_file, hit)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        out.append(
            PreparedService(
                svc, index, path, clusters, trace, mix, prompt, output, models, raw_prompt_mean, blocks, pools
            )
        )
    if problems:
        raise ScenarioError(problems)
    return out


def _expected_count(demand: DemandProfile, horizon_s: float) -> float:
    """About how many requests a synthetic demand brings over the horizon (a diurnal one at its weekday mean, or
    its weekend's if higher)."""
    if isinstance(demand, DiurnalDemand):
        return demand.mean_rate_per_s * max(1.0, demand.weekend_factor) * horizon_s
    assert not isinstance(demand, TraceDemand)
    return demand.rate_per_s * horizon_s


def _check_countable(demand: DemandProfile, n_requests: float, source_file: str, path: str) -> None:
    """Refuse a demand that brings more requests over the horizon than a double counts exactly (2**53): the
    fluid model's counts would round, and far beyond, overflow."""
    if n_requests > MAX_INT:
        field = {"trace": "rate_scale", "diurnal": "mean_rate_per_s"}.get(demand.kind, "rate_per_s")
        raise ScenarioError.single(
            source_file,
            f"{path}.demand.{field}",
            f"brings about {n_requests:.3g} requests over the horizon; a double counts exactly only up to 2**53 "
            f"({MAX_INT:.3g})",
        )


def resolve_trace_path(svc: InferenceService, scenario: Scenario) -> Path:
    """The file of a service's trace demand, for messages."""
    assert isinstance(svc.demand, TraceDemand)
    return resolve_data_path(svc.demand.path, scenario.base_dir)


def _models(
    svc: InferenceService,
    clusters: list[int],
    power: PowerTable,
    mix: TokenMix,
    path: str,
    source_file: str,
    measured_hit_rate: float | None = None,
) -> dict[int, ClusterModel]:
    """The replica model of each usable cluster; ``measured_hit_rate``: a block-hash cache's measured hit rate
    (the discrete fidelity's steps use the cache itself, :mod:`.discrete`)."""
    models: dict[int, ClusterModel] = {}
    for c in clusters:
        perf = svc.replica_perf(power.gpu_profiles[c])
        if measured_hit_rate is not None:
            perf = replace(perf, prefix_hit_rate=measured_hit_rate)
        try:
            models[c] = cluster_model(perf, power.power_models[c], mix, svc.slo.limits(), svc.batching)
        except InfeasibleObjective as exc:
            field = f"{path}.slo.{exc.field}" if exc.field != "model" else f"{path}.model"
            raise ScenarioError.single(source_file, field, str(exc)) from None
    return models
