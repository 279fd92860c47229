"""Collect a finished :class:`~gigafactory_sim.sim.engine.Simulation` into tables and a summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gigafactory_sim.energy.results import energy_columns, energy_sections
from gigafactory_sim.reliability.results import (
    reliability_job_columns,
    reliability_summary,
    reliability_timeseries_columns,
)
from gigafactory_sim.sim.engine import CLUSTER_CHANNELS, POWER_CHANNELS, Simulation
from gigafactory_sim.inference.results import inference_summary
from gigafactory_sim.inference.runtime import (
    INFER_CLUSTER_CHANNELS,
    INFER_POWER_CHANNELS,
    INFER_SERVICE_CHANNELS,
)
from gigafactory_sim.sim.state import STATE_NAMES

__all__ = ["jobs_table", "summarise", "timeseries_table"]

J_PER_MWH = 3.6e9


def _constant_pue(sim: Simulation) -> float:
    """The scenario's constant PUE; 1 when the energy system integrates facility power itself (PUE may vary)."""
    pue = sim.scenario.facility.pue
    return float(pue) if sim.energy is None and isinstance(pue, int | float) else 1.0


def timeseries_table(sim: Simulation) -> pd.DataFrame:
    """One row per report interval: interval means of every metered channel, exact (integral / length)."""
    times = np.array([t for t, _, _, _ in sim.ticks])
    integrals = np.vstack([s for _, s, _, _ in sim.ticks])
    dt = np.diff(times)
    means = np.diff(integrals, axis=0) / dt[:, None]
    pue = _constant_pue(sim)
    start = pd.Timestamp(sim.scenario.start)
    data: dict[str, Any] = {
        "t_start_s": times[:-1],
        "t_end_s": times[1:],
        "time": start + pd.to_timedelta(times[:-1], unit="s"),
    }
    idx = sim.meter.index
    it_w = np.zeros(len(dt))
    train_w = np.zeros(len(dt))
    idle_w = np.zeros(len(dt))
    for c, st in zip(sim.cluster_names, sim.clusters, strict=True):
        for ch in CLUSTER_CHANNELS:
            data[f"{ch}.{c}"] = means[:, idx[f"{ch}.{c}"]]
        data[f"idle_gpus.{c}"] = st.total_gpus - means[:, idx[f"allocated_gpus.{c}"]]
        cluster_w = sum(means[:, idx[f"{ch}.{c}"]] for ch in POWER_CHANNELS)
        data[f"it_power_mw.{c}"] = cluster_w / 1e6
        it_w += cluster_w
        train_w += means[:, idx[f"gpu_train_w.{c}"]] + means[:, idx[f"node_train_w.{c}"]]
        idle_w += means[:, idx[f"gpu_idle_w.{c}"]] + means[:, idx[f"node_idle_w.{c}"]]
    if sim.inference is not None:
        infer_w = np.zeros(len(dt))
        for c in sim.cluster_names:
            for ch in INFER_CLUSTER_CHANNELS:
                data[f"{ch}.{c}"] = means[:, idx[f"{ch}.{c}"]]
            c_infer: np.ndarray = means[:, idx[f"gpu_infer_w.{c}"]] + means[:, idx[f"node_infer_w.{c}"]]
            cluster_it = sum(means[:, idx[f"{ch}.{c}"]] for ch in POWER_CHANNELS)
            data[f"it_power_mw.{c}"] = (cluster_it + c_infer) / 1e6
            infer_w += c_infer
        for svc in sim.scenario.workload.inference:
            for ch in INFER_SERVICE_CHANNELS:
                data[f"{ch}.{svc.name}"] = means[:, idx[f"{ch}.{svc.name}"]]
        it_w += infer_w
        data["inference_power_mw"] = infer_w / 1e6
        data["inference_gpus"] = np.sum([means[:, idx[f"infer_gpus.{c}"]] for c in sim.cluster_names], axis=0)
    data["it_power_mw"] = it_w / 1e6
    data["facility_power_mw"] = it_w * pue / 1e6
    data["training_power_mw"] = train_w / 1e6
    data["idle_power_mw"] = idle_w / 1e6
    data["allocated_gpus"] = sum(means[:, idx[f"allocated_gpus.{c}"]] for c in sim.cluster_names)
    data["busy_gpus"] = sum(means[:, idx[f"busy_gpus.{c}"]] for c in sim.cluster_names)
    data["queued_jobs_mean"] = means[:, idx["queued_jobs"]]
    data["running_jobs_mean"] = means[:, idx["running_jobs"]]
    data["queued_jobs"] = np.array([q for _, _, q, _ in sim.ticks[1:]], dtype=np.int64)
    data["running_jobs"] = np.array([r for _, _, _, r in sim.ticks[1:]], dtype=np.int64)
    if sim.energy is not None:
        data.update(energy_columns(sim, means, dt))
    if sim.reliability is not None:
        data.update(reliability_timeseries_columns(sim, times, means))
    return pd.DataFrame(data)


