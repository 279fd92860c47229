"""The run report's EU data-centre (EED) section: the Annex VII figures and indicators per calendar year.

Built from ``summary.json``'s ``eed`` section (present when the scenario models cooling, heat reuse or PPAs)
through :func:`gigafactory_sim.eed.report.eed_rows`, so the report, ``eed_report.json`` and ``eed_report.csv``
show the same numbers. Also used by ``gigafactory-sim eed RUN_DIR`` (:func:`eed_table_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from gigafactory_sim.eed.report import eed_rows
from gigafactory_sim.report.tables import Table, flatten

__all__ = ["EED_FIGURES", "eed_table_rows", "eed_tables"]

EED_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("period", "period_days", "{:.1f} d"),
    ("installed IT power", "installed_it_kw", "{:,.0f} kW"),
    ("size class", "size_class", "{}"),
    ("E_DC total energy", "e_dc_mwh", "{:,.1f} MWh"),
    ("E_IT IT energy", "e_it_mwh", "{:,.1f} MWh"),
    ("W_IN water input", "w_in_m3", "{:,.1f} m³"),
    ("E_REUSE reused heat", "e_reuse_mwh", "{:,.1f} MWh"),
    ("reused heat temperature", "reuse_temperature_c", "{:.0f} °C"),
    ("E_RES renewable (annual matching)", "e_res_mwh", "{:,.1f} MWh"),
    ("  on-site", "e_res_onsite_mwh", "{:,.1f} MWh"),
    ("  PPA", "e_res_ppa_mwh", "{:,.1f} MWh"),
    ("  guarantees of origin", "e_res_goo_mwh", "{:,.1f} MWh"),
    ("renewable matched hour by hour", "e_res_hourly_matched_mwh", "{:,.1f} MWh"),
    ("PUE = E_DC / E_IT", "pue", "{:.3f}"),
    ("WUE = W_IN / E_IT", "wue_l_per_kwh", "{:.3f} L/kWh"),
    ("ERF = E_REUSE / E_DC", "erf", "{:.3f}"),
    ("REF annual = E_RES / E_DC", "ref_annual", "{:.3f}"),
    ("REF hourly", "ref_hourly", "{:.3f}"),
    ("CUE (location-based)", "cue_kg_per_kwh", "{:.3f} kgCO2/kWh"),
    ("annualised E_DC", "annualised_e_dc_mwh", "{:,.0f} MWh/yr"),
    ("annualised W_IN", "annualised_w_in_m3", "{:,.0f} m³/yr"),
    ("annualised E_REUSE", "annualised_e_reuse_mwh", "{:,.0f} MWh/yr"),
)
"""``(label, row key, format)`` of each figure shown, in the regulation's order."""


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "not modelled"
    if isinstance(value, float) and value != value:  # NaN
        return "—"
    return fmt.format(value)


def eed_table_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers (one column per site and year) and formatted figure rows of ``rows`` (of :func:`eed_rows`)."""
    headers = ["figure"] + [f"{r['site']} {r['reporting_year']}{'' if r['full_year'] else ' (part)'}" for r in rows]
    body = [[label] + [_cell(r.get(key), fmt) for r in rows] for label, key, fmt in EED_FIGURES]
    return headers, body


def eed_tables(summary: Mapping[str, Any], jobs: pd.DataFrame) -> tuple[list[Table], set[str]]:
    """The EED section's table (a report-section custom block)."""
    section = summary.get("eed")
    if not isinstance(section, Mapping):
        return [], set()
    rows = eed_rows(dict(section))
    headers, body = eed_table_rows(rows)
    title = "Annex VII figures per calendar year (UTC); a part year's annualised figures are scaled, not measured"
    used = {key for key, _ in flatten({"eed": section})}
    return [Table(title, headers, body, [False] + [True] * len(rows))], used
