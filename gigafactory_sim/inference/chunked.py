"""Chunked prefill (vLLM's scheduler; Sarathi-Serve, Agrawal et al., OSDI 2024): mean-field steady state.

A step carries at most ``B = max_num_batched_tokens`` tokens: every decoding request one, then prefill chunks
of the oldest waiting prompts up to the budget. The step is one fused forward pass, so the weights are streamed
once for both and prefill hides under decode's memory time:

    t = overhead + max(W + k x context, c_d x n + c_p x prefill tokens)

At ``lam`` requests/s the prompts arriving during a step (``m = lam * t`` on average, Poisson) are prefilled
in the next, and hide under its memory time only up to the slack ``mem - cmp``. The mean step is the fixed point

    t = h + max(mem, cmp) + E[(c_p * S - max(mem - cmp, 0))^+],   S = prompt tokens of the step's prompts

with ``mem = W + k * lam * t * A``, ``cmp = c_d * lam * t * E[O]`` (``A`` as in :mod:`.perf`) and ``S``
compound Poisson (:func:`excess_prefill_s`), found from below between "all prefill hidden" (the mean-field
``max(mem, cmp + c_p * E[S])``) and "none hidden" (prefill-first steps). The budget must carry the mean work of a
step: ``lam * t * (E[I] + E[O]) <= B``, else the operating point is infeasible (the prefill queue grows without
bound). Time to first token of a prompt of ``I`` tokens: the rest of the current step (``t / 2``), then
``s = max(1, ceil(J / (B - n)))`` steps for its chunks, ``J = I + lam t E[I] / 2`` (itself and the prompts
ahead of it): ``t/2 + s * (h + max(mem, cmp)) + (c_p J - s * slack)^+``. Prompts are not split when the budget
binds in the step-time term (hiding is then slightly underestimated).
Units: seconds, tokens, watts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gigafactory_sim.inference.moe import moe_operating_point
from gigafactory_sim.inference.perf import (
    INF,
    OperatingPoint,
    ReplicaPerf,
    TokenMix,
    busy_fraction,
    memory_power_w,
    operating_point,
)
from gigafactory_sim.power.models import GpuPowerModel

__all__ = [
    "PointFn",
    "batched_point_fn",
    "chunked_operating_point",
    "chunked_ttft_at",
    "chunked_ttft_s",
    "excess_prefill_s",
]

PointFn = Callable[[ReplicaPerf, TokenMix, float, GpuPowerModel], OperatingPoint]
"""``point(perf, mix, rate_per_s, power_model)``: a replica's mean-field operating point."""