def jobs_table(sim: Simulation) -> pd.DataFrame:
    """One row per submitted job (with inference services: ``preemptions`` and ``lost_gpu_h`` too)."""
    jt = sim.jobs
    n = sim.n_submitted
    cluster_names = np.array([*sim.cluster_names, ""], dtype=object)
    state_names = np.array([STATE_NAMES[k] for k in sorted(STATE_NAMES)], dtype=object)
    start = sim.rec_start_s[:n]
    table = pd.DataFrame({
        "job_id": np.arange(n, dtype=np.int64),
        "source": np.array(jt.sources, dtype=object)[jt.source_idx[:n]],
        "tenant": np.asarray(jt.tenant_names, dtype=object)[jt.tenant_idx[:n]] if n else np.array([], dtype=object),
        "job_class": np.asarray(jt.class_names, dtype=object)[jt.class_idx[:n]] if n else np.array([], dtype=object),
        "priority": jt.priority[:n],
        "gpus": jt.gpus[:n],
        "submit_s": jt.submit_s[:n],
        "start_s": start,
        "end_s": sim.rec_end_s[:n],
        "wait_s": start - jt.submit_s[:n],
        "cluster": cluster_names[sim.rec_cluster[:n]],
        "state": state_names[sim.rec_state[:n]],
        "work_gpu_h": jt.work_s[:n] * jt.gpus[:n] / 3600.0,
        "energy_kwh": sim.rec_energy_j[:n] / 3.6e6,
    })
    if sim.inference is not None:
        table["preemptions"] = sim.inference.job_preemptions[:n]
        table["preemption_lost_gpu_h"] = sim.inference.job_lost_gpu_s[:n] / 3600.0
    if sim.reliability is not None:
        table = table.assign(**reliability_job_columns(sim))
    return table


def _percentiles(x: np.ndarray) -> dict[str, float | None]:
    if len(x) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99),
            "max": float(x.max())}


