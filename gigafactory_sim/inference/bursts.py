"""Fluid latency and power under bursts and long prompts (a service's ``fluid: {step_queue: true}``, the default).

Corrections to the mean-field latency of :mod:`.fluid`, each from its own mechanism:

1. **Step queue** (prefill-first steps). A step prefills every prompt that arrived during the step before it,
   so a replica's step lengths follow ``t' = B0 + c_p * S`` (``B0 = h + max(mem, cmp)``, ``S`` the prompt
   tokens that arrived during ``t``; compound Poisson at ``lam`` per replica). Stationary moments:
   ``m1 = E[t] = B0 / (1 - rho)`` with ``rho = lam * c_p * E[I]``, squared CV
   ``cv2 = c_p^2 * lam * m1 * E[I^2] / ((1 - rho^2) * m1^2)``. ``c`` replicas pull from one queue: a request
   waits for the next step boundary of any of them, ``R = (m1 / c) * (1 + cv2_c) / 2`` with
   ``cv2_c = 1 + (cv2 - 1) / c`` (a superposition of renewal processes tends to Poisson), and its first token
   ends the step that prefills it with the ``2 * c * lam * R`` prompts admitted beside it:
   ``TTFT(I) = R + B0 + c_p * (I + 2 c lam R E[I])``. One replica, unloaded: the mean field's ``1.5 t + c_p I``.
2. **Groups at one instant** (tied arrival times, :func:`size_biased_group`). A group is admitted and prefilled
   in one step: a request waits for its ``g - 1`` mates' prefill (``g = E[G^2] / E[G]``), a step's prompt tokens
   are compound Poisson over groups, and it decodes beside its mates, stalled only by other groups' prefill
   (:func:`group_decode_step_s`); power from prefill work and groups decoding as an M/G/inf population
   (:func:`group_power_w`).
3. **Sub-segment bursts** (trace demand). The control segment's FIFO fluid queue is also run on a fine grid of
   the trace's own counts (``resolution``, default 0.1 s, arrivals uniform within a cell; a reflected random
   walk, vectorised); its backlog beyond the compound Poisson one that item 1 already holds
   (:func:`poisson_backlog_wait_s`) is the segment's waiting, spread over the cells' own waits
   (:func:`cell_waits_s`, :func:`wait_levels`) in the latency histograms.
4. **Prefill stalls in the tail**: a Poisson number of other groups' prefill steps interrupts a request's
   decode (:func:`prefill_stall_spread`), which spreads the end-to-end percentiles; beyond the time share,
   the groups queued during its own prefill step stall it right after its first token
   (:func:`first_token_stalls`).

Units: seconds, requests, tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from statistics import NormalDist

import numpy as np

from gigafactory_sim.inference.perf import INF, OperatingPoint, ReplicaPerf, TokenMix
from gigafactory_sim.inference.queueing import erlang_c
from gigafactory_sim.numerics import libm
from gigafactory_sim.power.models import GpuPowerModel

__all__ = [
    "backlog_integral",
    "burst_weighted_point",
    "cell_waits_s",
    "fifo_walk",
    "first_token_stalls",
    "group_decode_step_s",
    "group_power_w",
    "max_mean",
    "min_mean",
    "poisson_backlog_wait_s",
    "poisson_levels",
    "poisson_pmf",
    "prefill_first_power_step",
    "prefill_stall_spread",
    "served_per_cell",
    "size_biased_group",
    "step_lengths",
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
    b0, _, _, residual = step_lengths(perf, mix, op, replicas, group)
    c = max(replicas, 1)
    others = c * lam * 2.0 * residual  # prompts admitted with it: arrived since the last boundary, or before the next
    mates = group - 1.0  # prefilled in the same step: the rest of its own group
    return residual + b0 + perf.c_prefill_s * (np.asarray(prompt, dtype=float) + (others + mates) * mix.prompt_mean)


def step_lengths(
    perf: ReplicaPerf, mix: TokenMix, op: OperatingPoint, replicas: int = 1, group: float = 1.0
) -> tuple[float, float, float, float]:
    """(``B0``, mean step ``m1``, squared CV ``cv2`` of a replica's step lengths, residual ``R`` to the next
    boundary of any of ``replicas``) of prefill-first steps at ``op`` (see :func:`step_queue_ttft_s`)."""
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
    return b0, m1, cv2, residual


def size_biased_group(times_s: np.ndarray) -> float:
    """``E[G^2] / E[G]`` of the groups of requests that arrive at exactly the same instant in ``times_s``: the
    mean size of the group a request belongs to (1.0 when no two arrival times tie)."""
    t = np.asarray(times_s, dtype=float)
    if len(t) == 0:
        return 1.0
    _, counts = np.unique(t, return_counts=True)
    c = counts.astype(float)
    return float((c * c).sum() / c.sum())


Walk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(arrivals, net change, backlog before, backlog after) per cell: :func:`fifo_walk`."""


