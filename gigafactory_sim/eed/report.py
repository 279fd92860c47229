"""The EU data-centre report: per site and calendar year, the Annex VII figures and indicators.

Energy Efficiency Directive (EU) 2023/1791 Art. 12 / Annex VII and Delegated Regulation (EU) 2024/1364:
operators of data centres with installed IT power of at least 500 kW report yearly E_DC (total energy), E_IT,
W_IN (water input), E_REUSE (reused waste heat), E_RES (renewable energy) and the indicators PUE = E_DC / E_IT,
WUE = W_IN / E_IT (L/kWh), ERF = E_REUSE / E_DC, REF = E_RES / E_DC. Here REF is given twice: with annual
matching (what the regulation counts: on-site use, PPA energy and guarantees of origin, up to E_DC) and with
hourly matching (per UTC hour ``min(E_DC, on-site + PPA)``, what a 24/7 carbon-free goal counts; guarantees
of origin do not match hours). CUE = location-based grid carbon / E_IT (kgCO2/kWh).

A run's figures come from ``summary.json``'s ``eed`` section (exact per-segment integrals, when the scenario
models cooling, heat reuse or PPAs) or, for other runs, from the time series' interval integrals (an interval
across a year edge is split pro rata); water is then not modelled (``null``) and no heat is reused. A period
shorter than its calendar year is reported as it is and, labelled, annualised (x year length / period).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Scenario, ScenarioBase

__all__ = [
    "EED_CSV",
    "EED_JSON",
    "REGULATION",
    "document_rows",
    "eed_csv",
    "eed_document",
    "eed_files",
    "eed_rows",
    "eed_section",
    "fallback_section",
    "run_rows",
    "size_class",
]

EED_JSON = "eed_report.json"
EED_CSV = "eed_report.csv"
REGULATION = "Directive (EU) 2023/1791 Art. 12, Annex VII; Delegated Regulation (EU) 2024/1364"

SIZE_CLASSES: tuple[tuple[float, str], ...] = (
    (100.0, "below 100 kW"),
    (500.0, "very small (100-500 kW)"),
    (1_000.0, "small (500 kW-1 MW)"),
    (2_000.0, "medium (1-2 MW)"),
    (10_000.0, "large (2-10 MW)"),
    (math.inf, "very large (10 MW and above)"),
)
"""Size categories by installed IT power (upper bound, kW); reporting is due from 500 kW (Art. 12)."""

REPORTING_THRESHOLD_KW = 500.0


def size_class(installed_it_kw: float) -> str:
    """The size category of a site with ``installed_it_kw`` of installed IT power."""
    return next(label for bound, label in SIZE_CLASSES if installed_it_kw < bound)


def _identity(scenario: Scenario) -> dict[str, Any]:
    """Identity fields: name, country, installed IT power (every GPU busy at its board limit), areas."""
    from gigafactory_sim.sim.facility import PowerTable  # the power figures of the facility (no engine)

    ident = scenario.eed
    return {
        "site": ident.name if ident is not None and ident.name else scenario.facility.name,
        "country": scenario.facility.country,
        "operator": ident.operator if ident is not None else None,
        "floor_area_m2": ident.floor_area_m2 if ident is not None else None,
        "computer_room_area_m2": ident.computer_room_area_m2 if ident is not None else None,
        "installed_it_kw": PowerTable(scenario).ceiling_it_w() / 1e3,
        "guarantees_of_origin_mwh_per_year": ident.guarantees_of_origin_mwh if ident is not None else 0.0,
        "cooling": scenario.cooling.kind if scenario.cooling is not None else None,
        "reuse_temperature_c": scenario.heat_reuse.supply_temperature_c if scenario.heat_reuse else None,
        "start": pd.Timestamp(scenario.start).isoformat(),
    }


def eed_section(scenario: Scenario, years: list[dict[str, Any]]) -> dict[str, Any]:
    """``summary.json``'s ``eed`` section: identity fields and the per-year exact totals."""
    return {**_identity(scenario), "source": "exact per-segment integrals", "years": years}


def _overlap(t0: np.ndarray, t1: np.ndarray, a: float, b: float) -> np.ndarray:
    span = np.maximum(t1 - t0, 1e-300)
    return np.clip((np.minimum(t1, b) - np.maximum(t0, a)) / span, 0.0, 1.0)


