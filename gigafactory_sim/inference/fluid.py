"""Fluid model of one inference service (no event per request; plain objects, no SimPy).

Time is cut into segments (a control interval, or less when a replica finishes loading). For each segment:

1. :meth:`FluidService.plan` takes the demand rate and the serving replicas per cluster, spreads the load over
   replicas in proportion to their capacity, and finds each replica's mean-field operating point
   (:func:`~gigafactory_sim.inference.perf.operating_point`): step time, batch, latency without queueing,
   power.
2. :meth:`FluidService.account` takes the segment's arrivals, serves a FIFO fluid queue at the replicas'
capacity
   (backlog cohorts older than ``queue_timeout`` are rejected), and estimates waiting: the fluid backlog's
   ``integral(Q dt) / served`` plus, when the queue empties, the M/G/c (Allen-Cunneen) wait with one server
   per
   concurrent-request slot. SLO attainment per segment uses the prompt and output length distributions and a
   two-point wait distribution (no wait with probability ``1 - C``, else ``Wq / C``).

Latency percentiles are read from weighted log-spaced histograms of the estimated latencies.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from gigafactory_sim.inference.bursts import (
    Walk,
    backlog_integral,
    burst_weighted_point,
    cell_waits_s,
    fifo_walk,
    first_token_stalls,
    group_decode_step_s,
    group_power_w,
    max_mean,
    poisson_backlog_wait_s,
    prefill_first_power_step,
    prefill_stall_spread,
    served_per_cell,
    step_lengths,
    step_queue_ttft_s,
    wait_levels,
)
from gigafactory_sim.inference.chunked import batched_point_fn, chunked_ttft_at
from gigafactory_sim.inference.chunked_bursts import (
    chunk_drain_per_s,
    chunked_group_decode_s,
    chunked_group_power_w,
    chunked_group_ttft_s,
    chunked_step_queue,
    own_group_walk_wait_s,
    poisson_walk_wait_s,
)
from gigafactory_sim.inference.perf import (
    OperatingPoint,
    ReplicaPerf,
    SloLimits,
    TokenMix,
)
from gigafactory_sim.inference.queueing import drain_cohorts, erlang_c, fluid_segment
from gigafactory_sim.inference.single import single_operating_point, single_service_cv2
from gigafactory_sim.numerics import libm
from gigafactory_sim.power.models import GpuPowerModel

__all__ = ["ClusterModel", "FluidService", "LatencyHistogram", "Plan"]

GRID = np.linspace(0.005, 0.995, 100)
POINT_MEMO = 4096  # operating points a service remembers (by cluster and rate)
QUANTILE_RTOL = 1e-12  # a histogram's cumulative weight within this share of its total reaches it (see quantile)


@dataclass(frozen=True)
class ClusterModel:
    """A service's replica on one cluster: its roofline, power model and capacity operating point."""

    perf: ReplicaPerf
    power: GpuPowerModel
    cap: OperatingPoint
    slots: int  # concurrent requests a replica holds at capacity (1 without batching)

    @property
    def rate_per_s(self) -> float:
        return self.cap.rate_per_s


@dataclass
class Plan:
    """Operating points of one segment: per cluster, the replicas serving and their state."""

    rate_per_s: float
    capacity_per_s: float
    points: dict[int, OperatingPoint]
    serving: dict[int, int]
    step_levels: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # (served, step) per window level

    def gpu_power_w(self, cluster: int) -> float:
        """Power of each GPU of a serving replica on ``cluster``."""
        return self.points[cluster].gpu_power_w

    @property
    def utilisation(self) -> float:
        return self.rate_per_s / self.capacity_per_s if self.capacity_per_s > 0 else 0.0


