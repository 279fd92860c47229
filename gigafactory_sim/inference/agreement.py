"""Fluid against discrete on one request stream: the figures both fidelities report, side by side.

:func:`compare` serves the same requests (arrival times, prompt and output tokens) on a fixed number of
replicas of one cluster model with each fidelity: the discrete model every request as an event, the fluid
model in control segments whose arrivals are the stream's counts. :func:`stream_errors` runs the issue's
agreement cases (a stream at a share of the reference service's capacity, :data:`STREAMS`, :data:`TARGETS`).
Used by the agreement tests (``tests/test_inference_fluid_discrete.py``, ``tests/test_inference_bursts.py``,
``tests/test_inference_chunked_bursts.py``) and ``benchmarks/fluid_vs_discrete.py`` (the agreement tables in
README.md). Units: seconds, joules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise

import numpy as np
import simpy

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.bursts import size_biased_group
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.discrete import DiscreteService
from gigafactory_sim.inference.fluid import ClusterModel, FluidService, cluster_model
from gigafactory_sim.inference.perf import SloLimits, TokenMix
from gigafactory_sim.inference.trace import read_trace_file
from gigafactory_sim.numerics import libm

__all__ = [
    "HORIZON_S",
    "LOADS",
    "REPLICAS",
    "STREAMS",
    "TARGETS",
    "Figures",
    "azure_sample",
    "compare",
    "missed_targets",
    "reference_service",
    "relative_errors",
    "stream_errors",
    "synthetic_stream",
]

Stream = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(arrival s, prompt tokens, output tokens) of each request."""

TARGETS = {
    "mean_ttft_s": 0.15,
    "mean_e2e_s": 0.15,
    "p90_e2e_s": 0.15,
    "throughput_tokens_per_s": 0.05,
    "energy_j_per_token": 0.05,
}
"""Issue #16's agreement targets, relative error of fluid against discrete: 15 % on the latencies, 5 % on
throughput and energy per output token."""
REPLICAS = 2
HORIZON_S = 600.0
LOADS = (0.3, 0.6, 0.8)
"""Each stream is scaled to these shares of the replicas' SLO capacity."""
_LLAMA3_8B = {"params_b": 8.03, "layers": 32, "kv_heads": 8, "head_dim": 128}
_H200 = BUILTIN_GPUS["H200-SXM"]


@dataclass(frozen=True)
class Figures:
    """What one fidelity reports for the requests arriving before the horizon (discrete: each run to its end;
    energy of the replicas until the last one ends)."""

    mean_ttft_s: float
    mean_e2e_s: float
    p90_e2e_s: float
    throughput_tokens_per_s: float  # output tokens served per second over the horizon
    energy_j_per_token: float  # GPU energy of the serving replicas per output token


def compare(
    cm: ClusterModel,
    replicas: int,
    times_s: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    horizon_s: float,
    interval_s: float = 60.0,
    slo: SloLimits | None = None,
    step_queue: bool = False,
    resolution_s: float = 0.1,
) -> tuple[Figures, Figures]:
    """(fluid, discrete) figures of ``replicas`` replicas serving the requests arriving before ``horizon_s``
    (or the last arrival, if earlier). ``step_queue``: the fluid's burst-aware latency (:mod:`.bursts`) with
    the stream's counts in cells of ``resolution_s``."""
    horizon_s = min(horizon_s, float(times_s[-1]))  # compare while requests arrive
    keep = times_s < horizon_s
    times_s, prompt, output = times_s[keep], prompt[keep], output[keep]
    mix = TokenMix.from_samples(prompt, output)
    slo = slo or SloLimits()
    gpus = cm.perf.gpus
    # -- discrete: every request arriving before the horizon, run to its end (energy to the last one)
    env = simpy.Environment()
    disc = DiscreteService(env, {0: cm}, mix, "continuous", 1e12)
    disc.feed(times_s, prompt, output)
    for _ in range(replicas):
        disc.add_replica(0)
    env.run()
    disc.flush_energy()
    rec = disc.records()
    ttft = rec[:, 1] - rec[:, 0]
    e2e = rec[:, 2] - rec[:, 0]
    d = Figures(
        float(ttft.mean()),
        float(e2e.mean()),
        float(np.percentile(e2e, 90)),
        float(rec[:, 4].sum()) / horizon_s,
        disc.energy_j / float(rec[:, 4].sum()),
    )
    # -- fluid: one segment per control interval, arrivals counted from the stream
    group = size_biased_group(times_s) if step_queue else 1.0
    fluid = FluidService({0: cm}, mix, prompt, output, slo, "continuous", 1e12, step_queue=step_queue, group=group)
    energy = 0.0
    edges = np.arange(0.0, horizon_s + interval_s, interval_s)
    edges[-1] = horizon_s
    for t0, t1 in pairwise(edges):
        if t1 <= t0:
            continue
        arrivals = float(((times_s >= t0) & (times_s < t1)).sum())
        cells = np.linspace(t0, t1, max(round((t1 - t0) / resolution_s), 1) + 1)
        sub = np.histogram(times_s, bins=cells)[0].astype(float) if step_queue else None
        plan = fluid.plan(arrivals / (t1 - t0), {0: replicas}, t1 - t0, sub)
        fluid.account(plan, t0, t1, arrivals, sub)
        energy += replicas * gpus * plan.gpu_power_w(0) * (t1 - t0)
    energy += replicas * gpus * _tail_energy_per_gpu_j(fluid, replicas)
    f_sum = fluid.summary()
    tokens = fluid.served * mix.output_mean
    f = Figures(
        float(f_sum["mean_ttft_s"] or 0.0),
        float(f_sum["mean_e2e_s"] or 0.0),
        float(f_sum["e2e_p90_s"] or 0.0),
        tokens / horizon_s,
        energy / tokens if tokens > 0 else float("inf"),
    )
    return f, d


