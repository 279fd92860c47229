"""The ``inference`` section of the summary: per service and for the facility (training lost to
preemption)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gigafactory_sim.inference.disagg_config import POOLS
from gigafactory_sim.inference.disagg_results import pools_summary
from gigafactory_sim.inference.disagg_service import DisaggServiceRuntime
from gigafactory_sim.sim import channels
from gigafactory_sim.units import J_PER_KWH, J_PER_MWH, S_PER_H, W_PER_MW

if TYPE_CHECKING:
    from gigafactory_sim.inference.service import ServiceRuntime
    from gigafactory_sim.sim.ops import RunView

__all__ = ["summary_sections", "timeseries_columns"]


class Inference(Protocol):
    """What the results read of the inference feature (:class:`gigafactory_sim.inference.runtime.InferenceRuntime`)."""

    services: list[ServiceRuntime | DisaggServiceRuntime]
    preemptions: int
    lost_gpu_s: float


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if len(x) else None


def service_summary(s: ServiceRuntime | DisaggServiceRuntime, run: RunView) -> dict[str, Any]:
    horizon_s = run.horizon_s
    stats = s.serving.stats()
    integral = s.meter.integral
    idx = s.meter.index
    gpu_j = float(integral[idx["gpu_w"]])
    it_j = gpu_j + float(integral[idx["node_w"]])
    offered = s.serving.arrived()
    served, out = stats["served"], stats["output_tokens"]
    not_served = stats["rejected"] + stats["late"]
    cap_rps = float(run.meter.integral[run.meter.index[f"infer_capacity_rps.{s.svc.name}"]])
    slo = s.svc.slo
    attainment = 1.0 - stats["late"] / served if served else None
    first = s.models[s.clusters[0]]
    extra = {"prefix_cache": stats["prefix_cache"]} if "prefix_cache" in stats else {}  # from_trace only
    out = {
        "fidelity": s.svc.fidelity,
        "model": s.svc.model.name or f"{s.svc.model.params_b:g}B",
        "gpus_per_replica": s.svc.gpus_per_replica,
        "clusters": [run.facility.cluster_names[c] for c in s.clusters],
        "capacity_per_replica_rps": first.rate_per_s,
        "capacity_per_replica_output_tokens_per_s": first.rate_per_s * s.mix.output_mean,
        "max_concurrent_per_replica": first.slots,
        "requests": {
            "offered": offered,
            "served": served,
            "rejected": stats["rejected"],
            "late": stats["late"],
            "pending_at_end": max(offered - served - stats["rejected"], 0.0),
            "not_served": not_served,
            "not_served_fraction": not_served / offered if offered else 0.0,
        },
        "tokens": {"prompt": stats["prompt_tokens"], "output": out, "output_per_s": out / horizon_s},
        "replicas": {
            "mean": float(integral[idx["serving"]] + integral[idx["loading"]]) / horizon_s,
            "mean_serving": float(integral[idx["serving"]]) / horizon_s,
            "mean_loading": float(integral[idx["loading"]]) / horizon_s,
            "gpu_h": float(integral[idx["gpus"]]) / 3600.0,
            "unmet_replica_h": s.unmet_replica_s / 3600.0,
        },
        "utilisation": served / cap_rps if cap_rps > 0 else 0.0,
        "latency": stats["latency"],
        "slo": {
            "ttft_s": slo.ttft,
            "tpot_s": slo.tpot,
            "e2e_s": slo.e2e,
            "quantile": slo.quantile,
            "attainment": attainment,
            "met": attainment is not None and attainment >= slo.quantile,
        },
        "energy": {
            "gpu_kwh": gpu_j / J_PER_KWH,
            "it_kwh": it_j / J_PER_KWH,
            "it_kwh_per_1000_output_tokens": it_j / J_PER_KWH / out * 1000 if out else None,
            "gpu_j_per_output_token": gpu_j / out if out else None,
            "it_wh_per_request": it_j / 3600.0 / served if served else None,
        },
    }
    out.update(extra)
    if isinstance(s, DisaggServiceRuntime):  # prefill/decode pools: service-level capacity is the decode pool's
        out["gpus_per_replica"] = s.pools["decode"].gpus_per_replica
        out.update(pools_summary(s, run))
    return out


def _section(rt: Inference, run: RunView) -> dict[str, Any]:
    """Per-service results and facility totals (GPU-hours and IT energy of inference; training preempted)."""
    integral = run.meter.integral
    idx = run.meter.index
    names = run.facility.cluster_names
    it_j = sum(float(integral[idx[f"{ch}.{c}"]]) for c in names for ch in channels.INFER_POWER)
    gpu_s = sum(float(integral[idx[f"infer_gpus.{c}"]]) for c in names)
    return {
        "services": {s.svc.name: service_summary(s, run) for s in rt.services},
        "gpu_h": gpu_s / S_PER_H,
        "it_mwh": it_j / J_PER_MWH,
        "training_preemptions": rt.preemptions,
        "training_lost_gpu_h": rt.lost_gpu_s / S_PER_H,
    }


def summary_sections(rt: Inference, run: RunView, summary: dict[str, Any]) -> None:
    """``energy.inference_it_mwh``, each cluster's inference share, and the ``inference`` section."""
    integral = run.meter.integral
    idx = run.meter.index
    horizon = run.horizon_s
    infer_j = 0.0
    for name, st in zip(run.facility.cluster_names, run.facility.clusters, strict=True):
        c_infer = sum(float(integral[idx[f"{ch}.{name}"]]) for ch in channels.INFER_POWER)
        c_gs = float(integral[idx[f"infer_gpus.{name}"]])
        summary["clusters"][name]["inference_mwh"] = c_infer / J_PER_MWH
        summary["clusters"][name]["inference_fraction"] = c_gs / (st.total_gpus * horizon)
        infer_j += c_infer
    inference = _section(rt, run)
    totals = run.totals
    summary["energy"]["inference_it_mwh"] = infer_j / J_PER_MWH
    train_gs = totals["training_allocated_gs"]
    infer_gs = inference["gpu_h"] * S_PER_H
    gpus_total = run.facility.gpus_total
    inference["facility_gpu_h"] = {
        "training": train_gs / S_PER_H,
        "inference": infer_gs / S_PER_H,
        "idle": (gpus_total * horizon - train_gs - infer_gs) / S_PER_H,
    }
    inference["facility_energy_it_mwh"] = {
        "training": totals["training_j"] / J_PER_MWH,
        "inference": infer_j / J_PER_MWH,
        "idle": totals["idle_j"] / J_PER_MWH,
    }
    summary["inference"] = inference


def timeseries_columns(rt: Inference, run: RunView, means: np.ndarray) -> dict[str, Any]:
    """Per cluster and per service: the inference channels' interval means; the facility's inference power and
    GPUs."""
    idx = run.meter.index
    names = run.facility.cluster_names
    out: dict[str, Any] = {}
    infer_w = np.zeros(len(means))
    for c in names:
        for ch in channels.INFER_CLUSTER:
            out[f"{ch}.{c}"] = means[:, idx[f"{ch}.{c}"]]
        infer_w += means[:, idx[f"gpu_infer_w.{c}"]] + means[:, idx[f"node_infer_w.{c}"]]
    for s in rt.services:
        for ch in channels.INFER_SERVICE:
            out[f"{ch}.{s.svc.name}"] = means[:, idx[f"{ch}.{s.svc.name}"]]
        if s.svc.disaggregation is not None:
            for key in channels.per(channels.INFER_POOL, [f"{s.svc.name}.{pool}" for pool in POOLS]):
                out[key] = means[:, idx[key]]
    out["inference_power_mw"] = infer_w / W_PER_MW
    out["inference_gpus"] = np.sum([means[:, idx[f"infer_gpus.{c}"]] for c in names], axis=0)
    return out
