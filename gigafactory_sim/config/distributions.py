"""Duration and size distributions used by synthetic workloads (tagged unions on ``kind``).

Each variant is one class with a ``sample(rng, n)`` method; add a variant by writing the class and adding it to the
union below.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.numerics import libm
from gigafactory_sim.units import Duration

__all__ = [
    "ChoiceSizes",
    "DurationDistribution",
    "ExponentialDuration",
    "FixedDuration",
    "LogNormalDuration",
    "SizeDistribution",
]

# The largest log-space sigma of a log-normal: at 10 its 99th percentile is 1.3e10 times its median, beyond any
# workload; far above it, sigma times a normal draw overflows, and so does the mean, median * exp(sigma**2 / 2).
SIGMA_MAX = 10.0


class LogNormalDuration(StrictModel):
    """Log-normal run time at reference speed: ``median`` and log-space ``sigma``, clipped to [min, max]."""

    kind: Literal["lognormal"] = "lognormal"
    median: Duration
    sigma: float = Field(default=1.0, ge=0, le=SIGMA_MAX)
    min: Duration = 60.0
    max: Duration = 30 * 86400.0

    @model_validator(mode="after")
    def _ordered(self) -> LogNormalDuration:
        if not self.min <= self.median <= self.max:
            raise ValueError("need min <= median <= max")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = self.median * libm.exp(self.sigma * rng.standard_normal(n))
        return np.clip(x, self.min, self.max)

    def mean_s(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)


class ExponentialDuration(StrictModel):
    """Exponential run time with the given ``mean`` (memoryless; the M in M/M/c)."""

    kind: Literal["exponential"] = "exponential"
    mean: Duration

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)

    def mean_s(self) -> float:
        return float(self.mean)


class FixedDuration(StrictModel):
    """Every job runs exactly ``value`` at reference speed."""

    kind: Literal["fixed"] = "fixed"
    value: Duration

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))

    def mean_s(self) -> float:
        return float(self.value)


DurationDistribution = Annotated[LogNormalDuration | ExponentialDuration | FixedDuration, Field(discriminator="kind")]


class ChoiceSizes(StrictModel):
    """Job sizes (GPUs) drawn from ``gpus`` with ``weights`` (equal when omitted)."""

    kind: Literal["choice"] = "choice"
    gpus: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> ChoiceSizes:
        if self.weights is not None:
            if len(self.weights) != len(self.gpus):
                raise ValueError(f"weights has {len(self.weights)} entries but gpus has {len(self.gpus)}")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be zero")
        return self

    def probabilities(self) -> np.ndarray:
        w = np.ones(len(self.gpus)) if self.weights is None else np.asarray(self.weights, dtype=float)
        return w / w.sum()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(np.asarray(self.gpus, dtype=np.int64), size=n, p=self.probabilities())

    def max_gpus(self) -> int:
        return max(g for g, p in zip(self.gpus, self.probabilities(), strict=True) if p > 0)

    def mean_gpus(self) -> float:
        return libm.dot(self.gpus, self.probabilities())


class PowerOfTwoSizes(StrictModel):
    """Sizes ``2**k`` for k uniform over [log2(min), log2(max)] (log-uniform), a common HPC assumption."""

    kind: Literal["power_of_two"] = "power_of_two"
    min: int = Field(default=1, gt=0)
    max: int = Field(gt=0)

    @model_validator(mode="after")
    def _powers(self) -> PowerOfTwoSizes:
        for v in (self.min, self.max):
            if v & (v - 1):
                raise ValueError(f"{v} is not a power of two")
        if self.min > self.max:
            raise ValueError("need min <= max")
        return self

    def _choices(self) -> np.ndarray:
        lo, hi = self.min.bit_length() - 1, self.max.bit_length() - 1  # (powers of two)
        return 2 ** np.arange(lo, hi + 1, dtype=np.int64)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self._choices(), size=n)

    def max_gpus(self) -> int:
        return self.max

    def mean_gpus(self) -> float:
        return float(self._choices().mean())


SizeDistribution = Annotated[ChoiceSizes | PowerOfTwoSizes, Field(discriminator="kind")]
