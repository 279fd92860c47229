"""Each site of a federation as the single-site :class:`~gigafactory_sim.config.scenario.Scenario` the engine
runs, and the routing of each inference service's user regions to the sites that serve them.

A site scenario shares the federation's time, scheduler, training power, checkpointing and report settings; its
facility, grid and energy are the site's own; its training jobs come from the federation's placement at run time
(so its own training list is empty); its inference services are the federation's services hosted there, with the
share of demand routed to it. Pure functions: no file is read here.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from gigafactory_sim.config.scenario import Scenario, Workload
from gigafactory_sim.federation.config import FederatedService, Federation, country_of
from gigafactory_sim.federation.residency import allowed_sites
from gigafactory_sim.inference.checks import usable_clusters
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.demand import ConstantDemand, DemandProfile, DiurnalDemand, TraceDemand

__all__ = ["Route", "home_of", "hosts_of", "route_service", "site_scenario", "site_seed"]


@dataclass(frozen=True)
class Route:
    """Where one user region's requests to one service go: ``site`` (an index), its one-way latency."""

    service: str
    region: str
    share: float
    site: int
    latency_s: float

    @property
    def rtt_s(self) -> float:
        return 2.0 * self.latency_s


def site_seed(seed: int, site_name: str) -> int:
    """The seed of a site's own random streams (failures, request arrivals): independent across sites, fixed by
    the federation's seed and the site's name."""
    key = zlib.crc32(site_name.encode("utf-8"))
    return int(np.random.SeedSequence(entropy=seed, spawn_key=(key,)).generate_state(1, np.uint32)[0])


def home_of(fed: Federation, home: str | None, allowed: tuple[int, ...]) -> int:
    """The index of a workload's home site: the one named, else the first site its residency allows."""
    names = fed.site_names
    if home is not None:
        return names.index(home)
    return allowed[0]


def hosts_of(fed: Federation, svc: FederatedService) -> list[int]:
    """Sites that host replicas of ``svc``: those named in ``sites`` (or every site its residency allows), with a
    cluster the service may use."""
    allowed = allowed_sites(svc.residency, fed.sites)
    names = fed.site_names
    chosen = [names.index(n) for n in svc.sites] if svc.sites is not None else list(allowed)
    return [k for k in chosen if k in allowed and usable_clusters(svc, fed.sites[k].facility.clusters)]


def route_service(fed: Federation, svc: FederatedService) -> tuple[list[Route], list[str]]:
    """Each user region of ``svc`` to its nearest host whose round trip leaves room in the TTFT objective; and
    the regions no host can serve (with why)."""
    hosts = hosts_of(fed, svc)
    names = fed.site_names
    regions = svc.regions or {country_of(fed.sites[hosts[0] if hosts else 0].country): 1.0}
    total = sum(regions.values())
    ttft = svc.slo.ttft
    routes: list[Route] = []
    unserved: list[str] = []
    for region, share in regions.items():
        if share <= 0:
            continue
        row = fed.network.regions.get(region)
        if row is None:  # no latencies given for the region: its users are local to the sites in that country
            row = {site.name: 0.0 for site in fed.sites if site.jurisdiction == country_of(region)}
        options = sorted((row[names[k]] / 1000.0, k) for k in hosts if names[k] in row)
        fits = [(lat, k) for lat, k in options if ttft is None or 2.0 * lat < ttft]
        if not fits:
            why = (
                "no latency to any host in network.regions"
                if not options
                else "every host's round trip exceeds slo.ttft"
            )
            unserved.append(f"{region}: {why}")
            continue
        lat, k = fits[0]
        routes.append(Route(svc.name, region, share / total, k, lat))
    return routes, unserved


def _scaled(demand: DemandProfile, share: float) -> DemandProfile:
    """``demand`` times ``share`` (a trace is thinned in rate by stretching its inter-arrival times)."""
    if isinstance(demand, ConstantDemand):
        return demand.model_copy(update={"rate_per_s": demand.rate_per_s * share})
    if isinstance(demand, DiurnalDemand):
        return demand.model_copy(update={"mean_rate_per_s": demand.mean_rate_per_s * share})
    assert isinstance(demand, TraceDemand)
    return demand.model_copy(update={"rate_scale": demand.rate_scale * share})


def _site_services(fed: Federation, k: int) -> list[InferenceService]:
    out: list[InferenceService] = []
    cluster_names = {c.name for c in fed.sites[k].facility.clusters}
    for svc in fed.workload.inference:
        routes, _ = route_service(fed, svc)
        share = sum(r.share for r in routes if r.site == k)
        if share <= 0:
            continue
        clusters = [c for c in svc.clusters if c in cluster_names] if svc.clusters is not None else None
        data = svc.model_dump(exclude={"residency", "home", "sites", "regions"})
        data.update(demand=_scaled(svc.demand, share).model_dump(), clusters=clusters)
        out.append(InferenceService.model_validate(data))
    return out


def site_scenario(fed: Federation, k: int) -> Scenario:
    """Site ``k`` of ``fed`` as a single-site scenario (located in the federation's file)."""
    site = fed.sites[k]
    facility = site.facility.model_copy(update={"name": site.name, "country": site.country})
    sc = Scenario(
        name=site.name,
        description=fed.description,
        seed=site_seed(fed.seed, site.name),
        start=fed.start,
        horizon=fed.horizon,
        gpu_profiles=fed.gpu_profiles,
        scheduler=fed.scheduler,
        power=fed.power,
        checkpointing=fed.checkpointing,
        report=fed.report,
        statistics=fed.statistics,
        facility=facility,
        workload=Workload(reference_gpu=fed.workload.reference_gpu, inference=_site_services(fed, k)),
        grid=site.grid,
        energy=site.energy,
        cooling=site.cooling,
        heat_reuse=site.heat_reuse,
        eed=site.eed,
        initial_state=fed.initial_state,  # (its warm jobs come from the federation; the site's statistics count them)
    )
    prefix = f"sites.{k}."
    lines = {key[len(prefix) :]: line for key, line in fed.field_lines.items() if key.startswith(prefix)}
    return sc.locate(fed.source_file, fed.base_dir, lines, ())
