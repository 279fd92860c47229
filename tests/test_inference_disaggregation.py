"""Prefill/decode disaggregation, steady-state sizing (:mod:`gigafactory_sim.inference.disaggregation`).

Llama-3-70B FP8 on 8x H200 replicas, prompts log-normal median 8k (sigma 0.5), outputs median 300, TTFT 5 s and
TPOT 50 ms at p99 prompt length. Both plans meet the objectives; at 20 and 50 requests/s they need the same GPUs
(32 and 72): in this model colocated steps pay prefill in the mean step, which the TPOT objective reads, so a
separate decode pool saves no GPUs (README, "Prefill/decode disaggregation").
"""

from __future__ import annotations

import numpy as np
import pytest

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.disaggregation import plan_colocated, plan_split
from gigafactory_sim.inference.perf import TokenMix

H200 = BUILTIN_GPUS["H200-SXM"]
LLAMA3_70B = {
    "params_b": 70.6,
    "bytes_per_param": 1,
    "layers": 80,
    "kv_heads": 8,
    "head_dim": 128,
    "kv_bytes_per_value": 1,
}


def setup() -> tuple[InferenceService, TokenMix]:
    svc = InferenceService.model_validate(
        dict(
            name="s",
            model=LLAMA3_70B,
            gpus_per_replica=8,
            demand={"kind": "constant", "rate_per_s": 1},
            prompt_tokens={"kind": "fixed", "value": 1},
            output_tokens={"kind": "fixed", "value": 1},
            slo={"ttft": "5s", "tpot": "50ms"},
        )
    )
    rng = np.random.default_rng(1)
    prompt = np.clip(np.round(8000 * np.exp(0.5 * rng.standard_normal(20_000))), 16, 32_000)
    output = np.clip(np.round(300 * np.exp(0.8 * rng.standard_normal(20_000))), 1, 4000)
    return svc, TokenMix.from_samples(prompt, output, 0.99)


@pytest.mark.parametrize(("rate", "gpus"), [(20.0, 32), (50.0, 72)])
def test_split_pools_meet_the_objectives_with_as_many_gpus_as_colocated(rate: float, gpus: int) -> None:
    svc, mix = setup()
    perf, slo, power = svc.replica_perf(H200), svc.slo.limits(), H200.power_model
    col = plan_colocated(perf, mix, slo, power, rate)
    split = plan_split(perf, perf, mix, slo, power, rate)
    assert split.prefill.ttft_s <= slo.ttft_s and split.decode.tpot_s <= slo.tpot_s
    assert col.ttft_s <= slo.ttft_s and col.tpot_s <= slo.tpot_s
    assert (col.gpus, split.gpus) == (gpus, gpus)
    assert split.decode.tpot_s < col.tpot_s  # decode steps without prefill in them are shorter
    # a prefill replica is busy c_p x E[I] per request; the pool runs below saturation
    assert rate * perf.c_prefill_s * mix.prompt_mean < split.prefill.replicas


def test_kv_transfer_time_from_kv_bytes_and_link() -> None:
    svc, mix = setup()
    perf = svc.replica_perf(H200)
    split = plan_split(perf, perf, mix, svc.slo.limits(), H200.power_model, 20.0, link_gbps=100.0)
    assert split.transfer_s == pytest.approx(mix.prompt_q * perf.kv_bytes_per_token * 8 / 100e9)
