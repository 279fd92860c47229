"""Fluid against discrete under bursts and long prompts (the default fluid, ``step_queue: true``, :mod:`.bursts`).

Targets (issue #16): mean TTFT, mean e2e and p90 e2e within 15 %, throughput and energy per output token within
5 %. Each stream at 30, 60 and 80 % of the replicas' SLO capacity (Llama-3-8B shape, one H200 per replica, 2
replicas, 10 minutes). Cases that miss a target are strict xfails whose reason gives the measured errors;
tolerances are the targets, not widened.
"""

from __future__ import annotations

import numpy as np
import pytest

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.agreement import LOADS, STREAMS, missed_targets, reference_service, stream_errors
from gigafactory_sim.inference.bursts import backlog_integral, served_per_cell, step_queue_ttft_s
from gigafactory_sim.inference.fluid import cluster_model
from gigafactory_sim.inference.perf import TokenMix, operating_point

H200 = BUILTIN_GPUS["H200-SXM"]
SERVICE = reference_service(chunked=False)


def check(err: dict[str, float]) -> None:
    missed = missed_targets(err)
    assert not missed, f"outside the targets (%): {missed}"


MISSES: dict[tuple[str, float], str] = {}  # (stream, load): the measured errors (%) that miss a target
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
def test_fluid_agrees_with_discrete(name: str, load: float) -> None:
    check(stream_errors(SERVICE, STREAMS[name](), load))


def test_backlog_integral_against_hand_values() -> None:
    # 10 requests arriving uniformly in 1 s, served at 5/s: backlog rises to 5, then drains in 1 s
    assert backlog_integral(np.array([10.0, 0.0, 0.0]), 1.0, 5.0, 0.0) == pytest.approx(5.0)
    assert backlog_integral(np.array([0.0, 0.0]), 1.0, 5.0, 10.0) == pytest.approx(10.0)
    assert backlog_integral(np.array([2.0, 2.0]), 1.0, 5.0, 0.0) == 0.0
    served = served_per_cell(np.array([10.0, 0.0, 0.0]), 1.0, 5.0, 0.0)
    assert served.tolist() == pytest.approx([5.0, 5.0, 0.0])


def test_step_queue_ttft_is_the_mean_field_one_unloaded() -> None:
    mix = TokenMix.fixed(1000.0, 100.0)
    cm = cluster_model(SERVICE.replica_perf(H200), H200.power_model, mix, SERVICE.slo.limits(), "continuous")
    op = operating_point(cm.perf, mix, 1e-9, cm.power)
    got = step_queue_ttft_s(cm.perf, mix, op, np.array([1000.0]), replicas=1)[0]
    assert got == pytest.approx(op.ttft_s, rel=1e-6)  # 1.5 steps + c_p x I


ENGINE = """
name: bursts
seed: 2
horizon: 20m
facility:
  clusters:
    - {{name: h200, gpu: H200-SXM, nodes: 2}}
workload:
  inference:
    - name: code
      model: {{params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}}
      fidelity: {fidelity}
      demand: {{kind: trace, path: "builtin:azure_llm_2023_code_sample.csv.gz", format: azure, rate_scale: 3}}
      slo: {{ttft: 5s, tpot: 150ms}}
      autoscaler: {{min_replicas: 2, max_replicas: 2}}
      fluid: {{step_queue: {step_queue}, resolution: {resolution}}}
      scheduling: {{chunked_prefill: {chunked}}}
report: {{interval: 5m}}
"""


@pytest.mark.parametrize("chunked", [False, True])
def test_step_queue_and_chunked_prefill_in_the_engine(chunked: bool) -> None:
    from gigafactory_sim.api import run
    from gigafactory_sim.config.loader import parse_scenario_text

    out = {}
    for fidelity, sq in (("fluid", "false"), ("fluid", "true"), ("discrete", "false")):
        text = ENGINE.format(fidelity=fidelity, step_queue=sq, resolution="100ms", chunked=str(chunked).lower())
        svc = run(parse_scenario_text(text, "bursts.yaml")).summary["inference"]["services"]["code"]
        out[(fidelity, sq)] = svc["latency"]["mean_ttft_s"]
    plain, burst, disc = out[("fluid", "false")], out[("fluid", "true")], out[("discrete", "false")]
    if not chunked:  # the burst-aware fluid TTFT is nearer the discrete one than the mean field's
        assert abs(burst - disc) < abs(plain - disc)
    assert burst >= plain


def test_bad_resolution_is_an_input_error() -> None:
    from pathlib import Path

    from gigafactory_sim.config.loader import parse_scenario_text
    from gigafactory_sim.errors import ScenarioError

    text = ENGINE.format(fidelity="fluid", step_queue="true", resolution="0s", chunked="false")
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(text, "bad.yaml", base_dir=Path.cwd())
    assert any("fluid" in p.field for p in exc.value.problems), [p.field for p in exc.value.problems]


def test_groups_at_one_instant_against_hand_values() -> None:
    from gigafactory_sim.inference.bursts import poisson_backlog_wait_s, size_biased_group

    assert size_biased_group(np.array([0.0, 1.0, 2.0])) == 1.0
    # groups of 1 and 3: E[G^2] / E[G] = (1 + 9) / 4
    assert size_biased_group(np.array([0.0, 1.0, 1.0, 1.0])) == pytest.approx(2.5)
    assert poisson_backlog_wait_s(3.0, 5.0, 2.0) == pytest.approx(0.5)
    assert poisson_backlog_wait_s(5.0, 5.0) == 0.0


