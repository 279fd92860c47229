"""Request-level SimPy model of a disaggregated service: every request is an event in each pool.

A request joins the prefill pool's FIFO queue; a free prefill replica takes it and runs one prefill-only step of
``h + max(weights streamed once, c_p x I)`` seconds at the compute-bound power (one prompt per step, as in
:mod:`.disagg_fluid`). Its KV cache then crosses the link (``I x kv_bytes_per_token x 8 / (Gb/s x 1e9)``,
holding no GPU); the first token is counted at the end of the transfer (TTFT). The request then joins the decode
pool's queue, served by :class:`~gigafactory_sim.inference.discrete.DiscreteService` with a replica that
prefills nothing (its roofline's prefix hit rate is 1: the whole context arrived with the KV cache, and is read
by every decode step). The decode replica's admission step is counted as the request's first decode step (one
step more than strictly needed: conservative by a step). A request still queued after ``queue_timeout`` from its
arrival is rejected by either pool. Power is set per prefill and per decode step, so the energy is exact for the
model.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import simpy

from gigafactory_sim.inference.disagg_config import KvLink
from gigafactory_sim.inference.disagg_fluid import PrefillModel
from gigafactory_sim.inference.discrete import DiscreteService
from gigafactory_sim.inference.fluid import ClusterModel
from gigafactory_sim.inference.perf import SloLimits, TokenMix

__all__ = ["DiscretePools", "DiscretePrefill", "PrefillReplica"]

PoolPowerHook = Callable[[str, int, float], None]
"""``hook(pool, cluster, delta_w)``: a replica's GPU power changed."""


class PrefillReplica:
    """One prefill replica's runtime state."""

    __slots__ = ("active", "cluster", "power_w", "wake")

    def __init__(self, cluster: int) -> None:
        self.cluster = cluster
        self.active = True
        self.wake: simpy.Event | None = None
        self.power_w = 0.0


class DiscretePrefill:
    """The prefill pool's queue and replicas; hands each prefilled request to ``handover`` after its transfer."""

    def __init__(
        self,
        env: simpy.Environment,
        models: dict[int, PrefillModel],
        link: KvLink,
        kv_bytes_per_token: float,
        hit_rate: float,
        queue_timeout_s: float,
        on_power: Callable[[int, float], None],
        handover: Callable[[float, float, float], None],
    ) -> None:
        self.env = env
        self.models = models
        self.link = link
        self.kv_bytes = kv_bytes_per_token
        self.computed = 1.0 - hit_rate  # share of each prompt prefilled (prefix caching)
        self.queue_timeout_s = queue_timeout_s
        self.on_power = on_power
        self.handover = handover
        self.queue: deque[tuple[float, float, float]] = deque()  # arrival, whole prompt, output
        self.idle: list[PrefillReplica] = []
        self.arrived = 0
        self.rejected = 0
        self.busy_replica_s = 0.0
        self.done: list[tuple[float, float, float, float, float]] = []  # arrival, start, ttft time, prompt, output

    def feed(self, times_s: np.ndarray, prompt: np.ndarray, output: np.ndarray) -> None:
        self.env.process(self._arrivals(times_s.tolist(), prompt.tolist(), output.tolist()))

    def _arrivals(
        self, times: list[float], prompt: list[float], output: list[float]
    ) -> Generator[simpy.Event, Any, None]:
        env = self.env
        for t, p, o in zip(times, prompt, output, strict=True):
            if t > env.now:
                yield env.timeout(t - env.now)
            self.arrived += 1
            self.queue.append((env.now, p, o))
            if self.idle:
                rep = self.idle.pop()
                if rep.wake is not None and not rep.wake.triggered:
                    rep.wake.succeed()

    def add_replica(self, cluster: int, on_drained: Callable[[PrefillReplica], None]) -> PrefillReplica:
        rep = PrefillReplica(cluster)
        self.env.process(self._serve(rep, on_drained))
        return rep

    def retire(self, rep: PrefillReplica) -> None:
        """Stop taking prompts; the replica finishes the one it holds, then ``on_drained`` runs."""
        rep.active = False
        if rep in self.idle:
            self.idle.remove(rep)
        if rep.wake is not None and not rep.wake.triggered:
            rep.wake.succeed()

    def _set_power(self, rep: PrefillReplica, power_w: float) -> None:
        if power_w != rep.power_w:
            delta = power_w - rep.power_w
            rep.power_w = power_w
            self.on_power(rep.cluster, delta)

    def _take(self) -> tuple[float, float, float] | None:
        now = self.env.now
        while self.queue:
            r = self.queue.popleft()
            if now - r[0] > self.queue_timeout_s:
                self.rejected += 1
                continue
            return r
        return None

    def _serve(
        self, rep: PrefillReplica, on_drained: Callable[[PrefillReplica], None]
    ) -> Generator[simpy.Event, Any, None]:
        env = self.env
        m = self.models[rep.cluster]
        gpus = m.perf.gpus
        while True:
            r = self._take() if rep.active else None
            if r is None:
                if not rep.active:
                    break
                self._set_power(rep, gpus * m.power.idle_w)
                rep.wake = env.event()
                self.idle.append(rep)
                yield rep.wake
                continue
            arrival, prompt, output = r
            start = env.now
            service = m.perf.step_time_s(0.0, 0.0, prompt * self.computed)
            self._set_power(rep, gpus * m.busy_w)
            yield env.timeout(service)
            self.busy_replica_s += service
            transfer = self.link.transfer_s(prompt, self.kv_bytes)
            self.done.append((arrival, start, env.now + transfer, prompt, output))
            env.timeout(transfer).callbacks.append(partial(self._handover, arrival, prompt, output))
        self._set_power(rep, 0.0)
        on_drained(rep)

    def _handover(self, arrival: float, prompt: float, output: float, _event: simpy.Event) -> None:
        self.handover(arrival, prompt, output)

    def records(self) -> np.ndarray:
        return np.array(self.done, dtype=float).reshape(-1, 5)


