"""Fluid latency and power of chunked prefill under bursts (a service's ``fluid: {step_queue: true}``, the
default, with ``scheduling: {chunked_prefill: true}``): the counterpart of :mod:`.bursts` for :mod:`.chunked`
steps (``B`` the token budget, ``n`` the decodes, ``lane = B - n`` prompt tokens a step carries at most, a full
step ``t_full = h + max(mem, cmp + c_p lane)``). Each term from its own mechanism:

1. **Step queue** (:func:`chunked_step_queue`). A step carries the chunks of the prompts that arrived during
   the step before it, so step lengths spread as prefill-first ones do (compound Poisson, squared CV
   ``c_p^2 lam m1 E[I^2] / ((1 - rho^2) m1^2)`` about the chunked mean step ``m1``), but never beyond a full step
   (variance at most ``(m1 - t_d) (t_full - m1)``). With ``c`` replicas pulling from one queue a request waits
   ``R = (m1 / c) (1 + cv2_c) / 2`` for the next boundary of any of them, and its chunks share steps with the
   ``2 c lam R`` prompts admitted beside it: they replace the mean field's ``t / 2`` and ``lam t E[I] / 2``.
2. **Groups at one instant** (``g = E[G^2] / E[G]``, :func:`~.bursts.size_biased_group`). A group is not
   prefilled in one step: every replica with budget left takes the next prompt of the queue, so it is spread over
   ``s = min(c, g)`` replicas (:func:`group_spread`) and chunked through their budgets. A request waits for the
   ``(g - 1) / 2`` mates ahead of it, ``(g - 1) E[I] / (2 s)`` tokens on its replica before its own, and the step
   with its last chunk is filled by the mates behind it, so its steps are full (:func:`chunked_group_ttft_s`).
3. **Decode beside the chunks** (:func:`chunked_group_decode_s`). Its first token comes while the
   ``(g - 1) / (2 s)`` mates behind it on its replica are still chunked: it decodes through those full steps,
   beside its mates still decoding, and through the chunks of the other groups: a Poisson number of lumps of
   ``g / s`` prompts each, counted from its group's arrival on (a group arriving while its own is chunked is
   chunked after it, in its decode). Power (:func:`chunked_group_power_w`): the prompts' tokens in full steps,
   the groups decoding as an M/G/inf population, idle otherwise.
4. **Sub-segment bursts.** The FIFO walk of :mod:`.bursts` drains at the budgets' rate
   (:func:`chunk_drain_per_s`: a burst's queue fills every step's budget, whatever the SLO capacity), its backlog
   at a segment's end is carried into the next (``FluidService.carry_burst``), and the part of its wait that
   items 1 and 2 already hold is taken off: a group's own mates (:func:`own_group_walk_wait_s`) and the walk's
   own backlog of a Poisson stream of the same rate (:func:`poisson_walk_wait_s`, exact). What stays is the
   burst. A request decodes at the step of the window it is served in: the windows' steps spread the
   end-to-end histogram (``FluidService._window_e2e``).

With ``g == 1`` items 2 and 3 do not apply. Units: seconds, requests, tokens, watts.
"""

from __future__ import annotations

import math

import numpy as np

from gigafactory_sim.inference.bursts import max_mean, min_mean, poisson_levels, poisson_pmf
from gigafactory_sim.inference.chunked import chunked_ttft_at
from gigafactory_sim.inference.perf import OperatingPoint, ReplicaPerf, TokenMix
from gigafactory_sim.numerics import libm
from gigafactory_sim.power.models import GpuPowerModel

__all__ = [
    "chunk_drain_per_s",
    "chunked_group_decode_s",
    "chunked_group_power_w",
    "chunked_group_ttft_s",
    "chunked_step_queue",
    "group_spread",
    "own_group_walk_wait_s",
    "poisson_walk_wait_s",
]


def group_spread(replicas: int, group: float) -> float:
    """Replicas a group of ``group`` prompts is chunked on at once: each replica with budget left takes the
    next prompt of the shared queue, so ``min(replicas, group)`` (at least one)."""
    return max(min(float(max(replicas, 1)), group), 1.0)


