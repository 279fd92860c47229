"""Fluid model of a disaggregated service: a prefill pool, a KV transfer, a decode pool (plain objects, no SimPy).

What is modelled, per control segment (as :mod:`.fluid` does for a colocated service):

- **Prefill pool**: requests queue FIFO for prefill replicas; a replica prefills one prompt per step, a prefill-only
  step of ``h + max(weights streamed once, c_p x I)`` seconds (compute-bound for long prompts; batching several
  short prompts into one step, which streams the weights once for all, is not credited: conservative). The fluid
  backlog is served at the pool's capacity; waiting is the backlog integral / served plus, when the queue is
  empty, the M/G/c wait (Allen-Cunneen, one server per replica, the prompt's service-time variability). A GPU
  draws the compute-bound power ``power_w(1)`` while prefilling and idle-with-context power otherwise.
- **KV transfer**: the request's whole context (``I`` tokens, cached prefix included) crosses the link,
  ``I x kv_bytes_per_token x 8 / (Gb/s x 1e9)`` seconds. It is added to TTFT (the first token is delivered with
  the handover) and holds no GPU: neither pool is busy during it, and transfers do not contend.
- **Decode pool**: decode-only steps, the colocated roofline with no prompt tokens in its steps
  (:func:`~gigafactory_sim.inference.prefix.computed_mix` at hit rate 1 keeps the whole context in the KV
  terms), served by a :class:`~gigafactory_sim.inference.fluid.FluidService` whose arrivals are the prefill
  pool's completions in the same segment (the transfer's milliseconds are not carried across segments).

Objectives: TTFT = prefill wait + prefill + transfer; TPOT = the decode step; e2e = TTFT + decode wait + the
decode steps. The decode pool is sized against ``e2e - ttft`` (the TTFT objective, or without one the unloaded
prefill TTFT at the quantile prompt). A request late in either pool is late (the two shares are combined as
independent). Units: seconds, requests, watts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gigafactory_sim.inference.fluid import GRID, ClusterModel, FluidService, LatencyHistogram, Plan
from gigafactory_sim.inference.perf import INF, InfeasibleObjective, ReplicaPerf, SloLimits, TokenMix
from gigafactory_sim.inference.queueing import allen_cunneen_wait_s, drain_cohorts, erlang_c, fluid_segment
from gigafactory_sim.power.models import GpuPowerModel

__all__ = [
    "FluidQueue",
    "PoolModels",
    "PrefillModel",
    "PrefillPlan",
    "PrefillStage",
    "TwoPoolFluid",
    "prefill_capacity_per_s",
    "prefill_model",
    "prefill_service_s",
]


def prefill_service_s(perf: ReplicaPerf, prompt_tokens: np.ndarray) -> np.ndarray:
    """Seconds a prefill replica spends on one prompt of each length: one prefill-only step."""
    values, inverse = np.unique(np.asarray(prompt_tokens, dtype=float), return_inverse=True)
    steps = np.array([perf.step_time_s(0.0, 0.0, float(i)) for i in values])
    return steps[inverse].reshape(np.shape(prompt_tokens))


@dataclass(frozen=True)
class PrefillModel:
    """A prefill replica on one cluster: its roofline, power, service times and capacity."""

    perf: ReplicaPerf
    power: GpuPowerModel
    mean_service_s: float  # E[s(I)]
    cs2: float  # squared coefficient of variation of s(I)
    service_grid_s: np.ndarray  # s(I) at the prompt quantiles of :data:`GRID`
    service_q_s: float  # s(I) at the SLO quantile prompt
    rate_per_s: float  # capacity per replica (its saturation rate)

    @property
    def busy_w(self) -> float:
        """Power of a GPU while prefilling (compute-bound)."""
        return self.power.power_w(1.0)


def prefill_capacity_per_s(mean_s: float, fixed_q_s: float, ttft_s: float) -> float:
    """Capacity of a prefill replica: its saturation rate ``1 / E[s(I)]``, when an unloaded replica meets the
    TTFT objective (``fixed_q_s``: prefill and transfer of a quantile prompt). As for a colocated replica
    (:func:`~gigafactory_sim.inference.perf.capacity`), queueing is left out of the capacity: the fluid
    accounting charges it, and the autoscaler's ``target_utilisation`` keeps the headroom. Raises
    :class:`InfeasibleObjective` when an unloaded replica already misses the objective."""
    if fixed_q_s > ttft_s:
        raise InfeasibleObjective(
            "ttft",
            f"no prefill pool meets ttft {ttft_s:g} s: an unloaded prefill replica and the KV transfer take "
            f"{fixed_q_s:.3f} s for a prompt at the quantile length",
        )
    return 1.0 / mean_s


def prefill_model(
    perf: ReplicaPerf, power: GpuPowerModel, prompt: np.ndarray, mix: TokenMix, transfer_q_s: float, ttft_s: float
) -> PrefillModel:
    """The :class:`PrefillModel` of ``perf`` over the prompt samples ``prompt`` (the tokens prefill computes)."""
    s = prefill_service_s(perf, prompt)
    mean = float(s.mean())
    cs2 = float(s.var() / mean**2) if mean > 0 else 0.0
    grid = prefill_service_s(perf, np.quantile(np.asarray(prompt, dtype=float), GRID))
    s_q = float(prefill_service_s(perf, np.array([mix.prompt_q]))[0])
    return PrefillModel(perf, power, mean, cs2, grid, s_q, prefill_capacity_per_s(mean, s_q + transfer_q_s, ttft_s))


@dataclass(frozen=True)
class PoolModels:
    """Both pools of a service, per usable cluster, and its KV transfer."""

    prefill: dict[int, PrefillModel]
    decode: dict[int, ClusterModel]
    decode_mix: TokenMix
    decode_slo: SloLimits
    transfer_grid_s: np.ndarray  # KV transfer at the (whole) prompt quantiles of :data:`GRID`
    transfer_mean_s: float
    transfer_q_s: float  # at the SLO quantile prompt
    kv_bytes_per_request: float  # mean bytes moved per request


class FluidQueue:
    """A FIFO fluid backlog of request cohorts, served at a capacity (the rule of
    :meth:`~gigafactory_sim.inference.fluid.FluidService.account`); cohorts older than ``timeout_s`` are
    rejected."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.cohorts: deque[list[float]] = deque()  # [arrival time, requests], oldest first
        self.rejected = 0.0

    def backlog(self) -> float:
        return sum(c[1] for c in self.cohorts)

    def serve(self, t0_s: float, t1_s: float, arrivals: float, k: float) -> tuple[float, float]:
        """Serve ``arrivals`` (uniform over the segment) at ``k`` requests/s; returns (served, integral of the
        backlog over the segment in request-seconds)."""
        dt = t1_s - t0_s
        integral, served = fluid_segment(self.backlog(), arrivals, dt, k)
        self.cohorts.append([0.5 * (t0_s + t1_s), arrivals])
        self.rejected = drain_cohorts(self.cohorts, served, t1_s, self.timeout_s, self.rejected)
        return served, integral


