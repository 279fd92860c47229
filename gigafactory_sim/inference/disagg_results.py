"""The ``pools`` and ``kv_link`` parts of a disaggregated service's summary (read from its meters and its fluid
state; energy and GPU-hours are the exact integrals of each pool's own meter)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gigafactory_sim.units import J_PER_KWH, S_PER_H

if TYPE_CHECKING:
    from gigafactory_sim.inference.disagg_service import DisaggServiceRuntime, ReplicaPool
    from gigafactory_sim.sim.ops import RunView

__all__ = ["pools_summary"]


def _pool(p: ReplicaPool, horizon_s: float) -> dict[str, Any]:
    integral, idx = p.meter.integral, p.meter.index
    gpu_j = float(integral[idx["gpu_w"]])
    it_j = gpu_j + float(integral[idx["node_w"]])
    gpu_s = float(integral[idx["gpus"]])
    return {
        "gpus_per_replica": p.gpus_per_replica,
        "replicas": {
            "mean": float(integral[idx["serving"]] + integral[idx["loading"]]) / horizon_s,
            "mean_serving": float(integral[idx["serving"]]) / horizon_s,
            "mean_loading": float(integral[idx["loading"]]) / horizon_s,
            "unmet_replica_h": p.unmet_replica_s / S_PER_H,
        },
        "gpus_mean": gpu_s / horizon_s,
        "gpu_h": gpu_s / S_PER_H,
        "energy": {"gpu_kwh": gpu_j / J_PER_KWH, "it_kwh": it_j / J_PER_KWH},
    }


def pools_summary(s: DisaggServiceRuntime, run: RunView) -> dict[str, Any]:
    """``pools: {prefill, decode}`` (replicas, GPUs, GPU-hours, energy, utilisation, latency of each) and
    ``kv_link`` (kind, rate, transfer times, bytes moved)."""
    horizon_s = run.horizon_s
    stats = s.serving.pool_stats()
    pm = s.pool_models
    first = s.clusters[0]
    pre = _pool(s.pools["prefill"], horizon_s)
    dec = _pool(s.pools["decode"], horizon_s)
    p, d = stats["prefill"], stats["decode"]
    pre["capacity_per_replica_rps"] = pm.prefill[first].rate_per_s
    pre["prefill_s_per_request"] = pm.prefill[first].mean_service_s
    serving_s = pre["replicas"]["mean_serving"] * horizon_s
    pre["utilisation"] = p["busy_replica_s"] / serving_s if serving_s > 0 else 0.0  # share of time prefilling
    pre["requests"] = {"served": p["served"], "rejected": p["rejected"], "late": p["late"]}
    pre["latency"] = p["latency"]
    dec["capacity_per_replica_rps"] = pm.decode[first].rate_per_s
    dec["max_concurrent_per_replica"] = pm.decode[first].slots
    cap_s = dec["replicas"]["mean_serving"] * horizon_s * pm.decode[first].rate_per_s
    dec["utilisation"] = d["served"] / cap_s if cap_s > 0 else 0.0  # served / capacity of its serving replicas
    dec["requests"] = {"served": d["served"], "rejected": d["rejected"], "late": d["late"]}
    dec["latency"] = d["latency"]  # mean_e2e_s: from the first token (the handover) to the last
    d_cfg = s.svc.disaggregation
    assert d_cfg is not None
    return {
        "pools": {"prefill": pre, "decode": dec},
        "kv_link": {
            "kind": d_cfg.kv_link.kind,
            "gbps": d_cfg.kv_link.rate_gbps,
            "mean_transfer_s": pm.transfer_mean_s,
            "transfer_at_quantile_s": pm.transfer_q_s,
            "transfers": s.serving.transfers(),
            "moved_tb": s.serving.moved_bytes() / 1e12,
        },
    }
