"""The job table: every training job of a run as columns (struct of arrays), built before the run starts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["JobBatch", "JobTable"]


@dataclass
class JobBatch:
    """Jobs from one source. ``work_s`` is run time at reference speed on ``gpus`` GPUs (seconds)."""

    submit_s: np.ndarray
    gpus: np.ndarray
    work_s: np.ndarray
    priority: np.ndarray
    tenant: list[str]
    source: str
    gpu_load: float
    clusters: tuple[str, ...] | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.submit_s)


class JobTable:
    """All jobs, sorted by submit time (ties keep source order, then row order: deterministic)."""

    def __init__(self, batches: list[JobBatch]) -> None:
        self.sources = [b.source for b in batches]
        self.source_clusters = [b.clusters for b in batches]
        self.source_load = [b.gpu_load for b in batches]
        if batches:
            submit = np.concatenate([b.submit_s for b in batches]).astype(float)
            order = np.argsort(submit, kind="stable")
        else:
            submit = np.zeros(0)
            order = np.zeros(0, dtype=np.int64)
        def cat(name: str, dtype: type) -> np.ndarray:
            if not batches:
                return np.zeros(0, dtype=dtype)
            return np.concatenate([getattr(b, name) for b in batches]).astype(dtype)[order]

        self.submit_s: np.ndarray = submit[order]
        self.gpus: np.ndarray = cat("gpus", np.int64)
        self.work_s: np.ndarray = cat("work_s", float)
        self.priority: np.ndarray = cat("priority", np.int64)
        source_idx = np.concatenate(
            [np.full(len(b), i, dtype=np.int32) for i, b in enumerate(batches)]
        ) if batches else np.zeros(0, dtype=np.int32)
        self.source_idx: np.ndarray = source_idx[order]
        tenants: list[str] = [t for b in batches for t in b.tenant]
        self.tenant_names, tenant_codes = np.unique(np.asarray(tenants, dtype=object).astype(str),
                                                    return_inverse=True) if tenants else (np.zeros(0), np.zeros(0))
        self.tenant_idx: np.ndarray = np.asarray(tenant_codes, dtype=np.int32)[order] if tenants else \
            np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.submit_s)
