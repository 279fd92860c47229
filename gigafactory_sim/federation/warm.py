"""``initial_state: steady`` for a federation: the jobs in progress at t = 0 at every site.

Per synthetic training source, the warm pool is drawn exactly as for one site
(:mod:`gigafactory_sim.workload.warm_start`, the same named streams ``workload.warm_start.<source>``): its speed
and the node size of its held GPUs are those of the clusters it may use at the sites its residency allows (by
their GPUs), its target is its offered load at t = 0, and the targets are capped so that the sources confined to
any set of (site, cluster) pairs fit in their GPUs: the single-site capacity rule, with the federation's clusters
as one facility's. Each warm batch is one job-table source (``warm-start``, tenant ``warm-start-<source>``) with
the plan of the source it was drawn from. Where each job runs is decided at t = 0, one job at a time, by the
federation's own placement policy, with the estimates it would have made had the job arrived then (its dataset's
transfer and egress included, though nothing moves: a job in progress moved its data before t = 0, so no link
carries it and no egress is charged), among the allowed sites where it fits at once
(:meth:`gigafactory_sim.federation.runtime.FederationRun.fits_now`; all of them when none has room). The warm
batches come first in the job table, the most confined source first (fewest allowed sites, then the scenario's
order), so a greedy fill does not take the only room a confined source has. Pure functions: no file is read here.
"""

from __future__ import annotations

from dataclasses import replace

from gigafactory_sim.config.scenario import Cluster
from gigafactory_sim.federation.config import Federation
from gigafactory_sim.federation.plans import SourcePlan
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.workload.jobs import JobBatch
from gigafactory_sim.workload.synthetic import SyntheticTraining
from gigafactory_sim.workload.warm_start import SourcePool, capacity_factors, warm_batch

__all__ = ["warm_batches"]


def _clusters(fed: Federation, src: SyntheticTraining, plan: SourcePlan) -> list[tuple[tuple[int, str], Cluster]]:
    """The (site, cluster) pairs source ``src`` may use, in site order; within a site, in the order of the
    source's ``clusters`` when it names them (as one site orders them), else the site's."""
    out = []
    for k in plan.allowed:
        by_name = {c.name: c for c in fed.sites[k].facility.clusters}
        names = list(by_name) if src.clusters is None else [n for n in src.clusters if n in by_name]
        out += [((k, n), by_name[n]) for n in names]
    return out


def warm_batches(
    fed: Federation, plans: list[SourcePlan], streams: RandomStreams
) -> tuple[list[JobBatch], list[SourcePlan]]:
    """The jobs in progress at t = 0, one batch per synthetic source, and each batch's plan (its source's, marked
    ``warm``); nothing for ``initial_state: empty``."""
    if fed.initial_state != "steady":
        return [], []
    picked = [
        (i, src, _clusters(fed, src, plans[i]))
        for i, src in enumerate(fed.workload.training)
        if isinstance(src, SyntheticTraining)
    ]
    picked = [p for p in picked if p[2]]  # (a source with no usable cluster is refused at load)
    ref = fed.workload.reference_gpu
    pools = {
        src.name: SourcePool(fed, ref, src, [c for _, c in cs], streams.get(f"workload.warm_start.{src.name}"))
        for _, src, cs in picked
    }
    offered = {name: pool.expected_gpus() for name, pool in pools.items()}
    gpus = {key: c.gpus for _, _, cs in picked for key, c in cs}
    allowed = {src.name: [key for key, _ in cs] for _, src, cs in picked}
    factors = capacity_factors(gpus, allowed, offered)
    default_load = fed.power.training_gpu_load
    order = sorted(picked, key=lambda p: len(plans[p[0]].allowed))  # stable: ties keep the scenario order
    batches, warm_plans = [], []
    for i, src, _ in order:
        draw = streams.get(f"workload.warm_start.{src.name}.draw")
        batch = warm_batch(src, pools[src.name], offered[src.name] * factors[src.name], draw, default_load)
        batch.clusters = None  # (each site's own cluster names are in its plan)
        batches.append(batch)
        warm_plans.append(replace(plans[i], warm=True))
    return batches, warm_plans