@dataclass
class PrefillPlan:
    """One segment of the prefill pool: the rate it serves, its capacity and each GPU's power per cluster."""

    rate_per_s: float
    capacity_per_s: float
    serving: dict[int, int]
    gpu_power_w: dict[int, float]

    @property
    def utilisation(self) -> float:
        return self.rate_per_s / self.capacity_per_s if self.capacity_per_s > 0 else 0.0


@dataclass
class PrefillStage:
    """Fluid state and statistics of the prefill pool."""

    models: dict[int, PrefillModel]
    transfer_grid_s: np.ndarray
    transfer_mean_s: float
    ttft_s: float
    queue: FluidQueue
    arrived: float = 0.0
    served: float = 0.0
    late: float = 0.0
    wait_sum: float = 0.0
    ttft_sum: float = 0.0
    busy_replica_s: float = 0.0  # replica-seconds spent prefilling
    ttft_hist: LatencyHistogram = field(default_factory=LatencyHistogram)

    def capacity_per_s(self, serving: dict[int, int]) -> float:
        return sum(n * self.models[c].rate_per_s for c, n in serving.items())

    def plan(self, rate_per_s: float, serving: dict[int, int], span_s: float) -> PrefillPlan:
        k = self.capacity_per_s(serving)
        lam = min(rate_per_s + self.queue.backlog() / max(span_s, 1e-9), k)
        power: dict[int, float] = {}
        for c, m in self.models.items():
            share = m.rate_per_s / k if k > 0 else 0.0
            busy = min(lam * share * m.mean_service_s, 1.0)  # per replica: its rate x service time
            power[c] = busy * m.busy_w + (1.0 - busy) * m.power.idle_w
        return PrefillPlan(lam, k, dict(serving), power)

    def account(self, plan: PrefillPlan, t0_s: float, t1_s: float, arrivals: float) -> float:
        """Serve the segment's ``arrivals``; returns the requests handed to the decode pool."""
        if t1_s <= t0_s:
            return 0.0
        self.arrived += arrivals
        served, integral = self.queue.serve(t0_s, t1_s, arrivals, plan.capacity_per_s)
        if served <= 0:
            return 0.0
        self.served += served
        self._latencies(plan, served, integral / served, stable=not self.queue.cohorts)
        return served

    def _latencies(self, plan: PrefillPlan, served: float, fluid_wait: float, stable: bool) -> None:
        k = plan.capacity_per_s
        live = {c: n for c, n in plan.serving.items() if n > 0}
        servers = sum(live.values())
        mean_s = sum(n * self.models[c].rate_per_s / k * self.models[c].mean_service_s for c, n in live.items())
        cs2 = max((self.models[c].cs2 for c in live), default=0.0)
        pw, wq = 0.0, 0.0
        if stable and plan.rate_per_s > 0 and servers > 0:
            pw = erlang_c(servers, plan.rate_per_s * mean_s)
            wq = allen_cunneen_wait_s(servers, plan.rate_per_s, mean_s, 1.0, cs2)
        for c, n in live.items():
            m = self.models[c]
            weight = served * n * m.rate_per_s / k
            self.busy_replica_s += weight * m.mean_service_s
            wait = fluid_wait + wq
            self.wait_sum += weight * wait
            self.ttft_sum += weight * (wait + m.mean_service_s + self.transfer_mean_s)
            base = m.service_grid_s + self.transfer_grid_s
            attained = 0.0
            for p, w in ((1.0 - pw, fluid_wait), (pw, fluid_wait + (wq / pw if pw > 0 else 0.0))):
                if p <= 1e-9:
                    continue
                self.ttft_hist.add(w + base, weight * p / len(GRID))
                attained += p * (float((base <= self.ttft_s - w).mean()) if self.ttft_s < INF else 1.0)
            self.late += weight * (1.0 - attained)


