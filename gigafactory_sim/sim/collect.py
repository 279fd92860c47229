"""Collect a finished run into its tables and summary: the core's figures, then each feature's contribution.

The core writes what every run has (GPU occupancy, training and idle power, queue, waits, energy); each feature
that implements :class:`~gigafactory_sim.sim.ops.ResultContributor` adds its own time-series columns, job columns
and summary sections, in the registry's order. Facility power comes from the feature that provides it
(:class:`~gigafactory_sim.sim.ops.FacilityPower`: the energy system's PUE chain), or is IT power x the constant PUE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.sim import channels
from gigafactory_sim.sim.facility import Facility
from gigafactory_sim.sim.meter import Meter
from gigafactory_sim.sim.ops import FacilityPower
from gigafactory_sim.sim.state import STATE_NAMES
from gigafactory_sim.stats import statistics_section
from gigafactory_sim.units import J_PER_KWH, J_PER_MWH, S_PER_H, W_PER_MW

if TYPE_CHECKING:
    from gigafactory_sim.sim.engine import Simulation
    from gigafactory_sim.sim.hooks import Hooks

__all__ = ["Finished", "collect", "source_figures"]


class ConstantPue:
    """Facility power = IT power x a constant PUE (no feature provides facility power)."""

    def __init__(self, pue: float) -> None:
        self.pue = pue

    def facility_j(self, it_j: float) -> float:
        return it_j * self.pue

    def peak_facility_w(self, peak_it_w: float) -> float:
        return peak_it_w * self.pue

    def facility_w(self, means: np.ndarray, it_w: np.ndarray) -> np.ndarray:
        return it_w * self.pue


@dataclass
class Finished:
    """A finished run as result contributors see it (:class:`~gigafactory_sim.sim.ops.RunView`)."""

    scenario: Scenario
    facility: Facility
    meter: Meter
    horizon_s: float
    ticks: list[tuple[float, np.ndarray, int, int]]
    hooks: Hooks
    totals: dict[str, float] = field(default_factory=dict)  # the core's totals (J, GPU-s), for contributors

    @property
    def n_submitted(self) -> int:
        return self.facility.n_submitted


def collect(sim: Simulation) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(jobs table, time-series table, summary) of a finished simulation."""
    run = Finished(sim.scenario, sim.facility, sim.meter, sim.horizon_s, sim.ticks, sim.hooks)
    jobs = jobs_table(run)
    timeseries = timeseries_table(run)
    summary = summarise(run, jobs)
    if section := statistics_section(run.scenario, timeseries, jobs):  # steady state, from the tables
        summary["statistics"] = section
    return jobs, timeseries, summary


def _facility_power(run: Finished) -> FacilityPower:
    """The feature that provides facility power, or IT power x the scenario's constant PUE."""
    if run.hooks.facility_power is not None:
        return run.hooks.facility_power
    pue = run.scenario.facility.pue
    assert isinstance(pue, int | float), "a varying PUE is the energy feature's"
    return ConstantPue(float(pue))


def _extra_it(run: Finished, c: int) -> list[str]:
    return [n for f in run.hooks.it_contributors for n in f.it_channels(c)]


def _extra_gpus(run: Finished, c: int) -> list[str]:
    return [n for f in run.hooks.it_contributors for n in f.gpu_channels(c)]


def timeseries_table(run: Finished) -> pd.DataFrame:
    """One row per report interval: interval means of every metered channel, exact (integral / length)."""
    ticks = run.ticks
    f = run.facility
    times = np.array([t for t, _, _, _ in ticks])
    integrals = np.vstack([s for _, s, _, _ in ticks])
    dt = np.diff(times)
    means = np.diff(integrals, axis=0) / dt[:, None]
    start = pd.Timestamp(run.scenario.start)
    data: dict[str, Any] = {
        "t_start_s": times[:-1],
        "t_end_s": times[1:],
        "time": start + pd.to_timedelta(times[:-1], unit="s"),
    }
    idx = run.meter.index
    it_w = np.zeros(len(dt))
    train_w = np.zeros(len(dt))
    idle_w = np.zeros(len(dt))
    cluster_w: list[np.ndarray] = []
    for name, st in zip(f.cluster_names, f.clusters, strict=True):
        for ch in channels.CLUSTER:
            data[f"{ch}.{name}"] = means[:, idx[f"{ch}.{name}"]]
        data[f"idle_gpus.{name}"] = st.total_gpus - means[:, idx[f"allocated_gpus.{name}"]]
        core_w = sum(means[:, idx[f"{ch}.{name}"]] for ch in channels.POWER)
        data[f"it_power_mw.{name}"] = core_w / W_PER_MW
        cluster_w.append(core_w)  # type: ignore[arg-type]
        it_w += core_w
        train_w += means[:, idx[f"gpu_train_w.{name}"]] + means[:, idx[f"node_train_w.{name}"]]
        idle_w += means[:, idx[f"gpu_idle_w.{name}"]] + means[:, idx[f"node_idle_w.{name}"]]
    if run.hooks.it_contributors:
        extra_w = np.zeros(len(dt))
        for c, name in enumerate(f.cluster_names):
            names = _extra_it(run, c)
            if not names:
                continue
            x = means[:, idx[names[0]]]
            for n in names[1:]:
                x = x + means[:, idx[n]]
            data[f"it_power_mw.{name}"] = (cluster_w[c] + x) / W_PER_MW
            extra_w += x
        it_w += extra_w
    source = _facility_power(run)
    data["it_power_mw"] = it_w / W_PER_MW
    data["facility_power_mw"] = source.facility_w(means, it_w) / W_PER_MW
    data["training_power_mw"] = train_w / W_PER_MW
    data["idle_power_mw"] = idle_w / W_PER_MW
    data["allocated_gpus"] = sum(means[:, idx[f"allocated_gpus.{c}"]] for c in f.cluster_names)
    data["busy_gpus"] = sum(means[:, idx[f"busy_gpus.{c}"]] for c in f.cluster_names)
    data["queued_jobs_mean"] = means[:, idx[channels.QUEUED_JOBS]]
    data["running_jobs_mean"] = means[:, idx[channels.RUNNING_JOBS]]
    data["queued_jobs"] = np.array([q for _, _, q, _ in ticks[1:]], dtype=np.int64)
    data["running_jobs"] = np.array([r for _, _, _, r in ticks[1:]], dtype=np.int64)
    for contributor in run.hooks.results:
        _add(data, contributor.timeseries_columns(run, times, means), "timeseries")
    return pd.DataFrame(data)


