"""The report's sections: one per feature configured, each a few readable tables and its plots.

A section is declared once in :data:`SECTIONS`: the summary sections it covers, its tables (rows named as a
person would name them, with the unit taken from the summary key) and the plots that belong to it. Figures of a
covered summary section that no table names are not dropped: they follow under "Other figures", named from their
keys, so a figure added to the summary later still shows. Summary sections no spec covers get a section of their
own in the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gigafactory_sim.report.eed_tables import eed_tables
from gigafactory_sim.report.format import MISSING, format_value, humanise
from gigafactory_sim.report.tables import Table, flatten, get, source_table

__all__ = ["SECTIONS", "Section", "SectionSpec", "build_sections"]

Row = tuple[str, str]
"""``(label, dotted key)``."""


@dataclass(frozen=True)
class Group:
    """A two-column table (figure, value) of named summary keys."""

    title: str
    rows: tuple[Row, ...]
    skip_missing: bool = False
    """Leave out rows whose value is None (e.g. a cap's limits when only budgets set the cap)."""


@dataclass(frozen=True)
class Entities:
    """A table of a mapping of records (clusters, services): ``rows`` are keys within each record.

    With ``across`` the records are columns (few records, many figures); otherwise rows. The last Entities
    block of a key also shows the record's figures no block names.
    """

    title: str
    key: str
    rows: tuple[Row, ...]
    header: str = ""
    across: bool = True


Custom = Callable[[Mapping[str, Any], pd.DataFrame], tuple[list[Table], set[str]]]
"""``(summary, jobs) -> (tables, dotted keys it showed)``."""


@dataclass(frozen=True)
class SectionSpec:
    """A report section: the summary sections it covers, its tables, its plots."""

    id: str
    title: str
    keys: tuple[str, ...]
    blocks: tuple[Group | Entities, ...] = ()
    plots: tuple[str, ...] = ()
    intro: str = ""
    custom: tuple[Custom, ...] = ()
    always: bool = False


@dataclass
class Section:
    """A section as rendered: its tables and the names of its plots."""

    id: str
    title: str
    intro: str
    tables: list[Table]
    plots: list[str] = field(default_factory=list)


# --- custom tables ----------------------------------------------------------------------------------------


def _jobs_tables(summary: Mapping[str, Any], jobs: pd.DataFrame) -> tuple[list[Table], set[str]]:
    table = source_table(jobs)
    if table is None:
        return [], set()
    # the table is the summary's ``sources`` a row per class (its wait percentiles beyond p95: summary.json)
    sources = summary.get("sources")
    used = {f"sources.{k}" for k, _ in flatten(sources)} if isinstance(sources, Mapping) else set()
    return [table], used


def _records_table(title: str, records: Sequence[Mapping[str, Any]], columns: Sequence[Row], prefix: str) -> Table:
    rows = [[format_value(rec.get(key), f"{prefix}.{key}") for _, key in columns] for rec in records]
    return Table(title, [label for label, _ in columns], rows, [False] + [True] * (len(columns) - 1))


def _mtbf_table(summary: Mapping[str, Any], jobs: pd.DataFrame) -> tuple[list[Table], set[str]]:
    records = get(summary, "reliability.job_mtbf_by_size")
    if not isinstance(records, list) or not records:
        return [], set()
    columns = (
        ("cluster", "cluster"),
        ("GPUs", "gpus"),
        ("nodes", "nodes"),
        ("jobs", "jobs"),
        ("run time", "run_h"),
        ("failure interruptions", "failure_interruptions"),
        ("job MTBF", "mtbf_h"),
        ("model 1 / (nodes × rate)", "expected_mtbf_h"),
    )
    used = {f"reliability.job_mtbf_by_size.{i}.{k}" for i, rec in enumerate(records) for k in rec}
    return [_records_table("Job MTBF by size", records, columns, "reliability.job_mtbf_by_size")], used


_POOL_ROWS: tuple[Row, ...] = (
    ("GPUs per replica", "gpus_per_replica"),
    ("replicas on average", "replicas.mean"),
    ("GPUs on average", "gpus_mean"),
    ("GPU-time", "gpu_h"),
    ("utilisation", "utilisation"),
    ("capacity per replica", "capacity_per_replica_rps"),
    ("prefill time per request", "prefill_s_per_request"),
    ("concurrent requests per replica", "max_concurrent_per_replica"),
    ("requests served", "requests.served"),
    ("requests rejected", "requests.rejected"),
    ("requests late", "requests.late"),
    ("mean wait", "latency.mean_wait_s"),
    ("TTFT, mean", "latency.mean_ttft_s"),
    ("TTFT, 99th percentile", "latency.ttft_p99_s"),
    ("TPOT, mean", "latency.mean_tpot_s"),
    ("first to last token, mean", "latency.mean_e2e_s"),
    ("first to last token, 99th percentile", "latency.e2e_p99_s"),
    ("GPU energy", "energy.gpu_kwh"),
    ("IT energy", "energy.it_kwh"),
)


def _pools_tables(summary: Mapping[str, Any], jobs: pd.DataFrame) -> tuple[list[Table], set[str]]:
    """Disaggregated services: one column per prefill or decode pool, and the KV link of each service."""
    services = get(summary, "inference.services")
    if not isinstance(services, Mapping):
        return [], set()
    pools = {
        (name, pool): dict(flatten(rec))
        for name, svc in services.items()
        if isinstance(svc, Mapping) and isinstance(svc.get("pools"), Mapping)
        for pool, rec in svc["pools"].items()
    }
    if not pools:
        return [], set()
    used = {f"inference.services.{n}.pools.{p}.{k}" for (n, p), rec in pools.items() for k in rec}
    rows = [
        [label, *(format_value(rec.get(key), key) if key in rec else MISSING for rec in pools.values())]
        for label, key in _POOL_ROWS
        if any(key in rec for rec in pools.values())
    ]
    tables = [Table("Disaggregated services: prefill and decode pools", ["", *(f"{n}: {p}" for n, p in pools)], rows)]
    links = {n: svc["kv_link"] for n, svc in services.items() if isinstance(svc, Mapping) and "kv_link" in svc}
    if links:
        used |= {f"inference.services.{n}.kv_link.{k}" for n, link in links.items() for k in link}
        columns = (
            ("service", "service"),
            ("link", "kind"),
            ("Gb/s", "gbps"),
            ("mean transfer", "mean_transfer_s"),
            ("transfer at the objective quantile", "transfer_at_quantile_s"),
            ("KV moved (TB)", "moved_tb"),
        )
        records = [{"service": n, **link} for n, link in links.items()]
        tables.append(_records_table("Disaggregated services: KV cache transfers", records, columns, "kv_link"))
    return tables, used


def _budget_tables(summary: Mapping[str, Any], jobs: pd.DataFrame) -> tuple[list[Table], set[str]]:
    budgets = summary.get("budgets")
    if not isinstance(budgets, list):
        return [], set()
    tables = []
    used: set[str] = set()
    for i, b in enumerate(budgets):
        if not isinstance(b, Mapping):
            continue
        used |= {f"budgets.{i}.{k}" for k in b if k != "periods"}
        unit = str(b.get("unit", "")).lower()
        title = f"{str(b.get('kind', '')).capitalize()} budget per {b.get('per', 'period')}"
        head = [
            ["pacing", str(b.get("pacing", MISSING))],
            ["kept in every period", format_value(b.get("kept"))],
            ["most of a period's budget used", format_value(b.get("max_used_fraction"), "fraction")],
        ]
        tables.append(Table(title, ["figure", "value"], head))
        periods = [p for p in b.get("periods", []) if isinstance(p, Mapping)]
        used |= {f"budgets.{i}.periods.{j}.{k}" for j, p in enumerate(periods) for k in p}
        rows = [
            [
                str(p.get("start", ""))[:16].replace("T", " "),
                str(p.get("end", ""))[:16].replace("T", " "),
                format_value(p.get(f"budget_{unit}"), f"x.budget_{unit}"),
                format_value(p.get(f"used_{unit}"), f"x.used_{unit}"),
                format_value(p.get("used_fraction"), "used_fraction"),
                format_value(p.get("power_blocked_gpu_h"), "power_blocked_gpu_h"),
                format_value(p.get("work_slowed_gpu_h"), "work_slowed_gpu_h"),
            ]
            for p in periods
        ]
        tables.append(
            Table(
                f"{title}: periods (UTC)",
                ["from", "to", "budget", "used", "used share", "work held back", "work slowed"],
                rows,
                [False, False, True, True, True, True, True],
            )
        )
    return tables, used


def _steady_sources_table(by_source: Mapping[str, Any]) -> Table:
    """``statistics.steady.sources``: a row per source (jobs submitted in the span, started and completed in it,
    the share that waited, the waits of those submitted in it that started)."""
    rows = []
    for name, f in by_source.items():
        f = f if isinstance(f, Mapping) else {}
        wait = f.get("wait_s")
        w: Mapping[str, Any] = wait if isinstance(wait, Mapping) else {}
        rows.append(
            [
                str(name),
                format_value(f.get("submitted")),
                format_value(f.get("started")),
                format_value(f.get("completed")),
                format_value(f.get("waited_fraction"), "waited_fraction"),
                *(format_value(w.get(q), "wait_s") for q in ("mean", "p50", "p95", "p99", "max")),
            ]
        )
    headers = ["source", "submitted", "started", "completed", "waited", "mean wait", "median", "p95", "p99", "longest"]
    return Table("Steady state by source", headers, rows, [False] + [True] * 9)


def _statistics_tables(summary: Mapping[str, Any], jobs: pd.DataFrame) -> tuple[list[Table], set[str]]:
    stats = summary.get("statistics")
    if not isinstance(stats, Mapping):
        return [], set()
    used = {f"statistics.{k}" for k in ("warmup_s", "warmup_rule", "span_s")}
    span = stats.get("span_s")
    span_txt = MISSING
    if isinstance(span, list | tuple) and len(span) == 2:
        span_txt = f"{format_value(span[0], 's')} to {format_value(span[1], 's')} after the start"
    rule = {"none": "none", "fixed": "fixed duration", "mser5": "MSER-5 (automatic)"}.get(
        str(stats.get("warmup_rule")), str(stats.get("warmup_rule", MISSING))
    )
    tables = [
        Table(
            "Warm-up and the span measured",
            ["figure", "value"],
            [
                ["warm-up excluded", format_value(stats.get("warmup_s"), "warmup_s")],
                ["warm-up rule", rule],
                ["span of the steady-state figures", span_txt],
            ],
        )
    ]
    steady = stats.get("steady")
    if isinstance(steady, Mapping):
        flat = flatten({k: v for k, v in steady.items() if k != "sources"})
        used |= {f"statistics.steady.{k}" for k, _ in flat}
        tables.append(
            Table(
                "Steady state (warm-up excluded)",
                ["figure", "value"],
                [[humanise(k), format_value(v, k)] for k, v in flat],
            )
        )
        by_source = steady.get("sources")
        if isinstance(by_source, Mapping) and by_source:
            tables.append(_steady_sources_table(by_source))
            used |= {f"statistics.steady.sources.{k}" for k, _ in flatten(by_source)}
    means = stats.get("batch_means")
    if isinstance(means, Mapping) and means:
        rows = []
        for kpi, m in means.items():
            if not isinstance(m, Mapping):
                continue
            used |= {f"statistics.batch_means.{kpi}.{k}" for k in m}
            lo, hi = m.get("ci95_low"), m.get("ci95_high")
            ci = f"{format_value(lo, kpi)} – {format_value(hi, kpi)}" if lo is not None else MISSING
            rows.append(
                [
                    humanise(str(kpi)),
                    format_value(m.get("mean"), kpi),
                    ci,
                    format_value(m.get("batches")),
                    format_value(m.get("lag1_autocorr")),
                ]
            )
        tables.append(
            Table(
                "Confidence from batch means (one run)",
                ["figure", "mean", "95 % confidence interval", "batches", "lag-1 correlation"],
                rows,
                [False, True, True, True, True],
            )
        )
    return tables, used


# --- the sections -----------------------------------------------------------------------------------------

SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(
        "statistics",
        "Steady-state statistics",
        ("statistics",),
        custom=(_statistics_tables,),
        intro="Figures measured after the warm-up, with confidence intervals from batch means of this run.",
    ),
    SectionSpec(
        "utilisation",
        "GPUs and jobs",
        ("gpus_total", "utilisation", "jobs", "wait_s", "clusters", "sources"),
        blocks=(
            Group(
                "GPU utilisation (share of GPU-time over the run)",
                (
                    ("GPUs", "gpus_total"),
                    ("allocated (held by jobs or replicas)", "utilisation.allocated_fraction"),
                    ("busy (doing work)", "utilisation.busy_fraction"),
                    ("held by training", "utilisation.training_allocated_fraction"),
                    ("GPU-time allocated", "utilisation.allocated_gpu_h"),
                    ("GPU-time busy", "utilisation.busy_gpu_h"),
                ),
            ),
            Group(
                "Jobs",
                (
                    ("submitted", "jobs.submitted"),
                    ("started", "jobs.started"),
                    ("completed", "jobs.completed"),
                    ("failed", "jobs.failed"),
                    ("running at the end", "jobs.running_at_end"),
                    ("queued at the end", "jobs.queued_at_end"),
                    ("running on average", "jobs.mean_running"),
                    ("queued on average", "jobs.mean_queued"),
                ),
            ),
            Group(
                "Wait from submission to start (jobs that started)",
                (
                    ("mean", "wait_s.mean"),
                    ("median", "wait_s.p50"),
                    ("95th percentile", "wait_s.p95"),
                    ("99th percentile", "wait_s.p99"),
                    ("longest", "wait_s.max"),
                ),
            ),
            Entities(
                "Clusters",
                "clusters",
                (
                    ("GPUs", "gpus"),
                    ("allocated", "allocated_fraction"),
                    ("busy", "busy_fraction"),
                    ("IT energy", "it_mwh"),
                    ("of which training", "training_mwh"),
                    ("of which inference", "inference_mwh"),
                    ("GPU-time serving inference", "inference_fraction"),
                ),
                header="cluster",
            ),
        ),
        custom=(_jobs_tables,),
        plots=("utilisation", "gpus_by_use", "queue", "wait_cdf"),
        always=True,
    ),
    SectionSpec(
        "energy",
        "Power and energy",
        ("energy", "power"),
        blocks=(
            Group(
                "Energy over the run",
                (
                    ("facility (IT × PUE)", "energy.facility_mwh"),
                    ("IT", "energy.it_mwh"),
                    ("IT, training", "energy.training_it_mwh"),
                    ("IT, inference", "energy.inference_it_mwh"),
                    ("IT, idle GPUs and nodes", "energy.idle_it_mwh"),
                    ("PUE", "energy.pue"),
                ),
            ),
            Group(
                "Power (interval means)",
                (
                    ("peak facility power", "power.peak_facility_mw"),
                    ("mean facility power", "power.mean_facility_mw"),
                    ("peak IT power", "power.peak_it_mw"),
                    ("mean IT power", "power.mean_it_mw"),
                    ("peak reached", "power.peak_at_s"),
                ),
            ),
        ),
        plots=("power", "energy"),
    ),
    SectionSpec(
        "power_cap",
        "Power cap",
        ("power_cap",),
        blocks=(
            Group(
                "The cap and how it was kept",
                (
                    ("hard cap, lowest", "power_cap.hard_cap_min_mw"),
                    ("hard cap, highest", "power_cap.hard_cap_max_mw"),
                    ("peak grid draw", "power_cap.peak_grid_import_mw"),
                    ("hard cap kept", "power_cap.hard_cap_kept"),
                    ("largest excess over the hard cap", "power_cap.max_excess_over_hard_cap_mw"),
                    ("energy drawn above the hard cap", "power_cap.energy_over_hard_cap_mwh"),
                    ("largest excess over the effective cap", "power_cap.max_excess_over_effective_cap_mw"),
                    ("GPU-time throttled", "power_cap.throttled_gpu_h"),
                    ("work lost to lower clocks", "power_cap.work_slowed_gpu_h"),
                    ("work held back by admission", "power_cap.power_blocked_gpu_h"),
                    ("admission refusals", "power_cap.admission_refusals"),
                    ("jobs suspended", "power_cap.jobs_suspended"),
                    ("work suspended", "power_cap.work_suspended_gpu_h"),
                    ("policies, in order", "power_cap.policies"),
                ),
                skip_missing=True,
            ),
        ),
        plots=("power_vs_cap",),
    ),
    SectionSpec(
        "budgets", "Energy, carbon and cost budgets", ("budgets",), custom=(_budget_tables,), plots=("energy_budget",)
    ),
    SectionSpec(
        "grid",
        "Grid, carbon and cost",
        ("grid", "carbon", "cost"),
        blocks=(
            Group(
                "Grid and on-site generation",
                (
                    ("grid zone", "grid.zone"),
                    ("facility energy", "grid.facility_mwh"),
                    ("drawn from the grid", "grid.grid_import_mwh"),
                    ("peak grid draw", "grid.peak_grid_import_mw"),
                    ("peak facility power", "grid.peak_facility_mw"),
                    ("effective PUE", "grid.pue_effective"),
                    ("on-site solar", "grid.solar_mw"),
                    ("on-site wind", "grid.wind_mw"),
                    ("renewables available", "grid.renewable_available_mwh"),
                    ("renewables used", "grid.renewable_used_mwh"),
                    ("share of renewables used on site", "grid.self_consumption_fraction"),
                    ("renewable share of facility energy", "grid.renewable_share"),
                ),
            ),
            Group(
                "Carbon (location-based)",
                (
                    ("emitted", "carbon.total_t"),
                    ("training", "carbon.by_class_t.training"),
                    ("inference", "carbon.by_class_t.inference"),
                    ("idle capacity", "carbon.by_class_t.idle"),
                    ("intensity of the energy drawn", "carbon.intensity_g_per_kwh"),
                    ("mean grid intensity", "carbon.mean_grid_intensity_g_per_kwh"),
                    ("carbon-weighted utilisation (> 1: load in dirtier hours)", "carbon.carbon_weighted_utilisation"),
                ),
            ),
            Group(
                "Electricity cost",
                (
                    ("total", "cost.total_eur"),
                    ("training", "cost.by_class_eur.training"),
                    ("inference", "cost.by_class_eur.inference"),
                    ("idle capacity", "cost.by_class_eur.idle"),
                    ("price paid", "cost.price_paid_eur_per_mwh"),
                    ("mean price", "cost.mean_price_eur_per_mwh"),
                    ("price-weighted utilisation (> 1: load in dearer hours)", "cost.price_weighted_utilisation"),
                    ("average per GPU-hour", "cost.average_eur_per_gpu_h"),
                    ("marginal per GPU-hour", "cost.marginal_eur_per_gpu_h"),
                ),
            ),
        ),
        plots=("power_vs_cap", "carbon_cost_by_class", "energy_budget"),
    ),
    SectionSpec(
        "eed",
        "EU data-centre report (EED)",
        ("eed",),
        custom=(eed_tables,),
        intro="Energy Efficiency Directive (EU) 2023/1791 Art. 12 / Annex VII and Delegated Regulation (EU) "
        "2024/1364: energy, water, reused heat and renewables per calendar year, with the indicators; the same "
        "figures as eed_report.json and eed_report.csv.",
    ),
    SectionSpec(
        "deferral",
        "Deferral of flexible jobs",
        ("deferral",),
        blocks=(
            Group(
                "Deferral",
                (
                    ("signal", "deferral.signal"),
                    ("rule", "deferral.rule"),
                    ("flexible jobs", "deferral.flexible_jobs"),
                    ("jobs deferred", "deferral.jobs_deferred"),
                    ("mean delay", "deferral.mean_delay_h"),
                    ("work deferred", "deferral.gpu_h_deferred"),
                    ("deadlines missed", "deferral.deadline_misses"),
                    ("still held at the end", "deferral.held_at_end"),
                ),
            ),
        ),
    ),
    SectionSpec(
        "inference",
        "Inference services",
        ("inference",),
        blocks=(
            Group(
                "Serving in the facility",
                (
                    ("GPU-time serving", "inference.gpu_h"),
                    ("IT energy serving", "inference.it_mwh"),
                    ("training jobs preempted", "inference.training_preemptions"),
                    ("training work lost to preemption", "inference.training_lost_gpu_h"),
                    ("GPU-time: training", "inference.facility_gpu_h.training"),
                    ("GPU-time: inference", "inference.facility_gpu_h.inference"),
                    ("GPU-time: idle", "inference.facility_gpu_h.idle"),
                    ("IT energy: training", "inference.facility_energy_it_mwh.training"),
                    ("IT energy: inference", "inference.facility_energy_it_mwh.inference"),
                    ("IT energy: idle", "inference.facility_energy_it_mwh.idle"),
                ),
            ),
            Entities(
                "Services: traffic and capacity",
                "inference.services",
                (
                    ("model", "model"),
                    ("fidelity", "fidelity"),
                    ("GPUs per replica", "gpus_per_replica"),
                    ("clusters", "clusters"),
                    ("requests offered", "requests.offered"),
                    ("requests served", "requests.served"),
                    ("not served", "requests.not_served_fraction"),
                    ("rejected", "requests.rejected"),
                    ("output tokens per second", "tokens.output_per_s"),
                    ("replicas on average", "replicas.mean"),
                    ("GPU-time", "replicas.gpu_h"),
                    ("replica utilisation", "utilisation"),
                    ("capacity per replica", "capacity_per_replica_rps"),
                    ("replica-hours short", "replicas.unmet_replica_h"),
                ),
                header="service",
            ),
            Entities(
                "Services: latency against the objectives",
                "inference.services",
                (
                    ("objective quantile", "slo.quantile"),
                    ("requests within every objective", "slo.attainment"),
                    ("objectives met", "slo.met"),
                    ("TTFT objective", "slo.ttft_s"),
                    ("TTFT, median", "latency.ttft_p50_s"),
                    ("TTFT, 99th percentile", "latency.ttft_p99_s"),
                    ("TPOT objective", "slo.tpot_s"),
                    ("TPOT, mean", "latency.mean_tpot_s"),
                    ("end-to-end objective", "slo.e2e_s"),
                    ("end-to-end, median", "latency.e2e_p50_s"),
                    ("end-to-end, 99th percentile", "latency.e2e_p99_s"),
                    ("latency estimated (fluid model)", "latency.estimated"),
                ),
                header="service",
            ),
            Entities(
                "Services: energy and everything else",
                "inference.services",
                (
                    ("GPU energy per output token", "energy.gpu_j_per_output_token"),
                    ("IT energy per request", "energy.it_wh_per_request"),
                    ("IT energy", "energy.it_kwh"),
                    ("GPU energy", "energy.gpu_kwh"),
                ),
                header="service",
            ),
        ),
        custom=(_pools_tables,),
        plots=("inference_demand",),
    ),
    SectionSpec(
        "reliability",
        "Failures and goodput",
        ("reliability",),
        blocks=(
            Group(
                "Failures",
                (
                    ("node failures", "reliability.node_failures"),
                    ("job interruptions", "reliability.interruptions"),
                    ("jobs failed (out of retries)", "reliability.failed_jobs"),
                ),
            ),
            Group(
                "Goodput",
                (
                    ("ETTR (productive share of training time)", "reliability.ettr.overall"),
                    ("GPU-time lost", "reliability.gpu_h.lost_total"),
                    ("share of GPU-time lost", "reliability.lost_fraction"),
                    ("GPU-time held by running jobs", "reliability.gpu_h.run"),
                    ("productive", "reliability.gpu_h.productive"),
                    ("work redone after failures", "reliability.gpu_h.lost_work"),
                    ("restarts", "reliability.gpu_h.restarts"),
                    ("checkpoints", "reliability.gpu_h.checkpoints"),
                    ("energy lost", "reliability.energy_mwh.lost_total"),
                    ("energy lost, share of training energy", "reliability.energy_mwh.lost_fraction_of_training"),
                ),
            ),
            Entities(
                "ETTR by job size (GPUs)",
                "reliability.ettr.by_size_class",
                (("jobs", "jobs"), ("ETTR", "ettr"), ("interruptions", "interruptions")),
                header="job size (GPUs)",
                across=False,
            ),
            Group(
                "Checkpointing",
                (
                    ("policy", "reliability.checkpointing.policy"),
                    ("checkpoint cost", "reliability.checkpointing.cost_s"),
                    ("restart overhead", "reliability.checkpointing.restart_overhead_s"),
                    ("retries allowed", "reliability.checkpointing.max_retries"),
                ),
            ),
        ),
        custom=(_mtbf_table,),
        plots=("interruptions", "goodput_vs_size"),
    ),
)
"""Every known section, in page order."""

