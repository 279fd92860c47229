"""Size both pools of a disaggregated service on each usable cluster (called by :mod:`.prepare`).

The prefill replica and the decode replica are the service's replica (its model, replica model and prefix
cache) with each pool's ``gpus_per_replica``. An objective that neither pool can meet unloaded is an input error
with its field: ``slo.ttft`` (prefill + transfer of a quantile prompt), ``slo.tpot`` / ``slo.e2e`` (decode), and
the decode replica's KV memory under ``disaggregation.decode.gpus_per_replica``.
"""

from __future__ import annotations

import numpy as np

from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.disagg_fluid import GRID, PoolModels, PrefillModel, prefill_model
from gigafactory_sim.inference.fluid import ClusterModel, cluster_model
from gigafactory_sim.inference.perf import InfeasibleObjective, ReplicaPerf, SloLimits, TokenMix
from gigafactory_sim.inference.prefix import computed_mix
from gigafactory_sim.sim.facility import PowerTable

__all__ = ["pool_perf", "prepare_pools"]


def pool_perf(svc: InferenceService, pool: str, power: PowerTable, c: int) -> ReplicaPerf:
    """The roofline of one replica of pool ``pool`` (``prefill`` or ``decode``) on cluster ``c``."""
    d = svc.disaggregation
    assert d is not None and d.prefill is not None and d.decode is not None
    spec = d.prefill if pool == "prefill" else d.decode
    one = svc.model_copy(update={"gpus_per_replica": spec.gpus_per_replica, "disaggregation": None})
    return one.replica_perf(power.gpu_profiles[c])


def prepare_pools(
    svc: InferenceService,
    path: str,
    source: str,
    power: PowerTable,
    clusters: list[int],
    mix: TokenMix,
    prompt: np.ndarray,
    whole_prompt: np.ndarray,
    whole_prompt_q: float,
) -> PoolModels:
    """Both pools' models. ``prompt``/``mix``: what prefill computes (after the prefix cache); ``whole_prompt``:
    the prompts' whole length, whose KV cache is transferred. Raises :class:`ScenarioError` with the field."""
    d = svc.disaggregation
    assert d is not None
    slo = svc.slo.limits()
    kv = svc.model.kv_bytes
    link = d.kv_link
    transfer_grid = np.quantile(np.asarray(whole_prompt, dtype=float), GRID) * link.transfer_s(1.0, kv)
    transfer_mean = link.transfer_s(float(np.mean(whole_prompt)), kv)
    transfer_q = link.transfer_s(whole_prompt_q, kv)
    prefill: dict[int, PrefillModel] = {}
    decode: dict[int, ClusterModel] = {}
    decode_mix = computed_mix(mix, 1.0)  # decode-only steps; the context keeps the whole prompt
    decode_slo = slo
    for c in clusters:
        model = power.power_models[c]
        try:
            prefill[c] = prefill_model(pool_perf(svc, "prefill", power, c), model, prompt, mix, transfer_q, slo.ttft_s)
        except InfeasibleObjective as exc:
            raise ScenarioError.single(
                source, f"{path}.slo.{exc.field}", f"{exc} (on {power.cluster_names[c]!r})"
            ) from None
        ttft_budget = slo.ttft_s if slo.ttft_s < float("inf") else prefill[c].service_q_s + transfer_q
        decode_slo = SloLimits(tpot_s=slo.tpot_s, e2e_s=slo.e2e_s - ttft_budget, quantile=slo.quantile)
        try:
            if decode_slo.e2e_s <= 0:
                raise InfeasibleObjective(
                    "e2e", f"no decode pool meets e2e {slo.e2e_s:g} s: the time to the first token takes all of it"
                )
            decode[c] = cluster_model(pool_perf(svc, "decode", power, c), model, decode_mix, decode_slo, "continuous")
        except InfeasibleObjective as exc:
            where = (
                f"{path}.disaggregation.decode.gpus_per_replica" if exc.field == "model" else f"{path}.slo.{exc.field}"
            )
            raise ScenarioError.single(source, where, f"decode pool: {exc} (on {power.cluster_names[c]!r})") from None
    return PoolModels(
        prefill,
        decode,
        decode_mix,
        decode_slo,
        transfer_grid,
        transfer_mean,
        transfer_q,
        float(np.mean(whole_prompt)) * kv,
    )
