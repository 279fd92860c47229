"""The two fidelities agree, and the discrete model matches queueing theory (Erlang-C for M/M/c).

Fluid vs discrete: one mid-size service (Llama-3-8B shape on one H200 per replica, log-normal prompts and
outputs,
2 replicas at 60 % of their SLO capacity, 5 minutes of Poisson arrivals): throughput, utilisation (mean
decoding
batch) and mean end-to-end latency agree within 10 %.
M/M/c: ``batching: none``, no prompt, exponential output length -> exponential service; 3 replicas at load
0.7.
"""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.checks import service_token_mix
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.discrete import DiscreteService
from gigafactory_sim.inference.fluid import FluidService, cluster_model
from gigafactory_sim.inference.queueing import allen_cunneen_wait_s, erlang_c, mmc_wait_s
from gigafactory_sim.inference.tokens import mix_samples

H200 = BUILTIN_GPUS["H200-SXM"]
LLAMA3_8B = {"params_b": 8.03, "layers": 32, "kv_heads": 8, "head_dim": 128}


def make(**kw: object) -> InferenceService:
    base: dict[str, object] = dict(name="s", model=LLAMA3_8B, demand={"kind": "constant", "rate_per_s": 1.0})
    base.update(kw)
    return InferenceService.model_validate(base)


def test_fluid_and_discrete_agree_within_10_percent() -> None:
    svc = make(
        prompt_tokens={"kind": "lognormal", "median": 400, "sigma": 0.8, "max": 4000},
        output_tokens={"kind": "lognormal", "median": 150, "sigma": 0.8, "max": 2000},
        slo={"ttft": "2s", "tpot": "100ms"},
    )
    assert svc.prompt_tokens is not None and svc.output_tokens is not None
    mix = service_token_mix(svc)
    cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "continuous")
    replicas, horizon, warmup = 2, 300.0, 30.0
    lam = 0.6 * replicas * cm.rate_per_s

    fluid = FluidService(
        {0: cm},
        mix,
        mix_samples(svc.prompt_tokens, 1),
        mix_samples(svc.output_tokens, 2),
        svc.slo.limits(),
        "continuous",
        60.0,
    )
    plan = fluid.plan(lam, {0: replicas}, horizon)
    fluid.account(plan, 0.0, horizon, lam * horizon)
    f = fluid.summary()

    env = simpy.Environment()
    rng = np.random.default_rng(7)
    n = int(rng.poisson(lam * horizon))
    times = np.sort(rng.uniform(0.0, horizon, n))
    disc = DiscreteService(env, {0: cm}, mix, "continuous", 60.0)
    disc.feed(times, svc.prompt_tokens.sample(rng, n), svc.output_tokens.sample(rng, n))
    for _ in range(replicas):
        disc.add_replica(0)
    env.run(until=horizon)
    rec = disc.records()
    steady = rec[rec[:, 0] > warmup]
    d_throughput = len(rec) / horizon
    d_batch = disc.batch_time / horizon / replicas
    d_e2e = float((steady[:, 2] - steady[:, 0]).mean())

    assert d_throughput == pytest.approx(fluid.served / horizon, rel=0.10)
    assert d_throughput / (replicas * cm.rate_per_s) == pytest.approx(plan.utilisation, rel=0.10)
    assert d_batch == pytest.approx(plan.points[0].batch, rel=0.10)
    assert d_e2e == pytest.approx(f["mean_e2e_s"], rel=0.10)


def test_discrete_matches_erlang_c_for_mmc() -> None:
    svc = make(
        batching="none",
        prompt_tokens={"kind": "fixed", "value": 0},
        output_tokens={"kind": "exponential", "mean": 100},
        queue_timeout="30d",
    )
    mix = service_token_mix(svc)
    cm = cluster_model(svc.replica_perf(H200), H200.power_model, mix, svc.slo.limits(), "none")
    c, rho = 3, 0.7
    s = cm.cap.e2e_s  # mean service time: 100 tokens x one batch-1 step
    lam = rho * c / s
    waits, waited = [], []
    for seed in range(4):
        env = simpy.Environment()
        rng = np.random.default_rng(seed)
        horizon = 60_000 / lam
        n = int(rng.poisson(lam * horizon))
        disc = DiscreteService(env, {0: cm}, mix, "none", 1e12)
        disc.feed(np.sort(rng.uniform(0.0, horizon, n)), np.zeros(n), rng.exponential(100.0, n))
        for _ in range(c):
            disc.add_replica(0)
        env.run()
        rec = disc.records()
        w = rec[:, 1] - rec[:, 0] - disc.t1[0]  # first token = start of service + one step
        waits.append(w.mean())
        waited.append((w > 1e-9).mean())
    assert float(np.mean(waits)) == pytest.approx(mmc_wait_s(c, lam, s), rel=0.06)
    assert float(np.mean(waited)) == pytest.approx(erlang_c(c, lam * s), abs=0.02)


def test_erlang_c_formulas() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert mmc_wait_s(1, 0.5, 1.0) == pytest.approx(1.0)  # rho / (mu - lam)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert allen_cunneen_wait_s(2, 1.0, 1.0, 1.0, 0.0) == pytest.approx(0.5 * mmc_wait_s(2, 1.0, 1.0))
    # Halfin-Whitt above the exact range stays close to the exact recursion at its edge
    assert erlang_c(2001, 1951.0) == pytest.approx(erlang_c(2000, 1950.0), rel=0.15)