def fallback_section(scenario: Scenario, timeseries: pd.DataFrame) -> dict[str, Any]:
    """The ``eed`` section of a run that models no EED figures, from its time series' interval integrals."""
    start = pd.Timestamp(scenario.start)
    end = start + pd.Timedelta(seconds=scenario.horizon_s)
    last = (end - pd.Timedelta(microseconds=1)).year
    t0 = timeseries["t_start_s"].to_numpy(float)
    t1 = timeseries["t_end_s"].to_numpy(float)
    dt_h = (t1 - t0) / 3600.0

    def col(name: str) -> np.ndarray:
        return timeseries[name].to_numpy(float) if name in timeseries else np.zeros(len(t0))

    fac, it, used = col("facility_power_mw") * dt_h, col("it_power_mw") * dt_h, col("renewable_used_mw") * dt_h
    years = []
    for y in range(start.year, last + 1):
        a = max((pd.Timestamp(year=y, month=1, day=1, tz="UTC") - start).total_seconds(), 0.0)
        b = min((pd.Timestamp(year=y + 1, month=1, day=1, tz="UTC") - start).total_seconds(), scenario.horizon_s)
        w = _overlap(t0, t1, a, b)
        years.append(
            {
                "year": y,
                "from_s": a,
                "to_s": b,
                "e_dc_mwh": float(np.sum(fac * w)),
                "e_it_mwh": float(np.sum(it * w)),
                "w_in_m3": None,
                "e_reuse_mwh": 0.0,
                "e_res_onsite_mwh": float(np.sum(used * w)),
                "e_res_ppa_mwh": 0.0,
                "e_res_hourly_matched_mwh": float(np.sum(used * w)),
                "carbon_t": float(np.sum(col("carbon_t") * w)) if "carbon_t" in timeseries else None,
            }
        )
    return {**_identity(scenario), "source": "time-series interval integrals", "years": years}


def _ratio(x: float | None, y: float) -> float | None:
    return None if x is None or y <= 0 else x / y


def _year_row(section: dict[str, Any], yr: dict[str, Any]) -> dict[str, Any]:
    """One report row: the period, the energies, the renewables by kind and the indicators."""
    start = pd.Timestamp(section["start"])
    y = int(yr["year"])
    year_s = pd.Timestamp(year=y + 1, month=1, day=1, tz="UTC") - pd.Timestamp(year=y, month=1, day=1, tz="UTC")
    year_len_s = year_s.total_seconds()
    covered_s = float(yr["to_s"]) - float(yr["from_s"])
    share = covered_s / year_len_s
    e_dc, e_it = float(yr["e_dc_mwh"]), float(yr["e_it_mwh"])
    onsite = min(float(yr["e_res_onsite_mwh"]), e_dc)
    ppa = min(float(yr["e_res_ppa_mwh"]), e_dc - onsite)
    goo = min(float(section["guarantees_of_origin_mwh_per_year"]) * share, e_dc - onsite - ppa)
    e_res = onsite + ppa + goo
    w_in = yr["w_in_m3"]
    carbon = yr["carbon_t"]
    factor = year_len_s / covered_s if covered_s > 0 else math.nan
    row = {
        "site": section["site"],
        "country": section["country"],
        "operator": section["operator"],
        "reporting_year": y,
        "period_start": (start + pd.Timedelta(seconds=float(yr["from_s"]))).isoformat(),
        "period_end": (start + pd.Timedelta(seconds=float(yr["to_s"]))).isoformat(),
        "period_days": covered_s / 86400.0,
        "full_year": bool(abs(covered_s - year_len_s) < 1.0),
        "installed_it_kw": section["installed_it_kw"],
        "size_class": size_class(float(section["installed_it_kw"])),
        "reporting_obligation": bool(section["installed_it_kw"] >= REPORTING_THRESHOLD_KW),
        "floor_area_m2": section["floor_area_m2"],
        "computer_room_area_m2": section["computer_room_area_m2"],
        "cooling": section["cooling"],
        "e_dc_mwh": e_dc,
        "e_it_mwh": e_it,
        "w_in_m3": w_in,
        "e_reuse_mwh": float(yr["e_reuse_mwh"]),
        "reuse_temperature_c": section["reuse_temperature_c"] if float(yr["e_reuse_mwh"]) > 0 else None,
        "e_res_mwh": e_res,
        "e_res_onsite_mwh": onsite,
        "e_res_ppa_mwh": ppa,
        "e_res_goo_mwh": goo,
        "e_res_hourly_matched_mwh": float(yr["e_res_hourly_matched_mwh"]),
        "pue": _ratio(e_dc, e_it),
        "wue_l_per_kwh": _ratio(None if w_in is None else float(w_in), e_it),  # m3/MWh = L/kWh
        "erf": _ratio(float(yr["e_reuse_mwh"]), e_dc),
        "ref_annual": _ratio(e_res, e_dc),
        "ref_hourly": _ratio(float(yr["e_res_hourly_matched_mwh"]), e_dc),
        "carbon_t": carbon,
        "cue_kg_per_kwh": _ratio(None if carbon is None else float(carbon), e_it),  # t/MWh = kg/kWh
        "annualised_e_dc_mwh": e_dc * factor,
        "annualised_e_it_mwh": e_it * factor,
        "annualised_w_in_m3": None if w_in is None else float(w_in) * factor,
        "annualised_e_reuse_mwh": float(yr["e_reuse_mwh"]) * factor,
        "annualised_e_res_mwh": e_res * factor,
        "source": section["source"],
    }
    return row