def fifo_walk(counts: np.ndarray, dt_s: float, rate_per_s: float, q0: float) -> Walk:
    """(arrivals, net change, backlog before, backlog after) of each cell of the FIFO fluid queue of
    :func:`backlog_integral` (``rate_per_s > 0``), shared by it, :func:`served_per_cell` and
    :func:`cell_waits_s`."""
    a = np.asarray(counts, dtype=float)
    net = a - rate_per_s * dt_s
    walk = np.cumsum(net)  # S_k after each cell
    low = np.minimum.accumulate(np.minimum(walk, 0.0))
    after = walk + np.maximum(q0, -low)  # backlog at the end of each cell
    before = np.concatenate(([q0], after[:-1]))
    return a, net, before, after


def backlog_integral(
    counts: np.ndarray,
    dt_s: float,
    rate_per_s: float,
    q0: float,
    walk: Walk | None = None,
) -> float:
    """Integral of the FIFO fluid backlog (request-seconds) over a grid of ``counts`` arriving uniformly in
    cells of ``dt_s``, served at ``rate_per_s``, from a backlog of ``q0`` (a reflected random walk). ``walk``:
    :func:`fifo_walk` of these arguments, if already known."""
    if len(counts) == 0 or rate_per_s <= 0:
        return 0.0
    a, net, before, after = walk if walk is not None else fifo_walk(counts, dt_s, rate_per_s, q0)
    stays = before + net >= 0.0
    fall = np.maximum(rate_per_s - a / dt_s, 1e-300)  # backlog falls at this rate when it empties
    with np.errstate(over="ignore"):  # (the branch np.where discards may overflow at absurd rates)
        area = np.where(stays, 0.5 * (before + after) * dt_s, before * before / (2.0 * fall))
    return float(area.sum())


def served_per_cell(
    counts: np.ndarray,
    dt_s: float,
    rate_per_s: float,
    q0: float,
    walk: Walk | None = None,
) -> np.ndarray:
    """Requests served in each cell by the FIFO fluid queue of :func:`backlog_integral`."""
    if len(counts) == 0 or rate_per_s <= 0:
        return np.zeros_like(np.asarray(counts, dtype=float))
    a, _, before, after = walk if walk is not None else fifo_walk(counts, dt_s, rate_per_s, q0)
    return np.asarray(before + a - after, dtype=float)


