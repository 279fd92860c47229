"""The federation report's first screen: one card per figure an operator of several sites asks for first.

The federation (sites, GPUs, placement), utilisation (with the busiest and quietest site), jobs, the residency
audit's verdict (``0 (every rule kept)`` or the count of violations, flagged), power against any site's hard
cap, energy, carbon (the site emitting most), cost with egress, inter-site traffic (the busiest link) and, with
inference, the regions served within their latency objective including the network. Cards are
:class:`gigafactory_sim.report.story.Card`, drawn like the single-site story's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gigafactory_sim.report.format import MISSING, format_value
from gigafactory_sim.report.story import Card
from gigafactory_sim.report.tables import get

__all__ = ["federation_cards", "inference_rows", "network_links", "number", "site_records", "training_rows"]

OK, WARN = "ok", "warn"


def _f(summary: Mapping[str, Any], key: str) -> str:
    return format_value(get(summary, key), key)


def number(value: Any) -> float | None:
    """``value`` as a float when it is a number (not a boolean), else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def site_records(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``summary["sites"]``: each site's figures, by name, in the scenario's order."""
    sites = summary.get("sites")
    if not isinstance(sites, Mapping):
        return {}
    return {str(k): v for k, v in sites.items() if isinstance(v, Mapping)}


def _rows(summary: Mapping[str, Any], inference: bool) -> list[Mapping[str, Any]]:
    rows = get(summary, "residency.rows")
    return [
        r
        for r in (rows if isinstance(rows, list) else [])
        if isinstance(r, Mapping) and str(r.get("workload", "")).startswith("inference:") == inference
    ]


def training_rows(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The residency audit's rows of training workloads (workload, site, jobs, GPU-h, allowed)."""
    return _rows(summary, False)


def inference_rows(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The residency audit's rows of inference services (region -> site, requests, latency, allowed)."""
    return _rows(summary, True)


def network_links(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``network.links``: one record per directed link."""
    links = get(summary, "network.links")
    return [link for link in (links if isinstance(links, list) else []) if isinstance(link, Mapping)]


# --- cards ------------------------------------------------------------------------------------------------


def _federation_card(summary: Mapping[str, Any]) -> Card:
    sites = site_records(summary)
    where = ", ".join(f"{name} ({info.get('country', MISSING)})" for name, info in sites.items())
    return Card(
        "Federation",
        [("sites", f"{len(sites):,}"), ("GPUs", _f(summary, "gpus_total"))],
        f"{where}; placement policy {summary.get('placement') or MISSING}.",
    )


def _utilisation_card(summary: Mapping[str, Any]) -> Card:
    sites = {n: number(s.get("allocated_fraction")) for n, s in site_records(summary).items()}
    ranked = sorted((v, n) for n, v in sites.items() if v is not None)
    note = "Share of GPU-time over the whole run."
    if len(ranked) > 1:
        (low, low_name), (high, high_name) = ranked[0], ranked[-1]
        note += (
            f" Busiest site {high_name} ({format_value(high, 'fraction')}), quietest {low_name} "
            f"({format_value(low, 'fraction')})."
        )
    return Card(
        "Utilisation",
        [
            ("GPUs allocated", _f(summary, "utilisation.allocated_fraction")),
            ("GPUs busy", _f(summary, "utilisation.busy_fraction")),
        ],
        note,
    )


def _jobs_card(summary: Mapping[str, Any]) -> Card:
    queued = number(get(summary, "jobs.queued_at_end")) or 0.0
    moving = number(get(summary, "jobs.in_transfer")) or 0.0
    note = f"{_f(summary, 'jobs.submitted')} submitted. "
    note += "Every job submitted was started." if queued == 0 else f"{int(queued):,} jobs still queued at the end."
    if moving:
        note += f" {int(moving):,} waiting for data from another site."
    return Card(
        "Jobs",
        [("completed", _f(summary, "jobs.completed")), ("wait, 95th percentile", _f(summary, "wait_s.p95"))],
        note,
        "" if queued == 0 else WARN,
    )


def _residency_card(summary: Mapping[str, Any]) -> Card:
    violations = number(get(summary, "residency.violations"))
    workloads = len({str(r.get("workload")) for r in training_rows(summary) + inference_rows(summary)})
    if violations is None:
        return Card("Residency", [("rule violations", MISSING)], "The run recorded no residency audit.")
    if violations == 0:
        verdict = "0 (every rule kept)"
        note = f"Every job and every region's requests of the {workloads} workloads ran where their rules allow."
        return Card("Residency", [("rule violations", verdict)], note, OK)
    note = "Work ran at a site its rules forbid: see the residency audit below."
    return Card("Residency", [("rule violations", f"{int(violations):,}")], note, WARN)


def _power_card(summary: Mapping[str, Any]) -> Card:
    figures = [
        ("peak facility power", _f(summary, "power.peak_facility_mw")),
        ("sum of the sites' peaks", _f(summary, "power.sum_of_site_peaks_mw")),
    ]
    capped = {n: s for n, s in site_records(summary).items() if number(s.get("hard_cap_mw")) is not None}
    if not capped:
        return Card("Power", figures, "No site has a hard cap on its grid draw.")
    over = [
        n
        for n, s in capped.items()
        if (number(s.get("peak_grid_mw")) or 0.0) > (number(s["hard_cap_mw"]) or 0.0) + 1e-6
    ]
    if over:
        return Card("Power", figures, f"Grid draw exceeded the hard cap at {', '.join(over)}.", WARN)
    return Card("Power", figures, f"Grid draw kept under the hard cap at {', '.join(capped)}.", OK)


def _energy_card(summary: Mapping[str, Any]) -> Card:
    return Card(
        "Energy",
        [("facility energy", _f(summary, "energy.facility_mwh")), ("IT energy", _f(summary, "energy.it_mwh"))],
        f"PUE {_f(summary, 'energy.pue')} over all sites; idle GPUs and nodes used "
        f"{_f(summary, 'energy.idle_it_mwh')} of the IT energy.",
    )


def _carbon_card(summary: Mapping[str, Any]) -> Card:
    per_site = {n: number(s.get("carbon_t")) for n, s in site_records(summary).items()}
    ranked = sorted(((v, n) for n, v in per_site.items() if v is not None), reverse=True)
    note = "Location-based, on each site's own grid."
    if ranked:
        note += f" Most at {ranked[0][1]} ({format_value(ranked[0][0], 'carbon_t')})."
    return Card("Carbon", [("emitted", _f(summary, "carbon.total_t"))], note)


def _cost_card(summary: Mapping[str, Any]) -> Card:
    return Card(
        "Cost",
        [("total", _f(summary, "cost.total_eur")), ("of which egress", _f(summary, "cost.egress_eur"))],
        f"Electricity {_f(summary, 'cost.energy_eur')}; egress is paid on the data moved between sites.",
    )


def _network_card(summary: Mapping[str, Any]) -> Card:
    used = [link for link in network_links(summary) if (number(link.get("tb")) or 0.0) > 0]
    note = "No data crossed a link: every job ran at its home site."
    if used:
        top = max(used, key=lambda link: number(link.get("tb")) or 0.0)
        note = f"Busiest link {top.get('from')} → {top.get('to')} ({format_value(top.get('tb'), 'tb')} TB)."
    return Card(
        "Inter-site traffic",
        [
            ("data moved", f"{format_value(get(summary, 'network.tb'), 'tb')} TB"),
            ("transfers", _f(summary, "network.transfers")),
        ],
        note,
    )


def _inference_card(summary: Mapping[str, Any]) -> Card:
    rows = inference_rows(summary)
    met = sum(1 for r in rows if r.get("ttft_met") is True)
    figures = [("GPU-time serving", _f(summary, "inference.gpu_h"))]
    if not rows:
        return Card("Inference", figures)
    figures.append(("regions within the p99 TTFT", f"{met} of {len(rows)}"))
    note = "Time to first token includes the network round trip from the users' region to the serving site."
    return Card("Inference", figures, note, OK if met == len(rows) else WARN)


def federation_cards(summary: Mapping[str, Any]) -> list[Card]:
    """The federation's first screen."""
    cards = [_federation_card(summary), _utilisation_card(summary), _jobs_card(summary), _residency_card(summary)]
    cards += [_power_card(summary), _energy_card(summary), _carbon_card(summary), _cost_card(summary)]
    cards.append(_network_card(summary))
    if summary.get("inference"):
        cards.append(_inference_card(summary))
    return cards
