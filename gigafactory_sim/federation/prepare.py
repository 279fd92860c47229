"""The prepare phase of a federation: the federation's job table, each source's allowed sites and home, the
inference routes, and each site prepared as a single-site scenario (all its file reading and checks). Problems of
a site are reported with the federation file's paths (``sites.K.grid.carbon``) and lines."""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.features import prepare_features
from gigafactory_sim.federation.checks import site_field
from gigafactory_sim.federation.config import Federation
from gigafactory_sim.federation.plans import SourcePlan
from gigafactory_sim.federation.residency import allowed_sites
from gigafactory_sim.federation.sites import Route, home_of, route_service, site_scenario
from gigafactory_sim.federation.warm import warm_batches
from gigafactory_sim.grid.config import GridSignals
from gigafactory_sim.preparation import Prepared
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.workload.build import build_batch, too_big_problem
from gigafactory_sim.workload.jobs import JobBatch, JobTable

__all__ = ["PreparedFederation", "SourcePlan", "prepare_federation"]


@dataclass(frozen=True)
class PreparedFederation:
    scenario: Federation
    jobs: JobTable
    sources: list[SourcePlan]
    """One plan per source of ``jobs`` (the warm-start batches' first, with ``initial_state: steady``)."""
    sites: list[Prepared]
    routes: list[Route]
    signals: list[GridSignals]


def _source_plans(fed: Federation) -> list[SourcePlan]:
    plans = []
    for src in fed.workload.training:
        allowed = allowed_sites(src.residency, fed.sites)
        clusters: dict[int, tuple[str, ...] | None] = {}
        largest: dict[int, int] = {}
        for k in allowed:
            names = [c.name for c in fed.sites[k].facility.clusters if src.clusters is None or c.name in src.clusters]
            if names:
                clusters[k] = None if src.clusters is None else tuple(names)
                largest[k] = max(c.gpus for c in fed.sites[k].facility.clusters if c.name in names)
        plans.append(
            SourcePlan(
                source=src.name,
                allowed=tuple(k for k in allowed if k in clusters),
                home=home_of(fed, src.home, allowed),
                clusters=clusters,
                largest_gpus=largest,
                dataset_gb=src.data.dataset_gb,
                checkpoint_gb=src.data.checkpoint_gb,
            )
        )
    return plans


def _site_problem(fed: Federation, k: int, p: InputProblem) -> InputProblem:
    if not p.field:
        return p
    field, _, rest = p.field.partition(" ")
    mapped = site_field(fed, k, field)
    line = p.line
    parts = mapped.split(".") if p.file == fed.source_file else []
    while line is None and parts:
        line = fed.field_lines.get(".".join(parts))
        parts.pop()
    return InputProblem(p.file, line, mapped + (f" {rest}" if rest else ""), p.message)


def prepare_federation(fed: Federation) -> PreparedFederation:
    """Read and check everything a federation's run needs (:class:`ScenarioError` lists every problem)."""
    streams = RandomStreams(fed.seed)
    plans = _source_plans(fed)
    catalogue = fed.gpu_catalogue()
    ref = fed.workload.reference_gpu or fed.sites[0].facility.clusters[0].gpu
    batches: list[JobBatch] = []
    problems: list[InputProblem] = []
    for i, src in enumerate(fed.workload.training):
        batch = build_batch(src, i, fed, streams, catalogue[ref].dense_bf16_tflops)
        largest = max(plans[i].largest_gpus.values(), default=0)
        if (problem := too_big_problem(src, i, batch, largest, fed)) is not None:
            problems.append(problem)
        batch.clusters = None  # (each site's own cluster names are in its table)
        batches.append(batch)
    # initial_state: steady puts the jobs in progress at t = 0 first, as one site does (federation/warm.py)
    warm, warm_plans = warm_batches(fed, plans, streams)
    jobs = JobTable(warm + batches)
    plans = warm_plans + plans
    sites: list[Prepared] = []
    signals: list[GridSignals] = []
    for k in range(len(fed.sites)):
        sc = site_scenario(fed, k)
        site_jobs = JobTable.blank(jobs, [plan.clusters.get(k) for plan in plans])
        try:
            inputs = prepare_features(sc, site_jobs)
        except ScenarioError as exc:
            problems += [_site_problem(fed, k, p) for p in exc.problems]
            continue
        sites.append(Prepared(sc, site_jobs, inputs))
        energy = inputs.get("energy")
        signals.append(energy.grid if energy is not None else GridSignals())
    if problems:
        raise ScenarioError(problems)
    routes = [r for svc in fed.workload.inference for r in route_service(fed, svc)[0]]
    return PreparedFederation(fed, jobs, plans, sites, routes, signals)
