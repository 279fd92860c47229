"""Roofline model of one LLM serving replica (pure functions and frozen dataclasses; no SimPy, no config).

A replica runs *steps* (continuous batching, as vLLM / TensorRT-LLM do): every step, each of the ``n`` running
requests produces one output token, and newly admitted prompts are prefilled. One step takes

    t = overhead + max(memory_time, decode_compute_time) + prefill_compute_time
    memory_time          = (weight bytes + bytes of the KV cache read) / (HBM bandwidth x memory efficiency)
    decode_compute_time  = 2 FLOP/param x n / (peak FLOP/s x decode efficiency)
    prefill_compute_time = 2 FLOP/param x prompt tokens / (peak FLOP/s x prefill efficiency)

Decode is memory-bound at small batch (every step reads all weights) and compute-bound at large batch;
prefill is compute-bound. Prefill is not overlapped with decode's memory traffic (conservative;
chunked-prefill "piggybacking" hides part of it).

Mean-field operating point (the fluid model, :func:`operating_point`): at ``lam`` requests/s per replica, a
request stays ``O`` steps, so the batch is ``n = lam * O * t`` (Little's law), the KV tokens read per step are
``lam * t * A`` with ``A = E[I*O] + E[O*(O+1)]/2`` (context token-steps per request), and the prompt tokens
per step are ``lam * t * E[I]``. The step time is then the fixed point of a convex piecewise-linear map, the
larger of

    t_mem = (h + W) / (1 - lam * (k * A + c_p * E[I]))       (memory-bound decode)
    t_cmp = h / (1 - lam * (c_d * E[O] + c_p * E[I]))       (compute-bound decode)

and is infinite (overload) once a denominator reaches zero. Units: seconds, bytes, FLOP, watts.

Power (per GPU) is time-weighted over a step: prefill at the compute-bound power ``power_w(1)``, decode at the
larger of the compute power at its compute fraction and the memory power at its bandwidth fraction
(``memory_power_w``), overhead at idle-with-context power.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gigafactory_sim.power.models import GpuPowerModel

__all__ = [
    "InfeasibleObjective",
    "OperatingPoint",
    "ReplicaPerf",
    "SloLimits",
    "TokenMix",
    "busy_fraction",
    "capacity",
    "memory_power_w",
    "operating_point",
]

INF = float("inf")


class InfeasibleObjective(ValueError):
    """No load meets the objectives; ``field`` names the objective (``tpot``, ``ttft``, ``e2e``) or
    ``model``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TokenMix:
    """Moments and quantiles of prompt (I) and output (O) token counts of one service's requests."""

    prompt_mean: float
    output_mean: float
    output_sq_mean: float  # E[O^2]
    prompt_output_mean: float  # E[I*O]
    prompt_q: float  # prompt tokens at the SLO quantile
    output_q: float  # output tokens at the SLO quantile
    output_cv2: float  # squared coefficient of variation of O (service-time variability)
    prompt_sq_mean: float = 0.0  # E[I^2]; 0: not known (taken as E[I]^2)
    prompt_grid: tuple[float, ...] = ()  # prompt tokens at 100 evenly spaced quantiles (empty: not known)

    @classmethod
    def from_samples(cls, prompt: np.ndarray, output: np.ndarray, quantile: float = 0.99) -> TokenMix:
        p = np.asarray(prompt, dtype=float)
        o = np.asarray(output, dtype=float)
        mean_o = float(o.mean())
        return cls(
            prompt_mean=float(p.mean()),
            output_mean=mean_o,
            output_sq_mean=float((o * o).mean()),
            prompt_output_mean=float((p * o).mean()),
            prompt_q=float(np.quantile(p, quantile)),
            output_q=float(np.quantile(o, quantile)),
            output_cv2=float(o.var() / mean_o**2) if mean_o > 0 else 0.0,
            prompt_sq_mean=float((p * p).mean()),
            prompt_grid=tuple(float(x) for x in np.quantile(p, np.linspace(0.005, 0.995, 100))),
        )

    @classmethod
    def fixed(cls, prompt: float, output: float) -> TokenMix:
        return cls(prompt, output, output * output, prompt * output, prompt, output, 0.0)

    @cached_property
    def context_token_steps(self) -> float:
        """E[sum over a request's decode steps of its context length] = E[I*O] + E[O(O+1)]/2."""
        return self.prompt_output_mean + (self.output_sq_mean + self.output_mean) / 2.0


