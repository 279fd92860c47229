"""Residency rules: which sites a workload's data may be processed at. Pure functions, no engine."""

from __future__ import annotations

from gigafactory_sim.federation.config import Residency, Site, country_of

__all__ = ["allowed_sites", "allows", "broken_rules"]


def broken_rules(residency: Residency, site: Site) -> list[str]:
    """The rules of ``residency`` that ``site`` breaks (empty: the site is allowed)."""
    broken = []
    if residency.countries is not None and site.jurisdiction not in {country_of(c) for c in residency.countries}:
        broken.append(f"countries: {site.jurisdiction} is not in {', '.join(residency.countries)}")
    if residency.eu_only and not site.in_eu:
        broken.append(f"eu_only: {site.name} is not under EU jurisdiction")
    if site.sovereignty.assurance < residency.min_assurance:
        broken.append(
            f"min_assurance: {site.name} is at level {site.sovereignty.assurance} < {residency.min_assurance}"
        )
    if residency.operator == "eu_controlled" and site.sovereignty.operator != "eu_controlled":
        broken.append(f"operator: {site.name}'s operator is subject to third-country law")
    return broken


def allows(residency: Residency, site: Site) -> bool:
    return not broken_rules(residency, site)


def allowed_sites(residency: Residency, sites: list[Site]) -> tuple[int, ...]:
    """Indices of the sites ``residency`` allows, in the scenario's order."""
    return tuple(k for k, s in enumerate(sites) if allows(residency, s))