def chunked_group_ttft_s(
    perf: ReplicaPerf,
    mix: TokenMix,
    op: OperatingPoint,
    prompt: np.ndarray,
    replicas: int = 1,
    group: float = 1.0,
) -> np.ndarray:
    """Time to first token (no queueing for a slot) of prompts of ``prompt`` tokens at ``op``, chunked prefill,
    requests arriving in groups of size-biased size ``group`` at one instant, ``replicas`` replicas pulling
    from one queue (seconds): the chunked TTFT of :func:`~.chunked.chunked_ttft_at` with the ``(group - 1) / 2``
    mates ahead of a request chunked before it, ``E[I] / s`` tokens each on its replica
    (:func:`group_spread`)."""
    spread = group_spread(replicas, group)
    mates_ahead = max(group - 1.0, 0.0) / 2.0
    ahead = mates_ahead * mix.prompt_mean / spread
    queue = chunked_step_queue(perf, mix, op, replicas)
    ttft = chunked_ttft_at(perf, mix, op, prompt, ahead, queue)
    # the step with its last chunk is filled by the chunks of the mates behind it (all but the group's last
    # prompt on each replica): its steps are all full
    behind = max(1.0 - spread / group, 0.0) if group > 1.0 else 0.0
    if behind <= 0.0:
        return ttft
    lane = max(perf.step_token_budget - op.batch, 1.0)
    work = np.asarray(prompt, dtype=float) + ahead + queue[1]
    steps = np.maximum(1.0, np.ceil(work / lane))
    t_full = perf.step_time_s(op.batch, op.kv_tokens, lane)
    full = queue[0] + steps * t_full
    return np.asarray(ttft + behind * np.maximum(full - ttft, 0.0), dtype=float)


def own_group_walk_wait_s(group: float, dt_s: float, rate_per_s: float) -> float:
    """Mean wait the sub-segment FIFO walk (:func:`~.bursts.backlog_integral`: arrivals uniform within a cell of
    ``dt_s``, served at ``rate_per_s``) gives the requests of one group of ``group`` arriving alone into an
    empty queue: the backlog rises to ``group - rate dt`` over the cell, then drains at ``rate``; the area
    ``(group - rate dt) (dt / 2 + (group - rate dt) / (2 rate))`` over ``group``. Zero when the cell serves
    the whole group (``group <= rate dt``)."""
    if group <= 0 or rate_per_s <= 0:
        return 0.0
    left = group - rate_per_s * dt_s  # backlog at the end of the group's cell
    if left <= 0:
        return 0.0
    return left * (0.5 * dt_s + left / (2.0 * rate_per_s)) / group


def chunked_group_decode_s(
    perf: ReplicaPerf,
    mix: TokenMix,
    op: OperatingPoint,
    output: np.ndarray,
    output_sorted: np.ndarray,
    replicas: int = 1,
    group: float = 1.0,
    ahead_s: float = 0.0,
) -> np.ndarray:
    """Decode time ``D(O)`` from the first token to the last of requests of ``output`` tokens at ``op``, chunked
    prefill, requests in same-instant groups of size-biased size ``group`` (module docstring, item 3;
    ``output_sorted``: the service's output lengths, sorted, for the mates still decoding; ``ahead_s``: the
    time from its group's arrival to its first token, during which other groups queue behind its mates),
    ``STALL_LEVELS x len(output)`` equally likely levels."""
    o = np.asarray(output, dtype=float)
    steps = np.maximum(o - 1.0, 0.0)
    spread = group_spread(replicas, group)
    here = max(group / spread - 1.0, 0.0)  # mates on the request's replica
    decoding = here * min_mean(output_sorted) / mix.output_mean if mix.output_mean > 0 else 0.0
    n = max(op.batch, 0.0) + decoding
    ctx = op.kv_tokens + decoding * (mix.prompt_mean + 0.5 * mix.output_mean)
    lane = max(perf.step_token_budget - n, 1.0)
    t_d = perf.step_time_s(n, ctx, 0.0)
    stall = max(perf.step_time_s(n, ctx, lane) - t_d, 0.0)  # a full step beside a decode step
    own = 0.5 * max(group - 1.0, 0.0) / spread * mix.prompt_mean / lane  # the mates behind it, on s replicas
    share = min(op.rate_per_s * mix.prompt_mean / lane * stall, 1.0 - 1e-9)  # time in other prompts' full steps
    alone = steps * t_d + np.minimum(own, steps) * stall  # its decode steps and its own group's chunks
    lump = (group / spread) * mix.prompt_mean / lane * stall  # one other group's chunks on its replica
    # other groups arrive as a Poisson stream; those arriving from its group's arrival on (``ahead_s``) are
    # chunked after its mates, in its decode: D = alone + share (ahead + D)
    exposed = (alone + ahead_s) / (1.0 - share)  # ahead + D
    if lump <= 0.0:
        return np.asarray((exposed - ahead_s)[None, :], dtype=float)
    count = poisson_levels(share * exposed / lump)  # the lumps it decodes through, mean share (ahead + D) / lump
    return np.asarray(alone[None, :] + count * lump, dtype=float)


