"""Token-length distributions of prompts and outputs (tagged union on ``kind``).

Samples are floats: the discrete model rounds output lengths up to whole decode steps under continuous
batching
and uses them as they are (a continuous service demand) for ``batching: none``, which makes an exponential
output
length an exactly exponential service time (the M/M/c check).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.config.distributions import SIGMA_MAX
from gigafactory_sim.numerics import libm

__all__ = ["ExponentialTokens", "FixedTokens", "LogNormalTokens", "TokenDistribution"]

MIX_SAMPLES = 20_000
"""Samples drawn (seeded, fixed) to compute a distribution's moments and quantiles for the perf model."""


class FixedTokens(StrictModel):
    """Every request has exactly ``value`` tokens."""

    kind: Literal["fixed"] = "fixed"
    value: float = Field(ge=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))


class LogNormalTokens(StrictModel):
    """Log-normal token counts: ``median`` and log-space ``sigma``, clipped to [min, max], rounded to
    integers."""

    kind: Literal["lognormal"] = "lognormal"
    median: float = Field(gt=0)
    sigma: float = Field(default=1.0, ge=0, le=SIGMA_MAX)
    min: float = Field(default=1.0, ge=0)
    max: float = Field(default=32768.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LogNormalTokens:
        if not self.min <= self.median <= self.max:
            raise ValueError("need min <= median <= max")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = self.median * libm.exp(self.sigma * rng.standard_normal(n))
        return np.clip(np.round(x), self.min, self.max)


class ExponentialTokens(StrictModel):
    """Exponential token counts with ``mean`` (not rounded: a memoryless service demand)."""

    kind: Literal["exponential"] = "exponential"
    mean: float = Field(gt=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)


TokenDistribution = Annotated[FixedTokens | LogNormalTokens | ExponentialTokens, Field(discriminator="kind")]


def mix_samples(dist: FixedTokens | LogNormalTokens | ExponentialTokens, stream: int) -> np.ndarray:
    """A fixed, seeded sample of ``dist`` (independent of the scenario seed: the perf model is
    deterministic)."""
    return dist.sample(np.random.default_rng(stream), MIX_SAMPLES)
