"""Fluid against discrete under bursts and long prompts with chunked prefill (``scheduling: {chunked_prefill:
true, max_num_batched_tokens: 8192}``, the default fluid ``step_queue: true``, :mod:`.chunked_bursts`).

Targets (issue #16), as in tests/test_inference_bursts.py: mean TTFT, mean e2e and p90 e2e within 15 %,
throughput and energy per output token within 5 %. Each stream at 30, 60 and 80 % of the replicas' SLO capacity
(Llama-3-8B shape, one H200 per replica, 2 replicas, 10 minutes). Cases that miss a target are strict xfails
whose reason gives the measured errors; tolerances are the targets, not widened.
"""

from __future__ import annotations

import numpy as np
import pytest

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.agreement import LOADS, STREAMS, missed_targets, reference_service, stream_errors
from gigafactory_sim.inference.bursts import backlog_integral
from gigafactory_sim.inference.chunked import chunked_operating_point, chunked_ttft_at
from gigafactory_sim.inference.chunked_bursts import (
    chunk_drain_per_s,
    chunked_group_decode_s,
    chunked_group_ttft_s,
    chunked_step_queue,
    own_group_walk_wait_s,
    poisson_walk_wait_s,
)
from gigafactory_sim.inference.fluid import FluidService, cluster_model
from gigafactory_sim.inference.perf import OperatingPoint, SloLimits, TokenMix

H200 = BUILTIN_GPUS["H200-SXM"]
SERVICE = reference_service(chunked=True)
PERF = SERVICE.replica_perf(H200)


def check(err: dict[str, float]) -> None:
    missed = missed_targets(err)
    assert not missed, f"outside the targets (%): {missed}"


MISSES: dict[tuple[str, float], str] = {}  # (stream, load): the measured errors (%) that miss a target (none now)
CASES = [
    pytest.param(
        name,
        load,
        marks=[pytest.mark.xfail(strict=True, reason=MISSES[(name, load)])] if (name, load) in MISSES else [],
        id=f"{name}-{round(100 * load)}",
    )
    for name in STREAMS
    for load in LOADS
]


@pytest.mark.parametrize(("name", "load"), CASES)
def test_chunked_fluid_agrees_with_discrete(name: str, load: float) -> None:
    check(stream_errors(SERVICE, STREAMS[name](), load))


def point(mix: TokenMix, rate_per_s: float) -> OperatingPoint:
    return chunked_operating_point(PERF, mix, rate_per_s, H200.power_model)


def test_step_queue_is_the_mean_field_unloaded() -> None:
    mix = TokenMix.fixed(1000.0, 100.0)
    op = point(mix, 1e-9)
    residual, beside = chunked_step_queue(PERF, mix, op, replicas=1)
    assert residual == pytest.approx(0.5 * op.step_s, rel=1e-6)  # half a step, nothing admitted beside it
    assert beside == pytest.approx(0.0, abs=1e-6)
    plain = chunked_ttft_at(PERF, mix, op, np.array([1000.0]))[0]
    queued = chunked_ttft_at(PERF, mix, op, np.array([1000.0]), queue=(residual, beside))[0]
    assert queued == pytest.approx(plain, rel=1e-6)


def test_step_queue_residual_is_bounded_by_a_full_step() -> None:
    mix = TokenMix.from_samples(np.array([100.0, 30000.0] * 50), np.full(100, 100.0))
    op = point(mix, 1.0)
    residual, _ = chunked_step_queue(PERF, mix, op, replicas=1)
    lane = PERF.step_token_budget - op.batch
    t_full = PERF.step_time_s(op.batch, op.kv_tokens, lane)
    assert 0.5 * op.step_s <= residual <= 0.5 * (op.step_s + t_full)  # (1 + cv2) / 2 m1 with the variance bound