def _normal_excess(mean: float, var: float, k: float) -> float:
    """E[(X - k)^+] for X ~ Normal(mean, var)."""
    if var <= 0:
        return max(mean - k, 0.0)
    sd = math.sqrt(var)
    d = (mean - k) / sd
    cdf = 0.5 * (1.0 + math.erf(d / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * d * d) / math.sqrt(2.0 * math.pi)
    return (mean - k) * cdf + sd * pdf


def excess_prefill_s(c_p: float, slack_s: float, prompts_per_step: float, mix: TokenMix) -> float:
    """E[(c_p x S - slack)^+]: mean time a step's prefill chunks add beyond the decode time they hide under.

    ``S`` is compound Poisson: ``prompts_per_step`` prompts on average, each of ``mix``'s prompt length (exact
    for one prompt from the quantile grid; normal for two or more; normal overall above 40 prompts per step).
    """
    m = prompts_per_step
    if m <= 0.0:
        return 0.0
    ei = mix.prompt_mean
    ei2 = mix.prompt_sq_mean if mix.prompt_sq_mean > 0 else ei * ei
    var_i = max(ei2 - ei * ei, 0.0)
    if m > 40.0:
        return c_p * _normal_excess(m * ei, m * ei2, slack_s / c_p)
    grid = np.asarray(mix.prompt_grid) if mix.prompt_grid else np.array([ei])
    p_k = math.exp(-m) * m  # P(N = 1)
    total = p_k * float(np.maximum(c_p * grid - slack_s, 0.0).mean())
    for k in range(2, int(m + 6.0 * math.sqrt(m) + 6.0)):
        p_k *= m / k
        total += p_k * c_p * _normal_excess(k * ei, k * var_i, slack_s / c_p)
    return total


@dataclass(frozen=True)
class _Step:
    """Mean parts of a chunked-prefill step at one operating point (seconds, tokens)."""

    t: float  # mean step
    mem: float  # weights + KV read
    cmp: float  # decode compute
    excess: float  # prefill time not hidden under the decode's memory time
    batch: float


def _step(perf: ReplicaPerf, mix: TokenMix, lam: float, t: float) -> _Step:
    n = lam * mix.output_mean * t
    w = perf.weights_read_s(n + lam * t * mix.prompt_mean)
    mem = w + perf.kv_time_per_token_s * lam * t * mix.context_token_steps
    cmp = perf.c_decode_s * n
    excess = excess_prefill_s(perf.c_prefill_s, max(mem - cmp, 0.0), lam * t, mix)
    return _Step(perf.step_overhead_s + max(mem, cmp) + excess, mem, cmp, excess, n)


def chunked_ttft_s(
    perf: ReplicaPerf,
    step: _Step,
    lam: float,
    mix: TokenMix,
    prompt: np.ndarray,
    ahead_tokens: float = 0.0,
    queue: tuple[float, float] | None = None,
) -> np.ndarray:
    """Time to first token (no queueing for a slot) of prompts of ``prompt`` tokens, seconds. ``ahead_tokens``:
    prompt tokens chunked on the replica before it beyond the step's own arrivals (same-instant group mates,
    :func:`~gigafactory_sim.inference.chunked_bursts.chunked_group_ttft_s`). ``queue``: (wait for the next step
    boundary, prompt tokens admitted beside it) in place of the mean field's ``t / 2`` and ``lam t E[I] / 2``
    (:func:`~gigafactory_sim.inference.chunked_bursts.chunked_step_queue`)."""
    t = step.t
    lane = max(perf.step_token_budget - step.batch, 1.0)  # prefill tokens per step
    residual, beside = (0.5 * t, lam * t * mix.prompt_mean / 2.0) if queue is None else queue
    work = np.asarray(prompt, dtype=float) + beside
    if ahead_tokens > 0:
        work = work + ahead_tokens
    steps = np.maximum(1.0, np.ceil(work / lane))
    slack = max(step.mem - step.cmp, 0.0)
    base = perf.step_overhead_s + max(step.mem, step.cmp)
    return residual + steps * base + np.maximum(perf.c_prefill_s * work - steps * slack, 0.0)


def chunked_operating_point(
    perf: ReplicaPerf, mix: TokenMix, rate_per_s: float, model: GpuPowerModel
) -> OperatingPoint:
    """Steady state of a chunked-prefill replica serving ``rate_per_s`` requests/s of ``mix``."""
    lam = max(rate_per_s, 0.0)
    h = perf.step_overhead_s
    a_ctx = mix.context_token_steps
    slope_mem = lam * perf.kv_time_per_token_s * a_ctx
    slope_cmp = lam * (perf.c_decode_s * mix.output_mean + perf.c_prefill_s * mix.prompt_mean)
    infeasible = OperatingPoint(lam, INF, INF, INF, INF, INF, INF, INF, model.power_w(1.0), False)
    slope_first = lam * (perf.kv_time_per_token_s * a_ctx + perf.c_prefill_s * mix.prompt_mean)
    if slope_mem >= 1.0 or slope_cmp >= 1.0:
        return infeasible
    lo = max((h + perf.weights_read_s(1.0)) / (1.0 - slope_mem), h / (1.0 - slope_cmp))  # prefill fully hidden
    hi = max((h + perf.weights_time_s) / (1.0 - slope_first), lo) if slope_first < 1.0 else INF  # none hidden
    t = lo
    for _ in range(60):  # increasing map from the lower bound: converges upwards
        nxt = min(_step(perf, mix, lam, t).t, hi)
        if abs(nxt - t) <= 1e-9 * t:
            t = nxt
            break
        t = nxt
    if not math.isfinite(t) or lam * t * (mix.prompt_mean + mix.output_mean) > perf.step_token_budget:
        return infeasible
    st = _step(perf, mix, lam, t)
    st = _Step(t, st.mem, st.cmp, st.excess, st.batch)
    ttft, ttft_q = chunked_ttft_s(perf, st, lam, mix, np.array([mix.prompt_mean, mix.prompt_q]))
    e2e = float(ttft) + max(mix.output_mean - 1.0, 0.0) * t
    e2e_q = float(ttft) + max(mix.output_q - 1.0, 0.0) * t
    if lam <= 0.0:
        power = model.idle_w
    else:
        decode = max(st.mem, st.cmp)
        hidden = max(perf.c_prefill_s * lam * t * mix.prompt_mean - st.excess, 0.0)
        decode_w = max(model.power_w(min((st.cmp + hidden) / decode, 1.0)), memory_power_w(model, st.mem / decode))
        busy_w = (decode * decode_w + st.excess * model.power_w(1.0) + h * model.idle_w) / t
        busy = busy_fraction(st.batch)
        power = busy * busy_w + (1.0 - busy) * model.idle_w
    return OperatingPoint(lam, t, st.batch, float(ttft), e2e, e2e_q, float(ttft_q), lam * t * a_ctx, power, True)


def chunked_ttft_at(
    perf: ReplicaPerf,
    mix: TokenMix,
    op: OperatingPoint,
    prompt: np.ndarray,
    ahead_tokens: float = 0.0,
    queue: tuple[float, float] | None = None,
) -> np.ndarray:
    """Time to first token (no queueing for a slot) of prompts of ``prompt`` tokens at operating point ``op``
    (``ahead_tokens``, ``queue``: as in :func:`chunked_ttft_s`)."""
    st = _step(perf, mix, op.rate_per_s, op.step_s)
    step = _Step(op.step_s, st.mem, st.cmp, st.excess, st.batch)
    return chunked_ttft_s(perf, step, op.rate_per_s, mix, prompt, ahead_tokens, queue)


def batched_point_fn(perf: ReplicaPerf) -> PointFn:
    """The continuous-batching operating point of ``perf``'s scheduler (chunked prefill or prefill-first)."""
    if perf.chunked:
        return chunked_operating_point
    return moe_operating_point if perf.moe else operating_point
