"""The federation's report: several sites on one clock, as one page in the single-site report's look.

The first screen's cards give the federation (sites, GPUs, placement), utilisation, jobs, the residency audit's
verdict, power, energy, carbon, cost with egress and inter-site traffic. The sections follow: the sites side by
side (each linking to its own report in ``sites/<name>/``), the residency audit (where each workload ran and
where each region was served), the inter-site traffic per directed link, the cost, then the federation's totals
in the single-site sections (:func:`gigafactory_sim.report.sections.build_sections`). Pages are written by
:func:`gigafactory_sim.report.render.page_markdown` and :func:`~gigafactory_sim.report.render.page_html`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from gigafactory_sim.report.federation_story import (
    federation_cards,
    inference_rows,
    network_links,
    number,
    site_records,
    training_rows,
)
from gigafactory_sim.report.format import MISSING, format_value, sig
from gigafactory_sim.report.plots_federation import FEDERATION_PLOTS, site_names
from gigafactory_sim.report.render import Page, page_html, page_markdown, partial_note, subtitle
from gigafactory_sim.report.sections import Section, build_sections
from gigafactory_sim.report.tables import Table, get

__all__ = ["federation_page", "federation_sections", "render_html", "render_markdown"]
_OWN_KEYS = frozenset({"sites", "residency", "network", "placement", "cost"})
"""Summary sections this module shows itself; the rest go to the single-site sections."""
_CAPTIONS = {spec.name: spec.caption for spec in FEDERATION_PLOTS}
_SITE_PLOTS = ("allocation_by_site", "grid_by_site")
_RESIDENCY_PLOTS = ("workload_by_site",)


def _f(summary: Mapping[str, Any], key: str) -> str:
    return format_value(get(summary, key), key)


# --- sections ---------------------------------------------------------------------------------------------

_SITE_ROWS: tuple[tuple[str, str], ...] = (
    ("country", "country"),
    ("in the EU", "eu"),
    ("operator", "operator"),
    ("assurance level", "assurance"),
    ("GPUs", "gpus"),
    ("GPUs allocated", "allocated_fraction"),
    ("GPUs busy", "busy_fraction"),
    ("IT energy", "it_mwh"),
    ("facility energy", "facility_mwh"),
    ("drawn from the grid", "grid_import_mwh"),
    ("peak grid draw", "peak_grid_mw"),
    ("hard cap", "hard_cap_mw"),
    ("carbon", "carbon_t"),
    ("electricity cost", "cost_eur"),
    ("jobs submitted", "jobs_submitted"),
    ("jobs completed", "jobs_completed"),
    ("mean wait", "mean_wait_h"),
)


def _site_table(summary: Mapping[str, Any], reports: Mapping[str, str]) -> Table:
    sites = site_records(summary)
    rows = [
        [label, *(format_value(s.get(key), key) if key in s else MISSING for s in sites.values())]
        for label, key in _SITE_ROWS
    ]
    links: dict[tuple[int, int], str] = {}
    if reports:
        rows.append(["own report", *(f"{name} report" if name in reports else MISSING for name in sites)])
        links = {(len(rows) - 1, i + 1): reports[name] for i, name in enumerate(sites) if name in reports}
    return Table("Per site", ["", *sites], rows, links=links)


def _training_table(summary: Mapping[str, Any]) -> Table | None:
    rows = training_rows(summary)
    if not rows:
        return None
    totals: dict[str, float] = {}
    for r in rows:
        totals[str(r.get("workload"))] = totals.get(str(r.get("workload")), 0.0) + (number(r.get("gpu_h")) or 0.0)
    cells = []
    for r in rows:
        total = totals[str(r.get("workload"))]
        share = (number(r.get("gpu_h")) or 0.0) / total if total > 0 else None
        cells.append(
            [
                str(r.get("workload", MISSING)).removeprefix("training:"),
                str(r.get("site", MISSING)),
                format_value(r.get("jobs")),
                format_value(r.get("gpu_h"), "gpu_h"),
                format_value(share, "share"),
                format_value(r.get("allowed")),
            ]
        )
    headers = ["training workload", "site", "jobs", "GPU-time", "share of the workload", "allowed"]
    return Table("Training: where each workload ran", headers, cells, [False, False, True, True, True, False])


def _inference_table(summary: Mapping[str, Any]) -> Table | None:
    rows = inference_rows(summary)
    if not rows:
        return None
    cells = [
        [
            str(r.get("workload", MISSING)).removeprefix("inference:"),
            str(r.get("region", MISSING)),
            str(r.get("site", MISSING)),
            sig(float(r["requests"])) if number(r.get("requests")) is not None else MISSING,
            sig(float(r["output_tokens"])) if number(r.get("output_tokens")) is not None else MISSING,
            format_value(r.get("rtt_ms"), "rtt_ms"),
            format_value(r.get("ttft_p99_s"), "ttft_p99_s"),
            format_value(r.get("e2e_p99_s"), "e2e_p99_s"),
            format_value(r.get("ttft_met")),
            format_value(r.get("allowed")),
        ]
        for r in rows
    ]
    headers = ["service", "users in", "served at", "requests", "output tokens", "network RTT"]
    headers += ["p99 TTFT incl. network", "p99 end to end", "TTFT met", "allowed"]
    return Table("Inference: where each region was served", headers, cells, [False] * 3 + [True] * 5 + [False] * 2)


def _residency_section(summary: Mapping[str, Any], plots: Sequence[str]) -> Section:
    violations = number(get(summary, "residency.violations"))
    if violations == 0:
        verdict = "0 violations: every rule kept."
    elif violations is None:
        verdict = "No residency audit recorded."
    else:
        verdict = f"{int(violations):,} violations: work ran where its rules forbid (allowed: no)."
    intro = f"{verdict} One row per workload and site it ran at; 'allowed' is the site's standing under the rules."
    tables = [t for t in (_training_table(summary), _inference_table(summary)) if t is not None]
    return Section("residency", "Residency audit", intro, tables, [p for p in _RESIDENCY_PLOTS if p in plots])


def _used(link: Mapping[str, Any]) -> bool:
    return (number(link.get("transfers")) or 0.0) > 0


def _network_table(summary: Mapping[str, Any]) -> Table:
    used = [link for link in network_links(summary) if _used(link)]
    links = sorted(used, key=lambda link: -(number(link.get("tb")) or 0.0))
    cells = [
        [
            f"{link.get('from', MISSING)} → {link.get('to', MISSING)}",
            format_value(link.get("transfers")),
            format_value(link.get("arrived")),
            sig(float(link["tb"])) if number(link.get("tb")) is not None else MISSING,
            format_value(link.get("busy_h"), "busy_h"),
            format_value(link.get("transfer_h"), "transfer_h"),
            format_value(link.get("egress_eur"), "egress_eur"),
        ]
        for link in links
    ]
    total_tb = number(get(summary, "network.tb"))
    tb = sig(total_tb) if total_tb is not None else MISSING
    transfers, egress = _f(summary, "network.transfers"), _f(summary, "network.egress_eur")
    cells.append(["all links", transfers, MISSING, tb, MISSING, MISSING, egress])
    headers = ["link (from → to)", "transfers", "arrived", "TB", "link busy", "time in transfer", "egress"]
    return Table("Traffic per directed link", headers, cells)


def _network_section(summary: Mapping[str, Any]) -> Section:
    intro = (
        "Data a job needs at a site other than its home travels over the link at its bandwidth, shared by the "
        "transfers under way; egress is paid per GB leaving a site. 'Time in transfer' adds up every "
        "transfer's duration; 'link busy' is the time the link carried any."
    )
    idle = [f"{link.get('from')} → {link.get('to')}" for link in network_links(summary) if not _used(link)]
    if idle:
        intro += f" Links that carried nothing: {', '.join(idle)}."
    return Section("network", "Inter-site traffic", intro, [_network_table(summary)])


def _cost_section(summary: Mapping[str, Any]) -> Section:
    rows = [
        ["electricity", _f(summary, "cost.energy_eur")],
        ["egress between sites", _f(summary, "cost.egress_eur")],
        ["total", _f(summary, "cost.total_eur")],
    ]
    return Section("cost", "Cost", "", [Table("Cost over the run", ["", "value"], rows)])


def federation_sections(
    summary: Mapping[str, Any], jobs: pd.DataFrame, plots: Sequence[str], reports: Mapping[str, str]
) -> list[Section]:
    """The federation's sections in page order; ``reports`` maps a site to the address of its own report."""
    intro = "Each site's own report (its power, grid, jobs and plots) is linked in the table's last row."
    sites = Section(
        "sites", "Sites side by side", intro, [_site_table(summary, reports)], [p for p in _SITE_PLOTS if p in plots]
    )
    out = [sites, _residency_section(summary, plots), _network_section(summary)]
    if "cost" in summary:
        out.append(_cost_section(summary))
    rest = build_sections({k: v for k, v in summary.items() if k not in _OWN_KEYS}, jobs, [])
    for section in rest:
        if section.id == "grid" and "grid" not in summary:  # cost has its own section above
            section.title = "Carbon"
    return out + rest