@dataclass(frozen=True)
class SloLimits:
    """Latency objectives in seconds (``inf`` when not set); ``quantile`` applies to TTFT and end-to-end."""

    ttft_s: float = INF
    tpot_s: float = INF
    e2e_s: float = INF
    quantile: float = 0.99


@dataclass(frozen=True)
class ReplicaPerf:
    """One replica: ``gpus`` GPUs serving one model (tensor-parallel; communication not modelled). Its derived
    constants are computed once (``cached_property``: the instance is frozen)."""

    params: float  # parameters
    weight_bytes: float
    kv_bytes_per_token: float
    gpus: int
    peak_flops: float  # whole replica, in the weights' compute precision, datasheet
    bandwidth_bps: float  # whole replica, datasheet
    memory_bytes: float  # whole replica
    prefill_efficiency: float = 0.6
    decode_efficiency: float = 0.5
    memory_efficiency: float = 4.27 / 4.8
    memory_utilisation: float = 0.9
    step_overhead_s: float = 0.0005
    step_token_budget: float = INF  # chunked prefill: tokens per step (decodes + prefill chunks); inf: off
    active_params: float = 0.0  # mixture of experts: parameters per token (0: dense, all of ``params``)
    expert_bytes: float = 0.0  # mixture of experts: bytes of all routed experts (inside ``weight_bytes``)
    experts: int = 0  # routed experts per layer (0: dense)
    experts_per_token: int = 0  # top-k
    prefix_hit_rate: float = 0.0  # prefix caching: share of prompt tokens not prefilled
    kv_reserved_share: float = 0.0  # prefix caching: share of the KV space the cache keeps

    @cached_property
    def moe(self) -> bool:
        return self.experts > 0

    def weights_read_s(self, tokens: float) -> float:
        """Seconds to stream the weights a step of ``tokens`` tokens touches: all of them for a dense model; for
        a mixture of experts the shared part plus the experts routed to (uniform routing: a share
        ``1 - (1 - k/E)^tokens`` of them)."""
        if not self.moe:
            return self.weights_time_s
        touched = 1.0 - (1.0 - self.experts_per_token / self.experts) ** max(tokens, 1.0)
        read = self.weight_bytes - self.expert_bytes * (1.0 - touched)
        return read / (self.bandwidth_bps * self.memory_efficiency)

    @cached_property
    def chunked(self) -> bool:
        """Whether steps are fused decode + prefill-chunk passes under a token budget (chunked prefill)."""
        return math.isfinite(self.step_token_budget)

    # -- derived constants ---------------------------------------------------------------------------------
    @cached_property
    def flops_per_token(self) -> float:
        return 2.0 * (self.active_params if self.moe else self.params)

    @cached_property
    def c_prefill_s(self) -> float:
        """Seconds of replica time per prompt token (compute-bound)."""
        return self.flops_per_token / (self.peak_flops * self.prefill_efficiency)

    @cached_property
    def c_decode_s(self) -> float:
        """Seconds per decode token when decode is compute-bound at large batch."""
        return self.flops_per_token / (self.peak_flops * self.decode_efficiency)

    @cached_property
    def weights_time_s(self) -> float:
        """Seconds to stream all weights once from HBM."""
        return self.weight_bytes / (self.bandwidth_bps * self.memory_efficiency)

    @cached_property
    def kv_time_per_token_s(self) -> float:
        return self.kv_bytes_per_token / (self.bandwidth_bps * self.memory_efficiency)

    @cached_property
    def kv_capacity_tokens(self) -> float:
        """Tokens of KV cache that fit beside the weights (``memory_utilisation`` of HBM usable)."""
        free = max(self.memory_bytes * self.memory_utilisation - self.weight_bytes, 0.0) / self.kv_bytes_per_token
        return free * (1.0 - self.kv_reserved_share) if self.kv_reserved_share > 0 else free

    def prefill_tokens_per_s(self) -> float:
        return 1.0 / self.c_prefill_s

    # -- one step ------------------------------------------------------------------------------------------
    def step_parts_s(self, n_decode: float, ctx_tokens: float, prefill_tokens: float) -> tuple[float, float, float]:
        """(memory time, decode compute time, prefill compute time) of one step."""
        w = self.weights_read_s(n_decode + prefill_tokens)
        mem = w + self.kv_time_per_token_s * ctx_tokens if n_decode > 0 else 0.0
        cmp = self.c_decode_s * n_decode if n_decode > 0 else 0.0
        pre = self.c_prefill_s * prefill_tokens
        if n_decode <= 0 and prefill_tokens > 0:
            mem = w  # a prefill-only step still streams the weights once
        return mem, cmp, pre

    def step_time_s(self, n_decode: float, ctx_tokens: float, prefill_tokens: float) -> float:
        """Duration of one step with ``n_decode`` decoding requests holding ``ctx_tokens`` of context in
        total."""
        mem, cmp, pre = self.step_parts_s(n_decode, ctx_tokens, prefill_tokens)
        if self.chunked:  # one fused pass: the weights are streamed once for decodes and prefill chunks
            return self.step_overhead_s + max(mem, cmp + pre)
        if n_decode <= 0 and prefill_tokens > 0:
            return self.step_overhead_s + max(mem, pre)
        return self.step_overhead_s + max(mem, cmp) + pre

    def step_gpu_power_w(
        self, model: GpuPowerModel, n_decode: float, ctx_tokens: float, prefill_tokens: float
    ) -> float:
        """Mean power of each of the replica's GPUs over one step (see the module docstring)."""
        mem, cmp, pre = self.step_parts_s(n_decode, ctx_tokens, prefill_tokens)
        return self.phase_power_w(model, mem, cmp, pre, self.step_time_s(n_decode, ctx_tokens, prefill_tokens))

    def phase_power_w(self, model: GpuPowerModel, mem: float, cmp: float, pre: float, t: float) -> float:
        """Mean power per GPU over a step of ``t`` seconds with the given memory, decode-compute and prefill
        times (watts)."""
        if t <= 0.0:
            return model.idle_w
        if self.chunked:  # fused pass: the larger of the compute and the HBM power over its busy time
            busy = max(mem, cmp + pre)
            if busy <= 0:
                return model.idle_w
            busy_w = max(model.power_w((cmp + pre) / busy), memory_power_w(model, mem / busy))
            return (busy * busy_w + max(t - busy, 0.0) * model.idle_w) / t
        if mem > 0 and pre > 0 and cmp == 0:  # prefill-only step: compute-bound throughout
            return model.power_w(1.0)
        decode = max(mem, cmp)
        decode_w = model.idle_w
        if decode > 0:
            decode_w = max(model.power_w(cmp / decode), memory_power_w(model, mem / decode))
        busy = decode + pre
        idle = max(t - busy, 0.0)
        return (decode * decode_w + pre * model.power_w(1.0) + idle * model.idle_w) / t


