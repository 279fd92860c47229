"""Collect a finished federation: every site's own result, then the federation's tables and summary.

The federation's jobs table is every site's jobs (with the site, the home, the data moved and its egress) plus the
jobs still in transfer at the end; its time series is the federation totals beside each site's aggregate columns
(``it_power_mw@paris``); its summary has the totals under the same keys as a single site's (so ``compare`` reads
both), each site side by side, the residency audit and the inter-site traffic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gigafactory_sim.federation.config import Federation
from gigafactory_sim.federation.residency import allows
from gigafactory_sim.federation.runtime import FederationRun
from gigafactory_sim.result import RunResult
from gigafactory_sim.sim.collect import collect, source_figures
from gigafactory_sim.units import S_PER_H

__all__ = ["collect_federation"]

_SUMMED = ("it_mwh", "facility_mwh", "training_it_mwh", "idle_it_mwh", "inference_it_mwh")
_JOB_COUNTS = ("submitted", "completed", "running_at_end", "queued_at_end", "started", "mean_queued", "mean_running")


def _site_result(run: FederationRun, k: int) -> RunResult:
    sim = run.sites[k]
    jobs, ts, summary = collect(sim)
    return RunResult(scenario=sim.scenario, summary=summary, timeseries=ts, jobs=jobs)


_PER_JOB = frozenset(
    {"job_id", "priority", "gpus", "submit_s", "start_s", "end_s", "wait_s", "work_gpu_h", "stay", "delivered_s"}
)


def _stays(run: FederationRun, results: list[RunResult]) -> pd.DataFrame:
    """Every stay of a job at a site (one per job, or one per site a migrating job ran at), and the jobs whose
    data is still moving at the end, with the site they are bound for."""
    names = np.array(run.scenario.site_names, dtype=object)
    frames = []
    for k, res in enumerate(results):
        j = res.jobs.copy()
        j["job_id"] = np.asarray(run.local_to_global[k], dtype=np.int64)[: len(j)]
        j.insert(1, "site", names[k])
        j["stay"] = np.asarray(run.local_segment[k], dtype=np.int64)[: len(j)]
        frames.append(j)
    pending = np.flatnonzero((run.rec_site >= 0) & (run.rec_local < 0))  # placed, data still moving
    if len(pending):
        jt = run.prepared.jobs
        frames.append(
            pd.DataFrame(
                {
                    "job_id": pending.astype(np.int64),
                    "site": names[run.rec_site[pending]],
                    "source": np.array(jt.sources, dtype=object)[jt.source_idx[pending]],
                    "tenant": np.asarray(jt.tenant_names, dtype=object)[jt.tenant_idx[pending]],
                    "job_class": np.asarray(jt.class_names, dtype=object)[jt.class_idx[pending]],
                    "priority": jt.priority[pending],
                    "gpus": jt.gpus[pending],
                    "submit_s": jt.submit_s[pending],
                    "state": "in_transfer",
                    "work_gpu_h": jt.work_s[pending] * jt.gpus[pending] / S_PER_H,
                    "stay": run.rec_migrations[pending],
                }
            )
        )
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(out):
        out = out.sort_values(["job_id", "stay"], kind="stable").reset_index(drop=True)
    return out


def _one_row_per_job(stays: pd.DataFrame) -> pd.DataFrame:
    """A job that migrated: its last stay, with its first start, the sum of every stay's figures (energy,
    GPU-hours, interruptions) and its whole work."""
    if stays["job_id"].is_unique:
        return stays.drop(columns="stay")
    by = stays.groupby("job_id", sort=True)
    out = by.tail(1).set_index("job_id")
    summed = [c for c in stays.columns if c not in _PER_JOB and pd.api.types.is_numeric_dtype(stays[c])]
    out[summed] = by[summed].sum()
    out["start_s"] = by["start_s"].min()
    out["wait_s"] = out["start_s"] - out["submit_s"]
    out["work_gpu_h"] = by["work_gpu_h"].first()  # its whole work, as submitted
    return out.reset_index().drop(columns="stay")[list(stays.columns.drop("stay"))]


def _jobs(run: FederationRun, stays: pd.DataFrame) -> pd.DataFrame:
    if len(stays) == 0:
        return stays
    out = _one_row_per_job(stays)
    names = np.array(run.scenario.site_names, dtype=object)
    plans = run.prepared.sources
    ids = out["job_id"].to_numpy()
    src = run.prepared.jobs.source_idx[ids]
    out.insert(2, "home_site", names[np.array([plans[s].home for s in src.tolist()], dtype=np.int64)])
    out["delivered_s"] = run.rec_delivered_s[ids]
    out["transfer_gb"] = run.rec_transfer_gb[ids]
    out["transfer_s"] = np.where(out["transfer_gb"] > 0, out["delivered_s"] - out["submit_s"], 0.0)
    out["egress_eur"] = run.rec_egress_eur[ids]
    if run.scenario.migration is not None:
        out["migrations"] = run.rec_migrations[ids]
        out["checkpoint_gb"] = run.rec_checkpoint_gb[ids]
    return out


def _timeseries(fed: Federation, results: list[RunResult]) -> pd.DataFrame:
    base = results[0].timeseries
    data: dict[str, Any] = {c: base[c].to_numpy() for c in ("t_start_s", "t_end_s", "time")}
    per_site = [r.timeseries for r in results]
    shared = [c for c in base.columns if c not in data and "." not in c]
    for c in shared:
        if all(c in ts.columns for ts in per_site) and c.endswith(
            ("_mw", "_gpus", "_jobs", "_t", "_eur", "gpus", "jobs", "_mean")
        ):
            data[c] = sum(ts[c].to_numpy() for ts in per_site)
    for name, ts in zip(fed.site_names, per_site, strict=True):
        for c in ts.columns:
            if c not in ("t_start_s", "t_end_s", "time") and "." not in c:
                data[f"{c}@{name}"] = ts[c].to_numpy()
    return pd.DataFrame(data)


def _sum_section(results: list[RunResult], section: str, keys: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in keys:
        vals = [r.summary.get(section, {}).get(key) for r in results]
        if any(v is not None for v in vals):
            out[key] = float(sum(v for v in vals if v is not None))
    return out


def _percentiles(x: np.ndarray) -> dict[str, float | None]:
    if len(x) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(x.max())}


def _sources(fed: Federation, jobs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each source's figures over the federation's jobs (a job that migrated once, at its last stay), as a single
    site's ``sources``; a source with jobs whose data is still moving at the end also has ``in_transfer``."""
    out = source_figures(jobs, [t.name for t in fed.workload.training])
    for name, figures in out.items():
        moving = int(((jobs["source"] == name) & (jobs["state"] == "in_transfer")).sum()) if len(jobs) else 0
        if moving:
            figures["in_transfer"] = moving
    return out


