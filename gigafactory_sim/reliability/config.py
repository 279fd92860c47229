"""Reliability schema: node failures (rate, time-between-failures law, causes, repairs), planned maintenance,
hot spares; checkpointing and restarts.

Both sections are optional. A scenario without ``failures`` and without ``checkpointing`` runs exactly as the
core does. Each variant is one class (tagged unions on ``kind``); add a failure law or a checkpoint policy by
writing the class and adding it to its union.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.config.distributions import DurationDistribution, LogNormalDuration
from gigafactory_sim.numerics import libm
from gigafactory_sim.units import Duration

__all__ = [
    "CheckpointConfig",
    "ExponentialFailures",
    "FailureCause",
    "FailureConfig",
    "FixedCheckpoints",
    "MaintenanceWindow",
    "NoCheckpoints",
    "WeibullFailures",
    "YoungCheckpoints",
    "default_causes",
]

DAY_S = 86400.0


# -- time between failures of one node -----------------------------------------------------------------------
class ExponentialFailures(StrictModel):
    """``kind: exponential``: memoryless failures (a Poisson process per node while it is up)."""

    kind: Literal["exponential"] = "exponential"

    def sample_s(self, rng: np.random.Generator, mean_s: float, n: int) -> np.ndarray:
        """Times to failure of ``n`` nodes just repaired (as good as new)."""
        return rng.exponential(mean_s, n)

    def sample_initial_s(self, rng: np.random.Generator, mean_s: float, n: int) -> np.ndarray:
        """Times to the first failure at t = 0 (memoryless: same law)."""
        return rng.exponential(mean_s, n)


class WeibullFailures(StrictModel):
    """``kind: weibull``: Weibull times to failure with ``shape`` k (k < 1 infant mortality, k > 1 wear-out),
    the scale set so the mean is ``1 / rate``. Each node is a renewal process: a repair or a maintenance
    window makes it as good as new. ``initial_age: stationary`` starts every node at a random age drawn from
    the renewal process's equilibrium (forward-recurrence time), so a run starts in steady state; ``new``
    starts all nodes at age 0."""

    kind: Literal["weibull"] = "weibull"
    shape: float = Field(gt=0.05, le=20)
    initial_age: Literal["stationary", "new"] = "stationary"

    def scale_s(self, mean_s: float) -> float:
        return mean_s / math.gamma(1.0 + 1.0 / self.shape)

    def sample_s(self, rng: np.random.Generator, mean_s: float, n: int) -> np.ndarray:
        return self.scale_s(mean_s) * rng.weibull(self.shape, n)

    def sample_initial_s(self, rng: np.random.Generator, mean_s: float, n: int) -> np.ndarray:
        if self.initial_age == "new":
            return self.sample_s(rng, mean_s, n)
        # Forward-recurrence time = U x (length-biased interval); for a Weibull, (X / scale)^k of the
        # length-biased interval is Gamma(1 + 1/k) distributed.
        biased = self.scale_s(mean_s) * libm.power(rng.gamma(1.0 + 1.0 / self.shape, 1.0, n), 1.0 / self.shape)
        return rng.random(n) * biased


TimeBetweenFailures = Annotated[ExponentialFailures | WeibullFailures, Field(discriminator="kind")]


class FailureCause(StrictModel):
    """One cause of unexpected node failures: its ``share`` of failures and the node's repair time."""

    name: str = Field(min_length=1)
    share: float = Field(gt=0, le=1)
    repair: DurationDistribution


def _lognormal(median_s: float, sigma: float, min_s: float, max_s: float) -> LogNormalDuration:
    return LogNormalDuration(median=median_s, sigma=sigma, min=min_s, max=max_s)


def default_causes() -> list[FailureCause]:
    """Llama 3's 419 unexpected interruptions in 54 days on 16,384 H100s (Dubey et al. 2024; REFERENCES.md,
    Reliability): faulty GPU 30.1 %, HBM3 17.2 %, software 54/419, network 35/419, host maintenance 32/419;
    the rest (SRAM, GPU system processor, NIC, SDC, thermal, SSD, PSU, CPU, ...) as ``other``. Repair times
    are our assumptions, not published figures: a GPU/HBM fault swaps a board (median 12 h), a network fault
    swaps a cable or optic (4 h), a host fault 6 h, a software fault reboots the node (15 min)."""
    hour = 3600.0
    return [
        FailureCause(name="gpu", share=0.301, repair=_lognormal(12 * hour, 1.0, hour, 14 * DAY_S)),
        FailureCause(name="hbm", share=0.172, repair=_lognormal(12 * hour, 1.0, hour, 14 * DAY_S)),
        FailureCause(name="software", share=0.129, repair=_lognormal(0.25 * hour, 0.5, 60.0, 4 * hour)),
        FailureCause(name="network", share=0.084, repair=_lognormal(4 * hour, 0.8, 0.5 * hour, 3 * DAY_S)),
        FailureCause(name="host", share=0.076, repair=_lognormal(6 * hour, 0.8, 0.5 * hour, 3 * DAY_S)),
        FailureCause(name="other", share=0.238, repair=_lognormal(8 * hour, 1.0, 0.5 * hour, 7 * DAY_S)),
    ]