def chunk_drain_per_s(perf: ReplicaPerf, mix: TokenMix, cap: OperatingPoint) -> float:
    """Requests per second a replica's budget takes from a backlogged queue (a burst): every step is full,
    ``B - n`` prompt tokens beside the ``n`` decodes of the capacity point ``cap`` in
    ``t_full = h + max(mem, cmp + c_p (B - n))``, so ``(B - n) / (t_full E[I])``. A burst's queue drains at this
    rate rather than at the SLO capacity (which bounds the mean rate, not a burst's). Zero without chunked
    prefill or prompts."""
    if not perf.chunked or mix.prompt_mean <= 0 or not cap.feasible:
        return 0.0
    n = max(cap.batch, 0.0)
    lane = max(perf.step_token_budget - n, 1.0)
    t_full = perf.step_time_s(n, cap.kv_tokens, lane)
    return lane / (t_full * mix.prompt_mean)


def chunked_group_power_w(
    perf: ReplicaPerf,
    mix: TokenMix,
    model: GpuPowerModel,
    op: OperatingPoint,
    output_sorted: np.ndarray,
    replicas: int = 1,
    group: float = 1.0,
) -> float:
    """Mean power per GPU of a chunked-prefill replica whose requests arrive in same-instant groups (size-biased
    size ``group``, spread over :func:`group_spread` replicas). The prompts' tokens are chunked in full steps,
    ``f = lam E[I] / (B - n)`` a second of ``t_full`` each at the fused pass's power. In the rest of the time
    the replica decodes while one of its groups' requests does: the ``g / s`` requests a group leaves on a
    replica decode until the longest of their outputs is done (:func:`~.bursts.max_mean`), at ``t_d`` per step
    slowed by the full steps, and groups are there as an M/G/inf population, so it decodes ``1 - exp(-n_g)``
    of that time (``n_g = lam s / g`` times that stay) at the decode power of the batch it then holds
    (``lam E[O] t_d`` over that share, Little's law); idle otherwise. ``op``'s power if it does not apply."""
    lam = op.rate_per_s
    if lam <= 0 or not op.feasible or mix.prompt_mean <= 0 or not perf.chunked:
        return op.gpu_power_w
    spread = group_spread(replicas, group)
    here = max(group / spread, 1.0)  # a group's requests on one replica
    n = max(op.batch, 1e-12)
    lane = max(perf.step_token_budget - n, 1.0)
    t_full = perf.step_time_s(n, op.kv_tokens, lane)
    mem_f, cmp_f, pre_f = perf.step_parts_s(n, op.kv_tokens, lane)
    full_w = perf.phase_power_w(model, mem_f, cmp_f, pre_f, t_full)
    full_share = min(lam * mix.prompt_mean / lane * t_full, 1.0)
    t_d = perf.step_time_s(n, op.kv_tokens, 0.0)
    slowed = t_d / max(1.0 - full_share, 1e-9)  # a decode step and its share of the full steps
    n_g = lam / here * max_mean(output_sorted, here) * slowed
    decoding = -math.expm1(-n_g)  # (n_g >= 0)
    if decoding <= 0:
        return float(full_share * full_w + (1.0 - full_share) * model.idle_w)
    batch = max(lam * mix.output_mean * slowed / decoding, 1e-12)
    ctx = batch * (mix.prompt_mean + 0.5 * mix.output_mean)
    mem, cmp, _ = perf.step_parts_s(batch, ctx, 0.0)
    decode_w = perf.phase_power_w(model, mem, cmp, 0.0, perf.step_overhead_s + max(mem, cmp))
    rest = decoding * decode_w + (1.0 - decoding) * model.idle_w
    return float(full_share * full_w + (1.0 - full_share) * rest)


_EXACT_MEAN = 50.0  # Poisson means up to this summed exactly in :func:`poisson_walk_wait_s`, normal beyond


