"""Cross-field checks of a single-site scenario that pydantic cannot do per field."""

from __future__ import annotations

from gigafactory_sim.config.scenario import Scenario

__all__ = ["semantic_problems"]


def semantic_problems(scenario: Scenario) -> list[tuple[str, str]]:
    """Cross-field checks pydantic cannot do per field: ``(field path, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    catalogue = scenario.gpu_catalogue()
    known = ", ".join(sorted(catalogue))
    for i, cluster in enumerate(scenario.facility.clusters):
        if cluster.gpu not in catalogue:
            problems.append((f"facility.clusters.{i}.gpu", f"unknown GPU {cluster.gpu!r}; known: {known}"))
    ref = scenario.workload.reference_gpu
    if ref is not None and ref not in catalogue:
        problems.append(("workload.reference_gpu", f"unknown GPU {ref!r}; known: {known}"))
    clusters = {c.name: c for c in scenario.facility.clusters}
    for i, source in enumerate(scenario.workload.training):
        allowed = source.clusters or list(clusters)
        for j, name in enumerate(source.clusters or []):
            if name not in clusters:
                problems.append(
                    (
                        f"workload.training.{i}.clusters.{j}",
                        f"no cluster named {name!r}; clusters: {', '.join(clusters)}",
                    )
                )
        allowed_sizes = [clusters[n].gpus for n in allowed if n in clusters]
        largest = max(allowed_sizes, default=0)
        if allowed_sizes and hasattr(source, "classes"):
            for j, job_class in enumerate(source.classes):
                biggest = job_class.sizes.max_gpus()
                if biggest > largest:
                    problems.append(
                        (
                            f"workload.training.{i}.classes.{j}.sizes",
                            f"jobs of {biggest} GPUs are larger than any cluster they may use "
                            f"(largest: {largest} GPUs)",
                        )
                    )
    if scenario.workload.inference:  # (its checks import the serving model: only for a scenario with services)
        from gigafactory_sim.inference.checks import inference_problems

        problems.extend(inference_problems(scenario))
    for i, cluster in enumerate(scenario.facility.clusters):
        failures = scenario.facility.failures_of(cluster)
        if failures is not None and failures.hot_spares >= cluster.nodes:
            where = f"facility.clusters.{i}.failures" if cluster.failures is not None else "facility.failures"
            message = (
                f"{failures.hot_spares} hot spares leave no node to schedule on cluster "
                f"{cluster.name!r} ({cluster.nodes} nodes)"
            )
            problems.append((f"{where}.hot_spares", message))
    for i, cluster in enumerate(scenario.facility.clusters):
        failures = scenario.facility.failures_of(cluster)
        where = f"facility.clusters.{i}.failures" if cluster.failures is not None else "facility.failures"
        for j, window in enumerate(failures.maintenance if failures is not None else []):
            if window.nodes > cluster.nodes:
                problems.append(
                    (
                        f"{where}.maintenance.{j}.nodes",
                        f"maintenance of {window.nodes} nodes at a time; cluster {cluster.name!r} has {cluster.nodes}",
                    )
                )
    if scenario.report.interval > scenario.horizon_s:
        problems.append(("report.interval", "the report interval is longer than the horizon"))
    return problems