class MaintenanceWindow(StrictModel):
    """Planned maintenance: at ``first`` (from the scenario start) and then every ``every``, ``nodes`` nodes
    go down for ``duration``. Windows roll over the cluster: window k takes the next ``nodes`` node indices
    after window k-1's (wrapping), so successive windows cover every node. Jobs on those nodes are interrupted
    (cause ``maintenance``) and restart from their last checkpoint; nodes already down are left to their
    repair."""

    first: Duration = 0.0
    every: Duration | None = None
    duration: Duration
    nodes: int = Field(gt=0)

    @model_validator(mode="after")
    def _positive(self) -> MaintenanceWindow:
        if self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.every is not None and self.every <= 0:
            raise ValueError("every must be positive")
        return self


class FailureConfig(StrictModel):
    """Unexpected node failures of one cluster (or of every cluster, under ``facility.failures``).

    Give the rate once: ``rate_per_node_day`` (failures per node per day of up time), ``mtbf_node`` or
    ``mtbf_gpu`` (a node of g GPUs fails g times as often as one GPU). A rate of 0 turns failures off. Causes'
    shares must sum to 1; each cause draws its own repair time. ``hot_spares`` whole nodes are kept powered
    but out of scheduling; a multi-node (gang) job hit by a failure restarts at once on a spare, and a
    repaired node refills the spare pool before it returns to scheduling.
    """

    rate_per_node_day: float | None = Field(default=None, ge=0)
    mtbf_node: Duration | None = None
    mtbf_gpu: Duration | None = None
    distribution: TimeBetweenFailures = Field(default_factory=ExponentialFailures)
    causes: list[FailureCause] = Field(default_factory=default_causes, min_length=1)
    hot_spares: int = Field(default=0, ge=0)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_rate(self) -> FailureConfig:
        given = [n for n in ("rate_per_node_day", "mtbf_node", "mtbf_gpu") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of rate_per_node_day, mtbf_node, mtbf_gpu"
                + (f" (got {', '.join(given)})" if given else "")
            )
        for name in ("mtbf_node", "mtbf_gpu"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        total = sum(c.share for c in self.causes)
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"cause shares must sum to 1, they sum to {total:.4f}")
        names = [c.name for c in self.causes]
        if len(set(names)) != len(names):
            raise ValueError(f"cause names must be unique, got {names}")
        return self

    def rate_per_node_s(self, gpus_per_node: int) -> float:
        """Failures per node per second of up time."""
        if self.rate_per_node_day is not None:
            return self.rate_per_node_day / DAY_S
        if self.mtbf_node is not None:
            return 1.0 / self.mtbf_node
        assert self.mtbf_gpu is not None
        return gpus_per_node / self.mtbf_gpu


# -- checkpointing -------------------------------------------------------------------------------------------
class _CheckpointBase(StrictModel):
    restart_overhead: Duration = Field(
        default=0.0, description="wall time a job spends restarting (reload, re-init) before it progresses again"
    )
    power_fraction: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="GPU power during checkpoints and restarts as a fraction of board power; OLMo saw ~100 W "
        "(~15 %) on H100s while checkpointing (REFERENCES.md)",
    )
    max_retries: int | None = Field(
        default=None, ge=0, description="failure interruptions a job survives; one more and it ends 'failed'"
    )


class NoCheckpoints(_CheckpointBase):
    """``kind: none``: an interrupted job restarts from scratch."""

    kind: Literal["none"] = "none"

    @property
    def cost_s(self) -> float:
        return 0.0

    def interval_s(self, mtbf_s: float) -> float:
        return math.inf


class FixedCheckpoints(_CheckpointBase):
    """``kind: fixed``: a checkpoint after every ``interval`` of progress, each stalling the job for
    ``cost``."""

    kind: Literal["fixed"] = "fixed"
    interval: Duration
    cost: Duration

    @model_validator(mode="after")
    def _positive(self) -> FixedCheckpoints:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        return self

    @property
    def cost_s(self) -> float:
        return float(self.cost)

    def interval_s(self, mtbf_s: float) -> float:
        return float(self.interval)


class YoungCheckpoints(_CheckpointBase):
    """``kind: young``: Young's interval tau = sqrt(2 * cost * M), M the job's MTBF (1 / (its nodes x the node
    failure rate)), clamped to [``min_interval``, ``max_interval``]; no checkpoints on clusters without
    failures."""

    kind: Literal["young"] = "young"
    cost: Duration
    min_interval: Duration = 60.0
    max_interval: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> YoungCheckpoints:
        if self.cost <= 0:
            raise ValueError("cost must be positive")
        return self

    @property
    def cost_s(self) -> float:
        return float(self.cost)

    def interval_s(self, mtbf_s: float) -> float:
        if math.isinf(mtbf_s):
            return math.inf
        tau = max(math.sqrt(2.0 * self.cost * mtbf_s), self.min_interval)
        return tau if self.max_interval is None else min(tau, self.max_interval)


CheckpointConfig = Annotated[NoCheckpoints | FixedCheckpoints | YoungCheckpoints, Field(discriminator="kind")]