def burst_weighted_point(
    point: Callable[[float], OperatingPoint],
    served_rates: np.ndarray,
    bins: int = 16,
    durations_s: np.ndarray | None = None,
    points_at: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray] | None] | None = None,
    levels_out: list[tuple[float, float]] | None = None,
) -> OperatingPoint:
    """The operating point ``point(rate)`` averaged over windows served at ``served_rates`` (per replica) and
    lasting ``durations_s`` (equal if not given): power by time, step time by requests served (what a decoding
    request sees). The rates are grouped into ``bins`` levels; the rest of the point is that of the mean
    rate. ``points_at(rates)``: (power, step, feasible) of ``point`` at several rates at once, or None where it
    cannot (then ``point`` is called at each). ``levels_out``: if given, (requests served, step) of each feasible
    level are appended to it (the step averaged is their served-weighted mean)."""
    rates = np.asarray(served_rates, dtype=float)
    dur = np.ones_like(rates) if durations_s is None else np.asarray(durations_s, dtype=float)
    total = float(dur.sum())
    mean_point = point(float((rates * dur).sum() / total) if len(rates) and total > 0 else 0.0)
    if len(rates) == 0 or float(rates.max()) <= 0.0:
        return mean_point
    lo, hi = float(rates.min()), float(rates.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)  # np.histogram_bin_edges(rates, bins), without its checks
    level = np.clip(np.searchsorted(edges, rates, side="right") - 1, 0, bins - 1)
    # each level's windows as one contiguous run, in their own order (the sums are those of the masked windows)
    order = np.argsort(level, kind="stable")
    bounds = np.cumsum(np.bincount(level, minlength=bins)).tolist()
    dur_sorted, work_sorted = dur[order], (rates * dur)[order]
    durs: list[float] = []
    served: list[float] = []
    at: list[float] = []
    start = 0
    for i, end in enumerate(bounds):
        if end == start:
            continue
        d_sum, served_np = dur_sorted[start:end].sum(), work_sorted[start:end].sum()
        start = end
        at.append(float(served_np / d_sum) if d_sum > 0 else 0.5 * (edges[i] + edges[i + 1]))
        durs.append(float(d_sum))
        served.append(float(served_np))
    terms = points_at(np.asarray(at)) if points_at is not None else None
    if terms is not None:
        powers, steps, feasible = terms[0].tolist(), terms[1].tolist(), terms[2].tolist()
    else:
        ops = [point(r) for r in at]
        powers, steps, feasible = [o.gpu_power_w for o in ops], [o.step_s for o in ops], [o.feasible for o in ops]
    power = step = weight = 0.0
    for d, s, p, t, ok in zip(durs, served, powers, steps, feasible, strict=True):
        power += d * p
        if ok and s > 0:
            step += s * t
            weight += s
            if levels_out is not None:
                levels_out.append((s, t))
    power /= total
    return mean_point.with_power(power, step / weight if weight > 0 else mean_point.step_s)


