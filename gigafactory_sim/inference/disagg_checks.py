"""Cross-field checks of a disaggregated service (``disaggregation``), as ``(field path, message)`` pairs.

Caught here: a prefill pool without a decode pool or the reverse, what the pools do not support (``batching:
none``, chunked prefill), a pool's replica against the node size, a
replica whose weights do not fit, a decode replica that cannot hold the KV cache of one quantile-length request
beside its weights (a prefill replica the prompt's), and a ``node`` link whose two replicas cannot share a node.
Objectives no pool size meets are found when the pools are sized (:mod:`.disagg_prepare`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.perf import TokenMix

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Cluster

__all__ = ["disaggregation_problems", "pool_replica_problems"]


def disaggregation_problems(svc: InferenceService, path: str) -> list[tuple[str, str]]:
    """Problems of the ``disaggregation`` section that do not depend on a cluster."""
    d = svc.disaggregation
    assert d is not None
    where = f"{path}.disaggregation"
    out: list[tuple[str, str]] = []
    if d.prefill is None:
        out.append((f"{where}.prefill", "a disaggregated service needs a prefill pool beside its decode pool"))
    if d.decode is None:
        out.append((f"{where}.decode", "a prefill pool needs a decode pool: give disaggregation.decode"))
    if svc.batching != "continuous":
        out.append((f"{path}.batching", "disaggregated pools batch continuously; batching: none is not supported"))
    if svc.scheduling.chunked_prefill:
        out.append(
            (
                f"{path}.scheduling.chunked_prefill",
                "disaggregated pools run prefill-only and decode-only steps; chunked prefill does not apply",
            )
        )
    if svc.prefix_cache is not None and svc.prefix_cache.from_trace:
        out.append(
            (
                f"{path}.prefix_cache.from_trace",
                "a block-hash cache is not modelled for disaggregated pools; give prefix_cache.hit_rate",
            )
        )
    return out


def pool_replica_problems(
    svc: InferenceService, path: str, cluster: Cluster, catalogue: dict, mix: TokenMix | None
) -> list[tuple[str, str]]:
    """Problems of both pools' replicas on one cluster (size, memory, the node link)."""
    d = svc.disaggregation
    assert d is not None and d.prefill is not None and d.decode is not None
    gpn = cluster.gpus_per_node
    out: list[tuple[str, str]] = []
    gpu = catalogue.get(cluster.gpu)
    for name, spec in (("prefill", d.prefill), ("decode", d.decode)):
        where = f"{path}.disaggregation.{name}.gpus_per_replica"
        g = spec.gpus_per_replica
        if g > gpn and g % gpn:
            out.append(
                (
                    where,
                    f"{g} GPUs: a replica larger than a node ({gpn} GPUs on {cluster.name!r}) must be a "
                    "whole number of nodes",
                )
            )
            continue
        if g > cluster.gpus:
            out.append((where, f"{g} GPUs: larger than cluster {cluster.name!r} ({cluster.gpus})"))
            continue
        if gpu is None:
            continue  # reported by the facility checks
        perf = svc.model_copy(update={"gpus_per_replica": g, "disaggregation": None}).replica_perf(gpu)
        usable_gb = perf.memory_bytes * perf.memory_utilisation / 1e9
        if perf.weight_bytes / 1e9 > usable_gb:
            out.append(
                (
                    where,
                    f"the {name} replica does not fit in GPU memory: {perf.weight_bytes / 1e9:.0f} GB of "
                    f"weights, {g} x {gpu.memory_gb:g} GB {gpu.name} on {cluster.name!r} give {usable_gb:.0f} GB "
                    f"usable ({perf.memory_utilisation:.0%})",
                )
            )
            continue
        if mix is None:
            continue
        need = mix.prompt_q + (mix.output_q if name == "decode" else 0.0)
        if perf.kv_capacity_tokens < need:
            out.append(
                (
                    where,
                    f"the {name} replica cannot hold the KV cache of one request of {need:.0f} tokens "
                    f"({need * perf.kv_bytes_per_token / 1e9:.1f} GB) beside its weights: "
                    f"{perf.kv_capacity_tokens * perf.kv_bytes_per_token / 1e9:.1f} GB are left on "
                    f"{cluster.name!r}",
                )
            )
    if d.kv_link.kind == "node" and d.prefill.gpus_per_replica + d.decode.gpus_per_replica > gpn:
        out.append(
            (
                f"{path}.disaggregation.kv_link.kind",
                f"a node link needs a prefill and a decode replica on one "
                f"node: {d.prefill.gpus_per_replica} + {d.decode.gpus_per_replica} GPUs do not fit in "
                f"{gpn} on {cluster.name!r} (use kind: network)",
            )
        )
    return out
