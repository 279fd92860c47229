"""Reliability columns and the ``reliability`` summary section (only for runs with failures or checkpointing).

Definitions (per job, wall time; GPU-hours weight by the job's GPUs):

- run: time holding GPUs; productive = run - restarts - checkpoint stalls - lost work.
- lost work (redone): time since the last completed checkpoint (or restart end), thrown away at an
  interruption, including a checkpoint cut short.
- effective training time ratio (ETTR) = productive / (end or horizon - first start): waits in the queue after
  an interruption count against it.
- job MTBF by size = run time / interruptions by unexpected failures, beside the model's 1 / (nodes x rate).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import pandas as pd

from gigafactory_sim.sim.state import FAILED
from gigafactory_sim.units import J_PER_KWH, J_PER_MWH

if TYPE_CHECKING:
    from gigafactory_sim.reliability.checkpoints import RunRecords
    from gigafactory_sim.reliability.config import CheckpointConfig
    from gigafactory_sim.reliability.failures import ClusterFailures
    from gigafactory_sim.sim.ops import RunView


class Reliability(Protocol):
    """What the results read of the reliability feature (:class:`gigafactory_sim.reliability.runtime.Reliability`)."""

    records: RunRecords
    cause_names: list[str]
    failure_log: list[tuple[float, int, int]]
    interruption_log: list[tuple[float, int, int, int]]
    failures: list[ClusterFailures | None]
    policy: CheckpointConfig

    def mtbf_s(self, c: int, nodes: int) -> float: ...


__all__ = ["SIZE_CLASSES", "job_columns", "summary_sections", "timeseries_columns"]
SIZE_CLASSES: tuple[tuple[str, int, float], ...] = (
    ("1-8", 1, 8),
    ("9-128", 9, 128),
    ("129-1024", 129, 1024),
    ("1025-4096", 1025, 4096),
    (">4096", 4097, math.inf),
)
"""(label, min GPUs, max GPUs) of the size classes that ETTR is reported by."""


def _productive_s(rel: Reliability, n: int) -> np.ndarray:
    r = rel.records
    return np.maximum(r.run_s[:n] - r.restart_s[:n] - r.ckpt_s[:n] - r.lost_s[:n], 0.0)


def _wall_s(run: RunView, n: int) -> np.ndarray:
    f = run.facility
    end = np.where(np.isnan(f.rec_end_s[:n]), run.horizon_s, f.rec_end_s[:n])
    return end - f.rec_start_s[:n]


def job_columns(rel: Reliability, run: RunView) -> dict[str, np.ndarray]:
    """Per-job columns added to the jobs table."""
    r = rel.records
    f = run.facility
    n = run.n_submitted
    gpus = f.jobs.gpus[:n]
    failed = f.rec_state[:n] == FAILED
    wall = _wall_s(run, n)
    productive = _productive_s(rel, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        ettr = np.where(wall > 0, productive / wall, np.nan)
    return {
        "interruptions": r.interruptions[:n].astype(np.int64),
        "restarts": (r.interruptions[:n] - failed).astype(np.int64),
        "run_gpu_h": r.run_s[:n] * gpus / 3600.0,
        "productive_gpu_h": productive * gpus / 3600.0,
        "lost_gpu_h": r.lost_s[:n] * gpus / 3600.0,
        "restart_gpu_h": r.restart_s[:n] * gpus / 3600.0,
        "checkpoint_gpu_h": r.ckpt_s[:n] * gpus / 3600.0,
        "ettr": ettr,
        "lost_energy_kwh": (r.e_lost_j[:n] + r.e_restart_j[:n]) / J_PER_KWH,
        "checkpoint_energy_kwh": r.e_ckpt_j[:n] / J_PER_KWH,
    }


def timeseries_columns(rel: Reliability, run: RunView, times: np.ndarray, means: np.ndarray) -> dict[str, Any]:
    """Per report interval: mean nodes down and GPUs in checkpoints/restarts (exact), counts of node failures
    and job interruptions starting in the interval."""
    f = run.facility
    idx = run.meter.index
    ends = times[1:]
    out: dict[str, np.ndarray] = {}

    def count(events: list[tuple[float, int]], c: int) -> np.ndarray:
        t = np.array([e[0] for e in events if e[1] == c], dtype=float)
        bins = np.searchsorted(ends, t, side="right")
        return np.bincount(bins[bins < len(ends)], minlength=len(ends)).astype(np.int64)

    failures = [(t, c) for t, c, _ in rel.failure_log]
    interruptions = [(t, c) for t, c, _, _ in rel.interruption_log]
    for c, name in enumerate(f.cluster_names):
        out[f"down_nodes.{name}"] = means[:, idx[f"down_nodes.{name}"]]
        out[f"ckpt_gpus.{name}"] = means[:, idx[f"ckpt_gpus.{name}"]]
        out[f"node_failures.{name}"] = count(failures, c)
        out[f"interruptions.{name}"] = count(interruptions, c)
    names = f.cluster_names
    for total in ("down_nodes", "node_failures", "interruptions"):
        out[total] = np.sum([out[f"{total}.{c}"] for c in names], axis=0)
    return out


def _job_mtbf_by_size(rel: Reliability, run: RunView, jobs: pd.DataFrame) -> list[dict[str, Any]]:
    f = run.facility
    n = len(jobs)
    started = ~np.isnan(f.rec_start_s[:n])
    frame = pd.DataFrame(
        {
            "c": f.rec_cluster[:n][started],
            "gpus": f.jobs.gpus[:n][started],
            "run_s": rel.records.run_s[:n][started],
            "failures": rel.records.failures[:n][started],
        }
    )
    rows: list[dict[str, Any]] = []
    for key, grp in frame.groupby(["c", "gpus"], sort=True):
        c, gpus = (int(k) for k in cast(tuple[int, int], key))
        nodes = f.clusters[c].nodes_for(gpus)
        run_h = float(grp["run_s"].sum()) / 3600.0
        k = int(grp["failures"].sum())
        expected = rel.mtbf_s(c, nodes)
        rows.append(
            {
                "cluster": f.cluster_names[c],
                "gpus": gpus,
                "nodes": nodes,
                "jobs": len(grp),
                "run_h": run_h,
                "failure_interruptions": k,
                "mtbf_h": run_h / k if k else None,
                "expected_mtbf_h": expected / 3600.0 if math.isfinite(expected) else None,
            }
        )
    return rows


def summary_sections(rel: Reliability, run: RunView, jobs: pd.DataFrame, summary: dict[str, Any]) -> None:
    """``jobs.failed`` and the ``reliability`` section of ``summary.json``."""
    state = jobs["state"].to_numpy()
    summary["jobs"]["failed"] = int((state == "failed").sum())
    summary["reliability"] = _section(rel, run, jobs)


def _section(rel: Reliability, run: RunView, jobs: pd.DataFrame) -> dict[str, Any]:
    f = run.facility
    r = rel.records
    n = len(jobs)
    names = rel.cause_names
    gpus = f.jobs.gpus[:n].astype(float)
    started = ~np.isnan(f.rec_start_s[:n])
    productive = _productive_s(rel, n)
    wall = np.where(started, _wall_s(run, n), 0.0)

    def gpu_h(x: np.ndarray) -> float:
        return float((x[:n] * gpus).sum()) / 3600.0

    def ettr(mask: np.ndarray) -> float | None:
        denominator = float((wall[mask] * gpus[mask]).sum())
        return float((productive[mask] * gpus[mask]).sum()) / denominator if denominator > 0 else None

    by_class: dict[str, dict[str, Any]] = {}
    for label, lo, hi in SIZE_CLASSES:
        mask = started & (gpus >= lo) & (gpus <= hi)
        if mask.any():
            by_class[label] = {
                "jobs": int(mask.sum()),
                "ettr": ettr(mask),
                "interruptions": int(r.interruptions[:n][mask].sum()),
            }
    lost_work, restarts, checkpoints = gpu_h(r.lost_s), gpu_h(r.restart_s), gpu_h(r.ckpt_s)
    run_gpu_h = gpu_h(r.run_s)
    integral = run.meter.integral
    idx = run.meter.index
    availability = {
        name: 1.0 - float(integral[idx[f"down_nodes.{name}"]]) / (st.nodes * run.horizon_s)
        for name, st in zip(f.cluster_names, f.clusters, strict=True)
    }
    down_by_cause: dict[str, float] = {}
    for cf in rel.failures:
        if cf is not None:
            for k, seconds in cf.down_s_by_cause.items():
                down_by_cause[names[k]] = down_by_cause.get(names[k], 0.0) + seconds / 3600.0
    train_j = sum(
        float(integral[idx[f"gpu_train_w.{c}"]] + integral[idx[f"node_train_w.{c}"]]) for c in f.cluster_names
    )
    e_lost, e_restart, e_ckpt = (float(x[:n].sum()) for x in (r.e_lost_j, r.e_restart_j, r.e_ckpt_j))
    policy = rel.policy
    return {
        "node_failures": len(rel.failure_log),
        "node_failures_by_cause": _counts([names[k] for _, _, k in rel.failure_log]),
        "interruptions": len(rel.interruption_log),
        "interruptions_by_cause": _counts([names[k] for _, _, k, _ in rel.interruption_log]),
        "failed_jobs": int((f.rec_state[:n] == FAILED).sum()),
        "gpu_h": {
            "run": run_gpu_h,
            "productive": gpu_h(productive),
            "lost_work": lost_work,
            "restarts": restarts,
            "checkpoints": checkpoints,
            "lost_total": lost_work + restarts + checkpoints,
        },
        "lost_fraction": (lost_work + restarts + checkpoints) / run_gpu_h if run_gpu_h > 0 else None,
        "ettr": {"overall": ettr(started), "by_size_class": by_class},
        "availability": availability,
        "down_node_h_by_cause": down_by_cause,
        "job_mtbf_by_size": _job_mtbf_by_size(rel, run, jobs),
        "energy_mwh": {
            "lost_work": e_lost / J_PER_MWH,
            "restarts": e_restart / J_PER_MWH,
            "checkpoints": e_ckpt / J_PER_MWH,
            "lost_total": (e_lost + e_restart + e_ckpt) / J_PER_MWH,
            "lost_fraction_of_training": (e_lost + e_restart + e_ckpt) / train_j if train_j > 0 else None,
        },
        "checkpointing": {
            "policy": policy.kind,
            "cost_s": policy.cost_s,
            "restart_overhead_s": float(policy.restart_overhead),
            "max_retries": policy.max_retries,
        },
    }


def _counts(labels: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for label in labels:
        out[label] = out.get(label, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
