"""Cross-field checks of inference services: ``(field path, message)`` pairs for the loader's semantic phase.

Caught here: unknown or no usable cluster, replica size against the node size, a replica whose weights (and
the
KV cache of one request) do not fit in its GPUs' memory, objectives that no batch size can meet, partitions
larger
than their cluster. Trace files are checked when the run is built (their rows carry line numbers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gigafactory_sim.inference.chunked import batched_point_fn
from gigafactory_sim.inference.config import InferenceService, StaticPartition
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.disagg_checks import disaggregation_problems, pool_replica_problems
from gigafactory_sim.inference.perf import InfeasibleObjective, TokenMix, capacity
from gigafactory_sim.inference.prefix import computed_mix
from gigafactory_sim.inference.prefix_plan import prefix_cache_problems
from gigafactory_sim.inference.single import single_capacity
from gigafactory_sim.inference.tokens import mix_samples

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Cluster, Scenario

__all__ = ["inference_problems", "service_token_mix", "usable_clusters"]


def service_token_mix(service: InferenceService) -> TokenMix:
    """Token mix of a service with distribution-defined lengths (fixed seeded samples)."""
    assert service.prompt_tokens is not None and service.output_tokens is not None
    return TokenMix.from_samples(
        mix_samples(service.prompt_tokens, 1), mix_samples(service.output_tokens, 2), service.slo.quantile
    )


def usable_clusters(service: InferenceService, clusters: list[Cluster]) -> list[str]:
    """Names of the clusters the service may place replicas on (allowed, known, and partitioned if static)."""
    names = [c.name for c in clusters]
    allowed = service.clusters if service.clusters is not None else names
    usable = [n for n in allowed if n in names]
    if isinstance(service.sharing, StaticPartition):
        usable = [n for n in usable if service.sharing.nodes.get(n, 0) > 0]
    return usable


def inference_problems(scenario: Scenario) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    services = scenario.workload.inference
    clusters = {c.name: c for c in scenario.facility.clusters}
    catalogue = scenario.gpu_catalogue()
    names = [s.name for s in services]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("workload.inference", f"service names must be unique; repeated: {dup}"))
    reserved: dict[str, int] = {}
    last_where: dict[str, str] = {}
    for i, svc in enumerate(services):
        path = f"workload.inference.{i}"
        for j, name in enumerate(svc.clusters or []):
            if name not in clusters:
                problems.append((f"{path}.clusters.{j}", f"no cluster named {name!r}; clusters: {', '.join(clusters)}"))
        if isinstance(svc.sharing, StaticPartition):
            for name, nodes in svc.sharing.nodes.items():
                where = f"{path}.sharing.nodes.{name}"
                if name not in clusters:
                    problems.append((where, f"no cluster named {name!r}"))
                    continue
                if svc.clusters is not None and name not in svc.clusters:
                    problems.append((where, f"the service may not use cluster {name!r} (see clusters)"))
                reserved[name] = reserved.get(name, 0) + nodes
                last_where[name] = where
                if nodes * clusters[name].gpus_per_node < svc.gpus_per_replica:
                    problems.append((where, f"{nodes} node(s) cannot hold one replica of {svc.gpus_per_replica} GPUs"))
        usable = usable_clusters(svc, list(clusters.values()))
        if not usable:
            problems.append(
                (
                    f"{path}.clusters",
                    "the service is allowed on no cluster (no known cluster is both "
                    "allowed and, for a static partition, reserved)",
                )
            )
            continue
        problems.extend(prefix_cache_problems(svc, path))
        mix = None if isinstance(svc.demand, TraceDemand) else service_token_mix(svc)
        if svc.disaggregation is not None:  # two pools instead of one replica
            found = disaggregation_problems(svc, path)
            problems.extend(found)
            for name in usable if not found else ():
                problems.extend(pool_replica_problems(svc, path, clusters[name], catalogue, mix))
            continue
        for name in usable:
            problems.extend(replica_problems(svc, path, clusters[name], catalogue, mix))
    for name, nodes in reserved.items():
        if name in clusters and nodes > clusters[name].nodes:
            problems.append(
                (
                    last_where.get(name, "workload.inference"),
                    f"static partitions reserve {nodes} nodes of cluster {name!r}, which has {clusters[name].nodes}",
                )
            )
    return problems


def replica_problems(
    svc: InferenceService, path: str, cluster: Cluster, catalogue: dict, mix: TokenMix | None
) -> list[tuple[str, str]]:
    """Problems of one service's replicas on one cluster (size, memory, objectives)."""
    gpn = cluster.gpus_per_node
    g = svc.gpus_per_replica
    if g > gpn and g % gpn:
        return [
            (
                f"{path}.gpus_per_replica",
                f"{g} GPUs: a replica larger than a node ({gpn} GPUs on "
                f"{cluster.name!r}) must be a whole number of nodes",
            )
        ]
    if g > cluster.gpus:
        return [(f"{path}.gpus_per_replica", f"{g} GPUs: larger than cluster {cluster.name!r} ({cluster.gpus})")]
    gpu = catalogue.get(cluster.gpu)
    if gpu is None:
        return []  # reported by the facility checks
    perf = svc.replica_perf(gpu)
    usable_gb = perf.memory_bytes * perf.memory_utilisation / 1e9
    if perf.weight_bytes / 1e9 > usable_gb:
        return [
            (
                f"{path}.model",
                f"the replica does not fit in GPU memory: {perf.weight_bytes / 1e9:.0f} GB of "
                f"weights, {g} x {gpu.memory_gb:g} GB {gpu.name} on {cluster.name!r} give "
                f"{usable_gb:.0f} GB usable ({perf.memory_utilisation:.0%}); use more GPUs per "
                f"replica or fewer bytes per parameter",
            )
        ]
    if mix is None:
        return []
    need = mix.prompt_q + mix.output_q
    if perf.kv_capacity_tokens < need:
        return [
            (
                f"{path}.model",
                f"the replica does not fit in GPU memory: the KV cache of one request of "
                f"{need:.0f} tokens needs {need * perf.kv_bytes_per_token / 1e9:.1f} GB beside "
                f"the weights; {perf.kv_capacity_tokens * perf.kv_bytes_per_token / 1e9:.1f} GB "
                f"are left on {cluster.name!r}",
            )
        ]
    try:
        if svc.prefix_cache is not None:
            mix = computed_mix(mix, svc.prefix_cache.fixed_hit_rate)
        if svc.batching == "none":
            single_capacity(perf, mix, svc.slo.limits(), gpu.power_model)
        else:
            capacity(perf, mix, svc.slo.limits(), gpu.power_model, batched_point_fn(perf))
    except InfeasibleObjective as exc:
        field = f"{path}.slo.{exc.field}" if exc.field != "model" else f"{path}.model"
        return [(field, f"{exc} (on {cluster.name!r}, {g} x {gpu.name})")]
    return []