_RUN_KEYS = frozenset({"scenario", "seed", "horizon_s"})


def _covers(key: str, spec: SectionSpec) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in spec.keys)


def _group_table(block: Group, summary: Mapping[str, Any], used: set[str]) -> Table | None:
    rows = []
    for label, key in block.rows:
        value = get(summary, key)
        if value is None and (block.skip_missing or not _present(summary, key)):
            continue
        used.add(key)
        if isinstance(value, Mapping):
            used.update(f"{key}.{k}" for k, _ in flatten(value))
        rows.append([label, format_value(value, key)])
    return Table(block.title, ["figure", "value"], rows) if rows else None


def _present(summary: Mapping[str, Any], dotted: str) -> bool:
    head, _, leaf = dotted.rpartition(".")
    parent = get(summary, head) if head else summary
    return isinstance(parent, Mapping) and leaf in parent


def _entities_table(block: Entities, summary: Mapping[str, Any], used: set[str], extra: bool) -> Table | None:
    records = get(summary, block.key)
    if not isinstance(records, Mapping) or not records or not all(isinstance(r, Mapping) for r in records.values()):
        return None
    flat = {str(name): dict(flatten(rec)) for name, rec in records.items()}
    named = [(label, key) for label, key in block.rows if any(key in rec for rec in flat.values())]
    if extra:
        earlier = {k.split(f"{block.key}.{n}.", 1)[1] for n in flat for k in used if k.startswith(f"{block.key}.{n}.")}
        known = {key for _, key in named} | earlier
        others = list(dict.fromkeys(k for rec in flat.values() for k in rec if k not in known))
        named += [(humanise(k), k) for k in others]
    if not named:
        return None
    used.update(f"{block.key}.{n}.{k}" for n in flat for _, k in named)
    cell = {n: [format_value(rec.get(k), k) if k in rec else MISSING for _, k in named] for n, rec in flat.items()}
    if block.across:
        rows = [[label, *(cell[n][i] for n in flat)] for i, (label, _) in enumerate(named)]
        return Table(block.title, [block.header or "", *flat], rows)
    rows = [[n, *cell[n]] for n in flat]
    return Table(block.title, [block.header or "", *(label for label, _ in named)], rows)