def prefill_first_power_step(
    perf: ReplicaPerf, mix: TokenMix, model: GpuPowerModel, rates_per_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(power per GPU, step, feasible) of the points ``FluidService.point`` gives a prefill-first replica of
    single arrivals (``group`` 1: :func:`~gigafactory_sim.inference.perf.operating_point`'s step, the power of
    :func:`group_power_w`) at each of ``rates_per_s``, all at once for :func:`burst_weighted_point`: the same
    operations in the same order, element by element (the exponentials one by one, as the scalar path takes
    them). None where it does not apply (chunked prefill, mixture of experts, a power model other than
    :class:`~gigafactory_sim.power.models.DvfsPowerModel`); the caller then evaluates the points one by one."""
    from gigafactory_sim.power.models import DvfsPowerModel

    if perf.chunked or perf.moe or type(model) is not DvfsPowerModel:
        return None
    lam = np.maximum(np.asarray(rates_per_s, dtype=float), 0.0)
    h, w_s, kv, c_p, c_d = (
        perf.step_overhead_s,
        perf.weights_time_s,
        perf.kv_time_per_token_s,
        perf.c_prefill_s,
        perf.c_decode_s,
    )
    i_mean, o_mean = mix.prompt_mean, mix.output_mean
    idle, slope, mslope, limit = model.idle_w, model.slope_w, model.memory_slope_w, model.limit_w
    top = max(limit, idle)
    full = min(idle + slope * 1.0, top)  # power_w(1.0)
    slope_mem = lam * (kv * mix.context_token_steps + c_p * i_mean)
    slope_cmp = lam * (c_d * o_mean + c_p * i_mean)
    feasible = (slope_mem < 1.0) & (slope_cmp < 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        step = np.maximum((h + w_s) / (1.0 - slope_mem), h / (1.0 - slope_cmp))
        rho = np.minimum(lam * c_p * i_mean, 1.0 - 1e-9)
        t_d = step * (1.0 - rho)
        n_g = lam / 1.0 * t_d * o_mean / (1.0 - rho)
        share = -libm.expm1(-n_g)
        batch = lam * o_mean * t_d / (1.0 - rho) / share
        n_dec = np.maximum(batch, 1e-12)
        mem = w_s + kv * (batch * (i_mean + 0.5 * o_mean))
        cmp = c_d * n_dec
        decode = np.maximum(mem, cmp)
        t = h + decode
        decode_w = np.maximum(
            np.minimum(idle + slope * np.clip(cmp / decode, 0.0, 1.0), top),
            np.minimum(idle + mslope * np.clip(mem / decode, 0.0, 1.0), limit),
        )
        phase = (decode * decode_w + 0.0 * full + np.maximum(t - (decode + 0.0), 0.0) * idle) / t
        busy = rho * full + (1.0 - rho) * (share * phase + (1.0 - share) * idle)
        power = np.where(share > 0, busy, rho * full + (1.0 - rho) * idle)
    power = np.where(lam > 0, power, idle)  # no requests: idle, the mean field's step
    power = np.where(feasible, power, full)  # overload: compute-bound power, no fixed point
    step = np.where(feasible, step, INF)
    return power, step, feasible


def cell_waits_s(
    counts: np.ndarray,
    dt_s: float,
    rate_per_s: float,
    q0: float,
    walk: Walk | None = None,
) -> np.ndarray:
    """Mean wait of each cell's arrivals in the FIFO fluid queue of :func:`backlog_integral`: the backlog
    ahead of them (half the cell's own arrivals included) over the service rate."""
    if len(counts) == 0 or rate_per_s <= 0:
        return np.zeros_like(np.asarray(counts, dtype=float))
    _, _, before, after = walk if walk is not None else fifo_walk(counts, dt_s, rate_per_s, q0)
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
    w_pos = w[pos]
    order = np.argsort(w_pos, kind="stable")  # (ties in index order: the default sort orders them by the CPU)
    wp, cp = w_pos[order], c[pos][order]
    cum = np.cumsum(cp)
    edges = np.linspace(0.0, cum[-1], levels + 1)
    bounds = [0, *np.searchsorted(cum, edges[1:-1], side="left").tolist(), len(cp)]
    work = wp * cp
    for a, b in pairwise(bounds):
        part = cp[a:b].sum()
        if part > 0:
            out.append((float(part) / total, float(work[a:b].sum() / part)))
    return out


def group_decode_step_s(
    perf: ReplicaPerf, mix: TokenMix, op: OperatingPoint, group: float, output: np.ndarray
) -> float:
    """Mean step a decoding request sees when requests arrive in groups (``group``: size-biased size), at
    ``op``'s rate. Its group's prefill came before its first token, so it is not a stall of its decode; it
    decodes beside the background (``lam E[O] t`` requests holding ``lam t A`` tokens, Little's law over the
    step ``t`` they see, as in :mod:`.perf`) and the ``m = (group - 1) E[min(O, O')] / E[O]`` mates still
    decoding on average (holding ``E[I] + E[O] / 2`` tokens each), and is stalled by the prefill of other
    groups (time share ``rho = lam c_p E[I]``). The fixed point is the larger of
    ``(h + W + k m (E[I] + E[O]/2)) / (1 - rho - lam k A)`` and ``(h + c_d m) / (1 - rho - lam c_d E[O])``;
    with ``group == 1`` it is the mean-field step of :func:`~gigafactory_sim.inference.perf.operating_point`.
    ``op``'s step if there is no fixed point (overload)."""
    o = np.sort(np.asarray(output, dtype=float))
    if len(o) == 0 or mix.output_mean <= 0:
        return op.step_s
    lam = op.rate_per_s
    mates = max(group - 1.0, 0.0) * min_mean(o) / mix.output_mean
    rho = lam * perf.c_prefill_s * mix.prompt_mean
    den_mem = 1.0 - rho - lam * perf.kv_time_per_token_s * mix.context_token_steps
    den_cmp = 1.0 - rho - lam * perf.c_decode_s * mix.output_mean
    if den_mem <= 0 or den_cmp <= 0:
        return op.step_s
    mates_ctx = mates * (mix.prompt_mean + 0.5 * mix.output_mean)
    h = perf.step_overhead_s
    t_mem = (h + perf.weights_read_s(op.batch + mates) + perf.kv_time_per_token_s * mates_ctx) / den_mem
    t_cmp = (h + perf.c_decode_s * mates) / den_cmp
    return max(t_mem, t_cmp)


def min_mean(sorted_values: np.ndarray) -> float:
    """``E[min(X, X')]`` of two independent draws from the empirical distribution ``sorted_values``."""
    n = len(sorted_values)
    # min of two draws is x_(i) when both are >= x_(i) and not both > x_(i): weight ((n-i)^2 - (n-i-1)^2) / n^2
    i = np.arange(n)
    w = ((n - i) ** 2 - (n - i - 1) ** 2) / (n * n)
    return float((sorted_values * w).sum())


STALL_LEVELS = 9
_N_K = 61  # Poisson counts tabulated exactly (means up to 20)
_Z = np.array([NormalDist().inv_cdf((i + 0.5) / STALL_LEVELS) for i in range(STALL_LEVELS)])


def poisson_pmf(mean: np.ndarray, n_k: int) -> np.ndarray:
    """``P(X = k)`` for ``X ~ Poisson(mean)``, ``k = 0 .. n_k - 1``, one row per mean (``mean`` a column,
    ``len x 1``): ``exp(-mean)`` times the running product of ``mean / k`` (one exponential a row, the rest
    arithmetic, so the same floats on any machine; for the means this module tabulates, up to 50, nothing
    overflows or loses the head of the distribution)."""
    m = np.asarray(mean, dtype=float)
    pmf = np.ones((m.shape[0], n_k))
    if n_k > 1:
        np.cumprod(m / np.arange(1.0, n_k)[None, :], axis=1, out=pmf[:, 1:])
    pmf *= libm.exp(-m)
    return pmf


def poisson_levels(mean: np.ndarray, levels: int = STALL_LEVELS) -> np.ndarray:
    """Quantiles of Poisson counts of means ``mean`` at the midpoints of ``levels`` equal-probability bins
    (``levels x len(mean)``): the count is exact from the cumulative distribution up to a mean of 20, normal
    beyond."""
    mu = np.maximum(np.asarray(mean, dtype=float), 0.0)
    if len(mu) > 1:  # runs of equal means (tied output quantiles) are computed once
        new = np.empty(len(mu), dtype=bool)
        new[0] = True
        np.not_equal(mu[1:], mu[:-1], out=new[1:])
        if not new.all():
            return poisson_levels(mu[new], levels)[:, np.cumsum(new) - 1]
    out = np.zeros((levels, len(mu)))
    probs = (np.arange(levels) + 0.5) / levels
    small = mu <= 20.0
    if small.any():
        m = mu[small][:, None]
        top = float(m.max())
        # counts up to the last quantile suffice (the cumulative sums below them do not depend on how far the
        # table goes); the whole table if that cut falls short
        for n_k in (min(int(top + 6.0 * np.sqrt(top) + 8.0), _N_K), _N_K):
            cdf = np.cumsum(poisson_pmf(m, n_k), axis=1)
            if n_k == _N_K or bool((cdf[:, -1] >= probs[-1]).all()):
                break
        # a row's cumulative sums never decrease: the counts below a level end where they first reach it
        reach = cdf[None, :, :] >= probs[:, None, None]
        out[:, small] = np.where(reach[:, :, -1], reach.argmax(axis=2), cdf.shape[1])
    if (~small).any():
        z = _Z if levels == STALL_LEVELS else np.array([NormalDist().inv_cdf(q) for q in probs])
        big = mu[~small]
        out[:, ~small] = np.maximum(big[None, :] + np.sqrt(big)[None, :] * z[:, None], 0.0)
    return out


def prefill_stall_spread(
    perf: ReplicaPerf,
    mix: TokenMix,
    op: OperatingPoint,
    step_s: float,
    before_s: float,
    output: np.ndarray,
    group: float = 1.0,
    first_stalls: float = 0.0,
) -> np.ndarray:
    """End-to-end latency without queueing of requests of ``output`` tokens (``STALL_LEVELS x len(output)``,
    equally likely), the mean ``before_s + step_s * output`` (plus ``first_stalls`` stalls for those that
    decode). A decoding request's steps are decode steps of ``step_s * (1 - rho)`` and, between them, the
    prefill steps of the prompts arriving meanwhile: stalls of one group's prefill ``s = c_p * group * E[I]``
    each, a Poisson number of them with mean ``step_s * rho * (O - 1) / s`` (``rho = lam c_p E[I]``, the share
    of time spent prefilling) and, for ``O > 1``, ``first_stalls`` more right after its first token
    (:func:`first_token_stalls`). Many small stalls (short prompts, single arrivals) are nearly their mean; a
    few long ones (groups of long prompts) spread the tail."""
    o = np.asarray(output, dtype=float)
    rho = min(op.rate_per_s * perf.c_prefill_s * mix.prompt_mean, 1.0 - 1e-9)
    stall = perf.c_prefill_s * max(group, 1.0) * mix.prompt_mean
    steps = np.maximum(o - 1.0, 0.0)
    if stall <= 0 or rho <= 0:
        return np.asarray((before_s + step_s * (steps + 1.0))[None, :], dtype=float)
    count = poisson_levels(step_s * rho * steps / stall + np.where(steps > 0, first_stalls, 0.0))
    return np.asarray(before_s + step_s + step_s * (1.0 - rho) * steps + count * stall, dtype=float)


def first_token_stalls(
    perf: ReplicaPerf,
    mix: TokenMix,
    op: OperatingPoint,
    prefill_step_s: float,
    replicas: int = 1,
    group: float = 1.0,
) -> float:
    """Mean number of groups whose prefill stalls a request right after its first token, beyond the time share
    of :func:`prefill_stall_spread` (its decode starts at the end of its own prefill step, not at a random
    time). The groups arriving during its own prefill step (``prefill_step_s`` long, at ``replicas * lam /
    group`` a second) are taken at once by a replica that is decoding; they wait only when every replica is
    prefilling (the replicas' prefill steps as an M/M/c queue of groups at offered load ``c rho``, ``rho = lam
    c_p E[I]``: Erlang C of the arrivals, ``C / rho`` of those during one replica's prefill), and then go to the
    replica whose step ends first, its own in ``1 / c`` of cases (the replicas alike):
    ``prefill_step_s * lam / group * C / rho``. One replica: every group arriving during its prefill step."""
    lam = op.rate_per_s
    rho = min(lam * perf.c_prefill_s * mix.prompt_mean, 1.0 - 1e-9)
    if lam <= 0 or prefill_step_s <= 0 or rho <= 0:
        return 0.0
    c = max(replicas, 1)
    return float(prefill_step_s * lam / max(group, 1.0) * erlang_c(c, c * rho) / rho)


def max_mean(sorted_values: np.ndarray, draws: float) -> float:
    """``E[max]`` of ``draws`` (rounded, at least 1) independent draws from the empirical distribution
    ``sorted_values``."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    g = max(round(draws), 1)
    cdf = np.arange(n + 1) / n
    w = np.diff(libm.power(cdf, g))
    return float((np.asarray(sorted_values, dtype=float) * w).sum())


def group_power_w(
    perf: ReplicaPerf,
    mix: TokenMix,
    model: GpuPowerModel,
    op: OperatingPoint,
    group: float,
    group_max_output: float,
    step_s: float,
) -> float:
    """Mean power per GPU of a replica whose requests arrive in groups (``group`` requests at one instant;
    ``group_max_output``: the mean of the longest output of a group; ``step_s``: the step a decoding request
    sees, :func:`group_decode_step_s`). Prefill is a share ``rho = lam c_p E[I]`` of the time at compute-bound
    power (the prompts' work, whatever the load). In the rest, the replica decodes while a group is decoding:
    a group decodes for ``group_max_output`` steps of ``t_d = step_s (1 - rho)`` and groups are in the replica
    as an M/G/inf population, so the decoding share of that time is ``1 - exp(-n_g)`` with
    ``n_g = lam / group * t_d * group_max_output / (1 - rho)``, at the decode power of the batch it then holds
    (``lam E[O] t_d / (1 - rho)`` over that time, divided by the share); idle otherwise. ``group`` 1 (single
    arrivals, ``group_max_output = E[O]``): the mean field's power with the prefill energy set by the prompts'
    work rather than scaled by the chance that a request is decoding."""
    lam = op.rate_per_s
    if lam <= 0 or not op.feasible:
        return op.gpu_power_w
    rho = min(lam * perf.c_prefill_s * mix.prompt_mean, 1.0 - 1e-9)
    g = max(group, 1.0)
    t_d = step_s * (1.0 - rho)
    n_g = lam / g * t_d * group_max_output / (1.0 - rho)
    share = -math.expm1(-n_g)  # (n_g >= 0)
    if share <= 0:
        return float(rho * model.power_w(1.0) + (1.0 - rho) * model.idle_w)
    batch = lam * mix.output_mean * t_d / (1.0 - rho) / share
    ctx = batch * (mix.prompt_mean + 0.5 * mix.output_mean)
    mem, cmp, _ = perf.step_parts_s(max(batch, 1e-12), ctx, 0.0)
    decode_w = perf.phase_power_w(model, mem, cmp, 0.0, perf.step_overhead_s + max(mem, cmp))
    return float(rho * model.power_w(1.0) + (1.0 - rho) * (share * decode_w + (1.0 - share) * model.idle_w))
