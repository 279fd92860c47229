"""Request-level SimPy model of one inference service: every request is an event.

Requests join one FIFO queue; replicas pull from it. ``batching: continuous``: a replica runs steps back to
back
while it holds requests (:meth:`~gigafactory_sim.inference.perf.ReplicaPerf.step_time_s`); at each step
boundary it
admits queued requests up to its slot count, prefills them in the next step (whose end is their first
token), and
every decoding request gains one token per step. ``batching: none``: a replica serves one request at a time
for
``c_p * I + O * t1`` (an exponential output length gives an exactly exponential service time: M/M/c).
With a block-hash prefix cache (``prefix_cache.from_trace``) each replica keeps its own LRU cache of KV blocks
(:mod:`.prefix_blocks`): looked up when it admits a request (only the uncached rest is prefilled), filled at the
end of the request's prefill.
A request still queued after ``queue_timeout`` is rejected when a replica would take it. Power is set per
step,
so the energy is exact for the model.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from gigafactory_sim.inference.fluid import ClusterModel
from gigafactory_sim.inference.perf import TokenMix
from gigafactory_sim.inference.prefix_blocks import BlockCache, ReplayResult, cached_tokens

__all__ = ["DiscreteReplica", "DiscreteService"]

PowerHook = Callable[[int, float], None]
"""Called as ``hook(cluster, delta_w)`` when a replica's power changes (after the caller's clock is
advanced)."""


class _Request:
    __slots__ = ("arrival_s", "hashes", "output", "prompt", "ttft_s")

    def __init__(self, arrival_s: float, prompt: float, output: float, hashes: tuple[int, ...] = ()) -> None:
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.ttft_s = math.nan
        self.hashes = hashes


class DiscreteReplica:
    """One replica's runtime state."""

    def __init__(self, cluster: int, slots: int) -> None:
        self.cluster = cluster
        self.slots = slots
        self.active = True
        self.wake: simpy.Event | None = None
        self.power_w = 0.0
        self.t_s = 0.0
        self.in_flight = 0
        self.cache: BlockCache | None = None  # block-hash prefix cache (prefix_cache.from_trace)


