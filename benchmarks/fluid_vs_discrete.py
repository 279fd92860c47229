"""Fluid against discrete on real and synthetic request streams (the agreement table in README.md).

    PYTHONPATH=. python benchmarks/fluid_vs_discrete.py [--chunked] [--step-queue]

Llama-3-8B shape on one H200 per replica, 2 replicas, 10 minutes; each stream scaled to a share of the replicas'
SLO capacity. Prints one row per stream and load: relative error of fluid vs discrete per figure.
"""

from __future__ import annotations

import sys

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.agreement import azure_sample, compare, relative_errors, synthetic_stream
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.fluid import cluster_model
from gigafactory_sim.inference.perf import TokenMix

H200 = BUILTIN_GPUS["H200-SXM"]
LLAMA3_8B = {"params_b": 8.03, "layers": 32, "kv_heads": 8, "head_dim": 128}
HORIZON_S = 600.0
REPLICAS = 2


def main(chunked: bool, step_queue: bool) -> None:
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
    streams = {"azure-code": azure_sample("code"), "azure-conv": azure_sample("conv")}
    streams["long-burst"] = synthetic_stream("long_burst")
    streams["heavy-tail"] = synthetic_stream("heavy")
    keys = ["mean_ttft_s", "mean_e2e_s", "p90_e2e_s", "throughput_tokens_per_s", "energy_j_per_token"]
    print("stream load " + " ".join(keys))
    for name, (t, p, o) in streams.items():
        mix = TokenMix.from_samples(p, o)
        cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "continuous")
        base_rate = len(t) / (t[-1] - t[0])
        for load in (0.3, 0.6, 0.8):
            scale = load * REPLICAS * cm.rate_per_s / base_rate
            f, d = compare(cm, REPLICAS, t / scale, p, o, HORIZON_S, step_queue=step_queue)
            err = relative_errors(f, d)
            print(f"{name} {load:.1f} " + " ".join(f"{100 * err[k]:+.1f}%" for k in keys), flush=True)
            print("   fluid", f, "\n   disc ", d, flush=True)


if __name__ == "__main__":
    main("--chunked" in sys.argv, "--step-queue" in sys.argv)
