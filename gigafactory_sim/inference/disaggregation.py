"""Prefill/decode disaggregation (Splitwise, Patel et al., ISCA 2024; DistServe, Zhong et al., OSDI 2024): steady-state
sizing of separate prefill and decode pools against one colocated pool. A planning model (plain functions); the
engine runs disaggregated services through :mod:`.disagg_service` (``disaggregation`` of a service).

- **Prefill pool**: replicas of ``gpus`` GPUs run prefill-only steps, compute-bound at ``c_p`` seconds per prompt
  token; requests queue FIFO for them (M/G/c, Allen-Cunneen). A request's KV cache (``I x kv_bytes_per_token``)
  then crosses a link of ``link_gbps`` to a decode replica. TTFT = wait + ``c_p x I`` + transfer (+ one decode
  step for the first token, which the prefill produces; not added).
- **Decode pool**: decode-only steps (the colocated roofline with no prefill in them: :func:`.prefix.computed_mix`
  at hit rate 1 keeps the whole context in the KV terms); sized by its TPOT and e2e objectives.
- **Colocated**: today's replica capacity under all objectives.

Each pool's replica count is the smallest meeting its objectives at the offered rate; GPUs and GPU power per pool
are reported. Units: requests/s, seconds, watts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gigafactory_sim.inference.perf import (
    InfeasibleObjective,
    ReplicaPerf,
    SloLimits,
    TokenMix,
    capacity,
    operating_point,
)
from gigafactory_sim.inference.prefix import computed_mix
from gigafactory_sim.inference.queueing import allen_cunneen_wait_s
from gigafactory_sim.power.models import GpuPowerModel

__all__ = ["PoolPlan", "SplitPlan", "plan_colocated", "plan_split"]


@dataclass(frozen=True)
class PoolPlan:
    """One pool at the offered rate."""

    replicas: int
    gpus: int
    ttft_s: float  # at the SLO quantile of prompt length (decode pool: nan)
    tpot_s: float  # decode step (prefill pool: nan)
    gpu_power_w: float  # all of the pool's GPUs


@dataclass(frozen=True)
class SplitPlan:
    prefill: PoolPlan
    decode: PoolPlan
    transfer_s: float  # KV transfer of a prompt at the quantile length

    @property
    def gpus(self) -> int:
        return self.prefill.gpus + self.decode.gpus

    @property
    def gpu_power_w(self) -> float:
        return self.prefill.gpu_power_w + self.decode.gpu_power_w


def plan_colocated(
    perf: ReplicaPerf, mix: TokenMix, slo: SloLimits, power: GpuPowerModel, rate_per_s: float
) -> PoolPlan:
    """Replicas of one colocated pool to serve ``rate_per_s`` within ``slo`` (each at its SLO capacity)."""
    cap = capacity(perf, mix, slo, power)
    n = max(1, math.ceil(rate_per_s / cap.rate_per_s))
    op = operating_point(perf, mix, rate_per_s / n, power)
    return PoolPlan(n, n * perf.gpus, op.ttft_q_s, op.step_s, n * perf.gpus * op.gpu_power_w)


def plan_split(
    prefill: ReplicaPerf,
    decode: ReplicaPerf,
    mix: TokenMix,
    slo: SloLimits,
    power: GpuPowerModel,
    rate_per_s: float,
    link_gbps: float = 400.0,
    max_replicas: int = 100_000,
) -> SplitPlan:
    """Prefill and decode pools serving ``rate_per_s`` within ``slo``; ``link_gbps`` per decode-bound transfer
    (400 Gb/s: one NDR InfiniBand port; assumed)."""
    transfer_s = mix.prompt_q * prefill.kv_bytes_per_token * 8.0 / (link_gbps * 1e9)
    service_s = prefill.c_prefill_s * mix.prompt_mean
    ttft_q = math.inf
    n_p = max(1, math.ceil(rate_per_s * service_s))
    while n_p <= max_replicas:
        if rate_per_s * service_s < n_p:
            cs2 = max(mix.prompt_sq_mean / mix.prompt_mean**2 - 1.0, 0.0) if mix.prompt_mean > 0 else 0.0
            wait = allen_cunneen_wait_s(n_p, rate_per_s, service_s, 1.0, cs2)
            ttft_q = wait + prefill.c_prefill_s * mix.prompt_q + transfer_s
            if ttft_q <= slo.ttft_s:
                break
        n_p += 1
    else:
        raise InfeasibleObjective("ttft", "no prefill pool size meets ttft")
    busy = rate_per_s * service_s / n_p  # share of time each prefill replica computes
    pre_w = n_p * prefill.gpus * (busy * power.power_w(1.0) + (1.0 - busy) * power.idle_w)
    decode_mix = computed_mix(mix, 1.0)  # decode-only steps; the context keeps the prompt
    decode_slo = SloLimits(tpot_s=slo.tpot_s, e2e_s=slo.e2e_s - ttft_q, quantile=slo.quantile)
    dec = plan_colocated(decode, decode_mix, decode_slo, power, rate_per_s)
    return SplitPlan(
        PoolPlan(n_p, n_p * prefill.gpus, ttft_q, math.nan, pre_w),
        PoolPlan(dec.replicas, dec.gpus, math.nan, dec.tpot_s, dec.gpu_power_w),
        transfer_s,
    )