def jobs_table(run: Finished) -> pd.DataFrame:
    """One row per submitted job; features add their columns (preemptions, reliability)."""
    f = run.facility
    jt = f.jobs
    n = f.n_submitted
    cluster_names = np.array([*f.cluster_names, ""], dtype=object)
    state_names = np.array([STATE_NAMES[k] for k in sorted(STATE_NAMES)], dtype=object)
    start = f.rec_start_s[:n]
    data: dict[str, Any] = {
        "job_id": np.arange(n, dtype=np.int64),
        "source": np.array(jt.sources, dtype=object)[jt.source_idx[:n]],
        "tenant": np.asarray(jt.tenant_names, dtype=object)[jt.tenant_idx[:n]] if n else np.array([], dtype=object),
        "job_class": np.asarray(jt.class_names, dtype=object)[jt.class_idx[:n]] if n else np.array([], dtype=object),
        "priority": jt.priority[:n],
        "gpus": jt.gpus[:n],
        "submit_s": jt.submit_s[:n],
        "start_s": start,
        "end_s": f.rec_end_s[:n],
        "wait_s": start - jt.submit_s[:n],
        "cluster": cluster_names[f.rec_cluster[:n]],
        "state": state_names[f.rec_state[:n]],
        "work_gpu_h": jt.work_s[:n] * jt.gpus[:n] / S_PER_H,
        "energy_kwh": f.rec_energy_j[:n] / J_PER_KWH,
    }
    for contributor in run.hooks.results:
        _add(data, contributor.job_columns(run), "jobs")
    return pd.DataFrame(data)


def _add(data: dict[str, Any], extra: dict[str, Any], table: str) -> None:
    clash = sorted(set(data) & set(extra))
    if clash:
        raise ValueError(f"two contributors write the {table} column(s) {', '.join(clash)}")
    data.update(extra)


def _percentiles(x: np.ndarray) -> dict[str, float | None]:
    if len(x) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(x.max())}


STATES = ("completed", "running", "queued")  # the end states a source's figures count