def test_group_mates_ahead_are_chunked_before_a_request() -> None:
    mix = TokenMix.fixed(9000.0, 200.0)
    op = point(mix, 0.5)
    one = chunked_group_ttft_s(PERF, mix, op, np.array([9000.0]), replicas=2, group=1.0)[0]
    ten = chunked_group_ttft_s(PERF, mix, op, np.array([9000.0]), replicas=2, group=10.0)[0]
    lane = PERF.step_token_budget - op.batch
    t_full = PERF.step_time_s(op.batch, op.kv_tokens, lane)
    residual, beside = chunked_step_queue(PERF, mix, op, replicas=2)
    # 4.5 mates ahead on average, spread over the 2 replicas: ~20k more tokens on its replica, chunked first
    assert ten - one >= 4.5 * 9000 / 2 * PERF.c_prefill_s
    assert ten <= residual + np.ceil((9000 + 4.5 * 9000 / 2 + beside) / lane) * t_full + 1e-9  # all steps full


def test_own_group_walk_wait_against_the_walk() -> None:
    # 10 requests at one instant in a 0.1-s cell, served at 6/s: the walk's own area over 10
    cells = np.zeros(40)
    cells[0] = 10.0
    assert own_group_walk_wait_s(10.0, 0.1, 6.0) == pytest.approx(backlog_integral(cells, 0.1, 6.0, 0.0) / 10.0)
    assert own_group_walk_wait_s(3.0, 0.1, 40.0) == 0.0  # the cell serves the whole group


@pytest.mark.parametrize(("rate", "capacity", "group"), [(40.0, 59.0, 1.0), (28.0, 35.0, 1.0), (4.0, 16.0, 10.0)])
def test_poisson_walk_wait_against_a_simulated_walk(rate: float, capacity: float, group: float) -> None:
    rng = np.random.default_rng(5)
    counts = group * rng.poisson(rate * 0.1 / group, 200_000).astype(float)
    simulated = backlog_integral(counts, 0.1, capacity, 0.0) / counts.sum()
    assert poisson_walk_wait_s(rate, capacity, 0.1, group) == pytest.approx(simulated, rel=0.15)
    assert poisson_walk_wait_s(capacity, capacity, 0.1) == 0.0


def test_group_decode_levels_keep_their_mean() -> None:
    mix = TokenMix.fixed(9000.0, 200.0)
    op = point(mix, 1.0)
    out = np.array([50.0, 200.0, 800.0])
    levels = chunked_group_decode_s(PERF, mix, op, out, np.full(10, 200.0), replicas=2, group=10.0, ahead_s=1.0)
    assert levels.shape == (9, 3)
    assert (levels.mean(axis=0) > (out - 1.0) * PERF.step_time_s(op.batch, op.kv_tokens, 0.0)).all()
    assert (np.diff(levels.mean(axis=0)) > 0).all()  # longer outputs decode longer


def test_chunk_drain_against_hand_values() -> None:
    mix = TokenMix.fixed(2000.0, 30.0)
    cm = cluster_model(PERF, H200.power_model, mix, SERVICE.slo.limits(), "continuous")
    lane = PERF.step_token_budget - cm.cap.batch
    t_full = PERF.step_time_s(cm.cap.batch, cm.cap.kv_tokens, lane)
    assert chunk_drain_per_s(PERF, mix, cm.cap) == pytest.approx(lane / (t_full * 2000.0))


def test_a_burst_at_a_segment_end_carries_into_the_next() -> None:
    mix = TokenMix.fixed(2000.0, 30.0)
    cm = cluster_model(PERF, H200.power_model, mix, SERVICE.slo.limits(), "continuous")
    p, o = np.full(100, 2000.0), np.full(100, 30.0)
    sub = np.zeros(600)
    sub[-1] = 200.0  # 200 requests in the segment's last 0.1 s
    fluid = FluidService({0: cm}, mix, p, o, SloLimits(), "continuous", 1e12, step_queue=True)
    plan = fluid.plan(200.0 / 60.0, {0: 2}, 60.0, sub)
    fluid.account(plan, 0.0, 60.0, 200.0, sub)
    assert fluid.burst_carry > 100.0  # most of the burst still queued at the segment's end
    wait = fluid.wait_sum
    quiet = np.zeros(600)
    plan = fluid.plan(0.0, {0: 2}, 60.0, quiet)
    fluid.account(plan, 60.0, 120.0, 0.0, quiet)
    assert fluid.burst_carry == 0.0  # drained in the next segment
    assert fluid.wait_sum >= wait