class DiscreteService:
    """Queue, replicas and request records of one service inside a SimPy environment."""

    def __init__(
        self,
        env: simpy.Environment,
        models: dict[int, ClusterModel],
        mix: TokenMix,
        batching: str,
        queue_timeout_s: float,
        on_power: PowerHook | None = None,
        prefix_block_size: int = 0,
        prefix_capacity_blocks: dict[int, int] | None = None,
    ) -> None:
        self.env = env
        self.models = models
        self.mix = mix
        self.batching = batching
        self.queue_timeout_s = queue_timeout_s
        self.on_power = on_power
        self.queue: deque[_Request] = deque()
        self.idle: list[DiscreteReplica] = []
        self.replicas: list[DiscreteReplica] = []
        self.arrived = 0
        self.rejected = 0
        self.done: list[tuple[float, float, float, float, float]] = []  # arrival, ttft, end, prompt, output
        self.energy_j = 0.0
        self.batch_time = 0.0  # integral of decoding requests over time (all replicas)
        self.block_size = prefix_block_size  # 0: no block cache
        self.capacity_blocks = prefix_capacity_blocks or {}
        self.caches: list[BlockCache] = []
        self.prefix_hit_tokens = self.prefix_lookup_tokens = 0.0
        self.prefix_lookups = 0
        self.t1 = {c: m.perf.step_time_s(1, mix.prompt_mean + mix.output_mean / 2.0, 0.0) for c, m in models.items()}

    # -- arrivals ------------------------------------------------------------------------------------------
    def feed(
        self,
        times_s: np.ndarray,
        prompt: np.ndarray,
        output: np.ndarray,
        hashes: list[tuple[int, ...]] | None = None,
    ) -> None:
        """Start the arrival process of the given requests (sorted by time), with their block hashes if the
        service has a block cache."""
        self.env.process(self._arrivals(times_s.tolist(), prompt.tolist(), output.tolist(), hashes))

    def _arrivals(
        self, times: list[float], prompt: list[float], output: list[float], hashes: list[tuple[int, ...]] | None
    ) -> Generator[simpy.Event, Any, None]:
        env = self.env
        for i, (t, p, o) in enumerate(zip(times, prompt, output, strict=True)):
            if t > env.now:
                yield env.timeout(t - env.now)
            self.arrived += 1
            self.queue.append(_Request(env.now, p, o, hashes[i]) if hashes is not None else _Request(env.now, p, o))
            if self.idle:
                rep = self.idle.pop()
                if rep.wake is not None and not rep.wake.triggered:
                    rep.wake.succeed()

    def submit(self, arrival_s: float, prompt: float, output: float) -> None:
        """Queue one request now that arrived at ``arrival_s`` (a disaggregated decode pool: after its prefill)."""
        self.arrived += 1
        self.queue.append(_Request(arrival_s, prompt, output))
        if self.idle:
            rep = self.idle.pop()
            if rep.wake is not None and not rep.wake.triggered:
                rep.wake.succeed()

    # -- replicas ------------------------------------------------------------------------------------------
    def add_replica(self, cluster: int, on_drained: Callable[[DiscreteReplica], None] | None = None) -> DiscreteReplica:
        slots = self.models[cluster].slots
        rep = DiscreteReplica(cluster, slots)
        rep.t_s = self.env.now
        if self.block_size > 0:  # a new replica's cache starts empty
            rep.cache = BlockCache(self.capacity_blocks.get(cluster, 0))
            self.caches.append(rep.cache)
        self.replicas.append(rep)
        if self.batching != "continuous":
            body = self._single(rep)
        elif self.models[cluster].perf.chunked:
            body = self._chunked(rep)
        else:
            body = self._continuous(rep)
        self.env.process(self._lifecycle(rep, body, on_drained))
        return rep

    def retire(self, rep: DiscreteReplica) -> None:
        """Stop admitting; the replica finishes its requests, then ``on_drained`` runs."""
        rep.active = False
        if rep in self.idle:
            self.idle.remove(rep)
        if rep.wake is not None and not rep.wake.triggered:
            rep.wake.succeed()

    def _lifecycle(
        self,
        rep: DiscreteReplica,
        body: Generator[simpy.Event, Any, None],
        on_drained: Callable[[DiscreteReplica], None] | None,
    ) -> Generator[simpy.Event, Any, None]:
        yield from body
        self._set_power(rep, 0.0)
        self.replicas.remove(rep)
        if on_drained is not None:
            on_drained(rep)

    def _set_power(self, rep: DiscreteReplica, power_w: float) -> None:
        now = self.env.now
        self.energy_j += rep.power_w * (now - rep.t_s)
        rep.t_s = now
        if power_w != rep.power_w:
            delta = power_w - rep.power_w
            rep.power_w = power_w
            if self.on_power is not None:
                self.on_power(rep.cluster, delta)

    def _take(self, rep: DiscreteReplica) -> _Request | None:
        now = self.env.now
        while self.queue:
            r = self.queue.popleft()
            if now - r.arrival_s > self.queue_timeout_s:
                self.rejected += 1
                continue
            return r
        return None

    def _uncached(self, cache: BlockCache, r: _Request) -> float:
        """Prompt tokens of ``r`` to prefill on a replica with ``cache``: all but its longest cached prefix."""
        hit = cached_tokens(cache.lookup(r.hashes), self.block_size, r.prompt)
        self.prefix_hit_tokens += hit
        self.prefix_lookup_tokens += r.prompt
        self.prefix_lookups += 1
        return r.prompt - hit

    def prefix_measured(self) -> ReplayResult | None:
        """What the replicas' block caches saw: tokens hit and looked up, requests, blocks evicted."""
        if self.block_size <= 0:
            return None
        evicted = sum(c.evicted for c in self.caches)
        return ReplayResult(self.prefix_hit_tokens, self.prefix_lookup_tokens, self.prefix_lookups, evicted)

    def _wait(self, rep: DiscreteReplica) -> simpy.Event:
        idle_w = self.models[rep.cluster].power.idle_w * self.models[rep.cluster].perf.gpus
        self._set_power(rep, idle_w)
        rep.wake = self.env.event()
        self.idle.append(rep)
        return rep.wake

    def _continuous(self, rep: DiscreteReplica) -> Generator[simpy.Event, Any, None]:
        env = self.env
        m = self.models[rep.cluster]
        perf, model, gpus = m.perf, m.power, m.perf.gpus
        heap: list[tuple[int, int, _Request]] = []
        n, ctx, step, seq = 0, 0.0, 0, 0
        while True:
            new: list[_Request] = []
            while rep.active and n + len(new) < rep.slots:
                r = self._take(rep)
                if r is None:
                    break
                new.append(r)
            if not new and n == 0:
                if not rep.active:
                    return
                yield self._wait(rep)
                continue
            cache = rep.cache
            if cache is not None:  # the longest cached prefix of each prompt is not prefilled
                prefill = sum(self._uncached(cache, r) for r in new)
            else:
                prefill = sum(r.prompt for r in new)
                if perf.prefix_hit_rate > 0:  # the cached part of each prompt is not prefilled
                    prefill *= 1.0 - perf.prefix_hit_rate
            t = perf.step_time_s(n, ctx, prefill)
            self._set_power(rep, gpus * perf.step_gpu_power_w(model, n, ctx, prefill))
            rep.in_flight = n + len(new)
            yield env.timeout(t)
            self.batch_time += n * t
            step += 1
            now = env.now
            ctx += n
            seq, ctx = self._step_end(new, now, step, heap, seq, ctx, cache)
            n = len(heap)

    def _step_end(
        self,
        prefilled: list[_Request],
        now: float,
        step: int,
        heap: list[tuple[int, int, _Request]],
        seq: int,
        ctx: float,
        cache: BlockCache | None,
    ) -> tuple[int, float]:
        """The end of step ``step`` at ``now`` (both step loops): the requests whose prefill it finished get their
        first token (and their blocks enter the cache) and join the decoding heap, or are done if that was their
        only token; the requests whose last token it was are done. Returns the heap's sequence counter and the
        context tokens after it."""
        for r in prefilled:
            r.ttft_s = now
            if cache is not None:
                cache.insert(r.hashes)
            steps = math.ceil(r.output) - 1
            if steps <= 0:
                self.done.append((r.arrival_s, now, now, r.prompt, float(max(math.ceil(r.output), 1))))
                continue
            seq += 1
            heapq.heappush(heap, (step + steps, seq, r))
            ctx += r.prompt + 1
        while heap and heap[0][0] <= step:
            r = heapq.heappop(heap)[2]
            out = float(math.ceil(r.output))
            self.done.append((r.arrival_s, r.ttft_s, now, r.prompt, out))
            ctx -= r.prompt + out
        return seq, ctx

    def _chunked(self, rep: DiscreteReplica) -> Generator[simpy.Event, Any, None]:
        """Chunked prefill: each step carries the decodes (one token each) and, within the token budget left,
        prefill chunks of the oldest prompts first; a prompt's first token comes at the end of its last
        chunk's step."""
        env = self.env
        m = self.models[rep.cluster]
        perf, model, gpus = m.perf, m.power, m.perf.gpus
        heap: list[tuple[int, int, _Request]] = []
        pre: deque[list[Any]] = deque()  # [request, prompt tokens still to prefill], oldest first
        n, ctx, step, seq = 0, 0.0, 0, 0
        while True:
            left = perf.step_token_budget - n
            chunks: list[tuple[list[Any], float]] = []
            for item in pre:
                if left <= 0:
                    break
                take = min(item[1], left)
                chunks.append((item, take))
                left -= take
            while rep.active and left > 0 and n + len(pre) < rep.slots:
                r = self._take(rep)
                if r is None:
                    break
                if rep.cache is not None:
                    item = [r, self._uncached(rep.cache, r)]
                else:
                    item = [r, float(r.prompt) * (1.0 - perf.prefix_hit_rate)]
                pre.append(item)
                take = min(item[1], left)
                chunks.append((item, take))
                left -= take
            if not chunks and n == 0:
                if not rep.active and not pre:
                    return
                yield self._wait(rep)
                continue
            prefill = sum(take for _, take in chunks)
            t = perf.step_time_s(n, ctx, prefill)
            self._set_power(rep, gpus * perf.step_gpu_power_w(model, n, ctx, prefill))
            rep.in_flight = n + len(pre)
            yield env.timeout(t)
            self.batch_time += n * t
            step += 1
            now = env.now
            ctx += n
            for item, take in chunks:
                item[1] -= take
            prefilled = []
            while pre and pre[0][1] <= 0:
                prefilled.append(pre.popleft()[0])
            seq, ctx = self._step_end(prefilled, now, step, heap, seq, ctx, rep.cache)
            n = len(heap)

    def _single(self, rep: DiscreteReplica) -> Generator[simpy.Event, Any, None]:
        env = self.env
        m = self.models[rep.cluster]
        perf, model, gpus = m.perf, m.power, m.perf.gpus
        t1 = self.t1[rep.cluster]
        ctx = self.mix.prompt_mean + self.mix.output_mean / 2.0
        mem, cmp, _ = perf.step_parts_s(1, ctx, 0.0)
        decode_w = perf.phase_power_w(model, mem, cmp, 0.0, t1)
        while True:
            r = self._take(rep) if rep.active else None
            if r is None:
                if not rep.active:
                    return
                yield self._wait(rep)
                continue
            if rep.cache is not None:
                prefill = perf.c_prefill_s * self._uncached(rep.cache, r)
                rep.cache.insert(r.hashes)
            else:
                prefill = perf.c_prefill_s * r.prompt
                if perf.prefix_hit_rate > 0:
                    prefill *= 1.0 - perf.prefix_hit_rate
            decode = r.output * t1
            service = prefill + decode
            busy_w = (prefill * model.power_w(1.0) + decode * decode_w) / service if service > 0 else model.idle_w
            self._set_power(rep, gpus * busy_w)
            rep.in_flight = 1
            start = env.now
            yield env.timeout(service)
            self.batch_time += service
            self.done.append((r.arrival_s, start + prefill + t1, env.now, r.prompt, r.output))
            rep.in_flight = 0

    # -- results -------------------------------------------------------------------------------------------
    def flush_energy(self) -> None:
        """Bring every replica's energy up to now (call before reading ``energy_j``)."""
        for rep in self.replicas:
            self._set_power(rep, rep.power_w)

    def records(self) -> np.ndarray:
        """Completed requests as an array of rows (arrival, ttft time, end time, prompt, output)."""
        return np.array(self.done, dtype=float).reshape(-1, 5)
