"""The command line's tables: the KPI table a run prints, and plain row tables (rich, terminal only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from gigafactory_sim.report.tables import get

__all__ = ["kpi_table", "rows_table"]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hours(x: Any) -> str:
    return f"{x / 3600:.2f} h" if _number(x) else "-"


_FORMATS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("GPUs", ("gpus_total",), "{:,}"),
    ("horizon", ("horizon_s",), "{:.2f} d"),
    ("GPUs allocated", ("utilisation.allocated_fraction",), "{:.1%}"),
    ("GPUs busy", ("utilisation.busy_fraction",), "{:.1%}"),
    ("IT energy", ("energy.it_mwh",), "{:,.1f} MWh"),
    ("facility energy", ("energy.facility_mwh",), "{:,.1f} MWh"),
    ("peak facility power", ("power.peak_facility_mw",), "{:,.2f} MW"),
    ("mean facility power", ("power.mean_facility_mw",), "{:,.2f} MW"),
    ("jobs submitted / completed", ("jobs.submitted", "jobs.completed"), "{:,.0f} / {:,.0f}"),
    ("jobs running / queued at end", ("jobs.running_at_end", "jobs.queued_at_end"), "{:,.0f} / {:,.0f}"),
)


def _plain_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The rows of :data:`_FORMATS` whose figures the summary has (the horizon in days), waits, carbon."""
    rows = []
    for label, keys, fmt in _FORMATS:
        values = [get(summary, k) for k in keys]
        if all(_number(v) for v in values):
            scaled = [v / 86400 if k == "horizon_s" else v for k, v in zip(keys, values, strict=True)]
            rows.append((label, fmt.format(*scaled)))
    wait = summary.get("wait_s")
    if isinstance(wait, Mapping):
        rows.append(("wait p50 / p95 / p99", " / ".join(_hours(wait.get(q)) for q in ("p50", "p95", "p99"))))
    if _number(get(summary, "carbon.total_t")):
        rows.append(("carbon (location-based)", f"{summary['carbon']['total_t']:,.0f} t CO2"))
    return rows


def _federation_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A federation's own lines: its sites and placement, residency violations, data moved and egress."""
    sites = summary.get("sites")
    if not isinstance(sites, Mapping) or "residency" not in summary:
        return []
    rows = [("sites / placement", f"{len(sites)} / {summary.get('placement') or '-'}")]
    violations = get(summary, "residency.violations")
    if _number(violations):
        rows.append(("residency violations", "0 (every rule kept)" if violations == 0 else f"{violations:,}"))
    if _number(get(summary, "network.tb")) and _number(get(summary, "network.transfers")):
        rows.append(
            (
                "inter-site transfers / data moved",
                f"{summary['network']['transfers']:,} / {summary['network']['tb']:,.1f} TB",
            )
        )
    if _number(get(summary, "cost.egress_eur")):
        rows.append(("egress cost", f"EUR {summary['cost']['egress_eur']:,.0f}"))
    return rows


def _feature_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Cost, inference services and reliability, where the run has them."""
    rows = []
    if _number(get(summary, "cost.total_eur")):
        label = (
            "total cost (electricity and egress)" if _number(get(summary, "cost.egress_eur")) else "electricity cost"
        )
        rows.append((label, f"EUR {summary['cost']['total_eur']:,.0f}"))
    inf = summary.get("inference")
    if isinstance(inf, Mapping) and _number(inf.get("gpu_h")):
        if _number(inf.get("training_lost_gpu_h")):
            rows.append(
                (
                    "inference GPU-hours / training lost to preemption",
                    f"{inf['gpu_h']:,.0f} / {inf['training_lost_gpu_h']:,.0f}",
                )
            )
        else:
            rows.append(("inference GPU-hours", f"{inf['gpu_h']:,.0f}"))
        services = inf.get("services")
        for name, svc in services.items() if isinstance(services, Mapping) else []:
            slo = svc.get("slo") if isinstance(svc, Mapping) else None
            if isinstance(slo, Mapping) and _number(slo.get("attainment")):
                met = "met" if slo.get("met") else "missed"
                rows.append((f"  {name}: SLO attainment", f"{slo['attainment']:.1%} ({met})"))
    rel = summary.get("reliability")
    if isinstance(rel, Mapping) and _number(rel.get("interruptions")) and _number(rel.get("lost_fraction")):
        ettr = rel["ettr"].get("overall") if isinstance(rel.get("ettr"), Mapping) else rel.get("ettr")
        rows.append(("interruptions / lost GPU-time", f"{rel['interruptions']:,} / {rel['lost_fraction']:.1%}"))
        if _number(ettr):
            rows.append(("effective training time ratio", f"{ettr:.3f}"))
    return rows


def kpi_table(summary: Mapping[str, Any], title: str) -> Table:
    """The KPIs a run prints: those of a single site or of a federation; a figure the summary lacks is
    skipped."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    for k, v in [*_plain_rows(summary), *_federation_rows(summary), *_feature_rows(summary)]:
        table.add_row(k, v)
    return table


def rows_table(rows: list[list[str]], title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for i, name in enumerate(rows[0]):
        table.add_column(name, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows[1:]:
        table.add_row(*row)
    return table
