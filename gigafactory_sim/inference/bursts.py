"""Fluid latency under bursts and long prompts (opt-in: a service's ``fluid: {step_queue: true}``).

Two corrections to the mean-field latency of :mod:`.fluid`, each exact for its own mechanism:

1. **Step queue** (prefill-first steps). A step prefills every prompt that arrived during the step before it,
   so a replica's step lengths follow ``t' = B0 + c_p * S`` (``B0 = h + max(mem, cmp)``, ``S`` the prompt
   tokens that arrived during ``t``; compound Poisson at ``lam`` per replica). Stationary moments:
   ``m1 = E[t] = B0 / (1 - rho)`` with ``rho = lam * c_p * E[I]``, squared CV
   ``cv2 = c_p^2 * lam * m1 * E[I^2] / ((1 - rho^2) * m1^2)``. ``c`` replicas pull from one queue: a request
   waits for the next step boundary of any of them, ``R = (m1 / c) * (1 + cv2_c) / 2`` with
   ``cv2_c = 1 + (cv2 - 1) / c`` (a superposition of renewal processes tends to Poisson), and its first token
   ends the step that prefills it with the ``2 * c * lam * R`` prompts admitted beside it:
   ``TTFT(I) = R + B0 + c_p * (I + 2 c lam R E[I])``. One replica, unloaded: today's ``1.5 t + c_p I``.
2. **Sub-segment bursts** (trace demand). The control segment's FIFO fluid queue is also run on a fine grid of
   the trace's own counts (``resolution``, default 0.1 s, arrivals uniform within a cell; a reflected random
   walk, vectorised); when its backlog integral exceeds the segment-average one, it is the segment's waiting.
   Requests arriving at the same instant (groups) are thus queued about as the discrete model queues them.

Units: seconds, requests, tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from gigafactory_sim.inference.perf import OperatingPoint, ReplicaPerf, TokenMix

__all__ = ["backlog_integral", "burst_weighted_point", "served_per_cell", "step_queue_ttft_s"]


def step_queue_ttft_s(
    perf: ReplicaPerf, mix: TokenMix, op: OperatingPoint, prompt: np.ndarray, replicas: int = 1
) -> np.ndarray:
    """Time to first token (no queueing for a slot) of prompts of ``prompt`` tokens, prefill-first steps, with
    ``replicas`` replicas pulling from one queue (seconds)."""
    lam = op.rate_per_s
    mem, cmp, _ = perf.step_parts_s(max(op.batch, 1e-12), op.kv_tokens, 0.0)
    b0 = perf.step_overhead_s + max(mem, cmp)
    c_p = perf.c_prefill_s
    rho = min(lam * c_p * mix.prompt_mean, 1.0 - 1e-9)
    m1 = b0 / (1.0 - rho)
    ei2 = mix.prompt_sq_mean if mix.prompt_sq_mean > 0 else mix.prompt_mean**2
    cv2 = c_p * c_p * lam * m1 * ei2 / (1.0 - rho * rho) / (m1 * m1)
    c = max(replicas, 1)
    residual = m1 / c * (2.0 + (cv2 - 1.0) / c) / 2.0  # to the next boundary of any replica
    others = c * lam * 2.0 * residual  # prompts admitted with it: arrived since the last boundary, or before the next
    return residual + b0 + c_p * (np.asarray(prompt, dtype=float) + others * mix.prompt_mean)


def backlog_integral(counts: np.ndarray, dt_s: float, rate_per_s: float, q0: float) -> float:
    """Integral of the FIFO fluid backlog (request-seconds) over a grid of ``counts`` arriving uniformly in
    cells of ``dt_s``, served at ``rate_per_s``, from a backlog of ``q0`` (a reflected random walk)."""
    a = np.asarray(counts, dtype=float)
    if len(a) == 0 or rate_per_s <= 0:
        return 0.0
    net = a - rate_per_s * dt_s
    walk = np.cumsum(net)  # S_k after each cell
    low = np.minimum.accumulate(np.minimum(walk, 0.0))
    after = walk + np.maximum(q0, -low)  # backlog at the end of each cell
    before = np.concatenate(([q0], after[:-1]))
    stays = before + net >= 0.0
    fall = np.maximum(rate_per_s - a / dt_s, 1e-300)  # backlog falls at this rate when it empties
    area = np.where(stays, 0.5 * (before + after) * dt_s, before * before / (2.0 * fall))
    return float(area.sum())


def served_per_cell(counts: np.ndarray, dt_s: float, rate_per_s: float, q0: float) -> np.ndarray:
    """Requests served in each cell by the FIFO fluid queue of :func:`backlog_integral`."""
    a = np.asarray(counts, dtype=float)
    if len(a) == 0 or rate_per_s <= 0:
        return np.zeros_like(a)
    walk = np.cumsum(a - rate_per_s * dt_s)
    low = np.minimum.accumulate(np.minimum(walk, 0.0))
    after = walk + np.maximum(q0, -low)
    before = np.concatenate(([q0], after[:-1]))
    return np.asarray(before + a - after, dtype=float)


def burst_weighted_point(
    point: Callable[[float], OperatingPoint], served_rates: np.ndarray, bins: int = 16
) -> OperatingPoint:
    """The operating point ``point(rate)`` averaged over cells served at ``served_rates`` (per replica): power
    by time (every cell lasts as long), step time by requests served (what a decoding request sees). The
    rates are grouped into ``bins`` levels; the rest of the point is that of the mean rate."""
    mean_point = point(float(served_rates.mean()) if len(served_rates) else 0.0)
    if len(served_rates) == 0 or float(served_rates.max()) <= 0.0:
        return mean_point
    hist, edges = np.histogram(served_rates, bins=bins)
    power = step = weight = 0.0
    for i, cells in enumerate(hist):
        if cells == 0:
            continue
        inside = served_rates[(served_rates >= edges[i]) & (served_rates <= edges[i + 1])]
        op = point(float(inside.mean()) if len(inside) else 0.5 * (edges[i] + edges[i + 1]))
        power += cells * op.gpu_power_w
        if op.feasible and inside.sum() > 0:
            step += float(inside.sum()) * op.step_s
            weight += float(inside.sum())
    power /= len(served_rates)
    return replace(mean_point, gpu_power_w=power, step_s=step / weight if weight > 0 else mean_point.step_s)
