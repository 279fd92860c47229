"""The command line's tables: the KPI table a run prints, and plain row tables (rich, terminal only)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = ["kpi_table", "rows_table"]


def kpi_table(summary: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    util = summary["utilisation"]
    energy = summary["energy"]
    power = summary["power"]
    jobs = summary["jobs"]
    wait = summary["wait_s"]

    def hours(x: float | None) -> str:
        return "-" if x is None else f"{x / 3600:.2f} h"

    rows = [
        ("GPUs", f"{summary['gpus_total']:,}"),
        ("horizon", f"{summary['horizon_s'] / 86400:.2f} d"),
        ("GPUs allocated", f"{util['allocated_fraction']:.1%}"),
        ("GPUs busy", f"{util['busy_fraction']:.1%}"),
        ("IT energy", f"{energy['it_mwh']:,.1f} MWh"),
        ("facility energy", f"{energy['facility_mwh']:,.1f} MWh"),
        ("peak facility power", f"{power['peak_facility_mw']:,.2f} MW"),
        ("mean facility power", f"{power['mean_facility_mw']:,.2f} MW"),
        ("jobs submitted / completed", f"{jobs['submitted']:,} / {jobs['completed']:,}"),
        ("jobs running / queued at end", f"{jobs['running_at_end']:,} / {jobs['queued_at_end']:,}"),
        ("wait p50 / p95 / p99", f"{hours(wait['p50'])} / {hours(wait['p95'])} / {hours(wait['p99'])}"),
    ]
    if "carbon" in summary:
        rows.append(("carbon (location-based)", f"{summary['carbon']['total_t']:,.0f} t CO2"))
    if "cost" in summary:
        rows.append(("electricity cost", f"EUR {summary['cost']['total_eur']:,.0f}"))
    if "inference" in summary:
        inf = summary["inference"]
        rows.append(
            (
                "inference GPU-hours / training lost to preemption",
                f"{inf['gpu_h']:,.0f} / {inf['training_lost_gpu_h']:,.0f}",
            )
        )
        for name, svc in inf["services"].items():
            slo = svc["slo"]
            rows.append((f"  {name}: SLO attainment", f"{slo['attainment']:.1%} ({'met' if slo['met'] else 'missed'})"))
    if "reliability" in summary:
        rel = summary["reliability"]
        ettr = rel["ettr"].get("overall") if isinstance(rel.get("ettr"), dict) else rel.get("ettr")
        rows.append(("interruptions / lost GPU-time", f"{rel['interruptions']:,} / {rel['lost_fraction']:.1%}"))
        if isinstance(ettr, int | float):
            rows.append(("effective training time ratio", f"{ettr:.3f}"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def rows_table(rows: list[list[str]], title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for i, name in enumerate(rows[0]):
        table.add_column(name, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows[1:]:
        table.add_row(*row)
    return table