def memory_power_w(model: GpuPowerModel, bandwidth_fraction: float) -> float:
    """Power of HBM-bound work; models without a memory curve fall back to their compute curve."""
    fn = getattr(model, "memory_power_w", None)
    if fn is not None:
        return float(fn(bandwidth_fraction))
    return model.power_w(bandwidth_fraction)


@dataclass(frozen=True)
class OperatingPoint:
    """Steady state of a replica at ``rate_per_s`` requests/s (mean field)."""

    rate_per_s: float
    step_s: float  # mean step time = time per output token (TPOT)
    batch: float  # mean decoding requests
    ttft_s: float  # mean time to first token, no queueing
    e2e_s: float  # mean end-to-end latency, no queueing
    e2e_q_s: float  # end-to-end latency of a request at the SLO quantile of output length, no queueing
    ttft_q_s: float
    kv_tokens: float  # KV cache held
    gpu_power_w: float  # per GPU
    feasible: bool  # a finite fixed point exists

    def with_power(self, gpu_power_w: float, step_s: float | None = None) -> OperatingPoint:
        """This point with another power (and step), built directly (``dataclasses.replace`` is slow in the
        fluid's per-segment path)."""
        return OperatingPoint(
            self.rate_per_s,
            self.step_s if step_s is None else step_s,
            self.batch,
            self.ttft_s,
            self.e2e_s,
            self.e2e_q_s,
            self.ttft_q_s,
            self.kv_tokens,
            gpu_power_w,
            self.feasible,
        )

    @property
    def output_tokens_per_s(self) -> float:
        return self.batch / self.step_s if self.step_s > 0 and math.isfinite(self.step_s) else 0.0