class DiscretePools:
    """Both pools of one service at the discrete fidelity, and their joined request records."""

    def __init__(
        self,
        env: simpy.Environment,
        prefill: dict[int, PrefillModel],
        decode: dict[int, ClusterModel],
        decode_mix: TokenMix,
        link: KvLink,
        kv_bytes_per_token: float,
        hit_rate: float,
        slo: SloLimits,
        queue_timeout_s: float,
        on_power: PoolPowerHook,
    ) -> None:
        self.slo = slo
        self.gpu_w: dict[str, dict[int, float]] = {"prefill": {}, "decode": {}}
        self._on_power = on_power
        self.handed = 0
        self.moved_bytes = 0.0
        self.kv_bytes = kv_bytes_per_token
        self.prefill = DiscretePrefill(
            env,
            prefill,
            link,
            kv_bytes_per_token,
            hit_rate,
            queue_timeout_s,
            partial(self._power, "prefill"),
            self._handover,
        )
        whole = {
            c: ClusterModel(replace(m.perf, prefix_hit_rate=1.0), m.power, m.cap, m.slots) for c, m in decode.items()
        }
        self.decode = DiscreteService(
            env, whole, decode_mix, "continuous", queue_timeout_s, on_power=partial(self._power, "decode")
        )

    def _power(self, pool: str, c: int, delta_w: float) -> None:
        self.gpu_w[pool][c] = self.gpu_w[pool].get(c, 0.0) + delta_w
        self._on_power(pool, c, delta_w)

    def _handover(self, arrival_s: float, prompt: float, output: float) -> None:
        self.handed += 1
        self.moved_bytes += prompt * self.kv_bytes
        self.decode.submit(arrival_s, prompt, output)

    def joined(self) -> dict[str, np.ndarray]:
        """Per completed request: arrival, prefill start, first token (after the transfer), first decode step,
        end, prompt and output (decode records matched to their prefill by arrival time and prompt)."""
        pre = self.prefill.records()
        dec = self.decode.records()
        by_key: dict[tuple[float, float], list[tuple[float, float]]] = {}
        for a, s, t, p, _o in pre.tolist():
            by_key.setdefault((a, p), []).append((s, t))
        start = np.full(len(dec), math.nan)
        ttft = np.full(len(dec), math.nan)
        for i, (a, _f, _e, p, _o) in enumerate(dec.tolist()):
            found = by_key.get((a, p))
            if found:
                start[i], ttft[i] = found.pop(0)
        return {
            "arrival": dec[:, 0],
            "start": start,
            "first": ttft,
            "decode_first": dec[:, 1],
            "end": dec[:, 2],
            "prompt": dec[:, 3],
            "output": dec[:, 4],
        }
