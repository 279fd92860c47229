"""Mixture-of-experts replicas against a published vendor figure, and their structure.

Vendor figure: TensorRT-LLM "Performance Overview" (NVIDIA/TensorRT-LLM, docs/source/performance/perf-overview.md,
v1.0 tables), Qwen3-235B-A22B, FP8, 8x H200 SXM (TP8), offline maximum throughput (requests queued at an
infinite rate), total output tokens/s: ISL/OSL 1000/1000 -> 23,789; 128/2048 -> 42,821; 2048/128 -> 3,331.
Model shape (Qwen3-235B-A22B config): 235B total, 22B active, 128 routed experts, top-8, 94 layers, 4 KV heads
of 128; FP8 KV cache assumed. The dense efficiencies overstate this MoE about fourfold; ``moe_efficiency = 0.25``
is the one knob, pinned here; longer contexts are overestimated (README, "Mixture of experts").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.agreement import compare, relative_errors
from gigafactory_sim.inference.chunked import batched_point_fn
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.fluid import cluster_model
from gigafactory_sim.inference.perf import SloLimits, TokenMix, capacity

H200 = BUILTIN_GPUS["H200-SXM"]
QWEN3_235B = {
    "name": "qwen3-235b-a22b",
    "params_b": 235,
    "active_params_b": 22,
    "experts": 128,
    "experts_per_token": 8,
    "bytes_per_param": 1,
    "layers": 94,
    "kv_heads": 4,
    "head_dim": 128,
    "kv_bytes_per_value": 1,
}
MIXTRAL_8X7B = {
    "name": "mixtral-8x7b",
    "params_b": 46.7,
    "active_params_b": 12.9,
    "experts": 8,
    "experts_per_token": 2,
    "layers": 32,
    "kv_heads": 8,
    "head_dim": 128,
}


def service(model: dict[str, object], gpus: int, **kw: object) -> InferenceService:
    base: dict[str, object] = dict(
        name="s",
        model=model,
        gpus_per_replica=gpus,
        demand={"kind": "constant", "rate_per_s": 1.0},
        prompt_tokens={"kind": "fixed", "value": 1000},
        output_tokens={"kind": "fixed", "value": 1000},
    )
    base.update(kw)
    return InferenceService.model_validate(base)


@pytest.mark.parametrize(("isl", "osl", "vendor"), [(1000, 1000, 23_789), (128, 2048, 42_821), (2048, 128, 3_331)])
def test_qwen3_235b_on_8xh200_gives_the_vendor_throughput(isl: int, osl: int, vendor: float) -> None:
    perf = service(QWEN3_235B, 8).replica_perf(H200)
    op = capacity(perf, TokenMix.fixed(isl, osl), SloLimits(), H200.power_model, batched_point_fn(perf))
    assert op.rate_per_s * osl == pytest.approx(vendor, rel=0.10)


def test_weights_in_memory_from_the_total_traffic_and_compute_from_the_active() -> None:
    moe = service(QWEN3_235B, 8).replica_perf(H200)
    dense = service(
        {k: v for k, v in QWEN3_235B.items() if k not in ("active_params_b", "experts", "experts_per_token")}, 8
    )
    d = dense.replica_perf(H200)
    assert moe.kv_capacity_tokens == pytest.approx(d.kv_capacity_tokens)  # 235 GB of weights held either way
    assert moe.flops_per_token == pytest.approx(2 * 22e9)
    # batch 1 streams the shared part and 8 of 128 experts: the active weights
    bw = moe.bandwidth_bps * moe.memory_efficiency
    assert moe.weights_read_s(1) * bw == pytest.approx(22e9, rel=1e-9)
    assert moe.weights_read_s(1e6) * bw == pytest.approx(235e9, rel=1e-9)  # a large step touches them all
    assert moe.weights_read_s(1) < moe.weights_read_s(64) < moe.weights_read_s(4096) <= d.weights_time_s


def test_fluid_and_discrete_agree_on_a_moe_replica() -> None:
    svc = service(MIXTRAL_8X7B, 2, slo={"tpot": "150ms"})
    rng = np.random.default_rng(5)
    n = 6000
    prompt = np.clip(np.round(600 * np.exp(0.8 * rng.standard_normal(n))), 1, 8000)
    output = np.clip(np.round(150 * np.exp(0.8 * rng.standard_normal(n))), 1, 2000)
    mix = TokenMix.from_samples(prompt, output)
    cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "continuous")
    times = np.cumsum(rng.exponential(1.0 / (0.5 * 2 * cm.rate_per_s), n))
    err = relative_errors(*compare(cm, 2, times, prompt, output, 300.0))
    assert abs(err["throughput_tokens_per_s"]) < 0.05
    assert abs(err["energy_j_per_token"]) < 0.05
    assert abs(err["mean_e2e_s"]) < 0.15


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        (
            "{params_b: 8, active_params_b: 9, experts: 8, experts_per_token: 2, kv_bytes_per_token: 1000}",
            "above params_b",
        ),
        ("{params_b: 8, active_params_b: 2, kv_bytes_per_token: 1000}", "needs active_params_b, experts"),
        (
            "{params_b: 8, active_params_b: 2, experts: 2, experts_per_token: 4, kv_bytes_per_token: 1000}",
            "above experts",
        ),
    ],
)
def test_bad_moe_input_names_the_model_field(model: str, needle: str) -> None:
    text = f"""
name: bad
horizon: 1h
facility:
  clusters: [{{name: h200, gpu: H200-SXM, nodes: 1}}]
workload:
  inference:
    - name: svc
      model: {model}
      demand: {{kind: constant, rate_per_s: 1}}
      prompt_tokens: {{kind: fixed, value: 500}}
      output_tokens: {{kind: fixed, value: 200}}
"""
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(text, "bad.yaml", base_dir=Path.cwd())
    probs = [(p.field, p.message) for p in exc.value.problems]
    assert any(f.startswith("workload.inference.0.model") and needle in m for f, m in probs), probs
