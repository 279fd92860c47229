"""Prefix caching from a trace's block hashes (``prefix_cache: {from_trace: true, block_size, cache_share}``).

What is modelled:

- **the cache**: each replica keeps an LRU cache of KV blocks keyed by block hash (:class:`BlockCache`), as
  vLLM's automatic prefix caching does (a block is named by the hash of its tokens and of the prefix before it,
  so the same id at the same place means the same prefix). A request's hit is the *longest prefix* of its
  ``hash_ids`` present in the cache, ``min(k x block_size, prompt tokens)`` tokens for ``k`` leading blocks
  found; the rest of the prompt is prefilled. After its prefill all its blocks are cached (touched from the last
  to the first, so that with equal recency the longer prefix goes first, the tie-break of vLLM's design RFC
  #2614); the least recently used blocks are evicted while the cache holds more than its capacity.
- **the competition for KV memory**: the cache keeps ``cache_share`` of the replica's KV space (HBM x
  ``memory_utilisation`` minus the weights); its capacity in blocks is that space over ``block_size x
  kv_bytes_per_token`` (:func:`capacity_blocks`), and running requests get only the rest (the KV-bound capacity
  falls by that share, as with a fixed hit rate).
- **discrete fidelity**: each replica its own cache, starting empty, looked up when the replica admits a request
  and filled at the end of its prefill step (two requests admitted in the same step do not share each other's
  new blocks).
- **fluid fidelity**: the hit rate is measured at prepare time by replaying one pass of the trace through
  ``replicas`` caches of one replica's capacity with the requests dealt round-robin (:func:`replay`); it is then
  used as a fixed hit rate (:mod:`.prefix`). Planning and input checks: :mod:`.prefix_plan`.

Not modelled: blocks shared by running requests (each running request holds its whole context in the running KV
space; the cache is a pool of its own), a cache larger or smaller than ``cache_share`` as load changes, the
prefill of the partial last block (a hit may cover the whole prompt), prefix-aware routing, offloading to CPU
memory or SSD (Mooncake's KV store). Units: tokens and blocks.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from gigafactory_sim.inference.perf import ReplicaPerf

__all__ = ["BlockCache", "ReplayResult", "cached_tokens", "capacity_blocks", "replay"]


class BlockCache:
    """An LRU cache of KV blocks keyed by block hash, holding at most ``capacity`` blocks."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.blocks: OrderedDict[int, None] = OrderedDict()  # least recently used first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.blocks)

    def __contains__(self, block: int) -> bool:
        return block in self.blocks

    def lookup(self, hashes: Sequence[int]) -> int:
        """Number of leading blocks of ``hashes`` found in the cache (the longest cached prefix); those blocks
        become the most recently used, the first one last."""
        blocks = self.blocks
        k = 0
        for h in hashes:
            if h not in blocks:
                break
            k += 1
        for h in reversed(hashes[:k]):
            blocks.move_to_end(h)
        return k

    def insert(self, hashes: Sequence[int]) -> None:
        """Cache every block of a prefilled prompt (touched from the last to the first, so the first block is
        the most recently used), then evict the least recently used blocks beyond the capacity."""
        blocks = self.blocks
        for h in reversed(hashes):
            if h in blocks:
                blocks.move_to_end(h)
            else:
                blocks[h] = None
        while len(blocks) > self.capacity:
            blocks.popitem(last=False)
            self.evicted += 1


def cached_tokens(hit_blocks: int, block_size: int, prompt_tokens: float) -> float:
    """Tokens of a prompt that ``hit_blocks`` leading cached blocks cover."""
    return min(float(hit_blocks * block_size), float(prompt_tokens))


def capacity_blocks(perf: ReplicaPerf, cache_share: float, block_size: int) -> int:
    """Blocks the prefix cache of one replica holds: ``cache_share`` of its KV space (HBM x
    ``memory_utilisation`` minus the weights) over ``block_size x kv_bytes_per_token``."""
    kv_bytes = max(perf.memory_bytes * perf.memory_utilisation - perf.weight_bytes, 0.0)
    return math.floor(cache_share * kv_bytes / (block_size * perf.kv_bytes_per_token))


@dataclass(frozen=True)
class ReplayResult:
    """What a replay of the trace through the caches measured."""

    hit_tokens: float
    prompt_tokens: float
    requests: int
    evicted_blocks: int

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens found in the cache."""
        return self.hit_tokens / self.prompt_tokens if self.prompt_tokens > 0 else 0.0


def replay(
    hashes: Sequence[Sequence[int]],
    prompt_tokens: Sequence[float],
    block_size: int,
    capacity: int,
    replicas: int = 1,
) -> ReplayResult:
    """Replay requests in trace order through ``replicas`` caches of ``capacity`` blocks each, request ``i``
    going to cache ``i mod replicas`` (round-robin), each looked up then filled at once (no concurrency)."""
    caches = [BlockCache(capacity) for _ in range(max(replicas, 1))]
    hit = total = 0.0
    for i, (h, p) in enumerate(zip(hashes, prompt_tokens, strict=True)):
        cache = caches[i % len(caches)]
        hit += cached_tokens(cache.lookup(h), block_size, p)
        total += float(p)
        cache.insert(h)
    return ReplayResult(hit, total, len(hashes), sum(c.evicted for c in caches))
