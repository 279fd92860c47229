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
    job_class: list[str] | None = None
    """Class of each job within its source (synthetic mixtures); None: every job is of class ``source``."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.submit_s)


class JobTable:
    """All jobs, sorted by submit time (ties keep source order, then row order: deterministic)."""

    def __init__(self, batches: list[JobBatch]) -> None:
        self.sources = [b.source for b in batches]
        self.source_clusters = [b.clusters for b in batches]
        self.source_load = [b.gpu_load for b in batches]
        submit = np.concatenate([np.zeros(0), *(b.submit_s for b in batches)]).astype(float)
        order = np.argsort(submit, kind="stable")

        def cat(name: str, dtype: type) -> np.ndarray:
            parts = [np.asarray(getattr(b, name)) for b in batches]
            return np.concatenate([np.zeros(0, dtype=dtype), *parts]).astype(dtype)[order]

        self.submit_s: np.ndarray = submit[order]
        self.gpus: np.ndarray = cat("gpus", np.int64)
        self.work_s: np.ndarray = cat("work_s", float)
        self.priority: np.ndarray = cat("priority", np.int64)
        source_idx = [np.full(len(b), i, dtype=np.int32) for i, b in enumerate(batches)]
        self.source_idx: np.ndarray = np.concatenate([np.zeros(0, dtype=np.int32), *source_idx])[order]
        self.tenant_names, self.tenant_idx = _codes([t for b in batches for t in b.tenant], order)
        classes = [c for b in batches for c in (b.job_class if b.job_class is not None else [b.source] * len(b))]
        self.class_names, self.class_idx = _codes(classes, order)

    def __len__(self) -> int:
        return len(self.submit_s)

    @classmethod
    def blank(cls, like: JobTable, source_clusters: list[tuple[str, ...] | None]) -> JobTable:
        """A table of ``len(like)`` empty rows with ``like``'s sources and names, to be filled row by row
        (:meth:`copy_row`) as jobs are placed at a site; ``source_clusters`` are the site's own."""
        t = cls([])
        n = len(like)
        t.sources, t.source_load = like.sources, like.source_load
        t.source_clusters = source_clusters
        t.tenant_names, t.class_names = like.tenant_names, like.class_names
        t.submit_s = np.zeros(n)
        t.gpus = np.zeros(n, dtype=np.int64)
        t.work_s = np.zeros(n)
        t.priority = np.zeros(n, dtype=np.int64)
        t.source_idx = np.zeros(n, dtype=np.int32)
        t.tenant_idx = np.zeros(n, dtype=np.int32)
        t.class_idx = np.zeros(n, dtype=np.int32)
        return t

    def copy_row(self, row: int, src: JobTable, i: int) -> None:
        """Set row ``row`` to job ``i`` of ``src`` (a table with the same sources and names)."""
        self.submit_s[row] = src.submit_s[i]
        self.gpus[row] = src.gpus[i]
        self.work_s[row] = src.work_s[i]
        self.priority[row] = src.priority[i]
        self.source_idx[row] = src.source_idx[i]
        self.tenant_idx[row] = src.tenant_idx[i]
        self.class_idx[row] = src.class_idx[i]


def _codes(values: list[str], order: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct names, sorted (code point order, as ``np.unique`` sorts them), and, per job in submit order, the
    index of its name. A set, a sort of the few distinct names and one dict lookup per job: no sort of a
    million strings."""
    names = sorted(set(values))
    index = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values))
    return names, codes[order]