def _tail_energy_per_gpu_j(fluid: FluidService, replicas: int) -> float:
    """Energy per GPU of serving the burst queue's backlog still carried at the horizon (chunked prefill,
    :meth:`~gigafactory_sim.inference.fluid.FluidService.carry_burst`; zero otherwise) after it, as the discrete
    model runs every request to its end: drained at the queue's rate, at the capacity operating point's
    power."""
    carry = fluid.burst_carry
    if carry <= 0:
        return 0.0
    serving = {0: replicas}
    k = fluid.capacity_per_s(serving)
    drain = fluid.burst_drain_per_s(serving, k)
    if drain <= 0:
        return 0.0
    return fluid.plan(k, serving, carry / drain).gpu_power_w(0) * carry / drain


def relative_errors(fluid: Figures, discrete: Figures) -> dict[str, float]:
    """(fluid - discrete) / discrete per figure."""
    return {k: (getattr(fluid, k) - getattr(discrete, k)) / getattr(discrete, k) for k in Figures.__dataclass_fields__}


def azure_sample(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival s, prompt, output tokens) of a shipped Azure LLM 2023 sample, ``code`` or ``conv``."""
    path = resources.files("gigafactory_sim") / "data" / f"azure_llm_2023_{kind}_sample.csv.gz"
    with resources.as_file(path) as p:
        return read_trace_file(p, "azure", str(p), "trace")


def synthetic_stream(kind: str, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``long_burst``: prompts log-normal median 8k, groups of 10 at one instant; ``heavy``: Pareto-tailed
    prompts (median ~500, tail index 1.2, capped at 32k), Poisson arrivals. One request per second."""
    rng = np.random.default_rng(seed)
    n = 20_000
    if kind == "long_burst":
        groups = np.cumsum(rng.exponential(10.0, n // 10))
        times = np.repeat(groups, 10)
        prompt = np.clip(np.round(8000 * libm.exp(0.5 * rng.standard_normal(n))), 16, 32000)
    else:
        times = np.cumsum(rng.exponential(1.0, n))
        prompt = np.clip(np.round(500 * (rng.pareto(1.2, n) + 1) / 1.78), 1, 32000)
    output = np.clip(np.round(150 * libm.exp(0.8 * rng.standard_normal(n))), 1, 2000)
    return times - times[0], prompt, output


STREAMS: dict[str, Callable[[], Stream]] = {
    "azure-code": lambda: azure_sample("code"),
    "azure-conv": lambda: azure_sample("conv"),
    "long-burst": lambda: synthetic_stream("long_burst"),
    "heavy-tail": lambda: synthetic_stream("heavy"),
}
"""The agreement cases' streams: the shipped Azure code and conversation samples, long prompts in groups of 10 at
one instant, and a heavy-tailed prompt mix."""


def reference_service(chunked: bool = False) -> InferenceService:
    """The agreement cases' service: Llama-3-8B's shape on one H200 per replica, a 150 ms TPOT objective;
    ``chunked``: chunked prefill with an 8,192-token step budget (vLLM's default)."""
    scheduling = {"chunked_prefill": True, "max_num_batched_tokens": 8192} if chunked else {}
    return InferenceService.model_validate(
        dict(
            name="s",
            model=_LLAMA3_8B,
            demand={"kind": "constant", "rate_per_s": 1.0},
            prompt_tokens={"kind": "fixed", "value": 1},
            output_tokens={"kind": "fixed", "value": 1},
            slo={"tpot": "150ms"},
            scheduling=scheduling,
        )
    )


def stream_errors(
    service: InferenceService,
    stream: Stream,
    load: float,
    step_queue: bool = True,
    replicas: int = REPLICAS,
    horizon_s: float = HORIZON_S,
) -> dict[str, float]:
    """:func:`relative_errors` of ``service`` on ``replicas`` H200 replicas serving ``stream`` scaled to
    ``load`` of their SLO capacity, for ``horizon_s``."""
    t, p, o = stream
    mix = TokenMix.from_samples(p, o)
    cm = cluster_model(service.replica_perf(_H200), _H200.power_model, mix, service.slo.limits(), "continuous")
    scale = load * replicas * cm.rate_per_s / (len(t) / (t[-1] - t[0]))
    f, d = compare(cm, replicas, t / scale, p, o, horizon_s, step_queue=step_queue)
    return relative_errors(f, d)


def missed_targets(errors: dict[str, float]) -> dict[str, float]:
    """The figures of ``errors`` outside :data:`TARGETS`, in per cent (rounded to 0.1)."""
    return {k: round(100 * v, 1) for k, v in errors.items() if abs(v) > TARGETS[k]}