def _site_row(fed: Federation, k: int, res: RunResult) -> dict[str, Any]:
    site = fed.sites[k]
    s = res.summary
    jobs = res.jobs
    started = jobs["start_s"].notna().to_numpy()
    grid = s.get("grid", {})
    cap = s.get("power_cap", {})
    return {
        "country": site.country,
        "eu": site.in_eu,
        "operator": site.sovereignty.operator,
        "assurance": site.sovereignty.assurance,
        "gpus": s["gpus_total"],
        "allocated_fraction": s["utilisation"]["allocated_fraction"],
        "busy_fraction": s["utilisation"]["busy_fraction"],
        "it_mwh": s["energy"]["it_mwh"],
        "facility_mwh": s["energy"]["facility_mwh"],
        "grid_import_mwh": grid.get("grid_import_mwh", s["energy"]["facility_mwh"]),
        "peak_grid_mw": grid.get("peak_grid_import_mw", s["power"]["peak_facility_mw"]),
        "hard_cap_mw": cap.get("hard_cap_max_mw"),
        "carbon_t": s.get("carbon", {}).get("total_t"),
        "cost_eur": s.get("cost", {}).get("total_eur"),
        "jobs_submitted": s["jobs"]["submitted"],
        "jobs_completed": s["jobs"]["completed"],
        "mean_wait_h": float(jobs["wait_s"].to_numpy()[started].mean()) / S_PER_H if started.any() else None,
    }


