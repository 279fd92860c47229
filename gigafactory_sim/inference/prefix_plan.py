"""Plan a service's block-hash prefix cache at prepare time (:mod:`.prefix_blocks` has the cache itself).

Checks the ``prefix_cache`` fields (:func:`prefix_cache_problems`) and the trace's block counts against
``block_size``, sizes each cluster's cache in blocks, and replays one pass of the trace through the caches to
measure the hit rate that sizes the replicas (both fidelities) and is the fluid fidelity's hit rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.inference.autoscaler import AutoscalerPolicy
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.fluid import ClusterModel
from gigafactory_sim.inference.prefix_blocks import ReplayResult, capacity_blocks, replay
from gigafactory_sim.inference.trace import RequestTrace
from gigafactory_sim.inference.trace_rows import BlockHashes

__all__ = ["PrefixPlan", "check_block_counts", "plan_blocks", "prefix_cache_problems"]


@dataclass(frozen=True)
class PrefixPlan:
    """A service's block-hash prefix cache, ready to run: block size, each usable cluster's cache capacity per
    replica, and the prepare-time replay (its hit rate sizes the replicas and is the fluid fidelity's)."""

    block_size: int
    cache_share: float
    capacity_blocks: dict[int, int]  # per cluster index
    replay: ReplayResult
    replay_replicas: int

    def summary(self, measured: ReplayResult | None = None) -> dict[str, float | int | str]:
        """The summary's ``prefix_cache`` section; ``measured``: the discrete run's own lookups."""
        run = measured if measured is not None else self.replay
        return {
            "source": "run" if measured is not None else "replay",
            "hit_rate_measured": run.hit_rate,
            "hit_tokens": run.hit_tokens,
            "looked_up_tokens": run.prompt_tokens,
            "evicted_blocks": run.evicted_blocks,
            "hit_rate_replay": self.replay.hit_rate,
            "replay_replicas": self.replay_replicas,
            "block_size": self.block_size,
            "cache_share": self.cache_share,
            "cache_blocks_per_replica": min(self.capacity_blocks.values()) if self.capacity_blocks else 0,
        }


def prefix_cache_problems(svc: InferenceService, path: str) -> list[tuple[str, str]]:
    """Bad combinations of ``prefix_cache`` fields, each as ``(field path, message)``."""
    pc = svc.prefix_cache
    if pc is None:
        return []
    where = f"{path}.prefix_cache"
    if pc.from_trace and pc.hit_rate is not None:
        return [(f"{where}.from_trace", "give either hit_rate or from_trace: true, not both")]
    if not pc.from_trace:
        if pc.hit_rate is None:
            return [(f"{where}.hit_rate", "give hit_rate (share of prompt tokens cached) or from_trace: true")]
        if "block_size" in pc.model_fields_set:
            return [(f"{where}.block_size", "block_size is for from_trace: true (a fixed hit_rate has no blocks)")]
        return []
    if not isinstance(svc.demand, TraceDemand):
        return [(f"{where}.from_trace", "from_trace needs trace demand (demand.kind: trace) with block hashes")]
    if svc.demand.format == "azure":
        return [(f"{where}.from_trace", "the azure trace format carries no block hashes (use mooncake or generic)")]
    return []


def check_block_counts(hashes: BlockHashes, prompt: np.ndarray, block_size: int, file: str, path: str) -> None:
    """A request with more block hashes than its prompt has blocks (``ceil(tokens / block_size)``) means the
    block size does not match the trace's: an input error naming the first such request."""
    counts = np.fromiter((len(h) for h in hashes), dtype=float, count=len(hashes))
    bad = np.flatnonzero(counts > np.ceil(prompt / block_size))
    if len(bad):
        i = int(bad[0])
        raise ScenarioError.single(
            file,
            f"{path}.prefix_cache.block_size",
            f"request {i + 1} of the trace has {int(counts[i])} block hashes for {prompt[i]:g} prompt tokens: more "
            f"than blocks of {block_size} tokens it can fill ({len(bad)} such requests); is block_size the trace's?",
        )


def plan_blocks(
    svc: InferenceService, trace: RequestTrace, models: dict[int, ClusterModel], file: str, path: str
) -> PrefixPlan:
    """Each usable cluster's cache capacity per replica and the prepare-time replay: one pass of the trace
    (cut at the horizon) through as many caches as the autoscaler holds at the trace's mean rate without the
    cache (capacity of the first usable cluster), requests dealt round-robin."""
    pc = svc.prefix_cache
    assert pc is not None and trace.base_hashes is not None
    check_block_counts(trace.base_hashes, trace.base_prompt, pc.block_size, file, path)
    caps = {c: capacity_blocks(m.perf, pc.cache_share, pc.block_size) for c, m in models.items()}
    first = next(iter(models))
    horizon_s = trace.horizon_s
    rate = trace.expected_requests(0.0, horizon_s) / horizon_s if horizon_s > 0 else 0.0
    replicas = max(AutoscalerPolicy(svc.autoscaler, models[first].rate_per_s).needed(rate), 1)
    n = int(min(trace.n_requests, len(trace.base_hashes)))
    result = replay(trace.base_hashes[:n], trace.base_prompt[:n].tolist(), pc.block_size, caps[first], replicas)
    return PrefixPlan(pc.block_size, pc.cache_share, caps, result, replicas)