def eed_rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The report rows of one site, one per calendar year."""
    return [_year_row(section, yr) for yr in section["years"]]


GROUPS: dict[str, tuple[str, ...]] = {
    "identity": (
        "site",
        "country",
        "operator",
        "installed_it_kw",
        "size_class",
        "reporting_obligation",
        "floor_area_m2",
        "computer_room_area_m2",
        "cooling",
    ),
    "period": ("reporting_year", "period_start", "period_end", "period_days", "full_year"),
    "energy": ("e_dc_mwh", "e_it_mwh"),
    "water": ("w_in_m3",),
    "heat_reuse": ("e_reuse_mwh", "reuse_temperature_c"),
    "renewables": ("e_res_mwh", "e_res_onsite_mwh", "e_res_ppa_mwh", "e_res_goo_mwh", "e_res_hourly_matched_mwh"),
    "indicators": ("pue", "wue_l_per_kwh", "erf", "ref_annual", "ref_hourly", "cue_kg_per_kwh", "carbon_t"),
    "annualised": (
        "annualised_e_dc_mwh",
        "annualised_e_it_mwh",
        "annualised_w_in_m3",
        "annualised_e_reuse_mwh",
        "annualised_e_res_mwh",
    ),
}
"""The JSON document's structure: identity, reporting period, then the Annex VII figures and indicators."""


def eed_document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``eed_report.json``: the regulation, then one entry per site and year grouped as :data:`GROUPS`."""
    reports = [{g: {k: row[k] for k in keys} for g, keys in GROUPS.items()} | {"source": row["source"]} for row in rows]
    note = "annualised figures scale a period shorter than its year by (year length / period); not measured"
    return {"regulation": REGULATION, "note": note, "reports": reports}


def eed_csv(rows: list[dict[str, Any]]) -> str:
    """``eed_report.csv``: one line per site and year, the columns of :func:`eed_rows` (empty = not reported)."""
    buf = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def run_rows(scenario: ScenarioBase, summary: dict[str, Any], timeseries: pd.DataFrame) -> list[dict[str, Any]]:
    """The report rows of one site's run: from its summary's ``eed`` section, else from its time series."""
    from gigafactory_sim.config.scenario import Scenario

    section = summary.get("eed")
    if not isinstance(section, dict):
        if not isinstance(scenario, Scenario):
            return []
        section = fallback_section(scenario, timeseries)
    return eed_rows(section)


def eed_files(rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """``eed_report.json`` and ``eed_report.csv`` of ``rows`` (one site's, or every site's for a federation)."""
    doc = json.dumps(_plain(eed_document(rows)), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return {EED_JSON: doc.encode("utf-8"), EED_CSV: eed_csv(rows).encode("utf-8")}


def _plain(obj: Any) -> Any:
    """JSON types: NaN -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def document_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The flat rows of an ``eed_report.json`` document (the inverse of :func:`eed_document`)."""
    rows = []
    for rep in doc["reports"]:
        row: dict[str, Any] = {"source": rep.get("source")}
        for group in GROUPS:
            row.update(rep[group])
        rows.append(row)
    return rows