def _audit(run: FederationRun, jobs: pd.DataFrame, results: list[RunResult]) -> dict[str, Any]:
    """Jobs (each stay: a job that migrated counts at every site it ran at), GPU-hours, requests and tokens by
    workload x site, and every placement checked against the rules
    afresh (from the residency and the site's attributes, not from the plan placement used)."""
    fed = run.scenario
    names = fed.site_names
    sources = {s.name: s for s in fed.workload.training}
    rows = []
    violations = 0
    if len(jobs):
        gpu_h = jobs.get("allocated_gpu_h")
        held_s = np.where(jobs["start_s"].notna(), jobs["end_s"].fillna(run.horizon_s) - jobs["start_s"], 0.0)
        plans, src_idx = run.prepared.sources, run.prepared.jobs.source_idx[jobs["job_id"].to_numpy()]
        frame = pd.DataFrame(
            {
                "source": [plans[s].source for s in src_idx.tolist()],  # a warm-start job: the source it came from
                "site": jobs["site"],
                "gpu_h": jobs["gpus"].to_numpy() * np.nan_to_num(held_s) / S_PER_H if gpu_h is None else gpu_h,
            }
        )
        for (source, site), grp in frame.groupby(["source", "site"], sort=True):
            ok = allows(sources[str(source)].residency, fed.sites[names.index(str(site))])
            violations += 0 if ok else len(grp)
            rows.append(
                {
                    "workload": f"training:{source}",
                    "site": site,
                    "jobs": len(grp),
                    "gpu_h": float(grp["gpu_h"].sum()),
                    "allowed": ok,
                }
            )
    services = {s.name: s for s in fed.workload.inference}
    for r in run.prepared.routes:
        ok = allows(services[r.service].residency, fed.sites[r.site])
        served = results[r.site].summary.get("inference", {}).get("services", {}).get(r.service, {})
        site_share = sum(x.share for x in run.prepared.routes if x.service == r.service and x.site == r.site)
        frac = r.share / site_share if site_share > 0 else 0.0
        requests = served.get("requests", {}).get("served")
        tokens = served.get("tokens", {}).get("output")
        latency = served.get("latency", {})
        slo = served.get("slo", {})
        ttft_q = latency.get("ttft_p99_s")
        violations += 0 if ok else 1
        rows.append(
            {
                "workload": f"inference:{r.service}",
                "region": r.region,
                "site": names[r.site],
                "requests": None if requests is None else requests * frac,
                "output_tokens": None if tokens is None else tokens * frac,
                "rtt_ms": r.rtt_s * 1000.0,
                "ttft_p99_s": None if ttft_q is None else ttft_q + r.rtt_s,
                "e2e_p99_s": None if latency.get("e2e_p99_s") is None else latency["e2e_p99_s"] + r.rtt_s,
                "ttft_met": None
                if ttft_q is None or slo.get("ttft_s") is None
                else bool(ttft_q + r.rtt_s <= slo["ttft_s"]),
                "allowed": ok,
            }
        )
    return {"violations": violations, "rows": rows}


def _network(run: FederationRun) -> dict[str, Any]:
    names = run.scenario.site_names
    links = []
    log = run.network.log
    by_pipe: dict[tuple[int, int], list[int]] = {key: [] for key in run.network.pipes}
    for row, key in enumerate(zip(log.src, log.dst, strict=True)):  # one pass, each pipe's transfers in their order
        by_pipe[key].append(row)
    size, start, end, egress = log.size_gb, log.start_s, log.end_s, log.egress_eur
    for (a, b), pipe in run.network.pipes.items():
        rows = by_pipe[a, b]
        done = [r for r in rows if end[r] >= 0]
        links.append(
            {
                "from": names[a],
                "to": names[b],
                "transfers": len(rows),
                "arrived": len(done),
                "tb": sum(size[r] for r in rows) / 1000.0,
                "busy_h": pipe.busy_s / S_PER_H,
                "transfer_h": sum(end[r] - start[r] for r in done) / S_PER_H,
                "egress_eur": sum(egress[r] for r in rows),
            }
        )
    return {
        "links": links,
        "tb": sum(x["tb"] for x in links),
        "egress_eur": sum(x["egress_eur"] for x in links),
        "transfers": sum(x["transfers"] for x in links),
    }


