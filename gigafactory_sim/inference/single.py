"""Replicas serving one request at a time (``batching: none``): service time ``c_p * I + O * t1``, with ``t1``
the batch-1 decode step at the mean context. Units: seconds, watts."""

from __future__ import annotations

from gigafactory_sim.inference.perf import INF, InfeasibleObjective, OperatingPoint, ReplicaPerf, SloLimits, TokenMix
from gigafactory_sim.power.models import GpuPowerModel

__all__ = ["single_capacity", "single_operating_point", "single_service_cv2"]


def single_operating_point(perf: ReplicaPerf, mix: TokenMix, rate_per_s: float, model: GpuPowerModel) -> OperatingPoint:
    """A replica serving one request at a time (``batching: none``): service time ``c_p*I + O*t1``.

    ``t1`` is the batch-1 decode step at the mean context; ``batch`` is the busy fraction (utilisation);
    latencies
    exclude queueing (the caller adds the M/G/c wait).
    """
    lam = max(rate_per_s, 0.0)
    ctx = mix.prompt_mean + mix.output_mean / 2.0
    t1 = perf.step_time_s(1, ctx, 0.0)
    prefill = perf.c_prefill_s * mix.prompt_mean
    service = prefill + mix.output_mean * t1
    busy = lam * service
    if busy >= 1.0:
        return OperatingPoint(lam, t1, INF, INF, INF, INF, INF, INF, model.power_w(1.0), False)
    mem, cmp, _ = perf.step_parts_s(1, ctx, 0.0)
    decode_w = perf.phase_power_w(model, mem, cmp, 0.0, t1)
    busy_w = (prefill * model.power_w(1.0) + mix.output_mean * t1 * decode_w) / service
    return OperatingPoint(
        lam,
        t1,
        busy,
        prefill + t1,
        service,
        perf.c_prefill_s * mix.prompt_mean + mix.output_q * t1,
        perf.c_prefill_s * mix.prompt_q + t1,
        ctx * busy,
        busy * busy_w + (1.0 - busy) * model.idle_w,
        True,
    )


def single_service_cv2(perf: ReplicaPerf, mix: TokenMix) -> float:
    """Squared coefficient of variation of the one-request-at-a-time service time (output length drives
    it)."""
    t1 = perf.step_time_s(1, mix.prompt_mean + mix.output_mean / 2.0, 0.0)
    mean = perf.c_prefill_s * mix.prompt_mean + mix.output_mean * t1
    var_o = max(mix.output_sq_mean - mix.output_mean**2, 0.0)
    return var_o * t1 * t1 / (mean * mean) if mean > 0 else 0.0


def single_capacity(perf: ReplicaPerf, mix: TokenMix, slo: SloLimits, model: GpuPowerModel) -> OperatingPoint:
    """Capacity of a replica serving one request at a time: ``1 / E[service time]`` (the autoscaler's
    ``target_utilisation`` keeps the queue short). Raises :class:`InfeasibleObjective` if an unloaded replica
    misses an objective."""
    zero = single_operating_point(perf, mix, 0.0, model)
    if zero.step_s > slo.tpot_s:
        raise InfeasibleObjective(
            "tpot",
            f"no batch size meets tpot {slo.tpot_s * 1e3:g} ms: one request's step takes {zero.step_s * 1e3:.1f} ms",
        )
    if zero.ttft_q_s > slo.ttft_s:
        raise InfeasibleObjective("ttft", f"no batch size meets ttft {slo.ttft_s:g} s: unloaded {zero.ttft_q_s:.3f} s")
    if zero.e2e_q_s > slo.e2e_s:
        raise InfeasibleObjective("e2e", f"no batch size meets e2e {slo.e2e_s:g} s: unloaded {zero.e2e_q_s:.2f} s")
    return single_operating_point(perf, mix, (1.0 - 1e-9) / zero.e2e_s, model)