def operating_point(perf: ReplicaPerf, mix: TokenMix, rate_per_s: float, model: GpuPowerModel) -> OperatingPoint:
    """Mean-field steady state of one replica serving ``rate_per_s`` requests/s of ``mix``."""
    lam = max(rate_per_s, 0.0)
    h = perf.step_overhead_s
    a_ctx = mix.context_token_steps
    slope_mem = lam * (perf.kv_time_per_token_s * a_ctx + perf.c_prefill_s * mix.prompt_mean)
    slope_cmp = lam * (perf.c_decode_s * mix.output_mean + perf.c_prefill_s * mix.prompt_mean)
    if slope_mem >= 1.0 or slope_cmp >= 1.0:
        return OperatingPoint(lam, INF, INF, INF, INF, INF, INF, INF, model.power_w(1.0), False)
    t_mem = (h + perf.weights_time_s) / (1.0 - slope_mem)
    t_cmp = h / (1.0 - slope_cmp)
    t = max(t_mem, t_cmp)
    n = lam * mix.output_mean * t
    ctx = lam * t * a_ctx
    ttft = 1.5 * t + perf.c_prefill_s * mix.prompt_mean
    ttft_q = 1.5 * t + perf.c_prefill_s * mix.prompt_q
    e2e = ttft + max(mix.output_mean - 1.0, 0.0) * t
    e2e_q = ttft + max(mix.output_q - 1.0, 0.0) * t
    if lam <= 0.0:
        power = model.idle_w
    else:
        mem, cmp, _ = perf.step_parts_s(max(n, 1e-12), ctx, 0.0)
        pre = perf.c_prefill_s * lam * t * mix.prompt_mean
        busy = busy_fraction(n)
        power = busy * perf.phase_power_w(model, mem, cmp, pre, t) + (1.0 - busy) * model.idle_w
    return OperatingPoint(lam, t, n, ttft, e2e, e2e_q, ttft_q, ctx, power, True)


def busy_fraction(batch: float) -> float:
    """Probability that a replica holds at least one request when its mean batch is ``batch`` (Poisson)."""
    return 1.0 - math.exp(-batch) if batch < 50 else 1.0


def meets(op: OperatingPoint, perf: ReplicaPerf, slo: SloLimits) -> bool:
    """Whether the operating point meets every objective and its KV cache fits."""
    return (
        op.feasible
        and op.step_s <= slo.tpot_s
        and op.ttft_q_s <= slo.ttft_s
        and op.e2e_q_s <= slo.e2e_s
        and op.kv_tokens <= perf.kv_capacity_tokens
    )


def capacity(
    perf: ReplicaPerf,
    mix: TokenMix,
    slo: SloLimits,
    model: GpuPowerModel,
    point: Callable[[ReplicaPerf, TokenMix, float, GpuPowerModel], OperatingPoint] | None = None,
) -> OperatingPoint:
    """The busiest operating point that still meets ``slo`` and fits the KV cache (bisection on the rate).
    ``point`` gives the operating point at a rate (default :func:`operating_point`: prefill-first steps).

    Its ``rate_per_s`` is the replica's capacity; its ``batch`` the largest batch the objectives allow.
    Raises :class:`InfeasibleObjective` if no rate does (tighter than an unloaded replica achieves).
    """
    point = point or operating_point
    zero = point(perf, mix, 1e-12, model)
    if not meets(zero, perf, slo):
        raise InfeasibleObjective(*_why_infeasible(zero, perf, slo))
    lam_sat = 1.0 / max(
        perf.kv_time_per_token_s * mix.context_token_steps + perf.c_prefill_s * mix.prompt_mean,
        perf.c_decode_s * mix.output_mean + perf.c_prefill_s * mix.prompt_mean,
    )
    lo, hi = 0.0, lam_sat
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if meets(point(perf, mix, mid, model), perf, slo):
            lo = mid
        else:
            hi = mid
    return point(perf, mix, lo, model)


def _why_infeasible(op: OperatingPoint, perf: ReplicaPerf, slo: SloLimits) -> tuple[str, str]:
    if op.kv_tokens > perf.kv_capacity_tokens or perf.kv_capacity_tokens <= 0:
        return "model", "the KV cache of one request does not fit beside the weights"
    if op.step_s > slo.tpot_s:
        return "tpot", (
            f"no batch size meets tpot {slo.tpot_s * 1e3:g} ms: an unloaded step takes "
            f"{op.step_s * 1e3:.1f} ms (streaming the weights alone takes "
            f"{perf.weights_time_s * 1e3:.1f} ms)"
        )
    if op.ttft_q_s > slo.ttft_s:
        return "ttft", (
            f"no batch size meets ttft {slo.ttft_s:g} s: an unloaded replica needs {op.ttft_q_s:.3f} s "
            f"to the first token of a prompt at the quantile length"
        )
    return "e2e", (
        f"no batch size meets e2e {slo.e2e_s:g} s: an unloaded replica needs {op.e2e_q_s:.2f} s for a "
        f"request at the quantile output length"
    )
