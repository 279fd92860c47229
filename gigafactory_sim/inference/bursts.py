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

__all__ = [
    "backlog_integral",
    "burst_weighted_point",
    "cell_waits_s",
    "group_decode_step_s",
    "poisson_backlog_wait_s",
    "served_per_cell",
    "size_biased_group",
    "step_queue_ttft_s",
    "wait_levels",
]


def step_queue_ttft_s(
    perf: ReplicaPerf,
    mix: TokenMix,
    op: OperatingPoint,
    prompt: np.ndarray,
    replicas: int = 1,
    group: float = 1.0,
) -> np.ndarray:
    """Time to first token (no queueing for a slot) of prompts of ``prompt`` tokens, prefill-first steps, with
    ``replicas`` replicas pulling from one queue (seconds). ``group``: size-biased size ``E[G^2] / E[G]`` of
    the groups requests arrive in at one instant (1: no ties); a group is prefilled in one step, so a request
    waits for the prefill of its ``group - 1`` mates, and a step's prompt tokens are compound Poisson over
    groups (``E[S^2]`` per arrival ``E[I^2] + (group - 1) E[I]^2``)."""
    lam = op.rate_per_s
    mem, cmp, _ = perf.step_parts_s(max(op.batch, 1e-12), op.kv_tokens, 0.0)
    b0 = perf.step_overhead_s + max(mem, cmp)
    c_p = perf.c_prefill_s
    rho = min(lam * c_p * mix.prompt_mean, 1.0 - 1e-9)
    m1 = b0 / (1.0 - rho)
    ei2 = mix.prompt_sq_mean if mix.prompt_sq_mean > 0 else mix.prompt_mean**2
    ei2 += (group - 1.0) * mix.prompt_mean**2  # compound over groups: E[Y^2] / E[G]
    cv2 = c_p * c_p * lam * m1 * ei2 / (1.0 - rho * rho) / (m1 * m1)
    c = max(replicas, 1)
    residual = m1 / c * (2.0 + (cv2 - 1.0) / c) / 2.0  # to the next boundary of any replica
    others = c * lam * 2.0 * residual  # prompts admitted with it: arrived since the last boundary, or before the next
    mates = group - 1.0  # prefilled in the same step: the rest of its own group
    return residual + b0 + c_p * (np.asarray(prompt, dtype=float) + (others + mates) * mix.prompt_mean)


def size_biased_group(times_s: np.ndarray) -> float:
    """``E[G^2] / E[G]`` of the groups of requests that arrive at exactly the same instant in ``times_s``: the
    mean size of the group a request belongs to (1.0 when no two arrival times tie)."""
    t = np.asarray(times_s, dtype=float)
    if len(t) == 0:
        return 1.0
    _, counts = np.unique(t, return_counts=True)
    c = counts.astype(float)
    return float((c * c).sum() / c.sum())


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
    point: Callable[[float], OperatingPoint],
    served_rates: np.ndarray,
    bins: int = 16,
    durations_s: np.ndarray | None = None,
) -> OperatingPoint:
    """The operating point ``point(rate)`` averaged over windows served at ``served_rates`` (per replica) and
    lasting ``durations_s`` (equal if not given): power by time, step time by requests served (what a decoding
    request sees). The rates are grouped into ``bins`` levels; the rest of the point is that of the mean
    rate."""
    rates = np.asarray(served_rates, dtype=float)
    dur = np.ones_like(rates) if durations_s is None else np.asarray(durations_s, dtype=float)
    total = float(dur.sum())
    mean_point = point(float((rates * dur).sum() / total) if len(rates) and total > 0 else 0.0)
    if len(rates) == 0 or float(rates.max()) <= 0.0:
        return mean_point
    hist, edges = np.histogram(rates, bins=bins)
    level = np.clip(np.searchsorted(edges, rates, side="right") - 1, 0, len(hist) - 1)
    power = step = weight = 0.0
    for i in range(len(hist)):
        inside = level == i
        if not inside.any():
            continue
        d, r = dur[inside], rates[inside]
        op = point(float((r * d).sum() / d.sum()) if d.sum() > 0 else 0.5 * (edges[i] + edges[i + 1]))
        power += float(d.sum()) * op.gpu_power_w
        served = float((r * d).sum())
        if op.feasible and served > 0:
            step += served * op.step_s
            weight += served
    power /= total
    return replace(mean_point, gpu_power_w=power, step_s=step / weight if weight > 0 else mean_point.step_s)


