"""Fluid against discrete on real and synthetic request streams (the agreement table in README.md).

    PYTHONPATH=. python benchmarks/fluid_vs_discrete.py [--chunked]

Llama-3-8B shape on one H200 per replica, 2 replicas, 10 minutes; each stream scaled to a share of the replicas'
SLO capacity. Prints one row per stream and load: relative error of fluid vs discrete per figure.
"""

from __future__ import annotations

import sys
from importlib import resources

import numpy as np

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.agreement import compare, relative_errors
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.fluid import cluster_model
from gigafactory_sim.inference.perf import TokenMix
from gigafactory_sim.inference.trace import read_trace_file

H200 = BUILTIN_GPUS["H200-SXM"]
LLAMA3_8B = {"params_b": 8.03, "layers": 32, "kv_heads": 8, "head_dim": 128}
HORIZON_S = 600.0
REPLICAS = 2


def azure(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = resources.files("gigafactory_sim") / "data" / f"azure_llm_2023_{kind}_sample.csv.gz"
    with resources.as_file(path) as p:
        return read_trace_file(p, "azure", str(p), "trace")


def synthetic(kind: str, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``long_burst``: prompts log-normal median 8k, groups of 10 at one instant; ``heavy``: Pareto-tailed
    prompts (median ~500, tail index 1.2, capped at 32k), Poisson arrivals. One request per second."""
    rng = np.random.default_rng(seed)
    n = 20_000
    if kind == "long_burst":
        groups = np.cumsum(rng.exponential(10.0, n // 10))
        times = np.repeat(groups, 10)
        prompt = np.clip(np.round(8000 * np.exp(0.5 * rng.standard_normal(n))), 16, 32000)
    else:
        times = np.cumsum(rng.exponential(1.0, n))
        prompt = np.clip(np.round(500 * (rng.pareto(1.2, n) + 1) / 1.78), 1, 32000)
    output = np.clip(np.round(150 * np.exp(0.8 * rng.standard_normal(n))), 1, 2000)
    return times - times[0], prompt, output


def main(chunked: bool) -> None:
    sched = {"chunked_prefill": True, "max_num_batched_tokens": 8192} if chunked else {}
    svc = InferenceService.model_validate(
        dict(
            name="s",
            model=LLAMA3_8B,
            demand={"kind": "constant", "rate_per_s": 1.0},
            prompt_tokens={"kind": "fixed", "value": 1},
            output_tokens={"kind": "fixed", "value": 1},
            slo={"tpot": "150ms"},
            scheduling=sched,
        )
    )
    streams = {"azure-code": azure("code"), "azure-conv": azure("conv")}
    streams["long-burst"] = synthetic("long_burst")
    streams["heavy-tail"] = synthetic("heavy")
    keys = ["mean_ttft_s", "mean_e2e_s", "p90_e2e_s", "throughput_tokens_per_s", "energy_j_per_token"]
    print("stream load " + " ".join(keys))
    for name, (t, p, o) in streams.items():
        mix = TokenMix.from_samples(p, o)
        cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "continuous")
        base_rate = len(t) / (t[-1] - t[0])
        for load in (0.3, 0.6, 0.8):
            scale = load * REPLICAS * cm.rate_per_s / base_rate
            f, d = compare(cm, REPLICAS, t / scale, p, o, HORIZON_S)
            err = relative_errors(f, d)
            print(f"{name} {load:.1f} " + " ".join(f"{100 * err[k]:+.1f}%" for k in keys), flush=True)
            print("   fluid", f, "\n   disc ", d, flush=True)


if __name__ == "__main__":
    main("--chunked" in sys.argv)
