"""Prefix caching (``prefix_cache: {hit_rate: h, cache_share: s}``): prefill work falls by ``h`` exactly, in both
fidelities and with chunked prefill; the cache keeps ``s`` of the KV space; a hit rate outside [0, 1] is an input
error naming its field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import simpy

from gigafactory_sim.api import run
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.discrete import DiscreteService
from gigafactory_sim.inference.fluid import ClusterModel, cluster_model
from gigafactory_sim.inference.perf import ReplicaPerf, TokenMix, operating_point
from gigafactory_sim.inference.prefix import computed_mix
from gigafactory_sim.power.models import GpuPowerModel

H200 = BUILTIN_GPUS["H200-SXM"]
LLAMA3_8B = {"params_b": 8.03, "layers": 32, "kv_heads": 8, "head_dim": 128}


def make(hit: float | None, chunked: bool = False) -> InferenceService:
    return InferenceService.model_validate(
        dict(
            name="s",
            model=LLAMA3_8B,
            demand={"kind": "constant", "rate_per_s": 1.0},
            prompt_tokens={"kind": "lognormal", "median": 800, "sigma": 0.8, "max": 8000},
            output_tokens={"kind": "lognormal", "median": 100, "sigma": 0.8, "max": 1000},
            slo={"tpot": "150ms"},
            prefix_cache=None if hit is None else {"hit_rate": hit},
            scheduling={"chunked_prefill": chunked, "max_num_batched_tokens": 2048},
        )
    )


@dataclass(frozen=True)
class RecordingPerf(ReplicaPerf):
    steps: list[float] = field(default_factory=list, compare=False)

    def step_gpu_power_w(
        self, model: GpuPowerModel, n_decode: float, ctx_tokens: float, prefill_tokens: float
    ) -> float:
        self.steps.append(prefill_tokens)
        return super().step_gpu_power_w(model, n_decode, ctx_tokens, prefill_tokens)


def prefill_tokens(hit: float | None, chunked: bool) -> tuple[float, float]:
    svc = make(hit, chunked)
    rng = np.random.default_rng(3)
    n = 300
    assert svc.prompt_tokens is not None and svc.output_tokens is not None
    prompt, output = svc.prompt_tokens.sample(rng, n), svc.output_tokens.sample(rng, n)
    mix = TokenMix.from_samples(prompt, output)
    cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "continuous")
    perf = RecordingPerf(**{k: getattr(cm.perf, k) for k in ReplicaPerf.__dataclass_fields__})
    env = simpy.Environment()
    disc = DiscreteService(env, {0: ClusterModel(perf, cm.power, cm.cap, 64)}, mix, "continuous", 1e9)
    disc.feed(np.sort(rng.uniform(0, 30, n)), prompt, output)
    disc.add_replica(0)
    env.run()
    return sum(perf.steps), float(prompt.sum())


@pytest.mark.parametrize("chunked", [False, True])
def test_prefill_work_falls_by_the_hit_rate_exactly(chunked: bool) -> None:
    full, prompts = prefill_tokens(None, chunked)
    cached, _ = prefill_tokens(0.4, chunked)
    assert full == pytest.approx(prompts, rel=1e-12)
    assert cached == pytest.approx(0.6 * prompts, rel=1e-12)


def test_fluid_prefill_falls_by_the_hit_rate_and_the_cache_takes_kv_space() -> None:
    svc, plain = make(0.25), make(None)
    mix = TokenMix.from_samples(np.array([100.0, 900.0, 2000.0]), np.array([50.0, 80.0, 10.0]))
    seen = computed_mix(mix, 0.25)
    assert seen.prompt_mean == pytest.approx(0.75 * mix.prompt_mean)
    assert seen.prompt_output_mean == mix.prompt_output_mean  # attention still reads the whole context
    perf = svc.replica_perf(H200)
    assert perf.kv_capacity_tokens == pytest.approx(0.9 * plain.replica_perf(H200).kv_capacity_tokens)
    # prefill time per request in the mean field: c_p x (1 - h) x E[I]
    lam = 5.0
    op_c = operating_point(perf, seen, lam, H200.power_model)
    op_0 = operating_point(perf, mix, lam, H200.power_model)
    assert op_c.ttft_s - 1.5 * op_c.step_s == pytest.approx(0.75 * (op_0.ttft_s - 1.5 * op_0.step_s), rel=1e-12)


SCENARIO = """
name: prefix
seed: 1
horizon: 10m
facility:
  clusters: [{{name: h200, gpu: H200-SXM, nodes: 1}}]
workload:
  inference:
    - name: svc
      model: {{params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}}
      fidelity: {fidelity}
      demand: {{kind: constant, rate_per_s: 4}}
      prompt_tokens: {{kind: fixed, value: 2000}}
      output_tokens: {{kind: fixed, value: 100}}
      slo: {{ttft: 2s, tpot: 150ms}}
      autoscaler: {{min_replicas: 1, max_replicas: 1}}
      prefix_cache: {{hit_rate: {hit}}}
report: {{interval: 5m}}
"""


@pytest.mark.parametrize("fidelity", ["fluid", "discrete"])
def test_cached_prompts_cost_less_energy_and_are_still_counted(fidelity: str) -> None:
    out = {}
    for hit in (0.0, 0.8):
        r = run(parse_scenario_text(SCENARIO.format(fidelity=fidelity, hit=hit), "prefix.yaml"))
        out[hit] = r.summary["inference"]["services"]["svc"]
    per_req = {h: s["tokens"]["prompt"] / max(s["requests"]["served"], 1) for h, s in out.items()}
    assert per_req[0.8] == pytest.approx(2000.0) and per_req[0.0] == pytest.approx(2000.0)
    assert out[0.8]["energy"]["gpu_kwh"] < out[0.0]["energy"]["gpu_kwh"]
    assert out[0.8]["latency"]["mean_ttft_s"] < out[0.0]["latency"]["mean_ttft_s"]


@pytest.mark.parametrize("hit", ["1.5", "-0.1"])
def test_hit_rate_outside_zero_one_is_an_input_error(hit: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(SCENARIO.format(fidelity="fluid", hit=hit), "bad.yaml", base_dir=Path.cwd())
    fields = [p.field for p in exc.value.problems]
    assert "workload.inference.0.prefix_cache.hit_rate" in fields, fields
