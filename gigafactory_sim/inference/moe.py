"""Mixture-of-experts replicas: weights in memory from the total parameters, compute and weight traffic per step
from the experts the step's tokens are routed to.

``model: {params_b: total, active_params_b: active, experts: E, experts_per_token: k}``. With ``S`` shared
parameters (attention, embeddings, dense layers) and ``e`` per routed expert, ``S + E e = total`` and
``S + k e = active``. A step of ``T`` tokens (decodes and prefill) streams the shared weights and, with tokens
routed uniformly, a share ``1 - (1 - k/E)^T`` of the experts (:meth:`~.perf.ReplicaPerf.weights_read_s`): the
active weights at batch 1, all of them at large batch. Compute is ``2 x active`` FLOP per token. Experts are
spread over the replica's GPUs (expert parallelism: each GPU holds ``1 / gpus`` of them, which the replica's
summed memory and bandwidth already express); the all-to-all between GPUs and load imbalance between experts
are not modelled. Units: parameters, bytes, seconds.
"""

from __future__ import annotations

from dataclasses import replace

from gigafactory_sim.inference.perf import OperatingPoint, ReplicaPerf, TokenMix, operating_point
from gigafactory_sim.power.models import GpuPowerModel

__all__ = ["moe_operating_point", "split_experts"]


def split_experts(params: float, active: float, experts: int, experts_per_token: int) -> tuple[float, float]:
    """(shared parameters, parameters of all routed experts) from the total and active counts."""
    if experts <= experts_per_token:
        return active, params - active
    per_expert = (params - active) / (experts - experts_per_token)
    return active - experts_per_token * per_expert, experts * per_expert


def moe_operating_point(perf: ReplicaPerf, mix: TokenMix, rate_per_s: float, model: GpuPowerModel) -> OperatingPoint:
    """Mean-field steady state of a mixture-of-experts replica (prefill-first steps): the dense operating point
    with the weights a mean step touches, iterated to its fixed point (the bytes grow with the step's tokens)."""
    tokens = 1.0
    op = operating_point(_dense(perf, tokens), mix, rate_per_s, model)
    for _ in range(60):
        if not op.feasible:
            return op
        nxt = op.batch + rate_per_s * op.step_s * mix.prompt_mean
        if abs(nxt - tokens) <= 1e-9 * max(tokens, 1.0):
            break
        tokens = nxt
        op = operating_point(_dense(perf, tokens), mix, rate_per_s, model)
    return op


def _dense(perf: ReplicaPerf, tokens: float) -> ReplicaPerf:
    """A dense replica that streams what ``perf`` streams for a step of ``tokens`` tokens, at its active FLOPs."""
    read = perf.weights_read_s(tokens) * perf.bandwidth_bps * perf.memory_efficiency
    return replace(perf, params=perf.active_params, weight_bytes=read, experts=0, expert_bytes=0.0)