class TwoPoolFluid:
    """Both pools of one service through time: plan a segment from the demand and each pool's serving replicas,
    account it when it closes."""

    def __init__(
        self, pools: PoolModels, slo: SloLimits, output: np.ndarray, queue_timeout_s: float, prompt_mean: float
    ) -> None:
        self.pools = pools
        self.prompt_mean = prompt_mean  # whole prompts, for the token count
        self.prefill = PrefillStage(
            pools.prefill, pools.transfer_grid_s, pools.transfer_mean_s, slo.ttft_s, FluidQueue(queue_timeout_s)
        )
        self.decode = FluidService(
            pools.decode, pools.decode_mix, np.zeros(1), output, pools.decode_slo, "continuous", queue_timeout_s
        )
        self.plan_p: PrefillPlan | None = None
        self.plan_d: Plan | None = None
        self.handed = 0.0  # requests handed over (KV transfers)

    def backlog_prefill(self) -> float:
        return self.prefill.queue.backlog()

    def backlog_decode(self) -> float:
        return self.decode.backlog_requests()

    def plan(
        self, rate_per_s: float, prefill: dict[int, int], decode: dict[int, int], span_s: float
    ) -> tuple[PrefillPlan, Plan]:
        self.plan_p = self.prefill.plan(rate_per_s, prefill, span_s)
        self.plan_d = self.decode.plan(self.plan_p.rate_per_s, decode, span_s)
        return self.plan_p, self.plan_d

    def account(self, t0_s: float, t1_s: float, arrivals: float) -> None:
        if self.plan_p is None or self.plan_d is None or t1_s <= t0_s:
            return
        handed = self.prefill.account(self.plan_p, t0_s, t1_s, arrivals)
        self.handed += handed
        self.decode.account(self.plan_d, t0_s, t1_s, handed)

    def prefill_gpu_w(self, c: int) -> float:
        """Power of each GPU of a serving prefill replica on cluster ``c``."""
        return self.plan_p.gpu_power_w[c] if self.plan_p is not None else 0.0

    def decode_gpu_w(self, c: int) -> float:
        return self.plan_d.gpu_power_w(c) if self.plan_d is not None else 0.0

    # -- results -------------------------------------------------------------------------------------------
    def late_share(self) -> float:
        """Share of served requests beyond an objective (the two pools' shares, combined as independent)."""
        p, d = self.prefill, self.decode
        f_p = p.late / p.served if p.served else 0.0
        f_d = d.late / d.served if d.served else 0.0
        return 1.0 - (1.0 - f_p) * (1.0 - f_d)

    def latency(self) -> dict[str, float | bool | None]:
        """The service's latency figures (estimated). e2e percentiles add the two pools' percentiles at the same
        quantile (exact for comonotone stages, an upper bound here)."""
        p, d = self.prefill, self.decode.summary()
        ttft = p.ttft_sum / p.served if p.served else None
        dec_e2e = d["mean_e2e_s"]
        out: dict[str, float | bool | None] = {
            "mean_ttft_s": ttft,
            "mean_tpot_s": d["mean_tpot_s"],
            "mean_e2e_s": ttft + dec_e2e if ttft is not None and dec_e2e is not None else None,
            "ttft_p50_s": p.ttft_hist.quantile(0.5),
            "ttft_p99_s": p.ttft_hist.quantile(0.99),
        }
        for q in (50, 90, 99):
            a, b = p.ttft_hist.quantile(q / 100), self.decode.e2e_hist.quantile(q / 100)
            out[f"e2e_p{q}_s"] = a + b if a is not None and b is not None else None
        out["estimated"] = True
        return out