def summarise(sim: Simulation, jobs: pd.DataFrame) -> dict[str, object]:
    """Headline KPIs (``summary.json``). Energies are exact integrals; fractions are of GPU-time over the horizon."""
    horizon = sim.horizon_s
    integral = sim.meter.integral
    idx = sim.meter.index
    pue = _constant_pue(sim)
    gpus_total = sum(st.total_gpus for st in sim.clusters)
    clusters: dict[str, dict[str, float]] = {}
    it_j = train_j = idle_j = alloc_gs = busy_gs = infer_j = train_alloc_gs = 0.0
    for c, st in zip(sim.cluster_names, sim.clusters, strict=True):
        c_it = sum(float(integral[idx[f"{ch}.{c}"]]) for ch in POWER_CHANNELS)
        c_train = float(integral[idx[f"gpu_train_w.{c}"]] + integral[idx[f"node_train_w.{c}"]])
        c_infer = 0.0
        if sim.inference is not None:
            c_infer = sum(float(integral[idx[f"{ch}.{c}"]]) for ch in INFER_POWER_CHANNELS)
            c_it += c_infer
        c_train_alloc = float(integral[idx[f"allocated_gpus.{c}"]])
        c_infer_gs = float(integral[idx[f"infer_gpus.{c}"]]) if sim.inference is not None else 0.0
        c_alloc = c_train_alloc + c_infer_gs  # GPUs held by training jobs or inference replicas
        c_busy = float(integral[idx[f"busy_gpus.{c}"]]) + c_infer_gs
        if sim.reliability is not None:  # GPUs stalled in checkpoints or restarting hold, but do no work
            c_busy -= float(integral[idx[f"ckpt_gpus.{c}"]])
        train_alloc_gs += c_train_alloc
        clusters[c] = {
            "gpus": st.total_gpus,
            "allocated_fraction": c_alloc / (st.total_gpus * horizon),
            "busy_fraction": c_busy / (st.total_gpus * horizon),
            "it_mwh": c_it / J_PER_MWH,
            "training_mwh": c_train / J_PER_MWH,
        }
        if sim.inference is not None:
            clusters[c]["inference_mwh"] = c_infer / J_PER_MWH
            clusters[c]["inference_fraction"] = c_infer_gs / (st.total_gpus * horizon)
        it_j += c_it
        train_j += c_train
        infer_j += c_infer
        idle_j += c_it - c_train - c_infer
        alloc_gs += c_alloc
        busy_gs += c_busy
    started = jobs["start_s"].notna().to_numpy()
    waits = jobs["wait_s"].to_numpy()[started]
    state = jobs["state"].to_numpy()
    summary: dict[str, object] = {
        "scenario": sim.scenario.name,
        "seed": sim.scenario.seed,
        "gpus_total": gpus_total,
        "horizon_s": horizon,
        "utilisation": {
            "allocated_fraction": alloc_gs / (gpus_total * horizon),
            "busy_fraction": busy_gs / (gpus_total * horizon),
            "allocated_gpu_h": alloc_gs / 3600.0,
            "busy_gpu_h": busy_gs / 3600.0,
            "training_allocated_fraction": train_alloc_gs / (gpus_total * horizon),
        },
        "energy": {
            "it_mwh": it_j / J_PER_MWH,
            "facility_mwh": it_j * pue / J_PER_MWH,
            "training_it_mwh": train_j / J_PER_MWH,
            "idle_it_mwh": idle_j / J_PER_MWH,
            "pue": pue,
        },
        "power": {
            "peak_it_mw": sim.meter.peak_it_w / 1e6,
            "peak_facility_mw": sim.meter.peak_it_w * pue / 1e6,
            "peak_at_s": sim.meter.peak_it_at_s,
            "mean_it_mw": it_j / horizon / 1e6,
            "mean_facility_mw": it_j * pue / horizon / 1e6,
        },
        "jobs": {
            "submitted": len(jobs),
            "completed": int((state == "completed").sum()),
            "running_at_end": int((state == "running").sum()),
            "queued_at_end": int((state == "queued").sum()),
            "started": int(started.sum()),
            "mean_queued": float(integral[idx["queued_jobs"]]) / horizon,
            "mean_running": float(integral[idx["running_jobs"]]) / horizon,
        },
        "wait_s": _percentiles(waits),
        "clusters": clusters,
    }
    if sim.inference is not None:
        inference = inference_summary(sim)
        energy = summary["energy"]
        assert isinstance(energy, dict)
        energy["inference_it_mwh"] = infer_j / J_PER_MWH
        train_gs = train_alloc_gs
        infer_gs = inference["gpu_h"] * 3600.0
        inference["facility_gpu_h"] = {
            "training": train_gs / 3600.0, "inference": infer_gs / 3600.0,
            "idle": (gpus_total * horizon - train_gs - infer_gs) / 3600.0,
        }
        inference["facility_energy_it_mwh"] = {
            "training": train_j / J_PER_MWH, "inference": infer_j / J_PER_MWH, "idle": idle_j / J_PER_MWH,
        }
        summary["inference"] = inference
    if sim.reliability is not None:
        summary["jobs"]["failed"] = int((state == "failed").sum())  # type: ignore[index]
        summary["reliability"] = reliability_summary(sim, jobs)
    if sim.energy is not None:
        _energy_summary(sim, jobs, summary, it_j)
    return summary


def _energy_summary(sim: Simulation, jobs: pd.DataFrame, summary: dict[str, object], it_j: float) -> None:
    """Exact facility figures (the PUE may vary) and the energy sections (grid, carbon, cost, caps, budgets)."""
    es = sim.energy
    assert es is not None
    facility_j = float(sim.meter.integral[sim.meter.index["facility_w"]])
    energy = summary["energy"]
    power = summary["power"]
    assert isinstance(energy, dict) and isinstance(power, dict)
    energy["facility_mwh"] = facility_j / J_PER_MWH
    energy["pue"] = facility_j / it_j if it_j else None
    power["peak_facility_mw"] = es.acc.peak_facility_w / 1e6
    power["mean_facility_mw"] = facility_j / sim.horizon_s / 1e6
    summary.update(energy_sections(sim, jobs))