def _leftovers(summary: Mapping[str, Any], keys: Sequence[str], used: set[str], title: str) -> Table | None:
    rows = []
    for top in keys:
        value = summary.get(top)
        flat = flatten(value, f"{top}.") if isinstance(value, Mapping) else [(top, value)] if top in summary else []
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            flat = flatten({top: value})
        for key, v in flat:
            if key not in used:
                rows.append([humanise(key.split(".", 1)[1] if "." in key else key), format_value(v, key)])
    return Table(title, ["figure", "value"], rows) if rows else None


def build_sections(summary: Mapping[str, Any], jobs: pd.DataFrame, plots: Sequence[str] = ()) -> list[Section]:
    """The sections of this run's report, in page order, each with its tables and its share of ``plots``.

    Plots no section claims are gathered in a last "More plots" section.
    """
    out: list[Section] = []
    placed: set[str] = set()
    for spec in SECTIONS:
        if not spec.always and not any(k in summary for k in spec.keys):
            continue
        used: set[str] = set()
        tables: list[Table] = []
        custom_tables: list[Table] = []
        for custom in spec.custom:  # first, so that the blocks' "everything else" rows leave out what they show
            found, shown = custom(summary, jobs)
            custom_tables += found
            used |= shown
        last_of = {b.key: i for i, b in enumerate(spec.blocks) if isinstance(b, Entities)}
        for i, block in enumerate(spec.blocks):
            table = (
                _group_table(block, summary, used)
                if isinstance(block, Group)
                else _entities_table(block, summary, used, extra=last_of[block.key] == i)
            )
            if table is not None:
                tables.append(table)
        tables += custom_tables
        other = _leftovers(summary, spec.keys, used, "Other figures")
        if other is not None:
            tables.append(other)
        mine = [p for p in spec.plots if p in plots and p not in placed]
        placed.update(mine)
        out.append(Section(spec.id, spec.title, spec.intro, tables, mine))
    covered = {k for spec in SECTIONS for k in spec.keys} | _RUN_KEYS
    for top in summary:
        if top in covered or top == "performance":
            continue
        table = _leftovers(summary, [top], set(), humanise(top))
        if table is not None:
            out.append(Section(f"extra-{top}", humanise(top), "", [table]))
    rest = [p for p in plots if p not in placed]
    if rest:
        out.append(Section("more-plots", "More plots", "", [], rest))
    return out
