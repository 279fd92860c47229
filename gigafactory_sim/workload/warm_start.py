"""``initial_state: steady``: pre-fill the facility at t = 0 with jobs already in progress, drawn from the workload.

A job in progress at a given instant is not a typical job: long jobs are more likely to be caught running (the
inspection paradox). For a stream with arrival rate λ(t) and jobs of run time x, the jobs running at t = 0 have
(count) density ∝ f(x) · ∫_0^x λ(-a) da over their age a, so for a constant rate the run time is length-biased
(∝ x f(x)) and the age uniform over it; what is left to run is the rest. This is exact in expectation for an
M_t/G/∞ population (no queueing) and a close start for a facility with spare capacity.

Per synthetic source: a pool of jobs drawn from its mixture (classes, sizes, run times), each given an age
``a = U·x``; the pool is resampled with weights ``x·λ(-a)`` (Monte Carlo of the integral above), and jobs are
taken until their GPUs reach the expected GPUs in use at t = 0 (``E[gpus · ∫_0^x λ(-a) da]``, the offered load),
capped at the GPUs of the clusters the source may use. The last job is kept with the probability that makes the
expected total exactly the target. The jobs are submitted at t = 0 as the source ``warm-start`` (tenant
``warm-start-<source>``, the class they were drawn from), with their remaining work, so the scheduler starts them
at once. Trace sources are not pre-filled (a trace carries its own history). Every draw comes from the named
stream ``workload.warm_start.<source>``: deterministic, and independent of the horizon, so the workload stays
prefix-consistent.

A federation draws the same pools over the clusters of each source's allowed sites and places the jobs at t = 0
(:mod:`gigafactory_sim.federation.warm`), with the pool, the capacity factors and the batch of this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.workload.arrivals import ArrivalProcess, DiurnalArrivals
from gigafactory_sim.workload.jobs import JobBatch
from gigafactory_sim.workload.synthetic import SyntheticTraining

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Cluster, Scenario, ScenarioBase

__all__ = ["WARM_START_SOURCE", "SourcePool", "capacity_factors", "warm_batch", "warm_start_batches"]

K = TypeVar("K")

WARM_START_SOURCE = "warm-start"
POOL_JOBS = 1 << 17  # candidates per source: duplicates in the resample stay rare even with heavy tails
_CHUNK = 1024  # resampled in fixed chunks, so the draws do not depend on the target


def _rate_per_s(arrivals: ArrivalProcess, t_s: np.ndarray, start: datetime) -> np.ndarray:
    """Arrival rate at times ``t_s`` (seconds from the start; negative = before it)."""
    if isinstance(arrivals, DiurnalArrivals):
        return arrivals.rate_per_s(t_s, start)
    return np.full(len(t_s), arrivals.mean_rate_per_s())


def _run_s_per_work_s(
    scenario: ScenarioBase, reference_gpu: str | None, source: SyntheticTraining, clusters: Sequence[Cluster]
) -> float:
    """Seconds of run time per second of reference work, averaged over the source's clusters by their GPUs (the
    router spreads jobs by committed share). Same speed as the engine's (GPU peak x DVFS speed at the load)."""
    catalogue = scenario.gpu_catalogue()
    load = source.gpu_load if source.gpu_load is not None else scenario.power.training_gpu_load
    ref = catalogue[reference_gpu] if reference_gpu else None
    total = sum(c.gpus for c in clusters)
    out = 0.0
    for c in clusters:
        if ref is None:
            speed = 1.0
        else:
            model = c.power_model.build(catalogue[c.gpu])
            speed = (catalogue[c.gpu].dense_bf16_tflops * model.speed(load)) / (
                ref.dense_bf16_tflops * ref.power_model.speed(load)
            )
        out += c.gpus / total / speed
    return out


def _held_gpus(gpus: np.ndarray, gpus_per_node: int) -> np.ndarray:
    """GPUs a job holds: a job larger than a node takes whole nodes."""
    whole = np.ceil(gpus / gpus_per_node).astype(np.int64) * gpus_per_node
    return np.where(gpus <= gpus_per_node, gpus, whole)


