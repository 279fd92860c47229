"""Synthetic training-job streams: an arrival process and a mixture of job classes.

The default mix resembles an LLM-era facility: many 1-8 GPU jobs (debugging, fine-tuning, evaluation), fewer
16-256 and 512-2,048 GPU runs, and rare 4k-16k GPU pre-training runs lasting weeks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.config.distributions import (
    ChoiceSizes,
    DurationDistribution,
    LogNormalDuration,
    SizeDistribution,
)
from gigafactory_sim.numerics import libm
from gigafactory_sim.workload.arrivals import ArrivalProcess
from gigafactory_sim.workload.jobs import JobBatch

__all__ = ["JobClass", "SyntheticTraining", "default_llm_mix"]


class JobClass(StrictModel):
    """One class of the mixture: its share of arrivals, its sizes, its run times at reference speed."""

    name: str
    share: float = Field(gt=0)
    sizes: SizeDistribution
    duration: DurationDistribution
    priority: int = 0


def default_llm_mix() -> list[JobClass]:
    """The default LLM-era mix (shares of arrivals); run times are at reference speed."""
    day = 86400.0
    return [
        JobClass(
            name="small",
            share=0.75,
            sizes=ChoiceSizes(gpus=[1, 2, 4, 8], weights=[0.4, 0.15, 0.15, 0.3]),
            duration=LogNormalDuration(median=1800.0, sigma=1.5, min=60.0, max=3 * day),
        ),
        JobClass(
            name="medium",
            share=0.22,
            sizes=ChoiceSizes(gpus=[16, 32, 64, 128, 256], weights=[0.3, 0.25, 0.2, 0.15, 0.1]),
            duration=LogNormalDuration(median=4 * 3600.0, sigma=1.2, min=600.0, max=7 * day),
        ),
        JobClass(
            name="large",
            share=0.028,
            priority=1,
            sizes=ChoiceSizes(gpus=[512, 1024, 2048], weights=[0.5, 0.35, 0.15]),
            duration=LogNormalDuration(median=1 * day, sigma=1.0, min=3600.0, max=21 * day),
        ),
        JobClass(
            name="frontier",
            share=0.002,
            priority=2,
            sizes=ChoiceSizes(gpus=[4096, 8192, 16384], weights=[0.5, 0.35, 0.15]),
            duration=LogNormalDuration(median=14 * day, sigma=0.5, min=2 * day, max=60 * day),
        ),
    ]


class SyntheticTraining(StrictModel):
    """A synthetic stream of training jobs."""

    kind: Literal["synthetic"] = "synthetic"
    name: str = "synthetic"
    arrivals: ArrivalProcess
    classes: list[JobClass] = Field(default_factory=default_llm_mix, min_length=1)
    tenants: int = Field(default=20, gt=0, description="jobs are spread uniformly over this many tenants")
    gpu_load: float | None = Field(
        default=None, gt=0, le=1, description="offered load per GPU; default power.training_gpu_load"
    )
    clusters: list[str] | None = Field(default=None, description="clusters this stream may use (default: all)")

    @model_validator(mode="after")
    def _unique_classes(self) -> SyntheticTraining:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        return self

    def mean_gpu_s_per_job(self) -> float:
        shares = np.array([c.share for c in self.classes])
        shares = shares / shares.sum()
        per_class = [c.sizes.mean_gpus() * c.duration.mean_s() for c in self.classes]
        return libm.dot(shares, per_class)

    def build(self, rng: np.random.Generator, horizon_s: float, start: datetime, default_load: float) -> JobBatch:
        """Draw the stream's jobs in ``[0, horizon_s)``.

        Arrivals, classes, tenants, and each class's sizes and run times come from separate sub-streams consumed
        in arrival order, so the jobs of a shorter horizon are exactly the first jobs of a longer one.
        """
        arrival_rng, class_rng, tenant_rng, *class_rngs = rng.spawn(3 + 2 * len(self.classes))
        times = self.arrivals.times_s(arrival_rng, horizon_s, start)
        n = len(times)
        shares = np.array([c.share for c in self.classes], dtype=float)
        cls = class_rng.choice(len(self.classes), size=n, p=shares / shares.sum())
        gpus = np.zeros(n, dtype=np.int64)
        work = np.zeros(n, dtype=float)
        prio = np.zeros(n, dtype=np.int64)
        for i, c in enumerate(self.classes):
            idx = np.flatnonzero(cls == i)
            gpus[idx] = c.sizes.sample(class_rngs[2 * i], len(idx))
            work[idx] = c.duration.sample(class_rngs[2 * i + 1], len(idx))
            prio[idx] = c.priority
        tenant_ids = tenant_rng.integers(0, self.tenants, size=n)
        class_names = [c.name for c in self.classes]
        if self.tenants <= n:  # each name formatted once
            names = [f"{self.name}-t{k:03d}" for k in range(self.tenants)]
            tenants = [names[k] for k in tenant_ids.tolist()]
        else:  # (more tenants than jobs: only the jobs' own)
            tenants = [f"{self.name}-t{k:03d}" for k in tenant_ids.tolist()]
        return JobBatch(
            submit_s=times,
            gpus=gpus,
            work_s=work,
            priority=prio,
            tenant=tenants,
            source=self.name,
            gpu_load=self.gpu_load if self.gpu_load is not None else default_load,
            clusters=tuple(self.clusters) if self.clusters else None,
            job_class=[class_names[k] for k in cls.tolist()],
        )
