"""Every meter channel name, in one place.

Per-cluster channels are named ``"<channel>.<cluster>"``, per-service channels ``"<channel>.<service>"``; the
time series columns of the same names are interval means. Power channels are in watts, counts in GPUs, jobs or
nodes; the meter integrates each (watts -> joules, GPUs -> GPU-seconds).
"""

from __future__ import annotations

__all__ = [
    "CLUSTER",
    "ENERGY_DERIVED",
    "ENERGY_SIGNALS",
    "INFER_CLUSTER",
    "INFER_POOL",
    "INFER_POWER",
    "INFER_SERVICE",
    "POWER",
    "QUEUED_JOBS",
    "RELIABILITY",
    "RUNNING_JOBS",
    "TRAIN_POWER",
    "per",
]

# core, per cluster: training and idle power (W), GPUs held by training jobs and GPUs doing their work
CLUSTER = ("gpu_train_w", "gpu_idle_w", "node_train_w", "node_idle_w", "allocated_gpus", "busy_gpus")
POWER = ("gpu_train_w", "gpu_idle_w", "node_train_w", "node_idle_w")
"""The core's IT power channels of a cluster."""
TRAIN_POWER = ("gpu_train_w", "node_train_w")
QUEUED_JOBS = "queued_jobs"
RUNNING_JOBS = "running_jobs"

# reliability, per cluster: nodes down (failed or in maintenance), GPUs in checkpoint stalls or restarts
RELIABILITY = ("down_nodes", "ckpt_gpus")

# inference, per cluster (IT power of GPUs held by replicas, serving or loading) and per service
INFER_CLUSTER = ("gpu_infer_w", "node_infer_w", "infer_gpus")
INFER_POWER = ("gpu_infer_w", "node_infer_w")
INFER_SERVICE = ("infer_demand_rps", "infer_capacity_rps", "infer_served_rps", "infer_replicas")
# per pool of a disaggregated service (``"<channel>.<service>.<pool>"``): its replicas and the GPUs they hold
INFER_POOL = ("infer_pool_replicas", "infer_pool_gpus")

# energy system: integrals derived at flush points (see energy/accounting.py) and piecewise-constant signals
ENERGY_DERIVED = (
    "facility_w",
    "grid_import_w",
    "renewable_used_w",
    "carbon_g_per_s",
    "cost_eur_per_s",
    "training_carbon_g_per_s",
    "training_cost_eur_per_s",
    "busy_x_carbon",
    "busy_x_price",
    "over_cap_w",
    "inference_carbon_g_per_s",
    "inference_cost_eur_per_s",
)
ENERGY_SIGNALS = (
    "renewable_w",
    "carbon_g_per_kwh",
    "price_eur_per_mwh",
    "cap_w",
    "hard_cap_w",
    "pue_a",
    "throttled_gpus",
    "slowed_gpus",
    "deferred_jobs",
    "power_blocked_gpus",
)


def per(channels: tuple[str, ...], names: list[str]) -> list[str]:
    """``"<channel>.<name>"`` for every name, channels of a name together."""
    return [f"{ch}.{n}" for n in names for ch in channels]