class SourcePool:
    """Candidate jobs in progress at t = 0 for one synthetic source that may run on ``clusters`` (cluster
    configs: one facility's, or every allowed site's in a federation), and their resampling weights."""

    def __init__(
        self,
        scenario: ScenarioBase,
        reference_gpu: str | None,
        source: SyntheticTraining,
        clusters: Sequence[Cluster],
        rng: np.random.Generator,
    ) -> None:
        class_rng, age_rng, *class_rngs = rng.spawn(2 + 2 * len(source.classes))
        shares = np.array([c.share for c in source.classes], dtype=float)
        self.cls = class_rng.choice(len(source.classes), size=POOL_JOBS, p=shares / shares.sum())
        self.gpus = np.zeros(POOL_JOBS, dtype=np.int64)
        self.work_s = np.zeros(POOL_JOBS)
        self.priority = np.zeros(POOL_JOBS, dtype=np.int64)
        for i, c in enumerate(source.classes):
            idx = np.flatnonzero(self.cls == i)
            self.gpus[idx] = c.sizes.sample(class_rngs[2 * i], len(idx))
            self.work_s[idx] = c.duration.sample(class_rngs[2 * i + 1], len(idx))
            self.priority[idx] = c.priority
        run_s = self.work_s * _run_s_per_work_s(scenario, reference_gpu, source, clusters)
        self.done = age_rng.random(POOL_JOBS)  # fraction of the run already done: the age is done * run_s
        rate = _rate_per_s(source.arrivals, -self.done * run_s, scenario.start)
        self.weight = run_s * rate  # ∝ the number of such jobs running at t = 0
        self.held = _held_gpus(self.gpus, clusters[0].gpus_per_node)

    def expected_gpus(self) -> float:
        """GPUs the source is expected to hold at t = 0: E[held · ∫_0^x λ(-a) da] over the pool."""
        return float(np.mean(self.held * self.weight))


def capacity_factors(
    gpus: Mapping[K, int], allowed: Mapping[str, Sequence[K]], load: Mapping[str, float]
) -> dict[str, float]:
    """Scale of each source's target so that sources confined to any set of clusters fit in its GPUs (``gpus``
    and ``allowed`` are keyed by cluster: a name in one facility, (site, name) in a federation)."""
    sets = {frozenset(v) for v in allowed.values()}
    factor = {}
    for s in sets:
        demand = sum(load[n] for n, v in allowed.items() if set(v) <= s)
        factor[s] = min(1.0, sum(gpus[c] for c in s) / demand) if demand > 0 else 1.0
    return {n: min(f for s, f in factor.items() if set(v) <= s) for n, v in allowed.items()}


def warm_batch(
    source: SyntheticTraining, pool: SourcePool, target_gpus: float, rng: np.random.Generator, default_load: float
) -> JobBatch:
    """The jobs of ``source`` in progress at t = 0: drawn from ``pool`` until their GPUs reach ``target_gpus``,
    submitted at t = 0 as the source ``warm-start`` with what is left of their work."""
    pick = _draw(pool, target_gpus, rng)
    return JobBatch(
        submit_s=np.zeros(len(pick)),
        gpus=pool.gpus[pick],
        work_s=pool.work_s[pick] * (1.0 - pool.done[pick]),
        priority=pool.priority[pick],
        tenant=[f"{WARM_START_SOURCE}-{source.name}"] * len(pick),
        source=WARM_START_SOURCE,
        gpu_load=source.gpu_load if source.gpu_load is not None else default_load,
        clusters=tuple(source.clusters) if source.clusters else None,
        job_class=[source.classes[k].name for k in pool.cls[pick].tolist()],
    )


def warm_start_batches(scenario: Scenario, streams: RandomStreams) -> list[JobBatch]:
    """The jobs in progress at t = 0, one batch per synthetic source (empty list for ``initial_state: empty``)."""
    if scenario.initial_state != "steady":
        return []
    by_name = {c.name: c for c in scenario.facility.clusters}
    sources = [s for s in scenario.workload.training if isinstance(s, SyntheticTraining)]
    allowed = {s.name: list(s.clusters) if s.clusters else list(by_name) for s in sources}
    ref = scenario.workload.reference_gpu
    pools = {
        s.name: SourcePool(
            scenario, ref, s, [by_name[n] for n in allowed[s.name]], streams.get(f"workload.warm_start.{s.name}")
        )
        for s in sources
    }
    offered = {n: p.expected_gpus() for n, p in pools.items()}
    factors = capacity_factors({n: c.gpus for n, c in by_name.items()}, allowed, offered)
    default_load = scenario.power.training_gpu_load
    return [
        warm_batch(
            s,
            pools[s.name],
            offered[s.name] * factors[s.name],
            streams.get(f"workload.warm_start.{s.name}.draw"),
            default_load,
        )
        for s in sources
    ]


def _draw(pool: SourcePool, target_gpus: float, rng: np.random.Generator) -> np.ndarray:
    """Pool indices drawn ∝ weight until their held GPUs reach ``target_gpus`` (the crossing job kept with the
    probability that makes the expected total exactly the target)."""
    if target_gpus <= 0 or not math.isfinite(target_gpus):
        return np.zeros(0, dtype=np.int64)
    p = pool.weight / pool.weight.sum()
    picks: list[np.ndarray] = []
    total = 0.0
    while True:
        chunk = rng.choice(POOL_JOBS, size=_CHUNK, p=p)
        cum = total + np.cumsum(pool.held[chunk])
        k = int(np.searchsorted(cum, target_gpus))  # first job whose GPUs reach the target
        if k < _CHUNK:
            before = float(cum[k - 1]) if k > 0 else total
            keep_last = rng.random() < (target_gpus - before) / float(pool.held[chunk[k]])
            picks.append(chunk[: k + 1] if keep_last else chunk[:k])
            return np.concatenate(picks)
        picks.append(chunk)
        total = float(cum[-1])