def _subtitle(summary: Mapping[str, Any], timeseries: pd.DataFrame) -> str:
    placement = [f"placement {summary['placement']}"] if summary.get("placement") else []
    return subtitle(summary, timeseries, lead=[f"{len(site_names(summary)):,} sites"], after_gpus=placement)


def federation_page(
    summary: Mapping[str, Any],
    timeseries: pd.DataFrame,
    jobs: pd.DataFrame,
    plots: Sequence[str],
    reports: Mapping[str, str],
) -> Page:
    """The federation's report page; ``plots`` names the plots drawn, ``reports`` links each site's report."""
    name = summary.get("scenario")
    return Page(
        f"Federation report: {name}" if name else "Federation report",
        _subtitle(summary, timeseries),
        partial_note(summary),
        federation_cards(summary),
        federation_sections(summary, jobs, plots, reports),
        _CAPTIONS,
    )


def render_markdown(
    summary: Mapping[str, Any],
    timeseries: pd.DataFrame,
    jobs: pd.DataFrame,
    plots: Mapping[str, str],
    reports: Mapping[str, str],
) -> str:
    """The federation's report as Markdown; ``plots`` maps a plot name to its path relative to the report."""
    return page_markdown(federation_page(summary, timeseries, jobs, list(plots), reports), plots)


def render_html(
    summary: Mapping[str, Any],
    timeseries: pd.DataFrame,
    jobs: pd.DataFrame,
    plots_png: Mapping[str, bytes],
    reports: Mapping[str, str],
) -> str:
    """The federation's report as one self-contained HTML page, plots inlined."""
    return page_html(federation_page(summary, timeseries, jobs, list(plots_png), reports), plots_png)
