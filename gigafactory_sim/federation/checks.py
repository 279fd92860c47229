"""Cross-field checks of a federation, as ``(field path, message)`` pairs the loader turns into problems with
file and line: unknown or repeated site names, residencies no site satisfies, missing links, unroutable regions,
and every single-site check of each site (its paths prefixed with ``sites.K.``)."""

from __future__ import annotations

from gigafactory_sim.config.semantics import semantic_problems
from gigafactory_sim.federation.config import FederatedService, Federation
from gigafactory_sim.federation.residency import allowed_sites, broken_rules
from gigafactory_sim.federation.sites import hosts_of, route_service, site_scenario

__all__ = ["federation_problems", "site_field"]


def site_field(fed: Federation, k: int, path: str) -> str:
    """A field path of site ``k``'s scenario as a path of the federation file."""
    head = path.split(".", 1)[0]
    if head in ("facility", "grid", "energy"):
        return f"sites.{k}.{path}"
    if path.startswith("workload.inference."):
        parts = path.split(".")
        local = site_scenario(fed, k).workload.inference[int(parts[2])].name
        j = [s.name for s in fed.workload.inference].index(local)
        return ".".join(["workload", "inference", str(j), *parts[3:]])
    return path


def _no_site(fed: Federation, residency_owner: str, rules: object) -> str:
    reasons = "; ".join(
        f"{s.name}: {', '.join(broken_rules(rules, s))}"  # type: ignore[arg-type]
        for s in fed.sites
    )
    return f"no site satisfies the residency of {residency_owner} ({reasons})"


def _links(fed: Federation) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    names = fed.site_names
    seen: set[frozenset[str]] = set()
    for i, link in enumerate(fed.network.links):
        for j, name in enumerate(link.between):
            if name not in names:
                problems.append(
                    (f"network.links.{i}.between.{j}", f"no site named {name!r}; sites: {', '.join(names)}")
                )
        pair = frozenset(link.between)
        if pair in seen:
            problems.append((f"network.links.{i}.between", f"a second link between {' and '.join(sorted(pair))}"))
        seen.add(pair)
    for region, row in fed.network.regions.items():
        for name, ms in row.items():
            if name not in names:
                problems.append(
                    (f"network.regions.{region}.{name}", f"no site named {name!r}; sites: {', '.join(names)}")
                )
            elif ms < 0:
                problems.append((f"network.regions.{region}.{name}", "latency cannot be negative"))
    return problems


def _linked(fed: Federation, a: str, b: str) -> bool:
    return any(set(link.between) == {a, b} for link in fed.network.links)


def _training(fed: Federation) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    names = fed.site_names
    moves = fed.placement.kind != "home"
    for i, src in enumerate(fed.workload.training):
        path = f"workload.training.{i}"
        allowed = allowed_sites(src.residency, fed.sites)
        if not allowed:
            problems.append((f"{path}.residency", _no_site(fed, f"training source {src.name!r}", src.residency)))
            continue
        if src.home is not None:
            if src.home not in names:
                problems.append((f"{path}.home", f"no site named {src.home!r}; sites: {', '.join(names)}"))
                continue
            if names.index(src.home) not in allowed:
                why = ", ".join(broken_rules(src.residency, fed.sites[names.index(src.home)]))
                problems.append((f"{path}.home", f"the home site {src.home!r} breaks the source's residency ({why})"))
                continue
        home = src.home or names[allowed[0]]
        runnable = [k for k in allowed if _largest(fed, k, src.clusters) > 0]
        if not runnable:
            problems.append((f"{path}.clusters", "no site the residency allows has a cluster this source may use"))
            continue
        largest = max(_largest(fed, k, src.clusters) for k in runnable)
        for j, job_class in enumerate(getattr(src, "classes", [])):
            if job_class.sizes.max_gpus() > largest:
                problems.append(
                    (
                        f"{path}.classes.{j}.sizes",
                        f"jobs of {job_class.sizes.max_gpus()} GPUs are larger than any cluster of the sites "
                        f"the residency allows (largest: {largest} GPUs)",
                    )
                )
        if moves and src.data.dataset_gb > 0:
            for k in runnable:
                if names[k] != home and not _linked(fed, home, names[k]):
                    problems.append(
                        (
                            f"{path}.data.dataset_gb",
                            f"placement {fed.placement.kind} may run {src.name!r} at {names[k]}, but no link joins "
                            f"its home {home} to {names[k]} to move its {src.data.dataset_gb:g} GB dataset "
                            f"(add one under network.links, or restrict the residency)",
                        )
                    )
    return problems


def _largest(fed: Federation, k: int, clusters: list[str] | None) -> int:
    """The largest cluster of site ``k`` a source restricted to ``clusters`` may use (0: none)."""
    return max((c.gpus for c in fed.sites[k].facility.clusters if clusters is None or c.name in clusters), default=0)


def _service(fed: Federation, i: int, svc: FederatedService) -> list[tuple[str, str]]:
    path = f"workload.inference.{i}"
    names = fed.site_names
    allowed = allowed_sites(svc.residency, fed.sites)
    if not allowed:
        return [(f"{path}.residency", _no_site(fed, f"service {svc.name!r}", svc.residency))]
    problems: list[tuple[str, str]] = []
    for field, value in (("home", [svc.home] if svc.home else []), ("sites", svc.sites or [])):
        for j, name in enumerate(value):
            where = f"{path}.{field}" + (f".{j}" if field == "sites" else "")
            if name not in names:
                problems.append((where, f"no site named {name!r}; sites: {', '.join(names)}"))
            elif names.index(name) not in allowed:
                why = ", ".join(broken_rules(svc.residency, fed.sites[names.index(name)]))
                problems.append((where, f"site {name!r} breaks the service's residency ({why})"))
    if problems:
        return problems
    if not hosts_of(fed, svc):
        return [(f"{path}.sites", "no allowed site has a cluster the service may use")]
    _, unserved = route_service(fed, svc)
    for what in unserved:
        region = what.split(":", 1)[0]
        problems.append((f"{path}.regions.{region}", f"no site can serve region {what}"))
    return problems


def federation_problems(fed: Federation) -> list[tuple[str, str]]:
    """Every cross-field problem of ``fed`` (empty: the federation can be prepared)."""
    problems: list[tuple[str, str]] = []
    names = fed.site_names
    for k, name in enumerate(names):
        if names.index(name) != k:
            problems.append(
                (f"sites.{k}.name", f"site names must be unique; {name!r} is also site {names.index(name)}")
            )
    if problems:
        return problems
    problems += _links(fed)
    problems += _training(fed)
    for i, svc in enumerate(fed.workload.inference):
        problems += _service(fed, i, svc)
    if problems:
        return problems
    seen: set[tuple[str, str]] = set()
    for k in range(len(fed.sites)):
        for path, message in semantic_problems(site_scenario(fed, k)):
            item = (site_field(fed, k, path), message)
            if item not in seen:
                seen.add(item)
                problems.append(item)
    return problems
