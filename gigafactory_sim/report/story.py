"""The report's first screen: the story of the run, one card per feature configured.

Each card names the feature, gives its one to three headline figures in sensible units and says in words
whether what the operator asked for was kept (a power cap, a budget, a latency objective): utilisation (the
steady-state figure when the run measured one), power and grid draw against the cap, energy, carbon, cost, each
inference service's objectives, goodput (ETTR and GPU-time lost), budgets and deferral.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gigafactory_sim.report.format import MISSING, format_value, human_duration, sig
from gigafactory_sim.report.tables import get

__all__ = ["Card", "steady_value", "story"]

OK, WARN = "ok", "warn"


@dataclass(frozen=True)
class Card:
    """One feature on the first screen: ``figures`` are ``(label, formatted value)``; ``status`` is ``'ok'``
    (what was asked for was kept), ``'warn'`` (it was not) or ``''``."""

    title: str
    figures: list[tuple[str, str]]
    note: str = ""
    status: str = ""


def _f(summary: Mapping[str, Any], key: str) -> str:
    return format_value(get(summary, key), key)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def steady_value(summary: Mapping[str, Any], key: str) -> Any:
    """``key`` (dotted, e.g. ``utilisation.allocated_fraction``) from ``statistics.steady``, nested or flat."""
    steady = get(summary, "statistics.steady")
    if not isinstance(steady, Mapping):
        return None
    if key in steady:
        return steady[key]
    nested = get(steady, key)
    return nested if nested is not None else steady.get(key.rsplit(".", 1)[-1])


def _utilisation(summary: Mapping[str, Any]) -> Card:
    key = "utilisation.allocated_fraction"
    steady = steady_value(summary, key)
    whole = _f(summary, key)
    if steady is None:
        return Card(
            "Utilisation",
            [("GPUs allocated", whole), ("GPUs busy", _f(summary, "utilisation.busy_fraction"))],
            "Share of GPU-time over the whole run.",
        )
    warmup = _num(get(summary, "statistics.warmup_s")) or 0.0
    rule = get(summary, "statistics.warmup_rule")
    how = {"mser5": " (chosen by MSER-5)", "fixed": ""}.get(str(rule), "")
    note = (
        f"After a warm-up of {human_duration(warmup)}{how}; {whole} over the whole run."
        if warmup > 0
        else f"No warm-up excluded; {whole} over the whole run."
    )
    means = get(summary, "statistics.batch_means")
    ci = (means.get(key) or get(means, key) or means.get("allocated_fraction")) if isinstance(means, Mapping) else None
    if isinstance(ci, Mapping) and ci.get("ci95_low") is not None:
        note += (
            f" 95 % confidence interval {format_value(ci['ci95_low'], key)} – "
            f"{format_value(ci.get('ci95_high'), key)} (batch means)."
        )
    figures = [("GPUs allocated, steady state", format_value(steady, key))]
    busy = steady_value(summary, "utilisation.busy_fraction")
    if busy is not None:
        figures.append(("GPUs busy, steady state", format_value(busy, "utilisation.busy_fraction")))
    return Card("Utilisation", figures, note)


def _jobs(summary: Mapping[str, Any]) -> Card:
    queued = _num(get(summary, "jobs.queued_at_end")) or 0.0
    note = "Every job submitted was started." if queued == 0 else f"{int(queued):,} jobs still queued at the end."
    return Card(
        "Jobs",
        [("completed", _f(summary, "jobs.completed")), ("wait, 95th percentile", _f(summary, "wait_s.p95"))],
        f"{_f(summary, 'jobs.submitted')} submitted. {note}",
        "" if queued == 0 else WARN,
    )


def _power(summary: Mapping[str, Any]) -> Card:
    figures = [
        ("peak facility power", _f(summary, "power.peak_facility_mw")),
        ("mean facility power", _f(summary, "power.mean_facility_mw")),
    ]
    note, status = "", ""
    if "grid" in summary:
        figures.append(("peak grid draw", _f(summary, "grid.peak_grid_import_mw")))
    cap = summary.get("power_cap")
    if isinstance(cap, Mapping):
        low, high = _num(cap.get("hard_cap_min_mw")), _num(cap.get("hard_cap_max_mw"))
        kept = cap.get("hard_cap_kept")
        if high is not None:
            span = f"{sig(high)} MW" if low in (None, high) else f"{sig(low or 0.0)}–{sig(high)} MW"
            excess = _num(cap.get("max_excess_over_hard_cap_mw"))
            if kept:
                note, status = f"Grid draw kept under the {span} hard cap at every moment.", OK
            else:
                by = f" by up to {sig(excess)} MW" if excess is not None else ""
                note, status = f"Grid draw exceeded the {span} hard cap{by}.", WARN
        throttled = _num(cap.get("throttled_gpu_h"))
        if throttled:
            note += f" {sig(throttled)} GPU-h throttled to keep it."
    return Card("Power", figures, note.strip(), status)


def _energy(summary: Mapping[str, Any]) -> Card:
    figures = [("facility energy", _f(summary, "energy.facility_mwh")), ("IT energy", _f(summary, "energy.it_mwh"))]
    return Card(
        "Energy",
        figures,
        f"PUE {_f(summary, 'energy.pue')}; idle GPUs and nodes used "
        f"{_f(summary, 'energy.idle_it_mwh')} of the IT energy.",
    )


def _carbon(summary: Mapping[str, Any]) -> Card:
    zone = get(summary, "grid.zone")
    where = f" on the {zone} grid" if zone else ""
    return Card(
        "Carbon",
        [
            ("emitted", _f(summary, "carbon.total_t")),
            ("intensity of energy drawn", _f(summary, "carbon.intensity_g_per_kwh")),
        ],
        f"Location-based{where}; grid mean {_f(summary, 'carbon.mean_grid_intensity_g_per_kwh')}.",
    )


def _cost(summary: Mapping[str, Any]) -> Card:
    return Card(
        "Electricity cost",
        [("total", _f(summary, "cost.total_eur")), ("price paid", _f(summary, "cost.price_paid_eur_per_mwh"))],
        f"Mean market price {_f(summary, 'cost.mean_price_eur_per_mwh')}.",
    )


def _slo_text(svc: Mapping[str, Any]) -> str:
    found = svc.get("slo")
    slo: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    parts = []
    for name, obj in (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("e2e", "e2e_s")):
        if slo.get(obj) is not None:
            parts.append(f"{name} ≤ {format_value(slo[obj], obj)}")
    q = _num(slo.get("quantile"))
    return (", ".join(parts) or "no objective") + (f" for {sig(100 * q)} % of requests" if q is not None else "")


def _inference(summary: Mapping[str, Any]) -> Card:
    services = get(summary, "inference.services")
    figures: list[tuple[str, str]] = []
    notes: list[str] = []
    missed = False
    if isinstance(services, Mapping):
        for name, svc in services.items():
            if not isinstance(svc, Mapping):
                continue
            met = get(svc, "slo.met")
            missed |= met is False
            share = format_value(get(svc, "slo.attainment"), "attainment")
            verdict = "met" if met else "missed" if met is False else MISSING
            figures.append((f"{name}: latency objectives", f"{verdict} ({share} within)"))
            notes.append(f"{name}: {_slo_text(svc)}.")
    figures.append(("GPU-time serving", _f(summary, "inference.gpu_h")))
    return Card("Inference", figures, " ".join(notes), WARN if missed else OK)


def _reliability(summary: Mapping[str, Any]) -> Card:
    return Card(
        "Failures and goodput",
        [
            ("ETTR", _f(summary, "reliability.ettr.overall")),
            ("GPU-time lost", _f(summary, "reliability.gpu_h.lost_total")),
        ],
        f"{_f(summary, 'reliability.interruptions')} job interruptions from "
        f"{_f(summary, 'reliability.node_failures')} node failures; "
        f"{_f(summary, 'reliability.lost_fraction')} of GPU-time lost to redone work, restarts and "
        f"checkpoints.",
    )


def _budgets(summary: Mapping[str, Any]) -> Card:
    figures = []
    broken = False
    for b in summary.get("budgets") or []:
        if not isinstance(b, Mapping):
            continue
        kept = b.get("kept")
        broken |= kept is False
        most = format_value(b.get("max_used_fraction"), "fraction")
        figures.append(
            (
                f"{b.get('kind', '')} budget per {b.get('per', 'period')}",
                f"{'kept' if kept else 'exceeded'}, at most {most} used",
            )
        )
    return Card("Budgets", figures, "", WARN if broken else OK)


def _deferral(summary: Mapping[str, Any]) -> Card:
    misses = _num(get(summary, "deferral.deadline_misses")) or 0.0
    return Card(
        "Deferral",
        [
            ("jobs deferred", _f(summary, "deferral.jobs_deferred")),
            ("mean delay", _f(summary, "deferral.mean_delay_h")),
        ],
        f"{_f(summary, 'deferral.deadline_misses')} deadlines missed of "
        f"{_f(summary, 'deferral.flexible_jobs')} flexible jobs, following the "
        f"{get(summary, 'deferral.signal') or ''} signal.",
        WARN if misses else OK,
    )


_CARDS = (
    ("utilisation", _utilisation),
    ("jobs", _jobs),
    ("power", _power),
    ("energy", _energy),
    ("carbon", _carbon),
    ("cost", _cost),
    ("inference", _inference),
    ("reliability", _reliability),
    ("budgets", _budgets),
    ("deferral", _deferral),
)


def story(summary: Mapping[str, Any]) -> list[Card]:
    """The first screen's cards, for the features this run has (utilisation, jobs, power and energy always)."""
    always = {"utilisation", "jobs", "power", "energy"}
    return [card(summary) for key, card in _CARDS if key in always or summary.get(key)]