@dataclass
class LatencyHistogram:
    """Weighted histogram on log-spaced bins from 0.1 ms to 1e6 s; percentiles by cumulative weight (see
    :meth:`quantile`)."""

    edges: np.ndarray = field(default_factory=lambda: libm.logspace(-4, 6, 4001))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(4000))
    _log_scale: tuple[float, float] | None = field(default=None, init=False, repr=False, compare=False)

    def add(self, values: np.ndarray, weight: float) -> None:
        self.add_many([values], [weight])

    def add_many(self, values: list[np.ndarray], weights: list[float]) -> None:
        """:meth:`add` each ``values[i]`` with ``weights[i]``, in order (one search and one ``add.at``)."""
        if not values:
            return
        flat = np.concatenate([np.ravel(v) for v in values])
        each = np.repeat(np.asarray(weights, dtype=float), [np.size(v) for v in values])
        np.add.at(self.weights, self._bins(flat), each)

    def add_grid(self, offsets: list[float], grid: np.ndarray, weights: list[float]) -> None:
        """:meth:`add` ``offsets[i] + grid`` with ``weights[i]`` for each ``i``, in order."""
        if not offsets:
            return
        flat = np.ravel(grid)
        values = (np.asarray(offsets, dtype=float)[:, None] + flat[None, :]).ravel()
        each = np.repeat(np.asarray(weights, dtype=float), flat.size)
        np.add.at(self.weights, self._bins(values), each)

    def _bins(self, values: np.ndarray) -> np.ndarray:
        """``clip(searchsorted(edges, values) - 1, 0, bins - 1)``. On log-spaced edges (checked once: every
        edge's guessed position within half a bin of its own, so a value's guess is off by at most one bin) the
        bin is guessed from the logarithm and corrected by one either way; otherwise searched."""
        e, n = self.edges, len(self.weights)
        if self._log_scale is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                lo, hi = np.log10(e[0]), np.log10(e[-1])  # any machine: only a guess, corrected exactly
                scale = n / (hi - lo)
                own = (np.log10(e) - lo) * scale  # any machine: only a guess, corrected exactly
            ok = bool(len(e) == n + 1 and np.isfinite(own).all() and (np.abs(own - np.arange(n + 1)) < 0.5).all())
            self._log_scale = (float(lo), float(scale)) if ok else (0.0, 0.0)
        lo, scale = self._log_scale
        if scale == 0.0 or len(values) == 0:
            return np.clip(np.searchsorted(e, values) - 1, 0, n - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = np.log10(values)  # any machine: only a guess, corrected exactly
            guess -= lo
            guess *= scale
            finite = bool(np.isfinite(guess.sum()))  # no infinity or NaN among them
        if not finite:  # zero, negative or not a number: search
            return np.clip(np.searchsorted(e, values) - 1, 0, n - 1)
        j = np.clip(guess, 0, n - 1, out=guess).astype(np.intp)
        j -= e[j] >= values  # the guess was one bin high (-1: below the first edge)
        j += e[j + 1] < values  # the guess was one bin low (n: above the last edge)
        return np.clip(j, 0, n - 1, out=j)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the weighted bins, each taken at its geometric middle: the first bin whose
        cumulative weight reaches ``q`` of the total; where it reaches it exactly (the bins below hold exactly
        ``q`` of the weight, as when equally weighted points put a quantile on their boundary), the mean of that
        bin and the next one holding weight (the inverse distribution function with averaging at its
        discontinuities: Hyndman and Fan's definition 2, the way a median of an even count is taken).

        "Exactly" is to within ``QUANTILE_RTOL`` of the total, so float rounding in the sums cannot move a
        quantile across a stretch of empty bins; the total is the cumulative sum's own last value."""
        w = self.weights
        cum = np.cumsum(w)
        total = float(cum[-1]) if len(cum) else 0.0
        if total <= 0:
            return None
        e = self.edges

        def middle(k: int) -> float:
            return float(np.sqrt(e[k] * e[k + 1]))

        at = q * total
        tol = QUANTILE_RTOL * total
        if at <= tol:  # (q = 0: the lowest bin holding weight)
            return middle(int(np.flatnonzero(w)[0]))
        i = min(int(np.searchsorted(cum, at - tol)), len(w) - 1)
        later = np.flatnonzero(w[i + 1 :]) if abs(float(cum[i]) - at) <= tol else np.empty(0, dtype=np.intp)
        if len(later):  # the weight up to bin i is exactly q of it: the mean with the next bin holding weight
            return (middle(i) + middle(i + 1 + int(later[0]))) / 2.0
        return middle(i)


class FluidService:
    """Fluid state and statistics of one service."""

    def __init__(
        self,
        models: dict[int, ClusterModel],
        mix: TokenMix,
        prompt: np.ndarray,
        output: np.ndarray,
        slo: SloLimits,
        batching: str,
        queue_timeout_s: float,
        ca2: float = 1.0,
        step_queue: bool = False,
        group: float = 1.0,
    ) -> None:
        self.models = models
        self.mix = mix
        self.prompt_sorted = np.sort(np.asarray(prompt, dtype=float))
        self.output_sorted = np.sort(np.asarray(output, dtype=float))
        self.prompt_grid = np.quantile(self.prompt_sorted, GRID)
        self.output_grid = np.quantile(self.output_sorted, GRID)
        self.slo = slo
        self.batching = batching
        self.queue_timeout_s = queue_timeout_s
        self.ca2 = ca2
        self.step_queue = step_queue  # burst-aware latency (:mod:`.bursts`)
        self.group = group  # size-biased size of the groups arriving at one instant (1: no ties)
        self.group_max_output = max_mean(self.output_sorted, group)  # mean longest output of a group
        self.backlog: deque[list[float]] = deque()  # [arrival time, requests], oldest first
        self.arrived = self.served = self.rejected = self.late = 0.0
        self.wait_sum = self.ttft_sum = self.e2e_sum = self.tpot_sum = 0.0
        self.e2e_hist = LatencyHistogram()
        self._points: dict[tuple[int, float, int], OperatingPoint] = {}
        self.replicas_serving = 1  # replicas of the segment being planned (groups spread over them: chunked)
        self._walk_memo: tuple[np.ndarray, tuple[float, float, float], Walk] | None = None
        self.burst_carry = 0.0  # requests the sub-segment queue still held at the last segment's end (chunked)
        self.ttft_hist = LatencyHistogram()

    # -- planning ------------------------------------------------------------------------------------------
    def capacity_per_s(self, serving: dict[int, int]) -> float:
        return sum(n * self.models[c].rate_per_s for c, n in serving.items())

    def backlog_requests(self) -> float:
        return sum(c[1] for c in self.backlog)

    def point(self, cluster: int, rate_per_s: float) -> OperatingPoint:
        """The operating point of a replica on ``cluster`` at ``rate_per_s`` (a pure function of them for this
        service: memoised, a third of a burst-weighted run's rates recur)."""
        key = (cluster, rate_per_s, self.replicas_serving if self.grouped_chunked(self.models[cluster]) else 0)
        op = self._points.get(key)
        if op is None:
            if len(self._points) >= POINT_MEMO:
                self._points.clear()
            op = self._points[key] = self._point(cluster, rate_per_s)
        return op

    def _point(self, cluster: int, rate_per_s: float) -> OperatingPoint:
        m = self.models[cluster]
        if self.batching == "none":
            return single_operating_point(m.perf, self.mix, rate_per_s, m.power)
        op = batched_point_fn(m.perf)(m.perf, self.mix, rate_per_s, m.power)
        if self.grouped(m) and op.feasible and rate_per_s > 0:  # groups decode together (:mod:`.bursts`)
            step = group_decode_step_s(m.perf, self.mix, op, self.group, self.output_sorted)
            power = group_power_w(m.perf, self.mix, m.power, op, self.group, self.group_max_output, step)
            op = op.with_power(power, step)
        elif self.grouped_chunked(m) and op.feasible and rate_per_s > 0:  # (:mod:`.chunked_bursts`)
            replicas = self.replicas_serving
            power = chunked_group_power_w(m.perf, self.mix, m.power, op, self.output_sorted, replicas, self.group)
            op = op.with_power(power)
        elif self.step_queue and not m.perf.chunked and op.feasible and rate_per_s > 0:  # prefill energy by work
            power = group_power_w(m.perf, self.mix, m.power, op, 1.0, self.mix.output_mean, op.step_s)
            op = op.with_power(power)
        return op

    def points_at(self, cluster: int, rates_per_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(power, step, feasible) of :meth:`point` at each of ``rates_per_s``, vectorised where the points are
        prefill-first steps of single arrivals (:func:`~gigafactory_sim.inference.bursts.prefill_first_power_step`,
        the same arithmetic); None otherwise."""
        m = self.models[cluster]
        if self.batching == "none" or not self.step_queue or self.grouped(m):
            return None
        return prefill_first_power_step(m.perf, self.mix, m.power, rates_per_s)

    def grouped(self, m: ClusterModel) -> bool:
        """Whether the burst-aware terms of same-instant groups apply (prefill-first continuous batching)."""
        return self.step_queue and self.group > 1.0 and self.batching == "continuous" and not m.perf.chunked

    def grouped_chunked(self, m: ClusterModel) -> bool:
        """Whether the burst-aware terms of same-instant groups under chunked prefill apply
        (:mod:`.chunked_bursts`)."""
        return self.step_queue and self.group > 1.0 and self.batching == "continuous" and m.perf.chunked

    def plan(
        self, rate_per_s: float, serving: dict[int, int], interval_s: float, sub_counts: np.ndarray | None = None
    ) -> Plan:
        """Operating points for a segment expected to last ``interval_s`` with demand ``rate_per_s``;
        ``sub_counts`` (with ``step_queue``): its arrivals in equal cells, to weight power and step time by the
        bursts (:func:`~gigafactory_sim.inference.bursts.burst_weighted_point`)."""
        k = self.capacity_per_s(serving)
        self.replicas_serving = max(sum(serving.values()), 1)
        offered = rate_per_s + self.backlog_requests() / max(interval_s, 1e-9)
        lam = min(offered, k)
        points: dict[int, OperatingPoint] = {}
        cells: np.ndarray | None = None
        spans: np.ndarray | None = None
        grouped = self.group > 1.0 and all(self.grouped(m) or self.grouped_chunked(m) for m in self.models.values())
        # with same-instant groups a window's rate counts a request's own group, which the group step holds
        if self.step_queue and sub_counts is not None and len(sub_counts) > 1 and k > 0 and not grouped:
            dt = interval_s / len(sub_counts)
            q0 = self.backlog_requests() + self.burst_carry
            served = served_per_cell(sub_counts, dt, k, q0, self._walk(sub_counts, dt, k))
            # a replica's batch settles over a request's stay: weight by rates over windows that long
            stay = max(m.cap.e2e_s for m in self.models.values())
            w = max(1, min(round(stay / dt), len(served)))
            whole = len(served) // w * w
            windows = served[:whole].reshape(-1, w).sum(axis=1)
            spans = np.full(len(windows), w * dt)
            if whole < len(served):  # the last, shorter window counts for its own length
                windows = np.append(windows, served[whole:].sum())
                spans = np.append(spans, (len(served) - whole) * dt)
            cells = windows / spans
        step_levels: dict[int, list[tuple[float, float]]] = {}
        for c in self.models:
            share = self.models[c].rate_per_s / k if k > 0 else 0.0
            if cells is None:
                points[c] = self.point(c, lam * share)
            else:
                # chunked prefill: the windows' steps spread the end-to-end latency (:meth:`_window_e2e`)
                levels = step_levels.setdefault(c, []) if self.models[c].perf.chunked else None
                points[c] = burst_weighted_point(
                    partial(self.point, c),
                    cells * share,
                    durations_s=spans,
                    points_at=partial(self.points_at, c),
                    levels_out=levels,
                )
        return Plan(lam, k, points, dict(serving), step_levels)

    def burst_drain_per_s(self, serving: dict[int, int], capacity_per_s: float) -> float:
        """Rate at which the sub-segment burst queue drains: the serving replicas' chunk budgets
        (:func:`~gigafactory_sim.inference.chunked_bursts.chunk_drain_per_s`) when every one is chunked prefill,
        else ``capacity_per_s`` (the SLO capacity)."""
        if not serving or not all(self.models[c].perf.chunked for c in serving):
            return capacity_per_s
        models = self.models
        drain = sum(n * chunk_drain_per_s(models[c].perf, self.mix, models[c].cap) for c, n in serving.items())
        return drain if drain > 0 else capacity_per_s

    def _walk(self, counts: np.ndarray, dt_s: float, rate_per_s: float) -> Walk:
        """:func:`~gigafactory_sim.inference.bursts.fifo_walk` of ``counts`` from the backlog now (the fluid
        backlog and the sub-segment burst carried over, :meth:`carry_burst`); a segment planned and accounted
        over the same cells, capacity and backlog walks once."""
        key = (dt_s, rate_per_s, self.backlog_requests() + self.burst_carry)
        if self._walk_memo is not None and self._walk_memo[0] is counts and self._walk_memo[1] == key:
            return self._walk_memo[2]
        walk = fifo_walk(counts, dt_s, rate_per_s, key[2])
        self._walk_memo = (counts, key, walk)
        return walk

    # -- accounting ----------------------------------------------------------------------------------------
    def account(
        self, plan: Plan, t0_s: float, t1_s: float, arrivals: float, sub_counts: np.ndarray | None = None
    ) -> float:
        """Serve ``arrivals`` (requests arriving uniformly in ``[t0, t1)``) under ``plan``; returns served.
        ``sub_counts`` (with ``step_queue``): the arrivals in equal cells of the segment, for the burst wait."""
        dt = t1_s - t0_s
        if dt <= 0:
            return 0.0
        self.arrived += arrivals
        k = plan.capacity_per_s
        q0 = self.backlog_requests()
        lam = arrivals / dt
        integral, served = fluid_segment(q0, arrivals, dt, k)
        levels: list[tuple[float, float]] | None = None
        walk: Walk | None = None
        if self.step_queue and sub_counts is not None and len(sub_counts) > 1 and k > 0:
            cell = dt / len(sub_counts)
            # the step queue already holds the waiting of a compound Poisson stream at this rate: only the
            # backlog beyond it (bursts) is added
            base = poisson_backlog_wait_s(lam, k, self.group)
            if self.batching != "continuous":
                base = 0.0  # no step-queue TTFT to hold it (one request at a time)
            elif any(self.models[c].perf.chunked for c in plan.serving):
                # the chunked TTFT holds a group's own mates ahead and the Poisson queue for the budgets
                # (:mod:`.chunked_bursts`): the walk keeps the other groups' and the bursts' backlog
                drain = self.burst_drain_per_s(plan.serving, k)
                base = own_group_walk_wait_s(self.group, cell, drain) + poisson_walk_wait_s(lam, drain, cell)
            drain = self.burst_drain_per_s(plan.serving, k)
            walk = self._walk(sub_counts, cell, drain)
            q_walk = q0 + self.burst_carry
            fifo = max(backlog_integral(sub_counts, cell, drain, q_walk, walk) - arrivals * base, 0.0)
            integral = max(integral, fifo)
            waits = np.maximum(cell_waits_s(sub_counts, cell, drain, q_walk, walk) - base, 0.0)
            levels = wait_levels(waits, np.asarray(sub_counts, dtype=float))
        self.backlog.append([0.5 * (t0_s + t1_s), arrivals])
        self.rejected = drain_cohorts(self.backlog, served, t1_s, self.queue_timeout_s, self.rejected)
        self.carry_burst(plan, walk)
        if served <= 0:
            return 0.0
        self.served += served
        fluid_wait = integral / served
        self._latencies(plan, served, fluid_wait, stable=not self.backlog, levels=levels)
        return served

    def carry_burst(self, plan: Plan, walk: Walk | None) -> None:
        """Keep the sub-segment queue's backlog at the segment's end (``walk``: its
        :func:`~gigafactory_sim.inference.bursts.fifo_walk`, None when not run) beyond the fluid backlog, as the
        start of the next segment's walk: a burst near a segment's end still waits in the next one (else the
        control interval's edges would cut its queue). Chunked prefill only (the prefill-first fluid keeps its
        results: its walk starts from the fluid backlog)."""
        chunked = any(self.models[c].perf.chunked for c in plan.serving)
        if walk is None or not chunked or len(walk[3]) == 0:
            self.burst_carry = 0.0
            return
        self.burst_carry = max(float(walk[3][-1]) - self.backlog_requests(), 0.0)

    def _latencies(
        self,
        plan: Plan,
        served: float,
        fluid_wait: float,
        stable: bool,
        levels: list[tuple[float, float]] | None = None,
    ) -> None:
        """Add the segment's ``served`` requests to the latency sums and histograms. ``levels``: the
        sub-segment distribution of the wait as (share, wait), scaled here to the mean ``fluid_wait``."""
        k = plan.capacity_per_s
        slots = sum(n * self.models[c].slots for c, n in plan.serving.items())
        for c, n in plan.serving.items():
            if n <= 0:
                continue
            m = self.models[c]
            op = plan.points[c]
            weight = served * n * m.rate_per_s / k
            if not op.feasible:
                op = self.point(c, m.rate_per_s * (1 - 1e-9))
            residence = op.e2e_s
            pw, wq = 0.0, 0.0
            if stable and plan.rate_per_s > 0:
                cs2 = single_service_cv2(m.perf, self.mix) if self.batching == "none" else self.mix.output_cv2
                lam = plan.rate_per_s
                servers = max(slots, 1)
                pw = erlang_c(servers, lam * residence)
                free_rate = servers / residence - lam
                wq = pw / free_rate * (self.ca2 + cs2) / 2.0 if free_rate > 0 else float("inf")
            t = op.step_s
            c_p = m.perf.c_prefill_s
            ttft_grid: np.ndarray | None = None  # TTFT per prompt quantile without waiting, where not linear
            decode_grid: np.ndarray | None = None  # first to last token per output quantile, where not linear
            if self.batching == "none":
                a_ttft, a_e2e, b = t, c_p * self.mix.prompt_mean, t
            elif m.perf.chunked or self.step_queue:
                replicas = sum(plan.serving.values())
                if m.perf.chunked:
                    ttft_grid, decode_grid, t = self._chunked_latency(m, op, replicas, t)
                else:
                    ttft_grid = step_queue_ttft_s(m.perf, self.mix, op, self.prompt_grid, replicas, self.group)
                b = t
                a_ttft, a_e2e = 0.0, float(ttft_grid.mean()) - b
            else:
                a_ttft, a_e2e, b = 1.5 * t, 1.5 * t + c_p * self.mix.prompt_mean - t, t
            wait = fluid_wait + wq
            self.wait_sum += weight * wait
            if ttft_grid is not None:
                self.ttft_sum += weight * (wait + a_e2e + b)
            else:
                self.ttft_sum += weight * (wait + a_ttft + c_p * self.mix.prompt_mean)
            self.e2e_sum += weight * (wait + a_e2e + b * self.mix.output_mean)
            self.tpot_sum += weight * b
            e2e_grid = a_e2e + b * self.output_grid  # end-to-end per output quantile without waiting
            if decode_grid is not None:
                e2e_grid = a_e2e + b + decode_grid
            elif m.perf.chunked and self.step_queue and plan.step_levels.get(c):
                e2e_grid = self._window_e2e(plan.step_levels[c], a_e2e + b, b)
            if self.step_queue and ttft_grid is not None and not m.perf.chunked:
                first = self._first_token_stalls(m, op, sum(plan.serving.values()), a_e2e + b)
                stall_s = m.perf.c_prefill_s * max(self.group, 1.0) * self.mix.prompt_mean
                self.e2e_sum += weight * first * stall_s * float((self.output_grid > 1.0).mean())  # those decoding
                e2e_grid = prefill_stall_spread(m.perf, self.mix, op, b, a_e2e, self.output_grid, self.group, first)
            spread = [(1.0, fluid_wait)]
            if levels:  # each cell's arrivals wait as long as the sub-segment queue makes them
                mean = sum(p * w for p, w in levels)
                spread = [(p, w * fluid_wait / mean) for p, w in levels] if mean > 0 else spread
            extra = wq / pw if pw > 0 else 0.0
            cases = [(p * (1.0 - pw), w) for p, w in spread] + [(p * pw, w + extra) for p, w in spread]
            attained = 0.0
            # a sorted grid (prompt quantiles, increasing) counts the prompts in time by a search
            ttft_sorted = ttft_grid is not None and bool((ttft_grid[1:] >= ttft_grid[:-1]).all())
            ttft_at: list[float] = []  # each case's wait added to the TTFT grid
            kept: list[float] = []  # each case's share
            waits: list[float] = []
            for p, w in cases:
                if p <= 1e-9:
                    continue
                kept.append(p)
                waits.append(w)
                ttft_at.append(w if ttft_grid is not None else w + a_ttft)
                ok = 1.0 if b <= self.slo.tpot_s else 0.0
                if self.slo.ttft_s < float("inf") and ttft_grid is not None:
                    if ttft_sorted:
                        ok *= self._cdf(ttft_grid, self.slo.ttft_s - w)
                    else:
                        ok *= float((ttft_grid <= self.slo.ttft_s - w).mean())
                elif self.slo.ttft_s < float("inf"):
                    ok *= self._cdf(self.prompt_sorted, (self.slo.ttft_s - w - a_ttft) / c_p)
                if self.slo.e2e_s < float("inf"):
                    ok *= self._cdf(self.output_sorted, (self.slo.e2e_s - w - a_e2e) / b)
                attained += p * ok
            self.ttft_hist.add_grid(
                ttft_at,
                ttft_grid if ttft_grid is not None else c_p * self.prompt_grid,
                [weight * p / len(GRID) for p in kept],
            )
            self.e2e_hist.add_grid(waits, e2e_grid, [weight * p / e2e_grid.size for p in kept])
            self.late += weight * (1.0 - attained)

    def _first_token_stalls(self, m: ClusterModel, op: OperatingPoint, replicas: int, ttft_s: float) -> float:
        """Mean number of groups' prefill steps right after a request's first token
        (:func:`~gigafactory_sim.inference.bursts.first_token_stalls`) of a prefill-first replica at ``op``, its
        own prefill step the mean TTFT without waiting ``ttft_s`` less the residual to a step boundary."""
        residual_s = step_lengths(m.perf, self.mix, op, replicas, self.group)[3]
        return first_token_stalls(m.perf, self.mix, op, ttft_s - residual_s, replicas, self.group)

    def _chunked_latency(
        self, m: ClusterModel, op: OperatingPoint, replicas: int, step_s: float
    ) -> tuple[np.ndarray, np.ndarray | None, float]:
        """(TTFT per prompt quantile, decode time per output quantile or None where it is ``step_s`` per token,
        the step the latency sums take) of a chunked-prefill replica at ``op`` without waiting for a slot:
        :func:`~gigafactory_sim.inference.chunked.chunked_ttft_at`, and with ``step_queue`` the burst-aware
        terms of :mod:`.chunked_bursts` (the step queue; same-instant groups)."""
        if not self.step_queue:
            return chunked_ttft_at(m.perf, self.mix, op, self.prompt_grid), None, step_s
        decode_grid: np.ndarray | None = None
        if self.grouped_chunked(m):
            ttft_grid = chunked_group_ttft_s(m.perf, self.mix, op, self.prompt_grid, replicas, self.group)
            ahead = float(ttft_grid.mean())
            decode_grid = chunked_group_decode_s(
                m.perf, self.mix, op, self.output_grid, self.output_sorted, replicas, self.group, ahead
            )
            step_s = self._decode_step_s(decode_grid, step_s)
        else:
            queue = chunked_step_queue(m.perf, self.mix, op, replicas)
            ttft_grid = chunked_ttft_at(m.perf, self.mix, op, self.prompt_grid, queue=queue)
        return ttft_grid, decode_grid, step_s

    def _window_e2e(
        self, step_levels: list[tuple[float, float]], ttft_s: float, step_s: float, levels: int = 8
    ) -> np.ndarray:
        """End-to-end latency without waiting per output quantile (``levels x len(output grid)``, equally likely)
        of requests whose first token comes after ``ttft_s``: a request decodes at the step of the window it is
        served in, so the windows' steps ``step_levels`` ((requests served, step) each) spread it, taken at the
        midpoints of ``levels`` equal shares of the requests and scaled to the mean ``step_s`` the latency sums
        take."""
        order = sorted(step_levels, key=lambda x: x[1])
        served = np.array([s for s, _ in order])
        steps = np.array([t for _, t in order])
        cum = np.cumsum(served) / served.sum()
        mids = (np.arange(levels) + 0.5) / levels
        rows = steps[np.minimum(np.searchsorted(cum, mids, side="left"), len(steps) - 1)]
        mean = float(rows.mean())
        if mean <= 0:
            rows, mean = np.full(levels, step_s), step_s
        rows = rows * (step_s / mean)
        return np.asarray(ttft_s + rows[:, None] * np.maximum(self.output_grid - 1.0, 0.0)[None, :], dtype=float)

    def _decode_step_s(self, decode_s: np.ndarray, default_s: float) -> float:
        """The mean time per output token after the first of decode times ``decode_s`` on the output grid (what
        the latency sums take as the step): their mean over the grid's mean output tokens after the first."""
        steps = float(np.maximum(self.output_grid - 1.0, 0.0).mean())
        return float(decode_s.mean()) / steps if steps > 0 else default_s

    @staticmethod
    def _cdf(sorted_values: np.ndarray, x: float) -> float:
        return float(np.searchsorted(sorted_values, x, side="right")) / len(sorted_values)

    # -- results -------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, float | None]:
        s = self.served
        return {
            "mean_wait_s": self.wait_sum / s if s else None,
            "mean_ttft_s": self.ttft_sum / s if s else None,
            "mean_tpot_s": self.tpot_sum / s if s else None,
            "mean_e2e_s": self.e2e_sum / s if s else None,
            "ttft_p50_s": self.ttft_hist.quantile(0.5),
            "ttft_p99_s": self.ttft_hist.quantile(0.99),
            "e2e_p50_s": self.e2e_hist.quantile(0.5),
            "e2e_p90_s": self.e2e_hist.quantile(0.9),
            "e2e_p99_s": self.e2e_hist.quantile(0.99),
        }


def slots_at_capacity(cap: OperatingPoint, batching: str) -> int:
    """Concurrent requests a replica holds at capacity (Little's law), at least one."""
    if batching == "none":
        return 1
    return max(1, round(cap.rate_per_s * cap.e2e_s))


def cluster_model(
    perf: ReplicaPerf, power: GpuPowerModel, mix: TokenMix, slo: SloLimits, batching: str
) -> ClusterModel:
    """A :class:`ClusterModel` with its capacity operating point (raises ``InfeasibleObjective``)."""
    from gigafactory_sim.inference.perf import capacity
    from gigafactory_sim.inference.single import single_capacity

    if batching == "none":
        cap = single_capacity(perf, mix, slo, power)
    else:
        cap = capacity(perf, mix, slo, power, batched_point_fn(perf))
    return ClusterModel(perf, power, cap, slots_at_capacity(cap, batching))