def test_group_terms_vanish_without_ties() -> None:
    from gigafactory_sim.inference.bursts import group_decode_step_s

    mix = TokenMix.fixed(1000.0, 100.0)
    cm = cluster_model(SERVICE.replica_perf(H200), H200.power_model, mix, SERVICE.slo.limits(), "continuous")
    op = operating_point(cm.perf, mix, 2.0, cm.power)
    assert group_decode_step_s(cm.perf, mix, op, 1.0, np.full(10, 100.0)) == pytest.approx(op.step_s, rel=1e-6)
    one = step_queue_ttft_s(cm.perf, mix, op, np.array([1000.0]), 1, group=1.0)[0]
    ten = step_queue_ttft_s(cm.perf, mix, op, np.array([1000.0]), 1, group=10.0)[0]
    assert ten - one >= 9 * 1000.0 * cm.perf.c_prefill_s  # the nine mates are prefilled in the same step


def test_wait_levels_stall_spread_and_max_against_hand_values() -> None:
    from gigafactory_sim.inference.bursts import (
        cell_waits_s,
        max_mean,
        poisson_levels,
        prefill_stall_spread,
        wait_levels,
    )

    # 10 arriving in the first of three 1-s cells, served at 5/s: they wait a mean 5 / 2 / 5 s = 0.5 s in it
    waits = cell_waits_s(np.array([10.0, 0.0, 0.0]), 1.0, 5.0, 0.0)
    assert waits[0] == pytest.approx(0.5)
    levels = wait_levels(np.array([0.0, 1.0, 3.0]), np.array([2.0, 1.0, 1.0]))
    assert sum(p for p, _ in levels) == pytest.approx(1.0)
    assert sum(p * w for p, w in levels) == pytest.approx(1.0)  # (2 x 0 + 1 + 3) / 4
    assert max_mean(np.array([1.0, 3.0]), 1) == pytest.approx(2.0)
    assert max_mean(np.array([1.0, 3.0]), 2) == pytest.approx(2.5)  # 1 x 1/4 + 3 x 3/4
    assert poisson_levels(np.array([0.0]))[:, 0].tolist() == [0.0] * 9
    assert poisson_levels(np.array([400.0])).mean() == pytest.approx(400.0, rel=1e-9)
    mix = TokenMix.fixed(8000.0, 100.0)
    cm = cluster_model(SERVICE.replica_perf(H200), H200.power_model, mix, SERVICE.slo.limits(), "continuous")
    op = operating_point(cm.perf, mix, 1.0, cm.power)
    spread = prefill_stall_spread(cm.perf, mix, op, op.step_s, 0.5, np.array([1000.0]), group=1.0)
    # many stalls: the spread keeps the mean (before + step x O) to the levels' discretisation
    assert spread.mean() == pytest.approx(0.5 + op.step_s * 1000.0, rel=0.02)


def test_first_token_stalls_against_hand_values() -> None:
    from gigafactory_sim.inference.bursts import first_token_stalls, prefill_stall_spread
    from gigafactory_sim.inference.queueing import erlang_c

    mix = TokenMix.fixed(8000.0, 100.0)
    cm = cluster_model(SERVICE.replica_perf(H200), H200.power_model, mix, SERVICE.slo.limits(), "continuous")
    op = operating_point(cm.perf, mix, 1.0, cm.power)
    rho = op.rate_per_s * cm.perf.c_prefill_s * 8000.0
    # one replica: every group arriving during its 2-s prefill step (1 request a second, groups of 10)
    assert first_token_stalls(cm.perf, mix, op, 2.0, 1, 10.0) == pytest.approx(2.0 * 1.0 / 10.0)
    # two: only those that find both prefilling (Erlang C of 2 rho, C / rho of its own prefill), half of them
    two = first_token_stalls(cm.perf, mix, op, 2.0, 2, 10.0)
    assert two == pytest.approx(2.0 * 1.0 / 10.0 * erlang_c(2, 2 * rho) / rho)
    assert two < first_token_stalls(cm.perf, mix, op, 2.0, 1, 10.0)
    assert first_token_stalls(cm.perf, mix, op, 0.0, 2, 10.0) == 0.0
    idle = operating_point(cm.perf, mix, 0.0, cm.power)
    assert first_token_stalls(cm.perf, mix, idle, 2.0, 2, 10.0) == 0.0
    # the stalls add their mean to those that decode, none to single-token requests
    out = np.array([1.0, 101.0])
    base = prefill_stall_spread(cm.perf, mix, op, op.step_s, 0.5, out, group=10.0)
    more = prefill_stall_spread(cm.perf, mix, op, op.step_s, 0.5, out, group=10.0, first_stalls=3.0)
    stall = cm.perf.c_prefill_s * 10.0 * 8000.0
    assert more[:, 0] == pytest.approx(base[:, 0])
    assert more[:, 1].mean() - base[:, 1].mean() == pytest.approx(3.0 * stall, rel=0.05)