def collect_federation(run: FederationRun) -> RunResult:
    """The federation's result, with every site's own result in ``sites``."""
    fed = run.scenario
    results = [_site_result(run, k) for k in range(len(run.sites))]
    stays = _stays(run, results)
    jobs = _jobs(run, stays)
    timeseries = _timeseries(fed, results)
    horizon = run.horizon_s
    gpus_total = sum(int(r.summary["gpus_total"]) for r in results)
    alloc_h = sum(r.summary["utilisation"]["allocated_gpu_h"] for r in results)
    busy_h = sum(r.summary["utilisation"]["busy_gpu_h"] for r in results)
    energy: dict[str, float | None] = {**_sum_section(results, "energy", _SUMMED)}
    it_mwh, facility_mwh = energy["it_mwh"] or 0.0, energy["facility_mwh"] or 0.0
    energy["pue"] = facility_mwh / it_mwh if it_mwh else None
    started = jobs["start_s"].notna().to_numpy() if len(jobs) else np.zeros(0, dtype=bool)
    summary: dict[str, Any] = {
        "scenario": fed.name,
        "seed": fed.seed,
        "gpus_total": gpus_total,
        "horizon_s": horizon,
        "placement": fed.placement.kind,
        "utilisation": {
            "allocated_fraction": alloc_h * S_PER_H / (gpus_total * horizon),
            "busy_fraction": busy_h * S_PER_H / (gpus_total * horizon),
            "allocated_gpu_h": alloc_h,
            "busy_gpu_h": busy_h,
        },
        "energy": energy,
        "power": {
            "peak_facility_mw": float(timeseries["facility_power_mw"].max())
            if "facility_power_mw" in timeseries
            else None,
            "sum_of_site_peaks_mw": float(sum(r.summary["power"]["peak_facility_mw"] for r in results)),
            "mean_facility_mw": facility_mwh * S_PER_H / horizon,
        },
        "jobs": {
            **_sum_section(results, "jobs", _JOB_COUNTS),
            "submitted": len(jobs),
            "in_transfer": int((jobs["state"] == "in_transfer").sum()) if len(jobs) else 0,
        },
        "wait_s": _percentiles(jobs["wait_s"].to_numpy()[started] if len(jobs) else np.zeros(0)),
        "sources": _sources(fed, jobs),
    }
    carbon = [r.summary.get("carbon", {}).get("total_t") for r in results]
    if any(c is not None for c in carbon):
        summary["carbon"] = {"total_t": float(sum(c for c in carbon if c is not None))}
    cost = [r.summary.get("cost", {}).get("total_eur") for r in results]
    net = _network(run)
    summary["cost"] = {
        "energy_eur": float(sum(c for c in cost if c is not None)),
        "egress_eur": net["egress_eur"],
        "total_eur": float(sum(c for c in cost if c is not None)) + net["egress_eur"],
    }
    inference = [r.summary.get("inference") for r in results]
    if any(x is not None for x in inference):
        summary["inference"] = {
            "it_mwh": float(sum(x.get("it_mwh", 0.0) for x in inference if x is not None)),
            "gpu_h": float(sum(x.get("gpu_h", 0.0) for x in inference if x is not None)),
            "training_preemptions": int(sum(x.get("training_preemptions", 0) for x in inference if x is not None)),
        }
    steady = {
        name: r.summary["statistics"]
        for name, r in zip(fed.site_names, results, strict=True)
        if "statistics" in r.summary
    }
    if steady:  # each site's steady-state figures, after its own warm-up (README, "Steady state and confidence")
        summary["statistics"] = {"sites": steady}
    summary["sites"] = {name: _site_row(fed, k, results[k]) for k, name in enumerate(fed.site_names)}
    summary["residency"] = _audit(run, stays, results)
    if fed.migration is not None:
        summary["migration"] = {
            "by": fed.migration.by,
            "moves": int(run.rec_migrations.sum()),
            "jobs_moved": int((run.rec_migrations > 0).sum()),
            "checkpoint_tb": float(run.rec_checkpoint_gb.sum()) / 1000.0,
        }
    summary["network"] = net
    return RunResult(
        scenario=fed,
        summary=summary,
        timeseries=timeseries,
        jobs=jobs,
        sites={name: results[k] for k, name in enumerate(fed.site_names)},
    )