def cell_waits_s(counts: np.ndarray, dt_s: float, rate_per_s: float, q0: float) -> np.ndarray:
    """Mean wait of each cell's arrivals in the FIFO fluid queue of :func:`backlog_integral`: the backlog
    ahead of them (half the cell's own arrivals included) over the service rate."""
    a = np.asarray(counts, dtype=float)
    if len(a) == 0 or rate_per_s <= 0:
        return np.zeros_like(a)
    walk = np.cumsum(a - rate_per_s * dt_s)
    low = np.minimum.accumulate(np.minimum(walk, 0.0))
    after = walk + np.maximum(q0, -low)
    before = np.concatenate(([q0], after[:-1]))
    return np.asarray(0.5 * (before + after) / rate_per_s, dtype=float)


def poisson_backlog_wait_s(rate_per_s: float, capacity_per_s: float, group: float = 1.0) -> float:
    """Mean wait the FIFO fluid queue of :func:`backlog_integral` gives a compound Poisson stream (groups of
    size-biased size ``group``) at ``rate_per_s`` served at ``capacity_per_s``, in heavy traffic (Kingman: a
    cell's arrivals have variance ``rate * group * dt``, the walk drifts down by ``(capacity - rate) dt``):
    ``group / (2 (capacity - rate))``. That waiting is already in :func:`step_queue_ttft_s` (its residual and
    the prompts beside a request); what a trace's queue holds beyond it is the burst. Zero when overloaded."""
    if rate_per_s <= 0 or rate_per_s >= capacity_per_s:
        return 0.0
    return group / (2.0 * (capacity_per_s - rate_per_s))


def wait_levels(wait_s: np.ndarray, counts: np.ndarray, levels: int = 8) -> list[tuple[float, float]]:
    """The distribution of the cells' waits ``wait_s`` weighted by their arrivals ``counts``, as ``levels``
    (share of requests, mean wait) pairs of equal share (the wait-free requests first, as one pair)."""
    w = np.asarray(wait_s, dtype=float)
    c = np.asarray(counts, dtype=float)
    total = float(c.sum())
    if total <= 0:
        return []
    out: list[tuple[float, float]] = []
    zero = float(c[w <= 0].sum())
    if zero > 0:
        out.append((zero / total, 0.0))
    pos = w > 0
    if not pos.any():
        return out
    order = np.argsort(w[pos])
    wp, cp = w[pos][order], c[pos][order]
    cum = np.cumsum(cp)
    edges = np.linspace(0.0, cum[-1], levels + 1)
    idx = np.searchsorted(cum, edges[1:-1], side="left")
    for part_w, part_c in zip(np.split(wp, idx), np.split(cp, idx), strict=True):
        if part_c.sum() > 0:
            out.append((float(part_c.sum()) / total, float((part_w * part_c).sum() / part_c.sum())))
    return out


def group_decode_step_s(
    perf: ReplicaPerf, mix: TokenMix, op: OperatingPoint, group: float, output: np.ndarray
) -> float:
    """Mean step a decoding request sees when requests arrive in groups (``group``: size-biased size). Its
    group's prefill came before its first token, so it is not a stall of its decode; it decodes beside the
    mean-field background (``op``'s batch and context) and those of its ``group - 1`` mates still decoding
    (a mate outlasts a step with the chance that its output is longer: ``E[min(O, O')] / E[O]`` on average),
    and is stalled by the prefill of other groups (time share ``rho = lam c_p E[I]``):
    ``(h + max(mem, cmp)) / (1 - rho)``. With ``group == 1`` this is the mean-field step (memory-bound)."""
    o = np.sort(np.asarray(output, dtype=float))
    if len(o) == 0 or mix.output_mean <= 0:
        return op.step_s
    overlap = _min_mean(o) / mix.output_mean
    mates = max(group - 1.0, 0.0) * overlap
    ctx = op.kv_tokens + mates * (mix.prompt_mean + 0.5 * mix.output_mean)
    mem, cmp, _ = perf.step_parts_s(op.batch + mates, ctx, 0.0)
    rho = min(op.rate_per_s * perf.c_prefill_s * mix.prompt_mean, 1.0 - 1e-9)
    return (perf.step_overhead_s + max(mem, cmp)) / (1.0 - rho)


def _min_mean(sorted_values: np.ndarray) -> float:
    """``E[min(X, X')]`` of two independent draws from the empirical distribution ``sorted_values``."""
    n = len(sorted_values)
    # min of two draws is x_(i) when both are >= x_(i) and not both > x_(i): weight ((n-i)^2 - (n-i-1)^2) / n^2
    i = np.arange(n)
    w = ((n - i) ** 2 - (n - i - 1) ** 2) / (n * n)
    return float((sorted_values * w).sum())
