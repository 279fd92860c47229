"""Chunked prefill (``scheduling: {chunked_prefill: true, max_num_batched_tokens: B}``).

Discrete: no step carries more than ``B`` tokens (decodes + prefill chunks), a long prompt no longer stalls the
decodes beside it, and a prompt of ``I`` tokens on an idle replica takes ``ceil(I / B)`` steps to its first token.
Fluid: hiding prefill under decode's memory time raises a replica's capacity, and the fluid and discrete
fidelities agree on a Poisson stream. Off by default (the golden outputs pin today's behaviour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import simpy

from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.agreement import compare, relative_errors
from gigafactory_sim.inference.checks import service_token_mix
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.discrete import DiscreteService
from gigafactory_sim.inference.fluid import ClusterModel, cluster_model
from gigafactory_sim.inference.perf import ReplicaPerf, TokenMix
from gigafactory_sim.power.models import GpuPowerModel

H200 = BUILTIN_GPUS["H200-SXM"]
LLAMA3_8B = {"params_b": 8.03, "layers": 32, "kv_heads": 8, "head_dim": 128}
BUDGET = 2048


def make(chunked: bool, **kw: object) -> InferenceService:
    base: dict[str, object] = dict(
        name="s",
        model=LLAMA3_8B,
        demand={"kind": "constant", "rate_per_s": 1.0},
        prompt_tokens={"kind": "lognormal", "median": 400, "sigma": 0.8, "max": 4000},
        output_tokens={"kind": "lognormal", "median": 150, "sigma": 0.8, "max": 2000},
        slo={"ttft": "2s", "tpot": "100ms"},
        scheduling={"chunked_prefill": chunked, "max_num_batched_tokens": BUDGET},
    )
    base.update(kw)
    return InferenceService.model_validate(base)


@dataclass(frozen=True)
class RecordingPerf(ReplicaPerf):
    """A replica that records (decoding requests, prefill tokens, step time) of every step."""

    steps: list[tuple[float, float, float]] = field(default_factory=list, compare=False)

    def step_gpu_power_w(
        self, model: GpuPowerModel, n_decode: float, ctx_tokens: float, prefill_tokens: float
    ) -> float:
        self.steps.append((n_decode, prefill_tokens, self.step_time_s(n_decode, ctx_tokens, prefill_tokens)))
        return super().step_gpu_power_w(model, n_decode, ctx_tokens, prefill_tokens)


def run_discrete(
    chunked: bool, times: list[float], prompt: list[float], output: list[float]
) -> tuple[np.ndarray, RecordingPerf]:
    svc = make(chunked)
    mix = service_token_mix(svc)
    cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "continuous")
    perf = RecordingPerf(**{k: getattr(cm.perf, k) for k in ReplicaPerf.__dataclass_fields__})
    env = simpy.Environment()
    disc = DiscreteService(env, {0: ClusterModel(perf, cm.power, cm.cap, 64)}, mix, "continuous", 1e9)
    disc.feed(np.array(times), np.array(prompt), np.array(output))
    disc.add_replica(0)
    env.run()
    return disc.records(), perf


def test_off_by_default() -> None:
    svc = InferenceService.model_validate(
        dict(
            name="s",
            model=LLAMA3_8B,
            demand={"kind": "constant", "rate_per_s": 1.0},
            prompt_tokens={"kind": "fixed", "value": 100},
            output_tokens={"kind": "fixed", "value": 100},
        )
    )
    perf = svc.replica_perf(H200)
    assert not perf.chunked and perf.step_token_budget == math.inf


def test_no_step_carries_more_than_the_budget_and_decodes_are_not_stalled() -> None:
    # 20 short requests decoding, then one 30k-token prompt arrives
    times = [0.0] * 20 + [0.05]
    prompt = [100.0] * 20 + [30_000.0]
    output = [400.0] * 20 + [10.0]
    rec_c, perf_c = run_discrete(True, times, prompt, output)
    _, perf_p = run_discrete(False, times, prompt, output)
    assert all(n + p <= BUDGET for n, p, _ in perf_c.steps)
    longest_c = max(t for _, _, t in perf_c.steps)
    longest_p = max(t for _, _, t in perf_p.steps)
    fused = perf_c.step_overhead_s + perf_c.c_decode_s * 20 + perf_c.c_prefill_s * (BUDGET - 20)
    assert longest_c == pytest.approx(fused, rel=1e-9)  # one fused pass: 20 decodes + a 2,028-token chunk
    assert longest_p > 10 * longest_c  # prefill-first: one step prefills the whole 30k prompt
    # the long prompt's first token comes after ceil(30000 / (2048 - 20)) prefill steps
    long_steps = [s for s in perf_c.steps if s[1] > 0 and s[0] == 20]
    assert len(long_steps) == math.ceil(30_000 / (BUDGET - 20))
    short_c = rec_c[rec_c[:, 3] == 100.0]
    assert len(short_c) == 20 and len(rec_c) == 21


def test_idle_replica_first_token_after_ceil_prompt_over_budget_steps() -> None:
    rec, perf = run_discrete(True, [0.0], [5000.0], [1.0])
    assert len(perf.steps) == math.ceil(5000 / BUDGET)
    assert rec[0, 1] == pytest.approx(sum(t for _, _, t in perf.steps), rel=1e-12)


def test_chunked_capacity_is_higher_and_its_step_shorter() -> None:
    # a TPOT objective that binds: prefill hidden under the decodes' memory time keeps steps short
    on = make(True, scheduling={"chunked_prefill": True, "max_num_batched_tokens": 8192}, slo={"tpot": "25ms"})
    off = make(False, slo={"tpot": "25ms"})
    mix = service_token_mix(on)
    cm_on = cluster_model(on.replica_perf(H200), H200.power_model, mix, on.slo.limits(), "continuous")
    cm_off = cluster_model(off.replica_perf(H200), H200.power_model, mix, off.slo.limits(), "continuous")
    assert cm_on.rate_per_s > cm_off.rate_per_s
    lam = 0.5 * cm_off.rate_per_s
    from gigafactory_sim.inference.chunked import chunked_operating_point
    from gigafactory_sim.inference.perf import operating_point

    assert (
        chunked_operating_point(cm_on.perf, mix, lam, cm_on.power).step_s
        < operating_point(cm_off.perf, mix, lam, cm_off.power).step_s
    )


@pytest.mark.parametrize("load", [0.3, 0.6])
def test_fluid_and_discrete_agree_with_chunked_prefill(load: float) -> None:
    svc = make(True, slo={"tpot": "150ms"})
    assert svc.prompt_tokens is not None and svc.output_tokens is not None
    rng = np.random.default_rng(11)
    n = 6000
    prompt, output = svc.prompt_tokens.sample(rng, n), svc.output_tokens.sample(rng, n)
    mix = TokenMix.from_samples(prompt, output)
    cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "continuous")
    lam = load * 2 * cm.rate_per_s
    times = np.cumsum(rng.exponential(1.0 / lam, n))
    f, d = compare(cm, 2, times, prompt, output, 240.0)
    err = relative_errors(f, d)
    assert abs(err["throughput_tokens_per_s"]) < 0.05
    assert abs(err["energy_j_per_token"]) < 0.05
    assert abs(err["mean_e2e_s"]) < 0.15


def test_bad_budget_is_an_input_error() -> None:
    text = """
name: bad
horizon: 1h
facility:
  clusters: [{name: h200, gpu: H200-SXM, nodes: 1}]
workload:
  inference:
    - name: svc
      model: {params_b: 8, layers: 32, kv_heads: 8, head_dim: 128}
      demand: {kind: constant, rate_per_s: 1}
      prompt_tokens: {kind: fixed, value: 500}
      output_tokens: {kind: fixed, value: 200}
      scheduling: {chunked_prefill: true, max_num_batched_tokens: 0}
"""
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(text, "bad.yaml", base_dir=Path.cwd())
    fields = [p.field for p in exc.value.problems]
    assert any("scheduling.max_num_batched_tokens" in f for f in fields), fields