def source_figures(jobs: pd.DataFrame, names: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """``summary["sources"]``: the headline job counts and waits of each training source (the jobs table's
    ``source``), plus the GPU-hours of work each submitted. ``names`` (the scenario's training sources, in its
    order) are always there, with zeros when a source submitted nothing; any other source in the table follows
    (the jobs pre-filled by ``initial_state: steady`` are the source ``warm-start``). Every job counts under its
    own source, so the counts add up to ``jobs``."""
    n = len(jobs)
    # (string comparisons on the columns themselves: no object array of a million names)
    source = jobs["source"] if n else pd.Series([], dtype=object)
    state = {k: (jobs["state"] == k).to_numpy(dtype=bool) if n else np.zeros(0, dtype=bool) for k in STATES}
    started = jobs["start_s"].notna().to_numpy(dtype=bool) if n else np.zeros(0, dtype=bool)
    waits = jobs["wait_s"].to_numpy(dtype=float) if n else np.zeros(0)
    work = jobs["work_gpu_h"].to_numpy(dtype=float) if n else np.zeros(0)
    present = {str(x) for x in source.unique()}
    out: dict[str, dict[str, Any]] = {}
    for name in [*names, *sorted(present - set(names))]:
        mine = (source == name).to_numpy(dtype=bool)
        out[str(name)] = {
            "submitted": int(mine.sum()),
            "started": int((mine & started).sum()),
            "completed": int((mine & state["completed"]).sum()),
            "running_at_end": int((mine & state["running"]).sum()),
            "queued_at_end": int((mine & state["queued"]).sum()),
            "work_gpu_h": float(work[mine].sum()),
            "wait_s": _percentiles(waits[mine & started]),
        }
    return out


def summarise(run: Finished, jobs: pd.DataFrame) -> dict[str, Any]:
    """Headline KPIs (``summary.json``). Energies are exact integrals; fractions are of GPU-time over the horizon."""
    horizon = run.horizon_s
    f = run.facility
    integral = run.meter.integral
    idx = run.meter.index
    gpus_total = f.gpus_total
    clusters: dict[str, dict[str, float]] = {}
    it_j = train_j = idle_j = alloc_gs = busy_gs = extra_j = train_alloc_gs = 0.0
    low_gpus_ch = "ckpt_gpus"
    for c, (name, st) in enumerate(zip(f.cluster_names, f.clusters, strict=True)):
        c_it = sum(float(integral[idx[f"{ch}.{name}"]]) for ch in channels.POWER)
        c_train = float(integral[idx[f"gpu_train_w.{name}"]] + integral[idx[f"node_train_w.{name}"]])
        c_extra = 0.0
        extra_it = _extra_it(run, c)
        if extra_it:
            c_extra = sum(float(integral[idx[n]]) for n in extra_it)
            c_it += c_extra
        c_train_alloc = float(integral[idx[f"allocated_gpus.{name}"]])
        extra_gpus = _extra_gpus(run, c)
        c_extra_gs = sum(float(integral[idx[n]]) for n in extra_gpus) if extra_gpus else 0.0
        c_alloc = c_train_alloc + c_extra_gs  # GPUs held by training jobs or by features (inference replicas)
        c_busy = float(integral[idx[f"busy_gpus.{name}"]]) + c_extra_gs
        c_busy -= float(integral[idx[f"{low_gpus_ch}.{name}"]])  # GPUs in checkpoint stalls or restarts hold,
        # but do no work (the channel is 0 without checkpointing)
        train_alloc_gs += c_train_alloc
        clusters[name] = {
            "gpus": st.total_gpus,
            "allocated_fraction": c_alloc / (st.total_gpus * horizon),
            "busy_fraction": c_busy / (st.total_gpus * horizon),
            "it_mwh": c_it / J_PER_MWH,
            "training_mwh": c_train / J_PER_MWH,
        }
        it_j += c_it
        train_j += c_train
        extra_j += c_extra
        idle_j += c_it - c_train - c_extra
        alloc_gs += c_alloc
        busy_gs += c_busy
    source = _facility_power(run)
    facility_j = source.facility_j(it_j)
    pue = source.pue if isinstance(source, ConstantPue) else (facility_j / it_j if it_j else None)
    started = jobs["start_s"].notna().to_numpy()
    waits = jobs["wait_s"].to_numpy()[started]
    state = jobs["state"].to_numpy()
    summary: dict[str, Any] = {
        "scenario": run.scenario.name,
        "seed": run.scenario.seed,
        "gpus_total": gpus_total,
        "horizon_s": horizon,
        "utilisation": {
            "allocated_fraction": alloc_gs / (gpus_total * horizon),
            "busy_fraction": busy_gs / (gpus_total * horizon),
            "allocated_gpu_h": alloc_gs / S_PER_H,
            "busy_gpu_h": busy_gs / S_PER_H,
            "training_allocated_fraction": train_alloc_gs / (gpus_total * horizon),
        },
        "energy": {
            "it_mwh": it_j / J_PER_MWH,
            "facility_mwh": facility_j / J_PER_MWH,
            "training_it_mwh": train_j / J_PER_MWH,
            "idle_it_mwh": idle_j / J_PER_MWH,
            "pue": pue,
        },
        "power": {
            "peak_it_mw": run.meter.peak_it_w / W_PER_MW,
            "peak_facility_mw": source.peak_facility_w(run.meter.peak_it_w) / W_PER_MW,
            "peak_at_s": run.meter.peak_it_at_s,
            "mean_it_mw": it_j / horizon / W_PER_MW,
            "mean_facility_mw": facility_j / horizon / W_PER_MW,
        },
        "jobs": {
            "submitted": len(jobs),
            "completed": int((state == "completed").sum()),
            "running_at_end": int((state == "running").sum()),
            "queued_at_end": int((state == "queued").sum()),
            "started": int(started.sum()),
            "mean_queued": float(integral[idx[channels.QUEUED_JOBS]]) / horizon,
            "mean_running": float(integral[idx[channels.RUNNING_JOBS]]) / horizon,
        },
        "wait_s": _percentiles(waits),
        "clusters": clusters,
        "sources": source_figures(jobs, [t.name for t in run.scenario.workload.training]),
    }
    migrated = int((state == "migrated").sum())
    if migrated:  # (a federation moved them on: they went on at another site)
        summary["jobs"]["migrated"] = migrated
    run.totals.update(it_j=it_j, training_j=train_j, idle_j=idle_j, training_allocated_gs=train_alloc_gs)
    for contributor in run.hooks.results:
        contributor.summary_sections(run, jobs, summary)
    return summary