def _poisson_excess(mean: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``E[(X - level)^+]`` for ``X ~ Poisson(mean)``, element by element: exact up to a mean of
    ``_EXACT_MEAN``, normal beyond."""
    m = np.asarray(mean, dtype=float)
    c = np.asarray(level, dtype=float)
    out = np.zeros_like(m)
    small = m <= _EXACT_MEAN
    if small.any():
        k = np.arange(0.0, _EXACT_MEAN + 10.0 * np.sqrt(_EXACT_MEAN) + 20.0)
        ms = m[small][:, None]
        pmf = poisson_pmf(ms, len(k))
        out[small] = (np.maximum(k[None, :] - c[small][:, None], 0.0) * pmf).sum(axis=1)
    big = ~small
    if big.any():
        mb, cb = m[big], c[big]
        sd = np.sqrt(mb)
        d = (mb - cb) / sd
        cdf = 0.5 * (1.0 + np.vectorize(math.erf)(d / math.sqrt(2.0)))
        pdf = libm.exp(-0.5 * d * d) / math.sqrt(2.0 * math.pi)
        out[big] = (mb - cb) * cdf + sd * pdf
    return out


def poisson_walk_wait_s(rate_per_s: float, capacity_per_s: float, dt_s: float, group: float = 1.0) -> float:
    """Mean wait the sub-segment FIFO walk (:func:`~.bursts.backlog_integral`, cells of ``dt_s`` served at
    ``capacity_per_s``) gives a stream of groups of ``group`` requests arriving as a Poisson stream at
    ``rate_per_s`` requests/s: the walk's own backlog of such a stream, which the chunked step queue
    (:func:`chunked_step_queue`) already holds, so what a trace's walk holds beyond it is the burst.
    The backlog at a cell's end is the reflected random walk of increments ``group x Poisson(rate dt / group) -
    capacity dt``, whose stationary mean is Spitzer's ``sum_n E[S_n^+] / n`` (``S_n`` the sum of ``n``
    increments); Little's law makes it a wait (``E[Q] / rate``). Zero when overloaded or without arrivals."""
    if rate_per_s <= 0 or capacity_per_s <= rate_per_s or dt_s <= 0:
        return 0.0
    g = max(group, 1.0)
    rho = rate_per_s / capacity_per_s
    terms = int(min(max(200.0 * (1.0 + 1.0 / (1.0 - rho) ** 2), 200.0), 20000.0))
    n = np.arange(1.0, terms + 1.0)
    excess = g * _poisson_excess(n * rate_per_s * dt_s / g, n * capacity_per_s * dt_s / g)
    return float((excess / n).sum()) / rate_per_s


def chunked_step_queue(perf: ReplicaPerf, mix: TokenMix, op: OperatingPoint, replicas: int = 1) -> tuple[float, float]:
    """(wait ``R`` for the next step boundary of any of ``replicas`` replicas pulling from one queue, prompt
    tokens admitted beside a request at that boundary) of chunked-prefill steps at ``op``: the step queue of
    :func:`~.bursts.step_queue_ttft_s` with the chunked mean step ``m1``. A step's chunks are the prompt tokens
    that arrived during the step before it (compound Poisson), so its squared CV is
    ``c_p^2 lam m1 E[I^2] / ((1 - rho^2) m1^2)`` (no hiding under the slack: an upper bound), a request waits
    ``R = (m1 / c) (1 + cv2_c) / 2`` (``cv2_c = 1 + (cv2 - 1) / c``, superposed boundaries), and is admitted with
    the ``2 c lam R`` prompts that arrived since the last boundary or before the next, whose chunks share its
    steps (fused)."""
    lam = op.rate_per_s
    m1 = op.step_s
    c = max(replicas, 1)
    if lam <= 0 or m1 <= 0:
        return 0.5 * max(m1, 0.0), 0.0
    c_p = perf.c_prefill_s
    rho = min(lam * c_p * mix.prompt_mean, 1.0 - 1e-9)
    ei2 = mix.prompt_sq_mean if mix.prompt_sq_mean > 0 else mix.prompt_mean**2
    cv2 = c_p * c_p * lam * m1 * ei2 / (1.0 - rho * rho) / (m1 * m1)
    # a step lies between a decode step and a full one: its variance is at most (m1 - t_d) (t_full - m1)
    lane = max(perf.step_token_budget - op.batch, 1.0)
    t_d = perf.step_time_s(op.batch, op.kv_tokens, 0.0)
    t_full = perf.step_time_s(op.batch, op.kv_tokens, lane)
    cv2 = min(cv2, max(m1 - t_d, 0.0) * max(t_full - m1, 0.0) / (m1 * m1))
    residual = m1 / c * (2.0 + (cv2 - 1.0) / c) / 2.0
    return residual, 2.0 * c * lam * residual * mix.prompt_mean
